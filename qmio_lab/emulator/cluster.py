"""Where emulator work runs: one Dask cluster per process, chosen by configuration.

``qmio.emulator.cluster`` says which: ``local`` (a ``LocalCluster`` of processes on this
machine), ``slurm`` (a dask-jobqueue ``SLURMCluster``: workers are SLURM jobs in the
``emulator`` partition, configured by dask-jobqueue's own ``jobqueue.slurm`` section as in any
dask-jobqueue deployment), or the address of a running Dask scheduler. Switching from a laptop
to the HPC cluster is a configuration change, never a code change.
"""
from __future__ import annotations

import atexit
import math
import os
import re
import threading
from pathlib import Path
from typing import Any

import dask.config
import dask_jobqueue  # noqa: F401  (registers the jobqueue.* config defaults)
from dask.utils import parse_bytes
from distributed import Client, LocalCluster
from distributed.security import Security
from distributed.deploy import Cluster

from qmio_lab import config
from qmio_lab.emulator import mainguard
from qmio_lab.errors import EmulatorClusterError
from qmio_lab.slurm import duration_s

_KINDS = ("local", "slurm")
#: Superseded dask-jobqueue settings: passing them, even empty, makes it warn.
_DEPRECATED = frozenset({"extra", "env-extra", "job-extra", "header-skip"})
#: The certificate files a site's own TLS needs (``distributed.comm.tls.*``), scheduler, workers
#: and clients alike; naming any of them in the dask config replaces the temporary key.
_TLS_FILES = ("ca-file", "scheduler.cert", "scheduler.key", "worker.cert", "worker.key",
              "client.cert", "client.key")
_EXAMPLE = (
    "set it in ~/.config/dask/qmio.yaml (qmio: {emulator: {cluster: slurm}}) or with "
    "DASK_QMIO__EMULATOR__CLUSTER=local|slurm|tcp://host:8786"
)


def cluster_kind(setting: str | None = None) -> str:
    """``local``, ``slurm`` or ``address`` for a cluster setting (default: the configured one)."""
    value = str(config.get("emulator.cluster") if setting is None else setting).strip()
    if value in _KINDS:
        return value
    if re.match(r"^[a-z]+://\S+$", value):
        return "address"
    raise EmulatorClusterError(
        f"qmio.emulator.cluster is {value!r}; expected 'local', 'slurm' or a scheduler address "
        f"such as 'tcp://10.0.0.5:8786'; {_EXAMPLE}"
    )


def walltime_seconds(walltime: str) -> int:
    """Seconds in a SLURM walltime: ``MM``, ``MM:SS``, ``HH:MM:SS`` or ``D-HH[:MM[:SS]]``."""
    try:
        seconds = duration_s(walltime)
    except ValueError:
        seconds = None
    if seconds is None:
        raise EmulatorClusterError(f"cannot read SLURM walltime {walltime!r}; write e.g. '01:00:00'")
    return seconds


def lifetime_args(walltime: str, margin: float, stagger: float) -> list[str]:
    """Worker arguments that retire each worker before SLURM kills its job at the walltime.

    Without them every worker dies at the same instant, mid-task; staggered lifetimes let the
    scheduler move work to the others and adaptive scaling start replacements in time.
    """
    total = walltime_seconds(walltime)
    life = max(int(total * (1 - margin)), 60)
    return ["--lifetime", f"{life}s", "--lifetime-stagger", f"{max(int(total * stagger), 1)}s"]


def local_cluster_kwargs() -> dict[str, Any]:
    cfg = config.get("emulator.local")
    return {
        "n_workers": int(cfg.get("n_workers") or os.cpu_count() or 1),
        "threads_per_worker": int(cfg.get("threads_per_worker") or 1),
        "memory_limit": cfg.get("memory_limit", "auto"),
        "processes": True,
        "dashboard_address": None,
        # TLS with a key made for this cluster: another user of the machine who connects to the
        # scheduler's port cannot make it run their (pickled) tasks as us
        "security": Security.temporary(),
    }


def configured_security() -> Security | None:
    """The site's certificates from ``distributed.comm.tls.*``, or ``None`` when it names none.

    TLS is always required (``require_encryption``): the scheduler runs what clients send.
    """
    given = {k: dask.config.get(f"distributed.comm.tls.{k}", default=None) for k in _TLS_FILES}
    if not any(given.values()):
        return None
    absent = [f"distributed.comm.tls.{k}" for k, v in given.items() if not v]
    if absent:
        raise EmulatorClusterError(
            f"the dask config names TLS certificates but not {', '.join(absent)}; the SLURM "
            "cluster needs the CA file and a certificate and key for the scheduler, the workers "
            "and clients (or none of them, for a key made for the cluster)"
        )
    return Security(require_encryption=True)


