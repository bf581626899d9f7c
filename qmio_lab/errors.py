"""Exceptions raised by qmio_lab.

Every error is both a :class:`QmioError` and the matching Qiskit/builtin error, so code that
already catches ``QiskitError`` or ``ValueError`` keeps working. Messages say how to fix it.
Every error class of the package lives here, except the lab server's ``LabError`` (an HTTP reply
of the lab, in qmio_lab.labserver.manager) and the QPU server's ``ApiError`` (tornado's HTTPError,
the HTTP layer's translation of these errors, in qmio_lab.qpu.server).
"""
from __future__ import annotations

from typing import Any

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


class CalibrationFileError(QmioError, ValueError):
    """A calibration file (QMIO's JSON schema) cannot be read: the message names the file, and
    every missing or malformed figure by qubit and key."""


class EmulatorMemoryError(QmioError, MemoryError):
    """A circuit needs more memory than any emulator worker has."""


class EmulatorClusterError(QmioError, RuntimeError):
    """The emulator's Dask cluster cannot be created or reached as configured."""


from qiskit.providers import JobError  # noqa: E402  (kept beside the classes that need it)


class EmulatorJobError(QmioError, JobError):
    """An emulator job failed, was cancelled, or its result was asked for too early."""


# ---- the QPU queue service, seen from the client ------------------------------------------------
class QPUServiceError(QmioError):
    """The service refused a request; ``status`` is the HTTP code, ``payload`` its JSON body."""

    def __init__(self, message: str, status: int | None = None, payload: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload or {}


class QPUUnreachableError(QPUServiceError):
    """No answer from the QPU service (not running, wrong ``qmio.qpu.url``, a local one that did
    not start). There is no HTTP code: ``status`` is None; the message says what to check."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class QPUJobError(QmioError, JobError):
    """A QPU job failed or was cancelled; the message carries the service's reason."""


# ---- the QPU queue service, server side -----------------------------------------------------------
class PayloadError(QmioError, ValueError):
    """A submitted circuit could not be read."""


class DeviceProcessError(QmioError, RuntimeError):
    """The simulator process stopped or failed outside the simulation itself."""


class JobStopped(QmioError, RuntimeError):
    """The running job was stopped on purpose (cancelled, or past its time limit)."""

    def __init__(self, message: str, *, cancelled: bool) -> None:
        super().__init__(message)
        self.cancelled = cancelled


class SubmissionError(QmioError, ValueError):
    """The service refused a job request. ``status`` is the HTTP code it answers with (the QMIO
    gateway replies ``{"Exception": message}`` instead); ``figures`` are extra JSON fields."""

    def __init__(self, status: int, message: str, **figures: Any) -> None:
        super().__init__(message)
        self.status = status
        self.figures = figures


class GatewayRequestError(QmioError, ValueError):
    """A message to the QMIO gateway is not a request of QMIO's client (or not plain data)."""


class SlurmGateRefused(QmioError, PermissionError):
    """The submission does not come from a running job in the QPU partition."""


class SlurmCommandError(QmioError, RuntimeError):
    """squeue failed for a reason other than an unknown job."""


# ---- warnings -----------------------------------------------------------------------------------
class IgnoredOptionWarning(UserWarning):
    """A run option the target does not use was passed, and ignored (qmio_lab.run_options)."""


class QuotaWarning(UserWarning):
    """A job was accepted, but it takes its account past ``qmio.qpu.quota_warning`` of its QPU
    budget (the message has the share used and when the budget resets)."""


class CuttingError(QmioError, ValueError):
    """A circuit cutting request that cannot run as asked (the message says what to change)."""
