"""Qiskit V2 primitives on both targets: code written for Qiskit primitives runs unchanged.

``SamplerV2(mode)`` / ``EstimatorV2(mode)`` take a target name (``"qpu"``, ``"emulator"``,
``"simulator"``), a backend, or a :class:`~qmio_lab.sessions.Session`. Without a session each
primitive keeps its own template cache, so a loop still transpiles each circuit once.

Readout-error mitigation is an option, named as Qiskit Runtime names it:
``EstimatorV2(mode, options={"resilience_level": 1})``, or ``measure_mitigation=True``, or
``estimator.options.resilience.measure_mitigation = True``. It corrects each circuit's counts
with mthree (:mod:`qmio_lab.mitigation`) from the calibration's readout errors, or from mthree's
own calibration circuits with ``resilience.measure_calibration = "measure"``. The Sampler keeps
its raw shots and adds the corrected quasi-distributions to each result's metadata.
"""
from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np
from qiskit.primitives import (
    BaseEstimatorV2, BaseSamplerV2, BitArray, DataBin, PrimitiveJob, PrimitiveResult, PubResult,
    SamplerPubResult,
)
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.primitives.containers.sampler_pub import SamplerPub, SamplerPubLike
from qiskit.providers import BackendV2

from qmio_lab import config
from qmio_lab.bit_arrays import register_bit_arrays
from qmio_lab.device.rules import has_measurement
from qmio_lab.mitigation import SOURCES, ReadoutMitigator, measured_qubits
from qmio_lab.observables import group_paulis, pauli_expectations
from qmio_lab.sessions import Session, Template, circuit_digest

Mode = str | BackendV2 | Session


def _as_session(mode: Mode) -> Session:
    return mode if isinstance(mode, Session) else Session(mode, reserve=False)


def _rows(template: Template, bindings) -> tuple[np.ndarray | None, tuple[int, ...]]:
    """Parameter rows in the template's parameter order, and the bindings' shape."""
    params = list(template.circuit.parameters)
    shape = tuple(bindings.shape)
    if not params:
        return None, shape
    rows = bindings.as_array(params).reshape(-1, len(params))
    return rows, shape


def _target_shots(backend: BackendV2) -> int:
    """The target's own default: qmio.device.default_shots (QPU, simulator) or
    qmio.emulator.default_shots, as the backend's default options read them."""
    shots = getattr(type(backend)._default_options(), "shots", None)
    return int(shots) if shots else int(config.get("device.default_shots"))


def _run_by_shots(session: Session, work: list[tuple[Template, np.ndarray | None, int]],
                  spent: list[float] | None = None) -> list[list[dict[str, int]]]:
    """Counts for each (template, parameter rows, shots), one job per distinct shot count:
    a list per item, one dict per row (one when it has no rows); ``spent`` gets each QPU job's
    QPU seconds."""
    out: list[list[dict[str, int]]] = [[] for _ in work]
    for shots in sorted({item[2] for item in work}):
        idx = [i for i, item in enumerate(work) if item[2] == shots]
        flat = session.run_templates([(work[i][0], work[i][1]) for i in idx], shots, spent=spent)
        pos = 0
        for i in idx:
            n = 1 if work[i][1] is None else len(work[i][1])
            out[i] = flat[pos:pos + n]
            pos += n
    return out


def _run_metadata(session: Session, spent: list[float]) -> dict[str, Any]:
    """A run's metadata; on the QPU with its cost as Qiskit Runtime reports it (``usage``):
    the QPU seconds its jobs held."""
    metadata: dict[str, Any] = {"version": 2, "target": session.target_name}
    if session.is_qpu:
        metadata["usage"] = {"quantum_seconds": round(sum(spent), 6), "jobs": len(spent)}
    return metadata


@dataclass
class ResilienceOptions:
    """``measure_mitigation``: correct readout errors (None: as ``resilience_level`` says);
    ``measure_calibration``: their matrices from the ``"calibration"`` in force, or
    ``"measure"`` them with mthree's circuits (``measure_calibration_shots`` each)."""

    measure_mitigation: bool | None = None
    measure_calibration: str = "calibration"
    measure_calibration_shots: int | None = None


