"""Rewrite what qiskit-aer does not know into what it does, before it simulates.

OpenQASM 2 from public circuit collections defines its own gates (``gate majority a,b,c {...}``,
``gate cH a,b {...}``, ``ctu``), Qiskit's library has gates Aer has no kernel for (``ch``,
``dcx``, ``rccx``...), and users append their own instructions built with ``to_gate()``. Aer
refuses each of them (``AerError('unknown instruction: majority')``), although every one of them
has a definition in gates it does simulate. So:

* on the client, :func:`unrolled_size` counts, without unrolling anything, how many operations a
  circuit has once every unknown operation is replaced by its definition (each definition is
  counted once, so a small program whose definitions call each other twice, forty levels deep,
  is refused in microseconds instead of hanging a worker), and refuses it over the limit;
* on the worker, :func:`for_aer` does the unrolling, each distinct definition flattened once.

Circuits made only of what Aer knows are returned untouched (and plain ones never reach this
module: they take the compact wire path of :mod:`qmio_lab.emulator.wire`).
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import CircuitInstruction, ControlFlowOp, Instruction

from qmio_lab import config
from qmio_lab.errors import InvalidCircuitError

#: Operations Aer takes that its ``basis_gates`` does not list.
_ALWAYS = frozenset({"measure", "barrier"})


@functools.lru_cache(maxsize=None)
def aer_names(method: str = "statevector") -> frozenset[str]:
    """The operation names Aer simulates with ``method`` (its ``basis_gates``, which differ by
    method: a matrix product state has no ``crx``, a density matrix no ``mcx``)."""
    from qiskit_aer import AerSimulator

    return frozenset(AerSimulator(method=method).configuration().basis_gates) | _ALWAYS


def limits() -> tuple[int, int]:
    """``(max operations once unrolled, max nesting of definitions)``: the settings
    ``qmio.emulator.max_operations`` and ``qmio.emulator.max_nesting``."""
    return int(config.get("emulator.max_operations")), int(config.get("emulator.max_nesting"))


def _key(op: Instruction) -> tuple[tuple[Any, ...], Any]:
    """What identifies one definition, and the object whose identity the key uses (kept alive
    beside the key, so that its ``id`` cannot be reused by another object while the key is in
    use). A library gate is its class and shape; a gate of an OpenQASM 2 ``gate`` statement its
    name and the table of gates its program had defined by then (shared by every use, where
    the statement's bytecode is copied for each); any other gate its definition circuit."""
    if getattr(op, "_standard_gate", None) is not None:
        ident = None
    elif hasattr(op, "_bytecode") and hasattr(op, "_gates"):  # qiskit.qasm2's _DefinedGate
        ident = op._gates
    else:
        ident = getattr(op, "_definition", None)
    key = (type(op), op.name, op.num_qubits, op.num_clbits, len(op.params),
           0 if ident is None else id(ident))
    return key, ident


def _no_definition(circuit: QuantumCircuit, op: Instruction) -> InvalidCircuitError:
    return InvalidCircuitError(
        f"circuit {circuit.name!r} uses {op.name!r}, which qiskit-aer does not simulate and which "
        "has no definition to decompose it into; give the gate a definition (a `gate` statement in "
        "OpenQASM, or build it with QuantumCircuit.to_gate()) or transpile the circuit first"
    )


def needs_unrolling(circuit: QuantumCircuit, known: frozenset[str]) -> bool:
    """Whether any operation of ``circuit`` (control-flow bodies included) is unknown to Aer."""
    for inst in circuit.data:
        op = inst.operation
        if op.name not in known:
            return True
        if isinstance(op, ControlFlowOp) and any(needs_unrolling(b, known) for b in op.blocks):
            return True
    return False


def unrolled_size(circuit: QuantumCircuit, known: frozenset[str], max_operations: int | None = None,
                  max_nesting: int | None = None) -> int:
    """Operations of ``circuit`` once everything unknown to Aer is unrolled, counted without
    unrolling (each distinct definition once). Raises :class:`InvalidCircuitError`, naming the
    setting to change, over ``max_operations`` or ``max_nesting`` (default: :func:`limits`), and
    for an unknown operation without a definition."""
    default_ops, default_nesting = limits()
    max_operations = default_ops if max_operations is None else max_operations
    max_nesting = default_nesting if max_nesting is None else max_nesting
    memo: dict[tuple[Any, ...], tuple[int, Any]] = {}

    def too_many() -> InvalidCircuitError:
        return InvalidCircuitError(
            f"circuit {circuit.name!r} has more than {max_operations} operations once its gate "
            "definitions are unrolled for the emulator (qmio.emulator.max_operations); define "
            "fewer nested repetitions, split the circuit, or raise the limit "
            "(e.g. DASK_QMIO__EMULATOR__MAX_OPERATIONS)"
        )

    def count(data: Iterable[CircuitInstruction], depth: int) -> int:
        if depth > max_nesting:
            raise InvalidCircuitError(
                f"circuit {circuit.name!r}: gate definitions nest deeper than {max_nesting} levels "
                "(qmio.emulator.max_nesting); flatten some of them"
            )
        total = 0
        for inst in data:
            op = inst.operation
            if op.name in known:
                total += 1
                if isinstance(op, ControlFlowOp):
                    total += sum(count(block.data, depth + 1) for block in op.blocks)
            else:
                key, ident = _key(op)
                known_size = memo.get(key)
                if known_size is None:
                    definition = op.definition
                    if definition is None:
                        raise _no_definition(circuit, op)
                    known_size = memo[key] = (count(definition.data, depth + 1), ident)
                total += known_size[0]
            if total > max_operations:
                raise too_many()
        return total

    return count(circuit.data, 0)


Flat = tuple[tuple[tuple[Instruction, tuple[int, ...], tuple[int, ...]], ...], Any]


def for_aer(circuit: QuantumCircuit, known: frozenset[str]) -> QuantumCircuit:
    """``circuit`` with every operation unknown to Aer replaced by its definition, recursively
    (control-flow bodies too); ``circuit`` itself when nothing needs it. Registers, name,
    metadata and global phase are kept, so the result's counts and header are those of the
    circuit as written."""
    if not needs_unrolling(circuit, known):
        return circuit
    memo: dict[tuple[Any, ...], tuple[Flat, Any]] = {}

    def flat(op: Instruction, depth: int) -> Flat:
        """The definition of ``op`` as known operations on indices of its own bits."""
        params = tuple(op.params)
        cacheable = all(type(p) in (int, float) for p in params)
        key, ident = _key(op)
        key = (*key, params) if cacheable else None
        if key is not None and key in memo:
            return memo[key][0]
        if depth > limits()[1]:
            raise InvalidCircuitError(f"circuit {circuit.name!r}: gate definitions nest too deep "
                                      "(qmio.emulator.max_nesting)")
        definition = op.definition
        if definition is None:
            raise _no_definition(circuit, op)
        qidx = {q: i for i, q in enumerate(definition.qubits)}
        cidx = {c: i for i, c in enumerate(definition.clbits)}
        out: list[tuple[Instruction, tuple[int, ...], tuple[int, ...]]] = []
        phase = definition.global_phase
        for inst in definition.data:
            sub = inst.operation
            qs = tuple(qidx[q] for q in inst.qubits)
            cs = tuple(cidx[c] for c in inst.clbits)
            if isinstance(sub, ControlFlowOp):
                raise InvalidCircuitError(
                    f"circuit {circuit.name!r}: the definition of {op.name!r} holds control flow "
                    f"({sub.name}); the emulator cannot unroll that, write it in the circuit itself"
                )
            if sub.name in known:
                out.append((sub, qs, cs))
                continue
            inner, inner_phase = flat(sub, depth + 1)
            phase = phase + inner_phase
            out.extend((o, tuple(qs[i] for i in q), tuple(cs[i] for i in c)) for o, q, c in inner)
        result: Flat = (tuple(out), phase)
        if key is not None:
            memo[key] = (result, ident)
        return result

    def rebuild(source: QuantumCircuit) -> QuantumCircuit:
        if source is not circuit and not needs_unrolling(source, known):
            return source
        target = source.copy_empty_like()
        for inst in source.data:
            op = inst.operation
            if op.name in known:
                if isinstance(op, ControlFlowOp):
                    op = op.replace_blocks([rebuild(b) for b in op.blocks])
                    inst = inst.replace(operation=op)
                target._append(inst)
                continue
            ops, phase = flat(op, 1)
            qubits, clbits = inst.qubits, inst.clbits
            for sub, qs, cs in ops:
                target._append(CircuitInstruction(sub, tuple(qubits[i] for i in qs),
                                                  tuple(clbits[i] for i in cs)))
            target.global_phase = target.global_phase + phase
        return target

    return rebuild(circuit)
