"""The service's clock: real time, or real time sped up so demos live through days in seconds."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone


@dataclass
class SimClock:
    """``now()`` runs ``scale`` times faster than the wall clock, starting at ``start``."""

    scale: float = 1.0
    start: datetime | None = None
    origin_real: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"time scale must be positive, got {self.scale}")
        if self.start is None:
            self.start = datetime.fromtimestamp(self.origin_real, timezone.utc)

    def now(self) -> datetime:
        assert self.start is not None
        return self.start + timedelta(seconds=(time.time() - self.origin_real) * self.scale)

    def real_seconds(self, span: timedelta) -> float:
        """Wall-clock seconds that ``span`` of device time takes."""
        return span.total_seconds() / self.scale

    def to_state(self) -> dict[str, float | str]:
        assert self.start is not None
        return {"scale": self.scale, "start": self.start.isoformat(), "origin_real": self.origin_real}

    @classmethod
    def from_state(cls, state: dict) -> SimClock:
        return cls(float(state["scale"]), datetime.fromisoformat(state["start"]), float(state["origin_real"]))
