from datetime import timedelta

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.exceptions import QiskitError

from qmio_lab.device import QmioDevice, QmioSimulator
from qmio_lab.errors import IgnoredOptionWarning, InvalidCircuitError, InvalidShotsError

from support.circuits import ghz
from support.moments import MONDAY

SHOTS = 4000


def ghz_fidelity(sim: QmioSimulator, at) -> float:
    circuit = transpile(ghz(3), sim, seed_transpiler=1)
    counts = sim.run(circuit, shots=SHOTS, at=at, seed_simulator=5).result().get_counts()
    return (counts.get("000", 0) + counts.get("111", 0)) / SHOTS


def test_ghz_fresh_is_good_and_week_old_is_worse(device: QmioDevice):
    sim = QmioSimulator(device, at=MONDAY)
    fresh = ghz_fidelity(sim, MONDAY)
    week = ghz_fidelity(sim, MONDAY + timedelta(days=7))
    assert 0.6 < fresh < 0.99
    # binomial noise at 4000 shots is below 1%: a visible drop must be well beyond that
    assert week < fresh - 0.05


def test_result_metadata_names_the_calibration_and_only_active_qubits_simulated(device: QmioDevice):
    sim = QmioSimulator(device, at=MONDAY + timedelta(hours=3))
    circuits = [transpile(ghz(3), sim, seed_transpiler=1), transpile(ghz(2), sim, seed_transpiler=2)]
    result = sim.run(circuits, shots=100).result()
    assert result.calibration_id == device.calibration.id
    assert result.calibration_age_s == pytest.approx(3 * 3600)
    for exp, n in zip(result.results, (3, 2)):
        assert exp.metadata["calibration_id"] == device.calibration.id
        assert len(exp.metadata["physical_qubits"]) == n  # the other 29/30 qubits cost nothing
    assert sum(result.get_counts(0).values()) == 100
    assert set(result.get_counts(1)) <= {"00", "01", "10", "11"}


def test_delay_relaxes_with_t1(device: QmioDevice):
    """A T1 experiment on the simulator recovers the calibrated T1 of that qubit: the excited
    population after each wait, fitted to A·exp(-t/T1) + B (A and B absorb gate and readout
    error), gives back the calibration's T1 to within the fit's statistical error."""
    from scipy.optimize import curve_fit

    sim = QmioSimulator(device, at=MONDAY)
    q = 4
    t1 = device.calibration.qubits[q].t1
    shots = 20000
    waits = np.linspace(0.0, 4.0, 9) * t1
    excited = []
    for i, wait in enumerate(waits):
        qc = QuantumCircuit(32, 1)
        qc.x(q)
        if wait:
            qc.delay(round(wait / device.dt), q, unit="dt")
        qc.measure(q, 0)
        counts = sim.run(qc, shots=shots, seed_simulator=100 + i).result().get_counts()
        excited.append(counts.get("1", 0) / shots)
    excited = np.array(excited)
    sigma = np.sqrt(np.clip(excited * (1 - excited), 1e-6, None) / shots)
    (a, fitted, b), cov = curve_fit(lambda t, a, tau, b: a * np.exp(-t / tau) + b, waits, excited,
                                    p0=(0.9, 0.8 * t1, 0.02), sigma=sigma, absolute_sigma=True)
    error = float(np.sqrt(cov[1, 1]))
    assert error < 0.02 * t1, (fitted, error)  # the experiment pins T1 down to a percent or so
    assert abs(fitted - t1) < 4 * error, (fitted, t1, error)
    assert a > 0.85 and 0 <= b < 0.1  # an x gate of small error; readout error as calibrated


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda qc: qc.h(0), "'h', which is not a native QMIO operation.*transpile"),
        (lambda qc: qc.cx(0, 5), "'cx', which is not a native.*transpile"),
        (lambda qc: qc.ecr(0, 5), r"ecr on qubits \(0, 5\), which is not a native coupler.*transpile"),
        (lambda qc: qc.ecr(1, 0), r"ecr on qubits \(1, 0\).*other way round.*transpile"),  # the chip has 0 -> 1
    ],
)
def test_rejects_non_native_circuits(device: QmioDevice, build, message):
    qc = QuantumCircuit(32)
    build(qc)
    qc.measure_all()
    with pytest.raises(InvalidCircuitError, match=message):
        QmioSimulator(device).run(qc, shots=10)


