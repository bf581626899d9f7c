"""Queue positions and ETAs, as users see them.

The run order itself is the store's (:meth:`Store.queue_order`); this module turns it into
"you are 3rd, about 4 s to go", including the wait for a calibration window in between. With
hardware timing each job ahead counts the QPU time the timing model gave it at admission (in
real seconds at the clock's scale); with instant timing, what recent jobs took per circuit.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from qmio_lab.device.schedule import CalibrationSchedule
from qmio_lab.qpu.clock import SimClock
from qmio_lab.qpu.store import Store

_DEFAULT_SECONDS_PER_CIRCUIT = 0.02


@dataclass(frozen=True)
class Place:
    position: int  # 1 = next to run
    eta_s: float   # seconds until it starts


class QueueView:
    def __init__(self, store: Store, clock: SimClock, schedule: CalibrationSchedule,
                 timing: str = "instant") -> None:
        self.store = store
        self.clock = clock
        self.schedule = schedule
        self.timing = timing  # the service's timing mode: what a job ahead is expected to take
        self._cache_key: Any = None
        self._places: dict[str, Place] = {}

    def seconds_per_circuit(self) -> float:
        recent = [d / max(n, 1) for d, n in self.store.recent_durations() if d is not None]
        return statistics.median(recent) if recent else _DEFAULT_SECONDS_PER_CIRCUIT

    def places(self, running: dict[str, Any] | None, calibrating_until=None) -> dict[str, Place]:
        reservation = self.store.active_session()
        key = (self.store.version, running and running["id"], calibrating_until, int(time.time()),
               reservation and reservation["id"])
        if key == self._cache_key:
            return self._places
        per_circuit = self.seconds_per_circuit()

        def seconds(job: dict[str, Any]) -> float:
            hold = job.get("estimated_hold_s")
            if self.timing == "hardware" and hold is not None:
                return hold / self.clock.scale  # device seconds
            return per_circuit * job["num_circuits"]

        now_real = time.time()
        now = self.clock.now()
        wait = 0.0
        if running:
            wait = max(seconds(running) - (now_real - (running["started_at"] or now_real)), 0.0)
        if calibrating_until is not None:
            wait += max(self.clock.real_seconds(calibrating_until - now), 0.0)
        window = self.schedule.next_window(now) if self.schedule.weekdays else None
        window_in = self.clock.real_seconds(window[0] - now) if window else None
        window_len = self.clock.real_seconds(window[1] - window[0]) if window else 0.0
        order = self.store.queue_order()
        holder_until = None
        if reservation is not None:  # the holder's jobs go first; the others wait for the end
            order.sort(key=lambda job: job["user"] != reservation["user"])
            holder_until = reservation["expires_at"] - now_real
        places = {}
        for i, job in enumerate(order, start=1):
            if holder_until is not None and job["user"] != reservation["user"]:
                wait = max(wait, holder_until)
                holder_until = None
            if window_in is not None and wait >= window_in:
                wait += window_len  # the QPU calibrates before this job can start
                window_in = None
            places[job["id"]] = Place(i, round(wait, 3))
            wait += seconds(job)
        self._cache_key, self._places = key, places
        return places
