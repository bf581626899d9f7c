"""Circuits run under a calibration's noise: the one path for the QPU and for its replay.

The QPU's simulator process (through :meth:`QmioSimulator.execute_compact`) and the emulator's
noise replay (``qmio_lab.emulator.tasks``) both call :func:`run_noisy`, so a replay of a QPU
job runs the QPU's own physics: the same grouping by physical qubits, the same exact sampler
for circuits whose measurements all come at the end (:mod:`qmio_lab.device.sampling`), the
same Aer shot loop otherwise, and the same seeds.

Seeds: circuit ``i`` of a job seeded ``seed`` gets :func:`circuit_seed` ``(seed, i)``,
``seed + 2113·i``, which is qiskit-aer's own step between the circuits of one call. So any run
of consecutive circuits can be one Aer call, and the counts depend neither on how a job was
cut into batches or chunks nor on which other circuits share their qubits.

Memory: with ``memory=True`` every result also carries each shot's outcome (Qiskit's
``memory`` data: hex strings of the classical register, clbit 0 least significant, in the order
the shots were drawn), from the exact sampler and from Aer's shot loop alike.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.result.models import ExperimentResult

from qmio_lab import config
from qmio_lab.device.calibration import Calibration
from qmio_lab.device.noise import relax_delays
from qmio_lab.device.sampling import sample_exactly, terminal_measurements

SERIAL_QUBITS = 14  # Aer's own threshold for parallel state updates
SEED_STEP = 2113  # qiskit-aer's step between the seeds of the circuits of one run() call
_CHUNK_SECONDS = 0.25  # with progress reporting: about this long between two reports

Pair = tuple[QuantumCircuit, tuple[int, ...]]  # a compact circuit and its physical qubits
_Work = tuple[int, QuantumCircuit, Any]  # the circuit's index in the job, the circuit, its plan


def circuit_seed(seed: int | None, index: int) -> int | None:
    """The seed of the job's circuit ``index`` (None: unseeded)."""
    return None if seed is None else seed + SEED_STEP * index


def tag(experiment: Any, **values: Any) -> None:
    """Add entries to an experiment result's metadata so that they survive ``to_dict()``.

    Qiskit keeps ``metadata`` inside the result's private ``_metadata``; assigning the attribute
    would create a shadow that serialisation (and so the QPU service's clients) never sees.
    """
    meta = experiment._metadata.setdefault("metadata", {})
    if meta is None:
        meta = experiment._metadata["metadata"] = {}
    meta.update(values)


def in_chunks(items: Sequence[Any], run: Callable[[Sequence[Any]], None], counted: Callable[[int], None],
              seconds: float = _CHUNK_SECONDS) -> None:
    """``run`` over consecutive slices of ``items``, each sized from the last one's speed to take
    about ``seconds``, calling ``counted(n)`` after each: progress for a long job at the cost of
    one extra simulator call per chunk (the first chunk is one item, to measure)."""
    start, size = 0, 1
    while start < len(items):
        chunk = items[start:start + size]
        t0 = time.perf_counter()
        run(chunk)
        per_item = (time.perf_counter() - t0) / len(chunk)
        start += len(chunk)
        counted(len(chunk))
        size = max(1, int(seconds / max(per_item, 1e-6)))


