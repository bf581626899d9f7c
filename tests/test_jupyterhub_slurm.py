"""JupyterHub sessions as SLURM jobs: the deployment's SLURM profile against the real parts.

A real JupyterHub (deploy/jupyterhub/, ``QMIO_HUB_SPAWNER=slurm``) spawns each user's server with
batchspawner's SlurmSpawner on the real SLURM of tests/slurm/slurm.sh, as a job of that user's
unix account; the QPU service is Hub-managed and SLURM-gated (partition ``qpu``). Kernels of those
servers run ``%%qmio`` cells and the emulator, whose Dask workers become SLURM jobs of the same user.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from support.circuits import BELL_QASM2
from support.cli import wait_for
from support.hub import (ADMIN_TOKEN, Hub, log_in, request_server, spawn_from_form, start_hub, start_server,
                         stop_server)
from support.kernel_ws import new_kernel, run_cells_in_new_kernel
from support.missing import missing
from support.slurm import diagnostics
from support.unix_users import can_use_checkout, traversable_checkout, unix_users

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]

ALICE, BOB, CAROL = "qmiohub-alice", "qmiohub-bob", "qmiohub-carol"
SESSION = "spawner-jupyterhub"  # batchspawner's job name for a user server

QMIO_CELL = "%%qmio --target qpu --shots 200 -o result\n" + BELL_QASM2
REPORT_CELL = """
import getpass, json, os
from qmio_lab.qpu import default_client
jobs = default_client().jobs()
print(json.dumps({"counts": result.get_counts(), "unix_user": getpass.getuser(),
                  "slurm_job": os.environ.get("SLURM_JOB_ID"), "qpu_url": default_client().url,
                  "jobs": [{"id": j["id"], "user": j["user"], "slurm_job_id": j.get("slurm_job_id")} for j in jobs]}))
"""
PEEK_CELL = """
import json
from qmio_lab.qpu import QPUServiceError, default_client
try:
    default_client().result({job!r})
    print(json.dumps({{"status": 200}}))
except QPUServiceError as exc:
    print(json.dumps({{"status": exc.status}}))
"""
EMULATOR_CELL = """
import getpass, json, os
import qmio_lab
from qiskit import QuantumCircuit
from qmio_lab.emulator import get_client
qc = QuantumCircuit(2); qc.h(0); qc.cx(0, 1); qc.measure_all()
counts = qmio_lab.get_backend("emulator").run(qc, shots=300).result().get_counts()
workers = sorted(set(get_client().run(lambda: os.environ["SLURM_JOB_ID"]).values()))
print(json.dumps({"counts": counts, "workers": workers, "user": getpass.getuser()}))
"""


def squeue(*users: str) -> list[dict[str, str]]:
    """SLURM's jobs of ``users``, read from squeue's delimited output."""
    out = subprocess.run(["squeue", "-h", "-u", ",".join(users), "-o", "%i|%u|%P|%T|%j"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    keys = ("id", "user", "partition", "state", "name")
    return [dict(zip(keys, line.split("|"))) for line in out.stdout.split()]


def session_jobs(user: str) -> list[dict[str, str]]:
    return [j for j in squeue(user) if j["name"] == SESSION]


def last_json(cells: list[tuple[str, list[str]]]) -> dict:
    for stdout, errors in cells:
        assert not errors, "a cell raised:\n" + "\n".join(errors)
    return json.loads(cells[-1][0].strip().splitlines()[-1])


@pytest.fixture(scope="module")
def accounts(slurm_conf):
    """Three unix users whose jobs can run this checkout's venv; their state under /tmp."""
    if not shutil.which("sudo"):
        missing("sudo: the SLURM profile submits each session as its user (make test installs it)")
    state = Path(tempfile.mkdtemp(prefix="qmio-hub-slurm-"))
    state.chmod(0o711)
    with traversable_checkout(), unix_users([ALICE, BOB, CAROL], state / "home") as names:
        out = can_use_checkout(ALICE)
        if out.returncode != 0:
            missing(f"{ALICE} cannot use this checkout's venv ({out.stderr.strip()[-500:]}); "
                    "its files must be readable by other users (umask 022)")
        yield {"state": state, "users": names}
        for name in names:
            subprocess.run(["scancel", "-u", name], timeout=30)
        wait_for(lambda: not squeue(*names), 60, f"jobs of {names} outlived the test\n{diagnostics()}", interval=0.3)
    shutil.rmtree(state, ignore_errors=True)


