"""Submitting a ``%%qmio`` cell's circuits to a target and turning refusals into UsageErrors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from qiskit import QuantumCircuit, transpile
from qiskit.exceptions import QiskitError

TARGETS = ("qpu", "emulator", "simulator")
MAX_SHOTS = 100_000


@dataclass
class RunRequest:
    target: str
    shots: int | None
    optimization_level: int
    noise: str | None
    name: str | None
    priority: int


def check_request(req: RunRequest) -> None:
    if req.shots is not None and not 1 <= req.shots <= MAX_SHOTS:
        raise UsageError(f"--shots {req.shots} is out of range; use 1..{MAX_SHOTS}")
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
    """The backends a kernel's magics use, made on first use and kept for the session."""

    def __init__(self) -> None:
        self._backends: dict[str, Any] = {}

    def backend(self, target: str) -> Any:
        if target not in self._backends:
            import qmio_lab

            self._backends[target] = qmio_lab.get_backend(target)
        return self._backends[target]

    def submit(self, circuits: list[QuantumCircuit], req: RunRequest) -> Any:
        check_request(req)
        backend = self.backend(req.target)
        try:
            if req.target == "qpu":
                opts: dict[str, Any] = {"optimization_level": req.optimization_level, "priority": req.priority,
                                        "name": req.name}
                if req.shots is not None:
                    opts["shots"] = req.shots
                return backend.run(circuits, **opts)
            if req.target == "emulator":
                from qmio_lab.emulator.backend import BASIS_GATES

                compiled = transpile(circuits, basis_gates=list(BASIS_GATES),
                                     optimization_level=req.optimization_level)
                opts = {"noise": req.noise}
                if req.shots is not None:
                    opts["shots"] = req.shots
                return backend.run(compiled, **opts)
            compiled = transpile(circuits, backend, optimization_level=req.optimization_level)
            return backend.run(compiled, shots=req.shots or 10000)
        except (QiskitError, ValueError, LookupError) as exc:
            raise UsageError(f"{req.target} refused the job: {one_line(exc)}") from None
