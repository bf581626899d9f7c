from datetime import timedelta
from statistics import median

import pytest

from qmio_lab.device import Calibration, QmioDevice
from qmio_lab.device.generation import coherence_limited_error
from qmio_lab.errors import CalibrationError

from support.moments import MONDAY


def _many_snapshots(n_seeds: int = 60) -> list[Calibration]:
    return [QmioDevice(seed=s, calibrated_at=MONDAY + timedelta(days=s)).calibration for s in range(n_seeds)]


def test_medians_match_toshiko_and_t2_bounded():
    cals = _many_snapshots()
    t1 = [v for c in cals for v in c.qubit_metric("t1")]
    t2 = [v for c in cals for v in c.qubit_metric("t2")]
    assert median(t1) == pytest.approx(54e-6, rel=0.10)
    assert median(t2) == pytest.approx(66e-6, rel=0.10)
    assert all(q.t2 <= 2 * q.t1 for c in cals for q in c.qubits)
    # realistic spread: qubits differ, and each snapshot has a few weak qubits
    assert max(t1) / min(t1) > 4
    assert all(sum(t < 20e-6 for t in c.qubit_metric("t1")) >= 2 for c in cals)


def test_snapshot_fields_are_physical(device: QmioDevice):
    cal = device.calibration
    assert cal.id and cal.taken_at == MONDAY
    assert len(cal.qubits) == 32 and len(cal.couplers) == len(device.topology.edges)
    for q in cal.qubits:
        assert 4e9 <= q.frequency <= 6e9
        assert 0 < q.readout_p10 < 0.5 and 0 < q.readout_p01 < 0.5
        assert 0 < q.sx_error < 0.05 and q.sx_duration > 0 and q.measure_duration > 0
        # no gate may be better than T1/T2 allow, or the noise model would be inconsistent
        assert q.sx_error >= coherence_limited_error([q], q.sx_duration)
    for c in cal.couplers:
        assert (c.control, c.target) in device.topology.edges
        assert 0 < c.ecr_error < 0.5 and c.ecr_duration > 0


def test_json_round_trip(device: QmioDevice):
    cal = device.calibration
    assert Calibration.from_json(cal.to_json()) == cal
    drifted = device.calibration_at(MONDAY + timedelta(hours=30))
    assert Calibration.from_json(drifted.to_json()) == drifted
    with pytest.raises(ValueError, match="not a qmio_lab calibration"):
        Calibration.from_json('{"id": "x"}')


def test_same_seed_same_calibration_other_seed_differs():
    a = QmioDevice(seed=11, calibrated_at=MONDAY)
    b = QmioDevice(seed=11, calibrated_at=MONDAY)
    c = QmioDevice(seed=12, calibrated_at=MONDAY)
    assert a.calibration == b.calibration
    assert a.calibration.qubits != c.calibration.qubits
    later = MONDAY + timedelta(days=1)
    assert a.calibrate(at=later) == b.calibrate(at=later)
    assert a.calibration_at(later + timedelta(hours=5)) == b.calibration_at(later + timedelta(hours=5))


def test_calibrate_becomes_current_and_history_is_ordered():
    dev = QmioDevice(seed=3, calibrated_at=MONDAY)
    first = dev.calibration
    second = dev.calibrate(at=MONDAY + timedelta(days=1))
    assert dev.calibration == second != first
    assert [c.id for c in dev.history] == [first.id, second.id]
    # the snapshot in force depends on the time asked about
    assert dev.calibration_at(MONDAY + timedelta(hours=2)).id == first.id
    assert dev.calibration_at(MONDAY + timedelta(days=1, hours=2)).id == second.id
    assert dev.calibration_by_id(first.id) == first
    with pytest.raises(CalibrationError, match="no calibration existed"):
        dev.calibration_at(MONDAY - timedelta(days=1))
    with pytest.raises(CalibrationError, match="unknown calibration id"):
        dev.calibration_by_id("cal-nope")


def test_drift_is_deterministic_smooth_and_worsens_with_age(device: QmioDevice):
    fresh = device.calibration_at(MONDAY)
    assert fresh == device.calibration
    day = device.calibration_at(MONDAY + timedelta(days=1))
    week = device.calibration_at(MONDAY + timedelta(days=7))
    assert week.id == fresh.id and week.age == timedelta(days=7)
    assert device.calibration_at(MONDAY + timedelta(days=7)) == week
    # T1 random-walks: a few qubits improve, most get worse
    changes = [w.t1 / f.t1 for w, f in zip(week.qubits, fresh.qubits)]
    assert 0 < sum(c > 1 for c in changes) < sum(c < 1 for c in changes)
    assert median(week.qubit_metric("t1")) < median(fresh.qubit_metric("t1"))
    assert all(q.t2 <= 2 * q.t1 for q in week.qubits)
    for metric in ("readout_error", "sx_error"):
        assert median(fresh.qubit_metric(metric)) < median(day.qubit_metric(metric)) < median(week.qubit_metric(metric))
    assert median(c.ecr_error for c in week.couplers) > 2 * median(c.ecr_error for c in fresh.couplers)
    # smooth: one minute of ageing changes T1 by far less than a day does
    a = device.calibration_at(MONDAY + timedelta(hours=10))
    b = device.calibration_at(MONDAY + timedelta(hours=10, minutes=1))
    assert max(abs(x.t1 / y.t1 - 1) for x, y in zip(a.qubits, b.qubits)) < 0.01


def test_two_calibrations_in_one_second_keep_distinct_ids():
    from datetime import timedelta

    from qmio_lab.device import QmioDevice
    from support.moments import MONDAY

    device = QmioDevice(seed=5, calibrated_at=MONDAY)
    again = device.calibrate(at=MONDAY + timedelta(milliseconds=300))
    third = device.calibrate(at=MONDAY + timedelta(milliseconds=600))
    assert [c.id for c in device.history] == ["cal-20261123T073000Z-s5", again.id, third.id]
    assert again.id == "cal-20261123T073000Z-s5-2" and third.id == "cal-20261123T073000Z-s5-3"
    assert device.calibration is third and device.calibration_by_id(again.id) is again
