"""Readout-error mitigation (issue 15): mthree with the calibration's confusion matrices, or
with its own calibration circuits, behind the primitives' ``measure_mitigation`` /
``resilience_level=1``, on a real QPU service. Mitigated figures must come closer to the ideal
than raw ones by more than their statistical noise, on the qubits the job really read."""
from __future__ import annotations

import mthree
import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

import qmio_lab
from qmio_lab.emulator import EmulatorBackend
from qmio_lab.mitigation import ReadoutMitigator, calibration_of, measured_qubits, readout_matrices
from qmio_lab.primitives import EstimatorV2, SamplerV2
from qmio_lab.qpu import QPUBackend
from support.circuits import ghz
from support.services import ServiceProcess

STILL = {"DASK_QMIO__QPU__DRIFT_RESOLUTION_S": "1000000000"}  # one calibration for the module


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    service = ServiceProcess(tmp_path_factory.mktemp("mitigation"), env=STILL).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def backend(svc):
    return QPUBackend(svc.client("alice"))


def flipped(n: int, ones: tuple[int, ...]) -> QuantumCircuit:
    """|x> with X on ``ones``: every Z expectation is ±1 but for readout (and tiny gate) errors."""
    qc = QuantumCircuit(n, name="flipped")
    qc.x(list(ones))
    return qc


def test_matrices_are_the_calibrations_readout_errors(backend):
    cal = calibration_of(backend)
    mats = readout_matrices(cal)
    assert len(mats) == len(cal.qubits) == 32
    for q, m in zip(cal.qubits, mats):
        assert m[1, 0] == pytest.approx(q.readout_p10) and m[0, 1] == pytest.approx(q.readout_p01)
        np.testing.assert_allclose(m.sum(axis=0), 1.0)  # columns: the state prepared


def test_mitigated_parity_of_ghz_is_closer_to_ideal(backend):
    """<ZZZZ> and <XXXX> of GHZ-4 are 1; readout errors shrink both, mitigation restores what
    readout took (gate errors stay, so it need not reach 1)."""
    circuit = ghz(4).remove_final_measurements(inplace=False)
    obs = [SparsePauliOp("ZZZZ"), SparsePauliOp("XXXX")]
    raw = EstimatorV2(backend, default_precision=0.01).run([(circuit, obs)]).result()[0]
    mit = EstimatorV2(backend, default_precision=0.01, options={"resilience_level": 1}).run([(circuit, obs)]).result()[0]
    assert mit.metadata["measure_mitigation"] == "calibration"
    for k in range(2):
        gain = mit.data.evs[k] - raw.data.evs[k]
        assert gain > 5 * np.hypot(raw.data.stds[k], mit.data.stds[k]), (raw.data.evs, mit.data.evs)
        assert mit.data.evs[k] < 1 + 4 * mit.data.stds[k]
        assert mit.data.stds[k] > raw.data.stds[k]  # mitigation costs variance (mthree's overhead)


def test_each_qubit_is_corrected_with_its_own_matrix(backend):
    """A basis state's single-qubit Z values are ±(1 - 2·p) raw; corrected they are ±1 within
    noise. A wrong qubit mapping would leave another qubit's error in, visibly at this precision."""
    ones = (1, 2)
    circuit = flipped(4, ones)
    labels = ["IIIZ", "IIZI", "IZII", "ZIII"]
    obs = [SparsePauliOp(label) for label in labels]
    ideal = np.array([-1.0 if k in ones else 1.0 for k in range(4)])
    estimator = EstimatorV2(backend, default_precision=0.004, measure_mitigation=True)
    mit = estimator.run([(circuit, obs)]).result()[0]
    estimator.options.resilience.measure_mitigation = False  # options may change between runs
    raw = estimator.run([(circuit, obs)]).result()[0]
    assert "measure_mitigation" not in raw.metadata
    assert np.all(np.abs(mit.data.evs - ideal) < 4 * mit.data.stds + 0.004), (mit.data.evs, raw.data.evs)
    assert np.all(np.abs(raw.data.evs - ideal) > np.abs(mit.data.evs - ideal))


