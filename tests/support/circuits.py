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
