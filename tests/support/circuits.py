"""Small circuits the tests share; each one's ideal counts are known exactly."""
from __future__ import annotations

from qiskit import QuantumCircuit

from qmio_lab.demo import bell_circuit as bell  # noqa: F401 - the demo's circuits, measured
from qmio_lab.demo import ghz_circuit as ghz  # noqa: F401


BELL_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0], q[1];
measure q -> c;
"""

BELL_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""


def basis_state(i: int, n: int, depth: int = 0) -> QuantumCircuit:
    """|i> (after ``depth`` layers that cancel out): the counts name the circuit, so order errors show."""
    qc = QuantumCircuit(n, name=f"basis{i}")
    for _ in range(depth):
        qc.h(range(n))
        qc.cz(0, n - 1)
        qc.cz(0, n - 1)
        qc.h(range(n))
    for k in range(n):
        if i >> k & 1:
            qc.x(k)
    qc.measure_all()
    return qc


def two_halves(num_qubits: int, layers: int = 2, seed: int = 3, first: int | None = None) -> QuantumCircuit:
    """A hardware-efficient ansatz on two CX chains (the first ``first`` qubits, default half,
    and the rest) joined by one CX a layer (the gates to cut): RY angles in [0, 0.8) keep the
    Z correlations far from zero."""
    import numpy as np

    half = num_qubits // 2 if first is None else first
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(num_qubits)
    for _ in range(layers):
        for q in range(num_qubits):
            qc.ry(float(rng.uniform(0, 0.8)), q)
        for q in range(half - 1):
            qc.cx(q, q + 1)
        for q in range(half, num_qubits - 1):
            qc.cx(q, q + 1)
        qc.cx(half - 1, half)
    return qc
