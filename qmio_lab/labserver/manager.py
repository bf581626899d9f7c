"""The lab's view of QMIO, as plain async calls that return JSON-ready dicts.

No HTTP here: the handlers in ``routes.py`` only translate. Blocking work (the QPU service's
HTTP client, qiskit parsing, Dask) runs on a small thread pool so the Jupyter server never
stalls. Every failure becomes a :class:`LabError` with the HTTP status the handler should send.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from qmio_lab import config
from qmio_lab.errors import QmioError
from qmio_lab.labserver import emulator_state

MAX_QASM_CHARS = 2_000_000
MAX_JOBS_LISTED = 200


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
        from qmio_lab.qpu import QPUServiceError
        from qmio_lab.qpu.launcher import reset_default_client

        try:
            client = self._client_factory()
            return call(client)
        except QPUServiceError as exc:
            if exc.status == 0:  # unreachable: find (or start) the service again next time
                if self._client_factory is _default_client_factory and not _configured_url():
                    reset_default_client()
                raise LabError(503, f"QPU service unreachable: {exc}") from exc
            if 400 <= exc.status < 500:
                raise LabError(exc.status, str(exc.payload.get("error") or exc)) from exc
            raise LabError(502, f"QPU service error: {exc}") from exc

    async def qpu_status(self) -> dict[str, Any]:
        def call(client: Any) -> dict[str, Any]:
            return {**client.status(), "url": client.url}

        return await self._run(self._qpu, call)

    async def qpu_jobs(self, limit: int = 50, states: tuple[str, ...] = ()) -> dict[str, Any]:
        limit = max(1, min(int(limit), MAX_JOBS_LISTED))
        jobs = await self._run(self._qpu, lambda c: c.jobs(states, limit=limit))
        return {"jobs": jobs}

    async def cancel_job(self, job_id: str) -> dict[str, Any]:
        return await self._run(self._qpu, lambda c: c.cancel(job_id))

    async def calibrations(self) -> dict[str, Any]:
        return {"calibrations": await self._run(self._qpu, lambda c: c.calibrations())}

    async def chip(self) -> dict[str, Any]:
        """Chip layout with the calibration in force now, per qubit and per coupler."""
        cal = await self._run(self._qpu, lambda c: c.calibration())
        return chip_view(cal)

    async def submit_qasm(self, qasm: str, shots: int, name: str | None = None) -> dict[str, Any]:
        _check_qasm(qasm)
        return await self._run(self._qpu, lambda c: c.submit(qasm, shots=int(shots), name=name))

    # ---- the emulator --------------------------------------------------------------------------
    async def emulator_status(self) -> dict[str, Any]:
        _import_emulator()
        return await self._run(self.emulator.state)

    async def emulator_run(self, qasm: str, shots: int) -> dict[str, Any]:
        _check_qasm(qasm)
        _import_emulator()
        return await self._run(self.emulator.run_qasm, qasm, int(shots))


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


def _check_qasm(qasm: Any) -> None:
    if not isinstance(qasm, str) or not qasm.strip():
        raise LabError(422, "'qasm' must be the text of an OpenQASM 2 or 3 program")
    if len(qasm) > MAX_QASM_CHARS:
        raise LabError(413, f"the OpenQASM program is over {MAX_QASM_CHARS} characters")


def chip_view(cal: Any) -> dict[str, Any]:
    from qmio_lab.device import Topology

    topo = Topology()
    qubits = []
    for q, figures in enumerate(cal.qubits):
        x, y = topo.positions[q]
        qubits.append({
            "id": q, "x": x, "y": y,
            "t1_us": figures.t1 * 1e6, "t2_us": figures.t2 * 1e6,
            "readout_error": figures.readout_error, "sx_error": figures.sx_error,
            "frequency_ghz": figures.frequency / 1e9,
        })
    couplers = [{"control": c.control, "target": c.target, "ecr_error": c.ecr_error} for c in cal.couplers]
    return {
        "calibration_id": cal.id, "taken_at": cal.taken_at.isoformat(),
        "age_s": cal.age.total_seconds(), "qubits": qubits, "couplers": couplers,
        "summary": cal.summary(),
    }
