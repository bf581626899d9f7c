"""Who goes next on the QPU: fair share by consumed QPU time, the rule the store applies.

As SLURM's fair-share factor: the user whose recent QPU seconds are fewest goes next, recent
meaning decayed by half every ``qmio.qpu.fair_share_half_life_s`` of device time. Ties go to
the user served least recently, then to the one who joined the queue first. A user of
100,000-shot jobs thus takes one turn for every many turns of a user of 100-shot jobs, and a
thousand queued jobs delay another user's job by about one. An admin's boost goes before
all of it; ``priority`` orders only a user's own jobs. The store keeps the figures (SQL);
this module decides with them, so the QPU thread's choice (:meth:`Store.next_job`) and the
order users are shown (:meth:`Store.queue_order`) follow one rule.
"""
from __future__ import annotations

import heapq
from collections import deque
from typing import Any

#: what a queued job without an estimate is expected to add to its user's usage (device seconds)
UNKNOWN_HOLD_S = 1.0

#: a user's place: (decayed QPU seconds, when last served, seq with which they joined the queue)
Standing = tuple[float, float, int]


def decayed(usage_s: float, at: float, now: float, *, time_scale: float, half_life_s: float) -> float:
    """``usage_s`` QPU seconds recorded at ``at`` (Unix time), as they weigh at ``now``: the
    decay runs on device time, ``time_scale`` device seconds per real second."""
    if usage_s <= 0:
        return 0.0
    return usage_s * 0.5 ** (max(now - at, 0.0) * time_scale / half_life_s)


def next_user(standings: dict[str, Standing]) -> str | None:
    """The user whose turn it is, of those with queued jobs."""
    return min(standings, key=standings.__getitem__) if standings else None


def run_order(queued: list[dict[str, Any]], standings: dict[str, Standing], now: float) -> list[dict[str, Any]]:
    """Every queued job (``queued`` in priority-then-submission order, each with ``user``,
    ``boost``, ``priority``, ``seq`` and ``estimated_hold_s``) in the order it will run: boosted
    first, then turns, each job expected to add its estimated hold to its user's usage."""
    order = sorted((r for r in queued if r["boost"] > 0), key=lambda r: (-r["boost"], -r["priority"], r["seq"]))
    waiting: dict[str, deque[dict[str, Any]]] = {}
    for r in queued:
        if r["boost"] <= 0:
            waiting.setdefault(r["user"], deque()).append(r)
    turns = [(*standings.get(u, (0.0, 0.0, jobs[0]["seq"])), u) for u, jobs in waiting.items()]
    heapq.heapify(turns)
    served = now
    while turns:
        usage, _, since, who = heapq.heappop(turns)
        jobs = waiting[who]
        job = jobs.popleft()
        order.append(job)
        if jobs:
            served += 1.0  # served now: the most recently served of all
            hold = job["estimated_hold_s"]
            heapq.heappush(turns, (usage + (UNKNOWN_HOLD_S if hold is None else hold), served, since, who))
    return order
