"""Calibration views: the chip coloured by a metric (SVG, hover titles), and metric history."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import ipywidgets as w

from qmio_lab.device import Calibration, Topology
from qmio_lab.widgets._render import colour_scale, esc, figure_png, key_value_table, new_figure, png_img_tag, table
from qmio_lab.widgets.base import HTMLFallback

#: metric name -> (label, unit scale, unit, lower is better)
METRICS: dict[str, tuple[str, float, str, bool]] = {
    "t1": ("T1", 1e6, "µs", False),
    "t2": ("T2 (echo)", 1e6, "µs", False),
    "readout_error": ("readout error", 100.0, "%", True),
    "sx_error": ("SX error", 100.0, "%", True),
    "frequency": ("frequency", 1e-9, "GHz", False),
}
_SCALE = 60.0  # SVG pixels per chip unit
_PAD = 30.0


def chip_svg(cal: Calibration, metric: str = "t1", positions: Mapping[int, tuple[float, float]] | None = None,
             selected: int | None = None) -> str:
    """The chip as SVG: qubits coloured by ``metric``, couplers by ECR error; ``<title>`` on hover."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    pos = dict(positions or Topology().positions)
    values = cal.qubit_metric(metric)
    colours = colour_scale(values, reverse=METRICS[metric][3])
    ecr = [c.ecr_error for c in cal.couplers]
    edge_colours = colour_scale(ecr, "plasma", reverse=True) if ecr else []
    width = max(x for x, _ in pos.values()) * _SCALE + 2 * _PAD
    height = max(y for _, y in pos.values()) * _SCALE + 2 * _PAD

    def xy(q: int) -> tuple[float, float]:
        return pos[q][0] * _SCALE + _PAD, pos[q][1] * _SCALE + _PAD

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="qmio-chip" width="{width:.0f}" '
             f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif">']
    for c, colour in zip(cal.couplers, edge_colours):
        (x1, y1), (x2, y2) = xy(c.control), xy(c.target)
        parts.append(f'<line class="coupler" data-pair="{c.control}-{c.target}" x1="{x1:.1f}" y1="{y1:.1f}" '
                     f'x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" stroke-width="5">'
                     f"<title>ECR {c.control}→{c.target}: error {c.ecr_error * 100:.3g} %, "
                     f"{c.ecr_duration * 1e9:.0f} ns</title></line>")
    for q, (value, colour) in enumerate(zip(values, colours)):
        x, y = xy(q)
        qc = cal.qubits[q]
        title = (f"Q{q}: T1 {qc.t1 * 1e6:.1f} µs, T2 {qc.t2 * 1e6:.1f} µs, readout {qc.readout_error * 100:.2f} %, "
                 f"SX {qc.sx_error * 100:.3f} %, f {qc.frequency * 1e-9:.3f} GHz")
        ring = ' stroke="#d00" stroke-width="3"' if q == selected else ' stroke="#333" stroke-width="1"'
        parts.append(f'<g class="qubit" data-qubit="{q}" data-value="{value:.6g}"><circle cx="{x:.1f}" cy="{y:.1f}" '
                     f'r="16" fill="{colour}"{ring}/><text x="{x:.1f}" y="{y + 4:.1f}" font-size="11" '
                     f'text-anchor="middle" fill="#fff" stroke="#000" stroke-width="0.3">{q}</text>'
                     f"<title>{esc(title)}</title></g>")
    lo, hi = min(values), max(values)
    label, scale, unit, lower_better = METRICS[metric]
    parts.append(f'<text x="{_PAD:.0f}" y="{height - 6:.0f}" font-size="11">{esc(label)}: {lo * scale:.3g}–'
                 f'{hi * scale:.3g} {esc(unit)} (bright = {"low" if lower_better else "high"}); '
                 f"couplers: bright = low ECR error</text>")
    parts.append("</svg>")
    return "".join(parts)


def qubit_details(cal: Calibration, q: int) -> str:
    qc = cal.qubits[q]
    couplers = [c for c in cal.couplers if q in (c.control, c.target)]
    pairs = [("qubit", q), ("T1", f"{qc.t1 * 1e6:.2f} µs"), ("T2 (echo)", f"{qc.t2 * 1e6:.2f} µs"),
             ("frequency", f"{qc.frequency * 1e-9:.4f} GHz"),
             ("readout P(1|0)", f"{qc.readout_p10 * 100:.2f} %"), ("readout P(0|1)", f"{qc.readout_p01 * 100:.2f} %"),
             ("SX error", f"{qc.sx_error * 100:.4f} %"), ("SX duration", f"{qc.sx_duration * 1e9:.0f} ns"),
             ("measure duration", f"{qc.measure_duration * 1e6:.2f} µs")]
    pairs += [(f"ECR {c.control}→{c.target}", f"{c.ecr_error * 100:.3f} %") for c in couplers]
    return key_value_table(pairs)


def calibration_header(cal: Calibration, status: Mapping[str, Any] | None = None) -> str:
    pairs: list[tuple[str, Any]] = [("calibration", cal.id), ("taken at", cal.taken_at.isoformat(timespec="minutes")),
                                    ("age", f"{cal.age.total_seconds() / 3600:.1f} h")]
    if status:
        pairs.insert(0, ("QPU state", status.get("state")))
        nxt = status.get("next_calibration")
        pairs.append(("next window", f"{nxt['start']} – {nxt['end']}" if nxt else "none scheduled"))
    summary = cal.summary()
    pairs += [("median T1", f"{summary['t1_median_us']:.1f} µs"), ("median T2", f"{summary['t2_median_us']:.1f} µs"),
              ("median readout error", f"{summary['readout_error_median'] * 100:.2f} %"),
              ("median ECR error", f"{summary['ecr_error_median'] * 100:.2f} %")]
    return key_value_table(pairs)


