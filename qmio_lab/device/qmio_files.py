"""QMIO's calibration files, both ways: the centre's JSON schema read into a :class:`Calibration`
and our calibrations written in it, one file per snapshot, as ``$QMIO_CALIBRATIONS`` holds them.

The schema (2024 on): ``Qubits`` / ``Q1Gates`` / ``Q2Gates(RB)``, qubit keys ``q[i]``, units in
the key names (``"T1 (s)"``, ``"Gate duration (s)"``), fidelities as fractions. Files written
before mid-2024 name the same figures ``"T1"``/``"T2e"`` in µs, ``"Drive Frequency "`` (with its
trailing space), ``"Measuring time"`` in µs, fidelities in percent and durations in ns, with
``Q2Gates`` at the top. Real files hold what a day's fits gave: a T2 above 2·T1 (impossible for
the physics, so clamped), a T1 of a third of a second (kept, and flagged), a pair the day did not
calibrate (it is then simply not available). Figures a file lacks are reported by qubit and key,
all at once. Files name the instant as ``YYYY_MM_DD__HH_MM_SS.json``, taken here as UTC.

What our model has and the schema has no key for (the two readout assignment errors apart)
travels in extra keys (``"P(1|0)"``, ``"P(0|1)"``) that readers of the schema ignore; figures we
do not model (measuring frequency, fit errors) are not written.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qmio_lab.device.calibration import Calibration, CouplerCalibration, QubitCalibration
from qmio_lab.errors import CalibrationFileError

FILE_NAME = re.compile(r"^(\d{4})_(\d{2})_(\d{2})__(\d{2})_(\d{2})_(\d{2})\.json$")
_QUBIT_KEY = re.compile(r"^q\[(\d+)\]$")
#: a fitted T1 outside this range (seconds) is a failed fit, not a qubit: flagged, kept
PLAUSIBLE_T1_S = (1e-6, 1e-3)
#: how big a file may be: a 32-qubit file is about 20 kB
MAX_FILE_BYTES = 4 * 2**20


@dataclass(frozen=True)
class ImportedCalibration:
    """A calibration read from a file, with what had to be repaired or looks wrong in it."""

    calibration: Calibration
    notes: tuple[str, ...]
    missing_pairs: tuple[tuple[int, int], ...] = ()


def file_name(taken_at: datetime) -> str:
    """``YYYY_MM_DD__HH_MM_SS.json`` of a snapshot's time (UTC)."""
    return taken_at.astimezone(timezone.utc).strftime("%Y_%m_%d__%H_%M_%S.json")


def time_of(name: str) -> datetime:
    """The instant a calibration file's name states."""
    match = FILE_NAME.match(Path(name).name)
    if not match:
        raise CalibrationFileError(
            f"{Path(name).name!r} is not named like a QMIO calibration file (YYYY_MM_DD__HH_MM_SS.json)")
    return datetime(*(int(g) for g in match.groups()), tzinfo=timezone.utc)


def calibration_id(taken_at: datetime) -> str:
    """The id an imported snapshot gets: its time, and that it came from a QMIO file."""
    return taken_at.astimezone(timezone.utc).strftime("cal-%Y%m%dT%H%M%SZ-qmio")


