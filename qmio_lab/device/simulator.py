"""``QmioSimulator``: the simulated QPU as an in-process Qiskit ``BackendV2`` ("fake QMIO").

It behaves like the hardware: it accepts only native gates on native ECR directions, refuses
what QMIO refuses, and samples with the noise of the calibration effective at run time.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

from qiskit import QuantumCircuit
from qiskit.providers import BackendV2, JobStatus, JobV1, Options
from qiskit.result import Result
from qiskit.transpiler import Target
from qiskit_aer import AerSimulator

from qmio_lab import config, run_options
from qmio_lab.backend_configuration import BackendConfiguration, configuration_of
from qmio_lab.device.calibration import Calibration, utc
from qmio_lab.device.compact import compact
from qmio_lab.device.device import QmioDevice
from qmio_lab.device.execution import run_noisy
from qmio_lab.device.rules import check_circuit, check_shots
from qmio_lab.errors import InvalidCircuitError

_CLOCK_RESOLUTION = timedelta(minutes=1)  # drift over a minute is far below shot noise


class QmioSimulatorJob(JobV1):
    """A job running on the in-process simulator's worker thread."""

    def __init__(self, backend: QmioSimulator, job_id: str, future: Future) -> None:
        super().__init__(backend, job_id)
        self._future = future

    def submit(self) -> None:  # work starts in QmioSimulator.run
        raise RuntimeError("QmioSimulatorJob starts when created by QmioSimulator.run()")

    def result(self, timeout: float | None = None) -> Result:
        return self._future.result(timeout=timeout)

    def cancel(self) -> bool:
        return self._future.cancel()

    def status(self) -> JobStatus:
        f = self._future
        if f.cancelled():
            return JobStatus.CANCELLED
        if f.running():
            return JobStatus.RUNNING
        if f.done():
            return JobStatus.ERROR if f.exception() else JobStatus.DONE
        return JobStatus.QUEUED


class QmioSimulator(BackendV2):
    """The simulated QMIO QPU as a local backend.

    ``at`` pins the device clock (useful to see a week-old calibration); by default each run
    uses the calibration effective at the moment it runs.
    """

    def __init__(self, device: QmioDevice | None = None, *, at: datetime | None = None) -> None:
        super().__init__(name="qmio_simulator", description="Simulated QMIO 32-qubit QPU", backend_version="1")
        self.device = device or QmioDevice()
        self._at = utc(at) if at is not None else None
        self._aer = AerSimulator()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qmio-sim")

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=int(config.get("device.default_shots")), seed_simulator=None, at=None, memory=False)

    def _clock(self, at: datetime | None = None) -> datetime:
        if at is not None:
            return utc(at)
        if self._at is not None:
            return self._at
        now = datetime.now(timezone.utc)
        step = now - (now - datetime.min.replace(tzinfo=timezone.utc)) % _CLOCK_RESOLUTION
        # never before the newest snapshot: one taken within this step is the one in force
        return max(step, min(self.device.calibration.taken_at, now))

    @property
    def target(self) -> Target:
        return self.device.target(self._clock())

    def configuration(self) -> BackendConfiguration:
        """What BackendV1-era tools (mthree) read: a simulator."""
        return configuration_of(self, max_shots=int(config.get("device.max_shots")), simulator=True)

    @property
    def max_circuits(self) -> int:
        return int(config.get("device.max_circuits"))

    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any) -> QmioSimulatorJob:
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        opts = run_options.merge("QMIO simulator", self.options.__dict__, options, stacklevel=3)
        shots = check_shots(run_options.integer("shots", opts["shots"]))
        opts["memory"] = run_options.flag("memory", opts["memory"], "per-shot outcomes in the result")
        opts["seed_simulator"] = run_options.seed(opts["seed_simulator"])
        if not circuits:
            raise InvalidCircuitError("nothing to run: pass at least one circuit")
        if len(circuits) > self.max_circuits:
            raise InvalidCircuitError(
                f"{len(circuits)} circuits in one job; the QPU accepts at most {self.max_circuits}. "
                "Split them into several jobs."
            )
        cal = self.device.calibration_at(self._clock(opts["at"]))
        for circuit in circuits:
            if not isinstance(circuit, QuantumCircuit):
                raise InvalidCircuitError(f"expected QuantumCircuit, got {type(circuit).__name__}")
            check_circuit(circuit, cal)  # the couplers this calibration has (a day may lack one)
        job_id = str(uuid.uuid4())
        future = self._pool.submit(self.execute, circuits, shots, cal, opts["seed_simulator"], job_id,
                                   opts["memory"])
        return QmioSimulatorJob(self, job_id, future)

    def execute(
        self, circuits: Iterable[QuantumCircuit], shots: int, cal: Calibration,
        seed: int | None = None, job_id: str = "", memory: bool = False,
    ) -> Result:
        """Sample already-validated circuits with the noise of ``cal``; results keep input order."""
        pairs = [compact(circuit, self.device.dt) for circuit in circuits]
        return self.execute_compact(pairs, shots, cal, seed, job_id, memory=memory)

    def execute_compact(
        self, pairs: Iterable[tuple[QuantumCircuit, tuple[int, ...]]], shots: int, cal: Calibration,
        seed: int | None = None, job_id: str = "", progress: Callable[[int], None] | None = None,
        memory: bool = False, backend_name: str | None = None,
    ) -> Result:
        """:meth:`execute` for circuits already passed through :func:`compact` (with their qubits),
        through :func:`~qmio_lab.device.execution.run_noisy` (the path the emulator's noise
        replay takes too); circuit ``i`` gets the seed ``seed + 2113·i``, as Aer gives a batch.

        With ``progress``, circuits run in chunks of about a quarter of a second each and
        ``progress(circuits done)`` follows every chunk, so a long job shows how far it is.
        ``memory`` adds each shot's outcome (Qiskit's ``memory=True``). ``backend_name`` names
        the backend the result is reported as coming from (the QPU service runs this simulator
        but its results are the ``qmio_qpu``'s); by default this simulator's own name.
        """
        results = run_noisy(self._aer, pairs, shots, cal, lambda qubits: self.device.noise_model(cal, qubits),
                            seed, dt=self.device.dt, progress=progress, memory=memory)
        return Result(
            backend_name=backend_name or self.name, backend_version=self.backend_version, job_id=job_id,
            success=True, results=results, date=datetime.now(timezone.utc).isoformat(),
            calibration_id=cal.id, calibration_age_s=cal.age.total_seconds(),
        )
