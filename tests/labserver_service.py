"""A real local QPU service for the lab tests, found and started the way kernels do it.

``default_client()`` starts ``qmio qpu serve`` detached under ``$QMIO_LAB_HOME`` (here a temp
dir); the lab server and any kernel reuse it through ``$QMIO_LAB_HOME/qpu/service.json``. The
process outlives its starter by design, so tests kill it by the pid in that file.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from circuits import BELL_QASM2 as BELL_QASM  # noqa: F401 - used by the handler tests
from service_process import stop_pid


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


