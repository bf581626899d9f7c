"""What one Dask task does on a worker: simulate a batch of circuits with qiskit-aer.

Kept free of client-side state so it pickles by reference and runs the same in a worker, in a
SLURM job or in-process (the benchmark's baseline calls it directly).
"""
from __future__ import annotations

import io
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qiskit import QuantumCircuit, qpy
from qiskit.result.models import ExperimentResult
from qiskit_aer import AerSimulator

from qmio_lab.device.calibration import Calibration
from qmio_lab.device.simulator import tag
from qmio_lab.emulator import wire
from qmio_lab.emulator.replay import noise_for, to_device

Payload = bytes | list[QuantumCircuit] | wire.CompactBatch  # what pack() makes


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
        "method": spec.method, "precision": spec.precision,
        "max_parallel_threads": 0 if spec.parallel else 1, **spec.extra,
    }
    if spec.memory_limit:
        options["max_memory_mb"] = max(spec.memory_limit // 2**20, 1)
    return AerSimulator(**options)


def _run(sim: AerSimulator, circuits: Sequence[QuantumCircuit | wire.CompactCircuit], spec: BatchSpec,
         first_seed: int | None, noise_model: Any = None) -> list[ExperimentResult]:
    """One Aer call for all circuits; with a seed, one call per circuit so that circuit i always
    gets seed + i, however the job was cut into batches. Compact circuits skip Aer's Python
    assembly (see :mod:`qmio_lab.emulator.wire`)."""
    options: dict[str, Any] = {"shots": spec.shots}
    if noise_model is not None:
        options["noise_model"] = noise_model
    if first_seed is None:
        calls = [(list(circuits), {})]
    else:
        calls = [([c], {"seed_simulator": first_seed + i}) for i, c in enumerate(circuits)]
    out: list[ExperimentResult] = []
    for chunk, seed in calls:
        if isinstance(chunk[0], wire.CompactCircuit):
            result = wire.run(sim, chunk, **options, **seed)
        else:
            result = sim.run(chunk, **options, **seed).result()
        if not result.success:
            failed = [r.status for r in result.results if not r.success] or [result.status]
            raise RuntimeError(f"Aer could not simulate the batch: {failed[0]}")
        out.extend(result.results)
    return out


def pack(circuits: Sequence[QuantumCircuit], compact: bool = True) -> Payload:
    """Circuits for the trip to a worker. Plain circuits go compact (names, indices, angles;
    see :mod:`qmio_lab.emulator.wire`) when ``compact``, which the noise-replay path cannot use
    because it transpiles the circuits on the worker. Otherwise QPY: about five times faster to
    write and read than pickle, which matters when a sweep sends thousands of small circuits.
    Circuits QPY cannot hold (custom Python objects) travel pickled."""
    if compact and circuits:
        batch = wire.encode_batch(circuits)
        if batch is not None:
            return batch
    buffer = io.BytesIO()
    try:
        qpy.dump(list(circuits), buffer)
    except Exception:  # noqa: BLE001 - any QPY limitation: fall back to pickle, which handles all
        return list(circuits)
    return buffer.getvalue()


def unpack(payload: Payload) -> list[QuantumCircuit] | list[wire.CompactCircuit]:
    if isinstance(payload, wire.CompactBatch):
        return list(payload.circuits)
    if isinstance(payload, (bytes, bytearray)):
        return list(qpy.load(io.BytesIO(payload)))
    return list(payload)


def run_batch(payload: Payload, spec: BatchSpec, first_index: int,
              batch_index: int) -> list[ExperimentResult]:
    """Simulate the circuits in ``payload`` (the job's circuits ``first_index...``; see
    :func:`pack`) and tag each result with where and how it ran, so a user can trace any count
    back to a worker and a method."""
    if spec.noise is not None and isinstance(payload, wire.CompactBatch):
        raise ValueError("noise replay transpiles circuits on the worker: pack them with "
                         "pack(circuits, compact=False)")
    circuits = unpack(payload)
    sim = _simulator(spec)
    seed = None if spec.seed is None else spec.seed + first_index
    where = _where()
    tags = {"method": spec.method, "precision": spec.precision, "batch": batch_index, **where}
    if spec.noise is None:
        results = _run(sim, list(circuits), spec, seed)
    else:
        results = _run_with_noise(sim, circuits, spec, spec.noise, seed)
        tags["calibration_id"] = spec.noise.id
    for i, exp in enumerate(results):
        tag(exp, **tags, index=first_index + i)
    return results


def _run_with_noise(sim: AerSimulator, circuits: Sequence[QuantumCircuit], spec: BatchSpec,
                    cal: Calibration, seed: int | None) -> list[ExperimentResult]:
    """Compile each circuit for the chip, then simulate circuits on the same physical qubits
    together under those qubits' noise; results come back in input order."""
    groups: dict[tuple[int, ...], list[tuple[int, QuantumCircuit]]] = {}
    for i, circuit in enumerate(circuits):
        small, qubits = to_device(circuit, cal, spec.seed)
        groups.setdefault(qubits, []).append((i, small))
    ordered: dict[int, ExperimentResult] = {}
    for qubits, items in groups.items():
        model = noise_for(cal, qubits)
        if seed is None:
            res = _run(sim, [c for _, c in items], spec, None, model)
        else:  # keep seed + i per circuit even though groups reorder them
            res = [_run(sim, [c], spec, seed + i, model)[0] for i, c in items]
        for (i, _), exp in zip(items, res):
            ordered[i] = exp
            tag(exp, physical_qubits=list(qubits))
    return [ordered[i] for i in range(len(circuits))]
