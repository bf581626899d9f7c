"""Sessions on the real QPU service: one transpilation per circuit, exclusive reservations."""
from __future__ import annotations


import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp

import qmio_lab
from qmio_lab.qpu import QPUBackend, QPUServiceError
from qmio_lab.sessions import Session
from support.services import ServiceProcess
from support.circuits import bell


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    # these tests open reservations back to back: the cooldown between them is tested on its own
    service = ServiceProcess(tmp_path_factory.mktemp("sessions"), env={"DASK_QMIO__QPU__SESSION_COOLDOWN_S": "0"}).start()
    yield service
    service.stop()


def test_vqe_style_loop_transpiles_once(svc):
    ansatz = efficient_su2(2, reps=1)
    h = SparsePauliOp.from_list([("ZZ", 1.0), ("XI", 0.5), ("IY", 0.25)])
    rng = np.random.default_rng(0)
    before = svc.client("alice").status()["transpiler"]["transpiles"]
    with Session(QPUBackend(svc.client("alice")), max_time="2m") as s:
        estimator = qmio_lab.EstimatorV2(s, default_precision=0.05)
        values = []
        for _ in range(100):
            res = estimator.run([(ansatz, h, rng.uniform(-1, 1, ansatz.num_parameters))]).result()
            values.append(float(res[0].data.evs))
        assert s.transpile_count == 1  # one distinct circuit, bound 100 times
    assert all(-1.75 <= v <= 1.75 for v in values) and len(set(values)) > 50
    # the session sent transpiled templates: the service transpiled nothing more
    assert svc.client("alice").status()["transpiler"]["transpiles"] == before
    # a noisy QPU still gets the sign and rough size of a known expectation right
    zero = np.zeros(ansatz.num_parameters)
    with Session(QPUBackend(svc.client("alice")), reserve=False) as s:
        ev = qmio_lab.EstimatorV2(s, default_precision=0.02).run([(ansatz, "ZZ", zero)]).result()[0].data.evs
    assert 0.75 < float(ev) <= 1.0


def test_reservation_blocks_other_users_until_closed(svc):
    alice, bob = svc.client("alice"), svc.client("bob")
    with Session(QPUBackend(alice), max_time="1m") as s:
        status = bob.status()
        assert status["state"] == "reserved" and status["reservation"]["user"] == "alice"
        waiting = bob.submit(bell(), shots=50)
        with pytest.raises(QPUServiceError, match="reserved by another user") as busy:
            bob.open_session(30)
        assert busy.value.status == 409
        counts = qmio_lab.SamplerV2(s).run([bell()], shots=200).result()[0].data.meas.get_counts()
        assert sum(counts.values()) == 200  # the holder's own work runs
        view = bob.job(waiting["id"])
        assert view["state"] == "queued" and view["queue_position"] == 1 and view["eta_s"] > 20
    assert bob.wait(waiting["id"], timeout=30)["state"] == "done"
    assert bob.status()["state"] == "online"


def test_reservation_expires_at_max_time(svc):
    alice, bob = svc.client("alice"), svc.client("bob")
    session = alice.open_session(3)
    try:
        job = bob.submit(bell(), shots=50)
        assert bob.job(job["id"])["state"] == "queued"
        assert alice.sessions() != [], "the 3 s reservation ended before bob's job was looked at"
        done = bob.wait(job["id"], timeout=30)
        assert done["state"] == "done"  # without anyone closing it
        assert done["started_at"] >= session["expires_at"]  # it ran only once the reservation ended
        assert alice.sessions() == []
    finally:
        alice.close_session(session["id"])


def test_session_limits_and_cleanup(svc):
    alice, bob = svc.client("alice"), svc.client("bob")
    with pytest.raises(QPUServiceError, match="max_time_s must be a number of seconds from 1 to 900"):
        alice.open_session(5000)
    first = alice.open_session(60)
    with pytest.raises(QPUServiceError, match="you already hold session"):
        alice.open_session(60)
    with pytest.raises(QPUServiceError, match="belongs to another user") as other:
        bob.close_session(first["id"])
    assert other.value.status == 403
    assert alice.close_sessions() == 1  # what an interrupted cell left open
    assert alice.status()["reservation"] is None


def test_parameter_values_on_the_wire(svc):
    alice = svc.client("alice")
    theta = Parameter("theta")
    qc = QuantumCircuit(1)
    qc.rx(theta, 0)
    qc.measure_all()
    from qmio_lab.qpu.circuits import circuit_to_item

    item = circuit_to_item(qc)
    job = alice.submit_items([{**item, "parameter_values": [[0.0], [np.pi]]}], shots=500)
    assert job["num_circuits"] == 2
    alice.wait(job["id"], timeout=30)
    off, on = alice.result(job["id"])["counts"]
    assert off.get("0", 0) > 400 and on.get("1", 0) > 400
    with pytest.raises(QPUServiceError, match=r"unbound parameter\(s\) \(theta\)"):
        alice.submit_items([item], shots=10)
    with pytest.raises(QPUServiceError, match="row 1 must be 1 number"):
        alice.submit_items([{**item, "parameter_values": [[0.1], [0.2, 0.3]]}], shots=10)
    with pytest.raises(QPUServiceError, match="1001 circuits in one job"):
        alice.submit_items([{**item, "parameter_values": [[0.1]] * 1001}], shots=10)


def test_reservations_have_a_daily_budget_and_a_cooldown(tmp_path):
    env = {"DASK_QMIO__QPU__SESSION_BUDGET_S": "100", "DASK_QMIO__QPU__SESSION_COOLDOWN_S": "3600"}
    service = ServiceProcess(tmp_path, env=env).start()
    try:
        alice, root = service.client("alice"), service.client("root")
        with pytest.raises(QPUServiceError, match=r"exceed your daily budget: 0 of 100 s used today") as over:
            alice.open_session(101)
        assert over.value.status == 429
        first = alice.open_session(60)
        alice.close_session(first["id"])
        with pytest.raises(QPUServiceError, match="the next may start 3600 s after it") as cooling:
            alice.open_session(30)
        assert cooling.value.status == 429
        reply = service.http("POST", "/api/v1/sessions", user="alice", json={"max_time_s": 30})
        assert reply.status_code == 429 and reply.json()["retry_at"] > first["created_at"]
        bob = service.client("bob")  # budgets are per user
        bob.close_session(bob.open_session(30)["id"])
        root.close_session(root.open_session(30)["id"])  # admins are not limited
        root.close_session(root.open_session(30)["id"])
    finally:
        service.stop()


def test_an_idle_reservation_closes_and_frees_the_qpu(tmp_path):
    service = ServiceProcess(tmp_path, env={"DASK_QMIO__QPU__SESSION_IDLE_S": "1"}).start()
    try:
        alice, bob = service.client("alice"), service.client("bob")
        alice.open_session(600)  # and then alice does nothing
        job = bob.submit(bell(), shots=50)
        done = bob.wait(job["id"], timeout=30)
        assert done["state"] == "done"  # long before the 600 s reservation would have expired
        assert alice.sessions() == [] and bob.status()["reservation"] is None
    finally:
        service.stop()
