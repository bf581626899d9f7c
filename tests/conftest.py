from __future__ import annotations

import os

# Tests that are not about the calibration calendar must not depend on the time of day: with no
# calendar weekdays, every service, kernel and notebook the tests start (they inherit this
# environment) never holds jobs for a daily window. The calendar tests give their services a
# schedule and a simulated clock of their own (tests/test_qpu_calendar.py). Set before qmio_lab
# is imported, which reads its configuration once.
os.environ["DASK_QMIO__CALIBRATION__WEEKDAYS"] = "[]"
# A job holds the simulated QPU only as long as its simulation takes: the suite runs thousands of
# jobs. The timing tests give their services hardware timing and a time scale of their own.
os.environ["DASK_QMIO__DEVICE__TIMING"] = "instant"

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from qmio_lab import config  # noqa: E402
from qmio_lab.device import QmioDevice  # noqa: E402
from support.moments import MONDAY  # noqa: E402
from support.slurm import slurm_session  # noqa: E402

config.refresh()  # in case a plugin imported qmio_lab before this file


@pytest.fixture(scope="session")
def device() -> QmioDevice:
    return QmioDevice(seed=7, calibrated_at=MONDAY)


@pytest.fixture(scope="session")
def slurm_conf() -> Iterator[str]:
    """One real SLURM for the whole run (starting one costs ~20 s); see tests/support/slurm.py."""
    yield from slurm_session()
