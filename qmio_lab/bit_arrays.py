"""Counts (Qiskit's dict of bitstrings) as the per-register BitArrays SamplerV2 results hold."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from qiskit.circuit import ClassicalRegister
from qiskit.primitives import BitArray


def register_bit_arrays(counts: Mapping[str, int], cregs: Sequence[ClassicalRegister],
                        rng: np.random.Generator | None = None) -> dict[str, BitArray]:
    """One BitArray of every shot per register, the registers' bits taken from the same shots.

    Counts keys hold the registers last-declared first, separated by spaces (Qiskit's order), so
    the first-declared register is the lowest bits of the joined key. Counts carry no shot
    order: with ``rng`` the shots come in a random order, as a device's would."""
    width = sum(creg.size for creg in cregs)
    joint: dict[str, int] = {}
    for key, n in counts.items():
        bits = key.replace(" ", "")
        joint[bits] = joint.get(bits, 0) + int(n)
    shots = BitArray.from_counts(joint, num_bits=width)
    if rng is not None:
        shots = BitArray(shots.array[rng.permutation(shots.num_shots)], width)
    arrays: dict[str, BitArray] = {}
    offset = 0
    for creg in cregs:
        arrays[creg.name] = shots.slice_bits(range(offset, offset + creg.size)) if creg.size else \
            BitArray(np.zeros((shots.num_shots, 0), np.uint8), 0)
        offset += creg.size
    return arrays


__all__ = ["register_bit_arrays"]
