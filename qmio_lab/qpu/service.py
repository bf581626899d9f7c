"""The queue service's parts wired together, independent of HTTP (testable without a server)."""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qmio_lab import config
from qmio_lab.device import Calibration, QmioDevice
from qmio_lab.device.qmio_files import (
    ImportedCalibration, calibrations_directory, file_name, from_qmio, read_directory, time_of, write_file,
)
from qmio_lab.device.schedule import CalibrationSchedule
from qmio_lab.device.topology import Topology
from qmio_lab.errors import CalibrationFileError
from qmio_lab.device.timing import TimingModel
from qmio_lab.lru import LRU
from qmio_lab.qpu.admission import AdmissionLimits, UserGate
from qmio_lab.qpu.auth import TokenAuth
from qmio_lab.qpu.child import reap_stale_children
from qmio_lab.qpu.clock import SimClock
from qmio_lab.qpu.compiler import Compiler
from qmio_lab.qpu.executor import Executor
from qmio_lab.qpu.metrics import ServiceMetrics
from qmio_lab.qpu.sandbox import CompileSandbox
from qmio_lab.qpu.scheduler import QueueView
from qmio_lab.qpu.slurm_gate import SlurmGate
from qmio_lab.qpu.store import TERMINAL_STATES, Store
from qmio_lab.qpu.usage import Accounting, read_budgets

log = logging.getLogger(__name__)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat() if ts else None


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)


_STAGE = {"queued": 0, "running": 1, "done": 2, "failed": 2, "cancelled": 2}
_REMEMBERED_CHANGES = 4096


