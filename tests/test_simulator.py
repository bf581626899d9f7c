import math
from datetime import timedelta

import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.exceptions import QiskitError

from qmio_lab.device import QmioDevice, QmioSimulator
from qmio_lab.errors import InvalidCircuitError, InvalidShotsError

from circuits import ghz
from moments import MONDAY

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
    """A T1 experiment on the simulator recovers the calibrated T1 of that qubit."""
    sim = QmioSimulator(device, at=MONDAY)
    q = 4
    t1 = device.calibration.qubits[q].t1
    qc = QuantumCircuit(32, 1)
    qc.x(q)
    qc.delay(t1, q, unit="s")
    qc.measure(q, 0)
    counts = sim.run(qc, shots=SHOTS, seed_simulator=3).result().get_counts()
    p1 = counts.get("1", 0) / SHOTS
    cal = device.calibration.qubits[q]
    expected = math.exp(-1) * (1 - cal.readout_p01) + (1 - math.exp(-1)) * cal.readout_p10
    assert p1 == pytest.approx(expected, abs=0.04)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda qc: qc.h(0), "'h', which is not a native QMIO operation.*transpile"),
        (lambda qc: qc.cx(0, 5), "'cx', which is not a native.*transpile"),
        (lambda qc: qc.ecr(0, 1), r"ecr on qubits \(0, 1\), which is not a native coupler.*transpile"),
        (lambda qc: qc.ecr(5, 0), r"ecr on qubits \(5, 0\).*other way round.*transpile"),
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


def test_unknown_run_option_is_named(device: QmioDevice):
    qc = QuantumCircuit(1)
    qc.measure_all()
    with pytest.raises(TypeError, match="unknown run option.*'shot'"):
        QmioSimulator(device).run(qc, shot=10)


def test_edges_limits_accepted(device: QmioDevice):
    qc = QuantumCircuit(1)
    qc.x(0)
    qc.measure_all()
    sim = QmioSimulator(device, at=MONDAY)
    assert sum(sim.run(qc, shots=1).result().get_counts().values()) == 1
    assert sum(sim.run(qc, shots=100000).result().get_counts().values()) == 100000