def test_rejects_too_wide_unmeasured_and_too_many(device: QmioDevice):
    sim = QmioSimulator(device)
    wide = QuantumCircuit(33)
    wide.measure_all()
    with pytest.raises(InvalidCircuitError, match="uses 33 qubits; the QMIO QPU has 32.*emulator"):
        sim.run(wide)
    silent = QuantumCircuit(2)
    silent.x(0)
    with pytest.raises(InvalidCircuitError, match="no measurement.*measure_all"):
        sim.run(silent)
    ok = QuantumCircuit(1)
    ok.measure_all()
    with pytest.raises(InvalidCircuitError, match="1001 circuits.*at most 1000"):
        sim.run([ok] * 1001, shots=1)
    with pytest.raises(InvalidCircuitError, match="at least one circuit"):
        sim.run([])


@pytest.mark.parametrize("shots", [0, -5, 100001, 2.5, "100", True])
def test_rejects_bad_shots(device: QmioDevice, shots):
    qc = QuantumCircuit(1)
    qc.measure_all()
    with pytest.raises(InvalidShotsError, match="shots must be an integer from 1 to 100000") as info:
        QmioSimulator(device).run(qc, shots=shots)
    assert isinstance(info.value, QiskitError) and isinstance(info.value, ValueError)


def test_unknown_run_option_is_named_and_ignored(device: QmioDevice):
    """As the QPU and emulator backends: Qiskit's tools pass options written for Aer or IBM
    hardware; they are ignored with a warning naming them, the near miss with the option meant."""
    qc = QuantumCircuit(1)
    qc.x(0)
    qc.measure_all()
    sim = QmioSimulator(device, at=MONDAY)
    with pytest.warns(IgnoredOptionWarning, match=r"QMIO simulator ignores .*'shot' \(did you mean 'shots'\?\)"):
        counts = sim.run(qc, shot=10, shots=50).result().get_counts()
    assert sum(counts.values()) == 50  # shots, not the misspelt shot
    with pytest.raises(ValueError, match="meas_level=1 is not available"):
        sim.run(qc, meas_level=1)
    with pytest.raises(ValueError, match="memory must be True or False"):
        sim.run(qc, memory="yes")


def test_edges_limits_accepted(device: QmioDevice):
    qc = QuantumCircuit(1)
    qc.x(0)
    qc.measure_all()
    sim = QmioSimulator(device, at=MONDAY)
    assert sum(sim.run(qc, shots=1).result().get_counts().values()) == 1
    assert sum(sim.run(qc, shots=100000).result().get_counts().values()) == 100000


def test_a_calibration_taken_just_now_is_the_one_a_run_uses():
    """The simulator's clock moves in steps (for caching); a snapshot taken within the current
    step must still be found and used, not refused as 'no calibration existed'."""
    from datetime import datetime, timezone

    device = QmioDevice(seed=3, calibrated_at=datetime.now(timezone.utc))
    result = QmioSimulator(device).run(transpile(ghz(2), device.target(), seed_transpiler=1), shots=100).result()
    assert result.results[0].metadata["calibration_id"] == device.calibration.id


@pytest.mark.parametrize("seed", [7, 2024])  # 2024: the packaged chip
def test_every_coupler_runs_shot_by_shot(seed: int):
    """Mid-circuit measurements send a circuit to Aer's own shot loop with the noise model.
    Each coupler's ECR error must be a channel Aer can apply there, whatever mix of T1/T2
    regimes its two qubits have (a pair with T2 <= T1 on one side and T2 > T1 on the other
    once made Aer fail with "Kraus is empty", or crash the process)."""
    device = QmioDevice(seed=seed, calibrated_at=MONDAY)
    sim = QmioSimulator(device, at=MONDAY)
    circuits = []
    for coupler in device.calibration.couplers:
        qc = QuantumCircuit(32, 3)
        qc.x(coupler.control)
        qc.ecr(coupler.control, coupler.target)
        qc.measure(coupler.control, 0)  # mid-circuit: the qubit is flipped and read again
        qc.x(coupler.control)
        qc.measure(coupler.control, 1)
        qc.measure(coupler.target, 2)
        circuits.append(qc)
    for coupler, circuit in zip(device.calibration.couplers, circuits):
        counts = sim.run(circuit, shots=200, seed_simulator=3).result().get_counts()
        assert sum(counts.values()) == 200
        # the second read of the control is the first one flipped, but for readout error
        assert sum(n for bits, n in counts.items() if bits[-1] != bits[-2]) > 150, (coupler, counts)
