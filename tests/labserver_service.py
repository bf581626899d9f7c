"""A real local QPU service for the lab tests, found and started the way kernels do it.

``default_client()`` starts ``qmio qpu serve`` detached under ``$QMIO_LAB_HOME`` (here a temp
dir); the lab server and any kernel reuse it through ``$QMIO_LAB_HOME/qpu/service.json``. The
process outlives its starter by design, so tests kill it by the pid in that file.
"""
from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

BELL_QASM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0],q[1];
measure q -> c;
"""


@contextmanager
def local_service(home: Path) -> Iterator[dict]:
    """Start the local service with ``QMIO_LAB_HOME=home``; yields its discovery record."""
    from qmio_lab.qpu import launcher

    old = os.environ.get("QMIO_LAB_HOME")
    os.environ["QMIO_LAB_HOME"] = str(home)
    for var in ("QMIO_QPU_URL", "QMIO_QPU_TOKEN"):
        os.environ.pop(var, None)
    launcher.reset_default_client()
    info: dict = {}
    try:
        launcher.default_client()
        info = json.loads(launcher.discovery_file().read_text())
        yield info
    finally:
        launcher.reset_default_client()
        if info.get("pid"):
            stop_pid(int(info["pid"]))
        if old is None:
            os.environ.pop("QMIO_LAB_HOME", None)
        else:
            os.environ["QMIO_LAB_HOME"] = old


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
