"""Fixed instants and calendars the device and calendar tests use."""
from datetime import datetime, timezone
from importlib.resources import files

import yaml

#: A Monday, just after the 07:00 calibration window.
MONDAY = datetime(2026, 11, 23, 7, 30, tzinfo=timezone.utc)


def packaged_calendar() -> dict:
    """The calibration calendar qmio.yaml ships (tests/conftest.py switches the calendar off
    for everything else)."""
    return yaml.safe_load(files("qmio_lab").joinpath("qmio.yaml").read_text())["qmio"]["calibration"]


def packaged_calendar_env(**overrides: object) -> dict[str, str]:
    """Environment that gives a service process the packaged calendar, with ``overrides``."""
    settings = {**packaged_calendar(), **overrides}
    return {f"DASK_QMIO__CALIBRATION__{key.upper()}": repr(value) for key, value in settings.items()}
