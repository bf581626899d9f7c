"""The ``backend.configuration()`` that BackendV1-era tools still ask of a backend.

Qiskit 2 removed ``BackendConfiguration``, but well-kept tools read it yet: mthree's
``M3Mitigation(backend)`` takes the number of qubits, the shot and circuit limits and whether
the backend is a simulator from it. Our three backends answer with this, built from their
Target and limits, so such a tool sees the same figures the backend enforces.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from qiskit.providers import BackendV2


@dataclass(frozen=True)
class BackendConfiguration:
    backend_name: str
    backend_version: str
    num_qubits: int
    basis_gates: list[str]
    coupling_map: list[list[int]] | None
    max_shots: int | None
    max_experiments: int | None
    simulator: bool
    memory: bool = True
    conditional: bool = True
    open_pulse: bool = False
    dt: float | None = None
    description: str = ""
    gates: list[Any] = field(default_factory=list)

    @property
    def n_qubits(self) -> int:
        return self.num_qubits

    @property
    def max_circuits(self) -> int | None:
        return self.max_experiments

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n_qubits": self.num_qubits}


def configuration_of(backend: BackendV2, *, max_shots: int | None, simulator: bool) -> BackendConfiguration:
    """``backend``'s configuration from its Target (gates and couplers) and limits."""
    target = backend.target
    coupling = target.build_coupling_map()
    return BackendConfiguration(
        backend_name=backend.name, backend_version=str(backend.backend_version),
        num_qubits=int(target.num_qubits or 0),
        basis_gates=sorted(name for name in target.operation_names if name not in ("delay", "barrier")),
        coupling_map=[list(edge) for edge in coupling.get_edges()] if coupling is not None else None,
        max_shots=max_shots, max_experiments=backend.max_circuits, simulator=simulator,
        dt=target.dt, description=backend.description or "",
    )
