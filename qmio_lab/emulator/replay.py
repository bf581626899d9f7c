"""Replay the QPU's noise on the emulator: any stored calibration snapshot, any circuit.

A circuit is compiled for the chip as that calibration saw it (the device ``Target`` built from
the snapshot, so the transpiler picks the qubits the QPU would), the idle qubits are dropped,
and Aer runs it with the noise model built from the same figures. A circuit that is already
native (e.g. the exact circuit a QPU job ran) keeps its physical qubits, so its emulated counts
answer "what would that job give under this calibration".
"""
from __future__ import annotations

from collections.abc import Callable

from qiskit import QuantumCircuit

from qmio_lab import config
from qmio_lab.compilation import compile_for
from qmio_lab.device.calibration import Calibration
from qmio_lab.device.compact import compact
from qmio_lab.device.rules import is_native
from qmio_lab.device.target import build_target
from qmio_lab.errors import CalibrationError

CALIBRATION_PREFIX = "calibration:"
CalibrationResolver = Callable[[str], Calibration]


def qpu_calibration(cal_id: str) -> Calibration:
    """Fetch a stored snapshot from the QPU service (imported lazily: the service is optional)."""
    try:
        from qmio_lab.qpu import default_client
    except ImportError as exc:
        raise CalibrationError(
            f"cannot look up calibration {cal_id!r}: the QPU client (qmio_lab.qpu) is not "
            "available; pass the Calibration object itself as noise=..."
        ) from exc
    return default_client().get_calibration(cal_id)


def resolve_noise(
    noise: Calibration | str | None, resolver: CalibrationResolver = qpu_calibration,
) -> Calibration | None:
    """``None`` (noiseless), a Calibration, or ``"calibration:<id>"`` looked up by ``resolver``."""
    if noise is None or isinstance(noise, Calibration):
        return noise
    if isinstance(noise, str) and noise.startswith(CALIBRATION_PREFIX) and len(noise) > len(CALIBRATION_PREFIX):
        cal = resolver(noise[len(CALIBRATION_PREFIX):])
        if not isinstance(cal, Calibration):
            raise CalibrationError(f"{noise!r} resolved to {type(cal).__name__}, not a Calibration")
        return cal
    raise CalibrationError(
        f"noise must be None, a Calibration or 'calibration:<id>' "
        f"(e.g. 'calibration:cal-20261123T070000Z-s2024'), got {noise!r}"
    )


def to_device(
    circuit: QuantumCircuit, cal: Calibration, seed: int | None = None,
) -> tuple[QuantumCircuit, tuple[int, ...]]:
    """The circuit compiled for the chip under ``cal``, compacted to the qubits it uses: what
    :func:`~qmio_lab.device.execution.run_noisy` takes, as the QPU's compiler gives it.

    Returns the compact circuit and the physical qubit of each of its qubits.
    """
    dt = float(config.get("device.dt"))
    if not is_native(circuit, cal):
        if circuit.num_qubits > cal.num_qubits:
            raise CalibrationError(
                f"circuit {circuit.name!r} uses {circuit.num_qubits} qubits; noise replay needs "
                f"at most the chip's {cal.num_qubits}. Run it noiseless (noise=None) instead."
            )
        circuit = compile_for(circuit, build_target(cal, dt), level=1, seed=seed)
    return compact(circuit, dt)
