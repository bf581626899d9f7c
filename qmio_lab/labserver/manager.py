"""The lab's view of QMIO, as plain async calls that return JSON-ready dicts.

No HTTP here: the handlers in ``routes.py`` only translate. Blocking work (the QPU service's
HTTP client, qiskit parsing, Dask) runs on a small thread pool so the Jupyter server never
stalls. Every failure becomes a :class:`LabError` with the HTTP status the handler should send.

Every value that comes from a request is checked here, once, before anything is sent or parsed:
a wrong type is a 400, a value out of range a 422 (or 413 for size); the QPU-side rules are
reused from ``qmio_lab.qpu`` (shots, states, the admission prescan), not restated.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from qmio_lab import config
from qmio_lab.errors import QmioError
from qmio_lab.labserver import emulator_state

MAX_QASM_CHARS = 2_000_000
MAX_JOBS_LISTED = 200
SUBMIT_FIELDS = ("qasm", "shots", "name")
EMULATE_FIELDS = ("qasm", "shots")
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the service's job ids (uuid4 hex)


class LabError(QmioError):
    """A request the lab cannot answer; ``status`` is the HTTP code to reply with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _default_client_factory():
    from qmio_lab.qpu import default_client

    return default_client()


def _configured_url() -> bool:
    return bool(os.environ.get("QMIO_QPU_URL") or config.get("qpu.url", None))


class QmioLabManager:
    """State behind the ``/qmio`` routes: one QPU client and the emulator cluster of this server.

    ``client_factory`` returns the :class:`~qmio_lab.qpu.QPUClient` to use (default: the shared
    one, which follows ``qmio.qpu.url``/``token`` or starts/reuses this user's local service).
    """

    def __init__(self, client_factory: Callable[[], Any] | None = None, max_threads: int = 4) -> None:
        self._client_factory = client_factory or _default_client_factory
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="qmio-lab")
        self.emulator = emulator_state.EmulatorWatch()

    def close(self) -> None:
        self.emulator.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ---- the QPU service ----------------------------------------------------------------------
    def _qpu(self, call: Callable[[Any], Any]) -> Any:
        from qmio_lab.qpu import QPUServiceError, QPUUnreachableError
        from qmio_lab.qpu.launcher import reset_default_client

        try:
            client = self._client_factory()
            return call(client)
        except QPUServiceError as exc:
            if isinstance(exc, QPUUnreachableError):  # find (or start) the service again next time
                if self._client_factory is _default_client_factory and not _configured_url():
                    reset_default_client()
                raise LabError(503, f"QPU service unreachable: {exc}") from exc
            if 400 <= exc.status < 500:
                said = exc.payload.get("error") if isinstance(exc.payload, dict) else None
                raise LabError(exc.status, str(said or exc)) from exc
            raise LabError(502, f"QPU service error: {exc}") from exc

    async def qpu_status(self) -> dict[str, Any]:
        def call(client: Any) -> dict[str, Any]:
            return {**client.status(), "url": client.url}

        return await self._run(self._qpu, call)

    async def qpu_jobs(self, limit: Any = 50, states: Sequence[str] = ()) -> dict[str, Any]:
        """This user's jobs, newest first; ``limit`` an integer (or its text) from 1 to 200."""
        limit, states = _check_limit(limit), _check_states(states)
        jobs = await self._run(self._qpu, lambda c: c.jobs(states, limit=limit))
        return {"jobs": jobs}

    async def cancel_job(self, job_id: Any) -> dict[str, Any]:
        if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
            raise LabError(400, f"{_show(job_id)} is not a job id: job ids are letters, digits, '-' and '_' "
                                "(as GET /qmio/qpu/jobs lists them)")
        return await self._run(self._qpu, lambda c: c.cancel(job_id))

    async def calibrations(self) -> dict[str, Any]:
        return {"calibrations": await self._run(self._qpu, lambda c: c.calibrations())}

    async def chip(self) -> dict[str, Any]:
        """Chip layout with the calibration in force now, per qubit and per coupler."""
        cal = await self._run(self._qpu, lambda c: c.calibration())
        return chip_view(cal)

    async def submit_qasm(self, qasm: Any = None, shots: Any = 1000, name: Any = None) -> dict[str, Any]:
        """Queue an OpenQASM program on the QPU; the service admits it (its sandbox, its limits)."""
        _check_qasm(qasm)
        shots = _check_shots(shots)
        if name is not None and not isinstance(name, str):
            raise LabError(400, f"'name' must be a string (e.g. the file's name) or null; got {_show(name)}")
        return await self._run(self._qpu, lambda c: c.submit(qasm, shots=shots, name=name or None))

    # ---- the session's own SLURM job -----------------------------------------------------------
    async def session(self) -> dict[str, Any]:
        """The SLURM job this server runs in (``session_job`` is null outside SLURM), with a
        warning once its walltime is near; a SLURM that cannot answer is ``session_error``."""
        from qmio_lab.labserver.session_job import SessionJobError, session_job

        try:
            return {"session_job": await self._run(session_job)}
        except SessionJobError as exc:
            return {"session_job": None, "session_error": str(exc)}

    # ---- the emulator --------------------------------------------------------------------------
    async def emulator_status(self) -> dict[str, Any]:
        """The emulator's cluster and worker jobs, and beside them the session's own SLURM job
        (:meth:`session`): the panel shows the two together, from one poll."""
        _import_emulator()
        state, session = await asyncio.gather(self._run(self.emulator.state), self.session())
        return {**state, **session}

    async def emulator_run(self, qasm: Any = None, shots: Any = 1000) -> dict[str, Any]:
        """Emulate an OpenQASM program here. It is parsed in this server's process, so what the
        admission prescan refuses from the text alone (register bombs, includes) never is."""
        _check_qasm(qasm)
        shots = _check_shots(shots)
        _prescan_for_emulator(qasm)
        _import_emulator()
        return await self._run(self.emulator.run_qasm, qasm, shots)


