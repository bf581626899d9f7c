"""The queue service as a Qiskit ``BackendV2``: ``qmio_lab.get_backend("qpu")``.

The Target is built lazily from the service's calibration (making a backend costs no network
call) and pinned to that calibration id; :meth:`QPUBackend.refresh` takes a newer one.

Qiskit's generic tools take it as they take ``AerSimulator`` (issue 15): ``BackendSamplerV2``
passes ``memory=True`` and ``seed_simulator``, which the service honours (per-shot outcomes, a
job's own seed); qiskit-experiments and Qiskit Runtime's local mode pass options written for Aer
or IBM hardware (``init_qubits``, ``rep_delay``, ``noise_model``...), which are ignored with an
:class:`IgnoredOptionWarning` naming them, while a known option with a wrong value is refused
with what to pass. They also deep-copy the backend: its client keeps no socket in its state, so
a copy or a pickle works at any time and reconnects on first use.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.providers import BackendV2, JobStatus, JobV1, Options
from qiskit.result import Result
from qiskit.transpiler import Target

from qmio_lab import config, run_options
from qmio_lab.backend_configuration import BackendConfiguration, configuration_of
from qmio_lab.device.rules import check_shots
from qmio_lab.device.target import build_target
from qmio_lab.errors import InvalidCircuitError, QPUJobError, QPUServiceError
from qmio_lab.qpu.circuits import circuit_to_item
from qmio_lab.qpu.client import QPUClient

SEED_LIMIT = 2**32  # the service takes seeds from 0 to 2**32 - 1

_STATES = {
    "queued": JobStatus.QUEUED, "running": JobStatus.RUNNING, "done": JobStatus.DONE,
    "failed": JobStatus.ERROR, "cancelled": JobStatus.CANCELLED,
}


class QPUJob(JobV1):
    def __init__(self, backend: QPUBackend, job_id: str, client: QPUClient, record: dict[str, Any] | None = None):
        super().__init__(backend, job_id)
        self._client = client
        self.record = record or {}
        self._result: Result | None = None

    def submit(self) -> None:
        raise QPUJobError("QPU jobs are submitted by QPUBackend.run(); this one already is")

    def refresh(self, wait: float | None = None) -> dict[str, Any]:
        self.record = self._client.job(self.job_id(), wait=wait)
        return self.record

    def status(self) -> JobStatus:
        return _STATES[self.refresh()["state"]]

    def queue_position(self) -> int | None:
        return self.refresh().get("queue_position")

    def usage(self) -> float | None:
        """QPU seconds (device time) the job held, as the service charged them; None until it
        has ended (Qiskit Runtime's ``job.usage()``)."""
        record = self.record if self.record.get("state") in ("done", "failed", "cancelled") else self.refresh()
        return record.get("qpu_seconds")

    def metrics(self) -> dict[str, Any]:
        """Timestamps and QPU time as Qiskit Runtime's ``job.metrics()`` names them (``timestamps``:
        created, running, finished; ``usage``: quantum_seconds, seconds), with the estimate the
        service gave at admission."""
        record = self.refresh()
        return {"timestamps": record.get("timestamps"), "usage": record.get("usage"),
                "estimated_qpu_seconds": record.get("estimated_qpu_seconds"),
                "estimated_hardware_s": record.get("estimated_hardware_s"), "num_circuits": record.get("num_circuits"),
                "shots": record.get("shots"), "calibration_id": record.get("calibration_id"),
                "account": record.get("account")}

    def cancel(self) -> bool:
        try:
            self.record = self._client.cancel(self.job_id())
        except QPUServiceError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def result(self, timeout: float | None = None) -> Result:
        if self._result is None:
            try:
                body = self._client.wait_result(self.job_id(), timeout=timeout)
            except QPUServiceError as exc:
                if exc.status == 409:
                    self.refresh()
                    raise QPUJobError(f"job {self.job_id()} {self.record['state']}: "
                                      f"{self.record.get('error') or 'it has no result'}") from exc
                raise
            self._result = Result.from_dict(body)
        return self._result


class QPUBackend(BackendV2):
    def __init__(self, client: QPUClient | None = None, name: str = "qmio_qpu") -> None:
        super().__init__(name=name, description="QMIO QPU (simulated) behind the queue service", backend_version="1")
        self._client = client
        self._target: Target | None = None
        self.calibration_id: str | None = None

    @property
    def client(self) -> QPUClient:
        if self._client is None:
            from qmio_lab.qpu.launcher import default_client

            self._client = default_client()
        return self._client

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=int(config.get("device.default_shots")), optimization_level=1, priority=0, name=None,
                       memory=False, seed_simulator=None, parameter_binds=None)

    def refresh(self) -> Target:
        cal = self.client.calibration()
        self._target = build_target(cal, float(config.get("device.dt")))
        self.calibration_id = cal.id
        return self._target

    @property
    def target(self) -> Target:
        return self._target if self._target is not None else self.refresh()

    def configuration(self) -> BackendConfiguration:
        """What BackendV1-era tools (mthree) read: the QPU it stands for: not a simulator."""
        return configuration_of(self, max_shots=int(config.get("device.max_shots")), simulator=False)

    @property
    def max_circuits(self) -> int:
        return int(config.get("device.max_circuits"))

    def run(self, run_input: QuantumCircuit | str | Sequence[QuantumCircuit | str], **options: Any) -> QPUJob:
        """Queue circuits (or OpenQASM text) on the QPU. Options: shots, optimization_level,
        priority, name, memory (per-shot outcomes: ``result.get_memory()``), seed_simulator
        (the same seed and calibration give the same shots), parameter_binds (as qiskit-aer's:
        one ``{parameter: [values]}`` per circuit, each circuit run once per value). Any other
        option is ignored with an :class:`IgnoredOptionWarning`."""
        opts = read_options(self.options.__dict__, options)
        circuits = [run_input] if isinstance(run_input, (QuantumCircuit, str)) else list(run_input)
        fields = {"name": opts["name"], "priority": opts["priority"],
                  "optimization_level": opts["optimization_level"], "memory": opts["memory"],
                  "seed": opts["seed_simulator"]}
        if opts["parameter_binds"] is None:
            record = self.client.submit(circuits, shots=opts["shots"], **fields)
        else:
            items = bound_items(circuits, opts["parameter_binds"])
            record = self.client.submit_items(items, opts["shots"], **fields)
        return QPUJob(self, record["id"], self.client, record)