HUB_SETTINGS = {
    "QMIO_HUB_SPAWNER": "slurm",
    "QMIO_HUB_PARTITION": "qpu",
    "QMIO_HUB_PARTITIONS": "qpu,emulator",
    "QMIO_HUB_RUNTIME": "00:30:00",
    "QMIO_HUB_MEMORY": "1G",
    # a session's emulator: one Dask worker, a SLURM job in partition emulator
    "DASK_QMIO__EMULATOR__CLUSTER": "slurm",
    "DASK_QMIO__EMULATOR__SLURM__ADAPT": '{"minimum": 1, "maximum": 1}',
    "DASK_JOBQUEUE__SLURM__WALLTIME": "00:10:00",
    "DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS": '{"host": "127.0.0.1"}',
}


@pytest.fixture(scope="module")
def hub(accounts):
    state = accounts["state"] / "hub"
    state.mkdir()
    hub = start_hub(state, HUB_SETTINGS)
    yield hub
    running = [user for user in accounts["users"] if has_server(hub, user)]
    hub.stop()  # a Hub that stops, stops its servers: their jobs end with it
    wait_for(lambda: not [j for user in running for j in session_jobs(user)], 60,
             f"session jobs of {running} outlived the Hub\n{diagnostics()}", interval=0.3)


def has_server(hub: Hub, user: str) -> bool:
    resp = requests.get(f"{hub.api}/users/{user}", headers=hub.headers, timeout=30)
    return resp.status_code == 200 and bool(resp.json().get("servers"))


@pytest.fixture
def sessions(hub):
    """Alice and Bob log in and start their servers from the spawn page, choosing partition qpu
    (both at once: SLURM starts both jobs together); again if an earlier test stopped one, so
    that tests pass in any order."""
    for user in (ALICE, BOB):
        if not has_server(hub, user):
            spawn_from_form(hub, log_in(hub, user), {"partition": "qpu"})
    return {user: start_server(hub, user) for user in (ALICE, BOB)}


def test_each_users_server_is_a_slurm_job_of_that_user_in_the_qpu_partition(hub, sessions):
    for user in (ALICE, BOB):
        (job,) = session_jobs(user)
        assert (job["user"], job["partition"], job["state"]) == (user, "qpu", "RUNNING"), job
    # the session's own job, as the lab panel shows it (the server extension reads SLURM itself)
    view = requests.get(f"{sessions[ALICE]}/qmio/emulator", headers={"Authorization": f"token {ADMIN_TOKEN}"},
                        timeout=30).json()["session_job"]
    (job,) = session_jobs(ALICE)
    assert (view["id"], view["partition"], view["state"]) == (job["id"], "qpu", "running"), view
    assert 25 * 60 < view["time_left_s"] <= 30 * 60 and view["warning"] is None


