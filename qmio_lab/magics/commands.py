"""The ``%qmio`` line subcommands: status, calibration, jobs, usage, cancel, cluster, config."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from qmio_lab.magics.running import one_line
from qmio_lab.widgets._render import esc, key_value_table
from qmio_lab.widgets.reprs import jobs_html, status_html, usage_html


class HTMLDict(dict):
    """A plain dict (keep it, index it) that notebooks show as an HTML table."""

    def __init__(self, data: dict[str, Any], render: Callable[[dict[str, Any]], str]) -> None:
        super().__init__(data)
        self._render = render

    def _repr_html_(self) -> str:
        return self._render(self)


class HTMLList(list):
    def __init__(self, data: list[Any], render: Callable[[list[Any]], str]) -> None:
        super().__init__(data)
        self._render = render

    def _repr_html_(self) -> str:
        return self._render(self)


def _qpu_call(fn: Callable[[], Any], what: str) -> Any:
    from qmio_lab.qpu import QPUServiceError

    try:
        return fn()
    except QPUServiceError as exc:
        raise UsageError(f"{what}: {one_line(exc)}") from None


def _client() -> Any:
    from qmio_lab.qpu import QPUServiceError, default_client

    try:
        return default_client()
    except QPUServiceError as exc:
        raise UsageError(one_line(exc)) from None


@magic_arguments(name="qmio status")
def cmd_status(line: str, session: Any) -> HTMLDict:
    """The QPU service: state, queue depth, calibration in force and the next calibration window."""
    parse_argstring(cmd_status, line)
    client = _client()
    return HTMLDict(_qpu_call(client.status, "cannot read the QPU status"), status_html)


@magic_arguments(name="qmio calibration")
@argument("--history", action="store_true", help="plot metrics over every stored calibration")
@argument("--id", dest="cal_id", metavar="ID", help="show a stored snapshot instead of the one in force")
@argument("--metric", default=None, help="colour the chip by t1, t2, readout_error, sx_error or frequency")
def cmd_calibration(line: str, session: Any) -> Any:
    """The calibration view (chip coloured by a metric) or, with --history, the metric history."""
    from qmio_lab.widgets.calibration import METRICS, CalibrationHistory, CalibrationView

    args = parse_argstring(cmd_calibration, line)
    if args.metric is not None and args.metric not in METRICS:
        raise UsageError(f"--metric {args.metric}: choose one of {', '.join(METRICS)}")
    client = _client()
    if args.history:
        return CalibrationHistory(_qpu_call(lambda: client.calibrations(full=True), "cannot read the history"))
    if args.cal_id:
        cal = _qpu_call(lambda: client.get_calibration(args.cal_id), f"no calibration {args.cal_id!r}")
    else:
        cal = _qpu_call(client.calibration, "cannot read the calibration")
    status = _qpu_call(client.status, "cannot read the QPU status")
    return CalibrationView(cal, status, metric=args.metric or "t1")


@magic_arguments(name="qmio jobs")
@argument("--state", action="append", default=[], choices=["queued", "running", "done", "failed", "cancelled"],
          help="only jobs in this state (repeatable)")
@argument("--limit", type=int, default=20, help="at most this many, newest first (default 20)")
def cmd_jobs(line: str, session: Any) -> HTMLList:
    """Your QPU jobs, newest first."""
    args = parse_argstring(cmd_jobs, line)
    if args.limit < 1:
        raise UsageError(f"--limit {args.limit}: give a positive number")
    client = _client()
    return HTMLList(_qpu_call(lambda: client.jobs(args.state, args.limit), "cannot list jobs"), jobs_html)


@magic_arguments(name="qmio usage")
@argument("--days", type=int, default=7, help="how many days back, today included (default 7)")
@argument("--user", default=None, help="another user's usage (admins)")
@argument("--all", dest="everyone", action="store_true", help="everyone's usage (admins)")
def cmd_usage(line: str, session: Any) -> HTMLDict:
    """QPU seconds you used per day and account, with the budgets that apply, and a plot."""
    args = parse_argstring(cmd_usage, line)
    if args.user and args.everyone:
        raise UsageError("--user NAME or --all, not both")
    if not 1 <= args.days <= 366:
        raise UsageError(f"--days {args.days}: give a number of days from 1 to 366")
    client = _client()
    report = _qpu_call(lambda: client.usage(days=args.days, user=args.user, everyone=args.everyone),
                       "cannot read the usage")
    return HTMLDict(report, usage_html)


@magic_arguments(name="qmio cancel")
@argument("job_id", metavar="ID", help="job id (from the monitor or %%qmio jobs)")
def cmd_cancel(line: str, session: Any) -> None:
    """Cancel a queued QPU job, or an emulator job started from this kernel."""
    from qmio_lab.qpu import QPUServiceError

    args = parse_argstring(cmd_cancel, line)
    local = session.jobs.get(args.job_id)
    if local is not None and session.jobs_target.get(args.job_id) != "qpu":
        if not local.cancel():
            raise UsageError(f"job {args.job_id} has already ended; nothing to cancel")
        print(f"job {args.job_id} cancelled")
        return
    client = _client()
    try:
        record = client.cancel(args.job_id)
    except QPUServiceError as exc:
        if exc.status == 404:
            raise UsageError(f"no job {args.job_id!r}; %qmio jobs lists your jobs") from None
        if exc.status == 409:
            raise UsageError(f"job {args.job_id} is no longer queued (running or ended); "
                             "only queued jobs can be cancelled") from None
        raise UsageError(f"cannot cancel {args.job_id}: {one_line(exc)}") from None
    print(f"job {record['id']} {record['state']}")


def cluster_html(info: dict[str, Any]) -> str:
    return f"<div class='qmio-cluster'><b>emulator cluster</b>{key_value_table(info.items())}</div>"


@magic_arguments(name="qmio cluster")
@argument("action", nargs="?", metavar="scale", help="scale: ask for N workers")
@argument("n", nargs="?", type=int, metavar="N", help="number of workers for scale")
def cmd_cluster(line: str, session: Any) -> HTMLDict:
    """The emulator's Dask cluster (started on first use); `scale N` asks for N workers."""
    from qmio_lab.emulator import cluster_kind, get_client, get_cluster
    from qmio_lab.errors import EmulatorClusterError

    args = parse_argstring(cmd_cluster, line)
    if args.action not in (None, "scale") or (args.action is None and args.n is not None):
        raise UsageError(f"unknown cluster action {args.action!r}: write %qmio cluster, or %qmio cluster scale N")
    if args.action == "scale" and (args.n is None or args.n < 0):
        raise UsageError("%qmio cluster scale needs a worker count N >= 0, e.g. %qmio cluster scale 2")
    try:
        kind = cluster_kind()
        client = get_client()
        cluster = get_cluster()
    except EmulatorClusterError as exc:
        raise UsageError(one_line(exc)) from None
    if args.action == "scale":
        if cluster is None:
            raise UsageError("the emulator uses an external scheduler (qmio.emulator.cluster is an "
                             "address); scale that cluster where it runs")
        cluster.scale(args.n)
        if args.n:
            try:
                client.wait_for_workers(args.n, timeout=60)
            except TimeoutError:
                print(f"asked for {args.n} workers; not all have connected yet")
    workers = client.scheduler_info(n_workers=-1)["workers"]
    info = {
        "kind": kind, "scheduler": client.scheduler.address, "workers": len(workers),
        "threads": sum(w.get("nthreads", 0) for w in workers.values()),
        "memory per worker (GiB)": round(max((w.get("memory_limit") or 0 for w in workers.values()), default=0) / 2**30, 2),
        "dashboard": getattr(client, "dashboard_link", None),
    }
    return HTMLDict(info, cluster_html)


