"""Rich HTML for plain notebook viewers: Results, jobs, calibrations, service status, job lists, usage.

The objects belong to Qiskit and to other qmio_lab modules, so instead of methods on them the
HTML comes from functions registered with IPython's HTML formatter (``register_formatters``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qmio_lab.widgets._render import esc, figure_png, key_value_table, new_figure, png_img_tag, table
from qmio_lab.widgets.calibration import calibration_header, chip_svg
from qmio_lab.widgets.jobs import read_job_state
from qmio_lab.widgets.results import experiment_names, histogram_png, counts_table, result_counts, result_meta


def result_html(result: Any) -> str:
    try:
        counts = result_counts(result)
    except Exception:  # e.g. a memory-only or statevector result: no counts to draw
        return f"<div class='qmio-result'>{key_value_table(result_meta(result))}</div>"
    parts = [key_value_table(result_meta(result))]
    for name, c in list(zip(experiment_names(result, len(counts)), counts))[:8]:
        parts.append(f"<p><b>{esc(name)}</b></p>{png_img_tag(histogram_png(c), name)}{counts_table(c)}")
    if len(counts) > 8:
        parts.append(f"<p>… and {len(counts) - 8} more circuits</p>")
    return "<div class='qmio-result'>" + "".join(parts) + "</div>"


def job_html(job: Any) -> str:
    try:
        s = read_job_state(job)
    except Exception as exc:  # the service is unreachable: still say which job this is
        return f"<div class='qmio-job'>job {esc(getattr(job, 'job_id', '?'))}: {esc(exc)}</div>"
    pairs = [("job", s.job_id), ("target", s.target), ("state", s.state),
             ("queue position", s.queue_position), ("ETA (s)", s.eta_s),
             ("progress", f"{s.done}/{s.total} circuits")]
    if s.name:
        pairs.insert(1, ("name", s.name))
    if s.calibration_id:
        pairs.append(("calibration", s.calibration_id))
    if s.error:
        pairs.append(("error", s.error))
    return f"<div class='qmio-job'>{key_value_table(pairs)}</div>"


def calibration_html(cal: Any, status: Mapping[str, Any] | None = None) -> str:
    return f"<div class='qmio-calibration'>{calibration_header(cal, status)}{chip_svg(cal)}</div>"


def status_html(status: Mapping[str, Any]) -> str:
    cal = status.get("calibration") or {}
    nxt = status.get("next_calibration") or {}
    pairs = [("state", status.get("state")), ("queued", status.get("queue_depth")),
             ("running", status.get("running")), ("calibration", cal.get("id")),
             ("calibration age", f"{float(cal.get('age_s', 0)) / 3600:.1f} h" if cal else None),
             ("calibrating until", status.get("calibrating_until")),
             ("next window", f"{nxt.get('start')} – {nxt.get('end')}" if nxt else "none scheduled"),
             ("device time", status.get("device_time")), ("qubits", status.get("num_qubits"))]
    return f"<div class='qmio-status'><b>QPU service</b>{key_value_table(pairs)}</div>"


def jobs_html(jobs: Sequence[Mapping[str, Any]]) -> str:
    if not jobs:
        return "<div class='qmio-jobs'>no jobs</div>"
    rows = [(j["id"], j.get("name"), j["state"], j.get("queue_position"), _seconds(j.get("eta_s")), j.get("shots"),
             j.get("num_circuits"), _seconds(j.get("estimated_qpu_seconds")), _seconds(j.get("qpu_seconds")),
             (j.get("created_at") or "")[:19], j.get("calibration_id")) for j in jobs]
    return "<div class='qmio-jobs'>" + table(
        ["id", "name", "state", "queue", "ETA", "shots", "circuits", "est. QPU s", "QPU s", "created", "calibration"],
        rows) + "</div>"


def _seconds(value: Any) -> str | None:
    """Seconds as a job list shows them: None stays empty."""
    return None if value is None else f"{float(value):.2f}"


def usage_html(report: Mapping[str, Any]) -> str:
    """A usage report (``GET /api/v1/usage``): the table and a bar chart of QPU seconds per day."""
    from qmio_lab.qpu.usage_report import plot_usage, usage_table

    fig = new_figure(7.0, 3.0)
    plot_usage(dict(report), fig.add_subplot(1, 1, 1))
    return (f"<div class='qmio-usage'><pre>{esc(usage_table(dict(report)))}</pre>"
            f"{png_img_tag(figure_png(fig), 'QPU seconds per day by account')}</div>")


def register_formatters(shell: Any) -> None:
    """Give Qiskit Results, qmio jobs and Calibrations rich HTML in this IPython shell."""
    from qiskit.result import Result

    from qmio_lab.device import Calibration
    from qmio_lab.emulator.job import EmulatorJob
    from qmio_lab.qpu.backend import QPUJob

    html = shell.display_formatter.formatters["text/html"]
    html.for_type(Result, result_html)
    html.for_type(QPUJob, job_html)
    html.for_type(EmulatorJob, job_html)
    html.for_type(Calibration, calibration_html)


def unregister_formatters(shell: Any) -> None:
    from qiskit.result import Result

    from qmio_lab.device import Calibration
    from qmio_lab.emulator.job import EmulatorJob
    from qmio_lab.qpu.backend import QPUJob

    html = shell.display_formatter.formatters["text/html"]
    for cls in (Result, QPUJob, EmulatorJob, Calibration):
        html.type_printers.pop(cls, None)
