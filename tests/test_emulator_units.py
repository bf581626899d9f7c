"""Emulator pieces that need no cluster: memory model, method choice, batching, configuration."""
from __future__ import annotations

import dask.config
import pytest
from qiskit import QuantumCircuit

from qmio_lab.device import QmioDevice
from qmio_lab.device.rules import is_native
from qmio_lab.emulator import cluster as clusters
from qmio_lab.emulator.memory import (
    MPS, STATEVECTOR, check_fits, estimate, mps_bytes, simulated_width, statevector_bytes,
    widest_statevector,
)
from qmio_lab.emulator.replay import resolve_noise, to_device
from qmio_lab.emulator.runner import batch_size, plan_batches
from qmio_lab.errors import CalibrationError, EmulatorClusterError, EmulatorMemoryError
from support.circuits import ghz

GiB = 2**30


def all_to_all(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n, name=f"dense{n}")
    qc.h(range(n))
    for layer in range(3):
        for i in range(n):
            qc.cx(i, (i + n // 2 + layer) % n)
    qc.measure_all()
    return qc


# ---- memory model -------------------------------------------------------------------------------
def test_statevector_bytes_double_and_single():
    assert statevector_bytes(30) == 16 * GiB
    assert statevector_bytes(30, "single") == 8 * GiB
    with pytest.raises(ValueError, match="precision"):
        statevector_bytes(3, "half")


def test_simulated_width_ignores_idle_qubits():
    qc = QuantumCircuit(34)
    qc.h(0)
    qc.cx(0, 33)
    qc.barrier()
    qc.measure_all(add_bits=True)  # measures all 34: all of them are simulated
    assert simulated_width(qc) == 34
    small = QuantumCircuit(34, 2)
    small.h(0)
    small.cx(0, 33)
    small.barrier()
    small.measure([0, 33], [0, 1])
    assert simulated_width(small) == 2


def test_mps_bound_is_small_for_a_chain_and_capped_for_dense_circuits():
    # A GHZ chain crosses each cut once: bond <= 2, so memory grows linearly with width.
    assert mps_bytes(ghz(40)) <= 16 * 2 * 4 * 40
    # The bound never exceeds what a full-rank MPS can hold (bond 2^min(k, n-k)).
    dense = all_to_all(12)
    full = 16 * sum(2 * 2 ** min(k, 12 - k) * 2 ** min(k + 1, 12 - k - 1) for k in range(12))
    assert mps_bytes(dense) == full


def test_narrow_circuits_use_statevector():
    est = estimate(ghz(5), worker_memory=2 * GiB)
    assert est.method == STATEVECTOR
    assert est.statevector_bytes == 16 * 32
    assert est.needed_bytes > est.statevector_bytes  # process reserve counted


def test_wide_low_entanglement_circuit_uses_mps_and_fits():
    est = estimate(ghz(34), worker_memory=4 * GiB)
    assert est.method == MPS
    assert est.needed_bytes < 1 * GiB
    check_fits(ghz(34), est, 4 * GiB)  # does not raise


def test_wide_entangled_circuit_stays_statevector_and_is_refused_with_a_clear_message():
    qc = all_to_all(34)
    est = estimate(qc, worker_memory=12 * GiB)
    assert est.method == STATEVECTOR
    with pytest.raises(EmulatorMemoryError) as info:
        check_fits(qc, est, 12 * GiB)
    msg = str(info.value)
    assert "34 qubits" in msg and "256.00 GiB" in msg and "12.00 GiB" in msg
    assert "precision='single'" in msg
    assert "as a matrix product state up to" in msg and "EstimatorV2 on the emulator cuts" in msg
    assert isinstance(info.value, MemoryError)


@pytest.mark.parametrize("memory", [2 * GiB, 8 * GiB, 24 * GiB])
def test_single_precision_holds_one_qubit_more(memory):
    assert widest_statevector(memory, "single") == widest_statevector(memory) + 1


def test_single_precision_halves_the_statevector():
    double = estimate(all_to_all(26), precision="double")
    single = estimate(all_to_all(26), precision="single")
    assert single.statevector_bytes * 2 == double.statevector_bytes
    assert single.needed_bytes < double.needed_bytes


def test_explicit_method_is_respected_and_checked():
    assert estimate(ghz(4), method=MPS).method == MPS
    with pytest.raises(ValueError, match="method"):
        estimate(ghz(4), method="density_matrix_typo")


# ---- batching -------------------------------------------------------------------------------------
def test_batches_are_never_smaller_than_a_round_trip_is_worth():
    # 20 tiny circuits on 2 workers: one batch would idle a worker, but 16 per task is the floor.
    assert batch_size(20, 2) == 16
    assert [len(r) for r in plan_batches([3] * 20, 2)] == [16, 4]


def test_batches_give_each_worker_several_tasks_and_cover_every_circuit_in_order():
    batches = plan_batches([5] * 1000, 2)
    assert len(batches) == 8  # 4 per worker
    assert [i for r in batches for i in r] == list(range(1000))
    assert batch_size(100_000, 2) == 250  # capped


def test_wide_circuits_get_a_task_of_their_own_and_methods_are_not_mixed():
    widths = [3, 3, 22, 3, 3, 3]
    batches = plan_batches(widths, 1)
    assert batches == [range(0, 2), range(2, 3), range(3, 6)]
    keys = ["a", "a", "b", "b"]
    assert plan_batches([3] * 4, 1, keys=keys) == [range(0, 2), range(2, 4)]


# ---- configuration -> cluster ------------------------------------------------------------------
@pytest.mark.parametrize(("setting", "kind"), [
    ("local", "local"), ("slurm", "slurm"), ("tcp://10.0.0.5:8786", "address"), (" local ", "local"),
])
def test_cluster_kind(setting, kind):
    assert clusters.cluster_kind(setting) == kind


def test_cluster_kind_comes_from_config_and_rejects_nonsense():
    with dask.config.set({"qmio.emulator.cluster": "slurm"}):
        assert clusters.cluster_kind() == "slurm"
    with pytest.raises(EmulatorClusterError, match="DASK_QMIO__EMULATOR__CLUSTER"):
        clusters.cluster_kind("kubernetes")


def test_scheduler_address_makes_no_cluster():
    assert clusters.make_cluster("tcp://10.0.0.5:8786") == (None, "tcp://10.0.0.5:8786")


@pytest.mark.parametrize(("walltime", "seconds"), [
    ("30", 1800), ("10:30", 630), ("01:00:00", 3600), ("1-00", 86400), ("2-01:30:00", 178200),
])
def test_walltime_seconds(walltime, seconds):
    assert clusters.walltime_seconds(walltime) == seconds


def test_lifetimes_end_before_the_walltime_and_are_staggered():
    args = clusters.lifetime_args("01:00:00", margin=0.1, stagger=0.05)
    assert args == ["--lifetime", "3240s", "--lifetime-stagger", "180s"]


def test_slurm_settings_come_from_jobqueue_config_first():
    with dask.config.set({"jobqueue.slurm.cores": 4, "jobqueue.slurm.memory": "8GiB",
                          "jobqueue.slurm.queue": None, "jobqueue.slurm.walltime": "00:20:00",
                          "jobqueue.slurm.worker-extra-args": []}):
        kwargs = clusters.slurm_cluster_kwargs()
    assert kwargs["cores"] == 4 and kwargs["memory"] == "8GiB"  # jobqueue's own values win
    assert kwargs["queue"] == "emulator"  # qmio's fallback fills the gap
    assert kwargs["worker_extra_args"] == ["--lifetime", "1080s", "--lifetime-stagger", "60s"]
    with dask.config.set({"jobqueue.slurm.worker-extra-args": ["--lifetime", "5m"]}):
        assert clusters.slurm_cluster_kwargs()["worker_extra_args"] == ["--lifetime", "5m"]


def test_local_cluster_is_sized_from_config():
    with dask.config.set({"qmio.emulator.local.n_workers": 3, "qmio.emulator.local.memory_limit": "1GiB"}):
        kwargs = clusters.local_cluster_kwargs()
    assert kwargs["n_workers"] == 3 and kwargs["memory_limit"] == "1GiB" and kwargs["processes"]


# ---- noise replay, preparation side ----------------------------------------------------------------
@pytest.fixture(scope="module")
def cal(device: QmioDevice):
    return device.calibration


def test_resolve_noise_accepts_none_calibration_and_ids(cal):
    assert resolve_noise(None) is None
    assert resolve_noise(cal) is cal
    seen = []
    assert resolve_noise(f"calibration:{cal.id}", lambda i: seen.append(i) or cal) is cal
    assert seen == [cal.id]
    with pytest.raises(CalibrationError, match="calibration:<id>"):
        resolve_noise("cal-123")
    with pytest.raises(CalibrationError, match="not a Calibration"):
        resolve_noise("calibration:x", lambda i: {"id": i})


def test_circuits_are_compiled_for_the_chip_and_compacted(cal):
    small, qubits = to_device(ghz(3), cal, seed=1)
    assert small.num_qubits == 3 and len(qubits) == 3
    assert set(small.count_ops()) <= {"rz", "sx", "x", "ecr", "measure"}
    native = QuantumCircuit(32, 1)
    c = cal.couplers[0]
    native.ecr(c.control, c.target)
    native.measure(c.target, 0)
    assert is_native(native, cal)
    assert to_device(native, cal)[1] == tuple(sorted((c.control, c.target)))  # its qubits kept
