"""One way to compile circuits for a target, used by the QPU service, sessions, noise replay
and the magics.

The transpiler's seed is fixed (``qmio.device.transpiler_seed``) so that one circuit maps onto
the same physical qubits however it reaches the chip: through the service, a session, a replay
of the calibration it ran with, or a ``%%qmio`` cell.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qiskit import QuantumCircuit, transpile
from qiskit.transpiler import Target

from qmio_lab import config

#: The emulator's gate set: what qiskit-aer runs natively, so no circuit is decomposed further.
EMULATOR_BASIS_GATES = (
    "id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "sxdg", "rx", "ry", "rz", "p", "u",
    "cx", "cy", "cz", "cp", "crx", "cry", "crz", "swap", "ecr", "rxx", "ryy", "rzz",
    "ccx", "cswap", "measure", "reset", "delay",
)


def compile_for(
    circuits: QuantumCircuit | Sequence[QuantumCircuit], target: Target | Any, *, level: int = 1,
    seed: int | None = None,
) -> Any:
    """``circuits`` transpiled for ``target``: the chip's ``Target`` under a calibration
    (``QmioDevice.target(cal)``, ``build_target``), a backend, or ``"emulator"`` (its gate
    set). Returns what ``qiskit.transpile`` returns: one circuit or a list."""
    seed = int(config.get("device.transpiler_seed")) if seed is None else seed
    if isinstance(target, str):
        if target != "emulator":
            raise ValueError(f"compile_for: unknown target {target!r}; give 'emulator', a Target or a backend")
        return transpile(circuits, basis_gates=list(EMULATOR_BASIS_GATES), optimization_level=level,
                         seed_transpiler=seed)
    if isinstance(target, Target):
        return transpile(circuits, target=target, optimization_level=level, seed_transpiler=seed)
    return transpile(circuits, target, optimization_level=level, seed_transpiler=seed)


def use_qiskit_plugins_only() -> list[str]:
    """Make this process's transpiler see only the stage and synthesis plugins Qiskit ships.

    Qiskit's pass managers import every plugin any installed package registers, on their first
    use in a process: with qiskit-experiments and qiskit-ibm-runtime (mthree's) installed beside
    us that is pandas, matplotlib and an HTTP stack, about 2 s and 170 MB in each compile sandbox,
    and third-party code running on users' circuits inside the service. Our compile path names
    Qiskit's own methods only, so the service's sandboxes call this before their first compile.
    Returns the names of the plugins left out (``group:name``), for the log.
    """
    from importlib.metadata import distribution, entry_points

    import stevedore

    left_out = []
    groups = {ep.group for ep in distribution("qiskit").entry_points if ep.group.startswith("qiskit.")}
    for group in sorted(groups):
        found = list(entry_points(group=group))
        own = [ep for ep in found if ep.dist is not None and ep.dist.name == "qiskit"]
        left_out += [f"{group}:{ep.name}" for ep in found if ep not in own]
        stevedore.ExtensionManager.ENTRY_POINT_CACHE[group] = own
    return left_out
