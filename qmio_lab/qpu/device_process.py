"""The simulated QPU in a process of its own, fed by the service's executor thread.

qiskit-aer keeps the GIL while it simulates. Run inside the service process, every simulation
froze the HTTP loop for as long as it lasted: during a 20 s job, ``GET /status`` went unanswered
for 11 s, new submissions, queue positions and the lab's sidebar all waited. In a child process
the simulation uses a core of its own and the service stays responsive; if the simulator
crashes (or the kernel kills it for memory), the job in hand fails with a clear message, the
service lives on and the next job gets a fresh simulator.

The pipe carries JSON headers and QPY bytes, never pickle; every frame the child sends starts
with its kind (:class:`Reply`). While a job of several circuits runs, the child sends its
progress (circuits done) a few times a second. The child keeps the compact native
circuits (templates) and calibrations it has seen, so a hybrid loop resubmitting one circuit
with new parameter values sends only a key and the values.

A job's own ``seed`` (None: fresh randomness) and ``memory`` flag travel in its header; the
child's device seed only makes its device, never a job's shots. Results are reported as the
QPU's (:data:`BACKEND_NAME`), not as the simulator's that computes them.
"""
from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from multiprocessing.connection import Connection
from typing import Any

from qiskit import QuantumCircuit, qpy

from qmio_lab import config
from qmio_lab.device import Calibration
from qmio_lab.errors import DeviceProcessError, JobStopped, QmioError
from qmio_lab.lru import LRU
from qmio_lab.qpu.child import how_it_ended, start_child

log = logging.getLogger(__name__)
_TEMPLATES_KEPT = 4096  # compact native circuits the child keeps, newest used last
_CALIBRATIONS_KEPT = 16
_START_TIMEOUT_S = 120.0
_PROGRESS_EVERY_S = 0.2  # the child reports a long job's progress at most this often
_PROGRESS_MIN_CIRCUITS = 8  # ... when it has at least this many circuits
BACKEND_NAME = "qmio_qpu"  # what a QPU result's backend_name says (QPUBackend's name)


class Reply(Enum):
    """What a frame from the simulator process is: its first byte, then the payload."""

    READY = b"S"  # started, Aer imported: jobs may come
    MISSING = b"M"  # JSON {"templates": [keys], "calibration": bool}: it lacks these, send them
    PROGRESS = b"P"  # circuits done so far (decimal)
    RESULT = b"R"  # the result body (JSON)
    REFUSED = b"Q"  # the device refused the job: a message for the user
    FAILED = b"E"  # the simulation raised: an internal error

    def frame(self, payload: bytes = b"") -> bytes:
        return self.value + payload

    @staticmethod
    def read(frame: bytes) -> tuple[Reply, bytes]:
        return Reply(frame[:1]), frame[1:]


@dataclass(frozen=True)
class Program:
    """One submitted circuit as the device runs it: a compact native template on ``qubits``,
    run once, or once per row of parameter values (bound by parameter name, in ``names`` order)."""

    key: str
    circuit: QuantumCircuit
    qubits: tuple[int, ...]
    names: tuple[str, ...] = ()
    rows: list[list[float]] | None = None


def result_body(result: Any, cal: Calibration) -> dict[str, Any]:
    """The stored result: Qiskit's own dict form (round-trips to ``Result``) plus plain counts."""
    body = result.to_dict()
    body["date"] = str(body.get("date"))
    body["calibration_id"] = cal.id
    body["calibration_age_s"] = cal.age.total_seconds()
    body["counts"] = [result.get_counts(i) for i in range(len(result.results))]
    return body


