"""Exceptions raised by qmio_lab.

Every error is both a :class:`QmioError` and the matching Qiskit/builtin error, so code that
already catches ``QiskitError`` or ``ValueError`` keeps working. Messages say how to fix it.
"""
from __future__ import annotations

from qiskit.exceptions import QiskitError


class QmioError(QiskitError):
    """Base class of every qmio_lab error."""

    def __str__(self) -> str:  # QiskitError shows repr(message), quotes and all
        return self.message


class InvalidCircuitError(QmioError, ValueError):
    """A circuit cannot run on the target as it is (width, gates, couplings)."""


class AdmissionError(QmioError, ValueError):
    """A request exceeds one of the service's limits (qmio.qpu.admission, reservation budgets,
    the per-job time budget). ``retry_at`` (ISO time) is set when waiting, rather than changing
    the request, helps; ``figures`` holds the numbers behind the refusal (for a JSON reply)."""

    def __init__(self, message: str, *, retry_at: str | None = None, **figures: float) -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.figures = figures


class InvalidShotsError(QmioError, ValueError):
    """The requested number of shots is outside what the device accepts."""


class CalibrationError(QmioError, LookupError):
    """No calibration exists for the requested time or id."""


class EmulatorMemoryError(QmioError, MemoryError):
    """A circuit needs more memory than any emulator worker has."""


class EmulatorClusterError(QmioError, RuntimeError):
    """The emulator's Dask cluster cannot be created or reached as configured."""


from qiskit.providers import JobError  # noqa: E402  (kept beside the only class that needs it)


class EmulatorJobError(QmioError, JobError):
    """An emulator job failed, was cancelled, or its result was asked for too early."""
