"""One entry point to every target: ``get_backend("qpu" | "emulator" | "simulator")``."""
from __future__ import annotations

from typing import Any

from qiskit.providers import BackendV2

TARGETS = ("qpu", "emulator", "simulator")


def get_backend(name: str = "qpu", **kwargs: Any) -> BackendV2:
    """``qpu``: the queue service (started locally if none is configured); ``emulator``: Aer on
    Dask workers; ``simulator``: the noisy device in this process, without a queue."""
    if name == "qpu":
        from qmio_lab.qpu.backend import QPUBackend

        return QPUBackend(**kwargs)
    if name == "emulator":
        from qmio_lab.emulator import EmulatorBackend

        return EmulatorBackend(**kwargs)
    if name == "simulator":
        from qmio_lab.device import QmioSimulator

        return QmioSimulator(**kwargs)
    raise ValueError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
