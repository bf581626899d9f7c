"""Shots drawn from a circuit's exact noisy output distribution.

When every measurement comes at the end of a circuit, its shots are independent draws from one
distribution: the density matrix under the calibration's gate and relaxation noise, read out
through each qubit's readout confusion matrix. Computing that distribution once (density matrix,
exact) and drawing the shots with numpy gives counts with the same statistics as Aer drawing
them one at a time, which at thousands of shots costs most of a small job (a 4-qubit circuit:
3.6 ms of its 4.0 ms at 4096 shots). Circuits with mid-circuit measurements, resets, classical
control, or too many qubits for a density matrix, are left to Aer's own shot loop.

Per-shot memory (Qiskit's ``memory=True``) comes from the same draw: the counts are drawn first,
exactly as without memory, then the shots are put in a uniformly random order. Shots drawn
independently from one distribution are exchangeable, so a random order of a multinomial draw
is distributed exactly as shots drawn one at a time, and asking for memory changes no count a
seed gives.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import qiskit_aer.library  # noqa: F401 - registers QuantumCircuit.save_probabilities
from qiskit import QuantumCircuit
from qiskit.result.models import ExperimentResult

from qmio_lab.device import aer_native
from qmio_lab.device.calibration import Calibration
from qmio_lab.device.noise import CachedNoiseModel, delay_seconds, relax_delays, relaxation

_LABEL = "qmio_probabilities"


def terminal_measurements(circuit: QuantumCircuit, max_qubits: int) -> list[tuple[int, int]] | None:
    """``(qubit, clbit)`` of each measurement when all of them end the circuit, else None.

    None also for a circuit that measures nothing, writes a clbit twice, resets, uses classical
    control, or is wider than ``max_qubits`` (a density matrix needs 16·4^n bytes).
    """
    if circuit.num_qubits > max_qubits:
        return None
    qubit = {q: i for i, q in enumerate(circuit.qubits)}
    clbit = {c: i for i, c in enumerate(circuit.clbits)}
    measured: dict[int, int] = {}
    written: set[int] = set()
    for inst in circuit.data:  # names and bits only: no gate objects built
        name = inst.name
        if name == "barrier":
            continue
        qubits = [qubit[q] for q in inst.qubits]
        if name == "measure":
            bit = clbit[inst.clbits[0]]
            if qubits[0] in measured or bit in written:
                return None
            measured[qubits[0]] = bit
            written.add(bit)
            continue
        if inst.clbits or inst.is_control_flow() or name == "reset" or measured.keys() & set(qubits):
            return None
    return list(measured.items()) or None


def without_measurements(circuit: QuantumCircuit, measured: Sequence[int]) -> QuantumCircuit:
    """The circuit up to its measurements, saving the probabilities of the measured qubits."""
    body = circuit.copy_empty_like()
    for inst in circuit.data:
        if inst.operation.name != "measure":
            body._append(inst)
    body.save_probabilities([body.qubits[q] for q in measured], label=_LABEL)
    return body


def read_out(probabilities: np.ndarray, errors: Sequence[tuple[float, float]]) -> np.ndarray:
    """Distribution of the recorded bits: each qubit's true value passed through its readout
    confusion matrix ``[[1 - p10, p10], [p01, 1 - p01]]``. Index bit j is qubit j (little-endian)."""
    k = len(errors)
    tensor = np.asarray(probabilities, dtype=float).reshape((2,) * k)
    for j, (p10, p01) in enumerate(errors):
        axis = k - 1 - j  # C order: the last axis is the least significant bit
        confusion = np.array([[1 - p10, p10], [p01, 1 - p01]])
        tensor = np.moveaxis(np.tensordot(tensor, confusion, axes=([axis], [0])), -1, axis)
    flat = np.clip(tensor.reshape(-1), 0.0, None)
    return flat / flat.sum()


def experiment_result(
    circuit: QuantumCircuit, measurements: Sequence[tuple[int, int]], distribution: np.ndarray,
    shots: int, rng: np.random.Generator, seed: int | None, seconds: float, memory: bool = False,
) -> ExperimentResult:
    """Counts drawn from ``distribution`` in Aer's own result layout (hex keys over the clbits);
    with ``memory``, also each shot's value (Aer's hex strings, clbit 0 least significant), in
    the order drawn (see the module's note: the counts are those ``memory=False`` gives)."""
    drawn = rng.multinomial(shots, distribution)
    outcomes = np.flatnonzero(drawn)
    keys: list[str] = []
    for outcome in outcomes:
        value = 0
        for j, (_, clbit) in enumerate(measurements):
            value |= ((int(outcome) >> j) & 1) << clbit
        keys.append(hex(value))
    counts = {key: int(drawn[outcome]) for key, outcome in zip(keys, outcomes)}
    data: dict[str, Any] = {"counts": counts}
    if memory:
        labels = np.array(keys, dtype=object)
        order = rng.permutation(np.repeat(np.arange(len(keys)), drawn[outcomes]))
        data["memory"] = labels[order].tolist()
    return ExperimentResult.from_dict({
        "shots": shots, "success": True, "status": "DONE", "meas_level": 2, "seed_simulator": seed,
        "data": data,
        "header": {
            "creg_sizes": [[r.name, r.size] for r in circuit.cregs], "global_phase": float(circuit.global_phase),
            "memory_slots": circuit.num_clbits, "n_qubits": circuit.num_qubits, "name": circuit.name,
            "qreg_sizes": [[r.name, r.size] for r in circuit.qregs], "metadata": dict(circuit.metadata or {}),
        },
        "metadata": {"method": "density_matrix", "measure_sampling": True, "exact_distribution": True,
                     "num_qubits": circuit.num_qubits, "noise": "superop"},
        "time_taken": seconds,
    })


def sample_exactly(
    aer: Any, circuits: Sequence[QuantumCircuit], plans: Sequence[list[tuple[int, int]]],
    qubits: Sequence[int], shots: int, cal: Calibration, noise: Any, seeds: Sequence[int | None], dt: float,
    memory: bool = False,
) -> list[ExperimentResult]:
    """One density-matrix Aer run for all ``circuits`` (physical ``qubits``; delays in units of
    ``dt``), then numpy draws, each circuit's from its own seed in ``seeds`` (the distribution
    itself is exact: no seed changes it). With ``memory``, each result carries its per-shot
    values as Qiskit's ``memory`` data."""
    t0 = time.perf_counter()
    seed = seeds[0] if seeds else None
    distributions = _with_superops(aer, circuits, plans, qubits, cal, noise, seed, dt)
    if distributions is None:
        distributions = _with_noise_model(aer, circuits, plans, qubits, cal, noise, seed, dt)
    seconds = (time.perf_counter() - t0) / max(len(circuits), 1)
    out = []
    for circuit, plan, probabilities, own in zip(circuits, plans, distributions, seeds):
        errors = [(cal.qubits[qubits[q]].readout_p10, cal.qubits[qubits[q]].readout_p01) for q, _ in plan]
        distribution = read_out(probabilities, errors)
        out.append(experiment_result(circuit, plan, distribution, shots, np.random.default_rng(own), own, seconds,
                                       memory))
    return out


def _with_noise_model(
    aer: Any, circuits: Sequence[QuantumCircuit], plans: Sequence[list[tuple[int, int]]],
    qubits: Sequence[int], cal: Calibration, noise: Any, seed: int | None, dt: float,
) -> list[np.ndarray]:
    """The probabilities through ``AerSimulator.run`` and the noise model: any circuit, any model."""
    bodies = [relax_delays(without_measurements(c, [q for q, _ in plan]), tuple(qubits), cal, dt)
              for c, plan in zip(circuits, plans)]
    res = aer.run(bodies, shots=1, noise_model=noise, method="density_matrix",
                  max_parallel_threads=1, seed_simulator=seed).result()
    if not res.success:
        raise RuntimeError(f"simulation failed: {res.status}")
    return [np.asarray(res.data(i)[_LABEL]) for i in range(len(bodies))]


def _with_superops(
    aer: Any, circuits: Sequence[QuantumCircuit], plans: Sequence[list[tuple[int, int]]],
    qubits: Sequence[int], cal: Calibration, noise: Any, seed: int | None, dt: float,
) -> list[np.ndarray] | None:
    """The same probabilities with each gate's error written into the circuit as a superoperator
    after the gate, and no noise model: Aer converting the model from Python costs ~2.5 ms a call,
    several times the simulation of a small circuit. None when the model or a circuit is beyond
    this form (the caller then takes Aer's noise path)."""
    superops = noise.superops() if aer_native.AVAILABLE and isinstance(noise, CachedNoiseModel) else None
    if superops is None:
        return None
    programs = []
    for circuit, plan in zip(circuits, plans):
        program = _noisy_program(circuit, plan, qubits, cal, superops, dt)
        if program is None:
            return None
        programs.append(program)
    output = aer_native.execute(aer, programs, circuits, None, shots=1, method="density_matrix",
                                max_parallel_threads=1, seed_simulator=seed)
    if not output.get("success"):
        failed = [r.get("status") for r in output.get("results", []) if not r.get("success")]
        raise RuntimeError(f"simulation failed: {(failed or [output.get('status')])[0]}")
    return [np.asarray(r["data"][_LABEL], dtype=float) for r in output["results"]]


def _noisy_program(
    circuit: QuantumCircuit, plan: list[tuple[int, int]], qubits: Sequence[int], cal: Calibration,
    superops: dict[tuple[str, tuple[int, ...]], np.ndarray], dt: float,
) -> Any:
    """The circuit before its measurements as an ``AerCircuit``: each gate followed by its error
    channel, each delay by its qubit's relaxation, ending by saving the measured qubits'
    probabilities. None for anything else (labelled or unbound gates, other instructions)."""
    program = aer_native.new_circuit(circuit.num_qubits, circuit.num_clbits)
    index = {q: i for i, q in enumerate(circuit.qubits)}
    for inst in circuit.data:
        name = inst.name
        if name == "measure" or name == "barrier":
            continue
        where = [index[q] for q in inst.qubits]
        if name == "delay":
            seconds = delay_seconds(inst.operation, dt)
            channel = relaxation(cal.qubits[qubits[where[0]]], seconds).to_quantumchannel().data
            program.superop(where, np.ascontiguousarray(channel), -1, None)
            continue
        if name not in aer_native.GATES or inst.label:
            return None  # a labelled gate may carry noise of its own in Aer's model
        params = list(inst.params)
        if not all(type(p) is float or type(p) is int for p in params):
            return None
        program.gate(name, where, params, [], -1, None, name)
        channel = superops.get((name, tuple(where)))
        if channel is not None:
            program.superop(where, channel, -1, None)
    program.save_state([q for q, _ in plan], "save_probabilities", "average", _LABEL)
    return program
