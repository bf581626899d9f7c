"""qmio_lab: a Jupyter-centric platform for the QMIO hybrid HPC + quantum computing centre."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_backend(name: str = "qpu", **kwargs: Any):
    """Backend for a target: ``"qpu"``, ``"emulator"`` or ``"simulator"`` (see qmio_lab.backends)."""
    from qmio_lab.backends import get_backend as _get_backend

    return _get_backend(name, **kwargs)
