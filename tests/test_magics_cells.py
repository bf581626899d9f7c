"""Cell parsing of %%qmio in this process: language detection and the UsageErrors it raises."""
from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from qmio_lab.magics.cells import cell_circuits, cell_language
from qmio_lab.magics.running import RunRequest, check_request
from support.circuits import BELL_QASM2, BELL_QASM3


def test_language_detection():
    assert cell_language(BELL_QASM2) == "qasm2"
    assert cell_language("// a comment\n" + BELL_QASM3) == "qasm3"
    assert cell_language("qc = 1\n") == "python"
    with pytest.raises(UsageError, match="OPENQASM 1"):
        cell_language("OPENQASM 1.0;")


def test_cells_give_circuits():
    ns: dict = {}
    assert cell_circuits(BELL_QASM2, ns)[1][0].num_qubits == 2
    lang, circuits = cell_circuits("from qiskit import QuantumCircuit\nqc = QuantumCircuit(1)\nqc.measure_all()\n"
                                   "(qc, qc)\n", ns)
    assert lang == "python" and len(circuits) == 2 and "qc" in ns


@pytest.mark.parametrize("req, message", [
    (RunRequest("qpu", 0, 1, None, None, 0), "out of range"),
    (RunRequest("simulator", 10, 1, "calibration:x", None, 0), "--target emulator"),
    (RunRequest("emulator", 10, 1, "calibration:", None, 0), "calibration:<id>"),
    (RunRequest("qpu", 10, 1, None, None, -3), "--priority -3"),
])
def test_request_checks(req, message):
    with pytest.raises(UsageError, match=message):
        check_request(req)
    check_request(RunRequest("emulator", 10, 1, "calibration:cal-1", None, 0))
