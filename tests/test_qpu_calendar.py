"""Calibration windows with a sped-up clock: jobs wait, then run on the new snapshot.

Each service here gets the packaged calendar (the rest of the suite runs without one) and a
simulated clock, so these tests do not depend on the machine's time of day."""
from __future__ import annotations

import time
from datetime import datetime


from support.services import ServiceProcess
from support.circuits import bell
from support.moments import packaged_calendar_env

CALENDAR = packaged_calendar_env()


def _wait_for(predicate, timeout: float = 30.0, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


def test_weekday_window_holds_jobs_then_new_snapshot(tmp_path):
    # Monday 06:55 device time at 60 device seconds per second, with a 5-minute window: the
    # service has 5 s of real time to answer before the window opens, which lasts 5 s.
    env = packaged_calendar_env(duration_minutes=5)
    svc = ServiceProcess(tmp_path, "--time-scale", "60", "--start-time", "2026-11-23T06:55:00+00:00", env=env).start()
    try:
        alice = svc.client("alice")
        first = alice.status()
        assert first["device_time"] < "2026-11-23T07:00", "the service took over 5 s to answer its first request"
        assert first["state"] == "online"
        old_id = first["calibration"]["id"]
        assert first["next_calibration"] == {"start": "2026-11-23T07:00:00+00:00", "end": "2026-11-23T07:05:00+00:00"}
        status = _wait_for(lambda: (s := alice.status())["state"] == "calibrating" and s)
        assert status["calibrating_until"].startswith("2026-11-23T07:05")
        jobs = [alice.submit(bell(), shots=100) for _ in range(3)]
        views = [alice.job(j["id"]) for j in jobs]
        assert alice.status()["state"] == "calibrating", "the window ended before the jobs were looked at"
        assert all(v["state"] == "queued" for v in views)
        assert [v["queue_position"] for v in views] == [1, 2, 3]
        assert views[0]["eta_s"] > 0.5  # the ETA includes the rest of the window
        for j in jobs:
            done = alice.wait(j["id"], timeout=30)
            assert done["state"] == "done"
            assert done["calibration_id"] != old_id
        new = alice.calibration()
        assert new.id == done["calibration_id"]
        assert new.taken_at == datetime.fromisoformat("2026-11-23T07:05:00+00:00")
        assert [c["id"] for c in alice.calibrations()] == [old_id, new.id]
        assert alice.status()["state"] == "online"
    finally:
        svc.stop()


def test_weekend_has_no_window(tmp_path):
    # Saturday 06:59: at 600x, 07:00 passes after 0.1 s and nothing happens.
    svc = ServiceProcess(tmp_path, "--time-scale", "600", "--start-time", "2026-11-28T06:59:00+00:00", env=CALENDAR).start()
    try:
        alice = svc.client("alice")
        start_id = alice.status()["calibration"]["id"]
        assert alice.status()["next_calibration"]["start"].startswith("2026-11-30T07:00")  # Monday
        _wait_for(lambda: alice.status()["device_time"] >= "2026-11-28T07:15")
        status = alice.status()
        assert status["state"] == "online" and status["calibration"]["id"] == start_id
        job = alice.submit(bell(), shots=100)
        assert alice.wait(job["id"], timeout=30)["calibration_id"] == start_id
        # the calibration in force is Friday's 07:30 one, almost a day old by Saturday 07:15
        assert 23.5 * 3600 < status["calibration"]["age_s"] < 24 * 3600
    finally:
        svc.stop()


def test_restart_keeps_history_and_device_time(tmp_path):
    svc = ServiceProcess(tmp_path, "--time-scale", "600", "--start-time", "2026-11-23T06:59:00+00:00",
                         env=CALENDAR).start()
    alice = svc.client("alice")
    _wait_for(lambda: len(alice.calibrations()) == 2, timeout=30)
    before = alice.status()
    svc.stop()
    svc.extra = []  # restart without a clock argument: the stored clock continues
    svc.start()
    alice = svc.client("alice")
    after = alice.status()
    assert after["device_time"] > before["device_time"]
    assert [c["id"] for c in alice.calibrations()][-1] == before["calibration"]["id"]
    svc.stop()
