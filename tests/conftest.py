from __future__ import annotations

from datetime import datetime, timezone

import pytest

from qmio_lab.device import QmioDevice

#: A Monday, just after the 07:00 calibration window.
MONDAY = datetime(2026, 11, 23, 7, 30, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def device() -> QmioDevice:
    return QmioDevice(seed=7, calibrated_at=MONDAY)
