"""Expectation values of circuits wider than one worker, by circuit cutting.

A 34-qubit statevector needs 256 GiB; two 17-qubit halves need 2 MiB each. qiskit-addon-cutting
replaces the gates (or wires) between the halves by quasi-probability decompositions: many small
subexperiments whose results recombine into the wide circuit's expectation values, at a cost in
shots (the sampling overhead, the square of the decomposition's 1-norm). Here the subexperiments
run as an ordinary emulator job, so Dask batches them over the workers, retries a batch whose
worker was lost, and scales an adaptive cluster as for any other job.

The subexperiments measure mid-circuit (the decompositions' measure channels) and reset wires.
Aer simulates such a circuit shot by shot (22 ms a shot at 17 qubits), so before they run each
is rewritten by the deferred-measurement principle: a mid-circuit measurement becomes a CX onto
a fresh qubit measured at the end, and a reset moves the wire onto a fresh qubit. The outcome
distribution is the same; the circuit is unitary up to its final measurements, so Aer samples
all its shots from one statevector (0.03 s for 4000 shots).
"""
from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, QuantumRegister
from qiskit.primitives import DataBin, PrimitiveResult, SamplerPubResult
from qiskit.quantum_info import PauliList, SparsePauliOp
from qiskit_addon_cutting import (
    cut_wires, expand_observables, generate_cutting_experiments, partition_problem,
    reconstruct_expectation_values,
)
from qiskit_addon_cutting.automated_cut_finding import DeviceConstraints, OptimizationParameters, find_cuts

from qmio_lab import config
from qmio_lab.bit_arrays import register_bit_arrays
from qmio_lab.emulator.memory import widest_statevector
from qmio_lab.errors import CuttingError

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class CutPlan:
    """What a cut estimation will cost, known before anything runs."""

    num_qubits: int
    subcircuit_qubits: dict[Hashable, int]  # label -> width of that part
    num_cuts: int
    sampling_overhead: float  # shots needed / shots of the uncut circuit, for the same precision
    num_subexperiments: int
    found_by: str  # "labels" (the user's partition) or "find_cuts"

    def describe(self) -> str:
        parts = ", ".join(f"{label}: {n} qubits" for label, n in self.subcircuit_qubits.items())
        return (f"{self.num_qubits} qubits cut {self.num_cuts} times into {len(self.subcircuit_qubits)} parts "
                f"({parts}); {self.num_subexperiments} subexperiments, sampling overhead "
                f"{self.sampling_overhead:.0f}")


@dataclass
class CutEstimate:
    """The reconstructed expectation values and where the work ran."""

    values: np.ndarray  # one per observable, in the order given
    plan: CutPlan
    shots: int  # per subexperiment
    wall_s: float
    ran_on: dict[Hashable, str] = field(default_factory=dict)  # label -> target (e.g. "emulator")
    metadata: dict[str, Any] = field(default_factory=dict)

    def where(self) -> str:
        """Which part ran where, in words: the QPU's calibration, the emulator's workers."""
        lines = []
        for label, target in self.ran_on.items():
            runs = [r for r in self.metadata.get("runs", []) if r["part"] == label]
            head = f"part {label} ({self.plan.subcircuit_qubits[label]} qubits, {len(runs)} subexperiments): {target}"
            if target == "qpu":
                head += f", calibration {self.metadata.get('calibration_ids', {}).get(label)}"
            else:
                workers = sorted({str(r.get("slurm_job_id") or r.get("worker")) for r in runs})
                kind = "SLURM jobs" if any(r.get("slurm_job_id") for r in runs) else "workers"
                head += f" on {len(workers)} {kind} ({', '.join(workers)})"
            lines.append(head + f", job {self.metadata.get('job_ids', {}).get(label)}")
        return "\n".join(lines)


@dataclass
class _Problem:
    plan: CutPlan
    subexperiments: dict[Hashable, list[QuantumCircuit]]
    coefficients: list[tuple[float, Any]]
    subobservables: dict[Hashable, PauliList]


