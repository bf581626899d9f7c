"""EmulatorBackend on a real two-process LocalCluster: order, progress, metadata, replay, refusal."""
from __future__ import annotations

import threading
from datetime import timedelta

import dask.config
import pytest
from distributed import Client, LocalCluster
from qiskit import QuantumCircuit, transpile
from qiskit.providers import JobStatus

from qmio_lab.device import Calibration, QmioDevice
from qmio_lab.emulator import EmulatorBackend
from qmio_lab.emulator.memory import widest_statevector
from qmio_lab.errors import EmulatorJobError, EmulatorMemoryError, InvalidCircuitError
from support.circuits import basis_state, ghz

GiB = 2**30


@pytest.fixture(scope="module")
def local():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield cluster, client


@pytest.fixture(scope="module")
def backend(local) -> EmulatorBackend:
    cluster, client = local
    return EmulatorBackend(client=client, cluster=cluster)


def test_noiseless_ghz_gives_only_all_zeros_and_all_ones(backend):
    job = backend.run(ghz(3), shots=2000)
    result = job.result()
    counts = result.get_counts()
    assert set(counts) == {"000", "111"} and sum(counts.values()) == 2000
    assert result.job_id == job.job_id() and isinstance(result.job_id, str)
    meta = result.results[0].metadata
    assert meta["method"] == "statevector" and meta["worker"].startswith("tcp://")
    assert result.method == "statevector" and result.batches == 1


def test_a_sweep_is_batched_over_both_workers_and_returns_in_order(backend):
    circuits = [basis_state(i, 8) for i in range(200)]
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def callback(done: int, total: int) -> None:
        with lock:
            seen.append((done, total))

    job = backend.run(circuits, shots=50, callback=callback)
    result = job.result(timeout=60)
    assert [result.get_counts(i) for i in range(200)] == [{format(i, "08b"): 50} for i in range(200)]
    assert result.batches == 8  # 200 circuits, 2 workers x 4 batches of 25: not 200 tasks
    assert len(result.workers) == 2
    assert [m.metadata["index"] for m in result.results] == list(range(200))
    assert sorted(seen)[-1] == (200, 200) and len(seen) == 8
    assert job.progress() == (200, 200) and job.status() == JobStatus.DONE


def test_seeded_runs_do_not_depend_on_how_circuits_were_batched(backend):
    circuits = [ghz(4) for _ in range(40)]
    together = backend.run(circuits, shots=300, seed_simulator=11).result()
    with dask.config.set({"qmio.emulator.batch.min_size": 1, "qmio.emulator.batch.per_worker": 20}):
        apart = backend.run(circuits, shots=300, seed_simulator=11).result()
    assert apart.batches > together.batches
    assert [together.get_counts(i) for i in range(40)] == [apart.get_counts(i) for i in range(40)]


def test_replayed_calibration_noise_spoils_ghz_and_is_cited(backend, device: QmioDevice):
    week_old = device.calibration_at(device.calibration.taken_at + timedelta(days=7))
    result = backend.run(ghz(3), shots=4000, noise=week_old, seed_simulator=3).result()
    counts = result.get_counts()
    fidelity = (counts.get("000", 0) + counts.get("111", 0)) / 4000
    assert 0.5 < fidelity < 0.99
    assert result.calibration_id == week_old.id
    meta = result.results[0].metadata
    assert meta["calibration_id"] == week_old.id and len(meta["physical_qubits"]) == 3


def test_replay_by_id_uses_the_resolver(local, device: QmioDevice):
    cluster, client = local
    cal = device.calibration
    asked: list[str] = []

    def resolver(cal_id: str) -> Calibration:
        asked.append(cal_id)
        return cal

    backend = EmulatorBackend(client=client, cluster=cluster, calibration_resolver=resolver)
    result = backend.run(ghz(2), shots=500, noise=f"calibration:{cal.id}").result()
    assert asked == [cal.id] and result.calibration_id == cal.id


