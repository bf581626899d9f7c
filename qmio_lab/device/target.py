"""The qiskit ``Target`` of the chip, with durations and errors from a calibration.

One source of truth: the transpiler picks good qubits from the same figures the noise model
simulates.
"""
from __future__ import annotations

from qiskit.circuit import Delay, Measure, Parameter
from qiskit.circuit.library import ECRGate, RZGate, SXGate, XGate
from qiskit.transpiler import InstructionProperties, QubitProperties, Target

from qmio_lab.device.calibration import Calibration


def build_target(cal: Calibration, dt: float) -> Target:
    target = Target(
        description=f"QMIO simulated QPU, calibration {cal.id} at {cal.effective_at.isoformat()}",
        num_qubits=cal.num_qubits,
        dt=dt,
        qubit_properties=[QubitProperties(t1=q.t1, t2=q.t2, frequency=q.frequency) for q in cal.qubits],
    )
    singles = range(cal.num_qubits)
    target.add_instruction(
        RZGate(Parameter("theta")),
        {(i,): InstructionProperties(duration=0.0, error=0.0) for i in singles},
    )
    for gate in (SXGate(), XGate()):
        target.add_instruction(gate, {
            (i,): InstructionProperties(duration=cal.qubits[i].sx_duration, error=cal.qubits[i].sx_error)
            for i in singles
        })
    target.add_instruction(ECRGate(), {
        (c.control, c.target): InstructionProperties(duration=c.ecr_duration, error=c.ecr_error)
        for c in cal.couplers
    })
    target.add_instruction(Measure(), {
        (i,): InstructionProperties(
            duration=cal.qubits[i].measure_duration, error=cal.qubits[i].readout_error
        )
        for i in singles
    })
    target.add_instruction(Delay(Parameter("t")), {(i,): None for i in singles})
    return target
