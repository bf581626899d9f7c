"""Live job monitor: state, queue position, ETA, QPU time, progress and a cancel button per job.

One daemon thread per monitor polls its jobs and updates the widgets (ipywidgets send updates
from any thread), so the kernel keeps running other cells. It stops when every job has ended.
Jobs without a queue position (just submitted, running, ended, emulator jobs) show a dash.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ipywidgets as w
from qiskit.providers import JobStatus

from qmio_lab.widgets._render import esc, key_value_table, table
from qmio_lab.widgets.base import HTMLFallback

TERMINAL = ("done", "failed", "cancelled")
_FROM_STATUS = {
    JobStatus.INITIALIZING: "queued", JobStatus.QUEUED: "queued", JobStatus.VALIDATING: "queued",
    JobStatus.RUNNING: "running", JobStatus.DONE: "done", JobStatus.ERROR: "failed",
    JobStatus.CANCELLED: "cancelled",
}
_BAR_STYLE = {"queued": "", "running": "info", "done": "success", "failed": "danger", "cancelled": "warning"}


@dataclass
class JobState:
    """What the monitor shows of a job at one moment, whatever the target."""

    job_id: str
    target: str
    state: str
    done: int
    total: int
    queue_position: int | None = None
    eta_s: float | None = None
    calibration_id: str | None = None
    name: str | None = None
    error: str | None = None
    estimated_qpu_s: float | None = None  # device seconds the service expects the job to hold the QPU
    qpu_s: float | None = None  # device seconds it held the QPU, once ended

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


def job_target(job: Any) -> str:
    backend = job.backend()
    name = getattr(backend, "name", "") or ""
    if "emulator" in name:
        return "emulator"
    if "qpu" in name:
        return "qpu"
    return name or type(job).__name__


def _job_id(job: Any) -> str:
    jid = job.job_id
    return jid() if callable(jid) else str(jid)


def read_job_state(job: Any) -> JobState:
    """Read a QPU job (its service record), an emulator job (its progress) or any Qiskit job."""
    target = job_target(job)
    record = getattr(job, "record", None)
    if isinstance(record, dict) and hasattr(job, "refresh"):  # QPUJob: one GET, no long poll
        rec = job.refresh()
        return JobState(
            _job_id(job), target, rec["state"], int(rec.get("circuits_done") or 0),
            int(rec.get("num_circuits") or 0),
            rec.get("queue_position"), rec.get("eta_s"), rec.get("calibration_id"), rec.get("name"),
            rec.get("error"), rec.get("estimated_qpu_seconds"), rec.get("qpu_seconds"),
        )
    state = _FROM_STATUS.get(job.status(), "running")
    progress = getattr(job, "progress", None)
    done, total = progress() if callable(progress) else ((1, 1) if state == "done" else (0, 1))
    meta = getattr(job, "metadata", {}) or {}
    return JobState(_job_id(job), target, state, done, total,
                       calibration_id=meta.get("calibration_id") if isinstance(meta, dict) else None)


def qpu_time_text(state: JobState) -> str:
    """The QPU seconds a job held once it has ended, else what the service expects it to hold.

    A job that ended without holding the QPU (cancelled while queued) shows no figure: its
    estimate was never charged, and showing it would read as if it had been."""
    if state.qpu_s is not None:
        return f"QPU: {state.qpu_s:.2f} s"
    if state.estimated_qpu_s is not None and not state.finished:
        return f"QPU: ~{state.estimated_qpu_s:.2f} s"
    return "QPU: —"


def _eta_text(eta: float | None) -> str:
    if eta is None:
        return "—"
    return f"{eta:.0f} s" if eta < 120 else f"{eta / 60:.1f} min"


class JobRow(HTMLFallback, w.HBox):
    """One job's line in a monitor; its child widgets hold the state tests and users read."""

    def __init__(self, job: Any) -> None:
        self.job = job
        self.job_state = JobState(_job_id(job), job_target(job), "queued", 0, 1)
        self.label = w.HTML()
        self.state = w.HTML()
        self.queue = w.HTML()
        self.eta = w.HTML()
        self.qpu_time = w.HTML()
        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="160px"))
        self.cancel_button = w.Button(description="Cancel", icon="stop", button_style="warning",
                                      layout=w.Layout(width="90px"))
        self.message = w.HTML()
        self.cancel_button.on_click(self._cancel)
        super().__init__([self.label, self.state, self.queue, self.eta, self.qpu_time, self.progress,
                          self.cancel_button, self.message],
                         layout=w.Layout(align_items="center", grid_gap="8px"))
        self.label.value = f"<code>{esc(self.job_state.job_id[:12])}</code> {esc(self.job_state.target)}"

    def _cancel(self, _button: Any = None) -> None:
        try:
            ok = self.job.cancel()
        except Exception as exc:  # the service said no: show why, keep the monitor alive
            self.message.value = f"<span style='color:#b00'>cancel failed: {esc(exc)}</span>"
            return
        if not ok:
            self.message.value = "already running or ended; not cancelled"
        self.update()

    def update(self) -> JobState:
        try:
            state = read_job_state(self.job)
        except Exception as exc:  # a network blip must not kill the monitor thread
            self.message.value = f"<span style='color:#b00'>{esc(exc)}</span>"
            return self.job_state
        self.job_state = state
        name = f" <b>{esc(state.name)}</b>" if state.name else ""
        self.label.value = f"<code>{esc(state.job_id[:12])}</code> {esc(state.target)}{name}"
        self.state.value = f"<b>{esc(state.state)}</b>"
        pos = "—" if state.queue_position is None else str(state.queue_position)
        self.queue.value = f"queue: {pos}"
        self.eta.value = f"ETA: {_eta_text(state.eta_s if not state.finished else None)}"
        self.qpu_time.value = qpu_time_text(state)
        self.progress.max = max(state.total, 1)
        self.progress.value = min(state.done, self.progress.max)
        self.progress.bar_style = _BAR_STYLE.get(state.state, "")
        self.progress.description = f"{state.done}/{state.total}"
        self.cancel_button.disabled = state.finished or state.state == "running"
        if state.error:
            self.message.value = f"<span style='color:#b00'>{esc(state.error)}</span>"
        return state

    def _repr_html_(self) -> str:
        s = self.job_state
        return key_value_table([("job", s.job_id), ("target", s.target), ("state", s.state),
                                ("queue position", s.queue_position), ("ETA", _eta_text(s.eta_s)),
                                ("QPU seconds", qpu_time_text(s).removeprefix("QPU: ")),
                                ("progress", f"{s.done}/{s.total}")])


