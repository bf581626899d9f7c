"""Aer noise from a calibration: relaxation from T1/T2 and durations, depolarizing for the rest.

Built for any subset of qubits, renumbered 0..k-1, so a 3-qubit circuit on the 32-qubit chip
simulates 3 qubits with exactly their noise and pays nothing for the other 29.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

from qiskit_aer.noise import (
    NoiseModel, QuantumError, ReadoutError, depolarizing_error, thermal_relaxation_error,
)

from qmio_lab.device.calibration import Calibration, QubitCalibration
from qmio_lab.device.generation import coherence_limited_error

NATIVE_GATES = ("rz", "sx", "x", "ecr")


class CachedNoiseModel(NoiseModel):
    """A NoiseModel that serialises itself once.

    Aer turns the noise model into a dict (and through JSON) on every ``run()``: for a small
    circuit that costs more than the simulation (~10 ms against ~1 ms). Our models do not change
    once built, so the dict is kept; any ``add_*`` call drops it, and copies start without it.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._dict_cache: dict[bool, dict] = {}

    def to_dict(self, serializable: bool = False) -> dict:
        cached = self._dict_cache.get(serializable)
        if cached is None:
            cached = self._dict_cache[serializable] = super().to_dict(serializable)
        return cached

    def __deepcopy__(self, memo: dict) -> NoiseModel:
        clone = NoiseModel.__new__(NoiseModel)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key != "_dict_cache":
                setattr(clone, key, copy.deepcopy(value, memo))
        return clone

    def _changed(self) -> None:
        self._dict_cache.clear()

    def add_basis_gates(self, *args, **kwargs):
        self._changed()
        return super().add_basis_gates(*args, **kwargs)

    def add_all_qubit_quantum_error(self, *args, **kwargs):
        self._changed()
        return super().add_all_qubit_quantum_error(*args, **kwargs)

    def add_quantum_error(self, *args, **kwargs):
        self._changed()
        return super().add_quantum_error(*args, **kwargs)

    def add_all_qubit_readout_error(self, *args, **kwargs):
        self._changed()
        return super().add_all_qubit_readout_error(*args, **kwargs)

    def add_readout_error(self, *args, **kwargs):
        self._changed()
        return super().add_readout_error(*args, **kwargs)


def relaxation(q: QubitCalibration, duration: float) -> QuantumError:
    """Thermal relaxation of one qubit over ``duration`` seconds (zero temperature)."""
    return thermal_relaxation_error(q.t1, min(q.t2, 2 * q.t1), duration)


def gate_error(qubits: list[QubitCalibration], duration: float, error: float) -> QuantumError:
    """Relaxation over the gate, then the depolarizing share that makes the total ``error``.

    Average fidelities compose as F = (1-p)·F_relax + p/d for a depolarizing channel of
    parameter p, which gives p exactly (no first-order approximation).
    """
    relax = relaxation(qubits[0], duration)
    for q in qubits[1:]:
        relax = relax.expand(relaxation(q, duration))
    d = 2 ** len(qubits)
    f_relax = 1 - coherence_limited_error(qubits, duration)
    f_goal = 1 - error
    if f_goal >= f_relax:
        return relax
    p = min((f_relax - f_goal) / (f_relax - 1 / d), d * d / (d * d - 1))
    return relax.compose(depolarizing_error(p, len(qubits)))


def readout_error(q: QubitCalibration) -> ReadoutError:
    return ReadoutError([[1 - q.readout_p10, q.readout_p10], [q.readout_p01, 1 - q.readout_p01]])


def build_noise_model(cal: Calibration, qubits: Sequence[int] | None = None) -> CachedNoiseModel:
    """Noise model for physical ``qubits`` (default: all), renumbered in the given order."""
    phys = list(range(cal.num_qubits)) if qubits is None else list(qubits)
    index = {p: i for i, p in enumerate(phys)}
    model = CachedNoiseModel(basis_gates=list(NATIVE_GATES))
    for p in phys:
        q = cal.qubits[p]
        err = gate_error([q], q.sx_duration, q.sx_error)
        model.add_quantum_error(err, ["sx", "x"], [index[p]])
        model.add_readout_error(readout_error(q), [index[p]])
    for c in cal.couplers:
        if c.control in index and c.target in index:
            qs = [cal.qubits[c.control], cal.qubits[c.target]]
            err = gate_error(qs, c.ecr_duration, c.ecr_error)
            model.add_quantum_error(err, "ecr", [index[c.control], index[c.target]])
    return model
