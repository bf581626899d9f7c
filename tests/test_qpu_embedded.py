"""With no service configured, get_backend("qpu") starts one and other processes reuse it."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from qiskit import QuantumCircuit

import qmio_lab
from qmio_lab.qpu import launcher
from support.services import stop_local_service


@pytest.fixture
def lab_home(tmp_path, monkeypatch):
    monkeypatch.setenv("QMIO_LAB_HOME", str(tmp_path))
    monkeypatch.delenv("QMIO_QPU_URL", raising=False)
    monkeypatch.delenv("DASK_QMIO__QPU__URL", raising=False)
    launcher.reset_default_client()
    yield tmp_path
    launcher.reset_default_client()
    stop_local_service(tmp_path)


def test_embedded_service_started_on_demand_and_shared(lab_home):
    backend = qmio_lab.get_backend("qpu")
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    counts = backend.run(qc, shots=300).result(timeout=60).get_counts()
    assert sum(counts.values()) == 300

    disc = lab_home / "qpu" / "service.json"
    info = json.loads(disc.read_text())
    assert stat.S_IMODE(disc.stat().st_mode) == 0o600  # it holds a token
    assert (lab_home / "qpu" / "queue.sqlite").exists()
    assert backend.client.url == info["url"]

    other = subprocess.run(
        [sys.executable, "-c", "from qmio_lab.qpu import default_client; c = default_client(); "
                               "print(c.url); print(len(c.jobs()))"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "QMIO_LAB_HOME": str(lab_home)},
    )
    assert other.returncode == 0, other.stderr
    url, njobs = other.stdout.split()
    assert url == info["url"] and int(njobs) == 1  # same service, same queue


def test_configured_url_is_used_and_unreachable_is_explained(lab_home, monkeypatch):
    monkeypatch.setenv("QMIO_QPU_URL", "http://127.0.0.1:9")
    client = launcher.default_client()
    assert client.url == "http://127.0.0.1:9"
    with pytest.raises(qmio_lab.qpu.QPUServiceError, match="cannot reach the QPU service at http://127.0.0.1:9"):
        client.status()
    assert not (lab_home / "qpu" / "service.json").exists()  # nothing started behind the user's back


def test_unknown_target_is_named():
    with pytest.raises(ValueError, match="unknown target 'gpu'; choose one of qpu, emulator, simulator"):
        qmio_lab.get_backend("gpu")
