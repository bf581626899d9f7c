"""The compile sandbox: submitted circuits are parsed and compiled in bounded child processes.

A 90-byte ``creg c[200000000];`` once drove the service to 22 GB, and 40 nested gate
definitions kept a compile thread busy forever. Here each new circuit is admitted and compiled
(qmio_lab.qpu.admission's rules, then parse, unroll count, transpile) in one of a few sandbox
processes, each with a memory budget (``RLIMIT_DATA``) and a deadline after which it is killed
and replaced. The circuit comes back as QPY; the pipe carries JSON and QPY, never pickle.
The HTTP side lets a user have one circuit in the sandboxes at a time (admission.UserGate), so
one user's bombs cannot occupy every sandbox while others wait.
"""
from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from multiprocessing.connection import Connection
from subprocess import Popen, TimeoutExpired
from typing import Any

from qiskit import QuantumCircuit, qpy

from qmio_lab.device import Calibration
from qmio_lab.errors import AdmissionError, QmioError
from qmio_lab.lru import LRU
from qmio_lab.qpu.admission import AdmissionLimits
from qmio_lab.qpu.child import how_it_ended, kill, start_child

log = logging.getLogger(__name__)
_START_TIMEOUT_S = 120.0  # importing qiskit in a fresh child, on a busy machine
_CALIBRATIONS_KEPT = 8


class _Sandbox:
    """One sandbox process; used by one thread at a time (the pool hands it out)."""

    def __init__(self, seed: int, limits: AdmissionLimits) -> None:
        self.seed = seed
        self.limits = limits
        self.proc: Popen | None = None
        self.conn: Connection | None = None
        self.ready = False
        self.sent: LRU[str, None] = LRU(_CALIBRATIONS_KEPT)  # the child's calibrations, used as it uses them

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        kill(self.proc, self.conn)
        self.proc, self.conn = start_child(
            "qmio_lab.qpu.sandbox", [str(self.seed), json.dumps(self.limits.to_dict())],
            memory_bytes=self.limits.memory_mb * 2**20,
        )
        self.ready = False
        self.sent.clear()

    def stop(self) -> None:
        kill(self.proc, self.conn)
        self.proc = self.conn = None

    def is_ready(self, wait: float = 0.0) -> bool:
        """Started and past its imports (reads the b"ready" it sends once, waiting up to ``wait``)."""
        if not self.ready and self.conn is not None and self.proc is not None and self.proc.poll() is None:
            try:
                if self.conn.poll(wait):
                    self.conn.recv_bytes()
                    self.ready = True
            except (EOFError, OSError):
                return False
        return self.ready

    def compile(self, item: dict[str, Any], index: int, cal: Calibration, level: int,
                timeout_s: float | None = None) -> tuple[QuantumCircuit, bool]:
        timeout_s = self.limits.timeout_s if timeout_s is None else timeout_s
        self.start()
        assert self.conn is not None
        conn = self.conn
        try:
            if not self.is_ready(wait=_START_TIMEOUT_S):
                raise EOFError("the sandbox did not start")
            key = cal.key
            header = {"item": item, "index": index, "level": level, "calibration_key": key,
                      "calibration": None if key in self.sent else cal.to_dict()}
            conn.send_bytes(json.dumps(header).encode())
            self.sent.put(key)
            if not conn.poll(timeout_s):
                self.stop()
                self.start()  # the replacement imports qiskit while the refusal goes out
                raise AdmissionError(
                    f"circuit {index} took more than {timeout_s:g} s to parse and compile "
                    "(qmio.qpu.admission.timeout_s); make it smaller or split it"
                )
            reply = conn.recv_bytes()
        except (EOFError, OSError) as exc:
            code = _exit_code(self.proc)
            self.stop()
            self.start()
            how = how_it_ended(code)
            raise AdmissionError(
                f"circuit {index} could not be compiled: the sandbox compiling it {how}, most likely "
                f"because it needs more than {self.limits.memory_mb} MB (qmio.qpu.admission.memory_mb)"
            ) from exc
        kind, payload = reply[:1], reply[1:]
        if kind == b"R":
            return qpy.load(io.BytesIO(payload[1:]))[0], payload[:1] == b"1"
        if kind == b"M":  # it forgot the calibration: send it again
            self.sent.clear()
            return self.compile(item, index, cal, level)
        raise AdmissionError(payload.decode("utf-8", "replace"))