class DeviceProcess:
    """The executor's handle on the simulator process: starts it, runs jobs, restarts it after a crash.

    Used from one thread (the executor's); ``stop`` may come from another.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._sent_templates: LRU[str, None] = LRU(_TEMPLATES_KEPT)  # what the child holds, as it keeps them
        self._sent_calibrations: LRU[str, None] = LRU(_CALIBRATIONS_KEPT)
        self._lock = threading.Lock()
        self._running: str | None = None  # the job being simulated
        self._stop: tuple[str, str, bool] | None = None  # (job id, why, cancelled?) of a stop asked for
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child now (it imports Aer for about a second) without waiting for it.

        It dies with the service (see qmio_lab.qpu.child).
        """
        with self._lock:
            if self._proc is not None:
                if self._proc.poll() is None:
                    return
                log.warning("the QPU simulator process %d ended (exit code %s); starting a new one",
                            self._proc.pid, self._proc.returncode)
                self.restarts += 1
                if self._conn is not None:
                    self._conn.close()
            self._proc, self._conn = start_child("qmio_lab.qpu.device_process", [str(self.seed)])
            self._ready = False
            self._sent_templates.clear()
            self._sent_calibrations.clear()

    def stop(self) -> None:
        with self._lock:
            proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if conn is not None:
            conn.close()  # the child's loop ends at EOF
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop_job(self, job_id: str, reason: str, *, cancelled: bool) -> None:
        """Stop ``job_id`` (from any thread): if it is being simulated the child is killed, and
        ``run`` raises JobStopped with ``reason``, also when it has not reached the child yet.
        The next job gets a fresh child."""
        with self._lock:
            self._stop = (job_id, reason, cancelled)
            proc = self._proc if self._running == job_id else None
        if proc is not None and proc.poll() is None:
            proc.kill()

    def _stop_for(self, job_id: str) -> JobStopped | None:
        with self._lock:
            stop = self._stop
            if stop is None or stop[0] != job_id:
                return None
            self._stop = None
        return JobStopped(stop[1], cancelled=stop[2])

    def run(self, job_id: str, programs: list[Program], shots: int, cal: Calibration,
            on_progress: Callable[[int], None] | None = None, time_limit_s: float | None = None,
            *, memory: bool = False, seed: int | None = None) -> str:
        """Simulate a job; returns its result body as JSON text, ready to store and send.
        ``on_progress(circuits done)`` hears of a long job's progress as the child reports it.
        ``memory`` adds per-shot outcomes to the result; ``seed`` makes the job's shots
        reproducible (circuit ``i`` gets ``seed + 2113·i``; None: fresh randomness).

        Raises QmioError with the device's message when the job cannot run, JobStopped when it
        was cancelled or ran past ``time_limit_s``, and DeviceProcessError (after restarting
        the child) when the simulator process died.
        """
        with self._lock:
            self._running = job_id
        try:
            return self._run(job_id, programs, shots, cal, on_progress, time_limit_s, memory, seed)
        finally:
            with self._lock:
                self._running = None
                if self._stop is not None and self._stop[0] == job_id:
                    self._stop = None  # asked for too late: the job had finished

    def _run(self, job_id: str, programs: list[Program], shots: int, cal: Calibration,
             on_progress: Callable[[int], None] | None, time_limit_s: float | None,
             memory: bool = False, seed: int | None = None) -> str:
        early = self._stop_for(job_id)
        if early is not None:
            raise early
        self.start()
        conn = self._conn
        assert conn is not None
        try:
            if not self._ready:
                if not conn.poll(_START_TIMEOUT_S):
                    raise EOFError("no answer")
                Reply.read(conn.recv_bytes())  # READY
                self._ready = True
            # the time limit counts the job's own simulation, not the start of a fresh simulator
            deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
            options = {"memory": bool(memory), "seed": seed}
            kind, payload = Reply.read(self._exchange(conn, job_id, programs, shots, cal, resend=False,
                                                      deadline=deadline, options=options))
            if kind is Reply.MISSING:  # it forgot something we thought it kept: send everything
                kind, payload = Reply.read(self._exchange(conn, job_id, programs, shots, cal, resend=True,
                                                          deadline=deadline, options=options))
            while kind is Reply.PROGRESS:  # progress, then (eventually) the answer
                if on_progress is not None:
                    on_progress(int(payload))
                kind, payload = Reply.read(self._receive(conn, job_id, deadline))
        except (EOFError, OSError) as exc:
            stopped = self._stop_for(job_id)
            if stopped is not None:
                self._reap()
                self.start()
                raise stopped from exc
            code = None
            if self._proc is not None:
                try:
                    code = self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:  # alive but its pipe broke: replace it
                    self._proc.kill()
                    code = self._proc.wait(timeout=5)
            self.start()
            how = how_it_ended(code)
            raise DeviceProcessError(
                f"the QPU simulator process {how} while running this job; "
                "it has been restarted: resubmit the job. If it happens again with this job, its "
                "circuits may need more memory than the service machine has."
            ) from exc
        if kind is Reply.RESULT:
            return payload.decode()
        if kind is Reply.REFUSED:
            raise QmioError(payload.decode())
        raise DeviceProcessError(f"internal error while simulating the job: {payload.decode()}")

    def _reap(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)

    def _receive(self, conn: Connection, job_id: str, deadline: float | None) -> bytes:
        """The child's next frame; past the deadline the job is stopped (raises EOFError)."""
        while deadline is not None and not conn.poll(min(max(deadline - time.monotonic(), 0.0), 0.5)):
            if time.monotonic() >= deadline:
                limit = config.get("qpu.max_job_s")
                self.stop_job(job_id, f"the job ran past its time limit of {limit} s on the QPU "
                                      "(qmio.qpu.max_job_s) and was stopped; split it into smaller jobs",
                              cancelled=False)
                deadline = None  # the child is being killed: the next read ends in EOF
        return conn.recv_bytes()

    def _exchange(self, conn: Connection, job_id: str, programs: list[Program], shots: int,
                  cal: Calibration, resend: bool, deadline: float | None = None,
                  options: dict[str, Any] | None = None) -> bytes:
        cal_key = cal.key
        send_cal = resend or cal_key not in self._sent_calibrations
        new: dict[str, QuantumCircuit] = {}
        for p in programs:
            if (resend or p.key not in self._sent_templates) and p.key not in new:
                new[p.key] = p.circuit
        header = {
            "job_id": job_id, "shots": shots, "calibration_key": cal_key, **(options or {}),
            "calibration": cal.to_dict() if send_cal else None,
            "templates": list(new),
            "programs": [{"key": p.key, "qubits": list(p.qubits), "names": list(p.names), "rows": p.rows}
                         for p in programs],
        }
        blob = b""
        if new:
            buffer = io.BytesIO()
            qpy.dump(list(new.values()), buffer)
            blob = buffer.getvalue()
        conn.send_bytes(json.dumps(header).encode())
        conn.send_bytes(blob)
        self._sent_calibrations.put(cal_key)
        for p in programs:  # each one is in the child now: sent before, or in ``new``
            self._sent_templates.put(p.key)
        return self._receive(conn, job_id, deadline)


