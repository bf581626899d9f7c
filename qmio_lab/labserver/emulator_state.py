"""What the lab reports about the emulator's Dask cluster, without ever starting one to look.

The cluster a process uses is made on first use (``qmio_lab.emulator.get_client``). This server
reports the cluster it made itself (the "run on the emulator" command makes one), the workers of
a configured scheduler address, and, for ``slurm``, the Dask worker jobs SLURM holds for this
user (those of kernels' clusters included), read from ``squeue``'s delimited output.
"""
from __future__ import annotations

import getpass
import shutil
import threading
from typing import Any

import dask.config

from qmio_lab.errors import EmulatorClusterError, QmioError, SlurmCommandError
from qmio_lab.slurm import POLL_TIMEOUT_S, command_failed, run_command

_SQUEUE_FORMAT = "%i|%j|%T|%P|%M"  # job id, name, state, partition, time used


def parse_squeue(text: str) -> list[dict[str, str]]:
    """Rows of ``squeue -h -o '%i|%j|%T|%P|%M'`` as dicts (blank lines skipped)."""
    jobs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.strip().split("|")
        if len(parts) != 5:
            raise ValueError(f"unexpected squeue line {line!r}; expected 5 '|'-separated fields")
        job_id, name, state, partition, elapsed = parts
        jobs.append({"id": job_id, "name": name, "state": state.lower(), "partition": partition,
                     "elapsed": elapsed})
    return jobs


def squeue_worker_jobs(job_name: str | None = None) -> list[dict[str, str]]:
    """This user's SLURM jobs named like dask-jobqueue's workers (``jobqueue.slurm.name``)."""
    name = job_name or dask.config.get("jobqueue.slurm.name", default=None) or "dask-worker"
    cmd = ["squeue", "-h", "-u", getpass.getuser(), "-n", name, "-o", _SQUEUE_FORMAT]
    proc = run_command(cmd, POLL_TIMEOUT_S)
    if proc.returncode != 0:
        raise command_failed(cmd, proc)
    return parse_squeue(proc.stdout)


def cluster_job_ids(cluster: Any) -> list[str]:
    """SLURM job ids of a dask-jobqueue cluster's workers (running and pending)."""
    ids = []
    for job in getattr(cluster, "workers", {}).values():
        job_id = getattr(job, "job_id", None)
        if job_id:
            ids.append(str(job_id))
    return sorted(ids)


def _workers(client: Any) -> list[dict[str, Any]]:
    info = client.scheduler_info(n_workers=-1)
    return [
        {"name": str(w.get("name", addr)), "address": addr, "memory_limit": w.get("memory_limit"),
         "nthreads": w.get("nthreads")}
        for addr, w in info.get("workers", {}).items()
    ]


class EmulatorWatch:
    """Reports the emulator cluster; runs OpenQASM on it when asked (that creates it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._remote: Any = None  # client of an external scheduler (kind "address")
        self.started_here = False

    def state(self) -> dict[str, Any]:
        from qmio_lab.emulator import cluster as clusters

        try:
            kind = clusters.cluster_kind()
        except EmulatorClusterError as exc:
            return {"kind": None, "state": "misconfigured", "error": str(exc), "workers": [], "slurm_jobs": []}
        reply: dict[str, Any] = {"kind": kind, "state": "not started", "address": None, "workers": [],
                                 "slurm_jobs": []}
        client, cluster = self._local()
        if kind == "address":
            reply["address"] = str(dask.config.get("qmio.emulator.cluster"))
            try:
                client = self._remote_client()
            except EmulatorClusterError as exc:  # e.g. a tls:// address without certificates
                reply["error"] = str(exc)
        if client is not None and client.status == "running":
            reply["state"] = "running"
            reply["address"] = client.scheduler.address
            reply["workers"] = _workers(client)
        if kind == "slurm":
            reply["slurm_jobs"] = [{"id": i, "state": "owned"} for i in cluster_job_ids(cluster)]
            if shutil.which("squeue"):
                try:
                    found = squeue_worker_jobs()
                except (SlurmCommandError, ValueError) as exc:
                    reply["slurm_error"] = str(exc)
                else:
                    known = {j["id"] for j in found}
                    reply["slurm_jobs"] = found + [j for j in reply["slurm_jobs"] if j["id"] not in known]
            if reply["slurm_jobs"] and reply["state"] == "not started":
                reply["state"] = "running"  # worker jobs of another process's (a kernel's) cluster
        return reply

    def _local(self) -> tuple[Any, Any]:
        from qmio_lab.emulator import current

        return current()

    def _remote_client(self) -> Any:
        from distributed import Client

        from qmio_lab.emulator.cluster import client_security

        with self._lock:
            if self._remote is not None and self._remote.status == "running":
                return self._remote
            try:
                address = str(dask.config.get("qmio.emulator.cluster"))
                self._remote = Client(address, timeout=3, set_as_default=False, security=client_security(address))
            except (OSError, TimeoutError):
                self._remote = None
            return self._remote

    def run_qasm(self, qasm: str, shots: int) -> dict[str, Any]:
        """Emulate one OpenQASM program on the configured cluster (created here if needed)."""
        from qmio_lab.emulator import EmulatorBackend
        from qmio_lab.labserver.manager import LabError
        from qmio_lab.qpu.admission import AdmissionLimits, check_parsed
        from qmio_lab.qpu.circuits import parse_circuit

        try:
            circuit = parse_circuit({"data": qasm})
            check_parsed(circuit, 0, AdmissionLimits.for_emulator())  # gate bombs before Aer unrolls them
        except QmioError as exc:  # PayloadError, AdmissionError
            raise LabError(422, str(exc)) from exc
        from qmio_lab.emulator import get_client, get_cluster

        self.started_here = True
        try:
            result = EmulatorBackend(client=get_client(), cluster=get_cluster()).run(circuit, shots=shots).result()
        except EmulatorClusterError as exc:
            raise LabError(503, str(exc)) from exc
        except (QmioError, ValueError) as exc:
            raise LabError(422, str(exc)) from exc
        return {"counts": result.get_counts(0), "shots": shots, "num_qubits": circuit.num_qubits}

    def close(self) -> None:
        with self._lock:
            if self._remote is not None:
                self._remote.close()
                self._remote = None
        if self.started_here:
            from qmio_lab.emulator import shutdown

            shutdown()
