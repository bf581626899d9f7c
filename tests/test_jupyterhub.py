"""A real JupyterHub on loopback: the QPU service as a Hub-managed service, users as Hub users.

Dummy authenticator and local process spawner (the deployment's demo settings); each user's
code runs in a real kernel of their own server, reached through the Hub's proxy.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from support.kernel_ws import run_in_new_kernel
from support.missing import missing

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "jupyterhub" / "jupyterhub_config.py"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_proxy() -> str:
    local = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    found = str(local) if local.exists() else shutil.which("configurable-http-proxy")
    if not found:
        missing("configurable-http-proxy (make test installs it with npm)")
    return found


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    state = tmp_path_factory.mktemp("hub")
    port = free_port()
    wrapper = state / "test_config.py"
    wrapper.write_text(
        f"c = get_config()\nload_subconfig({str(CONFIG)!r})\n"
        f"c.JupyterHub.services.append({{'name': 'test-admin', 'api_token': {ADMIN_TOKEN!r}}})\n"
        "c.JupyterHub.load_roles.append({'name': 'test-admin', 'services': ['test-admin'], "
        "'scopes': ['admin:users', 'admin:servers', 'access:servers', 'list:users', 'read:users']})\n"
    )
    env = {**os.environ, "QMIO_HUB_PORT": str(port), "QMIO_HUB_API_PORT": str(free_port()),
           "QMIO_HUB_PROXY_API_PORT": str(free_port()), "QMIO_QPU_PORT": str(free_port()),
           "QMIO_HUB_STATE": str(state), "QMIO_HUB_PROXY": find_proxy(), "QMIO_HUB_ADMINS": "ops",
           "QMIO_HUB_DEMO": "1"}
    for var in ("QMIO_QPU_URL", "QMIO_QPU_TOKEN", "QMIO_LAB_HOME"):
        env.pop(var, None)
    log = open(state / "hub.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(wrapper)], cwd=state,
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    api = f"{url}/hub/api"
    headers = {"Authorization": f"token {ADMIN_TOKEN}"}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, (state / "hub.log").read_text()[-5000:]
        try:
            if requests.get(f"{url}/services/qmio-qpu/metrics", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError("hub or QPU service did not come up:\n" + (state / "hub.log").read_text()[-5000:])
    info = {"url": url, "api": api, "headers": headers, "state": state}
    yield info
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def start_server(hub: dict, user: str) -> str:
    """The user's server URL, starting the server unless an earlier test left it running."""
    requests.post(f"{hub['api']}/users/{user}", headers=hub["headers"], timeout=30)
    model = requests.get(f"{hub['api']}/users/{user}", headers=hub["headers"], timeout=30).json()
    if not model.get("servers", {}).get("", {}).get("ready"):
        resp = requests.post(f"{hub['api']}/users/{user}/server", headers=hub["headers"], timeout=60)
        assert resp.status_code in (201, 202), resp.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        model = requests.get(f"{hub['api']}/users/{user}", headers=hub["headers"], timeout=30).json()
        if model.get("servers", {}).get("", {}).get("ready"):
            return f"{hub['url']}/user/{user}"
        time.sleep(0.5)
    raise AssertionError(f"{user}'s server did not start:\n" + (hub["state"] / "hub.log").read_text()[-5000:])


def run_as(hub: dict, user: str, code: str) -> dict:
    stdout = run_in_new_kernel(start_server(hub, user), ADMIN_TOKEN, code)
    return json.loads(stdout.strip().splitlines()[-1])


def test_users_are_hub_users_and_see_only_their_jobs(hub):
    alice = run_as(hub, "alice", SUBMIT_AND_LIST)
    bob = run_as(hub, "bob", SUBMIT_AND_LIST)
    assert alice["shots"] == 100 and bob["shots"] == 100
    assert alice["url"] == f"{hub['url']}/services/qmio-qpu"  # from the server's environment
    assert alice["users"] == ["alice"] and alice["job"] in alice["ids"]
    assert bob["users"] == ["bob"] and alice["job"] not in bob["ids"]
    ops = run_as(hub, "ops", SUBMIT_AND_LIST)  # a Hub admin is a QPU admin
    assert {"alice", "bob", "ops"} <= set(ops["users"])
    assert {alice["job"], bob["job"]} <= set(ops["ids"])


def test_service_refuses_requests_without_a_hub_identity(hub):
    base = f"{hub['url']}/services/qmio-qpu/api/v1"
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
    users = requests.get(f"{hub['api']}/users", headers=hub["headers"], timeout=30).json()
    assert "mallory" not in {u["name"] for u in users}


def test_the_dummy_authenticator_needs_the_demo_switch(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QMIO_HUB")}
    out = subprocess.run([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG), "--show-config"],
                         cwd=tmp_path, env={**env, "QMIO_HUB_AUTHENTICATOR": "dummy"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "QMIO_HUB_DEMO=1" in out.stdout + out.stderr
