"""qiskit-experiments runs unchanged on the QPU target (issue 15) and recovers the calibration
in force: T1, T2 (Hahn echo and Ramsey), readout assignment errors, and a randomized-benchmarking
error per Clifford that follows the SX error and relaxation. Real service over HTTP; the
experiments reach it through ``exp.run(backend)`` (qiskit-experiments wraps the backend in
Qiskit Runtime's local-mode sampler, which deep-copies it) or ``exp.run(sampler=...)``."""
from __future__ import annotations

import numpy as np
import pytest
from qiskit_experiments.library import T1, LocalReadoutError, StandardRB, T2Hahn, T2Ramsey

from qmio_lab.compilation import compile_for
from qmio_lab.device.generation import coherence_limited_error
from qmio_lab.primitives import SamplerV2
from qmio_lab.qpu import QPUBackend
from support.services import ServiceProcess

STILL = {"DASK_QMIO__QPU__DRIFT_RESOLUTION_S": "1000000000"}  # one calibration for the module


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    service = ServiceProcess(tmp_path_factory.mktemp("experiments"), env=STILL).start()
    yield QPUBackend(service.client("alice"))
    service.stop()


@pytest.fixture(scope="module")
def cal(backend):
    return backend.client.calibration()


@pytest.fixture(scope="module")
def qubit(cal) -> int:
    """An ordinary qubit (no garbage figures) with the largest SX error: the clearest RB decay."""
    ordinary = [i for i, q in enumerate(cal.qubits) if 20e-6 < q.t1 < 200e-6 and q.t2 < 2 * q.t1]
    return max(ordinary, key=lambda i: cal.qubits[i].sx_error)


def value(data, name: str):
    return data.analysis_results(name, dataframe=True).iloc[0]["value"]


def test_t1_and_t2_recover_the_calibration(backend, cal, qubit):
    q = cal.qubits[qubit]
    t1 = value(T1((qubit,), np.linspace(0, 4 * q.t1, 20)).run(backend, shots=1000).block_for_results(), "T1")
    t2 = value(T2Hahn((qubit,), np.linspace(0, 3 * q.t2, 20)).run(backend, shots=1000).block_for_results(), "T2")
    ramsey = T2Ramsey((qubit,), np.linspace(0, 2 * q.t2, 40), osc_freq=1e5).run(backend, shots=1000)
    t2star = value(ramsey.block_for_results(), "T2star")
    assert t1.n == pytest.approx(q.t1, rel=0.2), (t1, q.t1)
    assert t2.n == pytest.approx(q.t2, rel=0.2), (t2, q.t2)
    # the twin's dephasing is white (no slow frequency noise), so Ramsey's T2* is its T2 too
    assert t2star.n == pytest.approx(q.t2, rel=0.2), (t2star, q.t2)


def test_t1_through_our_sampler(backend, cal, qubit):
    """``exp.run(sampler=qmio_lab.SamplerV2(mode=backend))``: qiskit-experiments takes the
    backend from the sampler."""
    q = cal.qubits[qubit]
    data = T1((qubit,), np.linspace(0, 4 * q.t1, 16)).run(sampler=SamplerV2(mode=backend), shots=1000)
    assert value(data.block_for_results(), "T1").n == pytest.approx(q.t1, rel=0.2)


def test_local_readout_error_recovers_the_assignment_errors(backend, cal, qubit):
    pair = (qubit, (qubit + 1) % 32)
    data = LocalReadoutError(pair).run(backend, shots=50000).block_for_results()
    mitigator = value(data, "Local Readout Mitigator")
    for p in pair:
        m = mitigator.assignment_matrix(p)  # [[P(0|0), P(0|1)], [P(1|0), P(1|1)]]
        assert m[1, 0] == pytest.approx(cal.qubits[p].readout_p10, rel=0.2), (p, m)
        assert m[0, 1] == pytest.approx(cal.qubits[p].readout_p01, rel=0.2), (p, m)


def test_rb_error_per_clifford_follows_sx_error_and_relaxation(backend, cal, qubit):
    """Each SX or X pulse fails with the calibration's SX error, or with what relaxation over
    the pulse costs when that is larger; a Clifford's error is the sum over the pulses it is
    made of (virtual RZ is free), as the compiled sequences show."""
    q = cal.qubits[qubit]
    lengths = [1, 200, 500, 1000, 2000, 3000]
    exp = StandardRB((qubit,), lengths=lengths, num_samples=6, seed=7)
    epc = value(exp.run(backend, shots=1000).block_for_results(), "EPC")
    per_pulse = max(q.sx_error, coherence_limited_error([q], q.sx_duration))
    compiled = compile_for(exp.circuits(), backend.target)
    pulses = [sum(c.count_ops().get(g, 0) for g in ("sx", "x")) / (c.metadata["xval"] + 1) for c in compiled]
    predicted = per_pulse * float(np.mean(pulses))
    assert epc.n == pytest.approx(predicted, rel=0.3), (epc, predicted, q)
