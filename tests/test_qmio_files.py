"""QMIO calibration files, both ways: a real-schema excerpt (our own fixture, values in the
published 2025 ranges, with a garbage T1, a T2 above 2·T1 and a pair the day lacked)."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from qmio_lab.device import QmioDevice
from qmio_lab.device.qmio_files import (
    file_name, from_qmio, read_directory, read_file, time_of, to_qmio, write_file,
)
from qmio_lab.device.target import build_target
from qmio_lab.errors import CalibrationFileError

DATA = Path(__file__).parent / "data" / "qmio_calibrations"
CURRENT = DATA / "2025_06_05__12_03_44.json"
LEGACY = DATA / "2024_03_11__11_58_02.json"
QMIO_PAIRS = [(0, 1), (2, 1), (2, 3), (4, 3), (5, 4), (6, 3), (6, 12), (7, 0), (7, 9), (9, 10), (11, 10), (11, 12),
              (13, 21), (14, 11), (14, 18), (15, 8), (15, 16), (18, 17), (18, 19), (20, 19), (22, 21), (22, 31),
              (23, 20), (23, 30), (24, 17), (24, 27), (25, 16), (25, 26), (26, 27), (28, 27), (28, 29), (30, 29),
              (30, 31)]


def same_figures(a, b) -> bool:
    """Equal up to the last bits a fidelity's ``1 - error`` changes."""
    assert (a.id, a.taken_at, len(a.qubits), len(a.couplers)) == (b.id, b.taken_at, len(b.qubits), len(b.couplers))
    pairs = [*zip(a.qubits, b.qubits), *zip(a.couplers, b.couplers)]
    return all(vars(x) == pytest.approx(vars(y), rel=1e-12, abs=1e-15) for x, y in pairs)


def test_a_current_file_is_read_with_its_units_repairs_and_missing_pair():
    doc = json.loads(CURRENT.read_text())
    imported = read_file(CURRENT, QMIO_PAIRS)
    cal = imported.calibration
    assert cal.taken_at == datetime(2025, 6, 5, 12, 3, 44, tzinfo=timezone.utc)
    assert cal.id == "cal-20250605T120344Z-qmio" and cal.num_qubits == 32
    q3 = doc["Qubits"]["q[3]"]
    assert cal.qubits[3].t1 == q3["T1 (s)"] and cal.qubits[3].t2 == q3["T2 (s)"]
    assert cal.qubits[3].readout_error == pytest.approx(1 - q3["Fidelity readout"])
    assert cal.qubits[3].sx_error == pytest.approx(1 - doc["Q1Gates"]["q[3]"]["SX"]["Fidelity(RB)"])
    assert cal.qubits[3].measure_duration == q3["Readout duration (s)"]
    # the garbage fit is kept and flagged; the impossible T2 is clamped, with a note
    assert cal.qubits[9].t1 == 0.3 and any(n.startswith("q[9]: T1 = 0.3 s") for n in imported.notes)
    assert cal.qubits[17].t2 == pytest.approx(2 * cal.qubits[17].t1)
    assert any(n.startswith("q[17]: T2") and "clamped" in n for n in imported.notes)
    # the pair the day lacked is unavailable, the 32 others are there with the file's figures
    assert imported.missing_pairs == ((30, 31),)
    assert len(cal.couplers) == 32 and (30, 31) not in {(c.control, c.target) for c in cal.couplers}
    ecr = doc["Q2Gates(RB)"]["6-12"]["ECR"]
    assert cal.coupler(6, 12).ecr_error == pytest.approx(1 - ecr["Fidelity(RB)"])
    assert cal.coupler(6, 12).ecr_duration == ecr["Duration (s)"]


def test_the_legacy_schema_reads_to_the_same_figures():
    new, old = read_file(CURRENT).calibration, read_file(LEGACY).calibration
    for i in (0, 5, 31):
        assert old.qubits[i].t1 == pytest.approx(new.qubits[i].t1)
        assert old.qubits[i].frequency == new.qubits[i].frequency
        assert old.qubits[i].sx_error == pytest.approx(new.qubits[i].sx_error)
        assert old.qubits[i].sx_duration == pytest.approx(new.qubits[i].sx_duration)
        assert old.qubits[i].measure_duration == pytest.approx(new.qubits[i].measure_duration)
    assert old.coupler(25, 26).ecr_error == pytest.approx(new.coupler(25, 26).ecr_error)


def test_a_target_from_an_imported_file_states_the_files_errors_and_durations():
    doc = json.loads(CURRENT.read_text())
    target = build_target(read_file(CURRENT).calibration, 0.5e-9)
    sx = doc["Q1Gates"]["q[4]"]["SX"]
    assert target["sx"][(4,)].error == pytest.approx(1 - sx["Fidelity(RB)"])
    assert target["sx"][(4,)].duration == pytest.approx(sx["Gate duration (s)"])
    ecr = doc["Q2Gates(RB)"]["28-29"]["ECR"]
    assert target["ecr"][(28, 29)].error == pytest.approx(1 - ecr["Fidelity(RB)"])
    assert target["ecr"][(28, 29)].duration == pytest.approx(ecr["Duration (s)"])
    assert (30, 31) not in target["ecr"]  # the pair the file lacks is not offered to the transpiler
    assert target["measure"][(4,)].error == pytest.approx(1 - doc["Qubits"]["q[4]"]["Fidelity readout"])


def test_a_file_round_trips_to_the_same_figures(tmp_path):
    first = read_file(CURRENT).calibration
    written = write_file(first, tmp_path)
    assert written.name == CURRENT.name
    again = read_file(written).calibration
    assert same_figures(again, first)  # figure for figure, id and time included


