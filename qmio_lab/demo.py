"""The short demo `make lab` runs: today's calibration and a GHZ state on the simulated QPU."""
from __future__ import annotations

from qiskit import QuantumCircuit, transpile

from qmio_lab.device import QmioDevice, QmioSimulator


def bell_circuit() -> QuantumCircuit:
    """The two-qubit Bell state, measured: the smallest circuit with entanglement to check."""
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def ghz_circuit(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n, name=f"ghz{n}")
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    qc.measure_all()
    return qc


def run_demo(qubits: int = 3, shots: int = 4000, seed: int | None = None) -> dict[str, int]:
    device = QmioDevice(seed=seed)
    cal = device.calibration_at()
    s = cal.summary()
    print(f"QMIO simulated QPU: {device.num_qubits} qubits, {len(device.topology.edges)} ECR couplers")
    print(f"calibration {s['id']} taken {s['taken_at']} ({s['age_hours']:.1f} h ago)")
    print(
        f"  median T1 {s['t1_median_us']:.1f} us  T2e {s['t2_median_us']:.1f} us  "
        f"readout error {s['readout_error_median']:.2%}  sx error {s['sx_error_median']:.2e}  "
        f"ecr error {s['ecr_error_median']:.2%}"
    )
    sim = QmioSimulator(device)
    circuit = transpile(ghz_circuit(qubits), sim, optimization_level=3, seed_transpiler=1)
    layout = circuit.layout.final_index_layout() if circuit.layout else list(range(qubits))
    counts = sim.run(circuit, shots=shots).result().get_counts()
    good = counts.get("0" * qubits, 0) + counts.get("1" * qubits, 0)
    print(f"GHZ-{qubits} on physical qubits {layout}, {shots} shots:")
    for key, value in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {key}  {value:6d}  {'#' * round(40 * value / shots)}")
    print(f"P(GHZ) = {good / shots:.3f}")
    return counts