@dataclass
class SamplerOptions:
    default_shots: int | None = None
    resilience_level: int = 0
    resilience: ResilienceOptions = field(default_factory=ResilienceOptions)


@dataclass
class EstimatorOptions:
    default_precision: float = 0.015625
    resilience_level: int = 0
    resilience: ResilienceOptions = field(default_factory=ResilienceOptions)


def _read_options(cls: type, given: Any, **overrides: Any) -> Any:
    """``given`` (None, an options object or a nested dict as Qiskit Runtime takes them) as
    ``cls``, keyword overrides applied; unknown names are refused with the known ones."""
    if given is None:
        given = {}
    if is_dataclass(given) and not isinstance(given, type):
        given = {f.name: getattr(given, f.name) for f in fields(given)}
    if not isinstance(given, Mapping):
        raise TypeError(f"options must be a dict or {cls.__name__}, not {type(given).__name__}")
    given = {**given, **{k: v for k, v in overrides.items() if v is not None}}
    resilience = given.pop("resilience", None)
    if "measure_mitigation" in given:  # a shortcut for resilience.measure_mitigation
        resilience = {**_as_dict(resilience), "measure_mitigation": given.pop("measure_mitigation")}
    names = {f.name for f in fields(cls)} - {"resilience"}
    unknown = sorted(set(given) - names)
    if unknown:
        close = [m for name in unknown for m in difflib.get_close_matches(name, sorted(names), n=1)]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown {cls.__name__.replace('Options', 'V2')} option(s) {unknown}{hint}; "
                         f"known: {sorted(names | {'resilience'})}")
    res = _as_dict(resilience)
    res_names = {f.name for f in fields(ResilienceOptions)}
    if set(res) - res_names:
        raise ValueError(f"unknown resilience option(s) {sorted(set(res) - res_names)}; known: {sorted(res_names)}")
    return cls(**given, resilience=ResilienceOptions(**res))


