"""The lab's state manager without a Jupyter server: emulator reporting, SLURM parsing, chip view."""
from __future__ import annotations

import asyncio
import os
import stat
from types import SimpleNamespace

import dask.config
import pytest

from qmio_lab.device import QmioDevice, Topology
from qmio_lab.labserver import _jupyter_labextension_paths, _jupyter_server_extension_points
from qmio_lab.labserver.emulator_state import EmulatorWatch, cluster_job_ids, parse_squeue
from qmio_lab.labserver.manager import LabError, QmioLabManager, chip_view
from qmio_lab.qpu import QPUServiceError, QPUUnreachableError


def test_extension_points_name_the_labserver_module_and_the_bundle():
    assert _jupyter_server_extension_points() == [{"module": "qmio_lab.labserver"}]
    assert _jupyter_labextension_paths() == [{"src": "labextension", "dest": "qmio-lab"}]


def test_parse_squeue_reads_delimited_rows():
    rows = parse_squeue("101|dask-worker|RUNNING|emulator|1:02\n\n102|dask-worker|PENDING|emulator|0:00\n")
    assert [(r["id"], r["state"]) for r in rows] == [("101", "running"), ("102", "pending")]
    with pytest.raises(ValueError, match="5 '\\|'-separated"):
        parse_squeue("101 dask-worker RUNNING")


def test_cluster_job_ids_come_from_the_jobqueue_workers():
    cluster = SimpleNamespace(workers={"a": SimpleNamespace(job_id="7"), "b": SimpleNamespace(job_id=None),
                                       "c": SimpleNamespace(job_id="12")})
    assert cluster_job_ids(cluster) == ["12", "7"]
    assert cluster_job_ids(None) == []


