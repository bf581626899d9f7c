"""qmio_lab: a Jupyter-centric platform for the QMIO hybrid HPC + quantum computing centre."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_backend(name: str = "qpu", **kwargs: Any):
    """Backend for a target: ``"qpu"``, ``"emulator"`` or ``"simulator"`` (see qmio_lab.backends)."""
    from qmio_lab.backends import get_backend as _get_backend

    return _get_backend(name, **kwargs)


def session(target: Any = "qpu", max_time: str | float = "10m", **kwargs: Any):
    """``with qmio_lab.session("qpu", max_time="10m") as s:`` one connection, circuits transpiled
    once, and on the QPU an exclusive reservation until the block ends (see qmio_lab.sessions)."""
    from qmio_lab.sessions import Session

    return Session(target, max_time, **kwargs)


_LAZY = {
    "SamplerV2": "qmio_lab.primitives", "EstimatorV2": "qmio_lab.primitives", "Session": "qmio_lab.sessions",
}


def __getattr__(name: str) -> Any:
    """Heavy parts load on first use, so ``import qmio_lab`` stays fast in every kernel."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qmio_lab' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """``%load_ext qmio_lab``: the ``%%qmio``/``%qmio`` magics and rich HTML for results."""
    from qmio_lab.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython) -> None:
    from qmio_lab.magics import unload_ipython_extension as _unload

    _unload(ipython)
