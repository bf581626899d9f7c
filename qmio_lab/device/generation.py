"""Drawing fresh calibrations and ageing them.

Everything is a pure function of (device seed, time), so a device, the queue service and an
emulator replay all agree on the same numbers without sharing state. Each qubit has a fixed
fabrication quality (from the seed alone) plus a per-calibration fluctuation, which is why a
weak qubit tends to stay weak across days, as on real chips.
"""
from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

import numpy as np

from qmio_lab import config
from qmio_lab.device.calibration import Calibration, CouplerCalibration, QubitCalibration, utc
from qmio_lab.device.topology import Topology


def relaxation_fidelity(t1: float, t2: float, duration: float) -> float:
    """Average gate fidelity of pure T1/T2 relaxation over ``duration`` (one qubit)."""
    return (3 + math.exp(-duration / t1) + 2 * math.exp(-duration / t2)) / 6


def coherence_limited_error(qubits: list[QubitCalibration], duration: float) -> float:
    """Smallest gate error T1/T2 allow for a gate on ``qubits`` lasting ``duration``."""
    d = 2 ** len(qubits)
    process_fid = 1.0
    for q in qubits:
        f_avg = relaxation_fidelity(q.t1, q.t2, duration)
        process_fid *= (3 * f_avg - 1) / 2  # 1-qubit average -> process fidelity
    return 1 - (d * process_fid + 1) / (d + 1)


def _lognormal(rng: np.random.Generator, median: float, sigma: float, size: int) -> np.ndarray:
    return median * np.exp(rng.normal(0.0, sigma, size))


def _complement(share: float) -> float:
    """The other share of a unit variance: share**2 + _complement(share)**2 == 1."""
    return math.sqrt((1 - share) * (1 + share))


def snapshot_id(seed: int, taken_at: datetime) -> str:
    return f"cal-{utc(taken_at):%Y%m%dT%H%M%SZ}-s{seed}"


def fresh_calibration(seed: int, taken_at: datetime, topology: Topology) -> Calibration:
    """The calibration the automatic procedure would measure at ``taken_at``."""
    taken_at = utc(taken_at)
    p = config.get("device.fresh")
    n = topology.num_qubits
    fab = np.random.default_rng([seed, 0])
    cal = np.random.default_rng([seed, 1, int(taken_at.timestamp())])
    spread = float(p["coherence_spread"])
    fab_share = float(p["fabrication_share"])
    rho = float(p["t1_t2_correlation"])

    fab_t1, fab_t2 = fab.normal(0, spread * fab_share, (2, n))
    fab_t2 = rho * fab_t1 + _complement(rho) * fab_t2  # T2 correlates with T1 on the same qubit
    t1 = float(p["t1_median"]) * np.exp(fab_t1 + cal.normal(0, spread * _complement(fab_share), n))
    t2 = float(p["t2_median"]) * np.exp(fab_t2 + cal.normal(0, spread * _complement(fab_share), n))
    f_lo, f_hi = (float(f) for f in p["frequency_range"])
    freq = np.clip(fab.normal(float(p["frequency_median"]), float(p["frequency_spread"]), n), f_lo, f_hi) \
        + cal.normal(0, float(p["frequency_jitter"]), n)

    sx_err = _lognormal(cal, float(p["sx_error_median"]), float(p["sx_error_spread"]), n)
    p10 = _lognormal(cal, float(p["readout_p10_median"]), float(p["readout_spread"]), n)
    p01 = _lognormal(cal, float(p["readout_p01_median"]), float(p["readout_spread"]), n)

    weak = cal.choice(n, size=int(p["weak_qubits"]), replace=False)
    # a two-level-system defect pins T1 far below the chip's typical value, whatever the qubit
    t1[weak] = float(p["t1_median"]) * cal.uniform(*(float(v) for v in p["weak_t1"]), len(weak))
    t2[weak] = t1[weak] * cal.uniform(*(float(v) for v in p["weak_t2_ratio"]), len(weak))
    sx_err[weak] *= float(p["weak_sx_error_factor"])
    p10[weak] *= float(p["weak_readout_error_factor"])
    p01[weak] *= float(p["weak_readout_error_factor"])

    t2 = np.minimum(t2, 2 * t1)
    sx_dur = float(p["sx_duration"])
    meas_dur = float(p["measure_duration"])
    readout_max = float(p["readout_error_max"])
    margin = float(p["error_floor_margin"])
    qubits = []
    for q in range(n):
        qc = QubitCalibration(
            t1=float(t1[q]), t2=float(t2[q]), frequency=float(freq[q]),
            readout_p10=float(min(p10[q], readout_max)), readout_p01=float(min(p01[q], readout_max)),
            sx_error=0.0, sx_duration=sx_dur, measure_duration=meas_dur,
        )
        floor = coherence_limited_error([qc], sx_dur)
        qubits.append(replace(qc, sx_error=float(max(sx_err[q], margin * floor))))

    ecr_base = float(p["ecr_duration"])
    ecr_step = int(p["ecr_duration_step_samples"]) * float(config.get("device.dt"))
    ecr_steps = int(p["ecr_duration_max_steps"])
    ecr_spread, ecr_max = float(p["ecr_error_spread"]), float(p["ecr_error_max"])
    weak_ecr = float(p["weak_ecr_error_factor"])
    couplers = []
    for k, (c, t) in enumerate(topology.edges):
        duration = ecr_base + ecr_step * int(fab.integers(0, ecr_steps + 1))
        err = float(_lognormal(cal, float(p["ecr_error_median"]), ecr_spread, 1)[0])
        if c in weak or t in weak:
            err *= weak_ecr
        floor = coherence_limited_error([qubits[c], qubits[t]], duration)
        couplers.append(CouplerCalibration(c, t, min(max(err, margin * floor), ecr_max), duration))
    return Calibration(snapshot_id(seed, taken_at), taken_at, tuple(qubits), tuple(couplers))