class JobMonitor(HTMLFallback, w.VBox):
    """Live view of one or several jobs; ``add(job)`` watches another one.

    ``on_finish(job)`` is called (from the monitor thread) as each job ends, e.g. to show its
    result view. ``interval`` is the polling period in seconds.
    """

    def __init__(self, jobs: Any | Iterable[Any] = (), *, interval: float = 0.5,
                 on_finish: Callable[[Any, JobRow], None] | None = None) -> None:
        if not isinstance(jobs, (list, tuple)):
            jobs = [jobs]
        self.interval = interval
        self.on_finish = on_finish
        self.rows: list[JobRow] = []
        self.header = w.HTML("<b>qmio jobs</b>")
        self.footer = w.VBox()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._notified: set[str] = set()
        super().__init__([self.header, self.footer])
        for job in jobs:
            self.add(job)

    def add(self, job: Any) -> JobRow:
        row = JobRow(job)
        row.update()
        with self._lock:
            self.rows.append(row)
            self.children = [self.header, *self.rows, self.footer]
        self._ensure_thread()
        self._wake.set()
        return row

    @property
    def finished(self) -> bool:
        return all(r.job_state.finished for r in self.rows)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="qmio-job-monitor", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                rows = list(self.rows)
            for row in rows:
                if row.job_state.finished and row.job_state.job_id in self._notified:
                    continue
                state = row.update()
                if state.finished and state.job_id not in self._notified:
                    self._notified.add(state.job_id)
                    if self.on_finish is not None:
                        try:
                            self.on_finish(row.job, row)
                        except Exception as exc:
                            row.message.value = f"<span style='color:#b00'>{esc(exc)}</span>"
            with self._lock:
                if all(r.job_state.job_id in self._notified for r in self.rows):
                    self._thread = None
                    return
            self._wake.wait(self.interval)
            self._wake.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the monitor has seen every job end; True if it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.finished

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _repr_html_(self) -> str:
        rows = [(r.job_state.job_id, r.job_state.target, r.job_state.state,
                 "—" if r.job_state.queue_position is None else r.job_state.queue_position,
                 f"{r.job_state.done}/{r.job_state.total}") for r in self.rows]
        return table(["job", "target", "state", "queue position", "progress"], rows)