# ---- the child ------------------------------------------------------------------------------
def serve_device(conn: Connection, seed: int) -> None:
    """The child's loop: one job at a time until the service closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the service, which stops us
    from qmio_lab.device import QmioDevice, QmioSimulator

    templates: LRU[str, QuantumCircuit] = LRU(_TEMPLATES_KEPT)
    calibrations: LRU[str, Calibration] = LRU(_CALIBRATIONS_KEPT)
    simulator: QmioSimulator | None = None
    try:
        conn.send_bytes(Reply.READY.frame())
    except OSError:  # the service stopped before we were up
        return
    while True:
        try:
            header = json.loads(conn.recv_bytes())
            blob = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            if header["calibration"] is not None:
                calibrations.put(header["calibration_key"], Calibration.from_dict(header["calibration"]))
            if blob:
                for key, circuit in zip(header["templates"], qpy.load(io.BytesIO(blob))):
                    templates.put(key, circuit)
            cal = calibrations.get(header["calibration_key"])
            missing = [p["key"] for p in header["programs"] if p["key"] not in templates]
            if cal is None or missing:
                conn.send_bytes(Reply.MISSING.frame(json.dumps({"templates": missing,
                                                                "calibration": cal is None}).encode()))
                continue
            if simulator is None:
                simulator = QmioSimulator(QmioDevice(seed=seed, history=[cal]))
            pairs = []
            for p in header["programs"]:
                template = templates.get(p["key"])
                qubits = tuple(p["qubits"])
                pairs.extend((bound, qubits) for bound in _bind(template, p["names"], p["rows"]))
            result = simulator.execute_compact(pairs, header["shots"], cal, seed=header.get("seed"),
                                               job_id=header["job_id"], progress=_reporter(conn, len(pairs)),
                                               memory=bool(header.get("memory")), backend_name=BACKEND_NAME)
            reply = Reply.RESULT.frame(json.dumps(result_body(result, cal)).encode())
        except QmioError as exc:
            reply = Reply.REFUSED.frame(str(exc).encode())
        except Exception as exc:  # reported to the service, which fails the job
            log.exception("simulation of job %s failed", header.get("job_id"))
            reply = Reply.FAILED.frame(f"{type(exc).__name__}: {exc}".encode())
        try:
            conn.send_bytes(reply)
        except OSError:  # the service is gone (stopped, or killed): nobody waits for this result
            return


def _reporter(conn: Connection, total: int) -> Callable[[int], None] | None:
    """Progress frames (circuits done) for a job of many circuits, at most one per
    ``_PROGRESS_EVERY_S``. A job of a few circuits (a hybrid loop's usual call) runs in one piece:
    reporting would cost it an extra simulator call, to time the first chunk."""
    if total < _PROGRESS_MIN_CIRCUITS:
        return None
    last = time.monotonic()

    def report(done: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last >= _PROGRESS_EVERY_S:
            conn.send_bytes(Reply.PROGRESS.frame(b"%d" % done))
            last = now
    return report


def _bind(template: QuantumCircuit, names: list[str], rows: list[list[float]] | None) -> list[QuantumCircuit]:
    if rows is None:
        return [template]
    by_name = {p.name: p for p in template.parameters}
    params = [by_name.get(name) for name in names]
    return [
        template.assign_parameters({p: v for p, v in zip(params, row) if p is not None}, inplace=False)
        for row in rows
    ]


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve_device(Connection(int(sys.argv[1])), int(sys.argv[2]))
