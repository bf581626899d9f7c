"""One place for qmio_lab settings.

Settings live in dask's configuration system under the ``qmio`` key, so they resolve the way
dask and dask-jobqueue settings do: packaged defaults (``qmio.yaml`` beside this file), then
YAML files in ``~/.config/dask`` or ``$DASK_CONFIG``, then ``DASK_QMIO__...`` environment
variables. Nothing is written to the user's home directory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.config
import yaml

_DEFAULTS_FILE = Path(__file__).with_name("qmio.yaml")

with _DEFAULTS_FILE.open() as _fh:
    _DEFAULTS = yaml.safe_load(_fh)

dask.config.update_defaults(_DEFAULTS)


def get(key: str, default: Any = dask.config.no_default) -> Any:
    """Return the setting ``qmio.<key>`` (dotted), e.g. ``get("device.seed")``."""
    return dask.config.get(f"qmio.{key}", default=default)


def refresh() -> None:
    """Re-read config files and environment variables (tests and long-lived services)."""
    dask.config.refresh()
    dask.config.update_defaults(_DEFAULTS)


def lab_home() -> Path:
    """Where qmio_lab keeps state: ``$QMIO_LAB_HOME`` or ``~/.local/share/qmio_lab``."""
    home = os.environ.get("QMIO_LAB_HOME")
    return Path(home) if home else Path.home() / ".local" / "share" / "qmio_lab"
