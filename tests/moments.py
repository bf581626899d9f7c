"""Fixed instants the device tests use."""
from datetime import datetime, timezone

#: A Monday, just after the 07:00 calibration window.
MONDAY = datetime(2026, 11, 23, 7, 30, tzinfo=timezone.utc)
