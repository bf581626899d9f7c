"""Result views: counts histogram with table, two-result comparison (TVD), Estimator values."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as w
import numpy as np

from qmio_lab.widgets._render import esc, figure_png, key_value_table, new_figure, png_img_tag, table
from qmio_lab.widgets.base import HTMLFallback

MAX_BARS = 32  # more outcomes than this: the histogram shows the most frequent ones
#: the target (``get_backend`` name) each backend's results come from, as a result view labels
#: them: a QPU result must read "qpu" even though the service's simulator computed it
TARGETS = {"qmio_qpu": "qpu", "qmio_emulator": "emulator", "qmio_simulator": "simulator"}


def result_target(result: Any) -> str | None:
    """The target a Qiskit ``Result`` ran on (``qpu``, ``emulator``, ``simulator``), from its
    backend name; None for a backend that is none of ours."""
    return TARGETS.get(str(getattr(result, "backend_name", "") or ""))


def result_counts(result: Any) -> list[dict[str, int]]:
    """Counts of every experiment of a Qiskit ``Result`` (or a counts dict, or a list of them)."""
    if isinstance(result, Mapping):
        return [dict(result)]
    if isinstance(result, Sequence) and not isinstance(result, str):
        return [dict(c) for c in result]
    counts = result.get_counts()
    return [dict(c) for c in counts] if isinstance(counts, list) else [dict(counts)]


def result_meta(result: Any) -> list[tuple[str, Any]]:
    """The figures worth showing beside a Result: backend, job, calibration and its age."""
    if isinstance(result, (Mapping, Sequence)):
        return []
    meta = getattr(result, "_metadata", {}) or {}
    pairs: list[tuple[str, Any]] = []
    target = result_target(result)
    if target is not None:
        pairs.append(("target", target))
    pairs += [("backend", result.backend_name), ("job", result.job_id)]
    if meta.get("calibration_id"):
        pairs.append(("calibration", meta["calibration_id"]))
    if meta.get("calibration_age_s") is not None:
        pairs.append(("calibration age", f"{float(meta['calibration_age_s']) / 3600:.1f} h"))
    shots = [getattr(e, "shots", None) for e in result.results]
    if shots and shots[0] is not None:
        pairs.append(("shots", shots[0] if not isinstance(shots[0], (list, tuple)) else shots[0][-1]))
    return pairs


def experiment_names(result: Any, n: int) -> list[str]:
    names = []
    for i in range(n):
        try:
            names.append(f"{i}: {result.results[i].header.name}")
        except (AttributeError, IndexError):
            names.append(f"circuit {i}")
    return names


def probabilities(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in counts.items()}


def total_variation_distance(a: Mapping[str, int], b: Mapping[str, int]) -> float:
    """½ Σ |p(x) − q(x)| over the outcomes of both count dicts (normalised first)."""
    p, q = probabilities(a), probabilities(b)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def _top(counts: Mapping[str, int]) -> list[str]:
    keys = sorted(counts, key=lambda k: (-counts[k], k))[:MAX_BARS]
    return sorted(keys)


def histogram_png(counts: Mapping[str, int], title: str = "") -> bytes:
    keys = _top(counts)
    fig = new_figure(max(4.0, 0.35 * len(keys) + 1.5), 3.0)
    ax = fig.add_subplot()
    ax.bar(range(len(keys)), [counts[k] for k in keys], color="#3b75af")
    ax.set_xticks(range(len(keys)), keys, rotation=60 if len(keys) > 8 else 0, fontsize=8)
    ax.set_ylabel("counts")
    if title:
        ax.set_title(title, fontsize=10)
    return figure_png(fig)


def counts_table(counts: Mapping[str, int]) -> str:
    total = sum(counts.values()) or 1
    rows = [(k, v, f"{v / total:.4f}") for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return table(["outcome", "counts", "probability"], rows)


class ResultView(HTMLFallback, w.VBox):
    """Histogram and counts table of a Result; a dropdown picks the circuit of a multi-circuit job."""

    def __init__(self, result: Any, title: str = "") -> None:
        self.result = result
        self.counts = result_counts(result)
        self.title = title
        self.info = w.HTML(key_value_table(result_meta(result)))
        names = experiment_names(result, len(self.counts))
        self.selector = w.Dropdown(options=list(zip(names, range(len(names)))), value=0,
                                   description="circuit", layout=w.Layout(display="" if len(names) > 1 else "none"))
        self.histogram = w.Image(format="png")
        self.counts_table = w.HTML()
        self.selector.observe(self._show, names="value")
        super().__init__([w.HTML(f"<b>{esc(title)}</b>" if title else ""), self.info, self.selector,
                          w.HBox([self.histogram, self.counts_table])])
        self._show()

    def _show(self, _change: Any = None) -> None:
        counts = self.counts[self.selector.value]
        self.histogram.value = histogram_png(counts)
        self.counts_table.value = counts_table(counts)

    def _repr_html_(self) -> str:
        parts = [key_value_table(result_meta(self.result))]
        for name, counts in zip(experiment_names(self.result, len(self.counts)), self.counts):
            parts.append(f"<p><b>{esc(name)}</b></p>{png_img_tag(histogram_png(counts), name)}{counts_table(counts)}")
        return "<div class='qmio-result'>" + "".join(parts) + "</div>"


def comparison_png(a: Mapping[str, int], b: Mapping[str, int], labels: Sequence[str]) -> bytes:
    p, q = probabilities(a), probabilities(b)
    merged = {k: p.get(k, 0.0) + q.get(k, 0.0) for k in set(p) | set(q)}
    keys = _top(merged)
    x = np.arange(len(keys))
    fig = new_figure(max(4.0, 0.45 * len(keys) + 1.5), 3.0)
    ax = fig.add_subplot()
    ax.bar(x - 0.2, [p.get(k, 0.0) for k in keys], 0.4, label=labels[0], color="#3b75af")
    ax.bar(x + 0.2, [q.get(k, 0.0) for k in keys], 0.4, label=labels[1], color="#ef8636")
    ax.set_xticks(x, keys, rotation=60 if len(keys) > 8 else 0, fontsize=8)
    ax.set_ylabel("probability")
    ax.legend(fontsize=8)
    return figure_png(fig)


class ResultComparison(HTMLFallback, w.VBox):
    """Two results side by side (e.g. QPU vs emulator, or two calibrations) with their TVD."""

    def __init__(self, a: Any, b: Any, labels: Sequence[str] = ("A", "B"), index: int = 0) -> None:
        self.labels = tuple(labels)
        self.a = result_counts(a)[index]
        self.b = result_counts(b)[index]
        self.tvd = total_variation_distance(self.a, self.b)
        self.summary = w.HTML(self._summary_html())
        self.histogram = w.Image(value=comparison_png(self.a, self.b, self.labels), format="png")
        self.table = w.HTML(self._table_html())
        super().__init__([self.summary, w.HBox([self.histogram, self.table])])

    def _summary_html(self) -> str:
        return (f"<b>{esc(self.labels[0])}</b> vs <b>{esc(self.labels[1])}</b>: "
                f"total variation distance <b>{self.tvd:.4f}</b>")

    def _table_html(self) -> str:
        p, q = probabilities(self.a), probabilities(self.b)
        keys = sorted(set(p) | set(q), key=lambda k: (-(p.get(k, 0) + q.get(k, 0)), k))
        rows = [(k, f"{p.get(k, 0.0):.4f}", f"{q.get(k, 0.0):.4f}") for k in keys]
        return table(["outcome", f"p({self.labels[0]})", f"p({self.labels[1]})"], rows)

    def _repr_html_(self) -> str:
        return (f"<div class='qmio-compare'><p>{self._summary_html()}</p>"
                f"{png_img_tag(comparison_png(self.a, self.b, self.labels))}{self._table_html()}</div>")


def compare(a: Any, b: Any, labels: Sequence[str] = ("A", "B"), index: int = 0) -> ResultComparison:
    return ResultComparison(a, b, labels, index)


def estimator_rows(result: Any) -> list[tuple[int, int, float, float]]:
    """``(pub, index, ev, std)`` for every expectation value of an Estimator PrimitiveResult."""
    rows = []
    for p, pub in enumerate(result):
        evs = np.atleast_1d(np.asarray(pub.data.evs, dtype=float)).ravel()
        stds = getattr(pub.data, "stds", None)
        stds = np.zeros_like(evs) if stds is None else np.atleast_1d(np.asarray(stds, dtype=float)).ravel()
        rows.extend((p, i, float(ev), float(sd)) for i, (ev, sd) in enumerate(zip(evs, stds)))
    return rows


def estimator_png(rows: Sequence[tuple[int, int, float, float]]) -> bytes:
    fig = new_figure(max(4.0, 0.4 * len(rows) + 1.5), 3.0)
    ax = fig.add_subplot()
    ax.errorbar(range(len(rows)), [r[2] for r in rows], yerr=[r[3] for r in rows], fmt="o",
                color="#3b75af", capsize=3)
    ax.axhline(0, color="#999", lw=0.8)
    ax.set_xticks(range(len(rows)), [f"{r[0]}.{r[1]}" for r in rows], fontsize=8,
                  rotation=60 if len(rows) > 12 else 0)
    ax.set_xlabel("pub.observable")
    ax.set_ylabel("⟨O⟩")
    return figure_png(fig)


class EstimatorView(HTMLFallback, w.VBox):
    """Expectation values ± standard errors of an Estimator (V2) PrimitiveResult."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.rows = estimator_rows(result)
        self.plot = w.Image(value=estimator_png(self.rows), format="png")
        self.table = w.HTML(self._table_html())
        super().__init__([w.HTML(f"<b>Estimator: {len(self.rows)} expectation values</b>"),
                          w.HBox([self.plot, self.table])])

    def _table_html(self) -> str:
        return table(["pub", "index", "⟨O⟩", "std"], [(p, i, f"{ev:.5f}", f"{sd:.5f}") for p, i, ev, sd in self.rows])

    def _repr_html_(self) -> str:
        return f"<div class='qmio-estimator'>{png_img_tag(estimator_png(self.rows))}{self._table_html()}</div>"


def view(result: Any, **kwargs: Any) -> w.Widget:
    """The right view for a result: EstimatorView for Estimator results, else ResultView."""
    first = next(iter(result), None) if hasattr(result, "__iter__") and not isinstance(result, (Mapping, list)) else None
    if first is not None and hasattr(getattr(first, "data", None), "evs"):
        return EstimatorView(result)
    return ResultView(result, **kwargs)
