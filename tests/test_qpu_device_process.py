"""The simulated QPU runs in a child process of the service: the service keeps answering while
it simulates, and a simulator that dies fails only the job it was running."""
from __future__ import annotations

import math
import os
import signal
import time

import psutil
import pytest
from support.circuits import bell
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter
from qiskit.circuit.random import random_circuit
from support.services import ServiceProcess

from qmio_lab.device import QmioDevice
from qmio_lab.device.compact import compact
from qmio_lab.qpu.device_process import DeviceProcess, Program


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    service = ServiceProcess(tmp_path_factory.mktemp("qpu-device")).start()
    yield service
    service.stop()


def long_job(client) -> str:
    """One Aer run of several seconds: the same 8-qubit circuit 16 times, so every copy sits on
    the same qubits and the simulator makes a single call for all of them."""
    circuit = random_circuit(8, 12, measure=True, seed=7)
    return client.submit([circuit] * 16, shots=4000, name="long")["id"]


def wide_job(client) -> str:
    """A job of several seconds whatever the machine: 12 qubits is beyond exact sampling, so
    20,000 shots are simulated one by one."""
    wide = QuantumCircuit(12, name="wide")
    wide.h(0)
    for i in range(11):
        wide.cx(i, i + 1)
    wide.measure_all()
    return client.submit(wide, shots=20000)["id"]


def wait_running(client, job_id: str) -> None:
    deadline = time.monotonic() + 60
    while (job := client.job(job_id))["state"] != "running":  # a short poll: ?wait could sleep
        assert job["state"] == "queued", job                     # through "running" to "done"
        assert time.monotonic() < deadline, "the long job never started"
        time.sleep(0.02)


def simulator_child(svc) -> psutil.Process:
    children = [p for p in psutil.Process(svc.proc.pid).children()
                if "qmio_lab.qpu.device_process" in " ".join(p.cmdline())]
    assert len(children) == 1, children
    return children[0]


def test_service_answers_while_the_qpu_simulates(svc):
    alice, bob = svc.client("alice"), svc.client("bob")
    job_id = long_job(alice)
    wait_running(alice, job_id)
    # Each answer must come while the job still runs: with the simulation in the service's own
    # process (Aer holds the GIL), these calls were answered only once the job had finished.
    for i in range(3):
        status = bob.status()
        assert status["running"] == 1, status
        assert alice.job(job_id)["state"] == "running"
        queued = bob.submit([bell()], shots=100)
        assert queued["state"] == "queued" and queued["queue_position"] == i + 1
    done = alice.wait(job_id, timeout=120)
    assert done["state"] == "done"
    counts = alice.result(job_id)["counts"]
    assert len(counts) == 16 and all(sum(c.values()) == 4000 for c in counts)


def test_a_long_job_reports_its_progress_to_the_record_and_the_monitor(svc):
    """The job record's ``circuits_done`` climbs while the job runs (the simulator process
    reports it a few times a second), and the notebook job monitor shows it."""
    from qmio_lab.qpu.backend import QPUBackend, QPUJob
    from qmio_lab.widgets.jobs import read_job_state

    alice = svc.client("alice")
    job_id = long_job(alice)
    wait_running(alice, job_id)
    job = QPUJob(QPUBackend(alice), job_id, alice, alice.job(job_id))
    seen, shown = [], []
    deadline = time.monotonic() + 120
    while (record := alice.job(job_id))["state"] == "running":
        seen.append(record["circuits_done"])
        shown.append(read_job_state(job).done)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert record["state"] == "done" and record["circuits_done"] == record["num_circuits"] == 16
    assert seen == sorted(seen), seen  # never goes back
    assert any(0 < n < 16 for n in seen), seen  # and is seen part-way, not only 0 then 16
    assert any(0 < n < 16 for n in shown), shown
    assert read_job_state(job).done == read_job_state(job).total == 16