def run_noisy(
    aer: Any, pairs: Iterable[Pair], shots: int, cal: Calibration,
    noise_for: Callable[[tuple[int, ...]], Any], seed: int | None = None, *, dt: float,
    progress: Callable[[int], None] | None = None, threads: int | None = None, memory: bool = False,
) -> list[ExperimentResult]:
    """Sample compact circuits (see :func:`~qmio_lab.device.compact.compact`; delays in units of
    ``dt``) with the noise of ``cal``; results in input order, each tagged with the calibration
    and its physical qubits.

    ``aer`` is the ``AerSimulator`` whose options apply (the emulator's precision and memory
    limit; its method on the shot-by-shot path, the exact sampler always taking the density
    matrix). ``noise_for(qubits)`` gives the noise model of those physical qubits, renumbered
    like the circuit. ``threads`` is Aer's ``max_parallel_threads`` on the shot-by-shot path;
    None: one thread up to :data:`SERIAL_QUBITS` qubits (small circuits gain nothing from
    OpenMP, whose idle threads spin on the cores a service's other threads need), every core
    above. With ``progress``, circuits run in chunks of about a quarter of a second each and
    ``progress(circuits done)`` follows every chunk, so a long job shows how far it is.
    ``memory`` adds each shot's outcome to the results (Qiskit's ``memory=True``); the counts
    a seed gives do not change with it.
    """
    groups: dict[tuple[int, ...], list[tuple[int, QuantumCircuit]]] = {}
    for i, (small, qubits) in enumerate(pairs):
        groups.setdefault(qubits, []).append((i, small))
    ordered: dict[int, ExperimentResult] = {}
    exact_qubits = int(config.get("device.exact_sampling_max_qubits"))
    finished = 0

    def counted(n: int) -> None:  # with progress only
        nonlocal finished
        finished += n
        progress(finished)

    for qubits, items in groups.items():
        noise = noise_for(qubits)
        plans = [terminal_measurements(c, exact_qubits) for _, c in items]
        exact = [(i, c, plan) for (i, c), plan in zip(items, plans) if plan is not None]
        shot_by_shot = [(i, c, None) for (i, c), plan in zip(items, plans) if plan is None]
        for work, sample in ((exact, _exactly), (shot_by_shot, _shot_by_shot)):
            if not work:
                continue

            def run(chunk: Sequence[_Work], sample=sample, qubits=qubits, noise=noise) -> None:
                for (i, _, _), exp in zip(chunk, sample(aer, chunk, qubits, shots, cal, noise, seed, dt, threads,
                                                            memory)):
                    tag(exp, calibration_id=cal.id, physical_qubits=list(qubits))
                    ordered[i] = exp

            if progress is None:
                run(work)
            else:
                in_chunks(work, run, counted)
    return [ordered[i] for i in range(len(ordered))]


def _exactly(aer: Any, work: Sequence[_Work], qubits: tuple[int, ...], shots: int, cal: Calibration,
             noise: Any, seed: int | None, dt: float, threads: int | None,
             memory: bool = False) -> list[ExperimentResult]:
    """One density-matrix run for all of ``work``, then each circuit's draws with its own seed."""
    return sample_exactly(aer, [c for _, c, _ in work], [plan for _, _, plan in work], qubits, shots,
                          cal, noise, [circuit_seed(seed, i) for i, _, _ in work], dt, memory=memory)


def _shot_by_shot(aer: Any, work: Sequence[_Work], qubits: tuple[int, ...], shots: int, cal: Calibration,
                  noise: Any, seed: int | None, dt: float, threads: int | None,
                  memory: bool = False) -> list[ExperimentResult]:
    """Aer's shot loop under the noise model: one call per run of consecutive circuits (Aer
    steps the seed by :data:`SEED_STEP` from one circuit of a call to the next), one call in all
    when unseeded."""
    if threads is None:
        threads = 1 if len(qubits) <= SERIAL_QUBITS else 0
    runs: list[list[_Work]] = []
    for item in work:
        if runs and (seed is None or item[0] == runs[-1][-1][0] + 1):
            runs[-1].append(item)
        else:
            runs.append([item])
    out: list[ExperimentResult] = []
    for run in runs:
        res = aer.run(
            [relax_delays(c, qubits, cal, dt) for _, c, _ in run], shots=shots, noise_model=noise,
            seed_simulator=circuit_seed(seed, run[0][0]), max_parallel_threads=threads, memory=memory,
        ).result()
        if not res.success:
            failed = [r.status for r in res.results if not r.success] or [res.status]
            raise RuntimeError(f"simulation failed: {failed[0]}")
        out.extend(res.results)
    return out
