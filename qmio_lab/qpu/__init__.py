"""The QPU queue service (server side) and its client side: QPUClient, QPUBackend."""
from qmio_lab.qpu.backend import QPUBackend, QPUJob, QPUJobError
from qmio_lab.qpu.client import QPUClient, QPUServiceError
from qmio_lab.qpu.launcher import default_client, start_local_service

__all__ = [
    "QPUBackend", "QPUClient", "QPUJob", "QPUJobError", "QPUServiceError", "default_client",
    "start_local_service",
]
