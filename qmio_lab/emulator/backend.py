"""``EmulatorBackend``: the HPC emulator target, qiskit-aer fanned out over Dask workers.

Noiseless by default; ``noise=`` replays the QPU's noise from a calibration snapshot. Each
circuit's memory is estimated before anything is submitted, so a circuit too large for every
worker is refused with a message instead of killing a worker.

Qiskit's generic tools take it as they take ``AerSimulator``: ``memory=True`` gives per-shot
bitstrings, options it does not use are ignored with a warning (:mod:`.options`), gates Aer does
not know are unrolled (:mod:`.decompose`), and it can be deep-copied and pickled at any time
(qiskit-experiments copies the backends it is given): the Dask connection is not part of its
state, and it reconnects on first use.
"""
from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

from distributed import Client
from distributed.deploy import Cluster
from qiskit import QuantumCircuit
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target

from qmio_lab import config
from qmio_lab.backend_configuration import BackendConfiguration, configuration_of
from qmio_lab.compilation import EMULATOR_BASIS_GATES
from qmio_lab.device.calibration import Calibration
from qmio_lab.emulator import cluster as clusters
from qmio_lab.emulator import decompose, options as emulator_options, wire
from qmio_lab.emulator.job import EmulatorJob
from qmio_lab.emulator.memory import STATEVECTOR, check_fits, estimate
from qmio_lab.emulator.replay import CalibrationResolver, qpu_calibration, resolve_noise
from qmio_lab.emulator.runner import Sweep, plan_batches, specs_for
from qmio_lab.emulator.tasks import BatchSpec
from qmio_lab.errors import EmulatorClusterError, InvalidCircuitError

#: Every gate Aer simulates natively that Qiskit names as a standard gate: transpiling for the
#: emulator then rewrites as little as possible.
BASIS_GATES = EMULATOR_BASIS_GATES

#: The Dask clients (and clusters) handed to backends in this process, by a token the backend's
#: state carries: a copy or an unpickled backend in the same process uses the same connection;
#: in another process (the client gone) it connects to the scheduler's address instead.
_CONNECTIONS: dict[str, tuple[weakref.ref, Any]] = {}
_CONNECTIONS_LOCK = threading.Lock()


def _register(client: Client, cluster: Cluster | None) -> str:
    token = uuid.uuid4().hex
    cluster_ref = None if cluster is None else weakref.ref(cluster)
    with _CONNECTIONS_LOCK:
        _CONNECTIONS[token] = (weakref.ref(client, lambda _ref: _forget(token)), cluster_ref)
    return token


def _forget(token: str) -> None:
    with _CONNECTIONS_LOCK:
        _CONNECTIONS.pop(token, None)


