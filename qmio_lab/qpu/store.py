"""Durable queue state in one SQLite file (WAL).

A job is committed before its submitter hears "accepted", and a job's result and its ``done``
state are written in one transaction, so ``kill -9`` at any moment loses nothing and runs
nothing twice into the record.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qmio_lab import config
from qmio_lab.device.calibration import Calibration
from qmio_lab.lru import LRU
from qmio_lab.qpu import fair_share
from qmio_lab.qpu.circuits import expanded_count

if TYPE_CHECKING:
    from qmio_lab.device.timing import JobTime

TERMINAL_STATES = ("done", "failed", "cancelled")
_RECENT_RESULTS = 256
_IDLE_CHECK_EVERY_S = 1.0  # how often a reservation is checked for idleness
STATES = ("queued", "running", *TERMINAL_STATES)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    user TEXT NOT NULL,
    name TEXT,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    boost INTEGER NOT NULL DEFAULT 0,
    shots INTEGER NOT NULL,
    num_circuits INTEGER NOT NULL,
    optimization_level INTEGER NOT NULL DEFAULT 1,
    circuits TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    calibration_id TEXT,
    error TEXT,
    slurm_job_id TEXT,
    estimated_qpu_s REAL,
    estimated_hardware_s REAL,
    memory INTEGER NOT NULL DEFAULT 0,
    seed INTEGER,
    account TEXT,
    repetition_period REAL,
    estimated_hold_s REAL,
    qpu_s REAL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(state, priority DESC, seq);  -- the queue's own order
CREATE INDEX IF NOT EXISTS jobs_user ON jobs(user, seq);
CREATE TABLE IF NOT EXISTS results (job_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calibrations (id TEXT PRIMARY KEY, taken_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fair_share (
    user TEXT PRIMARY KEY,
    last_started REAL NOT NULL,
    usage_s REAL NOT NULL DEFAULT 0,  -- consumed QPU seconds, decayed to usage_at
    usage_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    closed_at REAL,
    account TEXT,
    charged_s REAL  -- once it has ended: the QPU seconds it held beyond its jobs' own
);
-- users with queued jobs: how many, and the seq of the job with which they joined the queue (the tie-break)
CREATE TABLE IF NOT EXISTS queued_users (user TEXT PRIMARY KEY, n INTEGER NOT NULL, since INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at);
CREATE TABLE IF NOT EXISTS job_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS job_counts_insert AFTER INSERT ON jobs BEGIN
    UPDATE job_counts SET n = n + 1 WHERE state = NEW.state;
END;
CREATE TRIGGER IF NOT EXISTS job_counts_update AFTER UPDATE OF state ON jobs WHEN OLD.state <> NEW.state BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
    UPDATE job_counts SET n = n + 1 WHERE state = NEW.state;
END;
CREATE TRIGGER IF NOT EXISTS job_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE state = OLD.state;
END;
CREATE TRIGGER IF NOT EXISTS queued_users_insert AFTER INSERT ON jobs WHEN NEW.state = 'queued' BEGIN
    INSERT INTO queued_users (user, n, since) VALUES (NEW.user, 1, NEW.seq)
        ON CONFLICT(user) DO UPDATE SET since = CASE WHEN n <= 0 THEN excluded.since ELSE since END, n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS queued_users_leave AFTER UPDATE OF state ON jobs
    WHEN OLD.state = 'queued' AND NEW.state <> 'queued' BEGIN
    UPDATE queued_users SET n = n - 1 WHERE user = OLD.user;
END;
CREATE TRIGGER IF NOT EXISTS queued_users_return AFTER UPDATE OF state ON jobs
    WHEN OLD.state <> 'queued' AND NEW.state = 'queued' BEGIN
    INSERT INTO queued_users (user, n, since) VALUES (NEW.user, 1, NEW.seq)
        ON CONFLICT(user) DO UPDATE SET since = CASE WHEN n <= 0 THEN excluded.since ELSE since END, n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS queued_users_delete AFTER DELETE ON jobs WHEN OLD.state = 'queued' BEGIN
    UPDATE queued_users SET n = n - 1 WHERE user = OLD.user;
END;
"""
#: indexes on columns added after the first release: created once those columns exist
_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_user_queue ON jobs(user, state, priority DESC, seq);
DROP INDEX IF EXISTS jobs_state;  -- files from before: (state, priority, seq) could not serve priority DESC
CREATE INDEX IF NOT EXISTS jobs_boosted ON jobs(boost DESC, priority DESC, seq) WHERE state = 'queued' AND boost > 0;
CREATE INDEX IF NOT EXISTS jobs_account ON jobs(account, finished_at);
"""

_JOB_COLUMNS = (
    "seq, id, user, name, state, priority, boost, shots, num_circuits, optimization_level, created_at, "
    "started_at, finished_at, attempts, calibration_id, error, slurm_job_id, estimated_qpu_s, "
    "estimated_hardware_s, memory, seed, account, repetition_period, estimated_hold_s, qpu_s"
)
_QUEUE_COLUMNS = "id, user, name, priority, boost, num_circuits, shots, seq, estimated_hold_s"
#: columns added after the first release, with their types: added to older files at start-up
_ADDED_COLUMNS = {"jobs": {"boost": "INTEGER NOT NULL DEFAULT 0", "estimated_qpu_s": "REAL",
                           "estimated_hardware_s": "REAL", "memory": "INTEGER NOT NULL DEFAULT 0", "seed": "INTEGER",
                           "account": "TEXT", "repetition_period": "REAL", "estimated_hold_s": "REAL", "qpu_s": "REAL"},
                  "fair_share": {"usage_s": "REAL NOT NULL DEFAULT 0", "usage_at": "REAL NOT NULL DEFAULT 0"},
                  "sessions": {"account": "TEXT", "charged_s": "REAL"}}
#: results longer than this (characters) are not kept in memory besides the database: per-shot
#: memory makes a result up to tens of MB, and 256 of those would hold gigabytes
_RECENT_RESULT_MAX_CHARS = 1 << 20


class Store:
    """All reads and writes of the queue service's state. Thread-safe."""

    def __init__(self, path: str | Path, *, fair_share: bool | None = None) -> None:
        self.path = Path(path)
        # read once: the order must not change under a running service; None = qmio.qpu.fair_share
        self.fair_share = as_flag(config.get("qpu.fair_share") if fair_share is None else fair_share)
        config.private_dir(self.path.parent)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # SQLite's WAL files take its mode
        if self.path.stat().st_uid == os.getuid():
            self.path.chmod(0o600)
        self._local = threading.local()
        self._conn_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._recent_results: LRU[str, str] = LRU(_RECENT_RESULTS, lock=True)
        self.version = 0  # bumped on every queue change; lets readers cache the queue order
        # device seconds per real second (the service sets its clock's): QPU time is device time
        self.time_scale = 1.0
        self.half_life_s = float(config.get("qpu.fair_share_half_life_s", 604800))
        idle = config.get("qpu.session_idle_s", None)
        self.session_idle_s = float(idle) if idle else None
        self._idle_checked: dict[str, float] = {}
        self._settled_at = 0.0
        db = self._conn()
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        for table, columns in _ADDED_COLUMNS.items():
            present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
            for column, kind in columns.items():
                if column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        db.executescript(_INDEXES)
        self._recount()

    def _recount(self) -> None:
        """Count jobs by state once at start-up; triggers keep the counts exact from then on, so
        /status stays cheap however many jobs the service has run."""
        with self._tx() as db:
            db.execute("DELETE FROM job_counts")
            db.executemany("INSERT INTO job_counts (state, n) VALUES (?, 0)", [(s,) for s in STATES])
            db.execute("UPDATE job_counts SET n = (SELECT COUNT(*) FROM jobs WHERE jobs.state = job_counts.state)")
            db.execute("DELETE FROM queued_users")
            db.execute("INSERT INTO queued_users (user, n, since) SELECT user, COUNT(*), MIN(seq) FROM jobs "
                       "WHERE state = 'queued' "
                       "GROUP BY user")

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection: in WAL mode readers never wait for the writer, so the HTTP
        loop's reads do not hold up the QPU thread (one shared connection made them queue)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            db.execute("PRAGMA busy_timeout=10000")
            self._local.db = db
            with self._conn_lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")  # SQLite serialises writers; busy_timeout waits a turn
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self.version += 1

    def close(self) -> None:
        with self._conn_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()

    # ---- jobs ---------------------------------------------------------------------------
    def add_job(
        self, *, user: str, circuits: list[dict[str, Any]], shots: int, name: str | None = None,
        priority: int = 0, optimization_level: int = 1, slurm_job_id: str | None = None, boost: int = 0,
        estimate: JobTime | None = None, memory: bool = False, seed: int | None = None,
        account: str | None = None, repetition_period: float | None = None,
    ) -> dict[str, Any]:
        """Queue a job; ``memory`` (per-shot outcomes in its result), ``seed`` (None: fresh
        randomness) and ``repetition_period`` (None: the default) are kept with it, so a job
        requeued after a crash runs as it was asked. ``account`` is charged for its QPU time."""
        job_id = uuid.uuid4().hex
        with self._tx() as db:
            rows = db.execute(
                "INSERT INTO jobs (id, user, name, state, priority, boost, shots, num_circuits, "
                "optimization_level, circuits, created_at, slurm_job_id, estimated_qpu_s, estimated_hardware_s, "
                "memory, seed, account, repetition_period, estimated_hold_s) "
                f"VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_JOB_COLUMNS}",
                (job_id, user, name, priority, boost, shots, sum(expanded_count(c) for c in circuits),
                 optimization_level, json.dumps(circuits), time.time(), slurm_job_id,
                 estimate and estimate.simulation_s, estimate and estimate.hardware_s, int(bool(memory)), seed,
                 account or user, repetition_period, estimate and estimate.hold_s),
            ).fetchall()
        return _job(rows[0])

    def job(self, job_id: str) -> dict[str, Any] | None:
        row = self._conn().execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def job_circuits(self, job_id: str) -> list[dict[str, Any]]:
        row = self._conn().execute("SELECT circuits FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row["circuits"]) if row else []

    def jobs(
        self, user: str | None = None, states: tuple[str, ...] | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first; ``user=None`` means every user's (admins)."""
        where, args = [], []
        if user is not None:
            where.append("user = ?")
            args.append(user)
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        return [_job(r) for r in self._conn().execute(sql, (*args, limit))]

    def queue_order(self, *, user: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Queued jobs in the order they will run (only ``user``'s, and the first ``limit``, if given),
        by the rule of :mod:`qmio_lab.qpu.fair_share`. With ``qmio.qpu.fair_share`` false there are
        no turns: boost, priority, then submission order (the benchmark switches it off to show
        what fair share is worth). The QPU thread asks :meth:`next_job` for the head alone.
        """
        db = self._conn()
        if not self.fair_share:
            sql = (f"SELECT {_QUEUE_COLUMNS} FROM jobs WHERE state = 'queued'"
                   f"{' AND user = :user' if user is not None else ''} ORDER BY boost DESC, priority DESC, seq"
                   f"{' LIMIT :limit' if limit is not None else ''}")
            return [dict(r) for r in db.execute(sql, {"user": user, "limit": limit})]
        rows = [dict(r) for r in db.execute(
            f"SELECT {_QUEUE_COLUMNS} FROM jobs WHERE state = 'queued' ORDER BY priority DESC, seq")]
        order = fair_share.run_order(rows, self._queued_standings(), time.time())
        if user is not None:
            order = [r for r in order if r["user"] == user]
        return order[:limit] if limit is not None else order

    def next_job(self, user: str | None = None) -> dict[str, Any] | None:
        """The head of :meth:`queue_order` (of ``user``'s jobs, if given), read without ordering
        the whole queue: a boosted job, else the top job of the user with the fewest recent QPU
        seconds. With 10,000 jobs queued this costs a few indexed reads, not a sort."""
        db = self._conn()
        by_user, args = (" AND user = ?", (user,)) if user is not None else ("", ())
        row = db.execute(f"SELECT {_QUEUE_COLUMNS} FROM jobs INDEXED BY jobs_boosted WHERE state = 'queued' "
                         f"AND boost > 0{by_user} ORDER BY boost DESC, priority DESC, seq LIMIT 1", args).fetchone()
        if row is not None:
            return dict(row)
        if self.fair_share and user is None:  # whose turn it is; then that user's own order
            user = fair_share.next_user(self._queued_standings())
            if user is None:
                return None
            by_user, args = " AND user = ?", (user,)
        row = db.execute(f"SELECT {_QUEUE_COLUMNS} FROM jobs WHERE state = 'queued'{by_user} "
                         "ORDER BY priority DESC, seq LIMIT 1", args).fetchone()
        return dict(row) if row else None

    def _queued_standings(self) -> dict[str, fair_share.Standing]:
        """Each user with queued jobs: (recent QPU seconds decayed to now, when last served, the
        seq they joined the queue with); the lowest goes next. One read: queued_users is kept by
        triggers and fair_share is keyed by user."""
        now = time.time()
        return {r["user"]: (self._decayed(r["usage_s"] or 0.0, r["usage_at"] or 0.0, now), r["last_started"] or 0.0,
                            r["since"]) for r in self._conn().execute(
            "SELECT q.user, q.since, f.usage_s, f.usage_at, f.last_started FROM queued_users q "
            "LEFT JOIN fair_share f ON f.user = q.user WHERE q.n > 0")}

    def _decayed(self, usage_s: float, at: float, now: float) -> float:
        return fair_share.decayed(usage_s, at, now, time_scale=self.time_scale, half_life_s=self.half_life_s)

    def _charge(self, db: sqlite3.Connection, user: str, seconds: float, now: float) -> None:
        """Add ``seconds`` of QPU time to ``user``'s fair-share usage (decaying what was there)."""
        row = db.execute("SELECT usage_s, usage_at FROM fair_share WHERE user = ?", (user,)).fetchone()
        usage = seconds + (self._decayed(row["usage_s"], row["usage_at"], now) if row else 0.0)
        db.execute("INSERT INTO fair_share (user, last_started, usage_s, usage_at) VALUES (?, 0, ?, ?) "
                   "ON CONFLICT(user) DO UPDATE SET usage_s = excluded.usage_s, usage_at = excluded.usage_at",
                   (user, usage, now))

    def set_boost(self, job_id: str, boost: int) -> bool:
        """An admin's grant: the job goes ahead of every job with a lower boost. False unless queued."""
        with self._tx() as db:
            return db.execute("UPDATE jobs SET boost = ? WHERE id = ? AND state = 'queued'",
                              (boost, job_id)).rowcount == 1

    def claim(self, job_id: str) -> dict[str, Any] | None:
        """Move a queued job to running and return it as it now is; None if it was cancelled meanwhile."""
        now = time.time()
        with self._tx() as db:
            rows = db.execute(
                "UPDATE jobs SET state = 'running', started_at = ?, attempts = attempts + 1 "
                f"WHERE id = ? AND state = 'queued' RETURNING {_JOB_COLUMNS}", (now, job_id),
            ).fetchall()
            if not rows:
                return None
            db.execute(
                "INSERT INTO fair_share (user, last_started) VALUES (?, ?) "
                "ON CONFLICT(user) DO UPDATE SET last_started = excluded.last_started", (rows[0]["user"], now),
            )
        return _job(rows[0])

    def finish(self, job_id: str, *, result_json: str, calibration_id: str) -> tuple[float, float | None]:
        """Store the result (JSON text) and mark the job done in one transaction; returns the
        time it finished and the QPU seconds it held (device time from its start to now),
        which are charged to its user's fair share in the same transaction."""
        body = result_json
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO results (job_id, body) VALUES (?, ?)", (job_id, body))
            qpu_s = self._end(db, job_id, now, "UPDATE jobs SET state = 'done', finished_at = ?, calibration_id = ?, "
                              "error = NULL", (calibration_id,))
        if len(body) <= _RECENT_RESULT_MAX_CHARS:  # the waiting client asks for it at once: keep it at hand
            self._recent_results.put(job_id, body)
        return now, qpu_s

    def fail(self, job_id: str, error: str, calibration_id: str | None = None, *,
             state: str = "failed") -> tuple[float, float | None]:
        """End a running job without a result: ``failed``, or ``cancelled`` when stopped on
        request. Like :meth:`finish`, returns when, and the QPU seconds it held (charged)."""
        now = time.time()
        with self._tx() as db:
            qpu_s = self._end(db, job_id, now, "UPDATE jobs SET state = ?, finished_at = ?, error = ?, calibration_id = ?",
                              (error, calibration_id), state=state)
        return now, qpu_s

    def _end(self, db: sqlite3.Connection, job_id: str, now: float, update: str, values: tuple,
             state: str | None = None) -> float | None:
        lead = (state, now) if state is not None else (now,)
        row = db.execute(
            f"{update}, qpu_s = MAX(? - started_at, 0) * ? WHERE id = ? AND state = 'running' RETURNING user, qpu_s",
            (*lead, *values, now, self.time_scale, job_id),
        ).fetchone()
        if row is None or row["qpu_s"] is None:
            return None
        self._charge(db, row["user"], row["qpu_s"], now)
        return row["qpu_s"]

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job; False when it is no longer queued."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state = 'queued'",
                (time.time(), job_id),
            )
        return cur.rowcount == 1

    def requeue_running(self, max_attempts: int) -> tuple[int, int]:
        """After a crash: jobs caught running go back to the queue (their seq keeps their turn),
        unless they have been running at ``max_attempts`` crashes already: such a job may be
        what brings the service down, so it fails instead. Returns (requeued, failed)."""
        with self._tx() as db:
            failed = db.execute(
                "UPDATE jobs SET state = 'failed', finished_at = ?, error = ? WHERE state = 'running' AND attempts >= ?",
                (time.time(), f"the service stopped while running this job {max_attempts} times; it is not "
                              "tried again (qmio.qpu.max_attempts). If it is large, split it.", max_attempts),
            ).rowcount
            requeued = db.execute("UPDATE jobs SET state = 'queued', started_at = NULL WHERE state = 'running'").rowcount
        return requeued, failed

    def result_json(self, job_id: str) -> str | None:
        """The stored result as JSON text, ready to send (recent ones without a database read)."""
        body = self._recent_results.get(job_id)
        if body is not None:
            return body
        row = self._conn().execute("SELECT body FROM results WHERE job_id = ?", (job_id,)).fetchone()
        return row["body"] if row else None

    def result(self, job_id: str) -> dict[str, Any] | None:
        body = self.result_json(job_id)
        return json.loads(body) if body is not None else None

    def counts_by_state(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT state, n FROM job_counts").fetchall()
        out = dict.fromkeys(STATES, 0)
        out.update({r["state"]: r["n"] for r in rows})
        return out

    def recent_durations(self, limit: int = 50) -> list[tuple[float, int]]:
        """(seconds, circuits) of the latest finished jobs, for ETAs."""
        rows = self._conn().execute(
            "SELECT finished_at - started_at AS d, num_circuits FROM jobs "
            # unary + keeps SQLite off the state index: walking finished_at backwards stops after
            # `limit` rows, where filtering by state first would sort every job ever done
            "WHERE +state = 'done' AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?", (limit,),
        ).fetchall()
        return [(r["d"], r["num_circuits"]) for r in rows]

    # ---- sessions (exclusive reservations) ------------------------------------------------
    def active_session(self) -> dict[str, Any] | None:
        """The reservation holding the QPU now, if any (at most one at a time). One whose holder
        has had nothing queued or running for ``session_idle_s`` is closed here: an idle holder
        must not keep everybody else waiting until it expires."""
        now = time.time()
        if now - self._settled_at > _IDLE_CHECK_EVERY_S:
            self._settled_at = now
            self.settle_sessions()
        db = self._conn()
        row = db.execute(
            "SELECT * FROM sessions WHERE closed_at IS NULL AND expires_at > ? ORDER BY created_at LIMIT 1", (now,),
        ).fetchone()
        if row is None or self.session_idle_s is None:
            return dict(row) if row else None
        if now - self._idle_checked.get(row["id"], 0.0) < _IDLE_CHECK_EVERY_S:
            return dict(row)  # called for every job claimed: look at the holder's jobs only now and then
        self._idle_checked = {row["id"]: now}
        busy, last_end = db.execute(
            "SELECT SUM(state IN ('queued', 'running')), MAX(finished_at) FROM jobs WHERE user = ? AND created_at >= ?",
            (row["user"], row["created_at"]),
        ).fetchone()
        if not busy and now - max(row["created_at"], last_end or 0) > self.session_idle_s:
            with self._tx() as tx:
                tx.execute("UPDATE sessions SET closed_at = ? WHERE id = ? AND closed_at IS NULL", (now, row["id"]))
            return None
        return dict(row)

    def reserved_seconds(self, user: str, since: float) -> float:
        """Seconds ``user`` has held (or still holds, up to now) reservations opened since ``since``."""
        now = time.time()
        (total,) = self._conn().execute(
            "SELECT COALESCE(SUM(MIN(COALESCE(closed_at, expires_at), ?) - created_at), 0) "
            "FROM sessions WHERE user = ? AND created_at >= ?", (now, user, since),
        ).fetchone()
        return float(total)

    def last_session_end(self, user: str) -> float | None:
        (end,) = self._conn().execute(
            "SELECT MAX(COALESCE(closed_at, expires_at)) FROM sessions WHERE user = ?", (user,),
        ).fetchone()
        return end

    def settle_sessions(self) -> None:
        """Charge each reservation that has ended for the QPU time it held beyond its holder's
        jobs in it (those are charged as they end): holding the QPU idle costs as much as using it."""
        now = time.time()
        ended = self._conn().execute(
            "SELECT * FROM sessions WHERE charged_s IS NULL AND (closed_at IS NOT NULL OR expires_at <= ?)", (now,),
        ).fetchall()
        if not ended:
            return
        with self._tx() as db:
            for row in ended:
                end = min(row["closed_at"] or row["expires_at"], row["expires_at"])
                held = max(end - row["created_at"], 0.0) * self.time_scale
                (jobs_s,) = db.execute(
                    "SELECT COALESCE(SUM(qpu_s), 0) FROM jobs WHERE user = ? AND started_at >= ? AND started_at < ?",
                    (row["user"], row["created_at"], end)).fetchone()
                idle = max(held - jobs_s, 0.0)
                if db.execute("UPDATE sessions SET charged_s = ? WHERE id = ? AND charged_s IS NULL",
                              (idle, row["id"])).rowcount:
                    self._charge(db, row["user"], idle, now)

    # ---- accounting -------------------------------------------------------------------------
    def usage_rows(self, since: float, user: str | None = None) -> list[dict[str, Any]]:
        """QPU seconds per UTC day, user and account of the work that ended since ``since``:
        jobs (as many as ran) and reservations (the seconds they held beyond their jobs)."""
        by_user, args = (" AND user = ?", (user,)) if user is not None else ("", ())
        db = self._conn()
        rows: dict[tuple, dict[str, Any]] = {}
        for r in db.execute(
            "SELECT date(finished_at, 'unixepoch') AS day, user, COALESCE(account, user) AS account, COUNT(*) AS n, "
            f"SUM(qpu_s) AS s FROM jobs WHERE finished_at >= ? AND qpu_s IS NOT NULL{by_user} "
            "GROUP BY day, user, COALESCE(account, user)", (since, *args)):
            rows[(r["day"], r["user"], r["account"])] = {
                "day": r["day"], "user": r["user"], "account": r["account"], "jobs": r["n"],
                "qpu_seconds": r["s"] or 0.0, "reserved_s": 0.0}
        for r in db.execute(
            "SELECT date(MIN(COALESCE(closed_at, expires_at), expires_at), 'unixepoch') AS day, user, "
            "COALESCE(account, user) AS account, SUM(charged_s) AS s FROM sessions WHERE charged_s IS NOT NULL "
            f"AND MIN(COALESCE(closed_at, expires_at), expires_at) >= ?{by_user} "
            "GROUP BY day, user, COALESCE(account, user)", (since, *args)):
            row = rows.setdefault((r["day"], r["user"], r["account"]), {
                "day": r["day"], "user": r["user"], "account": r["account"], "jobs": 0,
                "qpu_seconds": 0.0, "reserved_s": 0.0})
            row["qpu_seconds"] += r["s"] or 0.0
            row["reserved_s"] += r["s"] or 0.0
        out = sorted(rows.values(), key=lambda row: (row["day"], row["account"], row["user"]))
        for row in out:
            row["qpu_seconds"], row["reserved_s"] = round(row["qpu_seconds"], 3), round(row["reserved_s"], 3)
        return out

    def account_seconds(self, account: str, since: float) -> tuple[float, float]:
        """(QPU seconds ``account`` has used since ``since``, the estimates of its jobs still
        queued or running): what a quota check weighs."""
        db = self._conn()
        (jobs_s,) = db.execute("SELECT COALESCE(SUM(qpu_s), 0) FROM jobs WHERE account = ? AND finished_at >= ?",
                               (account, since)).fetchone()
        (held_s,) = db.execute(
            "SELECT COALESCE(SUM(charged_s), 0) FROM sessions WHERE COALESCE(account, user) = ? "
            "AND charged_s IS NOT NULL AND MIN(COALESCE(closed_at, expires_at), expires_at) >= ?",
            (account, since)).fetchone()
        (pending,) = db.execute(
            "SELECT COALESCE(SUM(COALESCE(estimated_hold_s, 0)), 0) FROM jobs WHERE account = ? AND finished_at IS NULL",
            (account,)).fetchone()
        return float(jobs_s) + float(held_s), float(pending)

    def open_session(self, user: str, max_time_s: float, account: str | None = None) -> tuple[dict[str, Any], bool]:
        """Reserve the QPU for ``user`` (charged to ``account``, default their own); returns
        (session, True) or (the blocking session, False)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM sessions WHERE closed_at IS NULL AND expires_at > ? LIMIT 1", (now,)
            ).fetchone()
            if row is not None:
                return dict(row), False
            sid = uuid.uuid4().hex
            db.execute(
                "INSERT INTO sessions (id, user, created_at, expires_at, account) VALUES (?, ?, ?, ?, ?)",
                (sid, user, now, now + max_time_s, account or user),
            )
        return self.session(sid), True  # type: ignore[return-value]

    def session(self, sid: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
        return dict(row) if row else None

    def sessions(self, user: str | None = None, active_only: bool = True) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM sessions WHERE 1=1", []
        if user is not None:
            sql += " AND user = ?"
            args.append(user)
        if active_only:
            sql += " AND closed_at IS NULL AND expires_at > ?"
            args.append(time.time())
        return [dict(r) for r in self._conn().execute(sql + " ORDER BY created_at DESC LIMIT 100", args)]

    def close_sessions(self, user: str, sid: str | None = None) -> int:
        sql = "UPDATE sessions SET closed_at = ? WHERE user = ? AND closed_at IS NULL"
        args: list[Any] = [time.time(), user]
        if sid is not None:
            sql += " AND id = ?"
            args.append(sid)
        with self._tx() as db:
            closed = db.execute(sql, args).rowcount
        if closed:
            self.settle_sessions()
        return closed

    # ---- calibrations -------------------------------------------------------------------
    def add_calibration(self, cal: Calibration) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO calibrations (id, taken_at, body) VALUES (?, ?, ?)",
                (cal.id, cal.taken_at.isoformat(), cal.to_json()),
            )

    def calibrations(self) -> list[Calibration]:
        rows = self._conn().execute("SELECT body FROM calibrations ORDER BY taken_at").fetchall()
        return [Calibration.from_json(r["body"]) for r in rows]

    # ---- meta ---------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _job(row: sqlite3.Row) -> dict[str, Any]:
    """A job row as a dict; ``memory`` as a bool (SQLite keeps it as 0/1)."""
    job = dict(row)
    job["memory"] = bool(job.get("memory"))
    return job


def as_flag(value: Any) -> bool:
    """A boolean setting as dask config hands it over: ``DASK_QMIO__QPU__FAIR_SHARE=False`` (or
    ``=false``, ``=0``) arrives parsed, but ``=off`` or ``=no`` arrive as strings, and
    ``bool("off")`` would be True. YAML files may hold quoted strings too."""
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)