def _exit_code(proc: Popen | None) -> int | None:
    """The code of a child whose pipe just closed: its exit may lag the close by a moment."""
    if proc is None:
        return None
    try:
        return proc.wait(timeout=2)
    except TimeoutExpired:
        return None


class CompileSandbox:
    """A pool of sandboxes, started with the service."""

    def __init__(self, seed: int, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._all = [_Sandbox(seed, limits) for _ in range(max(limits.workers, 1))]
        self._idle = list(self._all)
        self._changed = threading.Condition()
        self._stopped = threading.Event()

    def start(self) -> None:
        for box in self._all:
            box.start()

    def stop(self) -> None:
        self._stopped.set()
        for box in self._all:
            box.stop()

    def _take(self) -> _Sandbox:
        """An idle sandbox, one that has finished starting if there is one (a replacement for a
        killed sandbox takes seconds to import qiskit; the next circuit should not wait for it)."""
        with self._changed:
            while not self._idle:
                self._changed.wait()
            for box in self._idle:
                if box.is_ready():
                    break
            else:
                box = self._idle[0]
            self._idle.remove(box)
            return box

    @property
    def pids(self) -> list[int]:
        return [box.proc.pid for box in self._all if box.proc is not None and box.proc.poll() is None]

    def compile(self, item: dict[str, Any], index: int, cal: Calibration, level: int,
                timeout_s: float | None = None) -> tuple[QuantumCircuit, bool]:
        """The native circuit and whether it was transpiled; AdmissionError and the parser's and
        compiler's errors (as QmioError with their messages) when it is refused. ``timeout_s``:
        the deadline, by default the admission limit's."""
        box = self._take()
        try:
            return box.compile(item, index, cal, level, timeout_s)
        finally:
            with self._changed:
                self._idle.append(box)
                self._changed.notify()

    @property
    def busy(self) -> int:
        with self._changed:
            return len(self._all) - len(self._idle)


# ---- the child ------------------------------------------------------------------------------
def serve_sandbox(conn: Connection, seed: int, limits: AdmissionLimits) -> None:
    """The child's loop: one circuit at a time until the service closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the service, which stops us
    os.chdir(tempfile.mkdtemp(prefix="qmio-sandbox-"))  # nothing here for a relative path to find
    from qmio_lab.compilation import use_qiskit_plugins_only
    from qmio_lab.device import QmioDevice
    from qmio_lab.qpu.compiler import compile_item

    left_out = use_qiskit_plugins_only()
    if left_out:
        log.info("compiling with Qiskit's own transpiler plugins; not loading %s", ", ".join(left_out))

    calibrations: LRU[str, Calibration] = LRU(_CALIBRATIONS_KEPT)
    device: QmioDevice | None = None  # one is enough: its target() is built from the calibration given
    try:
        conn.send_bytes(b"ready")
    except OSError:
        return
    while True:
        try:
            header = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        index = header.get("index", 0)
        try:
            key = header["calibration_key"]
            if header["calibration"] is not None:
                calibrations.put(key, Calibration.from_dict(header["calibration"]))
            cal = calibrations.get(key)
            if cal is None:
                conn.send_bytes(b"M")
                continue
            device = device or QmioDevice(seed=seed, history=[cal])
            native, transpiled = compile_item(header["item"], index, device, cal, header["level"], limits)
            buffer = io.BytesIO()
            qpy.dump(native, buffer)
            reply = b"R" + (b"1" if transpiled else b"0") + buffer.getvalue()
        except QmioError as exc:
            reply = b"Q" + str(exc).encode("utf-8", "replace")
        except MemoryError:
            reply = b"Q" + (f"circuit {index} needs more than {limits.memory_mb} MB to parse and compile "
                            "(qmio.qpu.admission.memory_mb); make it smaller").encode()
        except RecursionError:
            reply = b"Q" + f"circuit {index} nests too deeply to parse; flatten it".encode()
        except Exception as exc:  # a parser or transpiler corner case: still the circuit's fault
            reply = b"Q" + f"circuit {index} could not be compiled: {type(exc).__name__}: {exc}"[:2000].encode(
                "utf-8", "replace")
        try:
            conn.send_bytes(reply)
        except OSError:
            return


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve_sandbox(Connection(int(sys.argv[1])), int(sys.argv[2]), AdmissionLimits(**json.loads(sys.argv[3])))
