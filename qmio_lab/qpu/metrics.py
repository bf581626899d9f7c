"""Prometheus metrics of the queue and the device, as QMIO's control server exports them."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from qmio_lab.device import Calibration


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # no user names: /metrics answers without a token (per-user figures are behind the API)
        self.submitted = Counter("qmio_jobs_submitted_total", "Jobs accepted", registry=r)
        self.requests = Counter("qmio_http_requests_total", "Requests answered", ["method", "status"], registry=r)
        self.rejected = Counter("qmio_jobs_rejected_total", "Submissions refused", ["status"], registry=r)
        self.finished = Counter("qmio_jobs_finished_total", "Jobs that ended", ["state"], registry=r)
        self.run_seconds = Histogram(
            "qmio_job_run_seconds", "Wall time a job held the QPU", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
        )
        self.jobs = Gauge("qmio_jobs", "Jobs by state", ["state"], registry=r)
        self.qpu_state = Gauge("qmio_qpu_state", "1 for the current QPU state", ["state"], registry=r)
        self.cal_age = Gauge("qmio_calibration_age_seconds", "Age of the calibration in force (device time)", registry=r)
        self.t1 = Gauge("qmio_qubit_t1_seconds", "Effective T1", ["qubit"], registry=r)
        self.t2 = Gauge("qmio_qubit_t2_seconds", "Effective T2 echo", ["qubit"], registry=r)
        self.readout = Gauge("qmio_qubit_readout_error", "Mean readout assignment error", ["qubit"], registry=r)
        self.sx = Gauge("qmio_qubit_sx_error", "SX gate error", ["qubit"], registry=r)
        self.ecr = Gauge("qmio_coupler_ecr_error", "ECR gate error", ["control", "target"], registry=r)
        # accounts name people and projects: rendered only for an admin's scrape (render_usage)
        self.usage_registry = CollectorRegistry()
        self.qpu_seconds = Counter("qmio_account_qpu_seconds", "QPU seconds (device time) jobs held, by account",
                                   ["account"], registry=self.usage_registry)

    def render(self, state: str, counts: dict[str, int], cal: Calibration) -> bytes:
        for name, n in counts.items():
            self.jobs.labels(name).set(n)
        for name in ("online", "calibrating", "maintenance", "reserved"):
            self.qpu_state.labels(name).set(1.0 if name == state else 0.0)
        self.cal_age.set(cal.age.total_seconds())
        for i, q in enumerate(cal.qubits):
            self.t1.labels(str(i)).set(q.t1)
            self.t2.labels(str(i)).set(q.t2)
            self.readout.labels(str(i)).set(q.readout_error)
            self.sx.labels(str(i)).set(q.sx_error)
        for c in cal.couplers:
            self.ecr.labels(str(c.control), str(c.target)).set(c.ecr_error)
        return generate_latest(self.registry)

    def render_usage(self) -> bytes:
        return generate_latest(self.usage_registry)