def _as_paulis(observables: SparsePauliOp | PauliList | Sequence[str] | str, num_qubits: int) -> PauliList:
    if isinstance(observables, str):
        observables = [observables]
    if isinstance(observables, SparsePauliOp):
        observables = observables.paulis
    paulis = PauliList(observables)
    if paulis.num_qubits != num_qubits:
        raise CuttingError(f"the observables act on {paulis.num_qubits} qubits but the circuit has {num_qubits}; "
                           "give one Pauli per qubit of the circuit")
    if np.any(paulis.phase):
        raise CuttingError("observables must be Paulis without a phase (as SparsePauliOp.paulis are); "
                           "put the coefficients in a SparsePauliOp")
    return paulis


def plan(
    circuit: QuantumCircuit, observables: SparsePauliOp | PauliList | Sequence[str],
    *, partition_labels: Sequence[Hashable] | str | None = None, qubits_per_subcircuit: int | None = None,
    seed: int | None = None, max_overhead: float | None = None,
) -> _Problem:
    """Cut ``circuit`` along the user's partition labels (one per qubit), or where find_cuts
    puts the fewest, cheapest cuts for parts of at most ``qubits_per_subcircuit`` qubits; refuse
    (check_plan) a cut beyond the overhead bound before its subexperiments are generated.
    A plan's subexperiment count is that of the QPD terms times the parts until they are made,
    then the number made (observables that do not commute need more than one basis a term)."""
    paulis = _as_paulis(observables, circuit.num_qubits)
    if circuit.num_clbits or any(inst.operation.name == "measure" for inst in circuit.data):
        raise CuttingError("circuit cutting estimates observables of a circuit without measurements; "
                           "remove them (circuit.remove_final_measurements())")
    if partition_labels is not None:
        labels = list(partition_labels)
        if len(labels) != circuit.num_qubits:
            raise CuttingError(f"partition_labels has {len(labels)} labels for {circuit.num_qubits} qubits; "
                               "give one per qubit, as in 'A' * 17 + 'B' * 17")
        problem = partition_problem(circuit=circuit, partition_labels=labels, observables=paulis)
        found_by = "labels"
    else:
        if qubits_per_subcircuit is None or qubits_per_subcircuit < 1:
            raise CuttingError("say how wide a part may be (qubits_per_subcircuit), or give partition_labels")
        bound = float(config.get("emulator.cutting.max_overhead") if max_overhead is None else max_overhead)
        optimization = OptimizationParameters(seed=seed if seed is not None else 0, max_gamma=bound ** 0.5)
        try:
            cut, _ = find_cuts(circuit, optimization, DeviceConstraints(qubits_per_subcircuit=qubits_per_subcircuit))
        except ValueError as exc:  # no cut within max_gamma
            raise CuttingError(f"no cuts split the circuit into parts of at most {qubits_per_subcircuit} qubits "
                               f"within the sampling overhead bound (qmio.emulator.cutting.max_overhead): {exc}") from exc
        with_wires = cut_wires(cut)
        paulis = expand_observables(paulis, circuit, with_wires)
        problem = partition_problem(circuit=with_wires, observables=paulis)
        found_by = "find_cuts"
    overhead = float(np.prod([basis.overhead for basis in problem.bases])) if problem.bases else 1.0
    terms = int(np.prod([len(basis.coeffs) for basis in problem.bases])) if problem.bases else 1
    cut_plan = CutPlan(
        num_qubits=circuit.num_qubits,
        subcircuit_qubits={label: sub.num_qubits for label, sub in problem.subcircuits.items()},
        num_cuts=len(problem.bases), sampling_overhead=overhead,
        num_subexperiments=terms * len(problem.subcircuits), found_by=found_by)
    check_plan(cut_plan, max_overhead)  # before the subexperiments (6**cuts of them a part) are made
    subexperiments, coefficients = generate_cutting_experiments(
        circuits=problem.subcircuits, observables=problem.subobservables, num_samples=np.inf)
    cut_plan = dataclasses.replace(cut_plan, num_subexperiments=sum(len(v) for v in subexperiments.values()))
    return _Problem(cut_plan, subexperiments, coefficients, problem.subobservables)


