"""Cell parsing of %%qmio in this process: language detection and the UsageErrors it raises."""
from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from qmio_lab.magics.cells import cell_language, read_cell
from qmio_lab.magics.running import RunRequest, Targets, check_request
from support.circuits import BELL_QASM2, BELL_QASM3


def test_language_detection():
    assert cell_language(BELL_QASM2) == "qasm2"
    assert cell_language("// a comment\n" + BELL_QASM3) == "qasm3"
    assert cell_language("qc = 1\n") == "python"
    with pytest.raises(UsageError, match="OPENQASM 1"):
        cell_language("OPENQASM 1.0;")


def test_cells_give_circuits():
    ns: dict = {}
    qasm = read_cell(BELL_QASM2, ns)
    assert qasm.circuits is None and qasm.text == BELL_QASM2  # not parsed until a target needs circuits
    assert qasm.to_circuits()[0].num_qubits == 2
    cell = read_cell("from qiskit import QuantumCircuit\nqc = QuantumCircuit(1)\nqc.measure_all()\n(qc, qc)\n", ns)
    assert cell.language == "python" and len(cell.circuits) == 2 and "qc" in ns


def test_local_includes_are_read_in_the_kernel():
    assert not read_cell(BELL_QASM2, {}).needs_local_files  # qelib1.inc is built in everywhere
    assert read_cell('OPENQASM 2.0;\ninclude "mygates.inc";\nqreg q[1];\n', {}).needs_local_files


class _Recorder:
    def __init__(self):
        self.sent = None

    def run(self, run_input, **options):
        self.sent = run_input
        return "job"


def test_the_qpu_gets_qasm_cells_as_text_and_python_cells_as_circuits():
    targets = Targets()
    recorder = _Recorder()
    targets._backends["qpu"] = recorder
    req = RunRequest("qpu", 10, 1, None, None, 0)
    targets.submit(read_cell(BELL_QASM3, {}), req)
    assert recorder.sent == [BELL_QASM3]  # the service parses it, once
    targets.submit(read_cell("from qiskit import QuantumCircuit\nqc = QuantumCircuit(1)\nqc.measure_all()\nqc\n", {}),
                   req)
    assert [c.num_qubits for c in recorder.sent] == [1]


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


def test_an_interrupt_during_a_held_block_is_raised_by_the_caller_after_it():
    import os
    import signal

    from qmio_lab.magics.interrupts import interrupt_held

    before = signal.getsignal(signal.SIGINT)
    with interrupt_held() as interrupted:
        os.kill(os.getpid(), signal.SIGINT)  # as Jupyter interrupts a kernel
        steps = ["the block ran to its end"]
    assert interrupted and steps
    assert signal.getsignal(signal.SIGINT) is before  # Ctrl-C works as before once the block ends
    with interrupt_held() as quiet:
        pass
    assert not quiet
    with pytest.raises(KeyboardInterrupt), interrupt_held():  # asked twice: stops at once
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handlers run between bytecodes
            pass
    assert signal.getsignal(signal.SIGINT) is before
