"""The /qmio routes of the Jupyter Server extension, over HTTP, against a real QPU service.

Run on their own: ``pytest -p pytest_jupyter.jupyter_server tests/test_labserver_handlers.py``
(``make test`` does), because pytest-jupyter's fixtures must not share a session with Playwright.
"""
from __future__ import annotations

import json

import dask.config
import pytest
import requests
from tornado.httpclient import HTTPClientError

from qmio_lab.device import Topology
from qmio_lab.labserver.routes import ROUTES
from qmio_lab.qpu import launcher

from support.circuits import BELL_QASM2 as BELL_QASM
from support.labserver import jp_server_config, service  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def held(service):
    """Maintenance mode: the queue holds, so submitted jobs stay queued."""
    service.set_maintenance(True)
    yield service
    service.set_maintenance(False)


async def get_json(jp_fetch, *parts, **kw):
    response = await jp_fetch("qmio", *parts, **kw)
    return response.code, json.loads(response.body)


async def error_of(jp_fetch, *parts, **kw):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("qmio", *parts, **kw)
    return info.value.code, json.loads(info.value.response.body)


async def test_status_is_the_live_service_status(jp_fetch, service):
    code, status = await get_json(jp_fetch, "qpu", "status")
    assert code == 200
    assert status["state"] == "online"
    assert status["url"] == service.url
    assert status["calibration"]["id"] == service.status()["calibration"]["id"]
    assert status["queue_depth"] == service.status()["queue_depth"]
    assert status["next_calibration"] is None or status["next_calibration"]["start"] < status["next_calibration"]["end"]


async def test_status_follows_maintenance(jp_fetch, held):
    code, status = await get_json(jp_fetch, "qpu", "status")
    assert (code, status["state"]) == (200, "maintenance")


async def test_a_job_submitted_elsewhere_is_listed_and_cancelled_through_the_lab(jp_fetch, held):
    job = held.submit(BELL_QASM, shots=100, name="from-a-kernel", circuit_format="qasm2")
    _, listed = await get_json(jp_fetch, "qpu", "jobs")
    mine = {j["id"]: j for j in listed["jobs"]}
    assert mine[job["id"]]["state"] == "queued"
    assert mine[job["id"]]["name"] == "from-a-kernel"
    assert mine[job["id"]]["queue_position"] >= 1

    code, cancelled = await get_json(jp_fetch, "qpu", "jobs", job["id"], method="DELETE")
    assert (code, cancelled["state"]) == (200, "cancelled")
    assert held.job(job["id"])["state"] == "cancelled"

    code, body = await error_of(jp_fetch, "qpu", "jobs", job["id"], method="DELETE")
    assert code == 409 and "cancel" in body["error"]
    code, body = await error_of(jp_fetch, "qpu", "jobs", "no-such-job", method="DELETE")
    assert code == 404 and body["status"] == 404


async def test_jobs_filter_by_state_and_limit(jp_fetch, held):
    for i in range(3):
        held.submit(BELL_QASM, shots=10, name=f"batch-{i}", circuit_format="qasm2")
    _, listed = await get_json(jp_fetch, "qpu", "jobs", params={"state": "queued", "limit": "2"})
    assert len(listed["jobs"]) == 2
    assert {j["state"] for j in listed["jobs"]} == {"queued"}
    code, body = await error_of(jp_fetch, "qpu", "jobs", params={"limit": "many"})
    assert code == 400
    for job in held.jobs(("queued",)):
        held.cancel(job["id"])


