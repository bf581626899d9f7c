"""Measuring Pauli observables: group qubit-wise commuting terms, one circuit per group.

The basis changes are written in native gates on the physical qubits of an already transpiled
circuit, so adding measurements never costs another transpilation.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit
from qiskit.quantum_info import PauliList


@dataclass(frozen=True)
class MeasurementGroup:
    """Pauli labels measurable together, and the basis letter for each measured qubit."""

    labels: tuple[str, ...]
    basis: Mapping[int, str]  # virtual qubit -> "X" | "Y" | "Z" (read-only: groups are shared)

    @property
    def key(self) -> str:
        return ",".join(f"{q}{b}" for q, b in sorted(self.basis.items()))


def group_paulis(labels: Iterable[str]) -> list[MeasurementGroup]:
    """Qubit-wise commuting groups of the non-identity labels (little-endian Qiskit labels).

    A hybrid loop asks for the same observable's groups at every iteration; grouping costs about
    a millisecond, so the answer is kept per set of labels.
    """
    return list(_groups(tuple(sorted({label for label in labels if set(label) != {"I"}}))))


@lru_cache(maxsize=512)
def _groups(unique: tuple[str, ...]) -> tuple[MeasurementGroup, ...]:
    if not unique:
        return ()
    groups = []
    for plist in PauliList(list(unique)).group_qubit_wise_commuting():
        members = tuple(p.to_label().lstrip("-i") for p in plist)
        basis: dict[int, str] = {}
        for label in members:
            for q, letter in enumerate(reversed(label)):
                if letter != "I":
                    basis[q] = letter
        groups.append(MeasurementGroup(members, MappingProxyType(basis)))
    return tuple(groups)


def append_measurement(
    circuit: QuantumCircuit, group: MeasurementGroup, physical: list[int]
) -> QuantumCircuit:
    """``circuit`` (transpiled, physical qubits) with native basis changes and measurements.

    X is measured after H = rz(π/2)·sx·rz(π/2); Y after sx (which maps Y to Z). Clbit k of
    register ``meas`` holds the k-th measured virtual qubit in ascending order.
    """
    out = circuit.copy()
    qubits = sorted(group.basis)
    creg = ClassicalRegister(len(qubits), "meas")
    out.add_register(creg)
    for k, q in enumerate(qubits):
        p = physical[q]
        letter = group.basis[q]
        if letter == "X":
            out.rz(math.pi / 2, p)
            out.sx(p)
            out.rz(math.pi / 2, p)
        elif letter == "Y":
            out.sx(p)
        out.measure(p, creg[k])
    return out


def pauli_expectations(counts: dict[str, int], group: MeasurementGroup) -> dict[str, tuple[float, int]]:
    """⟨P⟩ for every label of ``group`` from the counts of its circuit, and the shots used."""
    qubits = sorted(group.basis)
    position = {q: k for k, q in enumerate(qubits)}
    values = np.array([int(key.split(" ")[0], 2) for key in counts], dtype=np.int64)  # "meas" is the last register added: leftmost
    weights = np.array(list(counts.values()), dtype=float)  # counts, or quasi-probabilities times shots
    total = float(weights.sum())
    shots = int(round(total))
    out = {}
    for label in group.labels:
        mask = 0
        for q, letter in enumerate(reversed(label)):
            if letter != "I":
                mask |= 1 << position[q]
        parity = np.array([bin(int(v) & mask).count("1") & 1 for v in values])
        out[label] = (float(np.dot(weights, 1 - 2 * parity) / total), shots)
    return out
