"""Circuit cutting on the emulator (issue 18): wide observables from subexperiments on Dask workers."""
from __future__ import annotations

import time

import numpy as np
import pytest
from distributed import Client, LocalCluster
from qiskit import QuantumCircuit, transpile
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import EstimatorV2 as AerEstimator

import qmio_lab
from qmio_lab.emulator import EmulatorBackend, cutting
from qmio_lab.errors import CuttingError
from support.circuits import two_halves


@pytest.fixture(scope="module")
def backend():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield EmulatorBackend(client=client, cluster=cluster)


def mps_values(circuit: QuantumCircuit, paulis: list[str]) -> np.ndarray:
    """Exact expectation values of a wide, weakly entangled circuit (Aer's MPS, no truncation)."""
    estimator = AerEstimator(options={"backend_options": {"method": "matrix_product_state"},
                                      "default_precision": 0})
    return np.asarray(estimator.run([(circuit, [SparsePauliOp(p) for p in paulis])]).result()[0].data.evs)


def test_deferred_measurements_keep_the_outcome_distribution_and_let_aer_sample_once():
    qc = QuantumCircuit(3, 4)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure(0, 0)  # mid-circuit: qubit 0 is used again
    qc.ry(0.7, 0)
    qc.cx(0, 2)
    qc.reset(1)  # and a reset wire
    qc.h(1)
    qc.measure([0, 1, 2], [1, 2, 3])
    deferred = cutting.defer_measurements(qc)
    assert deferred.num_qubits == 5 and deferred.num_clbits == 4
    names = [inst.operation.name for inst in deferred.data]
    first = names.index("measure")
    assert set(names[first:]) == {"measure"} and "reset" not in names
    sim = AerSimulator(seed_simulator=3)
    shots = 40000
    before = sim.run(transpile(qc, sim), shots=shots).result().get_counts()
    result = sim.run(transpile(deferred, sim), shots=shots).result()
    after = result.get_counts()
    assert result.results[0].metadata["measure_sampling"] is True
    tvd = 0.5 * sum(abs(before.get(k, 0) - after.get(k, 0)) for k in set(before) | set(after)) / shots
    assert tvd < 0.02, (before, after)


def test_a_cut_observable_matches_the_exact_value(backend):
    circuit = two_halves(8, seed=3)
    paulis = ["ZZZZZZZZ", "IIIZZIII", "IIIIIIIZ"]
    progress = []
    estimate = cutting.estimate(circuit, paulis, backend=backend, partition_labels="AAAABBBB", shots=8000,
                                seed=5, callback=lambda done, total: progress.append((done, total)))
    exact = [Statevector(circuit).expectation_value(SparsePauliOp(p)).real for p in paulis]
    assert np.max(np.abs(estimate.values - exact)) < 0.08, (estimate.values, exact)
    plan = estimate.plan
    assert plan.num_cuts == 2 and plan.sampling_overhead == pytest.approx(81)
    assert plan.subcircuit_qubits == {"A": 4, "B": 4} and plan.num_subexperiments == 72
    assert progress[-1] == (72, 72) and estimate.ran_on == {"A": "emulator", "B": "emulator"}
    runs = estimate.metadata["runs"]  # each subexperiment's part, worker and batch times
    assert [r["part"] for r in runs] == ["A"] * 36 + ["B"] * 36
    assert {r["worker"] for r in runs} <= set(backend.client().scheduler_info()["workers"])
    assert all(r["batch_started"] <= r["batch_finished"] <= time.time() for r in runs)


def test_34_qubits_as_two_17_qubit_halves_within_005_of_the_mps_value(backend):
    circuit = two_halves(34, seed=3)
    paulis = ["I" * 16 + "ZZ" + "I" * 16, "I" * 33 + "Z", "Z" * 17 + "I" * 17]
    estimate = cutting.estimate(circuit, paulis, backend=backend, partition_labels="A" * 17 + "B" * 17, seed=2)
    reference = mps_values(circuit, paulis)
    assert np.max(np.abs(estimate.values - reference)) < 0.05, (estimate.values, reference)
    assert estimate.plan.subcircuit_qubits == {"A": 17, "B": 17}


def test_a_cut_beyond_the_overhead_bound_is_refused_with_the_numbers_before_it_runs(backend):
    circuit = two_halves(8, layers=3, seed=1)  # three cut CX gates: 9**3 = 729
    with pytest.raises(CuttingError, match=r"8 qubits cut 3 times .* 432 subexperiments, sampling overhead 729, "
                                           r"beyond the bound of 100 \(qmio\.emulator\.cutting\.max_overhead\)"):
        cutting.estimate(circuit, ["Z" * 8], backend=backend, partition_labels="AAAABBBB", max_overhead=100)


