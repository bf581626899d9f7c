"""A replay runs the QPU's own physics: the emulator's noise replay of the circuits a QPU job ran,
with the same calibration and seed, gives the counts the QPU's simulator gives, circuit for
circuit, however the emulator cuts the job into batches.

The QPU service takes no seed, so the QPU side is its simulator (``QmioSimulator``, whose
``execute_compact`` is what the service's simulator process calls); the emulator side is a real
two-process LocalCluster.
"""
from __future__ import annotations

import dask.config
import pytest
from support.circuits import basis_state, bell, ghz
from distributed import Client, LocalCluster
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.random import random_circuit

from qmio_lab import config
from qmio_lab.device import QmioDevice, QmioSimulator
from qmio_lab.emulator import EmulatorBackend

SHOTS = 3000
SEED = 2026


@pytest.fixture(scope="module")
def local():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield cluster, client


def waited() -> QuantumCircuit:
    """Bell pair, then 15 µs of T1/T2 relaxation before the read-out."""
    qc = QuantumCircuit(2, 2, name="bell-wait")
    qc.h(0)
    qc.cx(0, 1)
    qc.delay(15, [0, 1], unit="us")
    qc.measure([0, 1], [0, 1])
    return qc


def qpu_job(device: QmioDevice, cal) -> list[QuantumCircuit]:
    """Native circuits as the QPU runs them, on several sets of physical qubits, interleaved
    (a set's circuits are not consecutive in the job), every one measured only at its end."""
    target = device.target(cal)
    made = [ghz(3), bell(), basis_state(5, 4, depth=1), random_circuit(4, 5, measure=True, seed=2),
            waited(), ghz(3), bell(), random_circuit(3, 6, measure=True, seed=9)]
    native = [transpile(c, target=target, seed_transpiler=1 + i, optimization_level=1)
              for i, c in enumerate(made)]
    return native


def used_qubits(circuit: QuantumCircuit) -> tuple[int, ...]:
    return tuple(sorted({circuit.find_bit(q).index for inst in circuit.data
                         if inst.operation.name != "barrier" for q in inst.qubits}))


@pytest.mark.parametrize("by", ["calibration", "id"])
def test_replay_gives_the_qpu_simulators_counts_for_the_same_seed(local, device: QmioDevice, by: str):
    cluster, client = local
    at = device.calibration.taken_at
    cal = device.calibration_at(at)
    circuits = qpu_job(device, cal)
    widest = int(config.get("device.exact_sampling_max_qubits"))
    assert all(c.num_qubits == device.num_qubits and len(used_qubits(c)) <= widest for c in circuits)
    sets = [used_qubits(c) for c in circuits]
    assert any(sets[i] != sets[i + 1] and sets[i] in sets[i + 2:] for i in range(len(sets) - 1)), \
        "the job should interleave circuits on different sets of qubits"

    qpu = QmioSimulator(device, at=at).run(circuits, shots=SHOTS, seed_simulator=SEED).result()
    assert all(exp.metadata.get("exact_distribution") for exp in qpu.results), "exact-sampling path"
    assert qpu.calibration_id == cal.id

    backend = EmulatorBackend(client=client, cluster=cluster, calibration_resolver=lambda cal_id: cal)
    noise = cal if by == "calibration" else f"calibration:{cal.id}"
    with dask.config.set({"qmio.emulator.batch.min_size": 1, "qmio.emulator.batch.per_worker": 2}):
        replay = backend.run(circuits, shots=SHOTS, noise=noise, seed_simulator=SEED).result()
    assert replay.batches > 1  # circuit i keeps its seed in whichever batch it lands
    assert replay.calibration_id == cal.id

    for i, circuit in enumerate(circuits):
        assert replay.results[i].metadata["physical_qubits"] == list(sets[i])
        assert replay.get_counts(i) == qpu.get_counts(i), f"circuit {i} ({circuit.name})"

    # not vacuous: the counts follow the seed
    other = QmioSimulator(device, at=at).run(circuits, shots=SHOTS, seed_simulator=SEED + 1).result()
    assert any(other.get_counts(i) != qpu.get_counts(i) for i in range(len(circuits)))
