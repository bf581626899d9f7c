"""The emulator on a real SLURM: dask-jobqueue workers as SLURM jobs in the ``emulator`` partition.

SLURM comes from ``tests/slurm/slurm.sh`` (started here when ``sinfo`` does not answer). In CI
these tests fail, never skip, when SLURM cannot start.
"""
from __future__ import annotations

import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from qmio_lab.device import QmioDevice
from qmio_lab.emulator import EmulatorBackend, cutting
from qmio_lab.emulator.memory import widest_statevector
from qmio_lab.errors import CuttingError
from support.services import local_service
from support.slurm import SCRIPT, diagnostics, start_two_workers
from test_emulator_cutting import mps_values
from support.circuits import basis_state, ghz, two_halves

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def slurm_emulator(slurm_conf, tmp_path_factory):
    """Two SLURM worker jobs, made from configuration alone, as a user would."""
    try:
        cluster, client = start_two_workers(tmp_path_factory.mktemp("jobqueue"), timeout=60)
    except TimeoutError:
        pytest.fail(f"two SLURM workers did not connect in 60 s\n{diagnostics()}", pytrace=False)
    client.run(lambda: __import__("qmio_lab.emulator.tasks"))  # pay the qiskit import once, here
    yield cluster, client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def backend(slurm_emulator) -> EmulatorBackend:
    cluster, client = slurm_emulator
    return EmulatorBackend(client=client, cluster=cluster)


