"""QPU time as the currency: what each account may spend, what it has spent, and the refusals.

Every job is charged the device seconds it held the QPU (recorded when it ends, see
:meth:`Store.finish`), and a reservation the seconds it held the QPU beyond its own jobs'. An
account's budget (``qmio.qpu.accounts``, or ``accounts:`` in the users file) is so many QPU
seconds per UTC day or ISO week. A submission is checked against what is left of it, counting
the estimates of the account's jobs still queued or running, so a budget cannot be overrun by
queueing many jobs at once: the one that would overrun it is refused with the numbers and the
time the budget resets (HTTP 429), and one that takes the account past
``qmio.qpu.quota_warning`` of its budget is accepted with a warning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from qmio_lab import config
from qmio_lab.errors import SubmissionError
from qmio_lab.qpu.auth import User
from qmio_lab.qpu.store import Store

PERIODS = ("day", "week")
MAX_USAGE_DAYS = 366  # the longest report one request may ask for


@dataclass(frozen=True)
class Budget:
    account: str
    qpu_seconds: float
    period: str  # "day" (UTC) or "week" (ISO, from Monday 00:00 UTC)

    def window(self, now: float) -> tuple[float, float]:
        """The current period as (start, reset) Unix times."""
        moment = datetime.fromtimestamp(now, timezone.utc)
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.period == "week":
            start -= timedelta(days=start.weekday())
        end = start + timedelta(days=7 if self.period == "week" else 1)
        return start.timestamp(), end.timestamp()


def read_budgets(*sources: dict[str, Any] | None) -> dict[str, Budget]:
    """Budgets from mappings ``{account: {qpu_seconds: N, period: day|week}}``; later sources
    win (the users file over ``qmio.qpu.accounts``). A wrong entry stops the service at start
    with what to fix, never a silently unlimited account."""
    budgets: dict[str, Budget] = {}
    for source in sources:
        for name, spec in (source or {}).items():
            if not isinstance(spec, dict):
                raise ValueError(f"account {name!r}: expected {{qpu_seconds: N, period: day|week}}, got {spec!r}")
            seconds, period = spec.get("qpu_seconds"), str(spec.get("period", "day"))
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
                    or seconds < 0:
                raise ValueError(f"account {name!r}: qpu_seconds must be a number of seconds >= 0, got {seconds!r}")
            if period not in PERIODS:
                raise ValueError(f"account {name!r}: period must be one of {', '.join(PERIODS)}, got {period!r}")
            budgets[str(name)] = Budget(str(name), float(seconds), period)
    return budgets


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


class Accounting:
    """The accounts' budgets and the figures behind ``/api/v1/usage`` and every quota check."""

    def __init__(self, store: Store, budgets: dict[str, Budget]) -> None:
        self.store = store
        self.budgets = budgets
        self.warn_at = float(config.get("qpu.quota_warning", 0.8))

    def standing(self, account: str, now: float) -> dict[str, Any] | None:
        """An account's budget as of ``now``: used (ended work), pending (estimates of its queued
        and running jobs), remaining, and when it resets; None when it has no budget."""
        budget = self.budgets.get(account)
        if budget is None:
            return None
        start, reset = budget.window(now)
        used, pending = self.store.account_seconds(account, start)
        return {"account": account, "qpu_seconds": budget.qpu_seconds, "period": budget.period,
                "used": round(used, 3), "pending": round(pending, 3),
                "remaining": round(max(budget.qpu_seconds - used - pending, 0.0), 3), "resets_at": _iso(reset)}

    def check(self, user: User, hold_s: float, now: float) -> str | None:
        """Refuse (429) a job of ``hold_s`` QPU seconds that the user's account cannot pay for;
        a warning text when it takes the account past the warning share, else None."""
        standing = self.standing(user.charged_account, now)
        if standing is None:
            return None
        budget, spent = standing["qpu_seconds"], standing["used"] + standing["pending"]
        if spent + hold_s > budget:
            raise SubmissionError(
                429, f"account {standing['account']!r} has {standing['remaining']:.1f} of its {budget:.0f} QPU "
                     f"seconds per {standing['period']} left ({standing['used']:.1f} used, {standing['pending']:.1f} "
                     f"held by queued jobs); this job needs about {hold_s:.1f}. The budget resets at "
                     f"{standing['resets_at']}: wait, use fewer shots or circuits, or ask an admin for more",
                account=standing["account"], budget_s=budget, used_s=standing["used"], pending_s=standing["pending"],
                requested_s=round(hold_s, 3), remaining_s=standing["remaining"], resets_at=standing["resets_at"])
        if budget > 0 and spent + hold_s >= self.warn_at * budget:
            return (f"account {standing['account']!r} has used {100 * (spent + hold_s) / budget:.0f}% of its "
                    f"{budget:.0f} QPU seconds per {standing['period']} with this job; it resets at "
                    f"{standing['resets_at']}")
        return None

    def report(self, user: str | None, days: int, now: float, account: str | None = None) -> dict[str, Any]:
        """Usage per UTC day, user and account over the last ``days`` days (``user`` None: everyone's),
        with the budgets of the accounts that appear (or ``account``'s)."""
        since = datetime.fromtimestamp(now, timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        since -= timedelta(days=days - 1)
        rows = self.store.usage_rows(since.timestamp(), user)
        accounts = sorted({r["account"] for r in rows} | ({account} if account else set()))
        budgets = [b for b in (self.standing(a, now) for a in accounts) if b is not None]
        return {
            "since": since.isoformat(), "until": _iso(now), "rows": rows,
            "totals": {"jobs": sum(r["jobs"] for r in rows),
                       "qpu_seconds": round(sum(r["qpu_seconds"] for r in rows), 3)},
            "budgets": budgets,
        }
