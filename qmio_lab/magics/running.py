"""Submitting a ``%%qmio`` cell's circuits to a target and turning refusals into UsageErrors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from qiskit import QuantumCircuit
from qiskit.exceptions import QiskitError

from qmio_lab import config
from qmio_lab.compilation import compile_for
from qmio_lab.errors import QPUServiceError
from qmio_lab.magics.cells import Cell, qasm_error
from qmio_lab.qpu.circuits import parse_error_detail

TARGETS = ("qpu", "emulator", "simulator")


@dataclass
class RunRequest:
    target: str
    shots: int | None
    optimization_level: int
    noise: str | None
    name: str | None
    priority: int


def check_request(req: RunRequest) -> None:
    max_shots = int(config.get("device.max_shots"))
    if req.shots is not None and not 1 <= req.shots <= max_shots:
        raise UsageError(f"--shots {req.shots} is out of range; use 1..{max_shots}")
    if req.noise is not None:
        if req.target != "emulator":
            raise UsageError("--noise replays a calibration on the emulator; add --target emulator "
                             "(the QPU and the simulator have their own noise)")
        if not req.noise.startswith("calibration:") or req.noise == "calibration:":
            raise UsageError(f"--noise {req.noise}: write calibration:<id>, e.g. --noise calibration:"
                             "cal-20261123T073000Z-s2024 (ids: %qmio calibration --history)")
    if req.priority < 0:
        raise UsageError(f"--priority {req.priority}: use 0 (default) to 10, higher runs first")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class Targets:
    """The backends a kernel's magics use, made on first use and kept while the kernel lives."""

    def __init__(self) -> None:
        self._backends: dict[str, Any] = {}

    def backend(self, target: str) -> Any:
        if target not in self._backends:
            import qmio_lab

            self._backends[target] = qmio_lab.get_backend(target)
        return self._backends[target]

    def submit(self, cell: Cell, req: RunRequest) -> Any:
        """Run the cell's circuits as ``req`` asks (already checked: :func:`check_request`).

        The QPU gets a QASM cell as text: the service parses it (once) and its refusal, which
        has the line and column, becomes the same UsageError a parse here would give."""
        backend = self.backend(req.target)
        shots = {} if req.shots is None else {"shots": req.shots}  # else the target's default_shots
        try:
            if req.target == "qpu":
                sent: list[QuantumCircuit] | list[str] = (
                    [cell.text] if cell.is_qasm and not cell.needs_local_files else cell.to_circuits())
                return backend.run(sent, optimization_level=req.optimization_level, priority=req.priority,
                                   name=req.name, **shots)
            circuits = cell.to_circuits()
            if req.target == "emulator":
                compiled = compile_for(circuits, "emulator", level=req.optimization_level)
                return backend.run(compiled, noise=req.noise, **shots)
            compiled = compile_for(circuits, backend, level=req.optimization_level)
            return backend.run(compiled, **shots)
        except QPUServiceError as exc:
            parsed = parse_error_detail(str(exc.payload.get("error", ""))) if exc.status == 422 else None
            if parsed is not None and cell.is_qasm:
                raise qasm_error(cell.language, parsed[1]) from None
            raise UsageError(f"{req.target} refused the job: {one_line(exc)}") from None
        except (QiskitError, ValueError, LookupError) as exc:
            raise UsageError(f"{req.target} refused the job: {one_line(exc)}") from None