class JobEvents:
    """Wakes HTTP long-polls when a job changes; fed from the executor thread.

    Each change carries the job row as it now is, so a woken request answers from it rather
    than reading the row back from the database. The latest change of recent jobs is kept,
    because two changes can land before a woken request waits again (running, then done).
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Future]] = {}
        self._latest: LRU[str, dict[str, Any]] = LRU(_REMEMBERED_CHANGES)

    def notify_threadsafe(self, job: dict[str, Any]) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.notify, job)

    def notify(self, job: dict[str, Any]) -> None:
        """On the event loop: record the change and wake who waits for it."""
        self._latest.put(job["id"], job)
        for fut in self._waiters.pop(job["id"], ()):
            if not fut.done():
                fut.set_result(job)

    async def wait(self, job: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The job after its next change past ``job``'s state, or None if none came in ``timeout`` s."""
        latest = self._latest.get(job["id"])
        if latest is not None and _STAGE[latest["state"]] > _STAGE[job["state"]]:
            return latest
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        waiters = self._waiters.setdefault(job["id"], set())
        waiters.add(fut)
        timer = loop.call_later(timeout, _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            waiters.discard(fut)
            # notify() may have replaced this set with a newer waiter's: drop only our own
            if not waiters and self._waiters.get(job["id"]) is waiters:
                del self._waiters[job["id"]]


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class QPUService:
    def __init__(
        self, db_path: str | Path, auth: TokenAuth, *, clock: SimClock | None = None,
        seed: int | None = None, schedule: CalibrationSchedule | None = None,
        slurm_partition: str | None = None, timing: str | None = None,
    ) -> None:
        self.store = Store(db_path)
        self.slurm_gate = SlurmGate(slurm_partition) if slurm_partition else None
        self.auth = auth
        self.clock = self._restore_clock(clock)
        self.store.time_scale = self.clock.scale  # QPU seconds are device seconds
        self.schedule = schedule or CalibrationSchedule.from_config()
        self.device = self._restore_device(seed)
        self.sandbox = CompileSandbox(self.device.seed, AdmissionLimits.from_config(self.device.num_qubits))
        self.compiler = Compiler(self.device, sandbox=self.sandbox)
        self.timing = TimingModel(timing)  # None: qmio.device.timing
        self.accounting = Accounting(self.store, read_budgets(config.get("qpu.accounts", None),
                                                              getattr(auth, "accounts", None)))
        self.admission_gate = UserGate()
        self.events = JobEvents()
        self.metrics = ServiceMetrics()
        self.queue = QueueView(self.store, self.clock, self.schedule, self.timing.mode)
        requeued, poisoned = self.store.requeue_running(int(config.get("qpu.max_attempts")))
        if requeued:
            log.warning("requeued %d job(s) interrupted by the last shutdown", requeued)
        if poisoned:
            log.warning("failed %d job(s) that were running at %s shutdowns in a row", poisoned,
                        config.get("qpu.max_attempts"))
        self.executor = Executor(
            self.store, self.device, self.compiler, self.clock, self.schedule,
            on_job_change=self._job_changed, timing=self.timing,
        )
        from qmio_lab.qpu.gateway import Tunnels  # it submits through qpu.submission, which needs this module

        self.tunnels = Tunnels(self)
        self._written_calibration = self.device.calibration.id

    def _restore_clock(self, clock: SimClock | None) -> SimClock:
        """Keep device time continuous across restarts unless a new clock is asked for."""
        saved = self.store.get_meta("clock")
        if clock is None and saved:
            return SimClock.from_state(json.loads(saved))
        clock = clock or SimClock()
        self.store.set_meta("clock", json.dumps(clock.to_state()))
        return clock

    def _restore_device(self, seed: int | None) -> QmioDevice:
        history = self.store.calibrations()
        files = self._calibration_files(history)
        for cal in files:
            self.store.add_calibration(cal)
        history = sorted(history + files, key=lambda c: c.taken_at)
        saved_seed = self.store.get_meta("seed")
        if seed is None and saved_seed is not None:
            seed = int(saved_seed)
        if history:
            device = QmioDevice(seed=seed, history=history)
        else:
            device = QmioDevice(seed=seed, calibrated_at=self.schedule.in_force_since(self.clock.now()))
            self.store.add_calibration(device.calibration)
        self.store.set_meta("seed", str(device.seed))
        self.write_calibration_files(device.history)
        return device

    def _calibration_files(self, known: list[Calibration]) -> list[Calibration]:
        """Snapshots in the calibrations directory that the database lacks (by time: a file
        we wrote ourselves is the snapshot it was written from)."""
        directory = calibrations_directory()
        if directory is None or not directory.is_dir():
            return []
        taken = {file_name(c.taken_at) for c in known}
        pairs = Topology().couplers
        found = []
        for item in read_directory(directory, pairs):
            if file_name(item.calibration.taken_at) not in taken:
                for note in item.notes:
                    log.warning("calibration file %s: %s", file_name(item.calibration.taken_at), note)
                found.append(item.calibration)
        if found:
            log.info("read %d calibration(s) from %s", len(found), directory)
        return found

    def write_calibration_files(self, calibrations: list[Calibration]) -> None:
        """Each snapshot as a QMIO file in the calibrations directory, if one is set (files there
        already are left as they are: a real file keeps its own figures)."""
        directory = calibrations_directory()
        if directory is None:
            return
        for cal in calibrations:
            if not (directory / file_name(cal.taken_at)).exists():
                write_file(cal, directory)

    def import_calibrations(self, files: list[tuple[str, Any]]) -> list[ImportedCalibration]:
        """QMIO calibration files (name, parsed JSON) into the history: all of them or, if one
        cannot be read, none. A snapshot newer than the one in force takes over at once (jobs
        then run with its noise, drifting from its time)."""
        now = self.clock.now()
        pairs = Topology().couplers
        imported = []
        for name, doc in files:
            try:
                item = from_qmio(doc, time_of(name), pairs)
            except CalibrationFileError as exc:
                raise CalibrationFileError(f"{str(name)[:60]}: {exc}") from None
            if item.calibration.taken_at > now:
                raise CalibrationFileError(
                    f"{str(name)[:60]} was taken at {item.calibration.taken_at.isoformat()}, after the service's "
                    f"clock ({now.isoformat()}); a calibration cannot come from the future")
            imported.append(item)
        for item in imported:
            self.device.add_calibration(item.calibration)
            self.store.add_calibration(item.calibration)
        self.write_calibration_files([item.calibration for item in imported])
        self.executor.wake()
        return imported

    def _job_changed(self, job: dict[str, Any]) -> None:
        if job["state"] in TERMINAL_STATES:
            self.metrics.finished.labels(job["state"]).inc()
            if job["started_at"] and job["finished_at"]:
                self.metrics.run_seconds.observe(job["finished_at"] - job["started_at"])
            if job.get("qpu_s"):
                self.metrics.qpu_seconds.labels(job.get("account") or job["user"]).inc(job["qpu_s"])
        self.events.notify_threadsafe(job)

    def start(self) -> None:
        stale = reap_stale_children()
        if stale:
            log.warning("stopped %d process(es) an earlier service left running: %s", len(stale), stale)
        self.events.loop = asyncio.get_event_loop()
        self.sandbox.start()
        self.executor.start()

    def stop(self) -> None:
        self.tunnels.close_all()
        self.executor.stop()
        self.executor.join(timeout=30)
        self.sandbox.stop()
        self.store.close()

    # ---- views --------------------------------------------------------------------------
    @property
    def state(self) -> str:
        state = self.executor.state
        if state == "online" and self.store.active_session() is not None:
            return "reserved"
        return state

    def session_view(self, session: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": session["id"], "user": session["user"],
            "created_at": _iso(session["created_at"]), "expires_at": _iso(session["expires_at"]),
            "closed_at": _iso(session["closed_at"]),
        }

    def job_view(self, job: dict[str, Any]) -> dict[str, Any]:
        qpu = self.executor.status  # one snapshot: the running job and its progress agree
        place = None
        if job["state"] == "queued":
            place = self.queue.places(qpu.running_job, qpu.calibrating_until).get(job["id"])
        done = 0
        if job["state"] == "done":
            done = job["num_circuits"]
        elif job["state"] == "running" and (qpu.running_job or {}).get("id") == job["id"]:
            done = qpu.running_done
        return {
            "id": job["id"], "name": job["name"], "user": job["user"], "state": job["state"],
            "priority": job["priority"], "boost": job.get("boost", 0), "shots": job["shots"], "num_circuits": job["num_circuits"],
            "circuits_done": done,
            "optimization_level": job["optimization_level"],
            "memory": bool(job.get("memory")), "seed": job.get("seed"),
            "created_at": _iso(job["created_at"]), "started_at": _iso(job["started_at"]),
            "finished_at": _iso(job["finished_at"]),
            "queue_position": place.position if place else None,
            "eta_s": place.eta_s if place else (0.0 if job["state"] == "running" else None),
            "calibration_id": job["calibration_id"], "error": job["error"], "attempts": job["attempts"],
            "slurm_job_id": job["slurm_job_id"],
            "estimated_qpu_s": job.get("estimated_qpu_s"), "estimated_hardware_s": job.get("estimated_hardware_s"),
            "account": job.get("account") or job["user"], "repetition_period": job.get("repetition_period"),
            # device seconds on the QPU: expected under the service's timing mode, and as held
            "estimated_qpu_seconds": _rounded(job.get("estimated_hold_s")),
            "qpu_seconds": _rounded(job.get("qpu_s")),
            "usage": {"quantum_seconds": _rounded(job.get("qpu_s")), "seconds": _rounded(job.get("qpu_s"))},
            "timestamps": {"created": _iso(job["created_at"]), "running": _iso(job["started_at"]),
                           "finished": _iso(job["finished_at"])},
        }

    async def wait_for_job(self, job: dict[str, Any], timeout: float, *, until_terminal: bool) -> dict[str, Any]:
        """The job once it has ended (or, unless ``until_terminal``, changed state), or as it is
        after ``timeout`` s. The executor pushes every change, so nobody needs to poll."""
        if job["state"] in TERMINAL_STATES:
            return job
        seen = job["state"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while job["state"] not in TERMINAL_STATES and loop.time() < deadline:
            if not until_terminal and job["state"] != seen:
                break
            changed = await self.events.wait(job, deadline - loop.time())
            job = changed or self.store.job(job["id"]) or job
        return job

    def calibration_in_force(self) -> Calibration:
        cal = self.executor.calibration_in_force()
        newest = self.device.calibration
        if newest.id != self._written_calibration:  # a daily calibration since: its file too
            self._written_calibration = newest.id
            self.write_calibration_files([newest])
        return cal

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        cal = self.calibration_in_force()
        calibrating_until = self.executor.status.calibrating_until
        counts = self.store.counts_by_state()
        nxt = self.schedule.next_window(now) if self.schedule.weekdays else None
        reservation = self.store.active_session()
        return {
            "state": self.state,
            "reservation": (
                {"user": reservation["user"], "until": _iso(reservation["expires_at"])} if reservation else None
            ),
            "queue_depth": counts["queued"],
            "running": counts["running"],
            "jobs": counts,
            "calibration": {"id": cal.id, "taken_at": cal.taken_at.isoformat(), "age_s": cal.age.total_seconds()},
            "calibrating_until": calibrating_until.isoformat() if calibrating_until else None,
            "next_calibration": {"start": nxt[0].isoformat(), "end": nxt[1].isoformat()} if nxt else None,
            "device_time": now.isoformat(),
            "time_scale": self.clock.scale,
            "timing": self.timing.mode,
            "num_qubits": self.device.num_qubits,
            "slurm_partition": self.slurm_gate.partition if self.slurm_gate else None,
            "seconds_per_circuit": self.queue.seconds_per_circuit(),
            "transpiler": {"transpiles": self.compiler.transpile_count, "cache_hits": self.compiler.hits},
            "simulator": {"pid": self.executor.device_process.pid, "restarts": self.executor.device_process.restarts},
            "admission": {"sandboxes": len(self.sandbox.pids), "busy": self.sandbox.busy},
        }
