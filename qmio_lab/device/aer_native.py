"""Circuits built directly in qiskit-aer's native form, run on its C++ controller.

``AerSimulator.run`` spends, before the simulation starts, a Python pass over every instruction
(materialising each gate object) and, when a noise model is given, a conversion of the whole
model from Python to C++ (2.5 ms per call for a 2-qubit model, whatever the circuit). Callers
that already know their instructions (the emulator's compact circuits, the QPU's exact sampler
with the noise written in as superoperators) build ``AerCircuit`` objects here and execute them
with the same simulator options.

These are qiskit-aer internals; when they move, :data:`AVAILABLE` is False and callers keep
to ``AerSimulator.run``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from qiskit_aer.backends.aer_compiler import AerCircuit, generate_aer_config
    from qiskit_aer.backends.backend_utils import CircuitHeader
    AVAILABLE = True
except ImportError:  # pragma: no cover - a qiskit-aer that reorganised its compiler
    AVAILABLE = False

# Aer's built-in gates that ``AerCircuit.gate`` takes with float angles (``assemble_circuit``'s
# list, less "delay", a duration, and the multi-controlled families whose names qiskit decorates).
FIXED_GATES = frozenset({
    "ccx", "ccz", "cswap", "csx", "cx", "cy", "cz", "ecr", "h", "id", "s", "sdg", "swap", "sx",
    "sxdg", "t", "tdg", "x", "y", "z",
})
ROTATION_GATES = frozenset({
    "cp", "p", "r", "rx", "rxx", "ry", "ryy", "rz", "rzx", "rzz", "u", "u1", "u2", "u3", "cu",
    "cu1", "cu2", "cu3", "crx", "cry", "crz",
})
GATES = FIXED_GATES | ROTATION_GATES


def new_circuit(num_qubits: int, num_clbits: int, *, name: str = "circuit", global_phase: float = 0.0,
                qregs: Sequence[tuple[str, int]] = (), cregs: Sequence[tuple[str, int]] = ()) -> Any:
    """An empty ``AerCircuit`` with the header ``assemble_circuit`` would give it."""
    aer = AerCircuit()
    aer.set_header(CircuitHeader(
        n_qubits=num_qubits, qreg_sizes=[list(r) for r in qregs], memory_slots=num_clbits,
        creg_sizes=[list(r) for r in cregs], name=name, global_phase=global_phase,
    ))
    aer.num_qubits = num_qubits
    aer.num_memory = num_clbits
    aer.global_phase_angle = global_phase
    return aer


def execute(simulator: Any, circuits: Sequence[Any], shapes: Sequence[Any], noise_model: Any = None,
            **run_options: Any) -> dict[str, Any]:
    """Aer's raw output (a dict, results in input order) for native ``circuits``, run with
    ``simulator``'s options overridden by ``run_options``. ``shapes`` gives each circuit's
    ``num_qubits`` and ``num_clbits``."""
    for i, aer in enumerate(circuits):
        aer.circ_id = i
    config = generate_aer_config(list(shapes), simulator.options, **run_options)
    output = simulator._execute_circuits(list(circuits), noise_model, config)
    if not isinstance(output, dict):
        raise RuntimeError("qiskit-aer's controller returned no result")
    return output
