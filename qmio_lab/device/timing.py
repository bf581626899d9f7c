"""How long a job holds the QPU: on QMIO's hardware, and on this twin's simulator.

The estimate is made at admission, before any simulation, so that a job that would hold the
shared QPU for hours is refused with its figure instead of discovered by a deadline. Two
clocks matter. The hardware's: a call's overhead (compilation and upload) plus every shot's
repetition period, fitted to QMIO's logged calls. The twin's: what sampling the circuit costs
on this host, which grows with 4^width on the exact path (one density matrix for all shots)
and with shots x 2^width on the shot-by-shot path (mid-circuit measurements, resets, wide
circuits), see :mod:`qmio_lab.device.sampling`.

``qmio.device.timing`` says which clock the twin's QPU keeps: ``hardware`` holds the QPU for
the hardware's time (in device time, so ``qmio.qpu.time_scale`` speeds it up), so queue
positions, ETAs, fair share and quotas cost what they cost at QMIO; ``instant`` releases it as
soon as the simulation is done, for tests and loops that must be quick.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from qiskit import QuantumCircuit

from qmio_lab import config
from qmio_lab.device.calibration import Calibration
from qmio_lab.device.sampling import terminal_measurements
from qmio_lab.device.execution import SERIAL_QUBITS
from qmio_lab.errors import AdmissionError

TIMING_MODES = ("hardware", "instant")


@dataclass(frozen=True)
class CircuitProfile:
    """What the cost of sampling a native circuit depends on."""

    width: int  # qubits it touches (the simulator leaves the others out)
    operations: int  # instructions other than barriers
    exact: bool  # sampled from one exact distribution, not shot by shot
    duration_s: float = 0.0  # one shot on the chip, gates and readout (0 when no calibration was given)

    @classmethod
    def of(cls, circuit: QuantumCircuit, calibration: Calibration | None = None) -> CircuitProfile:
        """``circuit`` is native, on the chip's qubits; with ``calibration``, its one-shot
        duration is worked out from the gate and readout durations that calibration states."""
        index = {q: i for i, q in enumerate(circuit.qubits)}
        used: set[int] = set()
        operations = 0
        for inst in circuit.data:
            if inst.name != "barrier":
                operations += 1
                used.update(index[q] for q in inst.qubits)
        exact_max = int(config.get("device.exact_sampling_max_qubits"))
        exact = len(used) <= exact_max and terminal_measurements(circuit, circuit.num_qubits) is not None
        duration = circuit_duration_s(circuit, calibration) if calibration is not None else 0.0
        return cls(width=max(len(used), 1), operations=operations, exact=exact, duration_s=duration)


def circuit_duration_s(circuit: QuantumCircuit, calibration: Calibration) -> float:
    """One shot of a native circuit on the chip: the longest path through its instructions,
    each as long as the calibration says (rz is virtual; a reset is a measurement and a flip)."""
    index = {q: i for i, q in enumerate(circuit.qubits)}
    ecr = {(c.control, c.target): c.ecr_duration for c in calibration.couplers}
    busy = [0.0] * circuit.num_qubits
    for inst in circuit.data:
        qubits = [index[q] for q in inst.qubits]
        name = inst.name
        if name in ("sx", "x"):
            length = calibration.qubits[qubits[0]].sx_duration
        elif name == "ecr":
            length = ecr.get((qubits[0], qubits[1]), 0.0)
        elif name == "measure":
            length = calibration.qubits[qubits[0]].measure_duration
        elif name == "reset":
            length = calibration.qubits[qubits[0]].measure_duration + calibration.qubits[qubits[0]].sx_duration
        elif name == "delay":
            length = float(inst.operation.duration or 0.0)
            if inst.operation.unit == "dt":
                length *= float(config.get("device.dt"))
            elif inst.operation.unit != "s":
                length *= {"ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12}.get(inst.operation.unit, 0.0)
        else:  # rz is virtual; a barrier only lines its qubits up
            length = 0.0
        if not qubits:
            continue
        start = max(busy[q] for q in qubits)  # a barrier lines its qubits up
        for q in qubits:
            busy[q] = start + length
    return max(busy, default=0.0)


@dataclass(frozen=True)
class JobTime:
    """A job's estimated time: ``simulation_s`` on this twin, ``hardware_s`` on QMIO itself."""

    simulation_s: float
    hardware_s: float
    exact: bool  # every circuit on the exact path
    mode: str = "instant"  # the service's timing mode: which of the two the QPU is held for

    @property
    def hold_s(self) -> float:
        """Device seconds the job is expected to hold the QPU under the service's timing mode."""
        return self.hardware_s if self.mode == "hardware" else self.simulation_s

    def describe(self) -> str:
        path = "sampled exactly" if self.exact else "simulated shot by shot"
        return f"about {self.simulation_s:,.0f} s here ({path}); {self.hardware_s:,.1f} s on QMIO's hardware"


