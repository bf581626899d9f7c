"""Circuit cutting on the real SLURM emulator cluster (issue 18): two worker jobs, one cancelled."""
from __future__ import annotations

import subprocess
import threading

import numpy as np
import pytest

from qmio_lab.emulator import EmulatorBackend, cutting
from support.circuits import two_halves
from support.slurm import diagnostics, start_two_workers
from test_emulator_cutting import mps_values

pytestmark = pytest.mark.slurm


@pytest.fixture
def doomed_cluster(slurm_conf, tmp_path):
    try:
        cluster, client = start_two_workers(tmp_path, timeout=60)
    except TimeoutError:
        pytest.fail(f"two SLURM workers did not connect in 60 s\n{diagnostics()}", pytrace=False)
    client.run(lambda: __import__("qmio_lab.emulator.tasks"))  # pay the qiskit import once, here
    yield cluster, client
    client.close()
    cluster.close()


def test_a_34_qubit_cut_estimate_survives_the_scancel_of_a_worker(doomed_cluster):
    cluster, client = doomed_cluster
    backend = EmulatorBackend(client=client, cluster=cluster)
    victim = next(iter(client.run(lambda: __import__("os").environ["SLURM_JOB_ID"]).values()))
    circuit = two_halves(34, seed=3)
    paulis = ["I" * 16 + "ZZ" + "I" * 16, "I" * 33 + "Z"]
    first_batch = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        first_batch.set()

    answer: dict = {}
    worker = threading.Thread(target=lambda: answer.update(estimate=cutting.estimate(
        circuit, paulis, backend=backend, partition_labels="A" * 17 + "B" * 17, shots=40000, seed=3,
        callback=progress)))
    worker.start()
    assert first_batch.wait(120), f"no batch of subexperiments finished within 120 s\n{diagnostics()}"
    done_before = seen[-1]
    subprocess.run(["scancel", victim], check=True)
    worker.join(timeout=300)
    assert "estimate" in answer, diagnostics()
    estimate = answer["estimate"]
    assert done_before < estimate.plan.num_subexperiments, "the run ended before the worker could be cancelled"
    assert np.max(np.abs(estimate.values - mps_values(circuit, paulis))) < 0.05
    states = subprocess.run(["squeue", "-h", "-o", "%i|%T"], capture_output=True, text=True).stdout
    assert f"{victim}|RUNNING" not in states.split()
