"""``GET /api/v1/usage`` reports as people read them: a table (``qmio usage``, ``%qmio usage``)
and a bar chart of QPU seconds per day, stacked by account."""
from __future__ import annotations

from collections import defaultdict
from typing import Any


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.2f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def usage_table(report: dict[str, Any]) -> str:
    """Rows per day, account and user with jobs and QPU seconds, the totals, then each budget's
    standing. Plain text, aligned: it is printed in terminals and notebook cells alike."""
    rows = report.get("rows") or []
    who = report.get("user") or "everyone"
    lines = [f"QPU usage of {who} from {report['since'][:10]} to {report['until'][:10]} "
             f"({report.get('timing', '?')} timing; device seconds the QPU was held)"]
    if not rows:
        lines.append("  no QPU time used in this period")
    else:
        header = ("day", "account", "user", "jobs", "QPU s", "of which reserved")
        table = [header] + [(r["day"], r["account"], r["user"], str(r["jobs"]), f"{r['qpu_seconds']:.1f}",
                             f"{r['reserved_s']:.1f}") for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for i, row in enumerate(table):
            cells = [c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))]
            lines.append("  " + "  ".join(cells).rstrip())
            if i == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
    totals = report.get("totals", {})
    lines.append(f"total: {totals.get('jobs', 0)} jobs, {_seconds(float(totals.get('qpu_seconds', 0.0)))} of QPU time")
    for b in report.get("budgets") or []:
        share = 100 * (b["used"] + b["pending"]) / b["qpu_seconds"] if b["qpu_seconds"] else 100.0
        lines.append(f"budget {b['account']}: {b['used']:.1f} of {b['qpu_seconds']:.0f} QPU s per {b['period']} used, "
                     f"{b['pending']:.1f} held by queued jobs, {b['remaining']:.1f} left ({share:.0f}% taken); "
                     f"resets {b['resets_at']}")
    return "\n".join(lines)


def plot_usage(report: dict[str, Any], ax: Any = None) -> Any:
    """QPU seconds per day, one bar per day stacked by account; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    per: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in report.get("rows") or []:
        per[r["account"]][r["day"]] += float(r["qpu_seconds"])
    days = sorted({day for by_day in per.values() for day in by_day})
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(days) + 2), 3))
    bottom = [0.0] * len(days)
    for account in sorted(per):
        heights = [per[account].get(day, 0.0) for day in days]
        ax.bar(days, heights, bottom=bottom, label=account)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_ylabel("QPU seconds")
    ax.set_title(f"QPU usage of {report.get('user') or 'everyone'}")
    if per:
        ax.legend(title="account", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no QPU time used", ha="center", va="center", transform=ax.transAxes)
    ax.tick_params(axis="x", labelrotation=45)
    return ax