class DriftModel:
    """Ages a snapshot: T1/T2 random-walk, gate and readout errors grow with age.

    The walk is drawn hour by hour from (seed, snapshot time), so the view of a snapshot at
    any instant is reproducible and changes smoothly between instants.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        d = config.get("device.drift")
        self.walk = float(d["coherence_walk"])
        self.trend = float(d["coherence_trend"])
        self.gate_growth = float(d["gate_error_growth"])
        self.readout_growth = float(d["readout_error_growth"])
        self.max_hours = int(float(d["max_age_days"]) * 24)
        self.error_max = float(d["error_max"])
        self.ecr_error_max = float(d["ecr_error_max"])
        self._walks: dict[str, np.ndarray] = {}

    def _walk(self, snap: Calibration) -> np.ndarray:
        """Cumulative log-changes of (T1, T2) per qubit, one row per hour of age."""
        if snap.id not in self._walks:
            rng = np.random.default_rng([self.seed, 2, int(snap.taken_at.timestamp())])
            steps = rng.normal(0, self.walk / math.sqrt(24), (self.max_hours, snap.num_qubits, 2))
            self._walks[snap.id] = np.concatenate(
                [np.zeros((1, snap.num_qubits, 2)), np.cumsum(steps, axis=0)]
            )
        return self._walks[snap.id]

    def at(self, snap: Calibration, t: datetime) -> Calibration:
        """The drifted view of ``snap`` at ``t`` (``t`` before the snapshot means no drift)."""
        t = utc(t)
        hours = min(max((t - snap.taken_at).total_seconds() / 3600, 0.0), float(self.max_hours))
        if hours == 0.0:
            return snap.with_values(effective_at=max(t, snap.taken_at))
        walk = self._walk(snap)
        lo = int(math.floor(hours))
        hi = min(lo + 1, self.max_hours)
        frac = hours - lo
        logs = walk[lo] * (1 - frac) + walk[hi] * frac + self.trend * hours / 24
        days = hours / 24
        g = 1 + self.gate_growth * days
        r = 1 + self.readout_growth * days
        qubits = []
        for q, (d1, d2) in zip(snap.qubits, logs):
            t1 = q.t1 * math.exp(d1)
            t2 = min(q.t2 * math.exp(d2), 2 * t1)
            qubits.append(replace(
                q, t1=t1, t2=t2,
                readout_p10=min(q.readout_p10 * r, self.error_max),
                readout_p01=min(q.readout_p01 * r, self.error_max), sx_error=min(q.sx_error * g, self.error_max),
            ))
        couplers = tuple(
            CouplerCalibration(c.control, c.target, min(c.ecr_error * g, self.ecr_error_max), c.ecr_duration)
            for c in snap.couplers
        )
        return snap.with_values(qubits=tuple(qubits), couplers=couplers, effective_at=t)

