"""``GET /metrics`` of a real QPU service process, read with prometheus_client's own parser.

README: "`GET /metrics` | Prometheus: jobs by state, submissions, rejections, run times,
calibration age, per-qubit T1/T2/errors (no token: device figures and counts only)", and "The
service logs refused, failed and slow requests; the rest are counted on `/metrics`".

One service for the module; every test compares scrapes taken before and after what it does,
and waits for its own jobs to end, so the tests run alone and in any order.
"""
from __future__ import annotations

import os
import signal
from datetime import datetime

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from qiskit.circuit.random import random_circuit

from support.circuits import BELL_QASM2
from support.cli import QUIET_TIME, wait_for
from support.services import USERS, ServiceProcess

pytestmark = pytest.mark.timeout(180)

STATES = ("queued", "running", "done", "failed", "cancelled")
QPU_STATES = ("online", "calibrating", "maintenance", "reserved")


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    # a fixed device time 19 h before the next calibration window: the real clock plays no part
    service = ServiceProcess(tmp_path_factory.mktemp("qpu-metrics"), "--start-time", QUIET_TIME).start()
    yield service
    service.stop()


@pytest.fixture
def held(svc):
    """Maintenance: the queue holds, so submitted jobs stay queued until the test lets them go."""
    assert svc.http("PUT", "/api/v1/status", "root", json={"maintenance": True}).status_code == 200
    yield svc
    svc.http("PUT", "/api/v1/status", "root", json={"maintenance": False})


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float:
        """The sample's value (0 when absent: a labelled counter appears on first use)."""
        family = self.families.get(sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum"))
        for s in family.samples if family else ():
            if s.name == sample and s.labels == labels:
                return s.value
        return 0.0

    def total(self, sample: str) -> float:
        family = self.families[sample.removesuffix("_total")]
        return sum(s.value for s in family.samples if s.name == sample)

    def by_label(self, family: str, label: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in self.families[family].samples}


def scrape(svc: ServiceProcess, headers: dict | None = None) -> Scrape:
    response = requests.get(f"{svc.url}/metrics", headers=headers or {}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


def submit(svc: ServiceProcess, user: str = "alice", **body) -> requests.Response:
    return svc.http("POST", "/api/v1/jobs", user, json={"circuits": [{"data": BELL_QASM2}], "shots": 100, **body})


def test_metrics_need_no_token_and_export_every_family_the_readme_lists(svc):
    m = scrape(svc)
    kinds = {name: f.type for name, f in m.families.items()}
    expected = {
        "qmio_jobs": "gauge",                         # jobs by state
        "qmio_jobs_submitted": "counter",             # submissions
        "qmio_jobs_rejected": "counter",              # rejections
        "qmio_jobs_finished": "counter",
        "qmio_job_run_seconds": "histogram",          # run times
        "qmio_calibration_age_seconds": "gauge",      # calibration age
        "qmio_qubit_t1_seconds": "gauge",             # per-qubit T1/T2/errors
        "qmio_qubit_t2_seconds": "gauge",
        "qmio_qubit_readout_error": "gauge",
        "qmio_qubit_sx_error": "gauge",
        "qmio_coupler_ecr_error": "gauge",
        "qmio_qpu_state": "gauge",
    }
    assert {name: kinds.get(name) for name in expected} == expected
    assert set(m.by_label("qmio_jobs", "state")) == set(STATES)
    for family in ("qmio_qubit_t1_seconds", "qmio_qubit_t2_seconds", "qmio_qubit_readout_error", "qmio_qubit_sx_error"):
        assert set(m.by_label(family, "qubit")) == {str(q) for q in range(32)}, family
    assert len(m.families["qmio_coupler_ecr_error"].samples) == 33
    state = m.by_label("qmio_qpu_state", "state")
    assert set(state) == set(QPU_STATES) and sorted(state.values()) == [0, 0, 0, 1]
    assert state[svc.http("GET", "/api/v1/status").json()["state"]] == 1


def test_a_job_that_runs_moves_submissions_finished_run_times_and_jobs_by_state(svc):
    before = scrape(svc)
    reply = submit(svc, "bob")
    assert reply.status_code == 201
    job = svc.client("bob").wait(reply.json()["id"], timeout=60)
    assert job["state"] == "done"
    after = scrape(svc)
    assert after.total("qmio_jobs_submitted_total") - before.total("qmio_jobs_submitted_total") == 1
    assert after.value("qmio_jobs_finished_total", state="done") - before.value("qmio_jobs_finished_total", state="done") == 1
    for other in ("failed", "cancelled"):
        assert after.value("qmio_jobs_finished_total", state=other) == before.value("qmio_jobs_finished_total", state=other)
    assert after.value("qmio_job_run_seconds_count") - before.value("qmio_job_run_seconds_count") == 1
    ran = (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])).total_seconds()
    observed = after.value("qmio_job_run_seconds_sum") - before.value("qmio_job_run_seconds_sum")
    assert observed == pytest.approx(ran, abs=2e-3) and observed > 0
    jobs_before, jobs_after = before.by_label("qmio_jobs", "state"), after.by_label("qmio_jobs", "state")
    assert jobs_after["done"] - jobs_before["done"] == 1
    assert jobs_after["queued"] == jobs_before["queued"] and jobs_after["running"] == jobs_before["running"] == 0
    # the buckets are cumulative and end with every observation
    buckets = [s.value for s in after.families["qmio_job_run_seconds"].samples if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == after.value("qmio_job_run_seconds_count")


def test_queued_and_cancelled_jobs_show_in_the_gauges_and_counters(held):
    svc = held
    before = scrape(svc)
    assert before.by_label("qmio_qpu_state", "state")["maintenance"] == 1
    first, second = (submit(svc).json()["id"] for _ in range(2))
    queued = scrape(svc)
    assert queued.by_label("qmio_jobs", "state")["queued"] - before.by_label("qmio_jobs", "state")["queued"] == 2
    assert svc.http("DELETE", f"/api/v1/jobs/{first}").json()["state"] == "cancelled"
    after = scrape(svc)
    assert (after.value("qmio_jobs_finished_total", state="cancelled")
            - before.value("qmio_jobs_finished_total", state="cancelled")) == 1
    assert after.by_label("qmio_jobs", "state")["queued"] - before.by_label("qmio_jobs", "state")["queued"] == 1
    assert after.by_label("qmio_jobs", "state")["cancelled"] - before.by_label("qmio_jobs", "state")["cancelled"] == 1
    svc.http("PUT", "/api/v1/status", "root", json={"maintenance": False})
    assert svc.client("alice").wait(second, timeout=60)["state"] == "done"
    released = scrape(svc)
    assert released.by_label("qmio_qpu_state", "state")["online"] == 1
    assert released.by_label("qmio_jobs", "state")["queued"] == before.by_label("qmio_jobs", "state")["queued"]


def test_a_failed_job_is_counted_as_failed(svc):
    alice = svc.client("alice")
    before = scrape(svc)
    # one Aer call of several seconds (16 copies of one 8-qubit circuit), so it can be caught running
    job_id = alice.submit([random_circuit(8, 12, measure=True, seed=7)] * 16, shots=4000, name="long")["id"]
    wait_for(lambda: alice.job(job_id)["state"] == "running", 60, "the long job never started", interval=0.02)
    child = psutil.Process(alice.status()["simulator"]["pid"])
    busy_since = sum(child.cpu_times()[:2])
    wait_for(lambda: sum(child.cpu_times()[:2]) - busy_since >= 0.3, 30, "the simulator never worked on the job")
    os.kill(child.pid, signal.SIGKILL)
    failed = alice.wait(job_id, timeout=60)
    assert failed["state"] == "failed", failed
    after = scrape(svc)
    assert after.value("qmio_jobs_finished_total", state="failed") - before.value("qmio_jobs_finished_total", state="failed") == 1
    assert after.value("qmio_jobs_finished_total", state="done") == before.value("qmio_jobs_finished_total", state="done")
    assert after.by_label("qmio_jobs", "state")["failed"] - before.by_label("qmio_jobs", "state")["failed"] == 1
    assert after.value("qmio_job_run_seconds_count") - before.value("qmio_job_run_seconds_count") == 1


def test_rejected_submissions_are_counted_by_status(svc):
    before = scrape(svc)
    bad_qasm = svc.http("POST", "/api/v1/jobs", json={"circuits": [{"data": "OPENQASM 2.0;\nfoo q;"}], "shots": 10})
    assert bad_qasm.status_code == 422
    too_big = svc.http("POST", "/api/v1/jobs", data=b"x" * (17 * 1024 * 1024),
                       headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413
    after = scrape(svc)
    assert after.value("qmio_jobs_rejected_total", status="422") - before.value("qmio_jobs_rejected_total", status="422") == 1
    assert after.value("qmio_jobs_rejected_total", status="413") - before.value("qmio_jobs_rejected_total", status="413") == 1
    assert after.total("qmio_jobs_submitted_total") == before.total("qmio_jobs_submitted_total")


def test_every_refused_submission_is_counted(svc):
    before = scrape(svc)
    for body in ({"shots": 0}, {"priority": 99}, {"optimization_level": 7}):
        assert submit(svc, **body).status_code == 422
    after = scrape(svc)
    assert after.value("qmio_jobs_rejected_total", status="422") - before.value("qmio_jobs_rejected_total", status="422") == 3


def test_calibration_gauges_are_the_calibration_in_force(svc):
    served = svc.http("GET", "/api/v1/calibration").json()
    m = scrape(svc)
    for family, field in (("qmio_qubit_t1_seconds", "t1"), ("qmio_qubit_t2_seconds", "t2"),
                          ("qmio_qubit_sx_error", "sx_error")):
        exported = m.by_label(family, "qubit")
        # the same drifted figures (the device clock moves on by the milliseconds between the calls)
        assert [exported[str(q)] for q in range(32)] == pytest.approx([q[field] for q in served["qubits"]], rel=1e-5)
        assert len(set(exported.values())) > 16, family  # per qubit, not one figure repeated
    readout = m.by_label("qmio_qubit_readout_error", "qubit")
    assert [readout[str(q)] for q in range(32)] == pytest.approx(
        [(q["readout_p10"] + q["readout_p01"]) / 2 for q in served["qubits"]], rel=1e-5)
    ecr = {(s.labels["control"], s.labels["target"]): s.value for s in m.families["qmio_coupler_ecr_error"].samples}
    assert ecr == pytest.approx({(str(c["control"]), str(c["target"])): c["ecr_error"] for c in served["couplers"]}, rel=1e-5)
    assert m.value("qmio_calibration_age_seconds") == pytest.approx(served["age_s"], abs=5)


def finish(svc: ServiceProcess, *replies: requests.Response) -> None:
    """Wait for the jobs a test submitted, so none is left to move another test's counters."""
    for reply in replies:
        assert reply.status_code == 201, reply.text
        assert svc.client("root").wait(reply.json()["id"], timeout=60)["state"] == "done"


def test_metrics_never_show_a_token(svc):
    finish(svc, submit(svc, "alice"))
    for headers in ({}, {"Authorization": f"Bearer {USERS['root']['token']}"}):
        text = scrape(svc, headers).text
        assert not [u for u, spec in USERS.items() if spec["token"] in text]


def test_metrics_without_a_token_name_no_user(svc):
    finish(svc, submit(svc, "alice"), submit(svc, "bob"))
    text = scrape(svc).text
    labels = {k for f in text_string_to_metric_families(text) for s in f.samples for k in s.labels}
    named = [u for u in USERS if f'"{u}"' in text]
    assert "user" not in labels and named == []


def test_answered_requests_are_counted(svc):
    before = scrape(svc)
    for _ in range(5):
        assert svc.http("GET", "/api/v1/status").status_code == 200
    after = scrape(svc)
    grew = [f.name for f in after.families.values() if f.type == "counter"
            and after.total(f"{f.name}_total") - (before.total(f"{f.name}_total") if f.name in before.families else 0) >= 5]
    assert grew, "no counter moved by the five answered requests"
