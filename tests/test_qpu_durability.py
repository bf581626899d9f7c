"""kill -9 of the service with a full queue loses nothing and runs nothing twice into the record."""
from __future__ import annotations

import sqlite3
import time

from qiskit import transpile

from qmio_lab.device import QmioDevice
from support.circuits import ghz
from support.services import ServiceProcess


def test_kill9_with_200_queued_jobs_then_restart(tmp_path):
    svc = ServiceProcess(tmp_path).start()
    alice, root = svc.client("alice"), svc.client("root")
    target = QmioDevice(seed=1).target()
    native = transpile(ghz(4), target=target, seed_transpiler=1)
    # one wide job (12 qubits: simulated shot by shot, seconds long) among the quick ones, so
    # the kill lands while a known job is running
    wide_native = transpile(ghz(12), target=target, seed_transpiler=1)
    root.set_maintenance(True)
    ids = [alice.submit(wide_native if i == 5 else native, shots=20000, name=f"k{i}")["id"] for i in range(200)]
    root.set_maintenance(False)
    deadline = time.monotonic() + 60
    while alice.job(ids[5])["state"] != "running":
        assert time.monotonic() < deadline, "the wide job never started"
        time.sleep(0.02)
    svc.kill9()
    with sqlite3.connect(svc.db) as db:
        states = dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        running = [r[0] for r in db.execute("SELECT id FROM jobs WHERE state = 'running'")]
    assert sum(states.values()) == 200 and states.get("queued", 0) > 0, states  # killed mid-queue
    assert running == [ids[5]], f"the wide job was not the one running at the kill: {states}"

    svc.start()
    alice = svc.client("alice")  # the restarted service listens on a new free port
    for jid in ids:
        assert alice.wait(jid, timeout=300)["state"] == "done"
    with sqlite3.connect(svc.db) as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM jobs").fetchone() == (200, 200)
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 200
        attempts = dict(db.execute("SELECT id, attempts FROM jobs").fetchall())
        assert db.execute("SELECT COUNT(*) FROM results WHERE job_id = ?", running).fetchone()[0] == 1
    # the job running at the kill was requeued and ran once more; every other job ran once
    assert attempts.pop(running[0]) == 2
    assert set(attempts.values()) == {1}
    assert alice.job(running[0])["state"] == "done" and sum(alice.result(running[0])["counts"][0].values()) == 20000
    assert all(sum(alice.result(jid)["counts"][0].values()) == 20000 for jid in ids[:5])
    svc.stop()
