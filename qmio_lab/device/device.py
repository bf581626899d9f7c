"""The simulated QMIO QPU: fixed chip, a history of calibrations, and noise that ages."""
from __future__ import annotations

import bisect
import dataclasses
import threading
from typing import Any
from datetime import datetime

from qiskit.transpiler import CouplingMap, Target
from qiskit_aer.noise import NoiseModel

from qmio_lab import config
from qmio_lab.device.calibration import Calibration, utc
from qmio_lab.device.generation import DriftModel, fresh_calibration
from qmio_lab.device.noise import build_noise_model
from qmio_lab.device.schedule import CalibrationSchedule
from qmio_lab.device.target import build_target
from qmio_lab.device.topology import Topology
from qmio_lab.errors import CalibrationError
from qmio_lab.lru import LRU

_CACHE_SIZE = 16


class QmioDevice:
    """A calibrated 32-qubit chip whose figures follow its calibrations and drift with age.

    ``seed`` fixes the fabrication (which qubits are good) and every random draw, so two devices
    with the same seed report identical calibrations for identical times. A new device starts
    calibrated at the last scheduled window (this morning's, or Friday's at the weekend),
    unless ``calibrated_at`` says otherwise, or ``history`` restores stored snapshots.
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        calibrated_at: datetime | None = None,
        history: list[Calibration] | None = None,
        topology: Topology | None = None,
    ) -> None:
        self.seed = int(config.get("device.seed") if seed is None else seed)
        self.topology = topology or Topology()
        self.dt = float(config.get("device.dt"))
        self.schedule = CalibrationSchedule.from_config()
        self._drift = DriftModel(self.seed)
        self._lock = threading.RLock()
        self._history: list[Calibration] = []
        self._current: Calibration | None = None
        self._targets: LRU[Any, Any] = LRU(_CACHE_SIZE, lock=True)
        self._noise: LRU[Any, Any] = LRU(_CACHE_SIZE, lock=True)
        for cal in history or ():
            self.add_calibration(cal)
        if self._current is None:
            start = calibrated_at or self.schedule.in_force_since(utc(None))
            self.calibrate(at=start)

    # ---- layout -------------------------------------------------------------------------
    @property
    def num_qubits(self) -> int:
        return self.topology.num_qubits

    @property
    def coupling_map(self) -> CouplingMap:
        return self.topology.coupling_map()

    @property
    def positions(self) -> dict[int, tuple[float, float]]:
        return dict(self.topology.positions)

    # ---- calibrations ---------------------------------------------------------------------
    def calibrate(self, at: datetime | None = None) -> Calibration:
        """Run the (simulated) calibration procedure at ``at``; the snapshot becomes current."""
        cal = fresh_calibration(self.seed, utc(at), self.topology)
        with self._lock:
            taken = {c.id for c in self._history}
            if cal.id in taken:  # ids name the second; a second snapshot in it gets a suffix
                n = 2
                while f"{cal.id}-{n}" in taken:
                    n += 1
                cal = dataclasses.replace(cal, id=f"{cal.id}-{n}")
            self.add_calibration(cal)
            self._current = cal
        return cal

    def add_calibration(self, cal: Calibration) -> None:
        """Put a stored snapshot back into the history (e.g. when a service restarts)."""
        if cal.num_qubits != self.num_qubits:
            raise CalibrationError(
                f"calibration {cal.id} has {cal.num_qubits} qubits; this device has {self.num_qubits}"
            )
        with self._lock:
            if any(c.id == cal.id for c in self._history):
                return
            keys = [c.taken_at for c in self._history]
            self._history.insert(bisect.bisect_right(keys, cal.taken_at), cal)
            if self._current is None or cal.taken_at >= self._current.taken_at:
                self._current = cal

    @property
    def calibration(self) -> Calibration:
        """The current snapshot, as measured (without drift)."""
        assert self._current is not None
        return self._current

    @property
    def history(self) -> list[Calibration]:
        with self._lock:
            return list(self._history)

    def calibration_by_id(self, cal_id: str) -> Calibration:
        with self._lock:
            for cal in self._history:
                if cal.id == cal_id:
                    return cal
        known = ", ".join(c.id for c in self._history[-5:])
        raise CalibrationError(f"unknown calibration id {cal_id!r}; recent ones: {known}")

    def snapshot_at(self, t: datetime) -> Calibration:
        """The latest snapshot taken at or before ``t``."""
        t = utc(t)
        with self._lock:
            keys = [c.taken_at for c in self._history]
            i = bisect.bisect_right(keys, t)
            if i == 0:
                first = self._history[0].taken_at.isoformat() if self._history else "never"
                raise CalibrationError(
                    f"no calibration existed at {t.isoformat()}; the first was taken {first}. "
                    "Call device.calibrate(at=...) with an earlier time first."
                )
            return self._history[i - 1]

    def calibration_at(self, t: datetime | None = None) -> Calibration:
        """The effective figures at ``t`` (default now): the snapshot then, drifted by its age."""
        t = utc(t)
        return self._drift.at(self.snapshot_at(t), t)

    # ---- derived qiskit objects ------------------------------------------------------------
    def effective(self, at: datetime | Calibration | None) -> Calibration:
        return at if isinstance(at, Calibration) else self.calibration_at(at)

    def target(self, at: datetime | Calibration | None = None) -> Target:
        cal = self.effective(at)
        return self._targets.get_or_make(
            (cal.id, cal.effective_at), lambda: build_target(cal, self.dt)
        )

    def noise_model(
        self, at: datetime | Calibration | None = None, qubits: tuple[int, ...] | None = None
    ) -> NoiseModel:
        """Aer noise for the calibration effective at ``at``, optionally for a qubit subset."""
        cal = self.effective(at)
        key = (cal.id, cal.effective_at, qubits)
        return self._noise.get_or_make(key, lambda: build_noise_model(cal, qubits))

    def __repr__(self) -> str:
        return f"<QmioDevice seed={self.seed} qubits={self.num_qubits} calibration={self.calibration.id}>"
