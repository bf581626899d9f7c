"""Admission: the one owner of the rules a submitted circuit must pass before it may cost memory.

Every circuit that arrives over the network may come from a careless or hostile user. Before
anything is allocated for it, the text is scanned for what it declares (registers, includes);
then it is parsed, unrolled and transpiled in a sandbox process with a memory budget and a
deadline, so that a register bomb, an exponential gate definition or a parser corner case costs
one sandbox, never the service. Every refusal names the limit, the allowed value and the fix.
The limits live in ``qmio.yaml`` under ``qmio.qpu.admission``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from qiskit import QuantumCircuit

from qmio_lab import config
from qmio_lab.device.timing import JobTime
from qmio_lab.errors import AdmissionError

#: What an ``include`` may name: the standard libraries, built into the parsers. Nothing else
#: resolves, so no user can make the service open a file of its host.
STANDARD_INCLUDES = {"qasm2": ("qelib1.inc",), "qasm3": ("stdgates.inc",)}

_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_INCLUDE = re.compile(r"\binclude\s*(\"[^\"]*\"|'[^']*'|\S+)")
# qreg q[N]; creg c[N]; qubit[N] q; bit[N] c; qubit q; bit c; (OpenQASM 2 and 3)
_OLD_REGISTER = re.compile(r"\b(qreg|creg)\s+[A-Za-z_]\w*\s*\[\s*([^\]]*)\]")
_NEW_REGISTER = re.compile(r"\b(qubit|bit)\s*(?:\[\s*([^\]]*)\])?\s+[A-Za-z_]\w*\s*[;=]")


@dataclass(frozen=True)
class AdmissionLimits:
    """Hard limits on one submitted circuit (see ``qmio.qpu.admission`` in qmio.yaml)."""

    max_qubits: int
    max_clbits: int
    max_operations: int
    max_nesting: int
    timeout_s: float
    memory_mb: int
    workers: int
    emulator: bool = False  # the limits of the emulator target (its width), not the QPU's

    @classmethod
    def from_config(cls, num_qubits: int) -> AdmissionLimits:
        get = lambda key: config.get(f"qpu.admission.{key}")  # noqa: E731
        return cls(max_qubits=num_qubits, max_clbits=int(get("max_clbits")),
                   max_operations=int(get("max_operations")), max_nesting=int(get("max_nesting")),
                   timeout_s=float(get("timeout_s")), memory_mb=int(get("memory_mb")),
                   workers=int(get("workers")))

    @classmethod
    def for_emulator(cls) -> AdmissionLimits:
        """The same limits, as wide as the emulator goes (``qmio.emulator.max_qubits``)."""
        return dataclasses.replace(cls.from_config(int(config.get("emulator.max_qubits"))), emulator=True)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# integer literals as each language writes them: OpenQASM 3 adds 0x/0o/0b and digit separators
_INTEGER = {"qasm2": re.compile(r"[0-9]+"),
            "qasm3": re.compile(r"0[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*|0[oO][0-7](?:_?[0-7])*|0[bB][01](?:_?[01])*"
                                r"|[0-9](?:_?[0-9])*")}


def _declared_size(text: str, fmt: str) -> int | None:
    """A register size as written, when it is an integer literal (else the sandbox judges it).
    Anything else (an expression, a constant's name) is not evaluated here. A literal of more
    than 30 digits is read as 10**30, beyond any limit, without converting it."""
    text = text.strip()
    if not _INTEGER[fmt].fullmatch(text):
        return None
    base = {"0x": 16, "0o": 8, "0b": 2}.get(text[:2].lower(), 10)
    digits = (text[2:] if base != 10 else text).replace("_", "")
    return int(digits, base) if len(digits) <= 30 else 10**30


def prescan(item: dict[str, Any], index: int, fmt: str, limits: AdmissionLimits) -> None:
    """Refuse, from the text alone, what would allocate beyond the limits or reach the host:
    includes other than the standard ones, registers wider than allowed. Cheap: one pass of
    regular expressions over a payload already bounded by the size limit."""
    name = item.get("name")
    if name is not None:
        check_text("name", name, index)
    if fmt not in STANDARD_INCLUDES:
        return
    source = _COMMENTS.sub(" ", item["data"])
    for match in _INCLUDE.finditer(source):
        target = match.group(1).strip("\"'")
        if target not in STANDARD_INCLUDES[fmt]:
            allowed = " and ".join(f'"{s}"' for s in sum(STANDARD_INCLUDES.values(), ()))
            raise AdmissionError(
                f"circuit {index}: include {target[:80]!r} is not allowed; only the standard "
                f"libraries ({allowed}) can be included. Define the gates you need in the circuit."
            )
    qubits = clbits = 0
    for kind, size in _OLD_REGISTER.findall(source):
        n = _declared_size(size, fmt)
        if n is None:
            continue
        qubits, clbits = (qubits + n, clbits) if kind == "qreg" else (qubits, clbits + n)
    for kind, size in _NEW_REGISTER.findall(source):
        n = _declared_size(size, fmt) if size else 1
        if n is None:  # an expression would be evaluated, and its register allocated, by the parser
            raise AdmissionError(
                f"circuit {index}: the size of a {kind} register must be an integer literal, not "
                f"{size.strip()[:40]!r}; write it out, as in {kind}[5]."
            )
        qubits, clbits = (qubits + n, clbits) if kind == "qubit" else (qubits, clbits + n)
    check_width(index, qubits, clbits, limits)


def is_text(value: str) -> bool:
    """False for a string JSON can carry but UTF-8 cannot (a lone surrogate such as "\ud800"),
    which SQLite and every later encoder would choke on."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(field: str, value: Any, index: int) -> None:
    if not isinstance(value, str) or len(value) > 200:
        raise AdmissionError(f"circuit {index}: {field} must be a string of at most 200 characters")
    if not is_text(value):
        raise AdmissionError(f"circuit {index}: {field} is not valid Unicode text (a lone surrogate)")


def check_width(index: int, qubits: int, clbits: int, limits: AdmissionLimits) -> None:
    if qubits > limits.max_qubits:
        raise AdmissionError(
            f"circuit {index} uses {qubits} qubits; the emulator accepts at most {limits.max_qubits} "
            "(qmio.emulator.max_qubits)" if limits.emulator else
            f"circuit {index} uses {qubits} qubits; the QMIO QPU has {limits.max_qubits}. "
            "Run it on the emulator target instead."
        )
    if clbits > limits.max_clbits:
        raise AdmissionError(
            f"circuit {index} declares {clbits} classical bits; the limit is {limits.max_clbits} "
            "(qmio.qpu.admission.max_clbits). Measure into fewer bits."
        )


def count_operations(circuit: QuantumCircuit, index: int, limits: AdmissionLimits) -> int:
    """Operations once every gate definition is unrolled, counted without unrolling: each
    custom gate's count is computed once from its definition (a chain of 40 gates that each
    call the previous one twice is 2**40 operations and is refused in microseconds)."""
    from qiskit.circuit import ControlFlowOp
    from qiskit.circuit.library import get_standard_gate_name_mapping

    standard = set(get_standard_gate_name_mapping()) | {"measure", "reset", "barrier", "delay"}
    memo: dict[tuple, int] = {}

    def count(data: Any, depth: int) -> int:
        if depth > limits.max_nesting:
            raise AdmissionError(
                f"circuit {index}: gate definitions nest deeper than {limits.max_nesting} levels "
                "(qmio.qpu.admission.max_nesting)"
            )
        total = 0
        for inst in data:
            op = inst.operation
            if isinstance(op, ControlFlowOp):
                raise AdmissionError(
                    f"circuit {index} uses {op.name!r}: the QPU runs no classical control flow; "
                    "unroll loops and conditions into plain gates"
                )
            if op.name in standard or getattr(op, "definition", None) is None:
                total += 1
            else:
                key = (op.name, op.num_qubits, op.num_clbits, len(op.params))
                if key not in memo:
                    memo[key] = count(op.definition.data, depth + 1)
                total += memo[key]
            if total > limits.max_operations:
                raise AdmissionError(
                    f"circuit {index} has more than {limits.max_operations} operations once its gate "
                    "definitions are unrolled (qmio.qpu.admission.max_operations); split it into "
                    "several circuits"
                )
        return total

    return count(circuit.data, 0)


def check_parsed(circuit: QuantumCircuit, index: int, limits: AdmissionLimits) -> None:
    """The limits that need the parsed circuit (sizes written as expressions, unrolled size)."""
    check_width(index, circuit.num_qubits, circuit.num_clbits, limits)
    count_operations(circuit, index, limits)


class UserGate:
    """At most one admission in flight per user: with a few sandboxes, one user's slow or
    hostile circuits can then occupy one of them, never all. Waiting happens on the event loop,
    so a waiting user holds no thread either."""

    def __init__(self) -> None:
        self._held: dict[str, asyncio.Semaphore] = {}

    def of(self, user: str) -> asyncio.Semaphore:
        gate = self._held.get(user)
        if gate is None:
            gate = self._held[user] = asyncio.Semaphore(1)
        return gate


def check_reservation(store: Any, user: str, max_time_s: float, now: float) -> None:
    """A user's reservations share a daily budget and wait out a cooldown between them, so no
    user can hold the QPU by reopening a session the moment the last one ends. Raises
    AdmissionError with the numbers and when to try again."""
    from datetime import datetime, timezone

    budget = float(config.get("qpu.session_budget_s"))
    cooldown = float(config.get("qpu.session_cooldown_s"))
    day = datetime.fromtimestamp(now, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    used = store.reserved_seconds(user, day.timestamp())
    if used + max_time_s > budget:
        reset = datetime.fromtimestamp(day.timestamp() + 86400, timezone.utc).isoformat()
        raise AdmissionError(
            f"a {max_time_s:.0f} s reservation would exceed your daily budget: {used:.0f} of {budget:.0f} s "
            f"used today (qmio.qpu.session_budget_s); it resets at {reset}. Your jobs still queue without one.",
            retry_at=reset)
    last = store.last_session_end(user)
    if last is not None and last <= now < last + cooldown:
        again = datetime.fromtimestamp(last + cooldown, timezone.utc).isoformat()
        raise AdmissionError(
            f"your last reservation ended {now - last:.0f} s ago; the next may start {cooldown:.0f} s after it "
            f"(qmio.qpu.session_cooldown_s), at {again}", retry_at=again)


def check_cost(estimate: JobTime, time_scale: float = 1.0) -> None:
    """A job may hold the shared QPU for at most ``qmio.qpu.max_job_s`` of wall time: one whose
    estimate is over it is refused now, with the estimate, rather than stopped at that deadline
    later. With hardware timing it holds the QPU for the hardware's time too (in device time,
    ``time_scale`` device seconds per second)."""
    limit = float(config.get("qpu.max_job_s"))
    wall_s = estimate.simulation_s
    if estimate.mode == "hardware":
        wall_s = max(wall_s, estimate.hardware_s / time_scale)
    if wall_s > limit:
        raise AdmissionError(
            f"this job would hold the QPU for {estimate.describe()}; one job may hold it for at most "
            f"{limit:.0f} s (qmio.qpu.max_job_s). Use fewer shots, circuits or qubits, or split the job.",
            estimated_s=round(wall_s, 3), limit_s=limit)