def config_html(cfg: dict[str, Any]) -> str:
    return f"<div class='qmio-config'><b>qmio configuration</b><pre>{esc(yaml.safe_dump(dict(cfg), sort_keys=False))}</pre></div>"


@magic_arguments(name="qmio config")
def cmd_config(line: str, session: Any) -> HTMLDict:
    """The qmio settings in force (packaged defaults, dask YAML files, DASK_QMIO__* variables)."""
    import copy
    import os

    import dask.config

    from qmio_lab import config  # noqa: F401  (registers the packaged defaults)

    parse_argstring(cmd_config, line)
    cfg = copy.deepcopy(dict(dask.config.get("qmio")))
    url = os.environ.get("QMIO_QPU_URL")
    if url:
        cfg["qpu"] = {**cfg.get("qpu", {}), "url": url, "token": "(from QMIO_QPU_TOKEN)"}
    elif cfg.get("qpu", {}).get("token"):
        cfg["qpu"] = {**cfg["qpu"], "token": "(set)"}
    return HTMLDict(cfg, config_html)


COMMANDS: dict[str, Callable[[str, Any], Any]] = {
    "status": cmd_status, "calibration": cmd_calibration, "jobs": cmd_jobs, "usage": cmd_usage, "cancel": cmd_cancel,
    "cluster": cmd_cluster, "config": cmd_config,
}


SUMMARIES = {
    "status": "QPU service state, queue depth, calibration in force, next calibration window",
    "calibration": "chip map coloured by a metric; --history: metrics over all calibrations",
    "jobs": "your QPU jobs, newest first, with their estimated and used QPU seconds",
    "usage": "QPU seconds used per day and account, with the budgets and a plot",
    "cancel": "cancel a queued QPU job (or an emulator job of this kernel)",
    "cluster": "the emulator's Dask cluster; scale N asks for N workers",
    "config": "the qmio settings in force",
}


def usage(fn: Callable[..., Any]) -> str:
    text = " ".join(fn.parser.format_usage().split())  # type: ignore[attr-defined]
    return text.removeprefix("usage:").strip().lstrip(":").strip()


def full_help() -> str:
    """Every subcommand's options, appended to ``%qmio?``."""
    parts = []
    for name, fn in COMMANDS.items():
        parts.append(f"{usage(fn)}\n    {SUMMARIES[name]}\n" + fn.parser.format_help().split("\n\n", 1)[-1])
    return "\n".join(parts)


def help_text() -> str:
    lines = ["%qmio SUBCOMMAND [options]   (and %%qmio for cells; %%qmio? documents it)", ""]
    for name, fn in COMMANDS.items():
        lines.append(f"  {usage(fn)}")
        lines.append(f"      {SUMMARIES[name]}")
    return "\n".join(lines)
