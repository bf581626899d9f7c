"""Configuration overrides as the README documents them, each seen in what the product does.

README: "All settings live in one place: dask-style YAML under the `qmio` key. Packaged defaults
are in `qmio_lab/qmio.yaml`; override them in `~/.config/dask/qmio.yaml` or with environment
variables, e.g. `DASK_QMIO__DEVICE__SEED=11`". Which of the two wins is not said there;
qmio_lab/config.py says it: packaged defaults, then YAML files, then `DASK_QMIO__...` variables
(dask's own order), each key on its own. dask reads the files and the environment at import, so
every case runs in a fresh process with HOME in a temporary folder and no DASK_QMIO__* variable
but the ones the case sets.
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
import yaml

from qmio_lab.device import Calibration, QmioDevice

from support.circuits import BELL_QASM2
from support.cli import QUIET_TIME, free_port, isolated_env, run_qmio, serve_qpu
from support.services import USERS, ServiceProcess

pytestmark = pytest.mark.timeout(240)

TUESDAY_0730 = datetime(2026, 11, 24, 7, 30, tzinfo=timezone.utc)  # the window before QUIET_TIME


def home_with(tmp_path: Path, settings: dict | None, name: str = "home") -> Path:
    """A HOME whose ``~/.config/dask/qmio.yaml`` holds ``settings`` (none: no file at all)."""
    home = tmp_path / name
    (home / ".config" / "dask").mkdir(parents=True)
    if settings is not None:
        (home / ".config" / "dask" / "qmio.yaml").write_text(yaml.safe_dump(settings))
    return home


def environment(home: Path, **variables: str) -> dict[str, str]:
    return isolated_env(home, drop_qmio_settings=True, **variables)


def python(code: str, env: dict[str, str], timeout: float = 180) -> dict:
    """Run ``code`` as a script in a fresh interpreter; it prints one JSON line last."""
    script = Path(env["HOME"]) / "case.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=timeout, cwd=env["HOME"])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- precedence: packaged < ~/.config/dask/qmio.yaml < DASK_QMIO__ ------------------------------
@pytest.mark.parametrize("in_file, in_env, seed", [
    (None, None, 2024),  # the packaged default (qmio_lab/qmio.yaml)
    (11, None, 11),      # the user's file overrides it
    (None, 12, 12),      # so does the environment
    (11, 12, 12),        # and the environment wins over the file
])
def test_the_device_seed_follows_file_then_environment(tmp_path, in_file, in_env, seed):
    home = home_with(tmp_path, {"qmio": {"device": {"seed": in_file}}} if in_file else None)
    env = environment(home, **({"DASK_QMIO__DEVICE__SEED": str(in_env)} if in_env else {}))
    out = run_qmio("calibration", "--json", "--at", QUIET_TIME, env=env)
    assert out.returncode == 0, out.stderr
    shown = Calibration.from_json(out.stdout)
    expected = QmioDevice(seed=seed, calibrated_at=TUESDAY_0730).calibration_at(datetime.fromisoformat(QUIET_TIME))
    assert shown.to_dict() == expected.to_dict()  # that chip, figure for figure


def test_a_file_in_another_folder_is_not_read(tmp_path):
    """Only ~/.config/dask counts: the same file elsewhere in HOME changes nothing."""
    home = home_with(tmp_path, None)
    (home / "qmio.yaml").write_text(yaml.safe_dump({"qmio": {"device": {"seed": 11}}}))
    out = run_qmio("calibration", "--at", QUIET_TIME, env=environment(home))
    assert json.loads(out.stdout)["id"].endswith("-s2024")


# ---- the QPU service --------------------------------------------------------------------------
SERVICE_FILE = {"qmio": {"device": {"seed": 11, "max_shots": 500},
                         "calibration": {"time": "13:15"}}}


def submit(url: str, token: str, shots: int) -> requests.Response:
    return requests.post(f"{url}/api/v1/jobs", json={"circuits": [{"data": BELL_QASM2}], "shots": shots},
                         headers=bearer(token), timeout=60)


def test_the_users_file_sets_the_services_seed_limits_and_calendar(tmp_path):
    env = environment(home_with(tmp_path, SERVICE_FILE))
    proc, url, token = serve_qpu(env, "--port", "0", "--start-time", QUIET_TIME)
    try:
        status = requests.get(f"{url}/api/v1/status", headers=bearer(token), timeout=30).json()
        # the window at 13:15 (not 07:00): what is in force on Tuesday noon was taken Monday 13:45
        monday_1345 = datetime(2026, 11, 23, 13, 45, tzinfo=timezone.utc)
        assert status["calibration"]["id"] == QmioDevice(seed=11, calibrated_at=monday_1345).calibration.id
        assert status["next_calibration"] == {"start": "2026-11-24T13:15:00+00:00", "end": "2026-11-24T13:45:00+00:00"}
        refused = submit(url, token, 501)
        assert refused.status_code == 422 and "from 1 to 500" in refused.json()["error"]
        assert submit(url, token, 500).status_code == 201
    finally:
        proc.terminate()


def test_environment_variables_override_the_file_key_by_key(tmp_path):
    env = environment(home_with(tmp_path, SERVICE_FILE), DASK_QMIO__DEVICE__MAX_SHOTS="300",
                      DASK_QMIO__CALIBRATION__DURATION_MINUTES="10")
    proc, url, token = serve_qpu(env, "--port", "0", "--start-time", QUIET_TIME)
    try:
        status = requests.get(f"{url}/api/v1/status", headers=bearer(token), timeout=30).json()
        assert status["calibration"]["id"].endswith("-s11")  # the file's seed still holds
        # the file's time, the environment's duration
        assert status["next_calibration"] == {"start": "2026-11-24T13:15:00+00:00", "end": "2026-11-24T13:25:00+00:00"}
        refused = submit(url, token, 301)
        assert refused.status_code == 422 and "from 1 to 300" in refused.json()["error"]
        assert submit(url, token, 300).status_code == 201
    finally:
        proc.terminate()


def test_qmio_qpu_serve_takes_its_defaults_from_configuration(tmp_path):
    """README: `qmio.qpu.host` / `port` / `users_file` / `time_scale` are `qmio qpu serve` defaults."""
    users = tmp_path / "users.yaml"
    users.write_text(yaml.safe_dump({"users": USERS}))
    port = free_port()
    home = home_with(tmp_path, {"qmio": {"qpu": {"users_file": str(users), "time_scale": 60.0}}})
    env = environment(home, DASK_QMIO__QPU__PORT=str(port), DASK_QMIO__QPU__HOST="127.0.0.1")
    proc, url, token = serve_qpu(env, "--start-time", "2026-11-28T10:00:00+00:00")  # no --port, --users, --time-scale
    try:
        assert url == f"http://127.0.0.1:{port}"
        assert token is None  # users come from the configured file: no token of its own
        alice = requests.get(f"{url}/api/v1/status", headers=bearer(USERS["alice"]["token"]), timeout=30)
        assert alice.status_code == 200 and alice.json()["time_scale"] == 60.0
        job = submit(url, USERS["bob"]["token"], 10).json()
        assert job["user"] == "bob"
    finally:
        proc.terminate()


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory):
    service = ServiceProcess(tmp_path_factory.mktemp("config-qpu"), "--start-time", QUIET_TIME).start()
    yield service
    service.stop()


QPU_CASE = """
import json
import qmio_lab
from qmio_lab.demo import bell_circuit
backend = qmio_lab.get_backend("qpu")
job = backend.run(bell_circuit(), shots=20)
print(json.dumps({"job": job.job_id(), "shots": sum(job.result().get_counts().values())}))
"""


@pytest.mark.parametrize("variables, user", [
    ({}, "alice"),                                              # qmio.qpu.url/token from the file
    ({"DASK_QMIO__QPU__TOKEN": USERS["bob"]["token"]}, "bob"),  # the environment's token wins
    ({"DASK_QMIO__QPU__TOKEN": USERS["bob"]["token"], "QMIO_QPU_TOKEN": USERS["root"]["token"]}, "root"),
])
def test_a_configured_qpu_url_is_used_instead_of_starting_a_local_service(tmp_path, shared_service, variables, user):
    home = home_with(tmp_path, {"qmio": {"qpu": {"url": shared_service.url, "token": USERS["alice"]["token"]}}})
    env = environment(home, **variables)
    out = python(QPU_CASE, env)
    assert out["shots"] == 20
    job = shared_service.http("GET", f"/api/v1/jobs/{out['job']}", "root").json()
    assert job["user"] == user and job["state"] == "done"
    assert not (home / "lab" / "qpu" / "service.json").exists()  # no local service was started


# ---- the emulator -----------------------------------------------------------------------------
EMULATOR_CASE = """
import json
import qmio_lab
from qmio_lab.demo import ghz_circuit
from qmio_lab.emulator import get_client