def test_qmio_cells_run_on_the_gated_qpu_and_stay_each_users_own(hub, sessions):
    alice = last_json(run_cells_in_new_kernel(sessions[ALICE], ADMIN_TOKEN, ["%load_ext qmio_lab", QMIO_CELL, REPORT_CELL]))
    bob = last_json(run_cells_in_new_kernel(sessions[BOB], ADMIN_TOKEN, ["%load_ext qmio_lab", QMIO_CELL, REPORT_CELL]))
    for user, seen in ((ALICE, alice), (BOB, bob)):
        assert sum(seen["counts"].values()) == 200 and seen["unix_user"] == user
        assert seen["qpu_url"] == f"{hub.url}/services/qmio-qpu"  # the Hub-managed service
        (job,) = session_jobs(user)
        assert seen["slurm_job"] == job["id"]
        assert {j["user"] for j in seen["jobs"]} == {user}  # each sees only their own jobs ...
        # ... which passed the SLURM gate as their own session's job
        assert {j["slurm_job_id"] for j in seen["jobs"]} == {job["id"]}
    assert not {j["id"] for j in alice["jobs"]} & {j["id"] for j in bob["jobs"]}
    # nor can Bob read Alice's result by its id
    peek = PEEK_CELL.format(job=alice["jobs"][0]["id"])
    (stdout, errors), = run_cells_in_new_kernel(sessions[BOB], ADMIN_TOKEN, [peek])
    assert not errors and json.loads(stdout.strip().splitlines()[-1])["status"] == 403, (stdout, errors)


def test_the_emulator_of_a_session_runs_its_workers_as_slurm_jobs_of_that_user(hub, sessions):
    with new_kernel(sessions[ALICE], ADMIN_TOKEN, timeout=240) as run:
        seen = last_json([run(EMULATOR_CELL)])
        assert sum(seen["counts"].values()) == 300 and set(seen["counts"]) <= {"00", "11"}
        workers = {j["id"]: j for j in squeue(ALICE)}
        assert seen["workers"] and set(seen["workers"]) <= set(workers), (seen, workers, diagnostics())
        for job_id in seen["workers"]:
            assert (workers[job_id]["user"], workers[job_id]["partition"]) == (ALICE, "emulator")
            assert workers[job_id]["name"] != SESSION
    # the kernel has ended: its cluster closed, and SLURM cancelled the worker jobs
    wait_for(lambda: not set(seen["workers"]) & {j["id"] for j in squeue(ALICE)}, 60,
             f"worker jobs {seen['workers']} outlived their kernel\n{diagnostics()}", interval=0.3)


def test_a_session_outside_the_qpu_partition_is_refused_with_how_to_get_access(hub):
    spawn_from_form(hub, log_in(hub, CAROL), {"partition": "emulator"})  # the spawn page's choice
    server = start_server(hub, CAROL)
    (job,) = session_jobs(CAROL)
    assert (job["partition"], job["state"]) == ("emulator", "RUNNING")
    (_, (stdout, errors)) = run_cells_in_new_kernel(server, ADMIN_TOKEN, ["%load_ext qmio_lab", QMIO_CELL])
    said = stdout + "\n".join(errors)  # IPython prints a UsageError as one line on stderr
    assert "UsageError" in said and f"SLURM job {job['id']} runs in partition 'emulator'" in said, said
    assert "the QPU is reachable only from partition 'qpu'" in said and "--partition qpu" in said
    assert "a Jupyter session started in partition qpu" in said and "qmio tunnel --slurm" in said
    stop_server(hub, CAROL)


def test_server_options_other_than_an_offered_partition_are_refused(hub):
    bad = request_server(hub, CAROL, {"partition": "debug"})
    assert bad.status_code == 400 and "choose one of qpu, emulator" in bad.json()["message"], bad.text
    sneaky = request_server(hub, CAROL, {"partition": "qpu", "options": "--uid=0"})
    assert sneaky.status_code == 400 and "'options'" in sneaky.json()["message"], sneaky.text
    assert not session_jobs(CAROL)
    stranger = request_server(hub, "qmiohub-no-account")  # a Hub user SLURM cannot run jobs for
    assert stranger.status_code == 409 and "useradd -m qmiohub-no-account" in stranger.json()["message"], stranger.text


def test_stopping_a_server_cancels_its_slurm_job(hub, sessions):
    (job,) = session_jobs(BOB)
    stop_server(hub, BOB)
    wait_for(lambda: job["id"] not in {j["id"] for j in squeue(BOB)}, 60,
             f"session job {job['id']} still queued after its server stopped\n{diagnostics()}", interval=0.3)
