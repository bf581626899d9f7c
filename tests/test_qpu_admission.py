"""The admission prescan reads register sizes from the text before any parser allocates them."""
from __future__ import annotations

import pytest

from qmio_lab.errors import AdmissionError
from qmio_lab.qpu.admission import AdmissionLimits, prescan

LIMITS = AdmissionLimits(max_qubits=32, max_clbits=1024, max_operations=1000, max_nesting=5,
                         timeout_s=1, memory_mb=256, workers=1)


def _qasm3(declaration: str) -> dict:
    return {"data": f'OPENQASM 3.0; include "stdgates.inc"; {declaration} c[0] = measure q[0];'}


@pytest.mark.parametrize("declaration, refused", [
    ("qubit[0x7fffffff] q; bit[1] c;", "2147483647 qubits"),
    ("qubit[1] q; bit[0X7FFF_FFFF] c;", "2147483647 classical bits"),
    ("qubit[0o777777] q; bit[1] c;", "262143 qubits"),
    ("qubit[0b1000000] q; bit[1] c;", "64 qubits"),
    ("qubit[2_000_000_000] q; bit[1] c;", "2000000000 qubits"),
    ("qubit[1] q; bit[" + "9" * 5000 + "] c;", "classical bits"),
])
def test_qasm3_integer_literals_of_every_base_are_read_before_parsing(declaration, refused):
    with pytest.raises(AdmissionError, match=refused):
        prescan(_qasm3(declaration), 0, "qasm3", LIMITS)


@pytest.mark.parametrize("declaration", [
    "qubit[0x1F] q; bit[0b11] c;",     # 31 qubits, 3 bits: within the limits
    "qubit[007] q; bit[1_0] c;",       # a leading zero is decimal
])
def test_sizes_within_the_limits_or_not_literals_pass_the_prescan(declaration):
    prescan(_qasm3(declaration), 0, "qasm3", LIMITS)


@pytest.mark.parametrize("declaration", [
    "qubit[2147483647 + 0] q; bit[1] c;",  # the parser would evaluate it and allocate the register
    "const uint n = 4; qubit[n] q; bit[1] c;",
    "qubit[1] q; bit[2 * 8] c;",
])
def test_register_sizes_that_are_expressions_are_refused_unevaluated(declaration):
    with pytest.raises(AdmissionError, match="must be an integer literal"):
        prescan(_qasm3(declaration), 0, "qasm3", LIMITS)


def test_qasm2_sizes_are_decimal_only():
    # OpenQASM 2 has no hex literals: the parser refuses the program, the prescan need not
    prescan({"data": 'OPENQASM 2.0; qreg q[0x7fffffff]; creg c[1];'}, 0, "qasm2", LIMITS)
    with pytest.raises(AdmissionError, match="2000000000 qubits"):
        prescan({"data": 'OPENQASM 2.0; qreg q[2000000000]; creg c[1];'}, 0, "qasm2", LIMITS)
