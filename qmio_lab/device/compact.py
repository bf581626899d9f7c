"""A native circuit cut down to the qubits it touches: what the noisy simulation runs."""
from __future__ import annotations

from qiskit import QuantumCircuit, QuantumRegister

from qmio_lab.device.noise import delay_seconds


def compact(circuit: QuantumCircuit, dt: float) -> tuple[QuantumCircuit, tuple[int, ...]]:
    """Keep only the qubits the circuit touches; delays stay, in whole ``dt``.

    Returns the compact circuit and the physical qubit of each of its qubits. A delay relaxes
    its qubit with the T1/T2 in force when the circuit runs (:func:`~qmio_lab.device.noise.relax_delays`), not when
    it was compiled, and stays a plain delay in ``dt``: the only unit QPY keeps (qiskit 2.6
    writes a delay's duration without its unit), on the way to the simulator process.
    """
    index = {q: circuit.find_bit(q).index for q in circuit.qubits}
    used = sorted({index[q] for inst in circuit.data if inst.operation.name != "barrier" for q in inst.qubits})
    local = {p: i for i, p in enumerate(used)}
    out = QuantumCircuit(
        QuantumRegister(max(len(used), 1), "q"), *circuit.cregs,
        name=circuit.name, global_phase=circuit.global_phase, metadata=dict(circuit.metadata or {}),
    )
    loose = [c for c in circuit.clbits if not circuit.find_bit(c).registers]
    if loose:
        out.add_bits(loose)
    for inst in circuit.data:
        op = inst.operation
        if op.name == "barrier":
            continue
        qubits = [out.qubits[local[index[q]]] for q in inst.qubits]
        if op.name == "delay":
            ticks = round(delay_seconds(op, dt) / dt)
            if ticks > 0:
                out.delay(ticks, qubits, unit="dt")
            continue
        out.append(op, qubits, inst.clbits)
    return out, tuple(used)
