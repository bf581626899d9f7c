"""The ``qmio`` command as a user runs it: a real subprocess with its own HOME and QMIO_LAB_HOME.

README: "`qmio demo`, `qmio lab [--port]`, `qmio calibration [--at TIME] [--json]`,
`qmio qpu serve [--port] [--users] [--time-scale] [--start-time] [--slurm-partition] [--hub]`";
`make lab` "first prints the calibration in force and a GHZ run on the simulated QPU
(`qmio demo`), then runs `qmio lab`", which "starts the QPU service, a Dask cluster and
JupyterLab, and prints the lab's URL with its token".

``--users`` is exercised by every ServiceProcess test, ``--slurm-partition`` by
tests/test_qpu_slurm_gate.py, ``--hub`` inside a Hub by tests/test_jupyterhub.py and
``--time-scale``/``--start-time`` across a window by tests/test_qpu_calendar.py; here the rest.
"""
from __future__ import annotations

import getpass
import html
import json
import os
import re
import stat
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from qmio_lab import __version__
from qmio_lab.device import Calibration, QmioDevice
from qmio_lab.device.schedule import CalibrationSchedule

from support.circuits import BELL_QASM2
from support.moments import packaged_calendar
from support.cli import (
    QMIO, QUIET_TIME, LoggedProcess, accepts_connections, descendants, discovery, free_port, get_json,
    isolated_env, lab_env, pid_alive, run_qmio, start_lab, wait_for,
)  # noqa: F401 - lab_env is a fixture

pytestmark = pytest.mark.timeout(240)

#: The packaged calendar (qmio.yaml): weekdays at 07:00 UTC for 30 minutes.
PACKAGED_SCHEDULE = CalibrationSchedule.from_config(packaged_calendar())
UTC = timezone.utc


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """Packaged defaults only (no DASK_QMIO__* from outside), HOME and QMIO_LAB_HOME in tmp."""
    return isolated_env(tmp_path / "home", drop_qmio_settings=True)


def calibration_in_force(at: datetime, seed: int = 2024) -> Calibration:
    """What the packaged calendar has in force at ``at``, computed in this process."""
    return QmioDevice(seed=seed, calibrated_at=PACKAGED_SCHEDULE.in_force_since(at)).calibration_at(at)


def ids_in_force_now(seed: int = 2024) -> set[str]:
    now = datetime.now(UTC)
    return {QmioDevice(seed=seed, calibrated_at=PACKAGED_SCHEDULE.in_force_since(now)).calibration.id}


# ---- qmio --version, usage ----------------------------------------------------------------------
def test_version_and_usage(env):
    out = run_qmio("--version", env=env)
    assert (out.returncode, out.stdout.strip()) == (0, f"qmio_lab {__version__}")
    bare = run_qmio(env=env)
    assert bare.returncode == 2 and "demo" in bare.stderr and "calibration" in bare.stderr


# ---- qmio demo --------------------------------------------------------------------------------
def parse_demo(stdout: str) -> dict:
    lines = stdout.splitlines()
    head = re.fullmatch(r"QMIO simulated QPU: (\d+) qubits, (\d+) ECR couplers", lines[0])
    cal = re.fullmatch(r"calibration (\S+) taken (\S+) \(([\d.]+) h ago\)", lines[1])
    ghz = re.search(r"^GHZ-(\d+) on physical qubits \[([\d, ]+)\], (\d+) shots:$", stdout, re.M)
    p = re.search(r"^P\(GHZ\) = ([\d.]+)$", stdout, re.M)
    assert head and cal and ghz and p, stdout
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^  ([01]+)\s+(\d+) ", stdout + "\n", re.M)}
    return {"qubits": int(head[1]), "couplers": int(head[2]), "calibration": cal[1],
            "taken_at": cal[2], "age_h": float(cal[3]), "n": int(ghz[1]),
            "layout": [int(x) for x in ghz[2].split(",")], "shots": int(ghz[3]), "p": float(p[1]),
            "counts": counts}