# ---- reading ----------------------------------------------------------------------------
class _Figures:
    """Reads one section's numbers, collecting every missing or malformed figure."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def number(self, section: Mapping[str, Any], where: str, *keys: str) -> float:
        for key in keys:
            if key in section:
                value = section[key]
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    return float(value)
                self.problems.append(f"{where}: {key!r} is {str(value)[:40]!r}, not a number")
                return math.nan
        self.problems.append(f"{where}: {keys[0]!r} is missing")
        return math.nan

    def optional(self, section: Mapping[str, Any], key: str) -> float | None:
        value = section.get(key)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else None


def _section(doc: Mapping[str, Any], *names: str) -> Mapping[str, Any]:
    for name in names:
        value = doc.get(name)
        if isinstance(value, Mapping):
            return value
    raise CalibrationFileError(f"the file has no {names[0]!r} section (a QMIO calibration has "
                               "'Qubits', 'Q1Gates' and 'Q2Gates(RB)')")


def _qubit_indices(qubits: Mapping[str, Any]) -> list[int]:
    indices = []
    for key in qubits:
        match = _QUBIT_KEY.match(str(key))
        if not match:
            raise CalibrationFileError(f"qubit key {str(key)[:40]!r} is not like 'q[0]'")
        indices.append(int(match.group(1)))
    if sorted(indices) != list(range(len(indices))):
        absent = sorted(set(range(max(indices, default=-1) + 1)) - set(indices))
        raise CalibrationFileError(f"the file's qubits are not q[0]..q[{len(indices) - 1}]: "
                                   f"missing {', '.join(f'q[{i}]' for i in absent[:8])}")
    return sorted(indices)


def from_qmio(doc: Mapping[str, Any], taken_at: datetime,
              expected_pairs: Iterable[tuple[int, int]] = ()) -> ImportedCalibration:
    """Read a QMIO calibration document (either schema) taken at ``taken_at``.

    ``expected_pairs``: the chip's couplers; those the file lacks are listed in
    ``missing_pairs`` (unavailable in this calibration, as on the real QPU that day).
    """
    if not isinstance(doc, Mapping):
        raise CalibrationFileError("a QMIO calibration file is a JSON object")
    legacy = "Q2Gates(RB)" not in doc and "Q2Gates" in doc
    qubits, gates_1q = _section(doc, "Qubits"), _section(doc, "Q1Gates")
    gates_2q = _section(doc, "Q2Gates" if legacy else "Q2Gates(RB)")
    figures, notes = _Figures(), []
    cal_qubits = []
    for i in _qubit_indices(qubits):
        key = f"q[{i}]"
        q = qubits[key] if isinstance(qubits[key], Mapping) else {}
        g = gates_1q.get(key) if isinstance(gates_1q.get(key), Mapping) else {}
        sx = g.get("SX") if isinstance(g.get("SX"), Mapping) else {}
        if not sx:
            figures.problems.append(f"Q1Gates {key}: 'SX' is missing")
        if legacy:
            t1 = figures.number(q, key, "T1") * 1e-6
            t2 = figures.number(q, key, "T2e") * 1e-6
            frequency = figures.number(q, key, "Drive Frequency ", "Drive Frequency")
            fidelity = figures.number(q, key, "Fidelity readout")
            fidelity = fidelity / 100 if fidelity > 1 else fidelity
            measure = figures.number(q, key, "Measuring time") * 1e-6
            sx_fidelity = figures.number(sx, f"Q1Gates {key} SX", "Fidelity") / 100
            sx_duration = figures.number(sx, f"Q1Gates {key} SX", "duration (ns)") * 1e-9
        else:
            t1 = figures.number(q, key, "T1 (s)")
            t2 = figures.number(q, key, "T2 (s)")
            frequency = figures.number(q, key, "Drive Frequency (Hz)")
            fidelity = figures.number(q, key, "Fidelity readout", "Readout fidelity (RB)")
            measure = figures.number(q, key, "Readout duration (s)")
            sx_fidelity = figures.number(sx, f"Q1Gates {key} SX", "Fidelity(RB)")
            sx_duration = figures.number(sx, f"Q1Gates {key} SX", "Gate duration (s)")
        if any(math.isnan(v) for v in (t1, t2, frequency, fidelity, measure, sx_fidelity, sx_duration)):
            continue
        if not PLAUSIBLE_T1_S[0] <= t1 <= PLAUSIBLE_T1_S[1]:
            notes.append(f"{key}: T1 = {t1:.3g} s is outside {PLAUSIBLE_T1_S[0]:g}..{PLAUSIBLE_T1_S[1]:g} s, "
                         "most likely a failed fit; kept as the file states it")
        if t1 <= 0 or t2 <= 0:
            figures.problems.append(f"{key}: T1 and T2 must be positive (T1 {t1:g} s, T2 {t2:g} s)")
            continue
        if t2 > 2 * t1:
            notes.append(f"{key}: T2 = {t2 * 1e6:.1f} µs exceeds 2·T1 = {2 * t1 * 1e6:.1f} µs; clamped to 2·T1")
            t2 = 2 * t1
        error = min(max(1.0 - fidelity, 0.0), 1.0)
        p10 = figures.optional(q, "P(1|0)")
        p01 = figures.optional(q, "P(0|1)")
        cal_qubits.append(QubitCalibration(
            t1=t1, t2=t2, frequency=frequency,
            readout_p10=error if p10 is None else p10, readout_p01=error if p01 is None else p01,
            sx_error=min(max(1.0 - sx_fidelity, 0.0), 1.0), sx_duration=sx_duration, measure_duration=measure,
        ))
    couplers = []
    for name, entry in gates_2q.items():
        ecr = entry if legacy and isinstance(entry, Mapping) and "Control" in entry else (
            entry.get("ECR") if isinstance(entry, Mapping) else None)
        where = f"{'Q2Gates' if legacy else 'Q2Gates(RB)'} {str(name)[:20]}"
        if not isinstance(ecr, Mapping):
            figures.problems.append(f"{where}: 'ECR' is missing")
            continue
        control, target = ecr.get("Control"), ecr.get("Target")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(qubits) for v in (control, target)):
            figures.problems.append(f"{where}: 'Control'/'Target' must be qubit numbers below {len(qubits)}")
            continue
        if legacy:
            fidelity = figures.number(ecr, where, "Fidelity") / 100
            duration = figures.number(ecr, where, "duration (ns)") * 1e-9
        else:
            fidelity = figures.number(ecr, where, "Fidelity(RB)")
            duration = figures.number(ecr, where, "Duration (s)")
        if not (math.isnan(fidelity) or math.isnan(duration)):
            couplers.append(CouplerCalibration(control=control, target=target,
                                               ecr_error=min(max(1.0 - fidelity, 0.0), 1.0), ecr_duration=duration))
    if figures.problems:
        shown = "; ".join(figures.problems[:12])
        more = f" (and {len(figures.problems) - 12} more)" if len(figures.problems) > 12 else ""
        raise CalibrationFileError(f"the calibration file lacks figures the twin needs: {shown}{more}")
    present = {(c.control, c.target) for c in couplers}
    missing = tuple(sorted(set(map(tuple, expected_pairs)) - present))
    for pair in missing:
        notes.append(f"pair {pair[0]}-{pair[1]} is not in the file: unavailable in this calibration")
    cal = Calibration(id=calibration_id(taken_at), taken_at=taken_at, qubits=tuple(cal_qubits),
                      couplers=tuple(sorted(couplers, key=lambda c: (c.control, c.target))))
    return ImportedCalibration(cal, tuple(notes), missing)


def read_file(path: str | Path, expected_pairs: Iterable[tuple[int, int]] = ()) -> ImportedCalibration:
    """One calibration file; its name gives the time it was taken."""
    path = Path(path)
    taken_at = time_of(path.name)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CalibrationFileError(f"{path.name} is {size} bytes; a QMIO calibration file is far smaller "
                                   f"(at most {MAX_FILE_BYTES} bytes read)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CalibrationFileError(f"{path.name} is not JSON: {exc}") from None
    try:
        return from_qmio(doc, taken_at, expected_pairs)
    except CalibrationFileError as exc:
        raise CalibrationFileError(f"{path.name}: {exc}") from None


def read_directory(directory: str | Path, expected_pairs: Iterable[tuple[int, int]] = ()) -> list[ImportedCalibration]:
    """Every calibration file of a directory (as ``$QMIO_CALIBRATIONS`` holds them), oldest first;
    files not named like one are left alone."""
    pairs = list(expected_pairs)
    paths = sorted(p for p in Path(directory).iterdir() if FILE_NAME.match(p.name) and p.is_file())
    return [read_file(p, pairs) for p in paths]


def calibrations_directory() -> Path | None:
    """Where the service keeps its history as QMIO files: ``$QMIO_CALIBRATIONS`` (the centre's
    variable), else ``qmio.device.calibrations_dir``; None keeps it in the database only."""
    from qmio_lab import config

    value = os.environ.get("QMIO_CALIBRATIONS") or config.get("device.calibrations_dir")
    return Path(value).expanduser() if value else None


# ---- writing ----------------------------------------------------------------------------
def to_qmio(cal: Calibration) -> dict[str, Any]:
    """A calibration in QMIO's schema (2024 on), every key qmiotools' ``QmioBackend`` reads."""
    qubits, gates_1q = {}, {}
    for i, q in enumerate(cal.qubits):
        key = f"q[{i}]"
        qubits[key] = {
            "T1 (s)": q.t1, "T2 (s)": q.t2, "Drive Frequency (Hz)": q.frequency,
            "Readout duration (s)": q.measure_duration,
            "Readout fidelity (RB)": 1.0 - q.readout_error, "Fidelity readout": 1.0 - q.readout_error,
            "P(1|0)": q.readout_p10, "P(0|1)": q.readout_p01,
        }
        gates_1q[key] = {
            "SX": {"Gate duration (s)": q.sx_duration, "Fidelity(RB)": 1.0 - q.sx_error},
            "Rz": {"Gate duration (s)": 0.0, "Fidelity(RB)": 1.0},
        }
    gates_2q = {
        f"{c.control}-{c.target}": {"ECR": {"Control": c.control, "Target": c.target, "Duration (s)": c.ecr_duration,
                                            "Fidelity(RB)": 1.0 - c.ecr_error}}
        for c in cal.couplers
    }
    return {"Qubits": qubits, "Q1Gates": gates_1q, "Q2Gates(RB)": gates_2q}


def write_file(cal: Calibration, directory: str | Path) -> Path:
    """Write one snapshot as ``<directory>/YYYY_MM_DD__HH_MM_SS.json`` (its taken_at)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(cal.taken_at)
    path.write_text(json.dumps(to_qmio(cal), indent=1), encoding="utf-8")
    return path
