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
    seed INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, priority, seq);
CREATE INDEX IF NOT EXISTS jobs_user ON jobs(user, seq);
CREATE TABLE IF NOT EXISTS results (job_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calibrations (id TEXT PRIMARY KEY, taken_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fair_share (user TEXT PRIMARY KEY, last_started REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    closed_at REAL
);
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
"""

_JOB_COLUMNS = (
    "seq, id, user, name, state, priority, boost, shots, num_circuits, optimization_level, created_at, "
    "started_at, finished_at, attempts, calibration_id, error, slurm_job_id, estimated_qpu_s, "
    "estimated_hardware_s, memory, seed"
)
#: columns added after the first release, with their types: added to older files at start-up
_ADDED_COLUMNS = {"boost": "INTEGER NOT NULL DEFAULT 0", "estimated_qpu_s": "REAL",
                  "estimated_hardware_s": "REAL", "memory": "INTEGER NOT NULL DEFAULT 0", "seed": "INTEGER"}
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
        idle = config.get("qpu.session_idle_s", None)
        self.session_idle_s = float(idle) if idle else None
        self._idle_checked: dict[str, float] = {}
        db = self._conn()
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        present = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
        self._recount()

    def _recount(self) -> None:
        """Count jobs by state once at start-up; triggers keep the counts exact from then on, so
        /status stays cheap however many jobs the service has run."""
        with self._tx() as db:
            db.execute("DELETE FROM job_counts")
            db.executemany("INSERT INTO job_counts (state, n) VALUES (?, 0)", [(s,) for s in STATES])
            db.execute("UPDATE job_counts SET n = (SELECT COUNT(*) FROM jobs WHERE jobs.state = job_counts.state)")

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
    ) -> dict[str, Any]:
        """Queue a job; ``memory`` (per-shot outcomes in its result) and ``seed`` (None: fresh
        randomness) are kept with it, so a job requeued after a crash runs as it was asked."""
        job_id = uuid.uuid4().hex
        with self._tx() as db:
            rows = db.execute(
                "INSERT INTO jobs (id, user, name, state, priority, boost, shots, num_circuits, "
                "optimization_level, circuits, created_at, slurm_job_id, estimated_qpu_s, estimated_hardware_s, "
                f"memory, seed) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_JOB_COLUMNS}",
                (job_id, user, name, priority, boost, shots, sum(expanded_count(c) for c in circuits),
                 optimization_level, json.dumps(circuits), time.time(), slurm_job_id,
                 estimate and estimate.simulation_s, estimate and estimate.hardware_s, int(bool(memory)), seed),
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
        """Queued jobs in the order they will run (only ``user``'s, and the first ``limit``, if given).

        An admin's boost first (the only way to put a job ahead of other users' work). Then users
        take turns: each user's k-th queued job ranks k-th, ties going to the user served least
        recently, so a user with a thousand jobs delays another user's job by about one job.
        ``priority`` only orders a user's own jobs: giving all of them priority 10 changes
        nothing for anyone else. With ``qmio.qpu.fair_share`` false there are no turns: boost,
        priority, then submission order (the benchmark switches it off to show what fair share
        is worth).
        """
        order = "j.boost DESC, turn, last_served, j.seq" if self.fair_share else "j.boost DESC, j.priority DESC, j.seq"
        sql = f"""
            SELECT j.id, j.user, j.name, j.priority, j.boost, j.num_circuits, j.shots, j.seq,
                   ROW_NUMBER() OVER (PARTITION BY j.user ORDER BY j.priority DESC, j.seq) AS turn,
                   COALESCE(f.last_started, 0) AS last_served
            FROM jobs j LEFT JOIN fair_share f ON f.user = j.user
            WHERE j.state = 'queued'{" AND j.user = :user" if user is not None else ""}
            ORDER BY {order}
            {"LIMIT :limit" if limit is not None else ""}
        """
        return [dict(r) for r in self._conn().execute(sql, {"user": user, "limit": limit})]

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

    def finish(self, job_id: str, *, result_json: str, calibration_id: str) -> float:
        """Store the result (JSON text) and mark the job done in one transaction; returns the
        time it finished."""
        body = result_json
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO results (job_id, body) VALUES (?, ?)", (job_id, body))
            db.execute(
                "UPDATE jobs SET state = 'done', finished_at = ?, calibration_id = ?, error = NULL "
                "WHERE id = ? AND state = 'running'", (now, calibration_id, job_id),
            )
        if len(body) <= _RECENT_RESULT_MAX_CHARS:  # the waiting client asks for it at once: keep it at hand
            self._recent_results.put(job_id, body)
        return now

    def fail(self, job_id: str, error: str, calibration_id: str | None = None, *, state: str = "failed") -> float:
        """End a running job without a result: ``failed``, or ``cancelled`` when stopped on request."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, error = ?, calibration_id = ? "
                "WHERE id = ? AND state = 'running'", (state, now, error, calibration_id, job_id),
            )
        return now

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

    def open_session(self, user: str, max_time_s: float) -> tuple[dict[str, Any], bool]:
        """Reserve the QPU for ``user``; returns (session, True) or (the blocking session, False)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM sessions WHERE closed_at IS NULL AND expires_at > ? LIMIT 1", (now,)
            ).fetchone()
            if row is not None:
                return dict(row), False
            sid = uuid.uuid4().hex
            db.execute(
                "INSERT INTO sessions (id, user, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (sid, user, now, now + max_time_s),
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
            return db.execute(sql, args).rowcount

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