def client_security(address: str = "") -> Security:
    """What a client of a scheduler address presents: ``distributed.comm.tls.*`` of the dask
    config (``qmio lab`` sets them, through the environment, for its own scheduler). A
    ``tls://`` address without them is refused here, with the settings that are missing."""
    security = Security()
    if address.startswith("tls://"):
        absent = [key for key, value in (("ca-file", security.tls_ca_file), ("client.cert", security.tls_client_cert),
                                         ("client.key", security.tls_client_key)) if not value]
        if absent:
            raise EmulatorClusterError(
                f"the scheduler at {address} speaks TLS, and this client has no "
                f"{', '.join('distributed.comm.tls.' + k for k in absent)} (e.g. DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
                "..._CLIENT__CERT, ..._CLIENT__KEY); inside `qmio lab` they are set for you")
    return security


def slurm_tls_directory() -> Path:
    """Where the SLURM cluster's temporary key goes unless ``jobqueue.slurm.shared-temp-directory``
    names a place (the worker jobs read it there, so it must be on a file system they share)."""
    return config.lab_home() / "slurm-tls"


def slurm_cluster_kwargs() -> dict[str, Any]:
    """SLURMCluster arguments: ``jobqueue.slurm`` wins; qmio's fallbacks fill what it leaves unset.

    Every setting is resolved now and passed explicitly: dask-jobqueue would otherwise read its
    config again for each new job, so a later config change would alter a running cluster.

    The scheduler speaks TLS: with the site's certificates (:func:`configured_security`), or with
    a key made for this cluster, which dask-jobqueue writes (0600) into ``shared_temp_directory``
    for the worker jobs to read (by default :func:`slurm_tls_directory`, made private, 0700).
    Its dashboard listens where ``qmio.emulator.slurm.dashboard_address`` says (127.0.0.1)
    unless ``jobqueue.slurm.scheduler-options.dashboard_address`` says otherwise.
    """
    cfg = config.get("emulator.slurm")
    jq = dict(dask.config.get("jobqueue.slurm", default={}) or {})
    kwargs = {k.replace("-", "_"): v for k, v in jq.items() if v is not None and k not in _DEPRECATED}
    for key in ("cores", "memory", "queue"):
        kwargs.setdefault(key, cfg[key])
    kwargs.setdefault("log_directory", str(cfg.get("log_directory") or config.lab_home() / "slurm-logs"))
    extra = list(kwargs.get("worker_extra_args") or [])
    if "--lifetime" not in extra:
        walltime = kwargs.get("walltime") or "01:00:00"
        extra += lifetime_args(walltime, float(cfg["lifetime_margin"]), float(cfg["lifetime_stagger"]))
    kwargs["worker_extra_args"] = extra
    options = dict(kwargs.get("scheduler_options") or {})
    options.setdefault("dashboard_address", cfg["dashboard_address"])
    kwargs["scheduler_options"] = options
    security = configured_security()
    if security is None:
        security = Security.temporary()
        kwargs.setdefault("shared_temp_directory", str(slurm_tls_directory()))
    kwargs["security"] = security
    return kwargs


def make_cluster(setting: str | None = None) -> tuple[Cluster | None, str]:
    """Create the configured cluster; returns ``(cluster, scheduler address)``.

    The cluster is ``None`` for a scheduler address: someone else owns that cluster.
    """
    kind = cluster_kind(setting)
    if kind == "address":
        return None, str(config.get("emulator.cluster") if setting is None else setting).strip()
    if kind == "local":
        mainguard.check()  # a plain script's workers would re-run it: say so in one line
        try:
            cluster: Cluster = LocalCluster(**local_cluster_kwargs())
        except RuntimeError as exc:
            if "failed to start" not in str(exc):
                raise
            raise EmulatorClusterError(
                f"the emulator's local Dask cluster could not start its workers ({exc}). If this "
                "runs from a script, its workers re-run that script: put the code that uses the "
                "emulator under `if __name__ == \"__main__\":`, or run it in a notebook"
            ) from None
        adapt = config.get("emulator.local.adapt", None)
    else:
        from dask_jobqueue import SLURMCluster

        kwargs = slurm_cluster_kwargs()
        os.makedirs(kwargs.get("log_directory", "."), exist_ok=True)
        if kwargs.get("shared_temp_directory") == str(slurm_tls_directory()):
            config.private_dir(slurm_tls_directory())  # it will hold the workers' key
        try:
            cluster = SLURMCluster(**kwargs)
        except ValueError as exc:
            raise EmulatorClusterError(
                f"cannot configure the SLURM cluster: {exc}; set cores and memory in the "
                "jobqueue.slurm section of your dask config (see dask-jobqueue's documentation)"
            ) from exc
        adapt = config.get("emulator.slurm.adapt", None)
    if adapt:
        cluster.adapt(minimum=int(adapt["minimum"]), maximum=int(adapt["maximum"]))
    return cluster, cluster.scheduler_address


