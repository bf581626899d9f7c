"""Submitting a job: the one road every front door takes (the HTTP API, the QMIO gateway).

A request is read and checked against the limits, its circuits are hashed once and compiled
(or found compiled) against the calibration in force, its QPU time is estimated and charged
against the per-job budget, and only then is it stored as a queued job. Every refusal is a
:class:`SubmissionError` carrying the HTTP status the API answers with.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from qiskit import QuantumCircuit

from qmio_lab import config
from qmio_lab.device.rules import check_shots
from qmio_lab.errors import QmioError, SlurmCommandError, SlurmGateRefused, SubmissionError
from qmio_lab.slurm import is_job_id
from qmio_lab.qpu.admission import check_cost, is_text
from qmio_lab.qpu.auth import User
from qmio_lab.qpu.circuits import check_parameter_values, content_key, expanded_count
from qmio_lab.qpu.service import QPUService

compile_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="qmio-compile")  # sandboxes do the work
JOB_FIELDS = ("circuits", "shots", "name", "priority", "optimization_level", "slurm_job_id", "memory", "seed",
              "repetition_period")
SEED_LIMIT = 2**32  # a job's seed is from 0 to SEED_LIMIT - 1 (numpy's and Aer's 32-bit seeds)
#: per-shot outcomes one job may ask for (shots x circuits), unless qmio.qpu.max_memory_shots
#: says otherwise: each costs about 10 bytes of result JSON, stored and sent whole, so the
#: default keeps a result with memory near 20 MB; counts alone have no such limit
DEFAULT_MAX_MEMORY_SHOTS = 2_000_000


def slurm_job_id(body: dict[str, Any]) -> str | None:
    value = body.get("slurm_job_id")
    if value is None or value == "":
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not is_job_id(text):
        raise SubmissionError(422, "slurm_job_id must be a SLURM job id (digits, e.g. $SLURM_JOB_ID); "
                                   f"got {str(value)[:30]!r}")
    return text


async def check_slurm(service: QPUService, user: User, job_id: str | None) -> None:
    """With a SLURM partition configured, only running jobs in it may use the QPU."""
    gate = service.slurm_gate
    if gate is None:
        return
    try:
        await asyncio.get_running_loop().run_in_executor(compile_pool, gate.check, user.name, job_id)
    except SlurmGateRefused as exc:
        service.metrics.rejected.labels("403").inc()
        raise SubmissionError(403, str(exc)) from exc
    except SlurmCommandError as exc:
        raise SubmissionError(503, f"cannot check SLURM right now: {exc}") from exc


def memory_flag(body: dict[str, Any]) -> bool:
    """The job's ``memory`` field: per-shot outcomes in the result (Qiskit's ``memory=True``)."""
    value = body.get("memory", False)
    if not isinstance(value, bool):
        raise SubmissionError(422, f"memory must be true or false (per-shot outcomes in the result); "
                                   f"got {str(value)[:30]!r}")
    return value


def job_seed(body: dict[str, Any]) -> int | None:
    """The job's ``seed`` field: the same job, seed and calibration give the same shots; None
    (the default) draws fresh randomness."""
    value = body.get("seed")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise SubmissionError(422, f"seed must be an integer from 0 to {SEED_LIMIT - 1} (or null for fresh "
                                   f"randomness); got {str(value)[:30]!r}")
    return value


def repetition_period(body: dict[str, Any]) -> float | None:
    """The job's ``repetition_period`` field: seconds from one shot to the next on the chip
    (None: the default); whether the circuits fit in it is checked once they are compiled."""
    value = body.get("repetition_period")
    if value is None:
        return None
    longest = float(config.get("device.hardware_timing.max_repetition_period_s"))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= longest:
        raise SubmissionError(422, f"repetition_period must be seconds in (0, {longest:g}] (QMIO's "
                                   f"default is {float(config.get('device.hardware_timing.repetition_period_s')):g}); "
                                   f"got {str(value)[:30]!r}")
    return float(value)


def check_memory_size(memory: bool, shots: int, circuits: int) -> None:
    """Per-shot memory grows the result by one string per shot of every circuit: a job may ask
    for at most ``qmio.qpu.max_memory_shots`` of them, so a result stays small enough to store
    and send whole."""
    if not memory:
        return
    limit = int(config.get("qpu.max_memory_shots", DEFAULT_MAX_MEMORY_SHOTS))
    if shots * circuits > limit:
        raise SubmissionError(
            422, f"memory=true for {circuits} circuit(s) x {shots} shots is {shots * circuits} per-shot "
                 f"outcomes; a job may return at most {limit} (qmio.qpu.max_memory_shots). Ask for fewer "
                 "shots or circuits per job, or leave memory off: counts have no such limit")


def read_job_request(body: dict[str, Any], user: User) -> dict[str, Any]:
    """The job's fields from a request body, each checked; the keys of :data:`JOB_FIELDS`."""
    unknown = set(body) - set(JOB_FIELDS)
    if unknown:
        raise SubmissionError(400, f"unknown field(s) {sorted(unknown)[:5]}; allowed: {', '.join(JOB_FIELDS)}")
    circuits = body.get("circuits")
    if not isinstance(circuits, list) or not circuits:
        raise SubmissionError(400, 'circuits must be a non-empty list of {"format": "qasm2|qasm3|qpy", "data": ...}')
    max_circuits = int(config.get("device.max_circuits"))
    total = sum(expanded_count(item) for item in circuits)
    if total > max_circuits:
        raise SubmissionError(422, f"{total} circuits in one job; the QPU accepts at most {max_circuits}. "
                                   "Split them into several jobs.")
    try:
        shots = check_shots(body.get("shots", int(config.get("device.default_shots"))))
    except QmioError as exc:
        raise SubmissionError(422, str(exc)) from exc
    priority = body.get("priority", 0)
    max_priority = int(config.get("qpu.max_priority"))
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise SubmissionError(422, f"priority must be an integer, got {str(priority)[:30]!r}")
    if not user.is_admin and not 0 <= priority <= max_priority:
        raise SubmissionError(422, f"priority must be from 0 to {max_priority} (it orders your own jobs: "
                                   f"higher runs first); got {priority}")
    level = body.get("optimization_level", 1)
    if level not in (0, 1, 2, 3) or isinstance(level, bool):
        raise SubmissionError(422, f"optimization_level must be 0, 1, 2 or 3; got {str(level)[:30]!r}")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200 or not is_text(name)):
        raise SubmissionError(422, "name must be a string of at most 200 characters of valid Unicode text")
    memory = memory_flag(body)
    check_memory_size(memory, shots, total)
    return {
        "circuits": circuits, "shots": shots, "name": name, "priority": priority,
        "optimization_level": level, "slurm_job_id": slurm_job_id(body),
        "memory": memory, "seed": job_seed(body), "repetition_period": repetition_period(body),
    }


