"""SamplerV2/EstimatorV2 conformance against qiskit-aer's primitives, on a noiseless backend."""
from __future__ import annotations

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.circuit.library import efficient_su2
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import EstimatorV2 as AerEstimator
from qiskit_aer.primitives import SamplerV2 as AerSampler

import qmio_lab
from qmio_lab.observables import group_paulis
from qmio_lab.sessions import parse_duration

H = SparsePauliOp.from_list([("ZZII", 1.0), ("IXXI", 0.5), ("YIIY", -0.3), ("XIIZ", 0.25), ("IIII", 0.2)])


@pytest.fixture(scope="module")
def ansatz():
    return efficient_su2(4, reps=1)


def test_types_are_qiskit_primitives():
    assert issubclass(qmio_lab.SamplerV2, BaseSamplerV2)
    assert issubclass(qmio_lab.EstimatorV2, BaseEstimatorV2)


def test_grouping_puts_commuting_terms_together():
    groups = group_paulis(["ZZII", "ZIII", "IXXI", "IIII", "XIIZ", "YIIY"])
    flat = sorted(label for g in groups for label in g.labels)
    assert flat == sorted(["ZZII", "ZIII", "IXXI", "XIIZ", "YIIY"])  # identity needs no circuit
    assert len(groups) < 5  # ZZII and ZIII share a circuit
    for g in groups:
        for label in g.labels:
            for q, letter in enumerate(reversed(label)):
                if letter != "I":
                    assert g.basis[q] == letter


def test_estimator_broadcasting_matches_aer(ansatz):
    rng = np.random.default_rng(3)
    values = rng.uniform(-1, 1, (3, 1, ansatz.num_parameters))
    observables = [H, SparsePauliOp("ZIIZ")]  # shape (2,) broadcast against (3, 1) -> (3, 2)
    ours = qmio_lab.EstimatorV2(AerSimulator(seed_simulator=1)).run([(ansatz, observables, values)], precision=0.01).result()
    ref = AerEstimator().run([(ansatz, observables, values)], precision=0.0).result()
    assert ours[0].data.evs.shape == ref[0].data.evs.shape == (3, 2)
    assert ours[0].data.stds.shape == (3, 2)
    np.testing.assert_allclose(ours[0].data.evs, ref[0].data.evs, atol=0.06)
    assert np.all(ours[0].data.stds > 0) and np.all(ours[0].data.stds < 0.02)
    assert ours[0].metadata["target_precision"] == 0.01 and ours[0].metadata["shots"] == 10000
    assert ours.metadata["version"] == 2


def test_estimator_unparameterized_and_scalar_observable():
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    res = qmio_lab.EstimatorV2(AerSimulator()).run([(qc, "ZZ"), (qc, ["XX", "ZI"])]).result()
    assert res[0].data.evs.shape == () and res[0].data.evs == pytest.approx(1.0)
    assert res[1].data.evs.shape == (2,)
    assert res[1].data.evs[0] == pytest.approx(1.0) and abs(res[1].data.evs[1]) < 0.1


def test_sampler_shapes_registers_and_broadcast_match_aer():
    theta = Parameter("θ")
    qr = QuantumRegister(2)
    a, b = ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    qc = QuantumCircuit(qr, a, b)
    qc.ry(theta, 0)
    qc.cx(0, 1)
    qc.measure(qr, a)
    qc.measure(0, b[0])  # b repeats qubit 0: per-shot alignment with a must hold
    values = np.array([[0.0], [np.pi], [np.pi / 2]])
    ours = qmio_lab.SamplerV2(AerSimulator(), seed=2).run([(qc, values)], shots=400).result()[0]
    ref = AerSampler().run([(qc, values)], shots=400).result()[0]
    assert ours.data.a.shape == ref.data.a.shape == (3,)
    assert ours.data.a.num_bits == 2 and ours.data.b.num_bits == 1 and ours.data.a.num_shots == 400
    assert ours.data.a.get_counts(0) == {"00": 400}
    assert ours.data.a.get_counts(1) == {"11": 400}
    half = ours.data.a.get_counts(2)
    assert set(half) == {"00", "11"} and 120 < half["11"] < 280
    a_bits = ours.data.a.get_bitstrings(2)
    b_bits = ours.data.b.get_bitstrings(2)
    assert all(x[-1] == y for x, y in zip(a_bits, b_bits))  # same shot, same qubit-0 outcome
    assert ours.metadata["shots"] == 400


def test_sampler_needs_measurements():
    qc = QuantumCircuit(1)
    qc.x(0)
    with pytest.raises(ValueError, match="needs measurements"):
        qmio_lab.SamplerV2(AerSimulator()).run([qc]).result()


def test_duration_parsing():
    assert parse_duration("10m") == 600 and parse_duration("90s") == 90 and parse_duration(5) == 5
    with pytest.raises(ValueError, match="max_time must look like"):
        parse_duration("ten minutes")


def test_estimator_on_the_emulator_target_matches_aer(monkeypatch, ansatz):
    """The user-facing path: a target name, the shared Dask cluster, no client of the user's."""
    monkeypatch.setenv("DASK_QMIO__EMULATOR__LOCAL__N_WORKERS", "1")
    from qmio_lab import config
    from qmio_lab.emulator import shutdown

    config.refresh()
    try:
        values = np.random.default_rng(5).uniform(-1, 1, (2, ansatz.num_parameters))
        ours = qmio_lab.EstimatorV2("emulator").run([(ansatz, H, values)], precision=0.01).result()
        ref = AerEstimator().run([(ansatz, H, values)], precision=0.0).result()
        np.testing.assert_allclose(ours[0].data.evs, ref[0].data.evs, atol=0.06)
        counts = qmio_lab.SamplerV2("emulator").run([efficient_su2(2, reps=1).assign_parameters([0] * 8)
                                                     .measure_all(inplace=False)], shots=300).result()
        assert counts[0].data.meas.get_counts() == {"00": 300}
    finally:
        shutdown()
        monkeypatch.delenv("DASK_QMIO__EMULATOR__LOCAL__N_WORKERS")
        config.refresh()


def test_session_stays_callable_after_the_primitives_are_imported():
    import qmio_lab.primitives  # noqa: F401 - importing the module must not shadow the function

    with qmio_lab.session(AerSimulator(), max_time="1m") as s:
        assert isinstance(s, qmio_lab.Session) and s.reservation is None
    with qmio_lab.session(AerSimulator()) as again:
        assert again.transpile_count == 0


def test_counts_become_per_register_bit_arrays_of_the_same_shots():
    from qiskit.circuit import ClassicalRegister

    from qmio_lab.bit_arrays import register_bit_arrays

    first, empty, second = ClassicalRegister(3, "a"), ClassicalRegister(0, "e"), ClassicalRegister(2, "b")
    counts = {"01  110": 3, "10  001": 1}  # Qiskit's keys: last-declared register first
    arrays = register_bit_arrays(counts, [first, empty, second], np.random.default_rng(1))
    assert arrays["a"].get_counts() == {"110": 3, "001": 1} and arrays["b"].get_counts() == {"01": 3, "10": 1}
    assert arrays["e"].num_bits == 0 and arrays["e"].num_shots == 4
    pairs = {(a, b) for a, b in zip(arrays["a"].get_bitstrings(), arrays["b"].get_bitstrings())}
    assert pairs == {("110", "01"), ("001", "10")}  # each shot's registers stay together
