"""Aer noise from a calibration: relaxation from T1/T2 and durations, depolarizing for the rest.

Built for any subset of qubits, renumbered 0..k-1, so a 3-qubit circuit on the 32-qubit chip
simulates 3 qubits with exactly their noise and pays nothing for the other 29.
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import Choi, Kraus
from qiskit_aer.noise import (
    NoiseModel, QuantumError, ReadoutError, pauli_error, thermal_relaxation_error,
)

from qmio_lab.device.calibration import Calibration, QubitCalibration
from qmio_lab.device.generation import coherence_limited_error

NATIVE_GATES = ("rz", "sx", "x", "ecr")
_OWN_ATTRIBUTES = frozenset({"_dict_cache", "_local_errors", "_superops", "_only_local"})


class CachedNoiseModel(NoiseModel):
    """A NoiseModel that serialises itself once.

    Aer turns the noise model into a dict (and through JSON) on every ``run()``: for a small
    circuit that costs more than the simulation (~10 ms against ~1 ms). Our models do not change
    once built, so the dict is kept; any ``add_*`` call drops it, and copies start without it.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._dict_cache: dict[bool, dict] = {}
        self._local_errors: dict[tuple[str, tuple[int, ...]], QuantumError] = {}
        self._superops: dict[tuple[str, tuple[int, ...]], np.ndarray] | None = None
        self._only_local = True  # every quantum error is on named gates and given qubits

    def superops(self) -> dict[tuple[str, tuple[int, ...]], np.ndarray] | None:
        """Each gate error as the superoperator matrix of its channel, by ``(gate, qubits)``:
        what the exact sampler writes into a circuit instead of passing the model to Aer, whose
        conversion of the model costs more than a small simulation. None when the model has
        errors this form cannot place (on every qubit, or on instructions given as objects)."""
        if not self._only_local:
            return None
        if self._superops is None:
            self._superops = {key: np.ascontiguousarray(err.to_quantumchannel().data)
                              for key, err in self._local_errors.items()}
        return self._superops

    def to_dict(self, serializable: bool = False) -> dict:
        cached = self._dict_cache.get(serializable)
        if cached is None:
            cached = self._dict_cache[serializable] = super().to_dict(serializable)
        return cached

    def __deepcopy__(self, memo: dict) -> NoiseModel:
        clone = NoiseModel.__new__(NoiseModel)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key not in _OWN_ATTRIBUTES:
                setattr(clone, key, copy.deepcopy(value, memo))
        return clone

    def _changed(self) -> None:
        self._dict_cache.clear()
        self._superops = None

    def add_basis_gates(self, *args, **kwargs):
        self._changed()
        return super().add_basis_gates(*args, **kwargs)

    def add_all_qubit_quantum_error(self, *args, **kwargs):
        self._changed()
        self._only_local = False
        return super().add_all_qubit_quantum_error(*args, **kwargs)

    def add_quantum_error(self, error, instructions, qubits, warnings=True):
        self._changed()
        names = [instructions] if isinstance(instructions, str) else list(instructions)
        if all(isinstance(name, str) for name in names) and isinstance(error, QuantumError):
            for name in names:
                key = (name, tuple(int(q) for q in qubits))
                if key in self._local_errors:  # Aer composes a second error on the same gate
                    self._only_local = False
                self._local_errors[key] = error
        else:
            self._only_local = False
        return super().add_quantum_error(error, instructions, qubits, warnings)

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

    The channel is handed to Aer as one Kraus map. Composed as circuits, a pair with one qubit
    of T2 <= T1 (a reset mixture) and one of T2 > T1 (a Kraus map) made Aer's statevector
    method fail ("Kraus is empty") or crash the process, for ordinary mid-circuit measurements.
    """
    relax = relaxation(qubits[0], duration)
    for q in qubits[1:]:
        relax = relax.expand(relaxation(q, duration))
    d = 2 ** len(qubits)
    f_relax = 1 - coherence_limited_error(qubits, duration)
    f_goal = 1 - error
    if f_goal < f_relax:
        p = min((f_relax - f_goal) / (f_relax - 1 / d), d * d / (d * d - 1))
        relax = relax.compose(depolarizing_share(p, len(qubits)))
    return _as_kraus(relax)


#: relative spread of the Pauli probabilities in :func:`depolarizing_share`
PAULI_SPREAD = 1e-3


def depolarizing_share(p: float, num_qubits: int) -> QuantumError:
    """A depolarizing channel of parameter ``p`` (each non-identity Pauli with probability
    ``p/4ⁿ``, so the same average fidelity), with those probabilities spread by ±0.1 % so the
    channel's Choi matrix has no exactly repeated eigenvalues. Aer's statevector method
    diagonalises every Kraus channel's Choi matrix (LAPACK heevx); with the cluster an exact
    depolarizing share leaves beside relaxation, about one coupler in forty of a day's
    calibrations made it fail ("Kraus is empty", or a crash of the process)."""
    labels = ["".join(t) for t in itertools.product("IXYZ", repeat=num_qubits)]
    others = len(labels) - 1
    share = p / 4**num_qubits
    spread = PAULI_SPREAD * np.linspace(-1.0, 1.0, others)  # sums to zero: total unchanged
    probs = [1.0 - share * others, *(share * (1.0 + spread))]
    return pauli_error(list(zip(labels, probs)))


def _as_kraus(error: QuantumError) -> QuantumError:
    """``error`` as one Kraus map of minimal rank: the Choi matrix's eigenvectors above
    round-off. A channel at T2 = 2·T1 has a Choi matrix with exact zeros, and the round-off
    eigenvalues below them turned into NaN Kraus operators inside Aer."""
    choi = Choi(error).data
    values, vectors = np.linalg.eigh((choi + choi.conj().T) / 2)
    keep = values > values.max() * 1e-12
    d = 2 ** error.num_qubits
    ops = [np.sqrt(v) * vec.reshape(d, d, order="F") for v, vec in zip(values[keep], vectors.T[keep])]
    # what round-off took from trace preservation, put back by a polar correction
    total = sum(op.conj().T @ op for op in ops)
    w, u = np.linalg.eigh(total)
    correction = u @ np.diag(w ** -0.5) @ u.conj().T
    return QuantumError(Kraus([op @ correction for op in ops]))


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


_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12}


def delay_seconds(op: Any, dt: float) -> float:
    """A delay's duration in seconds, whatever its unit (``dt`` is the device's sample time)."""
    unit = op.unit
    return float(op.duration) * (dt if unit == "dt" else _TIME_UNITS[unit])


def relax_delays(circuit: QuantumCircuit, qubits: tuple[int, ...], cal: Calibration, dt: float) -> QuantumCircuit:
    """A compact circuit with each delay replaced by the T1/T2 relaxation of its physical
    qubit under ``cal``, as Aer's noise path runs it."""
    if not any(inst.operation.name == "delay" for inst in circuit.data):
        return circuit
    out = circuit.copy_empty_like()
    for inst in circuit.data:
        if inst.operation.name == "delay":
            phys = qubits[circuit.find_bit(inst.qubits[0]).index]
            out.append(relaxation(cal.qubits[phys], delay_seconds(inst.operation, dt)), inst.qubits)
        else:
            out._append(inst)
    return out
