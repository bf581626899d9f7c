"""What one Dask task does on a worker: simulate a batch of circuits with qiskit-aer.

Kept free of client-side state so it pickles by reference and runs the same in a worker, in a
SLURM job or in-process (the benchmark's baseline calls it directly).
"""
from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, qpy
from qiskit.result.models import ExperimentResult, ExperimentResultData
from qiskit_aer import AerSimulator

from qmio_lab import config
from qmio_lab.device.calibration import Calibration
from qmio_lab.device.execution import circuit_seed, run_noisy, tag
from qmio_lab.device.noise import build_noise_model
from qmio_lab.emulator import decompose, wire
from qmio_lab.emulator.replay import to_device

Payload = bytes | list[QuantumCircuit] | wire.PlainBatch  # what pack() makes


@dataclass(frozen=True)
class BatchSpec:
    """Everything a batch needs besides its circuits; the same for every batch of a job."""

    shots: int
    method: str
    precision: str = "double"
    seed: int | None = None
    noise: Calibration | None = None
    memory_limit: int | None = None  # bytes: Aer refuses rather than exceed it
    parallel: bool = False  # let Aer use every core (a lone wide circuit) or one (small ones)
    memory: bool = False  # per-shot bitstrings (Qiskit's ``memory=True``) besides the counts
    unroll: bool = False  # some circuit of the batch uses operations Aer does not know
    extra: dict[str, Any] = field(default_factory=dict)  # further AerSimulator options


