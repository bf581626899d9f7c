"""Plain circuits (Aer's built-in gates only) in a form that a worker turns straight into Aer's native circuits.

Half of qiskit-aer's time on a sweep of small circuits is spent in Python before the simulation
starts: writing QPY on the client, reading it back into ``QuantumCircuit`` objects on the
worker, then ``assemble_circuit`` materialising a Qiskit gate object for every instruction to
copy its name, qubits and parameters into an ``AerCircuit``. For circuits made only of Aer's
built-in gates, measurements, resets and barriers, the client instead sends those names, indices
and angles (read without materialising gate objects), and the worker builds the ``AerCircuit``
directly and hands it to the same C++ controller, with the same options, header and seed, so
the counts are identical to ``AerSimulator.run``'s (tests/test_emulator_wire.py checks).

Anything else (parameters, control flow, classical variables, delays, custom gates) returns
``None`` from :func:`encode` and travels as QPY through Aer's own path, as does everything when
the qiskit-aer internals this relies on move (:data:`qmio_lab.device.aer_native.AVAILABLE`).
"""
from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qiskit import QuantumCircuit
from qiskit.result import Result

from qmio_lab.device import aer_native
from qmio_lab.device.aer_native import AVAILABLE

Op = tuple[str, tuple[int, ...], tuple[int, ...], tuple[float, ...], str | None]  # name, qubits, clbits, params, label


@dataclass(frozen=True)
class PlainCircuit:
    """What Aer needs of one circuit: its shape, its header and its instructions."""

    name: str
    num_qubits: int
    num_clbits: int
    qregs: tuple[tuple[str, int], ...]
    cregs: tuple[tuple[str, int], ...]
    global_phase: float
    metadata: dict[str, Any]
    ops: tuple[Op, ...]


@dataclass(frozen=True)
class PlainBatch:
    """A batch of circuits that all encoded; ``run_batch`` recognises it by type."""

    circuits: tuple[PlainCircuit, ...]


def encode(circuit: QuantumCircuit) -> PlainCircuit | None:
    """The plain form of ``circuit``, or None when only Aer's own path can run it."""
    if circuit.num_vars or not isinstance(circuit.global_phase, (int, float)):
        return None
    # Reading an instruction's params builds a list, the costliest attribute here: skip it for
    # the gates that have none. Bit indices through dict lookups bound once per circuit.
    qubit = {q: i for i, q in enumerate(circuit.qubits)}.__getitem__
    clbit = {c: i for i, c in enumerate(circuit.clbits)}.__getitem__
    ops: list[Op] = []
    append = ops.append
    for inst in circuit.data:
        name = inst.name
        if name in aer_native.FIXED_GATES:
            append((name, tuple(map(qubit, inst.qubits)), (), (), inst.label))
        elif name in aer_native.ROTATION_GATES:
            params = tuple(inst.params)
            for p in params:
                if type(p) is not float and type(p) is not int:
                    return None  # unbound parameters, expressions, numpy scalars: Aer decides
            append((name, tuple(map(qubit, inst.qubits)), (), params, inst.label))
        elif name == "measure" or name == "reset":
            append((name, tuple(map(qubit, inst.qubits)), tuple(map(clbit, inst.clbits)), (), None))
        elif name != "barrier":  # Aer assembles a barrier to no operation
            return None
    return PlainCircuit(
        name=circuit.name, num_qubits=circuit.num_qubits, num_clbits=circuit.num_clbits,
        qregs=tuple((r.name, r.size) for r in circuit.qregs),
        cregs=tuple((r.name, r.size) for r in circuit.cregs),
        global_phase=float(circuit.global_phase), metadata=dict(circuit.metadata or {}),
        ops=tuple(ops),
    )


def encode_batch(circuits: Sequence[QuantumCircuit]) -> PlainBatch | None:
    """All of ``circuits`` in plain form, or None if any one needs Aer's own path."""
    if not AVAILABLE:
        return None
    out = []
    for circuit in circuits:
        plain = encode(circuit)
        if plain is None:
            return None
        out.append(plain)
    return PlainBatch(tuple(out))


def to_aer(circuit: PlainCircuit) -> Any:
    """The ``AerCircuit`` that ``assemble_circuit`` would build for the same circuit."""
    aer = aer_native.new_circuit(
        circuit.num_qubits, circuit.num_clbits, name=circuit.name, global_phase=circuit.global_phase,
        qregs=circuit.qregs, cregs=circuit.cregs,
    )
    gate, measure, reset = aer.gate, aer.measure, aer.reset
    for name, qubits, clbits, params, label in circuit.ops:
        if name == "measure":
            measure(list(qubits), list(clbits), [])
        elif name == "reset":
            reset(list(qubits), -1)
        else:
            gate(name, list(qubits), list(params), [], -1, None, label or name)
    return aer


def run(simulator: Any, circuits: Sequence[PlainCircuit], **run_options: Any) -> Result:
    """Simulate ``circuits`` in one call to ``simulator``'s C++ controller: what
    ``AerSimulator.run(...).result()`` returns, without the Python assembly."""
    start = time.time()
    noise_model = run_options.pop("noise_model", getattr(simulator.options, "noise_model", None))
    output = aer_native.execute(simulator, [to_aer(c) for c in circuits], circuits, noise_model, **run_options)
    output.update(job_id=str(uuid.uuid4()), date=datetime.datetime.now().isoformat(),
                  backend_name=simulator.name,
                  backend_version=simulator.configuration().backend_version)
    for result in output["results"]:
        if "header" in result:
            result["header"]["metadata"] = circuits[result.pop("circ_id")].metadata
    output["time_taken"] = time.time() - start
    return simulator._format_results(output)