def test_sampler_adds_corrected_distributions(backend):
    circuit = flipped(3, (0, 2))
    circuit.measure_all()
    result = SamplerV2(backend, measure_mitigation=True).run([circuit], shots=20000).result()[0]
    raw = result.data.meas.get_counts()
    assert sum(raw.values()) == 20000  # the shots themselves stay raw
    (quasi,) = result.metadata["quasi_dists"]
    assert isinstance(quasi, mthree.classes.QuasiDistribution)
    assert quasi.get("101", 0) > raw["101"] / 20000 + 0.02
    assert quasi.get("101", 0) == pytest.approx(1.0, abs=0.02)  # what readout took; the X gates' errors stay


def test_mthree_measures_the_backend_itself(backend):
    """mthree's own calibration circuits (M3Mitigation(backend), which needs configuration())
    measure the confusion the calibration states."""
    config = backend.configuration()
    assert config.num_qubits == 32 and config.max_experiments == backend.max_circuits and not config.simulator
    cal = calibration_of(backend)
    qubits = [3, 4, 10]
    mit = mthree.M3Mitigation(backend)
    with pytest.warns(qmio_lab.errors.IgnoredOptionWarning, match="job_tags"):  # IBM's tags: nothing to do here
        mit.cals_from_system(qubits, shots=20000)
    for q in qubits:
        measured = mit.single_qubit_cals[q]
        expected = readout_matrices(cal)[q]
        for i, j in ((1, 0), (0, 1)):
            assert measured[i, j] == pytest.approx(expected[i, j], rel=0.25, abs=0.003), (q, measured, expected)


def test_measured_calibration_as_a_primitive_option(backend):
    circuit = ghz(4).remove_final_measurements(inplace=False)  # <ZZZZ> = 1
    options = {"resilience": {"measure_mitigation": True, "measure_calibration": "measure",
                              "measure_calibration_shots": 8000}}
    raw = EstimatorV2(backend, default_precision=0.01).run([(circuit, "ZZZZ")]).result()[0]
    with pytest.warns(qmio_lab.errors.IgnoredOptionWarning):
        mit = EstimatorV2(backend, default_precision=0.01, options=options).run([(circuit, "ZZZZ")]).result()[0]
    assert mit.metadata["measure_mitigation"] == "measure"
    assert mit.data.evs - raw.data.evs > 4 * np.hypot(raw.data.stds, mit.data.stds)


def test_options_are_checked_and_say_what_exists():
    with pytest.raises(ValueError, match=r"unknown EstimatorV2 option\(s\) \['resiliense_level'\] \(did you mean 'resilience_level'\?\)"):
        EstimatorV2("simulator", options={"resiliense_level": 1})
    with pytest.raises(ValueError, match="unknown resilience option"):
        EstimatorV2("simulator", options={"resilience": {"zne_mitigation": True}})
    job = EstimatorV2("simulator", resilience_level=2).run([(ghz(2).remove_final_measurements(inplace=False), "ZZ")])
    with pytest.raises(ValueError, match="resilience_level 2 is not available: 0 .* or 1"):
        job.result()
    bad = SamplerV2("simulator", options={"resilience": {"measure_mitigation": True, "measure_calibration": "guess"}})
    with pytest.raises(ValueError, match="measure_calibration must be one of"):
        bad.run([ghz(2)]).result()


def test_a_noiseless_emulator_has_nothing_to_mitigate_and_says_so():
    """Refused before a shot is spent (no Dask cluster is even started)."""
    emulator = EmulatorBackend()
    with pytest.raises(ValueError, match="without readout noise.*noise='calibration:<id>'.*source='measure'"):
        ReadoutMitigator(emulator).begin_run()


def test_mitigation_needs_every_bit_measured_once():
    qc = QuantumCircuit(2, 3)
    qc.measure(0, 0)
    qc.measure(1, 1)
    with pytest.raises(ValueError, match=r"bit\(s\) \[2\]"):
        measured_qubits(qc)
    qc = QuantumCircuit(1, 2)
    qc.measure(0, 0)
    qc.measure(0, 1)
    with pytest.raises(ValueError, match="several"):
        measured_qubits(qc)
