"""A real JupyterHub on loopback: the QPU service as a Hub-managed service, users as Hub users.

Dummy authenticator and local process spawner (the deployment's demo settings); each user's
code runs in a real kernel of their own server, reached through the Hub's proxy.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from support.hub import CONFIG, run_as, start_hub

SUBMIT_AND_LIST = """
import json, qmio_lab
from qiskit import QuantumCircuit
from qmio_lab.qpu import default_client
qc = QuantumCircuit(2); qc.h(0); qc.cx(0, 1); qc.measure_all()
job = qmio_lab.get_backend("qpu").run(qc, shots=100)
shots = sum(job.result(timeout=120).get_counts().values())
jobs = default_client().jobs()
print(json.dumps({"job": job.job_id(), "shots": shots, "users": sorted({j["user"] for j in jobs}),
                  "ids": [j["id"] for j in jobs], "url": default_client().url}))
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = start_hub(tmp_path_factory.mktemp("hub"))
    yield hub
    hub.stop(timeout=30)


def test_users_are_hub_users_and_see_only_their_jobs(hub):
    alice = run_as(hub, "alice", SUBMIT_AND_LIST)
    bob = run_as(hub, "bob", SUBMIT_AND_LIST)
    assert alice["shots"] == 100 and bob["shots"] == 100
    assert alice["url"] == f"{hub.url}/services/qmio-qpu"  # from the server's environment
    assert alice["users"] == ["alice"] and alice["job"] in alice["ids"]
    assert bob["users"] == ["bob"] and alice["job"] not in bob["ids"]
    ops = run_as(hub, "ops", SUBMIT_AND_LIST)  # a Hub admin is a QPU admin
    assert {"alice", "bob", "ops"} <= set(ops["users"])
    assert {alice["job"], bob["job"]} <= set(ops["ids"])


def test_service_refuses_requests_without_a_hub_identity(hub):
    base = f"{hub.url}/services/qmio-qpu/api/v1"
    assert requests.get(f"{base}/jobs", timeout=30).status_code == 401
    bad = requests.get(f"{base}/jobs", headers={"Authorization": "token not-a-hub-token"}, timeout=30)
    assert bad.status_code == 401 and "token" in bad.json()["error"]


HUB_ADMIN_CALLS = """
import json, os, requests
api, token = os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"]
h = {"Authorization": f"token {token}"}
calls = {"list users": requests.get(f"{api}/users", headers=h, timeout=30).status_code,
         "create user": requests.post(f"{api}/users/mallory", headers=h, timeout=30).status_code,
         "stop another server": requests.delete(f"{api}/users/alice/server", headers=h, timeout=30).status_code,
         "new token": requests.post(f"{api}/users/ops/tokens", headers=h, json={"scopes": ["admin:users"]},
                                    timeout=30).status_code}
print(json.dumps(calls))
"""


def test_a_user_servers_token_cannot_call_hub_admin_apis(hub):
    """Even the server of a Hub admin holds a token of least privilege: kernels run user code."""
    calls = run_as(hub, "ops", HUB_ADMIN_CALLS)
    assert all(status == 403 for status in calls.values()), calls
    users = requests.get(f"{hub.api}/users", headers=hub.headers, timeout=30).json()
    assert "mallory" not in {u["name"] for u in users}


def test_the_dummy_authenticator_needs_the_demo_switch(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMIO_HUB")}
    out = subprocess.run([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG), "--show-config"],
                         cwd=tmp_path, env={**env, "QMIO_HUB_AUTHENTICATOR": "dummy"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "QMIO_HUB_DEMO=1" in out.stdout + out.stderr
