"""The SLURM-gated QPU against a real SLURM: only running jobs in partition qpu may submit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from qmio_lab.qpu.slurm_gate import SlurmGate, SlurmGateRefused
from support.services import USERS, ServiceProcess
from support.slurm import diagnostics

pytestmark = pytest.mark.slurm

SUBMIT = """
import json, sys
from qiskit import QuantumCircuit
from qmio_lab.qpu import QPUClient, QPUServiceError
qc = QuantumCircuit(1); qc.x(0); qc.measure_all()
client = QPUClient(sys.argv[1], sys.argv[2])
try:
    job = client.submit(qc, shots=100)
    print(json.dumps({"state": client.wait(job["id"], timeout=60)["state"], "slurm": job["slurm_job_id"]}))
except QPUServiceError as exc:
    print(json.dumps({"status": exc.status, "error": exc.payload.get("error")}))
"""


@pytest.fixture(scope="module")
def gated(slurm_conf, tmp_path_factory):
    users = {**USERS, "root": {"token": USERS["root"]["token"], "role": "user"}}
    svc = ServiceProcess(tmp_path_factory.mktemp("gated"), "--slurm-partition", "qpu", users=users).start()
    yield svc
    svc.stop()


def srun(partition: str, svc: ServiceProcess, user: str = "root") -> dict:
    out = subprocess.run(
        ["srun", "--partition", partition, "--ntasks", "1", "--time", "2", sys.executable, "-c", SUBMIT,
         svc.url, USERS[user]["token"]],
        capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, f"{out.stdout}{out.stderr}\n{diagnostics()}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_submission_from_a_qpu_job_runs(gated):
    reply = srun("qpu", gated)
    assert reply.get("state") == "done", reply
    assert reply["slurm"] and reply["slurm"].isdigit()


def test_refused_outside_slurm_and_from_other_partitions(gated):
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    out = subprocess.run([sys.executable, "-c", SUBMIT, gated.url, USERS["root"]["token"]],
                         capture_output=True, text=True, timeout=120, env=env)
    reply = json.loads(out.stdout.strip().splitlines()[-1])
    assert reply["status"] == 403 and "carries no SLURM_JOB_ID" in reply["error"]
    reply = srun("emulator", gated)
    assert reply["status"] == 403
    assert "runs in partition 'emulator'; the QPU is reachable only from partition 'qpu'" in reply["error"]


def test_finished_pending_and_foreign_jobs_are_refused(gated):
    sub = subprocess.run(["sbatch", "--parsable", "--partition", "qpu", "--output", "/dev/null", "--wrap", "sleep 60"],
                         capture_output=True, text=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip().split(";")[0]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()
            if state == "RUNNING":
                break
            time.sleep(0.2)
        assert state == "RUNNING", diagnostics()
        body = {"circuits": [{"data": "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\ncreg c[1];\nmeasure q -> c;"}],
                "shots": 10, "slurm_job_id": job}
        as_alice = gated.http("POST", "/api/v1/jobs", user="alice", json=body)
        assert as_alice.status_code == 403 and f"SLURM job {job} belongs to 'root', not to 'alice'" in as_alice.json()["error"]
        assert gated.http("POST", "/api/v1/jobs", user="root", json=body).status_code == 201
        session = gated.http("POST", "/api/v1/sessions", user="alice", json={"max_time_s": 10})
        assert session.status_code == 403  # reservations are gated too
    finally:
        subprocess.run(["scancel", job], timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
            break
        time.sleep(0.2)
    gate = SlurmGate("qpu", ttl_s=0)
    with pytest.raises(SlurmGateRefused, match=f"SLURM job {job} is not running"):
        gate.check("root", job)
    with pytest.raises(SlurmGateRefused, match="is not a SLURM job id"):
        gate.check("root", "1; rm -rf /")
