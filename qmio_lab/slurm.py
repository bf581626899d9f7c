"""SLURM's commands and time format, read the same way by the QPU service's gate, the lab
server's session view and the emulator's SLURM workers.

Imports nothing heavy: the lab server calls it from a worker thread, where importing
``qmio_lab.emulator`` (distributed, dask-jobqueue) fails on their signal set-up.
"""
from __future__ import annotations

import subprocess

from qmio_lab.errors import SlurmCommandError

_NO_LIMIT = ("UNLIMITED", "NOT_SET", "INVALID", "")
POLL_TIMEOUT_S = 5.0  # a status poll (the lab panel's, a waiting CLI's) waits no longer for squeue


def run_command(args: list[str], timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run a SLURM command; failures name the command, its exit code and both outputs."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmCommandError(f"could not run {' '.join(args)}: {exc}") from exc


def command_failed(args: list[str], out: subprocess.CompletedProcess) -> SlurmCommandError:
    """The error for a SLURM command that exited non-zero: the command, its code, its words."""
    return SlurmCommandError(f"{' '.join(args)} exited with {out.returncode}: "
                             f"{out.stderr.strip() or out.stdout.strip()}")


def is_job_id(job_id: str) -> bool:
    """A SLURM job id as ``SLURM_JOB_ID`` holds it: ASCII digits, at most 20 (``str.isdigit``
    alone also passes '²' and other scripts' digits, which squeue must never be handed)."""
    return isinstance(job_id, str) and 0 < len(job_id) <= 20 and job_id.isascii() and job_id.isdigit()


def squeue_job(job_id: str, fields: str, *, squeue: str = "squeue", timeout: float = 20.0) -> list[str] | None:
    """The ``|``-separated ``fields`` (squeue's ``-o`` codes, e.g. ``%i|%P|%T``) of one job, or
    None when SLURM no longer knows it. ``job_id`` must pass :func:`is_job_id`."""
    if not is_job_id(job_id):
        raise ValueError(f"{job_id!r} is not a SLURM job id")
    args = [squeue, "-h", "-j", job_id, "-o", fields]
    out = run_command(args, timeout)
    width = fields.count("|") + 1
    lines = [line.split("|") for line in out.stdout.splitlines() if line.count("|") == width - 1]
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        raise command_failed(args, out)
    return lines[0] if lines else None


def duration_s(text: str) -> int | None:
    """Seconds in a SLURM time (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``, as sbatch
    reads and squeue prints them); None for ``UNLIMITED`` and the like."""
    text = text.strip()
    if text.upper() in _NO_LIMIT:
        return None
    days, _, clock = text.rpartition("-")
    parts = clock.split(":")
    if (days and not days.isdigit()) or not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"cannot read the SLURM duration {text!r}; expected e.g. 1-02:03:04, 02:03:04 or 03:04")
    numbers = [int(p) for p in parts]
    if days:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = (numbers + [0, 0])[:3]
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if len(numbers) == 1:  # a lone number is minutes
        return numbers[0] * 60
    hours, minutes, seconds = [0] * (3 - len(numbers)) + numbers
    return (hours * 60 + minutes) * 60 + seconds


__all__ = ["POLL_TIMEOUT_S", "command_failed", "duration_s", "is_job_id", "run_command", "squeue_job"]
