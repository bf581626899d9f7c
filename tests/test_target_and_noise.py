import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.library import QFTGate
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import average_gate_fidelity

from qmio_lab.device import QmioDevice
from qmio_lab.device.noise import build_noise_model, gate_error

NATIVE = {"rz", "sx", "x", "ecr", "measure", "delay", "barrier"}


def test_target_carries_calibration(device: QmioDevice):
    cal = device.calibration
    target = device.target(cal)
    assert target.num_qubits == 32
    assert set(target.operation_names) == {"rz", "sx", "x", "ecr", "measure", "delay"}
    assert target["rz"][(0,)].duration == 0.0
    assert target["sx"][(3,)].error == pytest.approx(cal.qubits[3].sx_error)
    c = cal.couplers[0]
    assert target["ecr"][(c.control, c.target)].error == pytest.approx(c.ecr_error)
    assert (c.target, c.control) not in target["ecr"]
    assert target.qubit_properties[5].t1 == pytest.approx(cal.qubits[5].t1)


@pytest.mark.parametrize("seed", range(6))
def test_transpiled_circuits_use_native_gates_on_native_couplers(device: QmioDevice, seed: int):
    qc = random_circuit(5, 6, max_operands=2, measure=True, seed=seed)
    if seed == 0:
        qc = QuantumCircuit(4)
        qc.append(QFTGate(4), range(4))
        qc.measure_all()
    out = transpile(qc, target=device.target(), seed_transpiler=seed)
    edges = set(device.topology.edges)
    for inst in out.data:
        assert inst.operation.name in NATIVE, inst.operation.name
        if inst.operation.name == "ecr":
            pair = tuple(out.find_bit(q).index for q in inst.qubits)
            assert pair in edges


def test_gate_error_matches_calibrated_error(device: QmioDevice):
    cal = device.calibration
    q = cal.qubits[0]
    one = gate_error([q], q.sx_duration, q.sx_error)
    assert 1 - average_gate_fidelity(one.to_quantumchannel()) == pytest.approx(q.sx_error, rel=1e-6)
    c = cal.couplers[0]
    two = gate_error([cal.qubits[c.control], cal.qubits[c.target]], c.ecr_duration, c.ecr_error)
    assert 1 - average_gate_fidelity(two.to_quantumchannel()) == pytest.approx(c.ecr_error, rel=1e-6)


def test_noise_model_covers_every_qubit_and_coupler(device: QmioDevice):
    model = device.noise_model(device.calibration)
    assert set(model.noise_qubits) == set(range(32))
    assert {"sx", "x", "ecr", "measure"} <= set(model.noise_instructions)
    # readout is asymmetric, as measured: P(0|1) differs from P(1|0)
    q = device.calibration.qubits[2]
    probs = build_noise_model(device.calibration, (2,))._local_readout_errors[(0,)].probabilities
    assert probs[0][1] == pytest.approx(q.readout_p10) and probs[1][0] == pytest.approx(q.readout_p01)


def test_noise_model_serialises_once_and_forgets_on_change(device: QmioDevice):
    import copy

    from qiskit_aer.noise import NoiseModel, depolarizing_error

    model = build_noise_model(device.calibration, (0, 5))
    first = model.to_dict(serializable=True)
    assert model.to_dict(serializable=True) is first  # Aer asks on every run: answered from cache
    clone = copy.deepcopy(model)
    assert type(clone) is NoiseModel and clone.to_dict(serializable=True) == first
    model.add_all_qubit_quantum_error(depolarizing_error(0.1, 1), ["x"])
    changed = model.to_dict(serializable=True)
    assert changed is not first and len(changed["errors"]) == len(first["errors"]) + 1


def test_every_gate_error_of_a_day_runs_on_aers_statevector_method(device: QmioDevice):
    """Aer's statevector method diagonalises each Kraus channel's Choi matrix; an exactly
    depolarizing share beside relaxation left a cluster of equal eigenvalues that made it fail
    for about one coupler in forty (a job with a mid-circuit measurement then failed, or the
    simulator process crashed). Every coupler's and qubit's error, at a day's worth of drift
    steps, must run."""
    from datetime import timedelta

    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel

    pair = QuantumCircuit(2, 2)
    pair.x(0)
    pair.sx(1)
    pair.ecr(0, 1)
    pair.measure([0, 1], [0, 1])
    aer = AerSimulator(method="statevector")
    start = device.calibration.taken_at
    failed = []
    for step in range(36):  # 6 h in the service's 10-minute drift steps
        cal = device.calibration_at(start + timedelta(minutes=10 * step))
        for c in cal.couplers:
            qs = [cal.qubits[c.control], cal.qubits[c.target]]
            model = NoiseModel(basis_gates=["ecr", "sx", "x", "rz", "measure"])
            model.add_quantum_error(gate_error(qs, c.ecr_duration, c.ecr_error), "ecr", [0, 1], warnings=False)
            for q in (0, 1):
                model.add_quantum_error(gate_error([qs[q]], qs[q].sx_duration, qs[q].sx_error), ["sx", "x"], [q],
                                        warnings=False)
            try:
                ok = aer.run(pair, shots=1, noise_model=model).result().success
            except Exception:  # Aer raises from its eigensolver
                ok = False
            if not ok:
                failed.append((step, c.control, c.target))
    assert not failed, failed
