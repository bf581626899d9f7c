"""The queue service as a Qiskit ``BackendV2``: ``qmio_lab.get_backend("qpu")``.

The Target is built lazily from the service's calibration (making a backend costs no network
call) and pinned to that calibration id; :meth:`QPUBackend.refresh` takes a newer one.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.providers import BackendV2, JobStatus, JobV1, Options
from qiskit.result import Result
from qiskit.transpiler import Target

from qmio_lab import config
from qmio_lab.device.target import build_target
from qmio_lab.errors import QPUJobError, QPUServiceError
from qmio_lab.qpu.client import QPUClient

_STATES = {
    "queued": JobStatus.QUEUED, "running": JobStatus.RUNNING, "done": JobStatus.DONE,
    "failed": JobStatus.ERROR, "cancelled": JobStatus.CANCELLED,
}


class QPUJob(JobV1):
    def __init__(self, backend: QPUBackend, job_id: str, client: QPUClient, record: dict[str, Any] | None = None):
        super().__init__(backend, job_id)
        self._client = client
        self.record = record or {}
        self._result: Result | None = None

    def submit(self) -> None:
        raise QPUJobError("QPU jobs are submitted by QPUBackend.run(); this one already is")

    def refresh(self, wait: float | None = None) -> dict[str, Any]:
        self.record = self._client.job(self.job_id(), wait=wait)
        return self.record

    def status(self) -> JobStatus:
        return _STATES[self.refresh()["state"]]

    def queue_position(self) -> int | None:
        return self.refresh().get("queue_position")

    def cancel(self) -> bool:
        try:
            self.record = self._client.cancel(self.job_id())
        except QPUServiceError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def result(self, timeout: float | None = None) -> Result:
        if self._result is None:
            try:
                body = self._client.wait_result(self.job_id(), timeout=timeout)
            except QPUServiceError as exc:
                if exc.status == 409:
                    self.refresh()
                    raise QPUJobError(f"job {self.job_id()} {self.record['state']}: "
                                      f"{self.record.get('error') or 'it has no result'}") from exc
                raise
            self._result = Result.from_dict(body)
        return self._result


class QPUBackend(BackendV2):
    def __init__(self, client: QPUClient | None = None, name: str = "qmio_qpu") -> None:
        super().__init__(name=name, description="QMIO QPU (simulated) behind the queue service", backend_version="1")
        self._client = client
        self._target: Target | None = None
        self.calibration_id: str | None = None

    @property
    def client(self) -> QPUClient:
        if self._client is None:
            from qmio_lab.qpu.launcher import default_client

            self._client = default_client()
        return self._client

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=int(config.get("device.default_shots")), optimization_level=1, priority=0, name=None)

    def refresh(self) -> Target:
        cal = self.client.calibration()
        self._target = build_target(cal, float(config.get("device.dt")))
        self.calibration_id = cal.id
        return self._target

    @property
    def target(self) -> Target:
        return self._target if self._target is not None else self.refresh()

    @property
    def max_circuits(self) -> int:
        return int(config.get("device.max_circuits"))

    def run(self, run_input: QuantumCircuit | str | Sequence[QuantumCircuit | str], **options: Any) -> QPUJob:
        unknown = set(options) - set(self.options.__dict__)
        if unknown:
            raise TypeError(f"unknown run option(s) {sorted(unknown)}; known: {sorted(self.options.__dict__)}")
        opts = {**self.options.__dict__, **options}
        record = self.client.submit(
            run_input, shots=opts["shots"], name=opts["name"], priority=opts["priority"],
            optimization_level=opts["optimization_level"],
        )
        return QPUJob(self, record["id"], self.client, record)
