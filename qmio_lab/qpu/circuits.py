"""Circuits on the wire: OpenQASM 2, OpenQASM 3 or base64 QPY, never pickle.

The service parses untrusted payloads here and turns every parser failure into a
:class:`PayloadError` that names the circuit, the line and the parser's message.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from typing import Any

from qiskit import QuantumCircuit, qasm2, qasm3, qpy

from qmio_lab.errors import PayloadError

FORMATS = ("qasm2", "qasm3", "qpy")
_POSITION = re.compile(r"^(?:<input>:)?(\d+),(\d+):\s*")
_PARSE_ERROR = re.compile(r"^circuit \d+: (qasm2|qasm3|qpy) parse error: (.*)$", re.DOTALL)


def parse_error(index: int, fmt: str, detail: str) -> PayloadError:
    """The refusal of a circuit that does not parse; :func:`parse_error_detail` reads it back."""
    return PayloadError(f"circuit {index}: {fmt} parse error: {detail}")


def parse_error_detail(message: str) -> tuple[str, str] | None:
    """``(format, detail)`` of a service refusal made by :func:`parse_error`, else None: a
    client can then word it as its own parser would (the ``%%qmio`` magic does)."""
    match = _PARSE_ERROR.match(message)
    return (match.group(1), match.group(2)) if match else None


def detect_format(source: str) -> str:
    """``qasm2`` or ``qasm3`` from the ``OPENQASM`` version line (comments skipped)."""
    for line in source.splitlines():
        text = line.split("//", 1)[0].strip()
        if not text:
            continue
        if text.upper().startswith("OPENQASM"):
            version = text[len("OPENQASM"):].strip().rstrip(";").strip()
            return "qasm2" if version.startswith("2") else "qasm3"
        break
    return "qasm3"  # OpenQASM 3 makes the version line optional


def _qasm3_location(exc: BaseException) -> str:
    """Dig the line/column out of the ANTLR exception the OpenQASM 3 parser chains."""
    seen = exc
    while seen is not None:
        for candidate in (seen, *getattr(seen, "args", ())):
            token = getattr(candidate, "offendingToken", None)
            if token is not None:
                return f"line {token.line}, column {token.column}: unexpected {token.text!r}"
        seen = seen.__cause__ or seen.__context__
    return ""


def parser_message(exc: BaseException, fmt: str) -> str:
    """A QASM parser's complaint on one line, its position as ``line L, column C``."""
    where = _qasm3_location(exc) if fmt == "qasm3" else ""
    message = " ".join(str(exc).split()).strip().strip("'\"") or type(exc).__name__
    message = _POSITION.sub(r"line \1, column \2: ", message)
    if where:
        message = where if message in ("", type(exc).__name__) else f"{where}: {message}"
    return message


def item_format(item: Any, index: int = 0) -> str:
    """The item's format (``qasm2``, ``qasm3`` or ``qpy``), or the PayloadError that shows the shape."""
    if not isinstance(item, dict) or "data" not in item:
        raise PayloadError(
            f"circuit {index}: expected an object like "
            '{"format": "qasm3", "data": "OPENQASM 3.0; ..."}'
        )
    data = item["data"]
    fmt = item.get("format") or (detect_format(data) if isinstance(data, str) else None)
    if fmt not in FORMATS or not isinstance(data, str):
        raise PayloadError(f"circuit {index}: format must be one of {', '.join(FORMATS)} with string data")
    return fmt


def parse_circuit(item: dict[str, Any], index: int = 0) -> QuantumCircuit:
    """Read one ``{"format": ..., "data": ...}`` item into a circuit (named if it has a name).
    Untrusted items pass admission (qmio_lab.qpu.admission) first."""
    fmt = item_format(item, index)
    data = item["data"]
    try:
        if fmt == "qasm2":
            # no include path: only the built-in qelib1.inc resolves, never a file of the host
            circuit = qasm2.loads(data, include_path=(), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
        elif fmt == "qasm3":
            circuit = qasm3.loads(data)
        else:
            circuits = qpy.load(io.BytesIO(base64.b64decode(data, validate=True)))
            if len(circuits) != 1 or not isinstance(circuits[0], QuantumCircuit):
                raise PayloadError(f"circuit {index}: a QPY item must hold exactly one circuit")
            circuit = circuits[0]
    except PayloadError:
        raise
    except (binascii.Error, ValueError) as exc:
        if fmt == "qpy":
            raise PayloadError(f"circuit {index}: not valid base64 QPY: {exc}") from exc
        raise parse_error(index, fmt, str(exc)) from exc
    except Exception as exc:  # parsers raise many types; all mean "bad input"
        raise parse_error(index, fmt, parser_message(exc, fmt)) from exc
    if item.get("name"):
        circuit.name = str(item["name"])
    return circuit


def circuit_to_item(circuit: QuantumCircuit | str, fmt: str = "qpy") -> dict[str, str]:
    """Serialise for submission: QPY keeps everything (parameters bound, names, metadata)."""
    if isinstance(circuit, str):
        return {"format": detect_format(circuit), "data": circuit}
    if fmt == "qasm3":
        return {"format": "qasm3", "data": qasm3.dumps(circuit), "name": circuit.name}
    if fmt == "qasm2":
        return {"format": "qasm2", "data": qasm2.dumps(circuit), "name": circuit.name}
    buf = io.BytesIO()
    qpy.dump(circuit, buf)
    return {"format": "qpy", "data": base64.b64encode(buf.getvalue()).decode("ascii"), "name": circuit.name}


def expanded_count(item: Any) -> int:
    """How many circuits an item stands for: one per row of ``parameter_values``, else one."""
    values = item.get("parameter_values") if isinstance(item, dict) else None
    return len(values) if isinstance(values, list) else 1


def check_parameter_values(item: dict[str, Any], template: QuantumCircuit, index: int) -> None:
    """Every row must give one number per parameter of the template, in ``template.parameters`` order."""
    names = [p.name for p in template.parameters]
    values = item.get("parameter_values")
    if values is None:
        if names:
            raise PayloadError(
                f"circuit {index} has {len(names)} unbound parameter(s) ({', '.join(names[:5])}); "
                "bind them or send \"parameter_values\": [[...], ...]"
            )
        return
    if not isinstance(values, list) or not values:
        raise PayloadError(f"circuit {index}: parameter_values must be a non-empty list of rows")
    for row_no, row in enumerate(values):
        if (not isinstance(row, list) or len(row) != len(names)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)):
            raise PayloadError(
                f"circuit {index}: parameter_values row {row_no} must be {len(names)} number(s) "
                f"for ({', '.join(names[:5])}), got {str(row)[:80]}"
            )


def content_key(item: dict[str, Any]) -> str:
    """Stable digest of a submitted circuit, the transpiler cache key."""
    h = hashlib.sha256()
    h.update(str(item.get("format")).encode())
    h.update(b"\0")
    try:
        h.update(str(item.get("data")).encode())
    except UnicodeEncodeError:  # JSON can carry a lone surrogate; no parser or database can
        raise PayloadError("circuit data is not valid Unicode text (a lone surrogate such as \\ud800)") from None
    return h.hexdigest()
