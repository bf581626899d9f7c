"""The QMIO panel's view of the emulator's SLURM worker jobs, against the real SLURM.

README (QMIO sidebar): "the emulator cluster: kind, state (`not started` until a cluster
exists), workers and, with `slurm`, the Dask worker jobs SLURM holds for you"; the server
extension reports them "for `slurm`, the Dask worker jobs SLURM holds for this user (those of
kernels' clusters included), read from `squeue`" (qmio_lab/labserver/emulator_state.py).

A real `jupyter server` with the qmio_lab extension answers `GET /qmio/emulator`; worker jobs come
from a dask-jobqueue SLURMCluster made from configuration alone, in this process as a kernel makes
it, or inside the server when the lab runs OpenQASM on the emulator. Each test's jobs carry a job
name of their own (`jobqueue.slurm.name`, as a site may set it), so other SLURM work on the
machine never shows in what a test compares. SLURM comes from tests/slurm/slurm.sh.
"""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import dask.config
import pytest
import requests
import yaml

import qmio_lab.emulator  # noqa: F401  (registers the jobqueue.* defaults before any dask.config.set)
from qmio_lab.labserver.emulator_state import EmulatorWatch

from support.circuits import BELL_QASM2
from support.cli import JupyterServer, isolated_env, wait_for
from support.slurm import diagnostics, start_two_workers, two_worker_settings

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]


def unique_name(what: str) -> str:
    return f"qmio-{what}-{os.getpid()}-{secrets.token_hex(3)}"


