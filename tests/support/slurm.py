"""Start (or reuse) the real single-node SLURM of ``tests/slurm/slurm.sh`` for a test session.

In CI (``CI=true``) a SLURM that cannot start fails the tests that need it; elsewhere they are
skipped with the reason, so a developer without root can still run the rest of the suite.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from support.missing import missing

SCRIPT = Path(__file__).resolve().parents[1] / "slurm" / "slurm.sh"


def two_worker_settings(workdir: Path) -> dict:
    """Dask config for an emulator of two 1-core SLURM worker jobs, as a site would set it."""
    return {
        "qmio.emulator.cluster": "slurm",
        "qmio.emulator.slurm.adapt": {"minimum": 2, "maximum": 2},
        "jobqueue.slurm.cores": 1,
        "jobqueue.slurm.memory": "2GiB",
        "jobqueue.slurm.walltime": "00:30:00",
        "jobqueue.slurm.python": sys.executable,
        "jobqueue.slurm.local-directory": str(workdir / "workers"),
        "jobqueue.slurm.log-directory": str(workdir / "logs"),
        "jobqueue.slurm.scheduler-options": {"host": "127.0.0.1", "dashboard_address": ":0"},
    }


def start_two_workers(workdir: Path, timeout: float = 60) -> tuple:
    """The emulator's cluster made from :func:`two_worker_settings` alone, as a user would, and a
    client once both worker jobs have joined. Raises TimeoutError (cluster closed) if they do not."""
    import dask.config
    from distributed import Client

    from qmio_lab.emulator import make_cluster

    with dask.config.set(two_worker_settings(workdir)):
        cluster, address = make_cluster()
    client = Client(address, security=cluster.security)  # TLS with the cluster's own key
    try:
        client.wait_for_workers(2, timeout=timeout)
    except TimeoutError:
        client.close()
        cluster.close()
        raise
    return cluster, client


def sh(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)


def has_emulator_partition(env: dict[str, str] | None = None) -> bool:
    try:
        out = sh("sinfo", "-h", "-p", "emulator", "-o", "%P|%t", env=env, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "emulator" in out.stdout


def diagnostics(env: dict[str, str] | None = None) -> str:
    """sinfo and squeue as SLURM sees them, for the message of a failing test."""
    parts = []
    for cmd in (("sinfo", "-N", "-l"), ("squeue", "-o", "%i|%P|%j|%T|%R")):
        try:
            out = sh(*cmd, env=env, timeout=20)
            parts.append(f"$ {' '.join(cmd)}\n{out.stdout}{out.stderr}")
        except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
            parts.append(f"$ {' '.join(cmd)}: {exc}")
    return "\n".join(parts)


def _unavailable(reason: str) -> None:
    missing(f"a running SLURM (it could not start: {reason})")


def slurm_session(directory: str | None = None) -> Iterator[str]:
    """Yield a ``SLURM_CONF`` path with a running emulator partition; stop what we started."""
    if os.environ.get("SLURM_CONF") and has_emulator_partition():
        yield os.environ["SLURM_CONF"]
        return
    directory = directory or os.environ.get("QMIO_SLURM_DIR") or str(Path(tempfile.gettempdir()) / "qmio-slurm")
    conf = str(Path(directory) / "slurm.conf")
    env = {**os.environ, "SLURM_CONF": conf}
    started = False
    if not has_emulator_partition(env):
        if os.geteuid() != 0:
            _unavailable("starting slurmctld and slurmd needs root; or export SLURM_CONF of a running SLURM")
        for step in (("install",), ("start", directory)):
            out = sh("bash", str(SCRIPT), *step)
            if out.returncode != 0:
                _unavailable(f"`slurm.sh {' '.join(step)}` exited {out.returncode}:\n{out.stdout}{out.stderr}")
        started = True
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield conf
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if started:
            sh("bash", str(SCRIPT), "stop", directory)
