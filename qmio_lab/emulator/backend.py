"""``EmulatorBackend``: the HPC emulator target, qiskit-aer fanned out over Dask workers.

Noiseless by default; ``noise=`` replays the QPU's noise from a calibration snapshot. Each
circuit's memory is estimated before anything is submitted, so a circuit too large for every
worker is refused with a message instead of killing a worker.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from distributed import Client
from distributed.deploy import Cluster
from qiskit import QuantumCircuit
from qiskit.providers import BackendV2, Options

from qmio_lab.compilation import EMULATOR_BASIS_GATES
from qiskit.transpiler import Target

from qmio_lab import config
from qmio_lab.emulator import cluster as clusters
from qmio_lab.emulator.job import EmulatorJob
from qmio_lab.emulator.memory import check_fits, estimate
from qmio_lab.emulator.replay import CalibrationResolver, qpu_calibration, resolve_noise
from qmio_lab.emulator.runner import Sweep, plan_batches, specs_for
from qmio_lab.emulator.tasks import BatchSpec
from qmio_lab.errors import EmulatorClusterError, InvalidCircuitError, InvalidShotsError

#: Every gate Aer simulates natively that Qiskit names as a standard gate: transpiling for the
#: emulator then rewrites as little as possible.
BASIS_GATES = EMULATOR_BASIS_GATES


class EmulatorBackend(BackendV2):
    """QMIO's emulator as a Qiskit backend: all-to-all, up to ``qmio.emulator.max_qubits``.

    ``client``/``cluster`` default to the process-wide cluster from configuration (created on
    the first run, not here: making a backend costs nothing). ``calibration_resolver`` turns
    ``noise="calibration:<id>"`` into a Calibration (default: ask the QPU service).
    """

    def __init__(
        self, *, client: Client | None = None, cluster: Cluster | None = None,
        calibration_resolver: CalibrationResolver = qpu_calibration,
    ) -> None:
        super().__init__(name="qmio_emulator", description="QMIO HPC emulator (qiskit-aer on Dask)",
                         backend_version="1")
        self._client = client
        self._cluster = cluster
        self._resolver = calibration_resolver
        self._target: Target | None = None

    @classmethod
    def _default_options(cls) -> Options:
        return Options(
            shots=int(config.get("emulator.default_shots")), noise=None, method=None,
            precision=None, seed_simulator=None, callback=None,
        )

    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = Target.from_configuration(
                basis_gates=list(BASIS_GATES), num_qubits=self.max_qubits,
            )
        return self._target

    @property
    def max_qubits(self) -> int:
        return int(config.get("emulator.max_qubits"))

    @property
    def max_circuits(self) -> None:
        return None

    # ---- the cluster ------------------------------------------------------------------------
    def client(self) -> Client:
        return self._client if self._client is not None else clusters.get_client()

    def _cluster_in_use(self) -> Cluster | None:
        if self._client is not None:
            return self._cluster
        return clusters.get_cluster()

    def worker_memory(self) -> int:
        """Memory limit (bytes) of the largest worker the cluster has or will start."""
        client = self.client()
        limits = clusters.worker_memory_limits(client, self._cluster_in_use())
        if not limits:
            timeout = 60
            try:
                client.wait_for_workers(1, timeout=timeout)
            except TimeoutError as exc:
                raise EmulatorClusterError(
                    f"no emulator worker connected within {timeout} s; check the cluster "
                    "(for SLURM: squeue shows whether the worker jobs are pending)"
                ) from exc
            limits = clusters.worker_memory_limits(client, self._cluster_in_use())
        return max(limits)

    # ---- running ------------------------------------------------------------------------------
    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any) -> EmulatorJob:
        """Emulate circuits; options: shots, noise (None, a Calibration or "calibration:<id>"),
        method (None: chosen per circuit), precision, seed_simulator, callback(done, total)."""
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        opts = self._options_for(options)
        self._check(circuits, opts["shots"])
        noise = resolve_noise(opts["noise"], self._resolver)
        client = self.client()
        largest = self.worker_memory()
        widths, methods = [], []
        precision = opts["precision"] or str(config.get("emulator.memory.precision"))
        for circuit in circuits:
            est = estimate(circuit, opts["method"], precision, largest)
            check_fits(circuit, est, largest)
            widths.append(est.num_qubits)
            methods.append(est.method)
        n_workers = max(len(client.scheduler_info(n_workers=-1)["workers"]), 1)
        batches = plan_batches(widths, n_workers, keys=methods)
        base = BatchSpec(shots=opts["shots"], method=methods[0], precision=precision,
                         seed=opts["seed_simulator"], noise=noise, memory_limit=largest)
        specs = specs_for(batches, base, methods, widths)
        job_id = str(uuid.uuid4())
        retries = int(config.get("emulator.retries"))

        def launch() -> Sweep:
            return Sweep(client, circuits, batches, specs, retries=retries,
                         callback=opts["callback"], name=job_id)

        metadata: dict[str, Any] = {"num_circuits": len(circuits), "shots": opts["shots"]}
        if noise is not None:
            metadata["calibration_id"] = noise.id
        job = EmulatorJob(self, job_id, launch, metadata)
        job.submit()
        return job

    def _options_for(self, options: dict[str, Any]) -> dict[str, Any]:
        known = self.options.__dict__
        unknown = set(options) - set(known)
        if unknown:
            raise TypeError(f"unknown run option(s) {sorted(unknown)}; known: {sorted(known)}")
        return {**known, **options}

    def _check(self, circuits: list[Any], shots: Any) -> None:
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
            raise InvalidShotsError(f"shots must be a positive integer, got {shots!r}")
        if not circuits:
            raise InvalidCircuitError("nothing to run: pass at least one circuit")
        for circuit in circuits:
            if not isinstance(circuit, QuantumCircuit):
                raise InvalidCircuitError(f"expected QuantumCircuit, got {type(circuit).__name__}")
            if circuit.num_qubits > self.max_qubits:
                raise InvalidCircuitError(
                    f"circuit {circuit.name!r} uses {circuit.num_qubits} qubits; the emulator "
                    f"accepts at most {self.max_qubits} (qmio.emulator.max_qubits)"
                )