@pytest.fixture
def fake_squeue(tmp_path, monkeypatch):
    """A `squeue` on PATH that prints what SLURM would for two dask-jobqueue worker jobs."""
    script = tmp_path / "squeue"
    script.write_text("#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\n"
                      "printf '4242|dask-worker|RUNNING|emulator|0:10\\n4243|dask-worker|PENDING|emulator|0:00\\n'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_slurm_kind_lists_the_worker_jobs_from_squeue(fake_squeue):
    with dask.config.set({"qmio.emulator.cluster": "slurm", "jobqueue.slurm.name": "dask-worker"}):
        state = EmulatorWatch().state()
    assert state["kind"] == "slurm"
    assert state["state"] == "running"
    assert [(j["id"], j["state"]) for j in state["slurm_jobs"]] == [("4242", "running"), ("4243", "pending")]
    args = (fake_squeue / "args").read_text().split()
    assert args[args.index("-n") + 1] == "dask-worker" and "-h" in args


def test_slurm_kind_without_jobs_is_not_started(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue at all
    with dask.config.set({"qmio.emulator.cluster": "slurm"}):
        state = EmulatorWatch().state()
    assert (state["kind"], state["state"], state["slurm_jobs"]) == ("slurm", "not started", [])


def test_misconfigured_cluster_is_reported_not_raised():
    with dask.config.set({"qmio.emulator.cluster": "kubernetes"}):
        state = EmulatorWatch().state()
    assert state["state"] == "misconfigured" and "expected 'local'" in state["error"]


def test_address_kind_reports_an_unreachable_scheduler_without_starting_one():
    with dask.config.set({"qmio.emulator.cluster": "tcp://127.0.0.1:9"}):
        watch = EmulatorWatch()
        state = watch.state()
        watch.close()
    assert (state["kind"], state["state"], state["address"]) == ("address", "not started", "tcp://127.0.0.1:9")


def test_chip_view_matches_topology_and_calibration():
    cal = QmioDevice(seed=3).calibration
    view = chip_view(cal)
    assert len(view["qubits"]) == 32 and len(view["couplers"]) == len(Topology().edges)
    assert view["qubits"][0]["t1"] == pytest.approx(cal.qubits[0].t1)
    assert view["summary"]["id"] == cal.id


class _Refusing:
    url = "http://qpu.example"

    def __init__(self, status: int) -> None:
        self.code = status

    def status(self):
        if self.code == 0:  # no HTTP answer at all
            raise QPUUnreachableError("nope")
        raise QPUServiceError("nope", status=self.code, payload={"error": f"said {self.code}"})


@pytest.mark.parametrize("code,expected", [(0, 503), (403, 403), (404, 404), (500, 502)])
def test_service_errors_map_to_http_statuses(code, expected):
    manager = QmioLabManager(client_factory=lambda: _Refusing(code))
    try:
        with pytest.raises(LabError) as info:
            asyncio.run(manager.qpu_status())
    finally:
        manager.close()
    assert info.value.status == expected


def test_qasm_is_checked_before_anything_is_sent():
    manager = QmioLabManager(client_factory=lambda: pytest.fail("no client needed"))
    try:
        for bad, code in (("", 422), (None, 422), ("x" * 2_000_001, 413)):
            with pytest.raises(LabError) as info:
                asyncio.run(manager.submit_qasm(bad, 10))
            assert info.value.status == code
    finally:
        manager.close()


def _refusal(coro) -> LabError:
    with pytest.raises(LabError) as info:
        asyncio.run(coro)
    return info.value


@pytest.mark.parametrize("body, words", [
    ([1, 2], "must be a JSON object with the fields qasm, shots, name; got a JSON list"),
    (None, "got null"),
    ({"qasm": "x", "shot": 10}, "unknown field(s) 'shot'; allowed: qasm, shots, name"),
])
def test_request_bodies_are_objects_of_known_fields(body, words):
    from qmio_lab.labserver.manager import SUBMIT_FIELDS, request_fields

    with pytest.raises(LabError) as info:
        request_fields(body, SUBMIT_FIELDS)
    assert info.value.status == 400 and words in str(info.value)


def test_request_values_are_checked_before_anything_is_sent():
    manager = QmioLabManager(client_factory=lambda: pytest.fail("no client needed"))
    bell = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'
    try:
        for limit in ("-1", "0", "201", "abc", "٥", "1" * 5000, 3.5, True):
            assert _refusal(manager.qpu_jobs(limit)).status == 400, limit
        assert "unknown state 'lost'" in str(_refusal(manager.qpu_jobs("5", ["queued", "lost"])))
        for job_id in ("..", "a/b", "a" * 65, "\x00", "é", "x?wait=60"):
            assert _refusal(manager.cancel_job(job_id)).status == 400, job_id
        assert _refusal(manager.submit_qasm(bell, "lots")).status == 400
        assert _refusal(manager.submit_qasm(bell, 10**9)).status == 422
        assert _refusal(manager.submit_qasm(bell, 10, ["bell"])).status == 400
        assert _refusal(manager.submit_qasm("\ud800", 10)).status == 422
    finally:
        manager.close()


def test_emulator_programs_pass_the_admission_prescan_before_they_are_parsed(monkeypatch):
    manager = QmioLabManager(client_factory=lambda: pytest.fail("no client needed"))
    monkeypatch.setattr(manager.emulator, "run_qasm", lambda *a: pytest.fail("nothing is parsed or run"))
    try:
        bomb = _refusal(manager.emulator_run("OPENQASM 3.0; qubit[2000000000] q; bit[1] c; c[0] = measure q[0];", 10))
        assert bomb.status == 422 and "uses 2000000000 qubits; the emulator accepts at most 34" in str(bomb)
        wide = _refusal(manager.emulator_run('OPENQASM 2.0; include "qelib1.inc"; qreg q[35]; creg c[1];', 10))
        assert "35 qubits; the emulator accepts at most 34" in str(wide)
        assert "classical bits" in str(_refusal(manager.emulator_run("OPENQASM 3.0; qubit[1] q; bit[5000] c;", 10)))
        assert "not allowed" in str(_refusal(manager.emulator_run('OPENQASM 2.0; include "/etc/passwd";', 10)))
        assert _refusal(manager.emulator_run('OPENQASM 2.0; qreg q[1];', 10**12)).status == 422
    finally:
        manager.close()


def test_emulator_gate_bombs_are_refused_before_aer_unrolls_them(monkeypatch):
    """40 gate definitions that each call the previous one twice pass the text prescan (nothing
    is declared too wide) but are 2**40 operations: refused once parsed, before any cluster."""
    import qmio_lab.emulator as emulator

    monkeypatch.setattr(emulator, "get_client", lambda: pytest.fail("no cluster for a refused program"))
    bomb = ('OPENQASM 2.0;\ninclude "qelib1.inc";\ngate g0 a { x a; }\n'
            + "".join(f"gate g{i} a {{ g{i-1} a; g{i-1} a; }}\n" for i in range(1, 41))
            + "qreg q[1]; creg c[1]; g40 q[0]; measure q[0] -> c[0];")
    with pytest.raises(LabError, match="more than 200000 operations") as refused:
        EmulatorWatch().run_qasm(bomb, 10)
    assert refused.value.status == 422
