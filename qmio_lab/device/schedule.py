"""The automatic calibration schedule: a daily window on weekdays, weekends left free."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from qmio_lab import config
from qmio_lab.device.calibration import utc


@dataclass(frozen=True)
class CalibrationSchedule:
    """When the QPU recalibrates. All times are UTC; the calendar itself is ``qmio.calibration``."""

    weekdays: tuple[int, ...]
    start: time
    duration: timedelta

    @classmethod
    def from_config(cls, settings: Mapping[str, Any] | None = None) -> CalibrationSchedule:
        """The calendar of ``settings`` (the keys of ``qmio.calibration``), by default the configured one."""
        settings = config.get("calibration") if settings is None else settings
        hh, mm = (int(x) for x in str(settings["time"]).split(":"))
        return cls(
            weekdays=tuple(int(d) for d in settings["weekdays"]),
            start=time(hh, mm),
            duration=timedelta(minutes=float(settings["duration_minutes"])),
        )

    def _window_on(self, day: datetime) -> tuple[datetime, datetime] | None:
        if day.weekday() not in self.weekdays:
            return None
        begin = datetime.combine(day.date(), self.start, tzinfo=day.tzinfo)
        return begin, begin + self.duration

    def window_at(self, t: datetime) -> tuple[datetime, datetime] | None:
        """The window ``t`` falls in, or ``None`` when the QPU is free for jobs."""
        t = utc(t)
        for offset in (0, -1):  # a window may start before midnight and run past it
            win = self._window_on(t + timedelta(days=offset))
            if win and win[0] <= t < win[1]:
                return win
        return None

    def next_window(self, after: datetime) -> tuple[datetime, datetime]:
        """The first window starting strictly after ``after``."""
        after = utc(after)
        if not self.weekdays:
            raise ValueError("the calibration schedule has no weekdays: no next window")
        for offset in range(0, 8):
            win = self._window_on(after + timedelta(days=offset))
            if win and win[0] > after:
                return win
        raise AssertionError("unreachable: a weekday occurs within 8 days")

    def last_window(self, before: datetime) -> tuple[datetime, datetime]:
        """The most recent window starting at or before ``before``."""
        before = utc(before)
        if not self.weekdays:
            raise ValueError("the calibration schedule has no weekdays: no last window")
        for offset in range(0, 8):
            win = self._window_on(before - timedelta(days=offset))
            if win and win[0] <= before:
                return win
        raise AssertionError("unreachable: a weekday occurs within 8 days")

    def in_force_since(self, now: datetime) -> datetime:
        """When the calibration in force at ``now`` was taken: the end of the last window that
        has ended (inside a window the previous one still holds). A schedule with no weekdays
        never recalibrates on its own, so a device started under it is calibrated at ``now``."""
        now = utc(now)
        if not self.weekdays:
            return now
        start, end = self.last_window(now)
        if end > now:
            end = self.last_window(start - timedelta(seconds=1))[1]
        return end
