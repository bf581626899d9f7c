"""The QMIO chip layout: 32 qubits in rows of 5-3-5-3-6-4-6 with directed ECR couplers.

The layout is fixed hardware, not a calibration property: every snapshot of every device shares
it, so circuits transpiled yesterday still map onto today's chip.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from qiskit.transpiler import CouplingMap

ROW_SIZES: tuple[int, ...] = (5, 3, 5, 3, 6, 4, 6)
CHIP_WIDTH = 10.0
#: Two qubits in adjacent rows are coupled when their horizontal distance is below this.
COUPLING_REACH = 1.5


@dataclass(frozen=True)
class Topology:
    """Qubit positions and directed ECR couplers of the chip."""

    row_sizes: tuple[int, ...] = ROW_SIZES

    @property
    def num_qubits(self) -> int:
        return sum(self.row_sizes)

    @cached_property
    def rows(self) -> tuple[tuple[int, ...], ...]:
        rows, start = [], 0
        for size in self.row_sizes:
            rows.append(tuple(range(start, start + size)))
            start += size
        return tuple(rows)

    @cached_property
    def positions(self) -> dict[int, tuple[float, float]]:
        """``{qubit: (x, y)}``; rows are centred on a chip ``CHIP_WIDTH`` wide, y grows down."""
        pos = {}
        for y, row in enumerate(self.rows):
            for i, q in enumerate(row):
                pos[q] = (round((i + 0.5) * CHIP_WIDTH / len(row), 4), float(y))
        return pos

    @cached_property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """Directed ``(control, target)`` ECR pairs between nearest neighbours of adjacent rows.

        The direction alternates along each row gap, as cross-resonance directions do on real
        chips (the control is the qubit driven at its partner's frequency).
        """
        pos = self.positions
        pairs = []
        for upper, lower in zip(self.rows, self.rows[1:]):
            k = 0
            for a in upper:
                for b in lower:
                    if abs(pos[a][0] - pos[b][0]) < COUPLING_REACH:
                        pairs.append((a, b) if k % 2 == 0 else (b, a))
                        k += 1
        return tuple(pairs)

    def coupling_map(self) -> CouplingMap:
        return CouplingMap(list(self.edges))

    def neighbours(self, qubit: int) -> set[int]:
        return {b if a == qubit else a for a, b in self.edges if qubit in (a, b)}
