"""The queue's SQLite store on a real file: job counts kept by triggers stay exact through every
transition and across a restart (they are what /status reports, without scanning every job)."""
from __future__ import annotations

import sqlite3

import dask.config

from qmio_lab.qpu.store import STATES, Store

ITEM = {"format": "qasm2", "data": "OPENQASM 2.0;"}


def truth(path) -> dict[str, int]:
    db = sqlite3.connect(str(path))
    try:
        counts = dict.fromkeys(STATES, 0)
        counts.update(dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()))
        return counts
    finally:
        db.close()


def test_counts_follow_every_transition_and_survive_a_restart(tmp_path):
    path = tmp_path / "q.sqlite"
    store = Store(path)
    ids = [store.add_job(user="alice", circuits=[ITEM], shots=10)["id"] for _ in range(6)]
    assert store.counts_by_state() == truth(path) == {**dict.fromkeys(STATES, 0), "queued": 6}
    claimed = store.claim(ids[0])
    assert claimed is not None and claimed["state"] == "running" and claimed["attempts"] == 1
    assert store.claim(ids[0]) is None  # no longer queued
    store.finish(ids[0], result_json='{"counts": []}', calibration_id="c")
    store.claim(ids[1])
    store.fail(ids[1], "bad", "c")
    assert store.cancel(ids[2]) and not store.cancel(ids[2])
    store.claim(ids[3])  # caught running by a crash ...
    assert store.counts_by_state() == truth(path)
    store.close()

    reopened = Store(path)  # ... and requeued at the next start
    assert reopened.counts_by_state() == truth(path)
    assert reopened.requeue_running(max_attempts=3) == (1, 0)
    counts = reopened.counts_by_state()
    assert counts == truth(path) == {"queued": 3, "running": 0, "done": 1, "failed": 1, "cancelled": 1}
    reopened.close()


def test_a_job_that_keeps_crashing_the_service_fails_after_max_attempts(tmp_path):
    store = Store(tmp_path / "q.sqlite")
    poison = store.add_job(user="alice", circuits=[ITEM], shots=10)["id"]
    for attempt in range(1, 4):  # the service dies while running it, three times
        assert store.claim(poison)["attempts"] == attempt
        requeued, failed = store.requeue_running(max_attempts=3)
        assert (requeued, failed) == ((1, 0) if attempt < 3 else (0, 1))
    job = store.job(poison)
    assert job["state"] == "failed" and "3 times" in job["error"] and "max_attempts" in job["error"]
    store.close()


def test_counts_are_rebuilt_from_the_jobs_at_start(tmp_path):
    path = tmp_path / "q.sqlite"
    store = Store(path)
    for _ in range(3):
        store.add_job(user="bob", circuits=[ITEM], shots=10)
    store.close()
    db = sqlite3.connect(str(path))  # counts gone wrong, e.g. a database from an older version
    db.execute("UPDATE job_counts SET n = 99")
    db.commit()
    db.close()
    assert Store(path).counts_by_state()["queued"] == 3


def test_recent_durations_are_the_latest_finished_jobs(tmp_path):
    store = Store(tmp_path / "q.sqlite")
    ids = [store.add_job(user="alice", circuits=[ITEM] * (i + 1), shots=10)["id"] for i in range(5)]
    for job_id in ids:
        store.claim(job_id)
        store.finish(job_id, result_json="{}", calibration_id="c")
    recent = store.recent_durations(limit=2)
    assert [n for _, n in recent] == [5, 4] and all(d >= 0 for d, _ in recent)


def test_the_head_of_the_queue_is_the_first_of_the_whole_order(tmp_path):
    """The executor reads only the head (LIMIT 1, or the reservation holder's head): it must be
    the job the full order puts first, for every mix of priorities and users."""
    store = Store(tmp_path / "q.sqlite")
    for i, (user, priority) in enumerate([("alice", 0), ("alice", 0), ("bob", 0), ("carol", 2),
                                          ("bob", 1), ("alice", 2), ("bob", 0)]):
        store.add_job(user=user, circuits=[ITEM], shots=10, priority=priority, name=f"j{i}")
    while True:
        order = store.queue_order()
        if not order:
            assert store.queue_order(limit=1) == []
            break
        assert store.queue_order(limit=1) == order[:1]
        for user in ("alice", "bob", "carol"):
            assert store.queue_order(user=user, limit=1) == [j for j in order if j["user"] == user][:1]
        assert store.claim(order[0]["id"]) is not None  # serving a user changes the turns
    store.close()


