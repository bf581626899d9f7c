"""Finding the QPU service, or starting one on this machine when none is configured.

Order: ``qmio.qpu.url`` (config or ``DASK_QMIO__QPU__URL``; ``QMIO_QPU_URL``/``QMIO_QPU_TOKEN`` as
JupyterHub sets them), then the discovery file of a service this user already started, then a
new service process, which outlives the kernel so other notebooks share its queue.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from qmio_lab import config
from qmio_lab.errors import QPUServiceError, QPUUnreachableError
from qmio_lab.qpu.client import QPUClient

_START_TIMEOUT_S = 60.0
_client: QPUClient | None = None


def service_dir() -> Path:
    return config.lab_home() / "qpu"


def discovery_file() -> Path:
    return service_dir() / "service.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _from_discovery(path: Path) -> QPUClient | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(int(info.get("pid", 0))):
        return None
    client = QPUClient(info["url"], info.get("token"), timeout=10)
    try:
        client.status()
    except QPUServiceError:
        return None
    client.timeout = 60.0
    return client


def start_local_service(directory: Path | None = None) -> QPUClient:
    """Start ``qmio qpu serve`` detached, with its state under ``directory``; reuse a live one."""
    directory = config.private_dir(directory or service_dir())
    disc = directory / "service.json"
    with open(directory / "launch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two kernels starting at once get one service
        client = _from_discovery(disc)
        if client is not None:
            return client
        disc.unlink(missing_ok=True)
        log = config.private_file(directory / "service.log")
        proc = subprocess.Popen(
            [sys.executable, "-m", "qmio_lab.cli", "qpu", "serve", "--port", "0",
             "--db", str(directory / "queue.sqlite"), "--discovery", str(disc)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise QPUUnreachableError(
                    f"the local QPU service exited with code {proc.returncode}; "
                    f"see {directory / 'service.log'}"
                )
            client = _from_discovery(disc)
            if client is not None:
                return client
            time.sleep(0.1)
        proc.kill()
        raise QPUUnreachableError(f"the local QPU service did not start within {_START_TIMEOUT_S:.0f} s; "
                                  f"see {directory / 'service.log'}")


def default_client() -> QPUClient:
    """The client every front end shares (one connection pool per process)."""
    global _client
    if _client is not None:
        return _client
    url = os.environ.get("QMIO_QPU_URL") or config.get("qpu.url")
    if url:
        # inside a JupyterHub user server the server's own Hub token identifies the user
        token = os.environ.get("QMIO_QPU_TOKEN") or config.get("qpu.token") or os.environ.get("JUPYTERHUB_API_TOKEN")
        _client = QPUClient(url, token)
    else:
        _client = start_local_service()
    return _client


def reset_default_client() -> None:
    global _client
    _client = None
