"""The one thread that owns the QPU: runs jobs back to back and keeps calibration windows.

With ``qmio.device.timing: hardware`` a job holds the QPU as long as QMIO's hardware would take
for it (the timing model's estimate, in device time), not only as long as simulating it takes:
the queue, ETAs, fair share and quotas then cost what they cost at QMIO.

Because jobs and calibrations share this thread, a running job always finishes before a
calibration starts, and no job starts while the QPU is calibrating. Only this thread writes
what the QPU is doing; it publishes that as one immutable :class:`ExecutorStatus` that other
threads read whole. Other threads ask for things (wake, calibrate, maintenance, stop the
running job) and never write its state.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from qmio_lab import config
from qmio_lab.device import Calibration, QmioDevice
from qmio_lab.device.schedule import CalibrationSchedule
from qmio_lab.device.timing import TimingModel
from qmio_lab.errors import QmioError
from qmio_lab.qpu.clock import SimClock
from qmio_lab.qpu.compiler import Compiler
from qmio_lab.qpu.device_process import DeviceProcess, JobStopped, Program
from qmio_lab.qpu.store import Store

log = logging.getLogger(__name__)
_IDLE_WAIT = 0.2  # seconds between looks at the calendar when nothing is queued


@dataclass(frozen=True)
class ExecutorStatus:
    """What the QPU is doing, as of one moment."""

    calibrating: bool = False
    calibrating_until: datetime | None = None  # the end of the calendar window being kept
    running_job: dict[str, Any] | None = None
    running_done: int = 0  # circuits of the running job simulated so far
    holding: bool = False  # the running job is simulated; the QPU is held for the hardware's time


class Executor(threading.Thread):
    def __init__(
        self, store: Store, device: QmioDevice, compiler: Compiler, clock: SimClock,
        schedule: CalibrationSchedule,
        on_job_change: Callable[[dict[str, Any]], None] = lambda job: None,
        timing: TimingModel | None = None,
    ) -> None:
        super().__init__(name="qmio-qpu-executor", daemon=True)
        self.store = store
        self.device = device
        self.compiler = compiler
        self.clock = clock
        self.schedule = schedule
        self.timing = timing or TimingModel()
        self.device_process = DeviceProcess(device.seed)
        self.on_job_change = on_job_change
        self.status = ExecutorStatus()  # replaced whole, by this thread only
        self.maintenance = threading.Event()  # an admin's request: claim no job while set
        self._drift_step = timedelta(seconds=float(config.get("qpu.drift_resolution_s")))
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._calibration_requests: list[Future] = []
        self._release = threading.Event()  # ends a hold early: the job was cancelled, or the service stops
        self._release_reason: str | None = None
        self._effective: tuple[tuple, Calibration] | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.status.calibrating:
            return "calibrating"
        return "maintenance" if self.maintenance.is_set() else "online"

    def _publish(self, **changes: Any) -> None:
        self.status = dataclasses.replace(self.status, **changes)

    # ---- control from other threads -------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._halt.set()
        self._release.set()
        self._wake.set()

    def request_calibration(self) -> Future:
        """Recalibrate as soon as the running job (if any) finishes."""
        fut: Future = Future()
        with self._lock:
            self._calibration_requests.append(fut)
        self.wake()
        return fut

    def stop_running(self, job_id: str, by: str) -> bool:
        """Stop ``job_id`` if it is the job on the QPU now (the owner or an admin cancels it):
        its simulator is killed and restarted; the job ends cancelled. False if it is not running."""
        with self._lock:
            running = self.status.running_job
            if running is None or running["id"] != job_id:
                return False
            reason = f"cancelled by {by} while running"
            self._release_reason = reason  # if it is simulated already and only holds the QPU
            self._release.set()
            self.device_process.stop_job(job_id, reason, cancelled=True)
        return True

    def set_maintenance(self, on: bool) -> None:
        """Hold the queue (a running job finishes) or release it."""
        if on:
            self.maintenance.set()
        else:
            self.maintenance.clear()
        self.wake()

    # ---- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        self.device_process.start()
        try:
            while not self._halt.is_set():
                try:
                    self._keep_calendar()
                    if self.maintenance.is_set() or not self._run_next():
                        self._wake.wait(_IDLE_WAIT)
                        self._wake.clear()
                except Exception:  # keep the QPU alive; the failing job was already marked
                    log.exception("executor loop error")
                    time.sleep(_IDLE_WAIT)
        finally:
            self.device_process.stop()

    def _keep_calendar(self) -> None:
        with self._lock:
            requests, self._calibration_requests = self._calibration_requests, []
        if requests:
            cal = self._calibrate(self.clock.now())
            for fut in requests:
                fut.set_result(cal)
        now = self.clock.now()
        start, end = self.schedule.last_window(now) if self.schedule.weekdays else (None, None)
        if start is None or self.device.calibration.taken_at >= start:
            return
        if now < end:  # inside the window: the QPU is unavailable until it ends
            self._publish(calibrating=True, calibrating_until=end)
            while self.clock.now() < end and not self._halt.is_set():
                time.sleep(min(0.05, max(self.clock.real_seconds(end - self.clock.now()), 0.001)))
        self._calibrate(end)

    def _calibrate(self, at: datetime) -> Calibration:
        self._publish(calibrating=True)
        try:
            cal = self.device.calibrate(at=at)
            self.store.add_calibration(cal)
        finally:
            self._publish(calibrating=False, calibrating_until=None)
        log.info("calibrated: %s", cal.id)
        return cal

    def calibration_in_force(self) -> Calibration:
        """The figures a job starting now runs with: the newest snapshot as drifted to now,
        snapped to the drift step (so the noise model is rebuilt once per step, not per job).
        Submissions compile against it, and ``/calibration`` and ``/metrics`` show it."""
        now = self.clock.now()
        epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
        current = self.device.calibration
        # never before the newest snapshot, or a fresh calibration would not be used at once
        step = max(now - (now - epoch) % self._drift_step, min(current.taken_at, now))
        key = (current.id, step)
        if self._effective is None or self._effective[0] != key:
            self._effective = (key, self.device.calibration_at(step))
        return self._effective[1]

    def _run_next(self) -> bool:
        """Claim and run the job at the head of the queue; False when there is none to run.
        Only the head is read: with thousands queued, reading the whole order for every job
        made each claim cost milliseconds."""
        reservation = self.store.active_session()
        holder = reservation["user"] if reservation is not None else None  # only theirs run
        while True:
            head = self.store.next_job(holder)
            if head is None:
                return False
            job = self.store.claim(head["id"])
            if job is not None:  # None: cancelled between the two statements; take the next
                self._run(job)
                return True

    def _run(self, job: dict[str, Any]) -> None:
        """Run a claimed job. Listeners get the job row as it changes (no re-read), so a waiting
        client hears of its result with no database round trip in between."""
        job_id = job["id"]
        started = time.monotonic()
        with self._lock:  # stop_running reads it from the HTTP thread
            self._release_reason = None
            if not self._halt.is_set():
                self._release.clear()
            self._publish(running_job=job, running_done=0)
        self.on_job_change(job)
        cal = self.calibration_in_force()
        ended: dict[str, Any] = {"calibration_id": cal.id}
        try:
            programs = self._programs(self.store.job_circuits(job_id), cal, job["optimization_level"])
            # a job's own seed and memory flag (columns that older rows lack read as off/None)
            body = self.device_process.run(job_id, programs, job["shots"], cal, on_progress=self._progressed,
                                           time_limit_s=float(config.get("qpu.max_job_s")),
                                           memory=bool(job.get("memory")), seed=job.get("seed"))
            self._hold(job, started)
            ended["finished_at"], ended["qpu_s"] = self.store.finish(job_id, result_json=body, calibration_id=cal.id)
            ended.update(state="done", error=None)
        except JobStopped as exc:
            state = "cancelled" if exc.cancelled else "failed"
            ended.update(state=state, error=str(exc))
            ended["finished_at"], ended["qpu_s"] = self.store.fail(job_id, str(exc), cal.id, state=state)
        except QmioError as exc:
            ended.update(state="failed", error=str(exc))
            ended["finished_at"], ended["qpu_s"] = self.store.fail(job_id, str(exc), cal.id)
        except Exception as exc:  # a simulator crash must fail the job, not the service
            log.exception("job %s failed", job_id)
            error = f"internal error while running the job: {exc}"
            ended.update(state="failed", error=error)
            ended["finished_at"], ended["qpu_s"] = self.store.fail(job_id, error, cal.id)
        finally:
            with self._lock:
                self._publish(running_job=None, running_done=0, holding=False)
            # an unexpected error (e.g. the database gone) leaves the row as it is: read it back
            self.on_job_change({**job, **ended} if "state" in ended else (self.store.job(job_id) or job))

    def _hold(self, job: dict[str, Any], started: float) -> None:
        """With hardware timing, keep the QPU until the hardware would be done with the job
        (its estimate, in device time, so ``time_scale`` shortens it). A cancellation ends the
        hold and the job; a service stop ends the hold and keeps the job's result."""
        if self.timing.mode != "hardware":
            return
        hardware_s = job.get("estimated_hardware_s")
        if hardware_s is None:  # a row from before estimates were kept
            hardware_s = self.timing.hardware_s(job["num_circuits"], job["shots"], job.get("repetition_period"))
        remaining = hardware_s / self.clock.scale - (time.monotonic() - started)
        if remaining <= 0:
            return
        self._publish(holding=True, running_done=job["num_circuits"])
        if self._release.wait(remaining):
            with self._lock:
                reason = self._release_reason
            if reason is not None:
                raise JobStopped(reason, cancelled=True)

    def _progressed(self, done: int) -> None:
        self._publish(running_done=done)

    def _programs(self, items: list[dict[str, Any]], cal: Calibration, level: int) -> list[Program]:
        """The job's circuits as the device process runs them (compiled here, once per circuit)."""
        programs = []
        for i, item in enumerate(items):
            template, small, qubits, key = self.compiler.compile_compact(item, i, cal, level, item.get("digest"))
            rows = item.get("parameter_values")
            programs.append(Program(
                key=key, circuit=small, qubits=qubits,
                names=tuple(p.name for p in template.parameters) if rows is not None else (), rows=rows,
            ))
        return programs