def test_fair_share_switch_orders_by_priority_then_submission_when_off(tmp_path):
    """qmio.qpu.fair_share (read when the store opens): on, users take turns and priority orders
    only a user's own jobs; off, the queue is plain priority + submission order."""
    def order(store: Store) -> list[str]:
        for _ in range(3):
            store.add_job(user="alice", circuits=[ITEM], shots=10, name="a")
        store.add_job(user="bob", circuits=[ITEM], shots=10, name="b")
        store.add_job(user="alice", circuits=[ITEM], shots=10, priority=1, name="urgent")
        names = [job["name"] for job in store.queue_order()]
        store.close()
        return names

    with dask.config.set({"qmio.qpu.fair_share": False}):
        fifo = Store(tmp_path / "fifo.sqlite")
    assert not fifo.fair_share and order(fifo) == ["urgent", "a", "a", "a", "b"]
    with dask.config.set({"qmio.qpu.fair_share": "false"}):  # as DASK_QMIO__QPU__FAIR_SHARE=false arrives
        env = Store(tmp_path / "env.sqlite")
    assert not env.fair_share
    env.close()
    fair = Store(tmp_path / "fair.sqlite")  # the packaged default
    # neither has used the QPU: alice joined the queue first, so her turn (her urgent job) comes first
    assert fair.fair_share and order(fair) == ["urgent", "b", "a", "a", "a"]


def test_priority_orders_a_users_own_jobs_and_only_a_boost_jumps_others(tmp_path):
    store = Store(tmp_path / "q.sqlite")
    for i in range(50):
        store.add_job(user="bob", circuits=[ITEM], shots=10, priority=10, name=f"bob{i}")
    store.add_job(user="alice", circuits=[ITEM], shots=10, name="alice")
    names = [job["name"] for job in store.queue_order()]
    assert names.index("alice") <= 1  # bob's priority 10 jumps nobody
    ops = store.add_job(user="carol", circuits=[ITEM], shots=10, name="ops")
    assert store.set_boost(ops["id"], 3) and store.queue_order(limit=1)[0]["name"] == "ops"
    store.claim(ops["id"])
    assert not store.set_boost(ops["id"], 5)  # running: too late
    store.close()


def test_a_store_from_before_boosts_gains_the_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the jobs table as it was
        db.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, user TEXT NOT NULL, "
                   "name TEXT, state TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0, shots INTEGER NOT NULL, "
                   "num_circuits INTEGER NOT NULL, optimization_level INTEGER NOT NULL DEFAULT 1, circuits TEXT NOT NULL, "
                   "created_at REAL NOT NULL, started_at REAL, finished_at REAL, attempts INTEGER NOT NULL DEFAULT 0, "
                   "calibration_id TEXT, error TEXT, slurm_job_id TEXT)")
        db.execute("INSERT INTO jobs (id, user, state, shots, num_circuits, circuits, created_at) "
                   "VALUES ('old', 'alice', 'queued', 10, 1, '[]', 0)")
    store = Store(path)
    assert store.job("old")["boost"] == 0 and [j["id"] for j in store.queue_order()] == ["old"]
    store.close()


def test_state_is_readable_by_its_owner_only(tmp_path):
    """Circuits and results of every user live in this file: other local users must not read it,
    whatever the umask."""
    import os

    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "state" / "queue.sqlite")
        store.add_job(user="alice", circuits=[ITEM], shots=10)
        modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "state").iterdir()}
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
        assert modes and all(mode == 0o600 for mode in modes.values()), modes
        store.close()
    finally:
        os.umask(old)


def test_next_job_is_the_head_of_the_order_while_usage_changes_the_turns(tmp_path):
    """The QPU thread asks next_job (a few indexed reads); queue positions come from
    queue_order (the whole order): both must name the same job as QPU time is charged."""
    import random

    from qmio_lab.device.timing import JobTime

    rng = random.Random(17)
    store = Store(tmp_path / "q.sqlite")
    store.time_scale = 1e4  # each job's few real microseconds become seconds of charged QPU time
    for i in range(120):
        hold = rng.choice((1.0, 3.0, 11.0))
        store.add_job(user=rng.choice(("alice", "bob", "carol", "dave")), circuits=[ITEM], shots=10,
                      priority=rng.choice((0, 0, 1)), name=f"j{i}",
                      estimate=JobTime(simulation_s=1e-3, hardware_s=hold, exact=True, mode="hardware"))
    served = []
    while (head := store.next_job()) is not None:
        assert store.queue_order(limit=1)[0]["id"] == head["id"]
        assert store.next_job(head["user"])["id"] == store.queue_order(user=head["user"], limit=1)[0]["id"]
        store.claim(head["id"])
        _, qpu_s = store.finish(head["id"], result_json="{}", calibration_id="c")
        assert qpu_s is not None and qpu_s > 0
        served.append(head["user"])
    assert len(served) == 120 and served[:4] != [served[0]] * 4  # users took turns
    store.close()