def test_demo_prints_the_calibration_in_force_and_a_noisy_ghz_run(env):
    before = ids_in_force_now()
    out = run_qmio("demo", env=env)
    after = ids_in_force_now()
    assert out.returncode == 0, out.stderr
    demo = parse_demo(out.stdout)
    assert (demo["qubits"], demo["couplers"]) == (32, 33)
    assert demo["calibration"] in before | after  # the snapshot the packaged calendar has in force
    assert 0 <= demo["age_h"] < 24 * 3 + 1       # a weekend is the longest gap between windows
    assert demo["n"] == 3 and demo["shots"] == 4000
    assert len(set(demo["layout"])) == 3 and all(0 <= q < 32 for q in demo["layout"])
    counts = demo["counts"]
    assert sum(counts.values()) == 4000 and all(len(k) == 3 for k in counts)
    good = counts.get("000", 0) + counts.get("111", 0)
    assert demo["p"] == pytest.approx(good / 4000, abs=5e-4)
    # a GHZ state on a noisy chip: mostly 000 and 111, in about equal parts, but not only them
    assert 0.75 < demo["p"] < 0.995, counts
    assert abs(counts.get("000", 0) - counts.get("111", 0)) < 0.15 * good


def test_demo_options_choose_width_shots_and_seed(env):
    before = ids_in_force_now(seed=11)
    out = run_qmio("demo", "--qubits", "2", "--shots", "500", "--seed", "11", env=env)
    assert out.returncode == 0, out.stderr
    demo = parse_demo(out.stdout)
    assert demo["calibration"] in before | ids_in_force_now(seed=11) and demo["calibration"].endswith("-s11")
    assert (demo["n"], demo["shots"], len(demo["layout"])) == (2, 500, 2)
    assert sum(demo["counts"].values()) == 500 and all(len(k) == 2 for k in demo["counts"])


@pytest.mark.parametrize("args, words", [
    (("--qubits", "40"), "--qubits must be from 2 to 32"),
    (("--qubits", "1"), "--qubits must be from 2 to 32"),
    (("--shots", "0"), "shots must be an integer from 1 to 100000"),
])
def test_demo_refuses_what_cannot_run_in_one_line(env, args, words):
    out = run_qmio("demo", *args, env=env)
    assert out.returncode == 2
    assert out.stderr.startswith("qmio: error: ") and words in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


# ---- qmio calibration ---------------------------------------------------------------------------
def test_calibration_prints_the_summary_in_force_now(env):
    before = ids_in_force_now()
    out = run_qmio("calibration", env=env)
    after = ids_in_force_now()
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert set(summary) == {"id", "taken_at", "age_hours", "t1_median_us", "t2_median_us",
                            "readout_error_median", "sx_error_median", "ecr_error_median"}
    assert summary["id"] in before | after
    assert 30 < summary["t1_median_us"] < 90 and 30 < summary["t2_median_us"] < 120  # T1 ≈ 54, T2e ≈ 66


