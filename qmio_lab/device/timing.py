"""How long a job holds the QPU: on QMIO's hardware, and on this twin's simulator.

The estimate is made at admission, before any simulation, so that a job that would hold the
shared QPU for hours is refused with its figure instead of discovered by a deadline. Two
clocks matter. The hardware's: a call's overhead (compilation and upload) plus every shot's
repetition period, fitted to QMIO's logged calls. The twin's: what sampling the circuit costs
on this host, which grows with 4^width on the exact path (one density matrix for all shots)
and with shots x 2^width on the shot-by-shot path (mid-circuit measurements, resets, wide
circuits), see :mod:`qmio_lab.device.sampling`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from qiskit import QuantumCircuit

from qmio_lab import config
from qmio_lab.device.sampling import terminal_measurements
from qmio_lab.device.execution import SERIAL_QUBITS


@dataclass(frozen=True)
class CircuitProfile:
    """What the cost of sampling a native circuit depends on."""

    width: int  # qubits it touches (the simulator leaves the others out)
    operations: int  # instructions other than barriers
    exact: bool  # sampled from one exact distribution, not shot by shot

    @classmethod
    def of(cls, circuit: QuantumCircuit) -> CircuitProfile:
        index = {q: i for i, q in enumerate(circuit.qubits)}
        used: set[int] = set()
        operations = 0
        for inst in circuit.data:
            if inst.name != "barrier":
                operations += 1
                used.update(index[q] for q in inst.qubits)
        exact_max = int(config.get("device.exact_sampling_max_qubits"))
        exact = len(used) <= exact_max and terminal_measurements(circuit, circuit.num_qubits) is not None
        return cls(width=max(len(used), 1), operations=operations, exact=exact)


@dataclass(frozen=True)
class JobTime:
    """A job's estimated time: ``simulation_s`` on this twin, ``hardware_s`` on QMIO itself."""

    simulation_s: float
    hardware_s: float
    exact: bool  # every circuit on the exact path

    def describe(self) -> str:
        path = "sampled exactly" if self.exact else "simulated shot by shot"
        return f"about {self.simulation_s:,.0f} s here ({path}); {self.hardware_s:,.1f} s on QMIO's hardware"


class TimingModel:
    """Estimates from the figures in ``qmio.device.hardware_timing`` (the hardware) and
    ``qmio.device.simulation_cost`` (this host)."""

    def __init__(self) -> None:
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

    def hardware_s(self, circuits: int, shots: int) -> float:
        """Seconds QMIO's hardware takes for ``circuits`` circuits of ``shots`` shots in one call."""
        return self.call_overhead_s + circuits * (self.circuit_overhead_s + shots * self.repetition_period_s)

    def job(self, profiles: list[tuple[CircuitProfile, int]], shots: int) -> JobTime:
        """The estimate for a job: each profile with how many circuits share it (parameter rows)."""
        simulation = sum(count * self.simulation_s(profile, shots) for profile, count in profiles)
        circuits = sum(count for _, count in profiles)
        return JobTime(simulation_s=simulation, hardware_s=self.hardware_s(circuits, shots),
                       exact=all(profile.exact for profile, _ in profiles))
