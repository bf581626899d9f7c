"""The QMIO HPC emulator: qiskit-aer on Dask workers (local processes, SLURM jobs or a scheduler).

``EmulatorBackend().run(circuits)`` fans circuits out in batches over the configured cluster
(``qmio.emulator.cluster``), refuses circuits that fit no worker, and replays the QPU's noise
from a calibration snapshot with ``noise=``.
"""
from qmio_lab.emulator.backend import EmulatorBackend
from qmio_lab.emulator.cluster import cluster_kind, current, get_client, get_cluster, make_cluster, shutdown
from qmio_lab.emulator.job import EmulatorJob
from qmio_lab.emulator.memory import MemoryEstimate, estimate

__all__ = [
    "EmulatorBackend", "EmulatorJob", "MemoryEstimate", "cluster_kind", "current", "estimate", "get_client",
    "get_cluster", "make_cluster", "shutdown",
]
