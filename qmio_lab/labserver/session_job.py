"""The SLURM job this Jupyter server runs in, as the lab panel shows it.

At an HPC centre a notebook session is a SLURM allocation (a Hub server started by batchspawner,
or ``srun jupyter lab``): the job's walltime ends the session, kernels and unsaved work with it.
The server reads its own ``SLURM_JOB_ID`` and asks ``squeue`` (delimited output) for the job's
partition, state and time left, and warns :data:`WARN_BEFORE_END_S` before the end.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from qmio_lab.errors import QmioError, SlurmCommandError
from qmio_lab.slurm import POLL_TIMEOUT_S, duration_s, is_job_id, squeue_job

WARN_BEFORE_END_S = 600  # ten minutes: time to save a notebook and let a QPU job finish
_FORMAT = "%i|%P|%T|%L|%l"  # job id, partition, state, time left, time limit


class SessionJobError(QmioError):
    """``squeue`` could not say what this server's SLURM job is."""


def walltime_warning(job_id: str, time_left_s: int | None, warn_before_s: int = WARN_BEFORE_END_S) -> str | None:
    """What to tell the user when the session's walltime is near (within ``warn_before_s``)."""
    if time_left_s is None or time_left_s > warn_before_s:
        return None
    # minutes rounded as the panel rounds the time left it shows beside the warning
    when = f"in {round(time_left_s / 60)} min" if time_left_s >= 60 else "in less than a minute"
    return (f"This session's SLURM job {job_id} reaches its walltime {when}: SLURM then stops this "
            "server and its kernels. Save your work now, and start a new session to go on.")


def parse_job(line: str) -> dict[str, Any]:
    """One line of ``squeue -h -o '%i|%P|%T|%L|%l'`` as the panel's view of the job."""
    parts = line.strip().split("|")
    if len(parts) != 5:
        raise ValueError(f"unexpected squeue line {line!r}; expected 5 '|'-separated fields")
    job_id, partition, state, left, limit = parts
    time_left_s = duration_s(left)
    return {"id": job_id, "partition": partition, "state": state.lower(), "time_left_s": time_left_s,
            "time_limit": limit, "warning": walltime_warning(job_id, time_left_s)}


def session_job(env: Mapping[str, str] = os.environ, squeue: str = "squeue") -> dict[str, Any] | None:
    """This server's SLURM job, or ``None`` when it runs outside SLURM (no ``SLURM_JOB_ID``)."""
    job_id = env.get("SLURM_JOB_ID", "").strip()
    if not job_id:
        return None
    if not is_job_id(job_id):
        raise SessionJobError(f"SLURM_JOB_ID {job_id!r} is not a SLURM job id")
    try:
        fields = squeue_job(job_id, _FORMAT, squeue=squeue, timeout=POLL_TIMEOUT_S)
    except SlurmCommandError as exc:
        raise SessionJobError(str(exc)) from exc
    if fields is None:  # SLURM no longer knows it: the session is ending
        return {"id": job_id, "partition": None, "state": "ended", "time_left_s": 0, "time_limit": None,
                "warning": walltime_warning(job_id, 0)}
    try:
        return parse_job("|".join(fields))
    except ValueError as exc:
        raise SessionJobError(str(exc)) from exc