def test_a_dead_simulator_fails_only_its_job(svc):
    alice = svc.client("alice")
    before = alice.status()["simulator"]
    child = simulator_child(svc)
    assert before["pid"] == child.pid
    job_id = long_job(alice)
    wait_running(alice, job_id)
    busy_since = sum(child.cpu_times()[:2])
    deadline = time.monotonic() + 30
    while sum(child.cpu_times()[:2]) - busy_since < 0.5:  # the job has reached the simulator
        assert time.monotonic() < deadline, "the simulator never started on the long job"
        time.sleep(0.05)
    assert alice.job(job_id)["state"] == "running"
    os.kill(child.pid, signal.SIGKILL)
    failed = alice.wait(job_id, timeout=60)
    assert failed["state"] == "failed", failed
    assert "killed by signal 9" in failed["error"] and "resubmit" in failed["error"]
    # the service lives on with a fresh simulator, and the next job runs normally
    reply = alice.submit([bell()], shots=1000)
    done = alice.wait(reply["id"], timeout=60)
    assert done["state"] == "done"
    counts = alice.result(reply["id"])["counts"][0]
    assert (counts.get("00", 0) + counts.get("11", 0)) / 1000 > 0.7
    after = alice.status()["simulator"]
    assert after["restarts"] == before["restarts"] + 1
    assert after["pid"] != before["pid"] and simulator_child(svc).pid == after["pid"]


# ---- the device process on its own (no service) ---------------------------------------------
@pytest.fixture(scope="module")
def chip():
    device = QmioDevice(seed=5)
    return device, device.calibration


def native_small(device, cal, circuit: QuantumCircuit):
    native = transpile(circuit, target=device.target(cal), seed_transpiler=1)
    return native, *compact(native, device.dt)


def flip() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.x(0)
    qc.measure_all()
    return qc


def idle() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.id(0)
    qc.measure_all()
    return qc


def ones(counts: dict) -> float:
    return sum(v for k, v in counts.items() if k.endswith("1")) / sum(counts.values())


def test_device_process_binds_rows_and_keeps_templates(chip):
    import json

    device, cal = chip
    theta = Parameter("theta")
    qc = QuantumCircuit(1)
    qc.rx(theta, 0)
    qc.measure_all()
    _, small, qubits = native_small(device, cal, qc)
    dp = DeviceProcess(device.seed)
    try:
        rows = [[0.0], [math.pi]]
        body = json.loads(dp.run("j1", [Program("rx", small, qubits, (theta.name,), rows)], 2000, cal))
        assert ones(body["counts"][0]) < 0.1 and ones(body["counts"][1]) > 0.9
        assert body["calibration_id"] == cal.id
        assert body["results"][0]["metadata"]["physical_qubits"] == list(qubits)

        # A key the child already holds is not sent again: the child runs what it kept under
        # that key (here deliberately not what we pass), proof that only the key travelled.
        _, x_small, x_qubits = native_small(device, cal, flip())
        _, id_small, _ = native_small(device, cal, idle())
        assert ones(json.loads(dp.run("j2", [Program("x", x_small, x_qubits)], 500, cal))["counts"][0]) > 0.9
        again = json.loads(dp.run("j3", [Program("x", id_small, x_qubits)], 500, cal))
        assert ones(again["counts"][0]) > 0.9

        # Where the parent wrongly believes the child holds a template, the child asks for it.
        dp._sent_templates["forgotten"] = None
        asked = json.loads(dp.run("j4", [Program("forgotten", x_small, x_qubits)], 500, cal))
        assert ones(asked["counts"][0]) > 0.9
        pid = dp.pid
    finally:
        dp.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_wait_relaxes_through_the_device_process(chip):
    """A delay used to reach the simulator process as an instruction Aer did not know (its
    relaxation channel does not survive QPY): every job with a wait failed."""
    import json

    device, cal = chip
    q = min(range(device.num_qubits), key=lambda i: cal.qubits[i].t1)
    t1 = cal.qubits[q].t1
    waits = {}
    dp = DeviceProcess(device.seed)
    try:
        for label, factor in (("short", 0.0), ("t1", 1.0), ("3t1", 3.0)):
            qc = QuantumCircuit(device.num_qubits, 1)
            qc.x(q)
            if factor:
                qc.delay(round(factor * t1 / device.dt), q, unit="dt")
            qc.measure(q, 0)
            native = transpile(qc, target=device.target(cal), initial_layout=list(range(device.num_qubits)),
                               optimization_level=0)
            small, qubits = compact(native, device.dt)
            body = json.loads(dp.run(label, [Program(label, small, qubits)], 4000, cal))
            waits[label] = ones(body["counts"][0])
    finally:
        dp.stop()
    # the excited population decays as exp(-t/T1) (on top of readout error)
    assert waits["short"] > 0.85
    assert abs(waits["t1"] - waits["short"] * math.exp(-1)) < 0.08, waits
    assert waits["3t1"] < 0.15, waits


