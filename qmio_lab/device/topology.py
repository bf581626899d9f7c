"""The QMIO chip: 32 qubits and the 33 directed ECR pairs of its published calibrations.

The layout is hardware, not a calibration property: every snapshot shares it, so circuits
transpiled yesterday still map onto today's chip. A day's calibration may lack a pair (it
happens on the real QPU); that pair is then unavailable in that calibration's Target, not
removed from the chip. The chip itself is ``qmio.device.chip`` (qmio.yaml).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from qiskit.transpiler import CouplingMap

from qmio_lab import config


def _configured_couplers() -> tuple[tuple[int, int], ...]:
    return tuple((int(c), int(t)) for c, t in config.get("device.chip.couplers"))


def _configured_positions() -> tuple[tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x, y in config.get("device.chip.positions"))


@dataclass(frozen=True)
class Topology:
    """Qubit positions (x, row; rows grow downwards) and directed ``(control, target)`` ECR pairs."""

    couplers: Sequence[tuple[int, int]] = field(default_factory=_configured_couplers)
    qubit_positions: Sequence[tuple[float, float]] = field(default_factory=_configured_positions)

    def __post_init__(self) -> None:
        n = len(self.qubit_positions)
        bad = [pair for pair in self.couplers if not all(0 <= q < n for q in pair) or pair[0] == pair[1]]
        if bad:
            raise ValueError(f"couplers {bad[:4]} name qubits outside 0..{n - 1} (qmio.device.chip)")

    @property
    def num_qubits(self) -> int:
        return len(self.qubit_positions)

    @cached_property
    def rows(self) -> tuple[tuple[int, ...], ...]:
        """The qubits of each row, top to bottom."""
        ys = sorted({y for _, y in self.qubit_positions})
        return tuple(tuple(q for q, (_, y) in enumerate(self.qubit_positions) if y == row) for row in ys)

    @cached_property
    def positions(self) -> dict[int, tuple[float, float]]:
        """``{qubit: (x, y)}``, y grows down."""
        return dict(enumerate(self.qubit_positions))

    @cached_property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """The directed ECR pairs: the control is driven at its partner's frequency."""
        return tuple(tuple(pair) for pair in self.couplers)  # type: ignore[misc]

    def coupling_map(self) -> CouplingMap:
        return CouplingMap(list(self.edges))

    def neighbours(self, qubit: int) -> set[int]:
        return {b if a == qubit else a for a, b in self.edges if qubit in (a, b)}
