"""QMIO's own client (PyPI ``qmio`` 0.1.3), run as a user runs it: a Python process of its own
venv (``make qmio-client``), with ``ZMQ_SERVER`` set before the import, as its ``config`` demands.

``run_client(endpoint, calls)`` runs ``backend.run(**call)`` for each call in one client
session and returns each reply as the client got it (JSON-able: the real server's dicts).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

VENV = Path(__file__).resolve().parents[2] / ".venv-qmio-client"
PYTHON = VENV / "bin" / "python"

_SCRIPT = """
import json, sys
from qmio import QmioRuntimeService
calls = json.loads(sys.stdin.read())
replies = []
with QmioRuntimeService().backend(name="qpu") as backend:
    for call in calls:
        replies.append(backend.run(**call))
print(json.dumps(replies))
"""

_RAW_SCRIPT = """
import json, pickle, sys, zmq
from config import ZMQ_SERVER
messages = json.loads(sys.stdin.read())
ctx = zmq.Context()
sock = ctx.socket(zmq.REQ)
sock.setsockopt(zmq.LINGER, 0)
sock.setsockopt(zmq.RCVTIMEO, 60000)
sock.connect(ZMQ_SERVER)
replies = []
for hex_message in messages:
    sock.send(bytes.fromhex(hex_message))
    replies.append(pickle.loads(sock.recv()))
print(json.dumps(replies))
"""


def require_client() -> None:
    if not PYTHON.exists():
        if os.environ.get("CI") == "true":
            raise AssertionError(f"QMIO's client venv is missing at {VENV}: `make qmio-client` creates it")
        pytest.skip("QMIO's client venv is missing: run `make qmio-client`")


def _run(script: str, endpoint: str, payload: Any, timeout: float) -> list[Any]:
    require_client()
    out = subprocess.run([str(PYTHON), "-c", script], input=json.dumps(payload), capture_output=True, text=True,
                         env={"PATH": os.environ.get("PATH", ""), "ZMQ_SERVER": endpoint}, timeout=timeout,
                         preexec_fn=_cap_memory)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))


def run_client(endpoint: str, calls: list[dict[str, Any]], timeout: float = 180) -> list[dict[str, Any]]:
    """Each ``backend.run(**call)`` of the real client, in one session; the replies."""
    return _run(_SCRIPT, endpoint, calls, timeout)


def send_raw(endpoint: str, messages: list[bytes], timeout: float = 120) -> list[Any]:
    """Bytes sent as the client's REQ socket sends them (pickles, garbage); the unpickled replies
    (a reply that did not come within 60 s fails the call)."""
    return _run(_RAW_SCRIPT, endpoint, [m.hex() for m in messages], timeout)
