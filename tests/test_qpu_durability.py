"""kill -9 of the service with a full queue loses nothing and runs nothing twice into the record."""
from __future__ import annotations

import sqlite3
import time

from qiskit import QuantumCircuit, transpile

from qmio_lab.device import QmioDevice
from service_process import ServiceProcess


def test_kill9_with_200_queued_jobs_then_restart(tmp_path):
    svc = ServiceProcess(tmp_path).start()
    alice, root = svc.client("alice"), svc.client("root")
    qc = QuantumCircuit(4)
    qc.h(0)
    for i in range(3):
        qc.cx(i, i + 1)
    qc.measure_all()
    native = transpile(qc, target=QmioDevice(seed=1).target(), seed_transpiler=1)
    root.set_maintenance(True)
    ids = [alice.submit(native, shots=20000, name=f"k{i}")["id"] for i in range(200)]
    root.set_maintenance(False)
    deadline = time.monotonic() + 60
    while alice.status()["jobs"]["done"] < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    svc.kill9()
    with sqlite3.connect(svc.db) as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
    assert sum(states.values()) == 200 and states.get("queued", 0) > 0, states  # killed mid-queue

    svc.start()
    alice = svc.client("alice")  # the restarted service listens on a new free port
    for jid in ids:
        assert alice.wait(jid, timeout=300)["state"] == "done"
    with sqlite3.connect(svc.db) as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM jobs").fetchone() == (200, 200)
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 200
        assert db.execute("SELECT MAX(attempts) FROM jobs").fetchone()[0] <= 2
    assert all(sum(alice.result(jid)["counts"][0].values()) == 20000 for jid in ids[:5])
    svc.stop()
