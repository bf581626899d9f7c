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


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (0700): it holds circuits, results,
    tokens and logs, which other users of a shared machine must not read."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)
    return path


def private_file(path: Path, mode: str = "ab") -> Any:
    """Open ``path`` (created 0600 if new, whatever the umask) inside a private directory."""
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, 0o600), mode)
