"""``EmulatorJob``: a Qiskit job over the Dask futures of one sweep.

Modelled on qiskit-aer's ``AerJob``: the job is created with the function that launches it
and can be submitted once; ``status()`` maps the futures' states onto Qiskit's in one place.
"""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from distributed import TimeoutError as DaskTimeoutError
from qiskit.providers import JobStatus, JobV1
from qiskit.result import Result

from qmio_lab.errors import EmulatorJobError
from qmio_lab.emulator.runner import Sweep

if TYPE_CHECKING:
    from qmio_lab.emulator.backend import EmulatorBackend


class EmulatorJob(JobV1):
    """One ``EmulatorBackend.run`` call: circuits fanned out in batches over the workers."""

    def __init__(
        self, backend: EmulatorBackend, job_id: str, launch: Callable[[], Sweep],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(backend, job_id)
        self._launch = launch
        self._sweep: Sweep | None = None
        self._result: Result | None = None
        self._cancelled = False
        self._lock = threading.Lock()
        self.metadata = dict(metadata or {})

    def submit(self) -> None:
        """Start the sweep; a job runs once (submit again and it raises)."""
        with self._lock:
            if self._sweep is not None or self._cancelled:
                raise EmulatorJobError(f"job {self.job_id()} has already been submitted")
            self._sweep = self._launch()

    def _started(self) -> Sweep:
        if self._sweep is None:
            raise EmulatorJobError(f"job {self.job_id()} has not been submitted: call job.submit()")
        return self._sweep

    def progress(self) -> tuple[int, int]:
        """``(circuits done, circuits in the job)``, for progress bars."""
        if self._sweep is None:
            return 0, int(self.metadata.get("num_circuits", 0))
        return self._sweep.progress()

    def status(self) -> JobStatus:
        if self._result is not None:
            return JobStatus.DONE
        if self._cancelled:
            return JobStatus.CANCELLED
        if self._sweep is None:
            return JobStatus.INITIALIZING
        states = {f.status for f in self._sweep.futures}
        if "cancelled" in states:
            return JobStatus.CANCELLED
        if "error" in states:
            return JobStatus.ERROR
        if states == {"finished"}:
            return JobStatus.DONE
        return JobStatus.RUNNING

    def cancel(self) -> bool:
        """Cancel the batches not yet finished; returns False if the job had already ended."""
        if self.status() in (JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED):
            return False
        self._cancelled = True
        if self._sweep is not None:
            self._sweep.cancel()
        return True

    def result(self, timeout: float | None = None) -> Result:
        """Wait for every batch and return one Result, circuits in the order given."""
        if self._result is not None:
            return self._result
        sweep = self._started()
        if self._cancelled:
            raise EmulatorJobError(f"job {self.job_id()} was cancelled; it has no result")
        try:
            experiments = sweep.results(timeout=timeout)
        except (DaskTimeoutError, TimeoutError) as exc:
            done, total = sweep.progress()
            raise EmulatorJobError(
                f"job {self.job_id()} not finished after {timeout} s ({done}/{total} circuits done); "
                "call result() again to keep waiting"
            ) from exc
        except Exception as exc:
            if self.status() == JobStatus.CANCELLED:
                raise EmulatorJobError(f"job {self.job_id()} was cancelled; it has no result") from exc
            raise EmulatorJobError(f"emulator job {self.job_id()} failed: {exc}") from exc
        self._result = self._assemble(experiments)
        sweep.release()
        return self._result

    def _assemble(self, experiments: list) -> Result:
        metas = [e.metadata or {} for e in experiments]
        methods = Counter(m.get("method") for m in metas)
        return Result(
            backend_name=self._backend.name, backend_version=self._backend.backend_version,
            job_id=self.job_id(), success=all(e.success for e in experiments), results=experiments,
            date=datetime.now(timezone.utc).isoformat(),
            method=methods.most_common(1)[0][0] if methods else None,
            methods=dict(methods),
            batches=len(self._started().batches),
            workers=sorted({str(m.get("worker")) for m in metas}),
            **self.metadata,
        )
