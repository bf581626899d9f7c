"""Readout-error mitigation with mthree, from the calibration or from calibration circuits.

Every QMIO calibration measures each qubit's assignment errors (``readout_p10``: read 1 having
prepared 0; ``readout_p01``: read 0 having prepared 1), so the confusion matrices mthree needs
are already known, at no cost in shots: ``source="calibration"`` (the default) hands them to
mthree's ``cals_from_matrices``. ``source="measure"`` runs mthree's own calibration circuits on
the backend instead (what one does when the calibration is suspected stale). Either way mthree
corrects counts into a quasi-probability distribution over the measured bits.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from qiskit import QuantumCircuit
from qiskit.providers import BackendV2

from qmio_lab.device.calibration import Calibration

Source = Literal["calibration", "measure"]
SOURCES = ("calibration", "measure")


def readout_matrices(calibration: Calibration) -> list[np.ndarray]:
    """One 2×2 assignment matrix per qubit, in mthree's layout: column ``j`` is the state
    prepared, row ``i`` the bit read, so ``[[P(0|0), P(0|1)], [P(1|0), P(1|1)]]``."""
    return [np.array([[1.0 - q.readout_p10, q.readout_p01], [q.readout_p10, 1.0 - q.readout_p01]])
            for q in calibration.qubits]


def calibration_of(backend: BackendV2) -> Calibration:
    """The calibration whose readout errors ``backend``'s results carry: the QPU service's in
    force, the in-process simulator's at its clock, the emulator's ``noise`` option."""
    from qmio_lab.device.simulator import QmioSimulator
    from qmio_lab.qpu.backend import QPUBackend

    if isinstance(backend, QPUBackend):
        return backend.client.calibration()
    if isinstance(backend, QmioSimulator):
        return backend.device.calibration_at(backend._clock())
    if callable(getattr(backend, "noise_calibration", None)):  # the emulator (not imported here: importing
        cal = backend.noise_calibration()                        # dask_jobqueue outside the main thread fails)
        if cal is None:
            raise ValueError("the emulator runs without readout noise (noise=None), so there is nothing to "
                             "mitigate; set backend.set_options(noise='calibration:<id>') to replay the QPU's "
                             "noise, or mitigate with source='measure'")
        return cal
    raise ValueError(f"no calibration is known for a {type(backend).__name__}; use source='measure' "
                     "(mthree's calibration circuits) for a backend other than qmio_lab's")


def measured_qubits(circuit: QuantumCircuit, clbits: Sequence[Any] | None = None) -> list[int]:
    """The qubit each of ``clbits`` (default: all, in order) last measured, as mthree takes them
    (``qubits[i]`` is read into bit ``i``). For a transpiled circuit these are physical qubits."""
    clbits = list(circuit.clbits if clbits is None else clbits)
    source: dict[Any, int] = {}
    for inst in circuit.data:
        if inst.operation.name == "measure":
            source[inst.clbits[0]] = circuit.find_bit(inst.qubits[0]).index
    missing = [circuit.find_bit(c).index for c in clbits if c not in source]
    if missing:
        raise ValueError(f"readout mitigation needs every classical bit measured; bit(s) {missing} of "
                         f"{circuit.name!r} are never written by a measurement")
    qubits = [source[c] for c in clbits]
    if len(set(qubits)) != len(qubits):
        raise ValueError(f"readout mitigation needs each qubit measured into one bit; {circuit.name!r} reads "
                         f"a qubit into several ({qubits})")
    return qubits


class ReadoutMitigator:
    """mthree's M3 correction for one backend. With ``source="calibration"`` the matrices come
    from the calibration in force and follow it when it changes (they are kept per calibration
    id); with ``source="measure"`` mthree measures the qubits a correction needs, once each,
    with ``shots`` shots (mthree's default when None)."""

    def __init__(self, backend: BackendV2, source: Source = "calibration", *, shots: int | None = None) -> None:
        if source not in SOURCES:
            raise ValueError(f"measure_mitigation source must be one of {SOURCES}, not {source!r}")
        self.backend = backend
        self.source = source
        self.shots = shots
        self._by_calibration: dict[str, Any] = {}
        self._measured: Any = None
        self._current: Any = None

    def begin_run(self) -> None:
        """Look up the calibration in force once for the run about to start (and fail before
        any shot is spent when there is none to mitigate with)."""
        if self.source == "calibration":
            import mthree

            cal = calibration_of(self.backend)
            if cal.id not in self._by_calibration:
                mit = mthree.M3Mitigation()
                mit.cals_from_matrices(readout_matrices(cal))
                self._by_calibration = {cal.id: mit}  # an older calibration's matrices are not used again
            self._current = self._by_calibration[cal.id]

    def mthree(self, qubits: Sequence[int]) -> Any:
        """The ``M3Mitigation`` holding matrices for ``qubits``."""
        import mthree

        if self.source == "calibration":
            if self._current is None:
                self.begin_run()
            return self._current
        if self._measured is None:
            self._measured = mthree.M3Mitigation(self.backend)
        known = self._measured.single_qubit_cals or []
        wanted = sorted({int(q) for q in qubits if q >= len(known) or known[q] is None})
        if wanted:
            self._measured.cals_from_system(wanted, shots=self.shots)
        return self._measured

    def correct(self, counts: Mapping[str, int], qubits: Sequence[int]) -> Any:
        """Counts (keys as Qiskit writes them; register spaces allowed) as mthree's
        ``QuasiDistribution`` over the same bits, ``qubits[i]`` having been read into bit ``i``."""
        joined: dict[str, int] = {}
        for key, n in counts.items():
            bits = key.replace(" ", "")
            joined[bits] = joined.get(bits, 0) + int(n)
        for bits in joined:
            if len(bits) != len(qubits):
                raise ValueError(f"counts of {len(bits)} bits cannot be corrected for {len(qubits)} qubits {list(qubits)}")
        return self.mthree(qubits).apply_correction(joined, list(qubits), return_mitigation_overhead=True)