def adaptive_maximum(cluster: Cluster | None) -> int | None:
    """The most workers an adaptive cluster will run (None: not adaptive, or unbounded).

    A job is cut into batches for this many workers, not for those running now: an adaptive
    cluster at its minimum then has the queued batches that make it ask for more workers, and
    the batches to give them once they come."""
    adaptive = getattr(cluster, "_adaptive", None)  # where distributed keeps a cluster's Adaptive
    if adaptive is None or getattr(adaptive, "state", None) == "stopped":
        return None
    maximum = getattr(adaptive, "maximum", None)
    return int(maximum) if maximum is not None and math.isfinite(maximum) else None


def memory_of_new_workers(cluster: Cluster | None) -> int | None:
    """Memory limit (bytes) a worker started by ``cluster`` will have; ``None`` if unknown."""
    if cluster is None:
        return None
    job = getattr(cluster, "_dummy_job", None)  # dask-jobqueue: the template of every job
    if job is not None and job.worker_memory:
        return int(job.worker_memory / job.worker_processes)
    options = getattr(cluster, "new_spec", {}).get("options", {})
    limit = options.get("memory_limit")
    if isinstance(limit, (int, float)) and limit > 0:
        return int(limit)
    if isinstance(limit, str) and limit != "auto":
        return parse_bytes(limit)
    return None


def worker_memory_limits(client: Client, cluster: Cluster | None = None) -> list[int]:
    """Memory limit of every connected worker, plus what new workers of ``cluster`` get.

    A worker without a limit counts as the memory of its host, which is what it can really use.
    """
    limits = []
    for info in client.scheduler_info(n_workers=-1)["workers"].values():
        limit = info.get("memory_limit") or info.get("metrics", {}).get("host_memory_total") or 0
        limits.append(int(limit))
    future = memory_of_new_workers(cluster)
    if future:
        limits.append(future)
    return limits


class _Shared:
    """The process-wide cluster and client, made on first use and closed at exit."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.cluster: Cluster | None = None
        self.client: Client | None = None

    def client_for(self) -> Client:
        with self.lock:
            if self.client is None or self.client.status in ("closed", "closing"):
                self.close()
                self.cluster, address = make_cluster()
                try:
                    # our own cluster's credentials; for an address, those of the dask config
                    security = getattr(self.cluster, "security", None) or client_security(address)
                    self.client = Client(address, set_as_default=False, security=security)
                except OSError as exc:
                    self.close()
                    raise EmulatorClusterError(
                        f"cannot reach the Dask scheduler at {address}: {exc}; check that it is "
                        f"running, or choose another cluster: {_EXAMPLE}"
                    ) from exc
            return self.client

    def close(self) -> None:
        with self.lock:
            client, cluster = self.client, self.cluster
            self.client = self.cluster = None
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()


_shared = _Shared()
atexit.register(_shared.close)


def current() -> tuple[Client | None, Cluster | None]:
    """The shared client and cluster if they exist, without creating them (for status views)."""
    with _shared.lock:
        return _shared.client, _shared.cluster


def get_client() -> Client:
    """The Dask client of the shared emulator cluster, creating the cluster on first use."""
    return _shared.client_for()


def get_cluster() -> Cluster | None:
    """The shared emulator cluster (``None`` when connected to an external scheduler address)."""
    with _shared.lock:
        _shared.client_for()
        return _shared.cluster


def shutdown() -> None:
    """Close the shared client and cluster (SLURM worker jobs are cancelled); safe to repeat."""
    _shared.close()