def test_the_script_is_idempotent(slurm_conf):
    directory = str(Path(slurm_conf).parent)
    again = subprocess.run(["bash", str(SCRIPT), "start", directory], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert f"export SLURM_CONF={slurm_conf}" in again.stdout
    status = subprocess.run(["bash", str(SCRIPT), "status", directory], capture_output=True, text=True)
    assert status.returncode == 0 and "emulator" in status.stdout and "qpu" in status.stdout


def test_workers_are_slurm_jobs_in_the_emulator_partition(slurm_emulator):
    cluster, client = slurm_emulator
    job_ids = set(client.run(lambda: __import__("os").environ.get("SLURM_JOB_ID")).values())
    assert len(job_ids) == 2 and None not in job_ids
    out = subprocess.run(["squeue", "-h", "-o", "%i|%P|%T", "-j", ",".join(job_ids)],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.split()]
    assert sorted(r[0] for r in rows) == sorted(job_ids), diagnostics()
    assert {r[1] for r in rows} == {"emulator"} and {r[2] for r in rows} == {"RUNNING"}


def test_a_200_circuit_sweep_runs_on_both_slurm_workers_in_order(backend):
    result = backend.run([basis_state(i, 8) for i in range(200)], shots=20).result(timeout=120)
    assert [result.get_counts(i) for i in range(200)] == [{format(i, "08b"): 20} for i in range(200)]
    assert len({m.metadata["slurm_job_id"] for m in result.results}) == 2
    assert result.batches == 8


@pytest.fixture
def doomed_cluster(slurm_conf, tmp_path):
    """Two worker jobs of its own, for the test that cancels one (the module's pair stays whole)."""
    try:
        cluster, client = start_two_workers(tmp_path, timeout=60)
    except TimeoutError:
        pytest.fail(f"two SLURM workers did not connect in 60 s\n{diagnostics()}", pytrace=False)
    yield cluster, client
    client.close()
    cluster.close()


def test_scancel_of_a_worker_mid_sweep_loses_no_result(doomed_cluster):
    cluster, client = doomed_cluster
    backend = EmulatorBackend(client=client, cluster=cluster)
    victim = next(iter(client.run(lambda: __import__("os").environ["SLURM_JOB_ID"]).values()))
    first_batch_done = threading.Event()
    job = backend.run([basis_state(i, 16, depth=30) for i in range(200)], shots=10,
                      callback=lambda done, total: first_batch_done.set())
    assert first_batch_done.wait(60), f"no batch finished within 60 s\n{diagnostics()}"
    done_before = job.progress()[0]
    assert done_before < 200, "the sweep ended before the worker could be cancelled"
    subprocess.run(["scancel", victim], check=True)
    result = job.result(timeout=180)
    expected = [{format(i, "016b"): 10} for i in range(200)]
    assert [result.get_counts(i) for i in range(200)] == expected, diagnostics()
    by_victim = sum(m.metadata["slurm_job_id"] == victim for m in result.results)
    assert by_victim <= done_before + 25  # at most the batch it was running when cancelled
    states = subprocess.run(["squeue", "-h", "-o", "%i|%T"], capture_output=True, text=True).stdout
    assert f"{victim}|RUNNING" not in states.split()


def test_a_34_qubit_cut_estimate_survives_the_scancel_of_a_worker(doomed_cluster):
    cluster, client = doomed_cluster
    backend = EmulatorBackend(client=client, cluster=cluster)
    victim = next(iter(client.run(lambda: __import__("os").environ["SLURM_JOB_ID"]).values()))
    circuit = two_halves(34, seed=3)
    paulis = ["I" * 16 + "ZZ" + "I" * 16, "I" * 33 + "Z"]
    first_batch = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        first_batch.set()

    answer: dict = {}
    worker = threading.Thread(target=lambda: answer.update(estimate=cutting.estimate(
        circuit, paulis, backend=backend, partition_labels="A" * 17 + "B" * 17, shots=40000, seed=3,
        callback=progress)))
    worker.start()
    assert first_batch.wait(120), f"no batch of subexperiments finished within 120 s\n{diagnostics()}"
    done_before = seen[-1]
    subprocess.run(["scancel", victim], check=True)
    worker.join(timeout=300)
    assert "estimate" in answer, diagnostics()
    estimate = answer["estimate"]
    assert done_before < estimate.plan.num_subexperiments, "the run ended before the worker could be cancelled"
    assert np.max(np.abs(estimate.values - mps_values(circuit, paulis))) < 0.05
    states = subprocess.run(["squeue", "-h", "-o", "%i|%T"], capture_output=True, text=True).stdout
    assert f"{victim}|RUNNING" not in states.split()


def test_cuts_are_found_for_parts_that_fit_a_worker(backend):
    chain = two_halves(36, seed=4)
    paulis = ["I" * 17 + "ZZ" + "I" * 17]
    estimate = cutting.estimate(chain, paulis, backend=backend, qubits_per_subcircuit=18, seed=1)
    assert estimate.plan.found_by == "find_cuts"
    assert max(estimate.plan.subcircuit_qubits.values()) <= 18 and estimate.plan.num_cuts >= 1
    assert abs(estimate.values[0] - mps_values(chain, paulis)[0]) < 0.05
    # without a width, the parts are as wide as the widest worker holds (2 GiB: 26 qubits)
    assert widest_statevector(backend.worker_memory()) == 26


def z_on(num_qubits: int, *qubits: int) -> str:
    """The Pauli label with Z on ``qubits`` (Qiskit's order: qubit 0 is the last character)."""
    return "".join("Z" if q in qubits else "I" for q in reversed(range(num_qubits)))


@pytest.fixture
def qpu(tmp_path):
    """The QPU a user's code gets (qmio_lab.get_backend), its service started for this test."""
    import qmio_lab

    with local_service(tmp_path / "home"):
        yield qmio_lab.get_backend("qpu")


def test_a_40_qubit_observable_split_between_the_qpu_and_the_emulator(backend, qpu):
    """Seven qubits on the (noisy) QPU, 33 on the SLURM workers (as a matrix product state),
    joined by one cut CX."""
    circuit = two_halves(40, layers=1, seed=3, first=7)
    paulis = [z_on(40, 0), z_on(40, 6, 7), z_on(40, 6), z_on(40, 8)]
    estimate = cutting.estimate(circuit, paulis, backend=backend, partition_labels="A" * 7 + "B" * 33,
                                targets={"A": "qpu"}, shots=8000, seed=2)
    assert estimate.ran_on == {"A": "qpu", "B": "emulator"}
    assert estimate.plan.subcircuit_qubits == {"A": 7, "B": 33} and estimate.plan.num_subexperiments == 12
    # the QPU's part was an ordinary job of the queue, run with the calibration the estimate names
    record = qpu.client.job(estimate.metadata["job_ids"]["A"])  # the service the user's "qpu" reaches
    assert record["state"] == "done" and record["num_circuits"] == 6
    assert estimate.metadata["calibration_ids"] == {"A": record["calibration_id"]}
    runs = estimate.metadata["runs"]
    assert {r.get("calibration_id") for r in runs if r["part"] == "A"} == {record["calibration_id"]}
    assert {r["method"] for r in runs if r["part"] == "B"} == {"matrix_product_state"}
    assert all(r["slurm_job_id"] for r in runs if r["part"] == "B")
    where = estimate.where().splitlines()  # said plainly
    assert where[0] == (f"part A (7 qubits, 6 subexperiments): qpu, calibration {record['calibration_id']}, "
                        f"job {record['id']}")
    assert where[1].startswith("part B (33 qubits, 6 subexperiments): emulator on ") and "SLURM jobs" in where[1]
    # noisy where the QPU ran it (gate and readout errors), still close to the noiseless value
    assert np.max(np.abs(estimate.values - mps_values(circuit, paulis))) < 0.2


def test_estimator_v2_sends_the_parts_its_circuits_metadata_names_to_the_qpu(backend, qpu):
    """Qiskit's EstimatorV2 interface: the circuit's metadata names its parts and where they run."""
    from qiskit.quantum_info import SparsePauliOp

    import qmio_lab

    circuit = two_halves(40, layers=1, seed=3, first=7)
    observable = SparsePauliOp([z_on(40, 6, 7), z_on(40, 8)], coeffs=[0.5, 0.5])
    reference = 0.5 * mps_values(circuit, [z_on(40, 6, 7), z_on(40, 8)]).sum()
    circuit.metadata = {"partition_labels": "A" * 7 + "B" * 33, "cut_targets": {"A": "qpu"}}
    result = qmio_lab.EstimatorV2(mode=backend, default_precision=0.05).run([(circuit, observable)]).result()[0]
    cut = result.metadata["cutting"]
    assert cut["plan"].startswith("40 qubits cut 1 times into 2 parts (A: 7 qubits, B: 33 qubits)")
    assert cut["ran_on"] == {"A": "qpu", "B": "emulator"}
    assert cut["calibration_ids"] == {"A": qpu.client.job(cut["job_ids"][0])["calibration_id"]}
    assert abs(float(result.data.evs) - reference) < 0.2


def test_a_part_wider_than_the_qpu_is_refused_before_anything_runs(backend, qpu):
    circuit = two_halves(40, layers=1, seed=3, first=33)
    with pytest.raises(CuttingError, match="part 'A' has 33 qubits; the QPU has 32"):
        cutting.estimate(circuit, [z_on(40, 0)], backend=backend, partition_labels="A" * 33 + "B" * 7,
                         targets={"A": qpu})


def test_replayed_noise_spoils_ghz_while_noiseless_is_perfect(backend, device: QmioDevice):
    clean = backend.run(ghz(3), shots=3000).result().get_counts()
    assert set(clean) == {"000", "111"}
    old = device.calibration_at(device.calibration.taken_at + timedelta(days=7))
    noisy = backend.run(ghz(3), shots=3000, noise=old, seed_simulator=1).result()
    counts = noisy.get_counts()
    fidelity = (counts.get("000", 0) + counts.get("111", 0)) / 3000
    assert fidelity < 0.99 and noisy.calibration_id == old.id
    assert noisy.results[0].metadata["slurm_job_id"] is not None
