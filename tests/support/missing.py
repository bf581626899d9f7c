"""The one rule for a missing part (SLURM, Chromium, the Hub's proxy, repo2docker, ...).

In CI (``CI`` set to true, 1 or yes, in any case) a missing part fails the test that needs it;
elsewhere the test is skipped with the reason, so a developer without root can run the rest.
"""
from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str) -> NoReturn:
    """Fail (in CI) or skip (elsewhere) because ``reason`` names a part that is not there."""
    if in_ci():
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)