def read_options(known: Mapping[str, Any], given: Mapping[str, Any], *, stacklevel: int = 4) -> dict[str, Any]:
    """``known`` (the backend's options) updated with ``given``, values checked and made plain
    (numpy integers become ``int``, which JSON can carry); unknown names are dropped with one
    ``IgnoredOptionWarning`` (:mod:`qmio_lab.run_options`)."""
    opts = run_options.merge("QMIO QPU", known, given, stacklevel=stacklevel)
    opts["shots"] = check_shots(run_options.integer("shots", opts["shots"]))
    for name in ("priority", "optimization_level"):
        opts[name] = run_options.integer(name, opts[name])
        if type(opts[name]) is not int:
            raise ValueError(f"{name} must be an integer, not {opts[name]!r}")
    opts["memory"] = run_options.flag("memory", opts["memory"], "per-shot outcomes in the result")
    opts["seed_simulator"] = run_options.seed(opts["seed_simulator"], SEED_LIMIT)
    if opts["name"] is not None and not isinstance(opts["name"], str):
        raise ValueError(f"name must be a string, not {opts['name']!r}")
    return opts


def bound_items(circuits: Sequence[QuantumCircuit | str], binds: Any) -> list[dict[str, Any]]:
    """qiskit-aer's ``parameter_binds`` as the service's wire form: each circuit once, with one
    row of ``parameter_values`` per position in its value lists (in the order of the circuit's
    parameters, which is the order of its compiled template's), so the service compiles it
    once and runs it once per row, results in Aer's order."""
    if not isinstance(binds, Sequence) or isinstance(binds, (str, bytes)) or len(binds) != len(circuits):
        raise ValueError(f"parameter_binds must be a list of one dict {{parameter: [values]}} per circuit "
                         f"({len(circuits)} circuit(s)), not {str(binds)[:80]}")
    items = []
    for index, (circuit, table) in enumerate(zip(circuits, binds)):
        if not isinstance(circuit, QuantumCircuit):
            raise InvalidCircuitError(f"parameter_binds needs QuantumCircuit objects; circuit {index} is "
                                      f"{type(circuit).__name__}")
        if not isinstance(table, Mapping):
            raise ValueError(f"parameter_binds[{index}] must be a dict {{parameter: [values]}}, not {table!r}")
        item = circuit_to_item(circuit)
        if not table:
            items.append(item)
            continue
        params = list(circuit.parameters)
        missing = [p.name for p in params if p not in table]
        extra = [str(p) for p in table if p not in set(params)]
        if missing or extra:
            raise InvalidCircuitError(
                f"parameter_binds[{index}] must give values for exactly the parameters of circuit "
                f"{circuit.name!r}: missing {missing}, not in it {extra}")
        columns = [[float(v) for v in table[p]] for p in params]
        lengths = {len(c) for c in columns}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"parameter_binds[{index}] gives value lists of lengths {sorted(lengths)}; give "
                             "every parameter of a circuit the same (non-zero) number of values")
        items.append({**item, "parameter_values": [list(row) for row in zip(*columns)]})
    return items
