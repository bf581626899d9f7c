"""Small rendering helpers shared by the widgets: figures to PNG, colour scales, HTML tables."""
from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width: float = 6.0, height: float = 3.0) -> Figure:
    """A pyplot-free figure: safe to draw from a monitor thread, never shown twice by inline."""
    fig = Figure(figsize=(width, height), dpi=96)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def png_img_tag(png: bytes, alt: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}"/>'


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """Numbers as people read them: 4 significant figures, no scientific notation for ints."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, css_class: str = "qmio-table") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<table class="{css_class}" style="border-collapse:collapse;font-size:12px">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def key_value_table(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{esc(k)}</th>"
                   f"<td>{esc(fmt(v))}</td></tr>" for k, v in pairs)
    return f'<table class="qmio-kv" style="font-size:12px">{rows}</table>'


def hex_colour(rgba: Sequence[float]) -> str:
    r, g, b = (int(round(255 * c)) for c in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def colour_scale(values: Sequence[float], cmap_name: str = "viridis", reverse: bool = False) -> list[str]:
    """One hex colour per value on a min..max scale (``reverse``: low values get the bright end)."""
    from matplotlib import colormaps

    cmap = colormaps[cmap_name + ("_r" if reverse else "")]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return [hex_colour(cmap((v - lo) / span)) for v in values]
