"""What a ``%%qmio`` cell holds: OpenQASM 2, OpenQASM 3, or Python ending in circuit(s).

A QASM cell stays text until a target needs circuits: the QPU service parses what it is sent
(and refuses it with the line and column), so a cell bound for the QPU is parsed once, there.
Every mistake becomes an IPython ``UsageError``: one line saying what is wrong and how to fix it.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from qiskit import QuantumCircuit

from qmio_lab.device.rules import has_measurement
from qmio_lab.qpu.circuits import parser_message

_VERSION = re.compile(r"^\s*OPENQASM\s+(\d+)(?:\.\d+)?\s*;", re.MULTILINE)
_INCLUDE = re.compile(r'^\s*include\s+"([^"]*)"', re.MULTILINE)
#: what every parser resolves without a file (the service has no access to the user's files)
_BUILT_IN_INCLUDES = {"qelib1.inc", "stdgates.inc"}


def cell_language(body: str) -> str:
    """``qasm2``, ``qasm3`` or ``python``, from the first statement of the cell."""
    code = "\n".join(line for line in body.splitlines() if not line.strip().startswith("//"))
    match = _VERSION.match(code.lstrip())
    if not match:
        return "python"
    version = match.group(1)
    if version not in ("2", "3"):
        raise UsageError(f"OPENQASM {version} is not supported; write OPENQASM 2.0 or OPENQASM 3.0")
    return f"qasm{version}"


@dataclass(frozen=True)
class Cell:
    """A cell read as far as the kernel needs: Python has run (``circuits`` is set), QASM is
    still its ``text``."""

    language: str
    text: str
    circuits: list[QuantumCircuit] | None = None

    @property
    def is_qasm(self) -> bool:
        return self.language != "python"

    @property
    def needs_local_files(self) -> bool:
        """Includes a file of the user's, which only this kernel can read."""
        return self.is_qasm and any(name not in _BUILT_IN_INCLUDES for name in _INCLUDE.findall(self.text))

    def to_circuits(self) -> list[QuantumCircuit]:
        """The circuits, parsing a QASM cell here (for targets that take circuits, not text)."""
        if self.circuits is not None:
            return self.circuits
        return as_circuits(parse_qasm(self.text, self.language))


def qasm_error(language: str, detail: str) -> UsageError:
    """The one wording of a QASM mistake, whether this kernel or the service found it."""
    return UsageError(f"OpenQASM {language[-1]} error: {detail}")


def parse_qasm(body: str, language: str) -> QuantumCircuit:
    if language == "qasm2":
        from qiskit import qasm2

        try:
            return qasm2.loads(body, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
        except qasm2.QASM2ParseError as exc:
            raise qasm_error(language, parser_message(exc, language)) from None
    from qiskit import qasm3

    try:
        return qasm3.loads(body)
    except Exception as exc:  # the importer raises QASM3ImporterError or the parser's own errors
        raise qasm_error(language, parser_message(exc, language)) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text.strip("'\"") or type(exc).__name__


def run_python(body: str, namespace: dict[str, Any], circuit_name: str | None) -> Any:
    """Run the cell's Python in the user namespace; return ``--circuit NAME`` or its last expression."""
    try:
        tree = ast.parse(body, filename="<%%qmio cell>")
    except SyntaxError as exc:
        raise UsageError(f"the cell is neither OpenQASM nor valid Python: {exc.msg} (line {exc.lineno}); "
                         "start QASM cells with 'OPENQASM 2.0;' or 'OPENQASM 3.0;'") from None
    last = None
    if circuit_name is None and tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    try:
        exec(compile(tree, "<%%qmio cell>", "exec"), namespace)
        value = eval(compile(last, "<%%qmio cell>", "eval"), namespace) if last is not None else None
    except Exception as exc:
        line = _error_line(exc)
        raise UsageError(f"the cell's Python raised {type(exc).__name__}: {_one_line(exc)}{line}") from None
    if circuit_name is not None:
        if circuit_name not in namespace:
            raise UsageError(f"--circuit {circuit_name}: the cell defines no variable {circuit_name!r}")
        return namespace[circuit_name]
    if last is None:
        raise UsageError("the cell's Python must end with an expression giving a QuantumCircuit "
                         "(or a list of them), or name the variable with --circuit NAME")
    return value


def _error_line(exc: BaseException) -> str:
    tb = exc.__traceback__
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<%%qmio cell>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return f" (cell line {lineno})" if lineno else ""


def as_circuits(value: Any) -> list[QuantumCircuit]:
    """A circuit or a non-empty list/tuple of circuits, each with a measurement."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise UsageError("the cell gave an empty list: give at least one QuantumCircuit")
    for i, item in enumerate(items):
        if not isinstance(item, QuantumCircuit):
            where = "" if len(items) == 1 and not isinstance(value, (list, tuple)) else f" item {i}"
            raise UsageError(f"the cell's{where} value is a {type(item).__name__}, not a QuantumCircuit; "
                             "end the cell with a circuit or a list of circuits (or use --circuit NAME)")
        if not has_measurement(item):
            raise UsageError(f"circuit {item.name!r} has no measurement; add e.g. qc.measure_all()")
    return items


def read_cell(body: str, namespace: dict[str, Any], circuit_name: str | None = None) -> Cell:
    """Run a Python cell for its circuits; leave a QASM cell as text (checked for its version)."""
    if not body.strip():
        raise UsageError("the %%qmio cell is empty: write OpenQASM 2/3 or Python ending in a QuantumCircuit")
    language = cell_language(body)
    if language == "python":
        return Cell(language, body, as_circuits(run_python(body, namespace, circuit_name)))
    if circuit_name is not None:
        raise UsageError("--circuit names a Python variable; this cell is OpenQASM, leave it out")
    return Cell(language, body)