def _registered(token: str) -> tuple[Client | None, Cluster | None]:
    with _CONNECTIONS_LOCK:
        refs = _CONNECTIONS.get(token)
    if refs is None:
        return None, None
    client = refs[0]()
    cluster = refs[1]() if refs[1] is not None else None
    if client is None or client.status in ("closed", "closing"):
        return None, None
    return client, cluster


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
        # how a copy finds this connection again (None: the process-wide cluster)
        self._token = _register(client, cluster) if client is not None else None
        self._address = _scheduler_address(client)
        self._lock = threading.Lock()

    # ---- copies and pickles -----------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the connection (a Dask client holds sockets and threads)."""
        state = self.__dict__.copy()
        for name in ("_client", "_cluster", "_target", "_lock"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client = self._cluster = None
        self._target = None
        self._lock = threading.Lock()

    @classmethod
    def _default_options(cls) -> Options:
        return Options(
            shots=int(config.get("emulator.default_shots")), noise=None, method=None,
            precision=None, seed_simulator=None, callback=None, memory=False, parameter_binds=None,
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

    def noise_calibration(self) -> Calibration | None:
        """The calibration whose noise runs replay (the ``noise`` option), or None: noiseless."""
        return resolve_noise(self.options.noise, self._resolver)

    def configuration(self) -> BackendConfiguration:
        """What BackendV1-era tools (mthree) read: a simulator."""
        return configuration_of(self, max_shots=None, simulator=True)

    @property
    def max_circuits(self) -> None:
        return None

    # ---- the cluster ------------------------------------------------------------------------
    def client(self) -> Client:
        """The Dask client this backend runs on: the one it was given (found again after a copy
        or a pickle: in the same process the same client, in another one a new connection to its
        scheduler), else the process-wide cluster's."""
        with self._lock:
            if self._client is None and self._token is not None:
                self._client, self._cluster = _registered(self._token)
                if self._client is None and self._address is not None:
                    self._client = self._connect(self._address)
            if self._client is not None and self._client.status in ("closed", "closing") \
                    and self._address is not None and self._token is not None:
                self._client = self._connect(self._address)
            if self._client is not None:
                return self._client
        return clusters.get_client()

    def _connect(self, address: str) -> Client:
        try:
            client = Client(address, set_as_default=False, security=clusters.client_security(address))
        except OSError as exc:
            raise EmulatorClusterError(
                f"this emulator backend ran on the Dask scheduler at {address}, which cannot be "
                f"reached now ({exc}); make a new backend with a running client"
            ) from exc
        self._token = _register(client, None)
        return client

    def _cluster_in_use(self) -> Cluster | None:
        self.client()
        if self._token is not None:  # a client of its own: the cluster given with it, if any
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
        method (None: chosen per circuit), precision, seed_simulator, memory (per-shot
        bitstrings), parameter_binds (as qiskit-aer's), callback(done, total). Any other option
        is ignored with a warning (Qiskit's tools pass options meant for other backends)."""
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        opts = emulator_options.read(self.options.__dict__, options)
        self._check(circuits)
        circuits = emulator_options.bind(circuits, opts["parameter_binds"])
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
        encoded, unroll = _prepare(circuits, methods, plain=noise is None)
        running = len(client.scheduler_info(n_workers=-1)["workers"])
        n_workers = max(running, clusters.adaptive_maximum(self._cluster_in_use()) or 0, 1)
        batches = plan_batches(widths, n_workers, keys=methods)
        base = BatchSpec(shots=opts["shots"], method=methods[0], precision=precision,
                         seed=opts["seed_simulator"], noise=noise, memory_limit=largest,
                         memory=opts["memory"])
        specs = specs_for(batches, base, methods, widths, unroll)
        job_id = str(uuid.uuid4())
        retries = int(config.get("emulator.retries"))

        def launch() -> Sweep:
            return Sweep(client, circuits, batches, specs, retries=retries,
                         callback=opts["callback"], name=job_id, encoded=encoded)

        metadata: dict[str, Any] = {"num_circuits": len(circuits), "shots": opts["shots"]}
        if noise is not None:
            metadata["calibration_id"] = noise.id
        job = EmulatorJob(self, job_id, launch, metadata)
        job.submit()
        return job

    def _check(self, circuits: list[Any]) -> None:
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


def _scheduler_address(client: Client | None) -> str | None:
    if client is None:
        return None
    try:
        return str(client.scheduler.address)
    except AttributeError:
        return None


def _prepare(circuits: Sequence[QuantumCircuit], methods: Sequence[str],
             plain: bool) -> tuple[list[wire.PlainCircuit | None], list[bool]]:
    """Each circuit's plain form (None where it has none, or ``plain`` is False) and whether it
    needs unrolling for Aer. A circuit that does is counted here, before anything is sent, so
    one whose definitions expand past ``qmio.emulator.max_operations`` is refused at once
    rather than tying up a worker."""
    encoded: list[wire.PlainCircuit | None] = []
    unroll: list[bool] = []
    for circuit, method in zip(circuits, methods):
        known = decompose.aer_names(method)
        form = wire.encode(circuit) if plain and wire.AVAILABLE else None
        if form is not None and method != STATEVECTOR and any(op[0] not in known for op in form.ops):
            form = None  # a gate this method lacks (a matrix product state has no crx): unroll it
        needs = form is None and decompose.needs_unrolling(circuit, known)
        if needs:
            decompose.unrolled_size(circuit, known)
        encoded.append(form)
        unroll.append(needs)
    return encoded, unroll
