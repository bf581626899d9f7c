"""``qmio tunnel --slurm``: the tunnel is a real SLURM job in the qpu partition (the packaged
slurm/qpu.sh), as at QMIO; QMIO's own client runs through it, and the job's end closes it."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from support.circuits import BELL_QASM2
from support.qmio_client import require_client, run_client
from support.services import USERS, ServiceProcess
from support.slurm import diagnostics

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def gated(slurm_conf, tmp_path_factory):
    require_client()
    users = {**USERS, "root": {"token": USERS["root"]["token"], "role": "user"}}
    svc = ServiceProcess(tmp_path_factory.mktemp("tunnel-slurm"), "--slurm-partition", "qpu", users=users).start()
    yield svc
    svc.stop()


def test_a_slurm_tunnel_serves_the_qmio_client_until_its_job_ends(gated):
    env = {**os.environ, "QMIO_QPU_URL": gated.url, "QMIO_QPU_TOKEN": USERS["root"]["token"]}
    env.pop("SLURM_JOB_ID", None)
    out = subprocess.run([sys.executable, "-m", "qmio_lab.cli", "tunnel", "--slurm", "--time", "00:02:00"],
                         capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, f"{out.stderr}\n{diagnostics()}"
    endpoint = out.stdout.strip().removeprefix("export ZMQ_SERVER=")
    (tunnel,) = [t for t in gated.http("GET", "/api/v1/tunnels", user="root").json()["tunnels"]
                 if t["endpoint"] == endpoint]
    job_id = tunnel["slurm_job_id"]
    assert job_id and job_id.isdigit()
    state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%P %T"], capture_output=True, text=True).stdout.split()
    assert state == ["qpu", "RUNNING"]
    (reply,) = run_client(endpoint, [{"circuit": BELL_QASM2, "shots": 200}])
    assert sum(reply["results"]["c"].values()) == 200
    job = gated.http("GET", f"/api/v1/jobs/{reply['execution_metrics']['job_id']}", user="root").json()
    assert job["slurm_job_id"] == job_id  # each request passed the SLURM gate as this job
    subprocess.run(["scancel", job_id], check=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        views = {t["id"]: t for t in gated.http("GET", "/api/v1/tunnels", user="root").json()["tunnels"]}
        if views[tunnel["id"]]["state"] == "closed":
            break
        time.sleep(0.5)
    assert views[tunnel["id"]]["state"] == "closed", "the tunnel outlived its SLURM job"


def test_reservation_needs_slurm(gated):
    env = {**os.environ, "QMIO_QPU_URL": gated.url, "QMIO_QPU_TOKEN": USERS["root"]["token"]}
    out = subprocess.run([sys.executable, "-m", "qmio_lab.cli", "tunnel", "--reservation", "r1"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "--slurm" in out.stderr