def _where() -> dict[str, Any]:
    try:
        from distributed import get_worker
        address = get_worker().address
    except ValueError:  # not inside a Dask worker (in-process run)
        address = "in-process"
    return {"worker": address, "host": socket.gethostname(), "pid": os.getpid(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def _simulator(spec: BatchSpec) -> AerSimulator:
    options: dict[str, Any] = {
        "method": spec.method, "precision": spec.precision, "memory": spec.memory,
        "max_parallel_threads": 0 if spec.parallel else 1, **spec.extra,
    }
    if spec.memory_limit:
        options["max_memory_mb"] = max(spec.memory_limit // 2**20, 1)
    return AerSimulator(**options)


def _run(sim: AerSimulator, circuits: Sequence[QuantumCircuit | wire.PlainCircuit], spec: BatchSpec,
         first_seed: int | None) -> list[ExperimentResult]:
    """One noiseless Aer call for all circuits. Aer seeds the circuits of a call
    ``first_seed + 2113·i``, the job-wide rule (:func:`~qmio_lab.device.execution.circuit_seed`),
    so the counts do not depend on how the job was cut into batches. Plain circuits skip
    Aer's Python assembly (see :mod:`qmio_lab.emulator.wire`)."""
    options: dict[str, Any] = {"shots": spec.shots, "memory": spec.memory}
    if first_seed is not None:
        options["seed_simulator"] = first_seed
    if circuits and isinstance(circuits[0], wire.PlainCircuit):
        result = wire.run(sim, list(circuits), **options)
    else:
        result = sim.run(list(circuits), **options).result()
    if not result.success:
        failed = [r.status for r in result.results if not r.success] or [result.status]
        raise RuntimeError(f"Aer could not simulate the batch: {failed[0]}")
    return list(result.results)


def pack(circuits: Sequence[QuantumCircuit], plain: bool = True,
         encoded: Sequence[wire.PlainCircuit | None] | None = None) -> Payload:
    """Circuits for the trip to a worker. Plain circuits go in their plain form (names, indices, angles;
    see :mod:`qmio_lab.emulator.wire`) when ``plain``, which the noise-replay path cannot use
    because it transpiles the circuits on the worker. ``encoded`` gives their plain forms when
    the caller has made them already (``None`` for a circuit that has none). Otherwise QPY: about
    five times faster to write and read than pickle, which matters when a sweep sends thousands
    of small circuits. Circuits QPY cannot hold (custom Python objects) travel pickled."""
    if plain and circuits:
        if encoded is not None:
            batch = wire.PlainBatch(tuple(encoded)) if all(e is not None for e in encoded) else None
        else:
            batch = wire.encode_batch(circuits)
        if batch is not None:
            return batch
    buffer = io.BytesIO()
    try:
        qpy.dump(list(circuits), buffer)
    except Exception:  # noqa: BLE001 - any QPY limitation: fall back to pickle, which handles all
        return list(circuits)
    return buffer.getvalue()


def unpack(payload: Payload) -> list[QuantumCircuit] | list[wire.PlainCircuit]:
    if isinstance(payload, wire.PlainBatch):
        return list(payload.circuits)
    if isinstance(payload, (bytes, bytearray)):
        return list(qpy.load(io.BytesIO(payload)))
    return list(payload)


def run_batch(payload: Payload, spec: BatchSpec, first_index: int,
              batch_index: int) -> list[ExperimentResult]:
    """Simulate the circuits in ``payload`` (the job's circuits ``first_index...``; see
    :func:`pack`) and tag each result with where and how it ran, so a user can trace any count
    back to a worker and a method."""
    if spec.noise is not None and isinstance(payload, wire.PlainBatch):
        raise ValueError("noise replay transpiles circuits on the worker: pack them with "
                         "pack(circuits, plain=False)")
    circuits = unpack(payload)
    if spec.unroll and spec.noise is None:  # replay's compiler unrolls for the chip itself
        known = decompose.aer_names(spec.method)
        circuits = [decompose.for_aer(c, known) for c in circuits]
    sim = _simulator(spec)
    seed = circuit_seed(spec.seed, first_index)
    where = _where()
    started = time.time()
    if spec.noise is None:
        results = _run(sim, list(circuits), spec, seed)
    else:
        results = _run_with_noise(sim, circuits, spec, spec.noise, seed)
    # wall-clock times (epoch s) of the batch on its worker: who ran what when, for plots
    tags = {"precision": spec.precision, "batch": batch_index, **where,
            "batch_started": started, "batch_finished": time.time()}
    for i, exp in enumerate(results):  # replay's exact sampler takes the density matrix
        method = "density_matrix" if (exp.metadata or {}).get("exact_distribution") else spec.method
        tag(exp, **tags, method=method, index=first_index + i)
        if spec.memory and not getattr(exp.data, "memory", None):
            memory = memory_from_counts(getattr(exp.data, "counts", None) or {},
                                        circuit_seed(spec.seed, first_index + i))
            exp.data = ExperimentResultData.from_dict({**exp.data.to_dict(), "memory": memory})
    return results


def memory_from_counts(counts: dict[str, int], seed: int | None) -> list[str]:
    """Per-shot outcomes (Aer's hex strings, in a random order) holding exactly ``counts``.

    The exact sampler draws its shots independently from one distribution, so every order of
    them is equally likely: a random permutation of the counted outcomes is distributed as the
    shots themselves. Seeded from the circuit's seed, so ``memory`` is reproducible too."""
    outcomes = np.repeat(np.array(list(counts), dtype=object), [int(n) for n in counts.values()])
    rng = np.random.default_rng(None if seed is None else [seed, 0x6D656D])
    return [str(o) for o in rng.permutation(outcomes)]


def _run_with_noise(sim: AerSimulator, circuits: Sequence[QuantumCircuit], spec: BatchSpec,
                    cal: Calibration, seed: int | None) -> list[ExperimentResult]:
    """Compile each circuit for the chip, then run them the way the QPU does
    (:func:`~qmio_lab.device.execution.run_noisy`: its grouping by physical qubits, exact sampler,
    shot loop and seeds), with this batch's Aer options; results come back in input order."""
    pairs = [to_device(circuit, cal, spec.seed) for circuit in circuits]
    return run_noisy(sim, pairs, spec.shots, cal, lambda qubits: build_noise_model(cal, qubits), seed,
                     dt=float(config.get("device.dt")), threads=0 if spec.parallel else 1)
