"""Calibration snapshots: what the automatic daily calibration measured, and how it ages.

A :class:`Calibration` is immutable, JSON-serialisable and compares by value, so the queue
service can store it, results can cite it by ``id`` and the emulator can replay its noise.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from statistics import median
from typing import Any


def utc(t: datetime | None) -> datetime:
    """Normalise to an aware UTC datetime (naive datetimes are taken as UTC)."""
    if t is None:
        return datetime.now(timezone.utc)
    if t.tzinfo is None:
        return t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


@dataclass(frozen=True)
class QubitCalibration:
    """Per-qubit figures. Times in seconds, frequency in Hz, errors as probabilities."""

    t1: float
    t2: float  # Hahn-echo T2 (T2e); always <= 2*T1
    frequency: float
    readout_p10: float  # P(read 1 | prepared 0)
    readout_p01: float  # P(read 0 | prepared 1)
    sx_error: float
    sx_duration: float
    measure_duration: float

    @property
    def readout_error(self) -> float:
        """Mean assignment error, the figure calibration dashboards show."""
        return (self.readout_p10 + self.readout_p01) / 2


@dataclass(frozen=True)
class CouplerCalibration:
    """One directed ECR pair (``control`` drives ``target``)."""

    control: int
    target: int
    ecr_error: float
    ecr_duration: float


@dataclass(frozen=True)
class Calibration:
    """A calibration snapshot, or the drifted view of one at ``effective_at``.

    ``id`` always names the snapshot the figures come from; a drifted view keeps it, so a
    result can say which calibration it ran with and how old that calibration was.
    """

    id: str
    taken_at: datetime
    qubits: tuple[QubitCalibration, ...]
    couplers: tuple[CouplerCalibration, ...]
    effective_at: datetime = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "taken_at", utc(self.taken_at))
        object.__setattr__(self, "effective_at", utc(self.effective_at or self.taken_at))
        object.__setattr__(self, "qubits", tuple(self.qubits))
        object.__setattr__(self, "couplers", tuple(self.couplers))

    # ---- convenience views -------------------------------------------------------------
    @property
    def num_qubits(self) -> int:
        return len(self.qubits)

    @property
    def age(self) -> timedelta:
        return self.effective_at - self.taken_at

    @property
    def key(self) -> str:
        """Names these figures: the snapshot, as drifted to ``effective_at``."""
        return f"{self.id}@{self.effective_at.isoformat()}"

    def coupler(self, control: int, target: int) -> CouplerCalibration:
        for c in self.couplers:
            if (c.control, c.target) == (control, target):
                return c
        raise KeyError(f"no ECR coupler {control}->{target} in calibration {self.id}")

    def qubit_metric(self, name: str) -> list[float]:
        """One per-qubit metric by name (``t1``, ``t2``, ``readout_error``, ``sx_error``, ...)."""
        return [getattr(q, name) for q in self.qubits]

    def summary(self) -> dict[str, Any]:
        """Medians a dashboard shows, in the units people quote (µs, %)."""
        return {
            "id": self.id,
            "taken_at": self.taken_at.isoformat(),
            "age_hours": round(self.age.total_seconds() / 3600, 2),
            "t1_median_us": median(self.qubit_metric("t1")) * 1e6,
            "t2_median_us": median(self.qubit_metric("t2")) * 1e6,
            "readout_error_median": median(self.qubit_metric("readout_error")),
            "sx_error_median": median(self.qubit_metric("sx_error")),
            "ecr_error_median": median(c.ecr_error for c in self.couplers),
        }

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "taken_at": self.taken_at.isoformat(),
            "effective_at": self.effective_at.isoformat(),
            "qubits": [asdict(q) for q in self.qubits],
            "couplers": [asdict(c) for c in self.couplers],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        try:
            return cls(
                id=str(data["id"]),
                taken_at=datetime.fromisoformat(data["taken_at"]),
                effective_at=datetime.fromisoformat(data.get("effective_at") or data["taken_at"]),
                qubits=tuple(QubitCalibration(**q) for q in data["qubits"]),
                couplers=tuple(CouplerCalibration(**c) for c in data["couplers"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a qmio_lab calibration document: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        return cls.from_dict(json.loads(text))

    def with_values(self, **changes: Any) -> Calibration:
        return replace(self, **changes)