def nested(dotted: dict) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``: dask YAML as a site would write it."""
    out: dict = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def lab_server(home: Path, settings: dict) -> JupyterServer:
    """A Jupyter server whose only configuration is ``~/.config/dask/lab.yaml`` holding ``settings``."""
    (home / ".config" / "dask").mkdir(parents=True, exist_ok=True)
    (home / ".config" / "dask" / "lab.yaml").write_text(yaml.safe_dump(nested(settings)))
    return JupyterServer(home, isolated_env(home, drop_qmio_settings=True)).wait_ready()


def squeue_rows(name: str) -> set[tuple[str, str, str]]:
    """(job id, partition, state) of this user's jobs called ``name``, as squeue prints them."""
    out = subprocess.run(["squeue", "-h", "-u", str(os.getuid()), "-n", name, "-o", "%i|%P|%T"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return {tuple(line.split("|")) for line in out.stdout.split()}  # type: ignore[misc]


def view_rows(view: dict) -> set[tuple[str, str, str]]:
    return {(j["id"], j["partition"], j["state"].upper()) for j in view["slurm_jobs"]}


@pytest.fixture(scope="module")
def kernel_job_name() -> str:
    return unique_name("kernel")


@pytest.fixture(scope="module")
def lab(slurm_conf, tmp_path_factory, kernel_job_name):
    """The lab's Jupyter server, configured for SLURM, that has made no cluster of its own."""
    home = tmp_path_factory.mktemp("lab-slurm-home")
    server = lab_server(home, {"qmio.emulator.cluster": "slurm", "jobqueue.slurm.name": kernel_job_name})
    yield server
    server.terminate()


@pytest.fixture
def kernel_cluster(slurm_conf, tmp_path, kernel_job_name):
    """Two worker jobs of a kernel's emulator cluster (made here, as a notebook kernel makes it)."""
    with dask.config.set({"jobqueue.slurm.name": kernel_job_name}):
        try:
            cluster, client = start_two_workers(tmp_path / "jobqueue", timeout=90)
        except TimeoutError:
            pytest.fail(f"two SLURM workers did not connect in 90 s\n{diagnostics()}", pytrace=False)
    ids = set(client.run(lambda: os.environ["SLURM_JOB_ID"]).values())
    assert len(ids) == 2, ids
    yield cluster, client, ids
    client.close()
    cluster.close()
    wait_for(lambda: not squeue_rows(kernel_job_name), 60, f"worker jobs still queued\n{diagnostics()}")


def test_the_view_lists_a_kernels_worker_jobs_as_squeue_shows_them(lab, kernel_cluster, kernel_job_name):
    _, _, ids = kernel_cluster

    def agrees() -> dict | None:
        view = lab.qmio("emulator")
        return view if {j["id"] for j in view["slurm_jobs"]} == ids and view_rows(view) == squeue_rows(kernel_job_name) else None

    view = wait_for(agrees, 30, f"the view never matched squeue for jobs {sorted(ids)}\n{diagnostics()}", interval=0.5)
    assert view["kind"] == "slurm" and "slurm_error" not in view
    assert view["state"] == "running"  # another process's cluster: its jobs, no workers of its own
    assert view["workers"] == [] and view["address"] is None
    for job in view["slurm_jobs"]:
        assert (job["name"], job["partition"], job["state"]) == (kernel_job_name, "emulator", "running"), job
        assert job["elapsed"]


def test_cancelled_and_closed_worker_jobs_leave_the_view(lab, kernel_cluster, kernel_job_name):
    cluster, client, ids = kernel_cluster
    wait_for(lambda: {j["id"] for j in lab.qmio("emulator")["slurm_jobs"]} == ids, 30,
             f"the view never listed {sorted(ids)}\n{diagnostics()}", interval=0.5)
    victim = sorted(ids)[0]
    subprocess.run(["scancel", victim], check=True, timeout=30)

    def victim_gone() -> dict | None:
        view = lab.qmio("emulator")
        listed = {j["id"] for j in view["slurm_jobs"]}
        return view if victim not in listed and victim not in {r[0] for r in squeue_rows(kernel_job_name)} else None

    view = wait_for(victim_gone, 60, f"scancelled job {victim} still listed\n{diagnostics()}", interval=0.5)
    assert sorted(ids - {victim})[0] in {j["id"] for j in view["slurm_jobs"]}  # the other one stays

    client.close()
    cluster.close()  # dask-jobqueue scancels the rest (and any replacement adapt started)

    def empty() -> dict | None:
        view = lab.qmio("emulator")
        return view if view["slurm_jobs"] == [] and not squeue_rows(kernel_job_name) else None

    view = wait_for(empty, 60, f"worker jobs still listed after close\n{diagnostics()}", interval=0.5)
    assert view["state"] == "not started" and view["kind"] == "slurm"


def test_the_labs_own_slurm_cluster_is_listed_and_cancelled_when_the_lab_stops(slurm_conf, tmp_path):
    name = unique_name("lab")
    settings = {**two_worker_settings(tmp_path / "jobqueue"), "jobqueue.slurm.name": name,
                "qmio.emulator.slurm.adapt": {"minimum": 1, "maximum": 1}}
    server = lab_server(tmp_path / "home", settings)
    try:
        assert server.qmio("emulator")["state"] == "not started"
        ran = requests.post(f"{server.url}/qmio/emulator/run", json={"qasm": BELL_QASM2, "shots": 200},
                            headers=server.headers, timeout=240)
        assert ran.status_code == 200, f"{ran.text}\n{diagnostics()}\n{server.log()[-3000:]}"
        counts = ran.json()["counts"]
        assert sum(counts.values()) == 200 and set(counts) <= {"00", "11"}  # noiseless Bell
        view = server.qmio("emulator")
        assert view["kind"] == "slurm" and view["state"] == "running" and len(view["workers"]) == 1
        assert view["address"].startswith("tls://127.0.0.1:")  # TLS with a key made for this cluster
        rows = squeue_rows(name)
        assert len(rows) == 1 and view_rows(view) == rows, (view, rows)
        (job_id, partition, state), = rows
        assert (partition, state) == ("emulator", "RUNNING")
    finally:
        server.terminate()
    # stopping the lab closes the cluster it made: SLURM cancels its worker job
    wait_for(lambda: not squeue_rows(name), 60, f"job {name} still queued after the lab stopped\n{diagnostics()}",
             interval=0.5)
    with dask.config.set({"qmio.emulator.cluster": "slurm", "jobqueue.slurm.name": name}):
        after = EmulatorWatch().state()  # what a new lab server would show now
    assert after["slurm_jobs"] == [] and after["state"] == "not started"