def check_plan(cut_plan: CutPlan, max_overhead: float | None = None) -> None:
    """Refuse, with the numbers, a cut whose sampling overhead is beyond the configured bound."""
    bound = float(config.get("emulator.cutting.max_overhead") if max_overhead is None else max_overhead)
    if cut_plan.sampling_overhead > bound:
        raise CuttingError(
            f"cutting this circuit needs {cut_plan.describe()}, beyond the bound of {bound:.0f} "
            f"(qmio.emulator.cutting.max_overhead): {cut_plan.sampling_overhead:.0f}x the shots for the same "
            "precision. Cut fewer gates (weaker coupling between the parts, or wider parts), or raise the bound."
        )


def defer_measurements(circuit: QuantumCircuit) -> QuantumCircuit:
    """The same outcome distribution from a circuit that only measures at its end.

    A measurement of a qubit that is used again becomes a CX onto a fresh qubit, measured last;
    a reset moves the wire onto a fresh qubit in |0>. Circuits with classical control are
    returned as they are (they cannot be rewritten this way)."""
    data = list(circuit.data)
    if any(inst.operation.name in ("if_else", "while_loop", "for_loop", "switch_case")
           or getattr(inst.operation, "condition", None) for inst in data):
        return circuit
    if not any(inst.operation.name in ("measure", "reset") for inst in data):
        return circuit
    touched_later: list[set] = [set()] * len(data)  # logical qubits used after instruction k
    later: set = set()
    for k in range(len(data) - 1, -1, -1):
        touched_later[k] = set(later)
        later |= set(data[k].qubits)
    extra = sum(1 for k, inst in enumerate(data) if inst.operation.name == "reset"
                or (inst.operation.name == "measure" and inst.qubits[0] in touched_later[k]))
    out = circuit.copy_empty_like()
    fresh = QuantumRegister(extra, "deferred") if extra else None
    if fresh is not None:
        out.add_register(fresh)
    wire = {q: q for q in circuit.qubits}  # logical qubit -> the qubit of ``out`` that carries it
    spare = iter(fresh or [])
    final = []
    for k, inst in enumerate(data):
        name = inst.operation.name
        if name == "reset":
            wire[inst.qubits[0]] = next(spare)
        elif name == "measure":
            q, c = inst.qubits[0], inst.clbits[0]
            if q in touched_later[k]:
                copy = next(spare)
                out.cx(wire[q], copy)
                final.append((copy, c))
            else:
                final.append((wire[q], c))
        else:
            out.append(inst.operation, [wire[q] for q in inst.qubits], inst.clbits)
    for q, c in final:
        out.measure(q, c)
    return out


Target = Any  # "emulator", "qpu" or a BackendV2 (an EmulatorBackend or a QPUBackend)


