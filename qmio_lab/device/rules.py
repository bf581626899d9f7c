"""What the QMIO chip accepts, one owner for each rule.

Native operations (:data:`ALLOWED_OPERATIONS`), native ECR directions, the shot range and "a
circuit returns counts only if it measures something" are decided here and nowhere else: the
in-process simulator, the QPU service's compiler, the emulator's noise replay, the primitives
and the notebook magics all ask these functions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qiskit import QuantumCircuit

from qmio_lab import config
from qmio_lab.errors import InvalidCircuitError, InvalidShotsError

if TYPE_CHECKING:
    from qmio_lab.device.calibration import Calibration
    from qmio_lab.device.device import QmioDevice

ALLOWED_OPERATIONS = frozenset({"rz", "sx", "x", "ecr", "measure", "delay", "barrier"})
_HINT = "transpile it first: qiskit.transpile(circuit, backend)"


def check_shots(shots: Any) -> int:
    limit = int(config.get("device.max_shots"))
    if isinstance(shots, bool) or not isinstance(shots, int) or not 1 <= shots <= limit:
        raise InvalidShotsError(
            f"shots must be an integer from 1 to {limit}, got {shots!r}; "
            f"split larger runs into several jobs"
        )
    return shots


def has_measurement(circuit: QuantumCircuit) -> bool:
    """True when the circuit measures at least one qubit (without it, it returns no counts)."""
    return any(inst.name == "measure" for inst in circuit.data)


def _chip(chip: Calibration | QmioDevice) -> tuple[int, set[tuple[int, int]]]:
    """The chip's width and its native ECR directions ``(control, target)``."""
    couplers = getattr(chip, "couplers", None)
    if couplers is not None:  # a Calibration
        return chip.num_qubits, {(c.control, c.target) for c in couplers}
    return chip.num_qubits, set(chip.topology.edges)


def _not_native(circuit: QuantumCircuit, edges: set[tuple[int, int]]) -> str | None:
    """What in ``circuit`` the chip cannot run as written (a non-native operation or an ECR off
    a native coupler direction), said as the end of a sentence; None when there is nothing."""
    for inst in circuit.data:
        name = inst.operation.name
        if name not in ALLOWED_OPERATIONS:
            return (f"uses {name!r}, which is not a native QMIO operation "
                    "(native: rz, sx, x, ecr, measure, delay)")
        if name == "ecr":
            pair = tuple(circuit.find_bit(q).index for q in inst.qubits)
            if pair not in edges:
                reverse = "; the chip has it the other way round" if pair[::-1] in edges else ""
                return f"applies ecr on qubits {pair}, which is not a native coupler direction{reverse}"
    return None


def is_native(circuit: QuantumCircuit, chip: Calibration | QmioDevice) -> bool:
    """True when ``circuit`` is written for the whole chip (``chip``: a Calibration or the
    device) in native operations on native ECR directions, so it runs without transpiling."""
    width, edges = _chip(chip)
    return circuit.num_qubits == width and _not_native(circuit, edges) is None


def check_circuit(circuit: QuantumCircuit, device: Calibration | QmioDevice) -> None:
    """Raise :class:`InvalidCircuitError` unless ``circuit`` can run on the chip as written:
    no wider than it, native operations on native ECR directions (those of the calibration, when
    given one: a day may lack a pair), and a measurement."""
    name = circuit.name
    width, edges = _chip(device)
    if circuit.num_qubits > width:
        raise InvalidCircuitError(
            f"circuit {name!r} uses {circuit.num_qubits} qubits; the QMIO QPU has "
            f"{width}. Use the emulator target for wider circuits."
        )
    fault = _not_native(circuit, edges)
    if fault is not None:
        raise InvalidCircuitError(f"circuit {name!r} {fault}; {_HINT}")
    if not has_measurement(circuit):
        raise InvalidCircuitError(
            f"circuit {name!r} has no measurement, so it returns no counts; add measure "
            "instructions (e.g. circuit.measure_all()) before running it on the QPU"
        )
