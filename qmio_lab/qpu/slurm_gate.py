"""QMIO's rule: the QPU is reachable only from SLURM jobs running in the ``qpu`` partition.

With ``qmio qpu serve --slurm-partition qpu`` every submission must carry the caller's
``SLURM_JOB_ID`` (QPUClient sends it automatically), and the service asks SLURM whether that job
is running, in that partition, for the same user. Answers are cached briefly, because a hybrid
loop submits many jobs from one SLURM job and squeue should not be asked each time.
"""
from __future__ import annotations

import threading
import time

from qmio_lab.errors import SlurmGateRefused
from qmio_lab.slurm import is_job_id, squeue_job


class SlurmGate:
    def __init__(self, partition: str, *, ttl_s: float = 5.0, squeue: str = "squeue") -> None:
        self.partition = partition
        self.ttl_s = ttl_s
        self.squeue = squeue
        self._ok: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def _hint(self) -> str:
        return (f"submit from a batch job (#SBATCH --partition {self.partition}), an interactive "
                f"tunnel (srun --partition {self.partition} --time 15 --pty bash), a Jupyter session "
                f"started in partition {self.partition}, or open a QMIO tunnel from here "
                f"(qmio tunnel --slurm: a job in {self.partition} that QMIO's client reaches)")

    def check(self, user: str, slurm_job_id: str | None) -> None:
        """Return if allowed; raise :class:`SlurmGateRefused` saying why not and what to do."""
        if not slurm_job_id:
            raise SlurmGateRefused(f"the QPU accepts jobs only from SLURM jobs in partition "
                                   f"{self.partition!r}, and this request carries no SLURM_JOB_ID; {self._hint()}")
        job = str(slurm_job_id)
        if not is_job_id(job):
            raise SlurmGateRefused(f"SLURM_JOB_ID {job!r} is not a SLURM job id")
        key = (user, job)
        now = time.monotonic()
        with self._lock:
            if self._ok.get(key, 0.0) > now:
                return
        fields = squeue_job(job, "%i|%u|%P|%T", squeue=self.squeue)
        if fields is None:
            raise SlurmGateRefused(f"SLURM job {job} is not running (unknown or finished); {self._hint()}")
        _, owner, partition, state = fields
        if owner != user:
            raise SlurmGateRefused(f"SLURM job {job} belongs to {owner!r}, not to {user!r}")
        if partition != self.partition:
            raise SlurmGateRefused(
                f"SLURM job {job} runs in partition {partition!r}; the QPU is reachable only from "
                f"partition {self.partition!r}; {self._hint()}"
            )
        if state != "RUNNING":
            raise SlurmGateRefused(f"SLURM job {job} is {state}, not RUNNING; submit once it runs")
        with self._lock:
            self._ok[key] = now + self.ttl_s