def estimate(
    circuit: QuantumCircuit, observables: SparsePauliOp | PauliList | Sequence[str],
    *, backend: Any = None, partition_labels: Sequence[Hashable] | str | None = None,
    targets: Mapping[Hashable, Target] | str | None = None,
    qubits_per_subcircuit: int | None = None, shots: int | None = None, precision: float | None = None,
    max_overhead: float | None = None, seed: int | None = None, callback: ProgressCallback | None = None,
) -> CutEstimate:
    """Expectation values of ``observables`` (Paulis) on ``circuit``, cut into parts that fit
    where they run: each part's subexperiments are one job, on the emulator (``backend``, by
    default the lab's emulator) or on the QPU.

    Without ``partition_labels`` the cuts are found for parts of ``qubits_per_subcircuit``
    qubits, else ``qmio.emulator.cutting.qubits_per_subcircuit``, else as wide as the widest
    worker holds (fewest cuts; narrower parts run faster but may need more), or the QPU's 32
    qubits when every part goes to the QPU. ``targets`` says where parts run: ``"qpu"`` for all
    of them, or ``{label: "qpu" | "emulator" | backend}`` (parts it does not name run on
    ``backend``). A QPU part runs as one queued job of the tunnel's, Hub's or token's user,
    compiled for the chip and noisy as the calibration in force says; its calibration is named
    in ``metadata["calibration_ids"]``. The plan (cuts, overhead, number of subexperiments) is
    checked against ``qmio.emulator.cutting.max_overhead``, and each part against the width of
    the machine it goes to, before anything runs. ``precision`` (a target standard error) sets
    the shots per subexperiment to overhead / precision², the shots that precision needs once
    the cut's overhead is paid; else ``shots``, else ``qmio.emulator.cutting.shots``.
    ``callback(done, total)`` hears of subexperiments as they finish."""
    from qmio_lab.emulator.backend import EmulatorBackend

    backend = backend or EmulatorBackend()
    if isinstance(targets, Mapping) and targets and partition_labels is None:
        raise CuttingError("targets name parts by their partition label: give partition_labels too, "
                           "or targets='qpu' to run every part on the QPU")
    qpu_only = targets == "qpu"
    if partition_labels is None and qubits_per_subcircuit is None:
        configured = config.get("emulator.cutting.qubits_per_subcircuit", None)
        qubits_per_subcircuit = (_backend_for("qpu", backend).num_qubits if qpu_only else
                                 int(configured) if configured else widest_statevector(backend.worker_memory()))
    problem = plan(circuit, observables, partition_labels=partition_labels,
                   qubits_per_subcircuit=qubits_per_subcircuit, seed=seed, max_overhead=max_overhead)
    labels = list(problem.subexperiments)
    unknown = set(targets) - set(labels) if isinstance(targets, Mapping) else set()
    if unknown:
        raise CuttingError(f"targets name parts {sorted(map(str, unknown))} that the partition does not have "
                           f"(its parts: {sorted(map(str, labels))})")
    where = {label: _backend_for(targets if qpu_only else (targets or {}).get(label, backend), backend)
             for label in labels}
    for label in labels:
        width, limit = problem.plan.subcircuit_qubits[label], where[label].num_qubits
        if _is_qpu(where[label]) and width > limit:
            raise CuttingError(f"part {label!r} has {width} qubits; the QPU has {limit}. Cut it into parts of at "
                               f"most {limit} qubits (more labels), or run it on the emulator")
    if precision is not None:
        shots = max(math.ceil(problem.plan.sampling_overhead / precision**2), 1)
    shots = int(shots if shots is not None else config.get("emulator.cutting.shots"))
    started = time.monotonic()
    jobs = _submit_parts(problem.subexperiments, where, shots, seed, callback)
    results: dict[Hashable, Any] = {}
    metadata: dict[str, Any] = {"job_ids": {}, "calibration_ids": {}, "runs": [],
                                "subexperiments": {label: len(problem.subexperiments[label]) for label in labels}}
    for job, parts, done in jobs:
        result = job.result()
        counts = result.get_counts()
        counts = counts if isinstance(counts, list) else [counts]
        offset = 0
        for label, circuits in parts:
            results[label] = _sampler_result(circuits, counts[offset:offset + len(circuits)])
            metadata["job_ids"][label] = job.job_id()
            offset += len(circuits)
            if _is_qpu(where[label]):
                metadata["calibration_ids"][label] = _calibration_of(result)
        metadata["runs"].extend(_runs(result, [label for label, circuits in parts for _ in circuits]))
        done()
    values = np.asarray(reconstruct_expectation_values(results, problem.coefficients, problem.subobservables))
    return CutEstimate(values=values, plan=problem.plan, shots=shots, wall_s=time.monotonic() - started,
                       ran_on={label: "qpu" if _is_qpu(where[label]) else "emulator" for label in labels},
                       metadata=metadata)


