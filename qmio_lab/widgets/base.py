"""What every qmio_lab widget shares: a static HTML fallback next to the live widget view.

JupyterLab renders the live view; nbviewer, GitHub and ``jupyter nbconvert`` (which have no
widget manager) render the ``text/html`` of the same output instead.
"""
from __future__ import annotations

from typing import Any


class HTMLFallback:
    """Mixin for ``ipywidgets`` classes: ``_repr_html_`` plus a mime bundle that carries it."""

    def _repr_html_(self) -> str:  # pragma: no cover - every widget overrides it
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        if bundle is None:
            bundle = {}
        bundle["text/html"] = self._repr_html_()
        return bundle