def test_replay_of_a_native_circuit_keeps_its_physical_qubits(backend, device: QmioDevice):
    native = transpile(ghz(3), device.target(device.calibration), seed_transpiler=5)
    expected = sorted({native.find_bit(q).index for inst in native.data
                       if inst.operation.name != "barrier" for q in inst.qubits})
    result = backend.run(native, shots=200, noise=device.calibration).result()
    assert result.results[0].metadata["physical_qubits"] == expected


def test_a_circuit_bigger_than_every_worker_is_refused_before_it_runs(backend):
    wide = QuantumCircuit(30)
    wide.h(range(30))
    for i in range(30):
        wide.cx(i, (i + 15) % 30)
    wide.measure_all()
    with pytest.raises(EmulatorMemoryError, match=r"30 qubits.*2.00 GiB"):
        backend.run(wide, shots=10)


def test_single_precision_runs_the_qubit_more_that_double_refuses():
    """A 600 MiB worker holds 23 qubits in double precision; asked for, single holds 24."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit="600MiB",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        small = EmulatorBackend(client=client, cluster=cluster)
        width = widest_statevector(small.worker_memory()) + 1
        assert widest_statevector(small.worker_memory(), "single") == width == 24
        dense = QuantumCircuit(width)
        dense.h(range(width))
        for i in range(width):
            dense.cx(i, (i + width // 2) % width)  # too entangled for the MPS bound to help
        dense.measure_all()
        with pytest.raises(EmulatorMemoryError, match="precision='single'"):
            small.run(dense, shots=10)
        result = small.run(dense, shots=10, precision="single").result()
    meta = result.results[0].metadata
    assert (meta["method"], meta["precision"]) == ("statevector", "single")
    assert sum(result.get_counts().values()) == 10


def test_a_wide_low_entanglement_circuit_runs_as_mps(backend):
    result = backend.run(ghz(34), shots=100).result()
    assert set(result.get_counts()) <= {"0" * 34, "1" * 34}
    assert result.results[0].metadata["method"] == "matrix_product_state"


def test_invalid_runs_are_refused_with_the_fix(backend):
    with pytest.raises(InvalidCircuitError, match="at most 34"):
        backend.run(QuantumCircuit(35), shots=10)
    with pytest.warns(UserWarning, match="optimisation"):  # an unknown option is named, then ignored
        assert sum(backend.run(ghz(2), shots=10, optimisation=2).result().get_counts().values()) == 10
    with pytest.raises(InvalidCircuitError, match="at least one circuit"):
        backend.run([], shots=10)


def _hold_a_worker(started: str, release: str) -> None:
    """A task that occupies its worker: says it started, then waits to be released."""
    from distributed import Event, Queue

    Queue(started).put(1)
    Event(release).wait(timeout=120)


def test_a_job_runs_once_and_a_cancelled_job_has_no_result(local, backend):
    from distributed import Event, Queue

    _, client = local
    started, release = Queue("held-workers"), Event("release-workers")
    busy = [client.submit(_hold_a_worker, "held-workers", "release-workers", pure=False) for _ in range(2)]
    started.get(timeout=60), started.get(timeout=60)  # both workers are now occupied
    job = backend.run([basis_state(i, 3) for i in range(6)], shots=10)
    with pytest.raises(EmulatorJobError, match="already been submitted"):
        job.submit()
    assert job.status() == JobStatus.RUNNING and job.progress() == (0, 6)
    assert job.cancel() is True
    assert job.status() == JobStatus.CANCELLED
    with pytest.raises(EmulatorJobError, match="cancelled"):
        job.result()
    release.set()
    client.gather(busy)


def test_the_target_is_all_to_all_with_a_broad_basis(backend):
    target = backend.target
    assert target.num_qubits == 34
    assert {"cx", "cz", "ecr", "rzz", "ccx", "u", "measure"} <= set(target.operation_names)
    compiled = transpile(ghz(5), backend)
    assert compiled.count_ops()["cx"] == 4  # no routing swaps on an all-to-all target