def test_the_child_reports_progress_of_a_long_job_and_nothing_for_a_short_one(chip):
    import json

    device, cal = chip
    _, small, qubits = native_small(device, cal, random_circuit(8, 12, measure=True, seed=7))
    _, flip_small, flip_qubits = native_small(device, cal, flip())
    dp = DeviceProcess(device.seed)
    try:
        reports: list[int] = []
        body = json.loads(dp.run("long", [Program("long", small, qubits)] * 12, 4000, cal,
                                 on_progress=reports.append))
        assert len(body["counts"]) == 12
        assert len(reports) >= 2 and reports == sorted(set(reports)), reports
        assert all(0 < n < 12 for n in reports), reports
        quiet: list[int] = []
        dp.run("short", [Program("flip", flip_small, flip_qubits)] * 3, 100, cal, on_progress=quiet.append)
        assert quiet == []
    finally:
        dp.stop()


def test_the_owner_and_an_admin_stop_a_running_job_and_others_cannot(svc):
    alice, bob, root = svc.client("alice"), svc.client("bob"), svc.client("root")
    for stopper in ("alice", "root"):
        job_id = wide_job(alice)
        wait_running(alice, job_id)
        refused = svc.http("DELETE", f"/api/v1/jobs/{job_id}", user="bob")
        assert refused.status_code == 403 and "belongs to another user" in refused.json()["error"]
        before = svc.client("root").status()["simulator"]
        stopped = svc.http("DELETE", f"/api/v1/jobs/{job_id}", user=stopper)
        assert stopped.status_code == 200, stopped.text
        view = stopped.json()
        assert view["state"] == "cancelled" and f"cancelled by {stopper} while running" in view["error"]
        after = svc.client("root").status()["simulator"]
        assert after["pid"] != before["pid"]  # the simulator was stopped and a fresh one started
        with pytest.raises(Exception, match="cancelled and has no result"):
            alice.result(job_id)
    # nothing else was lost: the next job runs on the new simulator
    assert bob.wait(bob.submit(bell(), shots=100)["id"], timeout=60)["state"] == "done"
    assert root.status()["running"] == 0


def test_a_job_past_its_time_limit_is_failed_and_the_next_runs(tmp_path):
    """The deadline catches what the admission estimate misses: here the host's simulation
    cost is configured far too low, so the wide job is admitted under a 1 s budget."""
    cheap = {f"DASK_QMIO__DEVICE__SIMULATION_COST__{key}": "1e-12"
             for key in ("PER_CIRCUIT_S", "PER_SHOT_S", "STATEVECTOR_S", "STATEVECTOR_WIDE_S", "DENSITY_MATRIX_S")}
    svc = ServiceProcess(tmp_path, env={"DASK_QMIO__QPU__MAX_JOB_S": "1", **cheap}).start()
    try:
        alice = svc.client("alice")
        slow = wide_job(alice)
        after = alice.submit(bell(), shots=100)
        ended = alice.wait(slow, timeout=60)
        assert ended["state"] == "failed" and "ran past its time limit of 1 s" in ended["error"]
        assert "qmio.qpu.max_job_s" in ended["error"]
        assert alice.wait(after["id"], timeout=60)["state"] == "done"
    finally:
        svc.stop()


def test_the_simulator_dies_with_a_killed_service(tmp_path):
    svc = ServiceProcess(tmp_path).start()
    alice = svc.client("alice")
    alice.wait(alice.submit(bell(), shots=10)["id"], timeout=60)  # the simulator is up
    children = psutil.Process(svc.proc.pid).children(recursive=True)
    assert any("qmio_lab.qpu.device_process" in " ".join(p.cmdline()) for p in children)
    assert any("qmio_lab.qpu.sandbox" in " ".join(p.cmdline()) for p in children)
    svc.kill9()
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
