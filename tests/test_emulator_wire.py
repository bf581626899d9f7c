"""The plain-circuit path: same counts, memory and headers as AerSimulator.run, or no path."""
from __future__ import annotations

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.circuit import Parameter
from qiskit.circuit.classical import expr, types
from qiskit.circuit.library import HGate, UnitaryGate, XGate
from qiskit.circuit.random import random_circuit
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, pauli_error

from qmio_lab.device import QmioDevice, aer_native
from qmio_lab.emulator import wire
from qmio_lab.emulator.tasks import BatchSpec, pack, run_batch, unpack


def test_the_installed_qiskit_aer_offers_the_native_path():
    """If qiskit-aer moves the internals the plain-circuit path uses, sweeps silently fall back to
    QPY and lose its speed: fail here rather than skip."""
    assert wire.AVAILABLE and aer_native.AVAILABLE


def _registers_resets_and_phase() -> QuantumCircuit:
    a, b = QuantumRegister(2, "a"), QuantumRegister(2, "b")
    lo, hi = ClassicalRegister(1, "lo"), ClassicalRegister(3, "hi")
    qc = QuantumCircuit(a, b, lo, hi, name="regs", global_phase=0.7, metadata={"point": 3})
    qc.h(a[0])
    qc.rx(1.1, b[1])
    qc.cx(a[0], b[0])
    qc.measure(a[0], lo[0])  # mid-circuit
    qc.reset(a[0])
    qc.barrier()
    qc.u(0.3, 0.2, 0.1, a[0])
    qc.append(HGate(label="my_h"), [a[1]])
    qc.rzz(0.4, a[1], b[1])
    qc.measure([a[0], b[0], b[1]], hi)  # a[0] again, after its reset
    return qc


EVERY_GATE = sorted(aer_native.GATES - {"cu2"})  # cu2: Aer's, not a qiskit gate
DENSITY_MATRIX_GATES = ["cx", "ecr", "h", "rz", "rzz", "sx", "u", "x"]


def circuits(basis: list[str] = EVERY_GATE) -> list[QuantumCircuit]:
    raw = [random_circuit(4, depth=6, measure=True, seed=i) for i in range(12)]
    return (transpile(raw, basis_gates=basis + ["measure", "reset"], optimization_level=0)
            + [_registers_resets_and_phase()])


def _same(a, b) -> None:
    assert a.success and b.success
    assert len(a.results) == len(b.results)
    for x, y in zip(a.results, b.results):
        assert x.data.counts == y.data.counts
        assert x.data.memory == y.data.memory
        assert x.header == y.header
        assert x.shots == y.shots
        assert x.metadata["method"] == y.metadata["method"]


@pytest.mark.parametrize("method", ["automatic", "statevector", "density_matrix"])
def test_counts_memory_and_headers_match_aer_exactly(method):
    sim = AerSimulator(method=method, max_parallel_threads=1)
    circs = circuits(DENSITY_MATRIX_GATES if method == "density_matrix" else EVERY_GATE)
    batch = wire.encode_batch(circs)
    assert batch is not None
    theirs = sim.run(circs, shots=300, seed_simulator=11, memory=True).result()
    ours = wire.run(sim, batch.circuits, shots=300, seed_simulator=11, memory=True)
    _same(ours, theirs)
    # the test is not vacuous: another seed changes the counts
    other = wire.run(sim, batch.circuits, shots=300, seed_simulator=12, memory=True)
    assert any(x.data.counts != y.data.counts for x, y in zip(other.results, theirs.results))


def test_the_header_keeps_registers_phase_metadata_and_name():
    plain = wire.encode(_registers_resets_and_phase())
    result = wire.run(AerSimulator(), [plain], shots=50, seed_simulator=1)
    header = result.results[0].header
    assert header["name"] == "regs"
    assert header["creg_sizes"] == [["lo", 1], ["hi", 3]]
    assert header["qreg_sizes"] == [["a", 2], ["b", 2]]
    assert header["global_phase"] == pytest.approx(0.7)
    assert header["metadata"] == {"point": 3}
    assert all(len(key.split(" ")) == 2 for key in result.get_counts(0))  # two registers
    assert any(op[0] == "h" and op[4] == "my_h" for op in plain.ops)


def test_a_noise_model_keyed_on_a_label_reaches_the_labelled_gate():
    qc = QuantumCircuit(2, 2)
    qc.x(0)
    qc.append(XGate(label="flaky"), [1])
    qc.measure([0, 1], [0, 1])
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(pauli_error([("X", 1.0)]), "flaky")  # undoes the flip
    noise.add_basis_gates(["x"])
    sim = AerSimulator(noise_model=noise)
    theirs = sim.run(qc, shots=100, seed_simulator=3).result()
    ours = wire.run(sim, [wire.encode(qc)], shots=100, seed_simulator=3)
    assert theirs.get_counts() == ours.get_counts() == {"01": 100}


def _unbound() -> QuantumCircuit:
    qc = QuantumCircuit(1, 1)
    qc.rx(Parameter("t"), 0)
    qc.measure(0, 0)
    return qc


def _control_flow() -> QuantumCircuit:
    qc = QuantumCircuit(2, 1)
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(1)
    return qc


def _classical_var() -> QuantumCircuit:
    qc = QuantumCircuit(1, 1)
    qc.add_var("flag", expr.lift(True, types.Bool()))
    qc.measure(0, 0)
    return qc


def _delay() -> QuantumCircuit:
    qc = QuantumCircuit(1, 1)
    qc.delay(100, 0)
    qc.measure(0, 0)
    return qc


def _unitary() -> QuantumCircuit:
    qc = QuantumCircuit(1, 1)
    qc.append(UnitaryGate(np.eye(2)), [0])
    qc.measure(0, 0)
    return qc


def _save() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.save_statevector()
    return qc


@pytest.mark.parametrize("make", [_unbound, _control_flow, _classical_var, _delay, _unitary, _save])
def test_anything_beyond_plain_gates_goes_through_aers_own_path(make):
    circuit = make()
    assert wire.encode(circuit) is None
    payload = pack([random_circuit(2, 2, measure=True, seed=0), circuit])
    assert isinstance(payload, bytes)  # one such circuit sends the whole batch as QPY
    assert [c.name for c in unpack(payload)][1] == circuit.name


def test_pack_goes_plain_only_when_asked_and_run_batch_tags_every_result():
    circs = circuits()
    assert isinstance(pack(circs), wire.PlainBatch)
    assert isinstance(pack(circs, plain=False), bytes)
    spec = BatchSpec(shots=200, method="automatic", seed=5)
    plain = run_batch(pack(circs), spec, 10, 2)
    qpy = run_batch(pack(circs, plain=False), spec, 10, 2)
    assert [r.data.counts for r in plain] == [r.data.counts for r in qpy]
    assert [r.metadata["index"] for r in plain] == list(range(10, 10 + len(circs)))
    assert {r.metadata["batch"] for r in plain} == {2}


def test_noise_replay_refuses_a_plain_batch_with_the_fix(device: QmioDevice):
    spec = BatchSpec(shots=10, method="automatic", noise=device.calibration)
    with pytest.raises(ValueError, match="plain=False"):
        run_batch(pack(circuits()[:2]), spec, 0, 0)