class CalibrationView(HTMLFallback, w.VBox):
    """The chip map: ``metric`` dropdown colours the qubits, hover shows every figure, and the
    ``qubit`` dropdown (the click target in plain Jupyter) shows one qubit's details."""

    def __init__(self, calibration: Calibration, status: Mapping[str, Any] | None = None,
                 metric: str = "t1", positions: Mapping[int, tuple[float, float]] | None = None) -> None:
        self.calibration = calibration
        self.status = dict(status or {})
        self.positions = dict(positions or Topology().positions)
        self.header = w.HTML(calibration_header(calibration, status))
        self.metric = w.Dropdown(options=[(v[0], k) for k, v in METRICS.items()], value=metric, description="metric")
        self.qubit = w.Dropdown(options=[("—", None)] + [(f"Q{q}", q) for q in range(calibration.num_qubits)],
                                value=None, description="qubit")
        self.chip = w.HTML()
        self.details = w.HTML()
        self.metric.observe(self._redraw, names="value")
        self.qubit.observe(self._redraw, names="value")
        super().__init__([self.header, w.HBox([self.metric, self.qubit]), w.HBox([self.chip, self.details])])
        self._redraw()

    def _redraw(self, _change: Any = None) -> None:
        self.chip.value = chip_svg(self.calibration, self.metric.value, self.positions, self.qubit.value)
        self.details.value = "" if self.qubit.value is None else qubit_details(self.calibration, self.qubit.value)

    def _repr_html_(self) -> str:
        return (f"<div class='qmio-calibration'>{calibration_header(self.calibration, self.status)}"
                f"{chip_svg(self.calibration, self.metric.value, self.positions)}</div>")


#: summary metric -> axis label
HISTORY_METRICS = {
    "t1_median_us": "median T1 (µs)", "t2_median_us": "median T2 (µs)",
    "readout_error_median": "median readout error", "sx_error_median": "median SX error",
    "ecr_error_median": "median ECR error",
}


def _history_points(history: Sequence[Any]) -> list[tuple[datetime, str, dict[str, Any], Calibration | None]]:
    points = []
    for item in history:
        if isinstance(item, Calibration):
            points.append((item.taken_at, item.id, item.summary(), item))
            continue
        doc = item.get("calibration") if "calibration" in item else (item if "qubits" in item else None)
        cal = Calibration.from_dict(doc) if doc else None
        summary = item.get("summary") or (cal.summary() if cal else {})
        points.append((datetime.fromisoformat(item["taken_at"]), item["id"], summary, cal))
    return sorted(points, key=lambda p: p[0])


def history_png(points: Sequence[tuple[datetime, str, dict[str, Any], Any]], metric: str, qubit: int | None = None) -> bytes:
    fig = new_figure(6.0, 3.0)
    ax = fig.add_subplot()
    if qubit is None:
        xs = [p[0] for p in points]
        ys = [p[2][metric] for p in points]
        ax.set_ylabel(HISTORY_METRICS[metric], fontsize=9)
    else:
        name = metric
        xs = [p[0] for p in points if p[3] is not None]
        ys = [p[3].qubit_metric(name)[qubit] * METRICS[name][1] for p in points if p[3] is not None]
        ax.set_ylabel(f"Q{qubit} {METRICS[name][0]} ({METRICS[name][2]})", fontsize=9)
    ax.plot(xs, ys, "o-", color="#3b75af")
    fig.autofmt_xdate()
    return figure_png(fig)


class CalibrationHistory(HTMLFallback, w.VBox):
    """A metric over the calibration history (summaries from ``QPUClient.calibrations()``, full
    snapshots or Calibration objects); with full snapshots a ``qubit`` dropdown plots one qubit."""

    def __init__(self, history: Sequence[Any], metric: str = "t1_median_us") -> None:
        self.points = _history_points(history)
        if not self.points:
            raise ValueError("no calibrations to plot")
        full = all(p[3] is not None for p in self.points)
        self.metric = w.Dropdown(options=[(v, k) for k, v in HISTORY_METRICS.items()], value=metric, description="metric")
        self.qubit = w.Dropdown(options=[("all (median)", None)] + ([(f"Q{q}", q) for q in range(32)] if full else []),
                                value=None, description="qubit")
        self.qubit_metric = w.Dropdown(options=[(v[0], k) for k, v in METRICS.items()], value="t1", description="figure",
                                       layout=w.Layout(display="" if full else "none"))
        self.plot = w.Image(format="png")
        self.table = w.HTML(self._table_html())
        for control in (self.metric, self.qubit, self.qubit_metric):
            control.observe(self._redraw, names="value")
        super().__init__([w.HTML(f"<b>{len(self.points)} calibrations</b>"),
                          w.HBox([self.metric, self.qubit, self.qubit_metric]), self.plot, self.table])
        self._redraw()

    def _redraw(self, _change: Any = None) -> None:
        if self.qubit.value is None:
            self.plot.value = history_png(self.points, self.metric.value)
        else:
            self.plot.value = history_png(self.points, self.qubit_metric.value, self.qubit.value)

    def _table_html(self) -> str:
        rows = [(p[1], p[0].isoformat(timespec="minutes"), *(p[2].get(k) for k in HISTORY_METRICS)) for p in self.points]
        return table(["id", "taken at", *HISTORY_METRICS.values()], rows)

    def _repr_html_(self) -> str:
        return (f"<div class='qmio-cal-history'>{png_img_tag(history_png(self.points, self.metric.value))}"
                f"{self._table_html()}</div>")
