"""``GET /api/v1/jobs`` and ``QPUClient.jobs()`` on a real service: newest first, limit, state.

README: "`GET /api/v1/jobs` | the caller's jobs, newest first (`?state=queued&limit=100`);
admins see all". Newest means most recently submitted, whatever order the jobs ran in.

One service for the module; each test has a user of its own, so what it lists is only what it
submitted, and it runs alone or in any order.
"""
from __future__ import annotations

from datetime import datetime

import pytest
import requests

from qmio_lab.qpu import QPUClient
from support.circuits import BELL_QASM2
from support.cli import QUIET_TIME
from support.services import ServiceProcess

pytestmark = pytest.mark.timeout(120)

USERS = {name: {"token": f"{name}-token-0123456789", "role": "user"}
         for name in ("carol", "dave", "erin", "frank", "grace", "heidi", "ivan")}
USERS["ops"] = {"token": "ops-admin-token-0123456789", "role": "admin"}


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    service = ServiceProcess(tmp_path_factory.mktemp("qpu-jobs-list"), "--start-time", QUIET_TIME, users=USERS).start()
    yield service
    service.stop()


def client(svc: ServiceProcess, user: str) -> QPUClient:
    return QPUClient(svc.url, USERS[user]["token"])


def http(svc: ServiceProcess, method: str, path: str, user: str, **kw) -> requests.Response:
    return requests.request(method, f"{svc.url}{path}", timeout=60,
                            headers={"Authorization": f"Bearer {USERS[user]['token']}"}, **kw)


def submit(svc: ServiceProcess, user: str, name: str, priority: int = 0) -> str:
    reply = http(svc, "POST", "/api/v1/jobs", user,
                 json={"circuits": [{"data": BELL_QASM2}], "shots": 50, "name": name, "priority": priority})
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def listed(svc: ServiceProcess, user: str, query: str = "") -> list[dict]:
    reply = http(svc, "GET", f"/api/v1/jobs{query}", user)
    assert reply.status_code == 200, reply.text
    return reply.json()["jobs"]


@pytest.fixture
def held(svc):
    """Maintenance: jobs stay queued until the test releases the queue."""
    assert http(svc, "PUT", "/api/v1/status", "ops", json={"maintenance": True}).status_code == 200
    yield svc
    release(svc)


def release(svc: ServiceProcess) -> None:
    assert http(svc, "PUT", "/api/v1/status", "ops", json={"maintenance": False}).status_code == 200


def test_jobs_are_listed_newest_submitted_first(svc):
    ids = [submit(svc, "carol", f"carol-{i}") for i in range(6)]
    jobs = listed(svc, "carol")
    assert [j["id"] for j in jobs] == ids[::-1]
    created = [datetime.fromisoformat(j["created_at"]) for j in jobs]
    assert created == sorted(created, reverse=True)
    for job_id in ids:
        client(svc, "carol").wait(job_id, timeout=60)
    assert [j["id"] for j in listed(svc, "carol")] == ids[::-1]  # ending does not reorder them


def test_the_order_is_by_submission_not_by_when_jobs_ran(held):
    svc = held
    older = submit(svc, "dave", "older, low priority")
    newer = submit(svc, "dave", "newer, high priority", priority=5)
    release(svc)
    dave = client(svc, "dave")
    done_older, done_newer = dave.wait(older, timeout=60), dave.wait(newer, timeout=60)
    assert done_newer["finished_at"] < done_older["started_at"]  # the newer one ran first ...
    assert [j["id"] for j in listed(svc, "dave")] == [newer, older]  # ... and is still listed first


def test_limit_keeps_the_newest(svc):
    ids = [submit(svc, "erin", f"erin-{i}") for i in range(5)]
    assert [j["id"] for j in listed(svc, "erin", "?limit=2")] == ids[:-3:-1]
    assert [j["id"] for j in listed(svc, "erin", "?limit=1")] == [ids[-1]]
    assert [j["id"] for j in listed(svc, "erin", "?limit=100")] == ids[::-1]
    bad = http(svc, "GET", "/api/v1/jobs?limit=lots", "erin")
    assert bad.status_code == 400 and bad.json()["error"].startswith("limit must be an integer")


def test_state_filters_with_and_without_limit(held):
    svc = held
    first, second, third = (submit(svc, "frank", f"frank-{i}") for i in range(3))
    assert http(svc, "DELETE", f"/api/v1/jobs/{first}", "frank").json()["state"] == "cancelled"
    assert [j["id"] for j in listed(svc, "frank", "?state=queued")] == [third, second]
    assert [j["id"] for j in listed(svc, "frank", "?state=cancelled")] == [first]
    assert [j["id"] for j in listed(svc, "frank", "?state=queued&state=cancelled")] == [third, second, first]
    assert [j["id"] for j in listed(svc, "frank", "?state=queued&limit=1")] == [third]
    assert listed(svc, "frank", "?state=done") == []
    assert all(j["state"] == "queued" for j in listed(svc, "frank", "?state=queued"))
    release(svc)
    for job_id in (second, third):
        assert client(svc, "frank").wait(job_id, timeout=60)["state"] == "done"
    assert [j["id"] for j in listed(svc, "frank", "?state=done")] == [third, second]
    assert listed(svc, "frank", "?state=queued") == []


def test_users_see_their_own_jobs_and_admins_see_everyones_newest_first(svc):
    a1 = submit(svc, "grace", "grace-1")
    b1 = submit(svc, "heidi", "heidi-1")
    a2 = submit(svc, "grace", "grace-2")
    assert [j["id"] for j in listed(svc, "grace")] == [a2, a1]
    assert [j["id"] for j in listed(svc, "heidi")] == [b1]
    everyone = [j["id"] for j in listed(svc, "ops", "?limit=10000")]
    assert [i for i in everyone if i in (a1, b1, a2)] == [a2, b1, a1]
    assert everyone.index(a2) < everyone.index(b1) < everyone.index(a1)
    assert {j["user"] for j in listed(svc, "ops", "?limit=10000")} >= {"grace", "heidi"}
    assert listed(svc, "ops", "?all=0") == []  # an admin's own jobs only: none submitted


def test_the_python_client_lists_the_same_way(held):
    svc = held
    ivan = client(svc, "ivan")
    ids = [ivan.submit(BELL_QASM2, shots=20, name=f"ivan-{i}", circuit_format="qasm2")["id"] for i in range(3)]
    ivan.cancel(ids[0])
    assert [j["id"] for j in ivan.jobs()] == ids[::-1]
    assert [j["id"] for j in ivan.jobs(limit=2)] == ids[:0:-1]
    assert [j["id"] for j in ivan.jobs(["queued"])] == [ids[2], ids[1]]
    assert [j["id"] for j in ivan.jobs(["queued", "cancelled"], limit=3)] == ids[::-1]
    assert [j["id"] for j in ivan.jobs(["cancelled"])] == [ids[0]]
