from __future__ import annotations

from collections.abc import Iterator

import pytest

from qmio_lab.device import QmioDevice
from moments import MONDAY
from slurm.fixtures import slurm_session


@pytest.fixture(scope="session")
def device() -> QmioDevice:
    return QmioDevice(seed=7, calibrated_at=MONDAY)


@pytest.fixture(scope="session")
def slurm_conf() -> Iterator[str]:
    """One real SLURM for the whole run (starting one costs ~20 s); see tests/slurm/fixtures.py."""
    yield from slurm_session()
