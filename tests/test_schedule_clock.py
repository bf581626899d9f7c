from datetime import datetime, timedelta, timezone

import pytest

from qmio_lab.device import CalibrationSchedule
from qmio_lab.qpu.clock import SimClock
from support.moments import packaged_calendar

UTC = timezone.utc


def test_weekday_windows_and_free_weekends():
    import dask

    with dask.config.set({"qmio.calibration": packaged_calendar()}):
        s = CalibrationSchedule.from_config()
    mon = datetime(2026, 11, 23, 7, 10, tzinfo=UTC)
    assert s.window_at(mon) == (mon.replace(minute=0), mon.replace(minute=30))
    assert s.window_at(mon.replace(hour=8)) is None
    sat = datetime(2026, 11, 28, 7, 10, tzinfo=UTC)
    assert s.window_at(sat) is None
    assert s.next_window(sat)[0] == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday
    assert s.last_window(sat)[0] == datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # Friday
    assert s.next_window(mon)[0] == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def test_schedule_follows_configuration(monkeypatch):
    import dask

    with dask.config.set({"qmio.calibration.time": "22:00", "qmio.calibration.duration_minutes": 180,
                          "qmio.calibration.weekdays": [2]}):
        s = CalibrationSchedule.from_config()
    wed = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    assert s.window_at(wed + timedelta(hours=1, minutes=30)) is not None  # runs past midnight
    assert s.next_window(wed)[0] == datetime(2026, 12, 2, 22, 0, tzinfo=UTC)


def test_calibration_in_force_follows_the_calendar():
    s = CalibrationSchedule.from_config(packaged_calendar())  # weekdays, 07:00 for 30 minutes
    inside = datetime(2026, 11, 24, 7, 10, tzinfo=UTC)  # Tuesday, in the window
    assert s.in_force_since(inside) == datetime(2026, 11, 23, 7, 30, tzinfo=UTC)  # Monday's
    assert s.in_force_since(inside.replace(hour=9)) == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    assert s.in_force_since(datetime(2026, 11, 29, 12, 0, tzinfo=UTC)) == datetime(2026, 11, 27, 7, 30, tzinfo=UTC)
    never = CalibrationSchedule.from_config({**packaged_calendar(), "weekdays": []})
    assert never.in_force_since(inside) == inside  # no calendar: calibrated when started
    assert never.window_at(inside) is None


def test_sim_clock_runs_scaled():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = SimClock(scale=3600, start=start, origin_real=0.0)
    assert clock.real_seconds(timedelta(hours=2)) == pytest.approx(2.0)
    assert SimClock.from_state(clock.to_state()).start == start
    with pytest.raises(ValueError, match="time scale must be positive"):
        SimClock(scale=0)