def _import_emulator() -> None:
    """Import qmio_lab.emulator on the server's main thread, once.

    dask-jobqueue installs a SIGINT handler at import, which only works on the main thread (the
    worker threads fail with ValueError); Jupyter's own Ctrl-C handler is put back afterwards.
    """
    if "qmio_lab.emulator.cluster" in sys.modules or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)
    import qmio_lab.emulator  # noqa: F401

    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def _show(value: Any) -> str:
    """A request value for an error message: its repr, cut short (a hostile value may be huge)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, list):
        return "a JSON list"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def request_fields(body: Any, allowed: Sequence[str]) -> dict[str, Any]:
    """The fields of a request body: a JSON object with no field outside ``allowed``."""
    if not isinstance(body, dict):
        raise LabError(400, f"the request body must be a JSON object with the fields {', '.join(allowed)}; "
                            f"got {_show(body)}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        names = ", ".join(_show(f) for f in unknown[:5])
        raise LabError(400, f"unknown field(s) {names}; allowed: {', '.join(allowed)}")
    return body


def _check_qasm(qasm: Any) -> None:
    from qmio_lab.qpu.admission import is_text

    if not isinstance(qasm, str) or not qasm.strip():
        raise LabError(422, "'qasm' must be the text of an OpenQASM 2 or 3 program")
    if len(qasm) > MAX_QASM_CHARS:
        raise LabError(413, f"the OpenQASM program is over {MAX_QASM_CHARS} characters")
    if not is_text(qasm):
        raise LabError(422, "'qasm' is not valid Unicode text (it holds a lone surrogate)")


def _check_shots(shots: Any) -> int:
    from qmio_lab.device.rules import check_shots
    from qmio_lab.errors import InvalidShotsError

    if isinstance(shots, bool) or not isinstance(shots, int):
        raise LabError(400, f"'shots' must be an integer, e.g. 1000; got {_show(shots)}")
    try:
        return check_shots(shots)
    except InvalidShotsError as exc:
        raise LabError(422, str(exc)) from exc


def _check_limit(limit: Any) -> int:
    if isinstance(limit, str) and re.fullmatch(r"[0-9]{1,6}", limit.strip()):
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_JOBS_LISTED:
        raise LabError(400, f"limit must be an integer from 1 to {MAX_JOBS_LISTED}, e.g. 50; got {_show(limit)}")
    return limit


def _check_states(states: Sequence[str]) -> tuple[str, ...]:
    from qmio_lab.qpu.store import STATES

    wanted = tuple(dict.fromkeys(s for s in states if s))  # repeats once
    unknown = [s for s in wanted if s not in STATES]
    if unknown:
        raise LabError(400, f"unknown state {_show(unknown[0])}; use one of {', '.join(STATES)}")
    return wanted


def _prescan_for_emulator(qasm: str) -> None:
    """The admission prescan (includes, declared register sizes) with the emulator's width."""
    from qmio_lab.errors import AdmissionError
    from qmio_lab.qpu.admission import AdmissionLimits, prescan
    from qmio_lab.qpu.circuits import detect_format

    try:
        prescan({"data": qasm}, 0, detect_format(qasm), AdmissionLimits.for_emulator())
    except AdmissionError as exc:
        raise LabError(422, str(exc)) from exc


def chip_view(cal: Any) -> dict[str, Any]:
    from qmio_lab.device import Topology

    topo = Topology()
    qubits = []
    for q, figures in enumerate(cal.qubits):
        x, y = topo.positions[q]
        qubits.append({
            "id": q, "x": x, "y": y,
            # the calibration's own names and SI units (seconds, hertz), as everywhere else
            "t1": figures.t1, "t2": figures.t2,
            "readout_error": figures.readout_error, "sx_error": figures.sx_error,
            "frequency": figures.frequency,
        })
    couplers = [{"control": c.control, "target": c.target, "ecr_error": c.ecr_error} for c in cal.couplers]
    return {
        "calibration_id": cal.id, "taken_at": cal.taken_at.isoformat(),
        "age_s": cal.age.total_seconds(), "qubits": qubits, "couplers": couplers,
        "summary": cal.summary(),
    }