if __name__ == "__main__":
    backend = qmio_lab.get_backend("emulator")
    out = {"target_qubits": backend.target.num_qubits, "shots": backend.options.shots}
    try:
        out["ghz4"] = sum(backend.run(ghz_circuit(4)).result().get_counts().values())
    except Exception as exc:
        out["ghz4"] = f"{type(exc).__name__}: {exc}"
    counts = backend.run(ghz_circuit(3), seed_simulator=1).result().get_counts()
    out["counts"] = counts
    out["workers"] = len(get_client().scheduler_info(n_workers=-1)["workers"])
    print(json.dumps(out))
"""


def test_emulator_settings_from_the_file_and_the_environment(tmp_path):
    settings = {"qmio": {"emulator": {"max_qubits": 3, "default_shots": 123, "local": {"n_workers": 1}}}}
    home = home_with(tmp_path, settings)
    out = python(EMULATOR_CASE, environment(home))
    assert out["target_qubits"] == 3 and out["shots"] == 123
    assert out["ghz4"].startswith("InvalidCircuitError") and "at most 3 (qmio.emulator.max_qubits)" in out["ghz4"]
    assert out["counts"] == {"000": out["counts"].get("000"), "111": out["counts"].get("111")}
    assert sum(out["counts"].values()) == 123  # the configured default shots
    assert out["workers"] == 1  # qmio.emulator.local.n_workers

    widened = python(EMULATOR_CASE, environment(home, DASK_QMIO__EMULATOR__MAX_QUBITS="5"))
    assert widened["target_qubits"] == 5 and widened["ghz4"] == 123 and widened["shots"] == 123