async def test_submit_openqasm_from_the_lab(jp_fetch, held):
    code, job = await get_json(jp_fetch, "qpu", "jobs", method="POST",
                               body=json.dumps({"qasm": BELL_QASM, "shots": 123, "name": "bell.qasm"}))
    assert code == 201
    stored = held.job(job["id"])
    assert (stored["name"], stored["shots"], stored["state"]) == ("bell.qasm", 123, "queued")
    held.cancel(job["id"])

    code, body = await error_of(jp_fetch, "qpu", "jobs", method="POST",
                                body=json.dumps({"qasm": "OPENQASM 2.0;\nqreg q[2];\nfoo q[0];\n", "shots": 10}))
    assert code == 422 and body["error"]
    code, _ = await error_of(jp_fetch, "qpu", "jobs", method="POST", body=json.dumps({"shots": 10}))
    assert code == 422
    code, _ = await error_of(jp_fetch, "qpu", "jobs", method="POST",
                             body=json.dumps({"qasm": BELL_QASM, "shots": "lots"}))
    assert code == 400
    code, _ = await error_of(jp_fetch, "qpu", "jobs", method="POST", body="not json")
    assert code == 400


async def test_chip_carries_layout_and_calibration(jp_fetch, service):
    _, chip = await get_json(jp_fetch, "qpu", "chip")
    topo = Topology()
    assert len(chip["qubits"]) == topo.num_qubits == 32
    assert {(c["control"], c["target"]) for c in chip["couplers"]} == set(topo.edges)
    q5 = chip["qubits"][5]
    assert (q5["x"], q5["y"]) == topo.positions[5]
    cal = service.calibration()
    assert chip["calibration_id"] == cal.id
    assert q5["t2"] <= 2 * q5["t1"]
    assert 0 < q5["readout_error"] < 0.5


async def test_calibration_history(jp_fetch, service):
    _, reply = await get_json(jp_fetch, "qpu", "calibrations")
    ids = [c["id"] for c in reply["calibrations"]]
    assert service.status()["calibration"]["id"] in ids


async def test_unreachable_service_is_503_with_a_message(jp_fetch, service, monkeypatch):
    with socket_closed_port() as port:
        monkeypatch.setenv("QMIO_QPU_URL", f"http://127.0.0.1:{port}")
        launcher.reset_default_client()
        try:
            code, body = await error_of(jp_fetch, "qpu", "status")
        finally:
            launcher.reset_default_client()
    assert code == 503
    assert "unreachable" in body["error"] and str(port) in body["error"]


async def test_emulator_is_reported_without_starting_a_cluster(jp_fetch, service):
    from qmio_lab.emulator import cluster as clusters

    _, state = await get_json(jp_fetch, "emulator")
    assert (state["kind"], state["state"], state["workers"]) == ("local", "not started", [])
    assert clusters._shared.client is None


async def test_emulator_run_starts_the_cluster_and_is_then_reported(jp_fetch, service):
    from qmio_lab.emulator import shutdown

    try:
        with dask.config.set({"qmio.emulator.local.n_workers": 1}):
            code, reply = await get_json(jp_fetch, "emulator", "run", method="POST", request_timeout=90,
                                         body=json.dumps({"qasm": BELL_QASM, "shots": 200}))
            assert code == 200
            assert sum(reply["counts"].values()) == 200
            assert set(reply["counts"]) <= {"00", "11"}
            _, state = await get_json(jp_fetch, "emulator")
        assert (state["kind"], state["state"], len(state["workers"])) == ("local", "running", 1)
        assert state["address"].startswith("tls://127.0.0.1:")  # the local cluster speaks TLS
    finally:
        shutdown()


async def test_every_route_refuses_requests_without_a_token(jp_fetch, service):
    methods = {"get": "GET", "post": "POST", "delete": "DELETE"}
    checked = 0
    for pattern, handler in ROUTES:
        path = pattern.replace("(?P<job_id>[^/]+)", "some-job").split("/")
        for name, method in methods.items():
            if name not in vars(handler):
                continue
            body = "{}" if method == "POST" else None
            with pytest.raises(HTTPClientError) as info:
                await jp_fetch(*path, method=method, body=body, headers={"Authorization": ""})
            assert info.value.code == 403, (pattern, method)
            checked += 1
    assert checked == 8


class socket_closed_port:
    """A local port nothing listens on (bound, then released)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc) -> None:
        return None


def test_service_was_really_started_by_the_launcher(service):
    record = json.loads(launcher.discovery_file().read_text())
    assert record["url"] == service.url
    assert requests.get(f"{service.url}/metrics", timeout=5).status_code == 200