def _is_qpu(backend: Any) -> bool:
    from qmio_lab.qpu.backend import QPUBackend

    return isinstance(backend, QPUBackend)


def _backend_for(target: Target, emulator: Any) -> Any:
    if target == "emulator":
        return emulator
    if target == "qpu":
        import qmio_lab

        return qmio_lab.get_backend("qpu")
    if isinstance(target, str):
        raise CuttingError(f"unknown target {target!r} for a part: say 'qpu', 'emulator' or give a backend")
    return target


def _submit_parts(subexperiments: Mapping[Hashable, list[QuantumCircuit]], where: Mapping[Hashable, Any],
                  shots: int, seed: int | None, callback: ProgressCallback | None) -> list[tuple]:
    """One job per backend, holding the subexperiments of every part sent there (one job lets the
    emulator batch them all for its workers), all submitted before any is waited for, so the
    QPU's queue and the emulator's workers run at the same time. The emulator's circuits measure
    only at their end (:func:`defer_measurements`); the QPU measures mid-circuit as the hardware
    does. Returns, per job, the job, its parts (label, circuits) in order, and a function that
    reports the job done to ``callback``."""
    total = sum(len(v) for v in subexperiments.values())
    progress: dict[int, int] = {}
    lock = threading.Lock()

    def heard(key: int) -> Callable[[int, int], None]:
        def report(done: int, _total: int = 0) -> None:
            with lock:
                if done <= progress.get(key, 0):
                    return
                progress[key] = done
                now = sum(progress.values())
            if callback is not None:
                callback(now, total)
        return report

    groups: dict[int, list[Hashable]] = {}
    for label in subexperiments:
        groups.setdefault(id(where[label]), []).append(label)
    jobs = []
    for key, group in groups.items():
        target = where[group[0]]
        qpu = _is_qpu(target)
        parts = [(label, list(subexperiments[label]) if qpu else [defer_measurements(c) for c in subexperiments[label]])
                 for label in group]
        circuits = [c for _, part in parts for c in part]
        report = heard(key)  # the emulator's batches as they finish; a QPU job once it is done
        options: dict[str, Any] = {"shots": shots} if qpu else {"shots": shots, "seed_simulator": seed,
                                                                  "callback": report}
        jobs.append((target.run(circuits, **options), parts, lambda report=report, n=len(circuits): report(n)))
    return jobs


def _calibration_of(result: Any) -> str | None:
    """The calibration a QPU result ran with (every circuit of a job runs with the same one)."""
    for exp in result.results:
        found = (exp.metadata or {}).get("calibration_id")
        if found:
            return str(found)
    return getattr(result, "calibration_id", None)


_RUN_KEYS = ("worker", "host", "slurm_job_id", "batch", "batch_started", "batch_finished", "method")


def _runs(result: Any, labels: Sequence[Hashable]) -> list[dict[str, Any]]:
    """Where and when each subexperiment ran: its batch's worker and wall-clock times (epoch s)
    on the emulator; the QPU and its calibration for a QPU part."""
    return [{"part": label, **{k: (exp.metadata or {}).get(k) for k in _RUN_KEYS},
             **({"calibration_id": exp.metadata["calibration_id"]}
                if (exp.metadata or {}).get("calibration_id") else {})}
            for label, exp in zip(labels, result.results)]


def _sampler_result(circuits: Sequence[QuantumCircuit], counts: Sequence[dict[str, int]]) -> PrimitiveResult:
    """SamplerV2 results (a BitArray per classical register), as the reconstruction reads them."""
    return PrimitiveResult([SamplerPubResult(DataBin(**register_bit_arrays(c, circuit.cregs), shape=()))
                            for circuit, c in zip(circuits, counts)])


__all__ = ["CutEstimate", "CutPlan", "check_plan", "defer_measurements", "estimate", "plan"]