def _as_dict(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if is_dataclass(options) and not isinstance(options, type):
        return {f.name: getattr(options, f.name) for f in fields(options)}
    if isinstance(options, Mapping):
        return dict(options)
    raise TypeError(f"resilience options must be a dict or ResilienceOptions, not {type(options).__name__}")


class _Mitigation:
    """The readout mitigation an options object asks for, checked when a run starts (options
    may be changed between runs), with one mitigator per calibration source."""

    def __init__(self) -> None:
        self._mitigators: dict[tuple[str, int | None], ReadoutMitigator] = {}

    def for_run(self, options: Any, backend: BackendV2) -> ReadoutMitigator | None:
        level = options.resilience_level
        if level not in (0, 1):
            raise ValueError(f"resilience_level {level!r} is not available: 0 (none) or 1 (readout-error "
                             "mitigation) only")
        res = options.resilience
        on = res.measure_mitigation if res.measure_mitigation is not None else level >= 1
        if not isinstance(on, bool):
            raise ValueError(f"measure_mitigation must be True, False or None, not {on!r}")
        if not on:
            return None
        if res.measure_calibration not in SOURCES:
            raise ValueError(f"resilience.measure_calibration must be one of {SOURCES}, not {res.measure_calibration!r}")
        key = (res.measure_calibration, res.measure_calibration_shots)
        if key not in self._mitigators:
            self._mitigators[key] = ReadoutMitigator(backend, res.measure_calibration,
                                                     shots=res.measure_calibration_shots)
        self._mitigators[key].begin_run()
        return self._mitigators[key]


class SamplerV2(BaseSamplerV2):
    """Qiskit's SamplerV2 on a qmio_lab target. Pubs that share a shot count run as one job.
    With readout mitigation each pub result's ``metadata["quasi_dists"]`` holds one mthree
    ``QuasiDistribution`` per parameter binding (in C order), over all its classical bits."""

    def __init__(self, mode: Mode = "qpu", *, default_shots: int | None = None, seed: int | None = None,
                 options: SamplerOptions | Mapping[str, Any] | None = None,
                 measure_mitigation: bool | None = None, resilience_level: int | None = None) -> None:
        self.session = _as_session(mode)
        self.options = _read_options(SamplerOptions, options, default_shots=default_shots,
                                     measure_mitigation=measure_mitigation, resilience_level=resilience_level)
        if self.options.default_shots is None:
            self.options.default_shots = _target_shots(self.session.backend)
        self._rng = np.random.default_rng(seed)
        self._mitigation = _Mitigation()

    @property
    def default_shots(self) -> int:
        return self.options.default_shots

    @property
    def _backend(self) -> BackendV2:
        """The backend, where Qiskit's tools look for a sampler's (qiskit-experiments'
        ``exp.run(sampler=...)`` reads it, as ``BackendSamplerV2`` has it)."""
        return self.session.backend

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> PrimitiveJob[PrimitiveResult[SamplerPubResult]]:
        coerced = [SamplerPub.coerce(pub, shots or self.default_shots) for pub in pubs]
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs: list[SamplerPub]) -> PrimitiveResult[SamplerPubResult]:
        mitigator = self._mitigation.for_run(self.options, self.session.backend)
        planned = []
        for pub in pubs:
            if not has_measurement(pub.circuit):
                raise ValueError("a Sampler circuit needs measurements: add measure_all() or measure(...)")
            template = self.session.template(pub.circuit)
            rows, shape = _rows(template, pub.parameter_values)
            planned.append((pub, template, rows, shape))
        spent: list[float] = []
        counts_of = _run_by_shots(self.session, [(template, rows, pub.shots) for pub, template, rows, _ in planned],
                                  spent)
        results = [self._pub_result(template, counts_of[i], shape, pub, mitigator)
                   for i, (pub, template, _, shape) in enumerate(planned)]
        return PrimitiveResult(results, metadata=_run_metadata(self.session, spent))

    def _pub_result(self, template: Template, counts: list[dict[str, int]], shape, pub: SamplerPub,
                    mitigator: ReadoutMitigator | None = None) -> SamplerPubResult:
        cregs = template.circuit.cregs
        arrays = {creg.name: np.zeros(shape + (pub.shots, max(math.ceil(creg.size / 8), 1) if creg.size else 0),
                                      np.uint8) for creg in cregs}
        for index, c in zip(np.ndindex(*shape), counts):
            for name, bits in register_bit_arrays(c, cregs, self._rng).items():
                arrays[name][index] = bits.array
        data = DataBin(**{creg.name: BitArray(arrays[creg.name], creg.size) for creg in cregs}, shape=shape)
        metadata: dict[str, Any] = {"shots": pub.shots, "circuit_metadata": pub.circuit.metadata}
        if mitigator is not None:
            qubits = measured_qubits(template.circuit)
            metadata["quasi_dists"] = [mitigator.correct(c, qubits) for c in counts]
            metadata["measure_mitigation"] = mitigator.source
        return SamplerPubResult(data, metadata=metadata)




