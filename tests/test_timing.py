"""The time model: QMIO's hardware time for a call, and this twin's cost of simulating it."""
from __future__ import annotations

import pytest
from qiskit import QuantumCircuit, transpile

from qmio_lab.device import QmioDevice
from qmio_lab.device.timing import CircuitProfile, TimingModel

from support.circuits import ghz


@pytest.fixture(scope="module")
def native(device: QmioDevice):
    target = device.target(device.calibration)
    return lambda circuit: transpile(circuit, target=target, optimization_level=1, seed_transpiler=1)


def test_hardware_time_matches_qmios_logged_calls():
    """QMIO's logs: 10,000 shots take 5.8-6.3 s a call, 300 shots took 1.09 s."""
    model = TimingModel()
    assert model.hardware_s(1, 10000) == pytest.approx(6.0, rel=0.10)
    assert model.hardware_s(1, 300) == pytest.approx(1.1, rel=0.20)


def test_profile_follows_the_sampling_path(native):
    end_measured = CircuitProfile.of(native(ghz(4)))
    assert end_measured.width == 4 and end_measured.exact and end_measured.operations > 4
    mid = QuantumCircuit(2, 3)
    mid.h(0)
    mid.measure(0, 0)
    mid.cx(0, 1)  # a measured qubit used again: shot by shot
    mid.measure([0, 1], [1, 2])
    assert not CircuitProfile.of(native(mid)).exact
    assert not CircuitProfile.of(native(ghz(12))).exact  # beyond exact sampling's width


def test_simulation_estimate_grows_as_the_simulator_works(native):
    model = TimingModel()
    exact = CircuitProfile.of(native(ghz(4)))
    # one density matrix serves every shot on the exact path; shot by shot, each shot costs
    assert model.simulation_s(exact, 100000) == model.simulation_s(exact, 100)
    wide = CircuitProfile.of(native(ghz(20)))
    assert model.simulation_s(wide, 2000) == pytest.approx(20 * model.simulation_s(wide, 100), rel=0.01)
    assert model.simulation_s(wide, 100) > 100 * model.simulation_s(CircuitProfile.of(native(ghz(12))), 100) / 2 ** 6


def test_a_job_estimate_counts_every_circuit(native):
    model = TimingModel()
    profile = CircuitProfile.of(native(ghz(3)))
    one = model.job([(profile, 1)], 1000)
    many = model.job([(profile, 50)], 1000)
    assert many.simulation_s == pytest.approx(50 * one.simulation_s)
    # on QMIO, the call overhead is paid once and the shots of every circuit add up
    assert many.hardware_s - model.call_overhead_s == pytest.approx(50 * (one.hardware_s - model.call_overhead_s))
    assert one.exact and "sampled exactly" in one.describe()