@pytest.mark.parametrize("at, taken", [
    ("2026-11-24T12:00:00+00:00", "2026-11-24T07:30:00+00:00"),  # Tuesday noon: that morning's
    ("2026-11-24T07:10:00+00:00", "2026-11-23T07:30:00+00:00"),  # inside Tuesday's window: Monday's
    ("2026-11-23T06:59:00+00:00", "2026-11-20T07:30:00+00:00"),  # Monday before 07:00: Friday's
    ("2026-11-29T18:00:00+00:00", "2026-11-27T07:30:00+00:00"),  # Sunday: Friday's
    ("2026-11-24T13:00:00+01:00", "2026-11-24T07:30:00+00:00"),  # an offset is converted to UTC
    ("2026-11-24T12:00:00", "2026-11-24T07:30:00+00:00"),        # no offset means UTC
])
def test_calibration_at_shows_the_snapshot_of_the_last_window_drifted_to_that_time(env, at, taken):
    out = run_qmio("calibration", "--at", at, env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    t = datetime.fromisoformat(at)
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t
    expected = calibration_in_force(t).summary()
    assert summary["taken_at"] == taken
    assert summary == pytest.approx(expected)
    assert summary["age_hours"] == pytest.approx((t - datetime.fromisoformat(taken)).total_seconds() / 3600, abs=0.01)


def test_calibration_at_a_later_day_is_that_days_snapshot_not_todays_drifted(env):
    """Two days on, the chip has been recalibrated twice: the figures are the new snapshot's."""
    monday = json.loads(run_qmio("calibration", "--at", "2026-11-23T12:00:00+00:00", env=env).stdout)
    wednesday = json.loads(run_qmio("calibration", "--at", "2026-11-25T12:00:00+00:00", env=env).stdout)
    assert monday["id"] != wednesday["id"]
    assert wednesday["taken_at"] == "2026-11-25T07:30:00+00:00" and wednesday["age_hours"] == 4.5


def test_calibration_json_is_the_full_snapshot_and_seed_selects_the_chip(env):
    at = "2026-11-24T12:00:00+00:00"
    out = run_qmio("calibration", "--json", "--seed", "3", "--at", at, env=env)
    assert out.returncode == 0, out.stderr
    cal = Calibration.from_json(out.stdout)
    expected = calibration_in_force(datetime.fromisoformat(at), seed=3)
    assert cal.to_dict() == expected.to_dict()
    assert cal.num_qubits == 32 and len(cal.couplers) == 33 and cal.id.endswith("-s3")
    default_seed = Calibration.from_json(run_qmio("calibration", "--json", "--at", at, env=env).stdout)
    assert default_seed.id.endswith("-s2024")
    assert [q.t1 for q in default_seed.qubits] != [q.t1 for q in cal.qubits]


def test_calibration_refuses_a_time_it_cannot_read(env):
    out = run_qmio("calibration", "--at", "next tuesday", env=env)
    assert out.returncode == 2 and out.stdout == ""
    assert "'next tuesday' is not an ISO time" in out.stderr and "Traceback" not in out.stderr


# ---- qmio qpu serve -----------------------------------------------------------------------------
def serve(env: dict[str, str], *args: str, discovery_file: Path | None = None) -> LoggedProcess:
    """``qmio qpu serve ARGS`` (no --users unless given); returns once it says it is listening."""
    home = Path(env["HOME"])
    argv = [*QMIO, "qpu", "serve", *args]
    if discovery_file is not None:
        argv += ["--discovery", str(discovery_file)]
    proc = LoggedProcess(argv, env, home / f"serve-{len(list(home.glob('serve-*')))}.log")
    proc.wait_log("qmio qpu service listening on", timeout=60)
    return proc


def listening_url(proc: LoggedProcess) -> str:
    line = proc.wait_log("listening on", timeout=5)
    return re.search(r"listening on (\S+) ", line)[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_serve_without_users_makes_the_os_user_admin_and_keeps_state_in_the_lab_home(env):
    proc = serve(env, "--port", "0", "--start-time", QUIET_TIME)
    try:
        url = listening_url(proc)
        line = proc.wait_log("admin token for", timeout=5)
        user, token = re.fullmatch(r"admin token for (\S+): (\S+)", line.strip()).groups()
        assert user == getpass.getuser() and len(token) >= 16
        db = Path(env["QMIO_LAB_HOME"]) / "qpu" / "queue.sqlite"
        assert f"(db {db}," in proc.log() and db.exists()  # README: "state in $QMIO_LAB_HOME/qpu/queue.sqlite"
        assert requests.get(f"{url}/api/v1/status", headers=bearer("x" * 20), timeout=10).status_code == 401
        held = requests.put(f"{url}/api/v1/status", json={"maintenance": True}, headers=bearer(token), timeout=10)
        assert held.status_code == 200 and held.json()["state"] == "maintenance"  # admin-only call
        job = requests.post(f"{url}/api/v1/jobs", json={"circuits": [{"data": BELL_QASM2}], "shots": 10},
                            headers=bearer(token), timeout=30).json()
        assert job["user"] == user and job["state"] == "queued"
    finally:
        rc = proc.terminate()
    assert rc == 0, proc.log()


def test_serve_discovery_file_is_private_and_removed_on_stop(env, tmp_path):
    disc = tmp_path / "found-here" / "service.json"
    proc = serve(env, "--port", "0", "--start-time", QUIET_TIME, discovery_file=disc)
    try:
        info = json.loads(disc.read_text())
        assert set(info) == {"url", "token", "pid"} and info["pid"] == proc.pid
        assert stat.S_IMODE(disc.stat().st_mode) == 0o600
        assert info["token"] not in proc.log()  # with a discovery file the token is not printed
        status = requests.get(f"{info['url']}/api/v1/status", headers=bearer(info["token"]), timeout=10)
        assert status.status_code == 200 and status.json()["state"] == "online"
        port = int(info["url"].rsplit(":", 1)[1])
    finally:
        rc = proc.terminate()
    assert rc == 0, proc.log()
    assert not disc.exists()
    assert not accepts_connections("127.0.0.1", port)


def test_serve_host_port_and_seed(env):
    port = free_port()
    proc = serve(env, "--host", "127.0.0.2", "--port", str(port), "--seed", "11", "--start-time", QUIET_TIME)
    try:
        url = listening_url(proc)
        assert url == f"http://127.0.0.2:{port}"
        assert not accepts_connections("127.0.0.1", port)  # listening where --host says, only
        token = re.search(r"admin token for \S+: (\S+)", proc.log())[1]
        status = get_json(f"{url}/api/v1/status", headers=bearer(token))
        expected = QmioDevice(seed=11, calibrated_at=datetime(2026, 11, 24, 7, 30, tzinfo=UTC)).calibration
        assert status["calibration"]["id"] == expected.id
        snapshot = get_json(f"{url}/api/v1/calibrations/{expected.id}", headers=bearer(token))
        snapshot.pop("summary")
        assert snapshot == expected.to_dict()  # the chip of seed 11, figure for figure
    finally:
        rc = proc.terminate()
    assert rc == 0, proc.log()


def test_serve_time_scale_runs_the_device_clock_faster_from_the_start_time(env):
    start = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # a Saturday: no window until Monday 07:00
    proc = serve(env, "--port", "0", "--time-scale", "3600", "--start-time", start.isoformat())
    try:
        url = listening_url(proc)
        headers = bearer(re.search(r"admin token for \S+: (\S+)", proc.log())[1])

        def device_time() -> tuple[datetime, float]:
            t0 = time.monotonic()
            status = get_json(f"{url}/api/v1/status", headers=headers)
            t1 = time.monotonic()
            assert status["time_scale"] == 3600 and status["state"] == "online"
            return datetime.fromisoformat(status["device_time"]), (t0 + t1) / 2

        d1, r1 = device_time()
        assert start <= d1 < start + timedelta(hours=2)  # started at --start-time, not at the wall clock
        d2, r2 = wait_for(lambda: (x := device_time())[0] >= d1 + timedelta(hours=2) and x, 15,
                          "two device hours did not pass")
        ratio = (d2 - d1).total_seconds() / (r2 - r1)
        assert 2500 < ratio < 5000, ratio  # about one device hour per real second
    finally:
        proc.terminate()


def test_serve_start_time_without_offset_is_utc_and_jobs_run(env):
    """A naive --start-time once reached the clock as is and every submission failed with 500."""
    proc = serve(env, "--port", "0", "--start-time", "2026-11-24T12:00:00")
    try:
        url = listening_url(proc)
        headers = bearer(re.search(r"admin token for \S+: (\S+)", proc.log())[1])
        status = get_json(f"{url}/api/v1/status", headers=headers)
        assert datetime.fromisoformat(status["device_time"]).utcoffset() == timedelta(0)
        assert status["device_time"].startswith("2026-11-24T12:00")
        done = requests.post(f"{url}/api/v1/jobs?wait=60", json={"circuits": [{"data": BELL_QASM2}], "shots": 100},
                             headers=headers, timeout=90)
        assert done.status_code == 201, done.text
        assert done.json()["state"] == "done" and sum(done.json()["result"]["counts"][0].values()) == 100
    finally:
        proc.terminate()


def test_serve_hub_refuses_to_start_outside_a_hub(env):
    out = run_qmio("qpu", "serve", "--hub", env={k: v for k, v in env.items() if not k.startswith("JUPYTERHUB_")},
                   timeout=60)
    assert out.returncode == 1
    assert "must be started by JupyterHub" in out.stderr and "JUPYTERHUB_SERVICE_URL" in out.stderr


def test_calibration_at_a_time_is_what_a_service_started_then_has_in_force(env):
    proc = serve(env, "--port", "0", "--seed", "5", "--start-time", QUIET_TIME)
    try:
        url = listening_url(proc)
        headers = bearer(re.search(r"admin token for \S+: (\S+)", proc.log())[1])
        served = get_json(f"{url}/api/v1/calibration", headers=headers)
    finally:
        proc.terminate()
    shown = Calibration.from_json(run_qmio("calibration", "--json", "--seed", "5", "--at", QUIET_TIME, env=env).stdout)
    assert shown.id == served["id"]
    # the service's device time has moved on by the seconds it ran: the drift of those seconds only
    for mine, theirs in zip(shown.qubits, served["qubits"]):
        assert mine.t1 == pytest.approx(theirs["t1"], rel=1e-4) and mine.sx_error == pytest.approx(theirs["sx_error"], rel=1e-4)


# ---- qmio lab -----------------------------------------------------------------------------------
def page_config(text: str) -> dict:
    m = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', text, re.S)
    assert m, text[:2000]
    return json.loads(html.unescape(m[1]))


@pytest.mark.slow
def test_lab_runs_the_qpu_service_a_dask_cluster_and_jupyterlab_with_the_qmio_extension(lab_env, tmp_path):
    home = Path(lab_env["HOME"])
    notebooks = tmp_path / "my-notebooks"
    notebooks.mkdir()
    (notebooks / "01_quickstart.ipynb").write_text(json.dumps(
        {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    default_workers = max(1, min(2, os.cpu_count() or 1))
    workers = 1 if default_workers != 1 else 2  # differs from the default, so --workers shows
    lab, url, token = start_lab(lab_env, "--notebooks", str(notebooks), "--workers", str(workers))
    auth = {"Authorization": f"token {token}"}
    try:
        log = lab.log()
        # the QPU service: the user's local one, found through $QMIO_LAB_HOME/qpu/service.json
        info = discovery(home)
        qpu_line = re.search(r"QPU service: (\S+) \((\w+), calibration (\S+)\)", log)
        assert qpu_line and qpu_line[1] == info["url"], log
        status = get_json(f"{info['url']}/api/v1/status", headers=bearer(info["token"]))
        assert status["calibration"]["id"] == qpu_line[3]
        # the Dask cluster: a scheduler with the asked-for number of workers
        address = json.loads((home / "lab" / "dask" / "scheduler.json").read_text())["address"]
        assert f"emulator: Dask LocalCluster at {address} with {workers} worker(s)" in log
        # JupyterLab itself, serving --notebooks, opening the quickstart, with the qmio-lab extension
        home_page = requests.get(f"{url}/", params={"token": token}, allow_redirects=False, timeout=30)
        assert home_page.status_code == 302
        assert home_page.headers["Location"].split("?")[0].endswith("/lab/tree/01_quickstart.ipynb")
        contents = get_json(f"{url}/api/contents", headers=auth)
        assert [item["name"] for item in contents["content"]] == ["01_quickstart.ipynb"]
        page = requests.get(f"{url}/lab", headers=auth, timeout=30)
        assert page.status_code == 200
        config = page_config(page.text)
        qmio_ext = [e for e in config["federated_extensions"] if e["name"] == "qmio-lab"]
        assert len(qmio_ext) == 1, config["federated_extensions"]
        assert not any(d.startswith("qmio-lab") for d in config.get("disabledExtensions", []))
        bundle = requests.get(f"{url}/lab/extensions/qmio-lab/{qmio_ext[0]['load']}", headers=auth, timeout=30)
        assert bundle.status_code == 200 and len(bundle.content) > 1000
        # its server extension answers from the same QPU service and the same cluster
        lab_status = get_json(f"{url}/qmio/qpu/status", headers=auth)
        assert lab_status["url"] == info["url"] and lab_status["calibration"]["id"] == qpu_line[3]
        emulator = get_json(f"{url}/qmio/emulator", headers=auth)
        assert (emulator["kind"], emulator["state"], emulator["address"]) == ("address", "running", address)
        assert len(emulator["workers"]) == workers
        children = descendants(lab.pid)
        qpu_service = {info["pid"], *descendants(info["pid"])}  # it and its helper processes stay
        started = {pid: cmd for pid, cmd in children.items() if pid not in qpu_service}
        kinds = " ".join(started.values())
        assert "jupyterlab" in kinds and "dask_scheduler" in kinds and "dask_worker" in kinds, children
    finally:
        rc = lab.terminate()
    assert rc == 0, lab.log()
    # JupyterLab, the scheduler and its workers are gone; the QPU service stays for other sessions
    wait_for(lambda: not any(pid_alive(p) for p in started), 30,
             f"left running after qmio lab stopped: {[c for p, c in started.items() if pid_alive(p)]}")
    assert not accepts_connections("127.0.0.1", int(url.rsplit(":", 1)[1]))
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    assert not accepts_connections(host, int(port))
    assert pid_alive(info["pid"])
    assert get_json(f"{info['url']}/api/v1/status", headers=bearer(info["token"]))["state"] in (
        "online", "calibrating")


@pytest.mark.slow
def test_lab_with_a_configured_cluster_starts_no_dask_of_its_own(lab_env):
    configured = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**lab_env, "DASK_QMIO__EMULATOR__CLUSTER": configured}
    default_root = Path(env["HOME"]) / "notebooks"  # ./notebooks of the folder it starts in
    default_root.mkdir()
    (default_root / "mine.ipynb").write_text(json.dumps(
        {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    lab, url, token = start_lab(env)
    try:
        contents = get_json(f"{url}/api/contents", headers={"Authorization": f"token {token}"})
        assert [item["name"] for item in contents["content"]] == ["mine.ipynb"]
        assert f"emulator: cluster from configuration ({configured})" in lab.log()
        assert not (Path(env["QMIO_LAB_HOME"]) / "dask" / "scheduler.json").exists()
        cmds = " ".join(descendants(lab.pid).values())
        assert "dask_scheduler" not in cmds and "dask_worker" not in cmds
        emulator = get_json(f"{url}/qmio/emulator", headers={"Authorization": f"token {token}"})
        assert (emulator["kind"], emulator["address"], emulator["state"]) == ("address", configured, "not started")
    finally:
        assert lab.terminate() == 0, lab.log()


def test_lab_refuses_a_notebook_folder_that_does_not_exist_before_starting_anything(lab_env, tmp_path):
    out = run_qmio("lab", "--port", str(free_port()), "--notebooks", str(tmp_path / "nowhere"), env=lab_env)
    assert out.returncode == 2 and out.stderr.strip() == f"qmio: error: --notebooks {tmp_path / 'nowhere'}: no such directory"
    assert not (Path(lab_env["QMIO_LAB_HOME"]) / "qpu" / "service.json").exists()  # no QPU service started


# ---- qmio usage ---------------------------------------------------------------------------------
def test_usage_shows_qpu_seconds_per_day_and_account_with_the_budget(env, tmp_path):
    """Packaged defaults: the service keeps hardware timing, so a 300-shot call holds the QPU
    for QMIO's 1.05 s (here at 20 device seconds per second)."""
    users = {"ana": {"token": "ana-token-0123456789ab", "role": "user", "account": "physics"},
             "ops": {"token": "ops-token-0123456789ab", "role": "admin"}}
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps({"users": users, "accounts": {"physics": {"qpu_seconds": 600,
                                                                                "period": "week"}}}))
    proc = serve(env, "--port", "0", "--users", str(users_file), "--time-scale", "20", "--start-time", QUIET_TIME)
    try:
        url = listening_url(proc)
        assert "hardware timing" in proc.log()
        as_ana = {**env, "QMIO_QPU_URL": url, "QMIO_QPU_TOKEN": users["ana"]["token"]}
        job = requests.post(f"{url}/api/v1/jobs", params={"wait": 30}, headers=bearer(users["ana"]["token"]),
                            json={"circuits": [{"data": BELL_QASM2}], "shots": 300}, timeout=60).json()
        assert job["state"] == "done" and job["qpu_seconds"] >= 1.05 * 0.95
        out = run_qmio("usage", "--days", "2", env=as_ana)
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert "QPU usage of ana" in text and "hardware timing" in text
        row = next(line for line in text.splitlines() if " physics " in line and " ana " in line)
        assert row.split()[3] == "1" and float(row.split()[4]) == pytest.approx(job["qpu_seconds"], abs=0.05)
        assert "budget physics: " in text and "of 600 QPU s per week used" in text
        plotted = run_qmio("usage", "--plot", str(tmp_path / "usage.png"), env=as_ana)
        assert plotted.returncode == 0 and (tmp_path / "usage.png").read_bytes()[:4] == b"\x89PNG"
        as_json = json.loads(run_qmio("usage", "--json", env=as_ana).stdout)
        assert as_json["totals"]["jobs"] == 1 and as_json["budgets"][0]["account"] == "physics"
        denied = run_qmio("usage", "--all", env=as_ana)
        assert denied.returncode == 2 and "403" in denied.stderr and "admin" in denied.stderr
        both = run_qmio("usage", "--all", "--user", "ana", env=as_ana)
        assert both.returncode == 2 and "--user NAME or --all, not both" in both.stderr
        everyone = run_qmio("usage", "--all", env={**as_ana, "QMIO_QPU_TOKEN": users["ops"]["token"]})
        assert everyone.returncode == 0 and "QPU usage of everyone" in everyone.stdout and " ana " in everyone.stdout
    finally:
        proc.terminate()