class EstimatorV2(BaseEstimatorV2):
    """Qiskit's EstimatorV2 on a qmio_lab target: each pub's Paulis grouped into as few measured
    circuits as commute; pubs that share a shot count run as one job. With readout mitigation
    every group's counts are corrected (mthree) before its expectations are taken, and the
    standard errors grow by mthree's mitigation overhead."""

    def __init__(self, mode: Mode = "qpu", *, default_precision: float | None = None,
                 options: EstimatorOptions | Mapping[str, Any] | None = None,
                 measure_mitigation: bool | None = None, resilience_level: int | None = None) -> None:
        self.session = _as_session(mode)
        self.options = _read_options(EstimatorOptions, options, default_precision=default_precision,
                                     measure_mitigation=measure_mitigation, resilience_level=resilience_level)
        self._mitigation = _Mitigation()

    @property
    def default_precision(self) -> float:
        return self.options.default_precision

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> PrimitiveJob[PrimitiveResult[PubResult]]:
        coerced = [EstimatorPub.coerce(pub, precision or self.default_precision) for pub in pubs]
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs: list[EstimatorPub]) -> PrimitiveResult[PubResult]:
        mitigator = self._mitigation.for_run(self.options, self.session.backend)
        plans = []
        work: list[tuple[Template, np.ndarray | None, int]] = []
        cut: dict[int, PubResult] = {}
        worker_memory: dict[str, int] = {}  # asked of the cluster once a run, when a pub needs it
        for i, pub in enumerate(pubs):
            if _asks_for_cuts(pub.circuit) or _too_wide_for_a_worker(self.session.backend, pub.circuit, worker_memory):
                cut[i] = _cut_pub_result(self.session.backend, pub)
                continue
            shots = max(math.ceil(1.0 / pub.precision**2), 1)
            observables = pub.observables.ravel()
            groups = group_paulis(label for obs in observables for label in obs)
            digest = circuit_digest(pub.circuit)  # once per call: it serialises the circuit
            base = self.session.template(pub.circuit, digest)
            rows, pshape = _rows(base, pub.parameter_values)
            first = len(work)
            for group in groups:
                work.append((self.session.measured(pub.circuit, group, digest), rows, shots))
            plans.append((i, (pub, groups, first, pshape, shots)))
        spent: list[float] = []
        counts = _run_by_shots(self.session, work, spent) if work else []
        results = dict(cut)
        results.update({i: self._pub_result(plan, counts, work, mitigator) for i, plan in plans})
        return PrimitiveResult([results[i] for i in range(len(pubs))], metadata=_run_metadata(self.session, spent))

    def _pub_result(self, plan, counts: list[list[dict[str, int]]], work, mitigator: ReadoutMitigator | None) -> PubResult:
        pub, groups, first, pshape, shots = plan
        nbind = int(np.prod(pshape)) if pshape else 1
        expectations: list[dict[str, float]] = [{} for _ in range(nbind)]
        overheads: list[dict[str, float]] = [{} for _ in range(nbind)]
        for g, group in enumerate(groups):
            circuit = work[first + g][0].circuit
            qubits = measured_qubits(circuit, circuit.cregs[-1]) if mitigator is not None else None
            for b, c in enumerate(counts[first + g]):
                overhead = 1.0
                if mitigator is not None:
                    c, overhead = _mitigated_counts(mitigator, c, qubits)
                for label, (value, _) in pauli_expectations(c, group).items():
                    expectations[b][label] = value
                    overheads[b][label] = overhead
        evs, stds = _evs_and_stds(pub, pshape, expectations, shots, overheads)
        data = DataBin(evs=evs, stds=stds, shape=evs.shape)
        metadata = {"target_precision": pub.precision, "shots": shots, "circuit_metadata": pub.circuit.metadata}
        if mitigator is not None:
            metadata["measure_mitigation"] = mitigator.source
        return PubResult(data, metadata=metadata)


