"""The QPU queue service (server side) and its client side: QPUClient, QPUBackend."""
from qmio_lab.errors import QPUJobError, QPUServiceError, QPUUnreachableError
from qmio_lab.qpu.backend import QPUBackend, QPUJob
from qmio_lab.qpu.client import QPUClient
from qmio_lab.qpu.launcher import default_client, start_local_service

__all__ = [
    "QPUBackend", "QPUClient", "QPUJob", "QPUJobError", "QPUServiceError", "QPUUnreachableError",
    "default_client", "start_local_service",
]