def _compile_all(service: QPUService, items: list[dict[str, Any]], digests: list[str | None],
                 cal: Any, level: int) -> list[Any]:
    return [service.compiler.compile(item, i, cal, level, d) for i, (item, d) in enumerate(zip(items, digests))]


@dataclass(frozen=True)
class Submitted:
    """A queued job and what its submission worked out on the way, for a front door that
    reports it (the QMIO gateway writes the optimised circuit): no second look-up is needed."""

    job: dict[str, Any]  #: the stored job, state ``queued``
    circuits: list[dict[str, Any]]  #: the job's circuits as stored, each with its ``digest``
    templates: list[QuantumCircuit]  #: each circuit's native template, for ``calibration_id``
    calibration_id: str  #: the calibration in force at submission, which the templates are for
    warnings: tuple[str, ...] = ()  #: what the submitter should hear though the job was accepted (quota)


async def submit(service: QPUService, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """Check, compile and queue one job request; the stored job (state ``queued``).

    Raises :class:`SubmissionError` for anything refused, counted on ``/metrics`` by status.
    The executor is not woken here: the HTTP API answers first, then wakes it.
    """
    return (await submit_job(service, user, body)).job


async def submit_job(service: QPUService, user: User, body: dict[str, Any]) -> Submitted:
    """:func:`submit`, also giving what the submission computed (digests, native templates)."""
    try:
        spec = read_job_request(body, user)
        await check_slurm(service, user, spec["slurm_job_id"])
    except SubmissionError as exc:
        if exc.status != 403:  # check_slurm counts its own
            service.metrics.rejected.labels(str(exc.status)).inc()
        raise
    cal = service.calibration_in_force()
    level = spec["optimization_level"]
    try:
        # each payload is hashed once, here; the digest travels with the stored job
        digests = [content_key(item) if isinstance(item, dict) else None for item in spec["circuits"]]
        templates = [service.compiler.cached(item, cal, level, d) for item, d in zip(spec["circuits"], digests)]
        if None in templates:  # parsing or transpiling ahead: off the event loop, one at a time per user
            async with service.admission_gate.of(user.name):
                templates = await asyncio.get_running_loop().run_in_executor(
                    compile_pool, _compile_all, service, spec["circuits"], digests, cal, level)
        for i, (item, template) in enumerate(zip(spec["circuits"], templates)):
            check_parameter_values(item, template, i)
        profiles = [(service.compiler.profile(t, cal), expanded_count(item))
                    for item, t in zip(spec["circuits"], templates)]
        service.timing.check_repetition_period(spec["repetition_period"], profiles)
        estimate = service.timing.job(profiles, spec["shots"], spec["repetition_period"])
        check_cost(estimate, service.clock.scale)
    except QmioError as exc:
        service.metrics.rejected.labels("422").inc()
        raise SubmissionError(422, str(exc), **getattr(exc, "figures", {})) from exc
    try:
        warning = service.accounting.check(user, estimate.hold_s, time.time())
    except SubmissionError as exc:
        service.metrics.rejected.labels(str(exc.status)).inc()
        raise
    # priority orders the user's own jobs; an admin's priority also puts the job ahead of others'
    spec["circuits"] = [{**item, "digest": d} for item, d in zip(spec["circuits"], digests)]
    job = service.store.add_job(user=user.name, boost=spec["priority"] if user.is_admin else 0,
                                estimate=estimate, account=user.charged_account, **spec)
    service.metrics.submitted.inc()
    return Submitted(job=job, circuits=spec["circuits"], templates=list(templates), calibration_id=cal.id,
                     warnings=(warning,) if warning else ())