def _evs_and_stds(pub: EstimatorPub, pshape: tuple[int, ...], values: list[dict[str, float]], shots: int,
                  overheads: list[dict[str, float]] | None = None, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A pub's expectation values and standard errors, broadcast over observables × bindings,
    from each binding's Pauli values. A Pauli's variance is its second moment (1, or mthree's
    mitigation overhead) less its value squared; ``scale`` multiplies them all (a cut's sampling
    overhead)."""
    obs_flat = pub.observables.ravel()
    nbind = int(np.prod(pshape)) if pshape else 1
    bshape = np.broadcast_shapes(pub.observables.shape, pshape)
    obs_index = np.broadcast_to(np.arange(max(pub.observables.size, 1)).reshape(pub.observables.shape), bshape)
    par_index = np.broadcast_to(np.arange(nbind).reshape(pshape), bshape)
    evs, stds = np.zeros(bshape), np.zeros(bshape)
    for idx in np.ndindex(*bshape):
        table = values[int(par_index[idx])]
        moments = overheads[int(par_index[idx])] if overheads is not None else {}
        ev, var = 0.0, 0.0
        for label, coeff in obs_flat[int(obs_index[idx])].items():
            identity = set(label) == {"I"}
            value = 1.0 if identity else float(table[label])
            ev += float(np.real(coeff)) * value
            if not identity:
                var += abs(coeff) ** 2 * max(moments.get(label, 1.0) - value**2, 0.0)
        evs[idx] = ev
        stds[idx] = math.sqrt(var * scale / shots)
    return evs, stds


def _asks_for_cuts(circuit: Any) -> bool:
    """The circuit's metadata names its parts (``partition_labels``, one per qubit): it is cut
    there, whatever its width, with the parts run where ``cut_targets`` says (label -> "qpu" or
    "emulator"; by default the Estimator's own target)."""
    return bool((getattr(circuit, "metadata", None) or {}).get("partition_labels"))


def _too_wide_for_a_worker(backend: BackendV2, circuit: Any, worker_memory: dict[str, int]) -> bool:
    """An emulator pub whose circuit no worker can hold as a statevector or an MPS: it is cut.
    ``worker_memory`` keeps the largest worker's memory for the run's other pubs (one scheduler
    round trip a run, not one a pub). The emulator is not imported for other backends: importing
    distributed off the main thread (primitive jobs run in one) fails on its signal handlers."""
    emulator = sys.modules.get("qmio_lab.emulator.backend")
    if emulator is None or not isinstance(backend, emulator.EmulatorBackend) or circuit.num_qubits < 2:
        return False
    from qmio_lab.emulator.memory import estimate, fits

    if circuit.num_qubits > backend.max_qubits:
        return True
    if "largest" not in worker_memory:
        worker_memory["largest"] = backend.worker_memory()
    largest = worker_memory["largest"]
    return not fits(estimate(circuit, None, None, largest), largest)


def _cut_pub_result(backend: BackendV2, pub: EstimatorPub) -> PubResult:
    """A pub estimated by circuit cutting (qmio_lab.emulator.cutting), one cut run per parameter
    binding for every Pauli its observables name, along the parts its circuit's metadata names
    (else where find_cuts puts them); the plan and where it ran go in the metadata."""
    from qmio_lab.emulator import cutting

    obs_flat = pub.observables.ravel()
    labels = sorted({label for obs in obs_flat for label in obs if set(label) != {"I"}})
    asked = pub.circuit.metadata or {}
    rows, pshape = pub.parameter_values.as_array(), pub.parameter_values.shape
    nbind = int(np.prod(pshape)) if pshape else 1
    flat_rows = rows.reshape(nbind, -1) if rows.size else None
    tables, estimates = [], []
    for b in range(nbind):
        circuit = pub.circuit if flat_rows is None else pub.circuit.assign_parameters(flat_rows[b])
        if labels:
            found = cutting.estimate(circuit, labels, backend=backend, precision=pub.precision,
                                     partition_labels=asked.get("partition_labels"), targets=asked.get("cut_targets"))
            estimates.append(found)
            tables.append(dict(zip(labels, found.values)))
        else:
            tables.append({})
    plan = estimates[0].plan if estimates else None
    shots = estimates[0].shots if estimates else 1
    evs, stds = _evs_and_stds(pub, pshape, tables, shots, scale=plan.sampling_overhead if plan else 1.0)
    metadata: dict[str, Any] = {"target_precision": pub.precision, "circuit_metadata": pub.circuit.metadata}
    if plan is not None:
        metadata.update(shots=estimates[0].shots, cutting={
            "plan": plan.describe(), "num_cuts": plan.num_cuts, "sampling_overhead": plan.sampling_overhead,
            "subexperiments": plan.num_subexperiments, "subcircuit_qubits": plan.subcircuit_qubits,
            "ran_on": estimates[0].ran_on, "calibration_ids": estimates[0].metadata["calibration_ids"],
            "where": estimates[0].where(), "job_ids": [job for e in estimates for job in e.metadata["job_ids"].values()]})
    return PubResult(DataBin(evs=evs, stds=stds, shape=evs.shape), metadata=metadata)


def _mitigated_counts(mitigator: ReadoutMitigator, counts: dict[str, int], qubits: list[int]) -> tuple[dict[str, float], float]:
    """A group circuit's counts over its ``meas`` register (the leftmost) corrected: the
    quasi-probabilities scaled to the shots, as counts, and mthree's mitigation overhead."""
    meas: dict[str, int] = {}
    for key, n in counts.items():
        bits = key.split(" ")[0]
        meas[bits] = meas.get(bits, 0) + n
    quasi = mitigator.correct(meas, qubits)
    shots = sum(meas.values())
    return {k: v * shots for k, v in quasi.items()}, float(quasi.mitigation_overhead)
