"""Shots drawn from the exact noisy distribution match Aer's own shot-by-shot sampling, and
circuits it cannot serve (mid-circuit measurements) still go shot by shot."""
from __future__ import annotations

import dask.config
import numpy as np
import pytest
from support.circuits import bell, ghz
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.circuit.random import random_circuit
from scipy.stats import chi2_contingency

from qmio_lab.device import QmioDevice, QmioSimulator, sampling
from qmio_lab.device.compact import compact
from qmio_lab.device.noise import build_noise_model
from qmio_lab.device.sampling import terminal_measurements

SHOTS = 40000


@pytest.fixture(scope="module")
def chip():
    device = QmioDevice(seed=11)
    return device, device.calibration, QmioSimulator(device)


def two_registers_with_a_wait() -> QuantumCircuit:
    """GHZ on 3 qubits read into two registers out of order, after a 20 µs wait (T1/T2 relax)."""
    q, a, b = QuantumRegister(3, "q"), ClassicalRegister(2, "a"), ClassicalRegister(2, "b")
    qc = QuantumCircuit(q, a, b, name="ghz-wait")
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.delay(20, 1, unit="us")
    qc.measure(0, b[1])
    qc.measure(1, a[0])
    qc.measure(2, b[0])
    return qc


CIRCUITS = {
    "bell": bell,
    "ghz4": lambda: ghz(4),
    "registers-and-delay": two_registers_with_a_wait,
    "random5": lambda: random_circuit(5, 6, measure=True, seed=3),
}


def run(sim, device, cal, circuit, *, exact: bool, seed: int):
    native = transpile(circuit, target=device.target(cal), seed_transpiler=1)
    small, qubits = compact(native, device.dt)
    limit = 10 if exact else 0
    with dask.config.set({"qmio.device.exact_sampling_max_qubits": limit}):
        result = sim.execute_compact([(small, qubits)], SHOTS, cal, seed=seed)
    return result, result.results[0]


@pytest.mark.parametrize("name", list(CIRCUITS))
def test_exact_draws_match_aer_shot_by_shot(chip, name):
    device, cal, sim = chip
    circuit = CIRCUITS[name]()
    fast, fast_exp = run(sim, device, cal, circuit, exact=True, seed=5)
    slow, slow_exp = run(sim, device, cal, circuit, exact=False, seed=6)
    assert fast_exp.metadata.get("exact_distribution") is True
    assert not slow_exp.metadata.get("exact_distribution")
    # the same result layout: registers, memory slots, keys as Qiskit formats them
    assert fast_exp.header == slow_exp.header
    a, b = fast.get_counts(), slow.get_counts()
    assert sum(a.values()) == sum(b.values()) == SHOTS
    keys = sorted(set(a) | set(b))
    table = np.array([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]])
    table = table[:, table.sum(axis=0) >= 10]  # chi-square needs populated cells
    assert chi2_contingency(table).pvalue > 1e-3, (a, b)


def test_mid_circuit_measurements_go_shot_by_shot(chip):
    device, cal, sim = chip
    qc = QuantumCircuit(1, 2)
    qc.x(0)
    qc.measure(0, 0)
    qc.x(0)  # after a measurement: one distribution at the end cannot describe this
    qc.measure(0, 1)
    assert terminal_measurements(qc, 10) is None
    result, exp = run(sim, device, cal, qc, exact=True, seed=1)
    assert not exp.metadata.get("exact_distribution")
    counts = result.get_counts()
    assert counts.get("01", 0) / SHOTS > 0.9  # first read 1, then 0 (bit 0 is the rightmost)


def test_what_qualifies_for_exact_draws():
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure([0, 1], [0, 1])
    assert terminal_measurements(qc, 10) == [(0, 0), (1, 1)]
    assert terminal_measurements(qc, 1) is None  # too wide for a density matrix under that limit
    unmeasured = QuantumCircuit(1)
    unmeasured.x(0)
    assert terminal_measurements(unmeasured, 10) is None
    reset = QuantumCircuit(1, 1)
    reset.reset(0)
    reset.measure(0, 0)
    assert terminal_measurements(reset, 10) is None


@pytest.mark.parametrize("name", list(CIRCUITS))
def test_superoperators_in_the_circuit_give_the_noise_models_distribution(chip, name):
    """The exact sampler writes each gate's error into the circuit (Aer converting the noise
    model costs ~2.5 ms a call); the distribution must be the one Aer computes from the model."""
    device, cal, sim = chip
    native = transpile(CIRCUITS[name](), target=device.target(cal), seed_transpiler=1)
    small, qubits = compact(native, device.dt)
    plan = terminal_measurements(small, 10)
    noise = device.noise_model(cal, qubits)
    args = (sim._aer, [small], [plan], qubits, cal, noise, None, device.dt)
    ours = sampling._with_superops(*args)
    assert ours is not None, "the superoperator path should take this circuit"
    theirs = sampling._with_noise_model(*args)
    noiseless = sampling._with_noise_model(sim._aer, [small], [plan], qubits, cal, None, None, device.dt)
    np.testing.assert_allclose(ours[0], theirs[0], atol=1e-12)
    assert np.abs(ours[0] - noiseless[0]).max() > 1e-3  # the noise is there to be matched


def test_models_the_superoperators_cannot_express_take_aers_noise_path(chip):
    device, cal, sim = chip
    small, qubits = compact(transpile(bell(), target=device.target(cal), seed_transpiler=1), device.dt)
    plan = terminal_measurements(small, 10)
    model = build_noise_model(cal, qubits)
    assert model.superops() is not None
    from qiskit_aer.noise import depolarizing_error
    model.add_all_qubit_quantum_error(depolarizing_error(0.5, 1), ["rz"])
    assert model.superops() is None
    assert sampling._with_superops(sim._aer, [small], [plan], qubits, cal, model, None, device.dt) is None
    # rz now scrambles: the distribution reflects the added error
    blurred = sampling._with_noise_model(sim._aer, [small], [plan], qubits, cal, model, None, device.dt)[0]
    plain = sampling._with_superops(sim._aer, [small], [plan], qubits, cal, build_noise_model(cal, qubits), None,
                                    device.dt)[0]
    assert np.abs(blurred - plain).max() > 0.01