@pytest.mark.parametrize("kwargs, message", [
    ({"partition_labels": "AAAB"}, "partition_labels has 4 labels for 8 qubits"),
    ({}, "say how wide a part may be"),
])
def test_requests_that_cannot_be_cut_say_what_to_change(kwargs, message):
    with pytest.raises(CuttingError, match=message):
        cutting.plan(two_halves(8), ["Z" * 8], **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"targets": {"A": "qpu"}}, "targets name parts by their partition label: give partition_labels too"),
    ({"targets": {"C": "qpu"}, "partition_labels": "AAAABBBB"}, r"targets name parts \['C'\] that the partition "
                                                                r"does not have \(its parts: \['A', 'B'\]\)"),
    ({"targets": {"A": "gpu"}, "partition_labels": "AAAABBBB"}, "unknown target 'gpu' for a part: say 'qpu', 'emulator'"),
])
def test_targets_that_cannot_be_used_say_what_to_change(backend, kwargs, message):
    with pytest.raises(CuttingError, match=message):
        cutting.estimate(two_halves(8), ["Z" * 8], backend=backend, **kwargs)


def test_observables_and_measurements_are_checked():
    with pytest.raises(CuttingError, match="act on 4 qubits but the circuit has 8"):
        cutting.plan(two_halves(8), ["ZZZZ"], partition_labels="AAAABBBB")
    measured = two_halves(8)
    measured.measure_all()
    with pytest.raises(CuttingError, match="without measurements"):
        cutting.plan(measured, ["Z" * 8], partition_labels="AAAABBBB")


def test_estimator_v2_cuts_a_pub_wider_than_the_emulator_and_says_so(backend):
    import dask.config


    chain = two_halves(36, seed=4)
    observable = SparsePauliOp(["I" * 17 + "ZZ" + "I" * 17, "I" * 35 + "Z"], coeffs=[0.5, -1.0])
    narrow = two_halves(4, seed=4)
    with dask.config.set({"qmio.emulator.cutting.qubits_per_subcircuit": 18}):
        result = qmio_lab.EstimatorV2(mode=backend, default_precision=0.03).run(
            [(chain, observable), (narrow, SparsePauliOp("ZZII"), None, 0.02)]).result()
    wide, small = result
    reference = 0.5 * mps_values(chain, ["I" * 17 + "ZZ" + "I" * 17])[0] - mps_values(chain, ["I" * 35 + "Z"])[0]
    assert abs(float(wide.data.evs) - reference) < 0.15 and 0 < float(wide.data.stds) < 0.1
    cut = wide.metadata["cutting"]
    assert cut["num_cuts"] >= 1 and max(cut["subcircuit_qubits"].values()) <= 18
    assert wide.metadata["shots"] == pytest.approx(cut["sampling_overhead"] / 0.03**2, rel=0.01)
    assert set(cut["ran_on"].values()) == {"emulator"} and cut["calibration_ids"] == {}
    assert all(line.split(": ", 1)[1].startswith("emulator on ") for line in cut["where"].splitlines())
    assert "cutting" not in small.metadata  # a pub that fits a worker runs whole
    assert abs(float(small.data.evs) - Statevector(narrow).expectation_value(SparsePauliOp("ZZII")).real) < 0.08


def test_a_cut_estimate_asks_an_adaptive_cluster_for_more_workers():
    """A cluster adapting between one and two workers, at one: the subexperiments are batched for
    two, the queued batches make it start the second worker, and both run subexperiments."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        cluster.adapt(minimum=1, maximum=2, interval="200ms", target_duration="1s")
        backend = EmulatorBackend(client=client, cluster=cluster)
        circuit = two_halves(34, seed=3)
        asked: list[int] = []  # workers the cluster plans for, as batches finish
        estimate = cutting.estimate(circuit, ["I" * 33 + "Z"], backend=backend, partition_labels="A" * 17 + "B" * 17,
                                    seed=1, callback=lambda done, total: asked.append(len(cluster.plan)))
        assert max(asked) == 2
        runs = estimate.metadata["runs"]
        assert len({r["batch"] for r in runs}) == 5  # 72 subexperiments for two workers (for one: 4 batches)
        assert len({r["worker"] for r in runs}) == 2, runs
        assert abs(estimate.values[0] - mps_values(circuit, ["I" * 33 + "Z"])[0]) < 0.05


def test_estimator_v2_cuts_along_the_parts_a_circuits_metadata_names(backend):
    """A circuit that fits a worker is still cut when its metadata names its parts."""
    circuit = two_halves(8, seed=3)
    circuit.metadata = {"partition_labels": "AAAABBBB"}
    observable = SparsePauliOp(["IIIZZIII", "ZZZZZZZZ"], coeffs=[0.5, 0.5])
    result = qmio_lab.EstimatorV2(mode=backend, default_precision=0.03).run([(circuit, observable)]).result()[0]
    cut = result.metadata["cutting"]
    assert cut["plan"].startswith("8 qubits cut 2 times into 2 parts (A: 4 qubits, B: 4 qubits)")
    assert cut["ran_on"] == {"A": "emulator", "B": "emulator"}
    exact = Statevector(two_halves(8, seed=3)).expectation_value(observable).real
    assert abs(float(result.data.evs) - exact) < 0.1