class TimingModel:
    """Estimates from the figures in ``qmio.device.hardware_timing`` (the hardware) and
    ``qmio.device.simulation_cost`` (this host)."""

    def __init__(self, mode: str | None = None) -> None:
        self.mode = str(mode or config.get("device.timing", "instant")).strip().lower()
        if self.mode not in TIMING_MODES:
            raise ValueError(f"qmio.device.timing must be one of {', '.join(TIMING_MODES)}; got {self.mode!r}")
        hw = config.get("device.hardware_timing")
        self.call_overhead_s = float(hw["call_overhead_s"])
        self.circuit_overhead_s = float(hw["circuit_overhead_s"])
        self.repetition_period_s = float(hw["repetition_period_s"])
        sim = config.get("device.simulation_cost")
        self.sim_circuit_s = float(sim["per_circuit_s"])
        self.sim_density_s = float(sim["density_matrix_s"])
        self.sim_shot_s = float(sim["per_shot_s"])
        self.sim_amplitude_s = float(sim["statevector_s"])
        self.sim_wide_amplitude_s = float(sim["statevector_wide_s"]) * 2 / max(os.cpu_count() or 1, 1)

    def simulation_s(self, profile: CircuitProfile, shots: int) -> float:
        """Seconds this host needs to sample ``shots`` of a circuit with ``profile``."""
        if profile.exact:
            return self.sim_circuit_s + self.sim_density_s * profile.operations * 4.0 ** profile.width
        per_amplitude = self.sim_wide_amplitude_s if profile.width > SERIAL_QUBITS else self.sim_amplitude_s
        per_shot = self.sim_shot_s + per_amplitude * profile.operations * 2.0 ** profile.width
        return self.sim_circuit_s + shots * per_shot

    def hardware_s(self, circuits: int, shots: int, repetition_period_s: float | None = None) -> float:
        """Seconds QMIO's hardware takes for ``circuits`` circuits of ``shots`` shots in one call,
        one shot every ``repetition_period_s`` (None: the default period)."""
        period = self.repetition_period_s if repetition_period_s is None else repetition_period_s
        return self.call_overhead_s + circuits * (self.circuit_overhead_s + shots * period)

    def check_repetition_period(self, period: float | None, profiles: list[tuple[CircuitProfile, int]]) -> None:
        """A shot must fit its repetition period: the hardware refuses a period shorter than the
        circuit (gates and readout), so does this twin, with both figures."""
        if period is None:
            return
        longest = max((profile.duration_s for profile, _ in profiles), default=0.0)
        if period < longest:
            raise AdmissionError(
                f"repetition_period {period * 1e6:.1f} us is shorter than the circuit, which takes "
                f"{longest * 1e6:.1f} us a shot on the chip (gates and readout); ask for at least that, or "
                f"leave it out for the default {self.repetition_period_s * 1e6:.0f} us",
                repetition_period_s=period, circuit_s=longest)

    def job(self, profiles: list[tuple[CircuitProfile, int]], shots: int,
            repetition_period_s: float | None = None) -> JobTime:
        """The estimate for a job: each profile with how many circuits share it (parameter rows)."""
        simulation = sum(count * self.simulation_s(profile, shots) for profile, count in profiles)
        circuits = sum(count for _, count in profiles)
        return JobTime(simulation_s=simulation, hardware_s=self.hardware_s(circuits, shots, repetition_period_s),
                       exact=all(profile.exact for profile, _ in profiles), mode=self.mode)