def test_our_calibrations_write_every_key_qmiotools_reads(tmp_path):
    cal = QmioDevice(seed=5).calibration
    doc = to_qmio(cal)
    for q in doc["Qubits"].values():  # qmiotools QmioBackend / Calibrations read these
        assert {"T1 (s)", "T2 (s)", "Drive Frequency (Hz)", "Fidelity readout", "Readout duration (s)"} <= q.keys()
    for g in doc["Q1Gates"].values():
        assert {"Gate duration (s)", "Fidelity(RB)"} <= g["SX"].keys()
    for name, g in doc["Q2Gates(RB)"].items():
        assert {"Control", "Target", "Duration (s)", "Fidelity(RB)"} <= g["ECR"].keys()
        assert name == f"{g['ECR']['Control']}-{g['ECR']['Target']}"
    back = from_qmio(json.loads(json.dumps(doc)), cal.taken_at).calibration
    ours = cal.with_values(id=back.id, couplers=tuple(sorted(cal.couplers, key=lambda c: (c.control, c.target))))
    assert same_figures(back, ours)  # asymmetric readout errors survive too (P(1|0), P(0|1))
    assert back.qubits[0].readout_p10 != back.qubits[0].readout_p01


def test_a_directory_is_read_oldest_first_and_names_follow_the_time(tmp_path):
    dev = QmioDevice(seed=5, calibrated_at=datetime(2030, 1, 6, 12, 0, 30, tzinfo=timezone.utc))
    a = dev.calibration  # file names state the second
    b = dev.calibrate(datetime(2030, 1, 7, 12, 0, tzinfo=timezone.utc))
    write_file(b, tmp_path)
    write_file(a, tmp_path)
    (tmp_path / "notes.txt").write_text("not a calibration")
    got = [c.calibration for c in read_directory(tmp_path)]
    assert [c.taken_at for c in got] == sorted([a.taken_at, b.taken_at])
    assert file_name(b.taken_at) == "2030_01_07__12_00_00.json"
    assert time_of("2030_01_07__12_00_00.json") == b.taken_at


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("Q1Gates"), "no 'Q1Gates' section"),
    (lambda d: d["Qubits"]["q[4]"].pop("T1 (s)"), "q[4]: 'T1 (s)' is missing"),
    (lambda d: d["Qubits"]["q[4]"].update({"T2 (s)": "n/a"}), "q[4]: 'T2 (s)' is 'n/a', not a number"),
    (lambda d: d["Q1Gates"]["q[2]"].pop("SX"), "Q1Gates q[2]: 'SX' is missing"),
    (lambda d: d["Qubits"].pop("q[7]"), "missing q[7]"),
    (lambda d: d["Qubits"].update({"qubit 40": {}}), "'qubit 40' is not like 'q[0]'"),
    (lambda d: d["Q2Gates(RB)"]["0-1"]["ECR"].update({"Target": 99}), "must be qubit numbers below 32"),
    (lambda d: d["Qubits"]["q[1]"].update({"T1 (s)": -1.0}), "q[1]: T1 and T2 must be positive"),
])
def test_what_a_file_lacks_is_said_by_qubit_and_key(mutate, message):
    doc = json.loads(CURRENT.read_text())
    mutate(doc)
    with pytest.raises(CalibrationFileError, match=re.escape(message)):
        from_qmio(doc, datetime(2025, 6, 5, tzinfo=timezone.utc))


def test_every_missing_figure_is_listed_at_once():
    doc = json.loads(CURRENT.read_text())
    for i in (1, 2, 3):
        doc["Qubits"][f"q[{i}]"].pop("Drive Frequency (Hz)")
    with pytest.raises(CalibrationFileError) as info:
        from_qmio(doc, datetime(2025, 6, 5, tzinfo=timezone.utc))
    assert all(f"q[{i}]: 'Drive Frequency (Hz)' is missing" in str(info.value) for i in (1, 2, 3))


def test_files_that_are_not_calibrations_are_refused(tmp_path):
    with pytest.raises(CalibrationFileError, match="not named like a QMIO calibration file"):
        read_file(tmp_path / "latest.json")
    bad = tmp_path / "2025_01_01__00_00_00.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationFileError, match="2025_01_01__00_00_00.json is not JSON"):
        read_file(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(CalibrationFileError, match="is a JSON object"):
        read_file(bad)


def test_a_device_runs_with_an_imported_calibration_and_its_missing_pair_is_unavailable():
    from qiskit import QuantumCircuit

    from qmio_lab.compilation import compile_for
    from qmio_lab.device import QmioSimulator
    from qmio_lab.errors import InvalidCircuitError

    cal = read_file(CURRENT, QMIO_PAIRS).calibration
    dev = QmioDevice(seed=5, history=[cal])
    sim = QmioSimulator(dev)
    direct = QuantumCircuit(32)
    direct.ecr(30, 31)
    direct.measure_all()
    with pytest.raises(InvalidCircuitError, match=r"ecr on qubits \(30, 31\)"):
        sim.run(direct, shots=10, at=cal.taken_at)
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    native = compile_for(bell, dev.target(cal), level=1)
    used = {tuple(native.find_bit(q).index for q in inst.qubits) for inst in native.data if inst.operation.name == "ecr"}
    assert used and used <= set(QMIO_PAIRS) - {(30, 31)}
    result = sim.run(native, shots=2000, at=cal.taken_at, seed_simulator=3).result()
    assert result.to_dict()["calibration_id"] == cal.id
    counts = result.get_counts()
    assert (counts.get("00", 0) + counts.get("11", 0)) / 2000 > 0.6  # a Bell state under the file's noise
