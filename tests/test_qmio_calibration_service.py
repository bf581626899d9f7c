"""Real QMIO calibration files in the running service: ``$QMIO_CALIBRATIONS`` as its history,
``qmio calibration import`` (jobs then run with the newest file's noise) and
``qmio calibration export --format qmio``, round-tripping the figures."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qmio_lab.device import Calibration
from qmio_lab.device.qmio_files import read_file
from support.circuits import BELL_QASM2
from support.services import USERS, ServiceProcess

DATA = Path(__file__).parent / "data" / "qmio_calibrations"
CURRENT = "2025_06_05__12_03_44.json"  # garbage T1 on q[9], T2 > 2 T1 on q[17], no 30-31 pair
LEGACY = "2024_03_11__11_58_02.json"
START = "2025-06-06T10:00:00+00:00"


def cli(svc: ServiceProcess, *args: str, user: str = "root") -> subprocess.CompletedProcess:
    env = {**os.environ, "QMIO_QPU_URL": svc.url, "QMIO_QPU_TOKEN": USERS[user]["token"]}
    return subprocess.run([sys.executable, "-m", "qmio_lab.cli", "calibration", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def run_bell(svc: ServiceProcess) -> dict:
    job = svc.http("POST", "/api/v1/jobs?wait=60", json={"circuits": [{"format": "qasm2", "data": BELL_QASM2}],
                                                          "shots": 500})
    assert job.status_code == 201, job.text
    assert job.json()["state"] == "done"
    return job.json()


# each test its own directory and service: what one imports must not decide what another sees
@pytest.fixture
def directory(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("qmio-calibrations")
    shutil.copy(DATA / CURRENT, d / CURRENT)
    return d


@pytest.fixture
def svc(tmp_path_factory, directory):
    service = ServiceProcess(tmp_path_factory.mktemp("calsvc"), "--start-time", START,
                             env={"QMIO_CALIBRATIONS": str(directory)}).start()
    yield service
    service.stop()


def test_the_directory_is_the_history_and_jobs_run_with_its_newest_file(svc):
    cal = svc.http("GET", "/api/v1/calibration").json()
    assert cal["id"] == "cal-20250605T120344Z-qmio"
    assert cal["taken_at"].startswith("2025-06-05T12:03:44")
    assert [30, 31] not in [[c["control"], c["target"]] for c in cal["couplers"]]
    expected = read_file(DATA / CURRENT).calibration
    snapshot = svc.http("GET", f"/api/v1/calibrations/{cal['id']}").json()  # in force: that, aged 22 h
    assert [q["t1"] for q in snapshot["qubits"]] == pytest.approx([q.t1 for q in expected.qubits])
    assert snapshot["qubits"][0]["readout_p10"] == pytest.approx(expected.qubits[0].readout_p10)
    assert run_bell(svc)["calibration_id"] == cal["id"]


def test_import_puts_files_in_the_history_and_the_newest_in_force(svc, directory, tmp_path):
    newer = json.loads((DATA / CURRENT).read_text())
    newer["Qubits"]["q[0]"]["T1 (s)"] = 1.234e-4
    (tmp_path / "2025_06_06__09_00_00.json").write_text(json.dumps(newer))
    out = cli(svc, "import", str(tmp_path / "2025_06_06__09_00_00.json"), str(DATA / LEGACY))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any("cal-20250606T090000Z-qmio" in line and "in force" in line for line in lines)
    assert any("cal-20240311T115802Z-qmio" in line and "history" in line for line in lines)
    assert any("note:" in line and "30-31" in line for line in lines)  # the file lacks that pair
    cal = svc.http("GET", "/api/v1/calibration").json()
    assert cal["id"] == "cal-20250606T090000Z-qmio"
    snapshot = svc.http("GET", f"/api/v1/calibrations/{cal['id']}").json()
    assert snapshot["qubits"][0]["t1"] == pytest.approx(1.234e-4)
    assert cal["qubits"][0]["t1"] == pytest.approx(1.234e-4, rel=0.3)  # drifting from its time
    assert run_bell(svc)["calibration_id"] == "cal-20250606T090000Z-qmio"
    names = sorted(p.name for p in directory.iterdir())
    assert names == [LEGACY, CURRENT, "2025_06_06__09_00_00.json"]  # the service wrote what it took in
    assert (directory / CURRENT).read_text() == (DATA / CURRENT).read_text()  # a real file is left alone


def test_bad_imports_are_refused_whole_and_only_admins_import(svc, tmp_path):
    before = len(svc.http("GET", "/api/v1/calibrations").json()["calibrations"])
    future = tmp_path / "2031_01_01__12_00_00.json"
    future.write_text((DATA / CURRENT).read_text())
    broken = json.loads((DATA / CURRENT).read_text())
    del broken["Qubits"]["q[4]"]["T1 (s)"]
    (tmp_path / "2025_06_06__09_30_00.json").write_text(json.dumps(broken))
    out = cli(svc, "import", str(DATA / CURRENT), str(future))
    assert out.returncode != 0 and "future" in out.stderr
    out = cli(svc, "import", str(tmp_path / "2025_06_06__09_30_00.json"))
    assert out.returncode != 0 and "q[4]" in out.stderr and "T1" in out.stderr
    out = cli(svc, "import", str(DATA / LEGACY), user="alice")
    assert out.returncode != 0 and "admin" in out.stderr
    odd = svc.http("POST", "/api/v1/calibrations/import", user="root",
                   json={"files": [{"name": "../../etc/passwd", "content": {}}]})
    assert odd.status_code == 422 and "not named like" in odd.json()["error"]
    assert len(svc.http("GET", "/api/v1/calibrations").json()["calibrations"]) == before


def test_export_writes_qmio_files_that_round_trip(svc, tmp_path):
    assert cli(svc, "import", str(DATA / LEGACY)).returncode == 0
    out = cli(svc, "export", "--format", "qmio", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    history = {c["id"]: c for c in svc.http("GET", "/api/v1/calibrations?full=1").json()["calibrations"]}
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == len(history) == 2
    for path in files:
        back = read_file(path).calibration
        original = next(Calibration.from_dict(c["calibration"]) for c in history.values()
                        if c["taken_at"].startswith(back.taken_at.isoformat()[:19]))
        for mine, theirs in zip(back.qubits, original.qubits):
            assert mine.t1 == pytest.approx(theirs.t1) and mine.t2 == pytest.approx(theirs.t2)
            assert mine.readout_p10 == pytest.approx(theirs.readout_p10)
            assert mine.sx_error == pytest.approx(theirs.sx_error)
        assert {(c.control, c.target) for c in back.couplers} == {(c.control, c.target) for c in original.couplers}


def test_a_restart_reads_the_directory_without_duplicates(svc):
    assert cli(svc, "import", str(DATA / LEGACY)).returncode == 0
    before = [c["id"] for c in svc.http("GET", "/api/v1/calibrations").json()["calibrations"]]
    svc.stop()
    svc.start()
    after = [c["id"] for c in svc.http("GET", "/api/v1/calibrations").json()["calibrations"]]
    assert after == before and len(after) == 2
