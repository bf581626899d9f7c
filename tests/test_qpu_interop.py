"""The QPU speaks Qiskit's dialect (issue 15), tested on a real service over HTTP.

Per-shot memory (Qiskit's ``memory=True``) and a job's own seed travel from the request through
the store, the executor and the simulator process and back; wrong values are refused with what
to send instead; databases from before these fields run their jobs as before. The backend takes
the options Qiskit's tools pass, survives deep copies and pickles after use, and Qiskit's own
``BackendSamplerV2``/``BackendEstimatorV2`` give the right answers on it.
"""
from __future__ import annotations

import collections
import copy
import json
import pickle
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.primitives import BackendEstimatorV2, BackendSamplerV2
from qiskit.quantum_info import SparsePauliOp
from qiskit.result import Result

from qmio_lab.qpu import QPUBackend
from qmio_lab.errors import IgnoredOptionWarning
from qmio_lab.qpu.circuits import circuit_to_item
from qmio_lab.qpu.store import _SCHEMA, Store
from qmio_lab.widgets.results import result_meta
from support.circuits import bell
from support.services import ServiceProcess

# one calibration in force for the whole module: no drift step between two jobs that must agree
STILL = {"DASK_QMIO__QPU__DRIFT_RESOLUTION_S": "1000000000"}
HEX = re.compile(r"^0x[0-9a-f]+$")


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    service = ServiceProcess(tmp_path_factory.mktemp("qpu-interop"), env=STILL).start()
    yield service
    service.stop()


def registers_out_of_order() -> QuantumCircuit:
    """|10> on two qubits read into two registers crosswise: qubit 0 (in |1>) into b[0], the
    third clbit, so the register value is 0b100 = 0x4 and Qiskit prints it "1 00"."""
    q, a, b = QuantumRegister(2, "q"), ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    qc = QuantumCircuit(q, a, b, name="crosswise")
    qc.x(0)
    qc.measure(0, b[0])
    qc.measure(1, a[1])
    return qc


def mid_circuit() -> QuantumCircuit:
    """A mid-circuit measurement: the exact sampler cannot take it, Aer's shot loop does."""
    qc = QuantumCircuit(2, 2, name="mid")
    qc.h(0)
    qc.measure(0, 0)
    qc.cx(0, 1)
    qc.measure(1, 1)
    return qc


def run(client, circuits, shots, **fields):
    job = client.submit(circuits, shots=shots, **fields)
    done = client.wait(job["id"], timeout=120)
    assert done["state"] == "done", done
    return client.result(job["id"])


def memory_of(body, i=0):
    return body["results"][i]["data"].get("memory")


def counts_of_memory(memory):
    return dict(collections.Counter(memory))


# ---- memory ---------------------------------------------------------------------------------
def test_memory_is_one_hex_string_per_shot_and_agrees_with_the_counts(svc):
    alice = svc.client("alice")
    body = run(alice, [bell(), registers_out_of_order(), mid_circuit()], 300, memory=True)
    assert body["backend_name"] == "qmio_qpu"
    for i in range(3):
        memory = memory_of(body, i)
        assert len(memory) == 300 and all(HEX.match(m) for m in memory), memory[:5]
        assert counts_of_memory(memory) == body["results"][i]["data"]["counts"]
    bell_memory = memory_of(body, 0)
    assert {"0x0", "0x3"} <= set(bell_memory) and bell_memory.count("0x0") + bell_memory.count("0x3") > 240
    # the register value, clbit 0 least significant: qubit 0 read into the third clbit
    assert collections.Counter(memory_of(body, 1)).most_common(1)[0][0] == "0x4"
    result = Result.from_dict(body)  # Qiskit's own reading of it
    assert result.get_memory(0)[:20] == [format(int(m, 16), "02b") for m in bell_memory[:20]]
    assert collections.Counter(result.get_memory(1)).most_common(1)[0][0] == "1 00"
    assert collections.Counter(result.get_memory(2)) == collections.Counter(result.get_counts(2))


def test_without_memory_the_result_has_none(svc):
    body = run(svc.client("alice"), [bell(), mid_circuit()], 100)
    assert memory_of(body, 0) is None and memory_of(body, 1) is None
    with pytest.raises(Exception, match="(?i)memory"):
        Result.from_dict(body).get_memory(0)


def test_memory_across_parameter_rows(svc):
    """A template with rows of parameter values runs once per row: memory for each."""
    from qiskit.circuit import Parameter

    theta = Parameter("theta")
    qc = QuantumCircuit(1, 1, name="rx")
    qc.rx(theta, 0)
    qc.measure(0, 0)
    item = {**circuit_to_item(qc), "parameter_values": [[0.0], [3.141592653589793]]}
    alice = svc.client("alice")
    job = alice.submit_items([item], 200, memory=True, seed=3)
    alice.wait(job["id"], timeout=120)
    body = alice.result(job["id"])
    zero, one = memory_of(body, 0), memory_of(body, 1)
    assert len(zero) == len(one) == 200
    assert zero.count("0x0") > 170 and one.count("0x1") > 170


# ---- seeds ----------------------------------------------------------------------------------
def test_a_seed_reproduces_counts_and_memory_and_another_seed_does_not(svc):
    alice, bob = svc.client("alice"), svc.client("bob")
    circuits = [bell(), mid_circuit()]
    first = run(alice, circuits, 400, memory=True, seed=2024)
    again = run(bob, circuits, 400, memory=True, seed=2024)  # another user, another job: same shots
    other = run(alice, circuits, 400, memory=True, seed=2025)
    assert first["calibration_age_s"] == again["calibration_age_s"] == other["calibration_age_s"]
    for i in range(2):
        assert memory_of(first, i) == memory_of(again, i)
        assert first["counts"][i] == again["counts"][i]
        assert memory_of(first, i) != memory_of(other, i)
    assert first["results"][0]["seed_simulator"] == 2024
    record = alice.jobs(limit=1)[0]  # the job as the API shows it says what it asked for
    assert record["seed"] == 2025 and record["memory"] is True
    assert run(alice, bell(), 10) and alice.jobs(limit=1)[0]["seed"] is None
    assert alice.jobs(limit=1)[0]["memory"] is False


def test_unseeded_jobs_draw_fresh_shots(svc):
    alice = svc.client("alice")
    a = run(alice, bell(), 400, memory=True)
    b = run(alice, bell(), 400, memory=True)
    assert memory_of(a) != memory_of(b)  # 400 shots in the same order by chance: never


def test_asking_for_memory_changes_no_count_a_seed_gives(svc):
    alice = svc.client("alice")
    plain = run(alice, bell(), 1000, seed=77)
    with_memory = run(alice, bell(), 1000, seed=77, memory=True)
    assert plain["counts"] == with_memory["counts"]


# ---- refusals -------------------------------------------------------------------------------
BELL_ITEM = circuit_to_item(bell())


@pytest.mark.parametrize("field, value, says", [
    ("memory", "yes", "memory must be true or false"),
    ("memory", 1, "memory must be true or false"),
    ("memory", None, "memory must be true or false"),
    ("seed", -1, "seed must be an integer from 0 to 4294967295"),
    ("seed", 2**32, "seed must be an integer from 0 to 4294967295"),
    ("seed", 1.5, "seed must be an integer"),
    ("seed", True, "seed must be an integer"),
    ("seed", "7", "seed must be an integer"),
])
def test_wrong_memory_or_seed_is_refused_with_what_to_send(svc, field, value, says):
    resp = svc.http("POST", "/api/v1/jobs", json={"circuits": [BELL_ITEM], "shots": 10, field: value})
    assert resp.status_code == 422, resp.text
    assert says in resp.json()["error"]


def test_the_largest_seed_is_accepted(svc):
    body = run(svc.client("alice"), bell(), 10, seed=2**32 - 1, memory=True)
    assert len(memory_of(body)) == 10


def test_memory_for_too_many_shots_is_refused_before_anything_runs(svc):
    """100000 shots of 21 circuits with memory would be 2.1 million strings in one result."""
    resp = svc.http("POST", "/api/v1/jobs", json={"circuits": [BELL_ITEM] * 21, "shots": 100000, "memory": True})
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert "2100000 per-shot outcomes" in error and "max_memory_shots" in error and "leave memory off" in error
    # the same job without memory is within the limits (it is only queued here, then cancelled)
    ok = svc.http("POST", "/api/v1/jobs", json={"circuits": [BELL_ITEM] * 21, "shots": 100000})
    assert ok.status_code == 201, ok.text
    svc.client("alice").cancel(ok.json()["id"])


# ---- older databases ------------------------------------------------------------------------
def old_schema() -> str:
    """The jobs table as it was before memory and seed, and so before the QPU-time columns that
    came after them (the rest of the schema unchanged)."""
    schema = _SCHEMA.replace(",\n    memory INTEGER NOT NULL DEFAULT 0,\n    seed INTEGER,\n    account TEXT,\n"
                             "    repetition_period REAL,\n    estimated_hold_s REAL,\n    qpu_s REAL\n", "\n")
    assert "seed INTEGER" not in schema and "repetition_period REAL" not in schema
    return schema


def test_a_database_from_before_memory_and_seed_runs_its_queued_jobs(tmp_path):
    path = tmp_path / "queue.sqlite"
    db = sqlite3.connect(str(path))
    db.executescript(old_schema())
    db.execute(
        "INSERT INTO jobs (id, user, state, shots, num_circuits, circuits, created_at) "
        "VALUES ('oldjob', 'alice', 'queued', 50, 1, ?, 0)", (json.dumps([BELL_ITEM]),))
    db.commit()
    db.close()
    store = Store(path)  # adds the columns
    old = store.job("oldjob")
    assert old["memory"] is False and old["seed"] is None
    new = store.add_job(user="bob", circuits=[BELL_ITEM], shots=5, memory=True, seed=9)
    assert new["memory"] is True and new["seed"] == 9
    store.cancel(new["id"])
    store.close()
    service = ServiceProcess(tmp_path, env=STILL)
    service.start()
    try:
        alice = service.client("alice")
        assert alice.wait("oldjob", timeout=120)["state"] == "done"
        body = alice.result("oldjob")
        assert sum(body["counts"][0].values()) == 50 and memory_of(body) is None
    finally:
        service.stop()


# ---- the backend: options, copies, pickles --------------------------------------------------
@pytest.fixture
def backend(svc):
    return QPUBackend(svc.client("alice"))


def test_backend_memory_and_seed_simulator_as_qiskit_passes_them(backend):
    result = backend.run([bell(), mid_circuit()], shots=200, memory=True, seed_simulator=np.int64(41)).result()
    assert result.backend_name == "qmio_qpu"
    for i in range(2):
        memory = result.get_memory(i)
        assert len(memory) == 200 and collections.Counter(memory) == collections.Counter(result.get_counts(i))
    again = backend.run([bell(), mid_circuit()], shots=200, memory=True, seed_simulator=41).result()
    assert again.get_memory(0) == result.get_memory(0) and again.get_memory(1) == result.get_memory(1)
    assert result_meta(result)[0] == ("target", "qpu")  # the result view labels it by its target


def test_options_qiskit_tools_pass_for_other_backends_are_ignored_with_a_warning(backend):
    with pytest.warns(IgnoredOptionWarning) as caught:
        result = backend.run(bell(), shots=50, init_qubits=True, rep_delay=2.5e-4, noise_model=None,
                             meas_level=2).result()
    assert sum(result.get_counts().values()) == 50
    (warning,) = caught
    text = str(warning.message)
    assert "'init_qubits'" in text and "'rep_delay'" in text and "'noise_model'" in text
    assert "meas_level" not in text.split("(its options")[0]  # meas_level=2 is what the QPU gives


@pytest.mark.parametrize("options, says", [
    ({"memory": "yes"}, "memory must be True or False"),
    ({"seed_simulator": -3}, "seed_simulator must be an integer from 0 to 4294967295"),
    ({"seed_simulator": 2**32}, "seed_simulator must be an integer"),
    ({"seed_simulator": 1.5}, "seed_simulator must be an integer"),
    ({"meas_level": 1}, "meas_level=1 is not available"),
    ({"priority": "high"}, "priority must be an integer"),
    ({"parameter_binds": [{}, {}]}, "one dict {parameter: [values]} per circuit"),
])
def test_known_options_with_wrong_values_are_refused_before_anything_is_sent(backend, options, says):
    before = len(backend.client.jobs(limit=1000))
    with pytest.raises(ValueError, match=re.escape(says)):
        backend.run(bell(), shots=10, **options)
    assert len(backend.client.jobs(limit=1000)) == before


def test_parameter_binds_run_each_circuit_once_per_value(backend):
    from qiskit.circuit import Parameter

    theta = Parameter("theta")
    qc = QuantumCircuit(1, 1, name="rx")
    qc.rx(theta, 0)
    qc.measure(0, 0)
    result = backend.run([qc, bell()], shots=300, parameter_binds=[{theta: [0.0, np.pi]}, {}]).result()
    assert len(result.results) == 3
    assert result.get_counts(0).get("0", 0) > 260 and result.get_counts(1).get("1", 0) > 260
    assert result.get_counts(2).get("00", 0) + result.get_counts(2).get("11", 0) > 240


def test_a_used_backend_deep_copies_and_pickles_and_the_copies_run(backend, svc, tmp_path):
    first = backend.run(bell(), shots=100, memory=True, seed_simulator=5).result()  # the pool is open now
    assert backend.target.num_qubits == 32
    for other in (copy.deepcopy(backend), pickle.loads(pickle.dumps(backend))):
        assert other is not backend and other.client is not backend.client
        assert other.calibration_id == backend.calibration_id and other.target.num_qubits == 32
        again = other.run(bell(), shots=100, memory=True, seed_simulator=5).result()
        assert again.get_memory() == first.get_memory()
    client = pickle.loads(pickle.dumps(backend.client))
    assert client.url == backend.client.url and client.token == backend.client.token
    assert client.status()["state"] == "online"
    # in another process: the unpickled backend connects to the same service
    blob = tmp_path / "backend.pickle"
    blob.write_bytes(pickle.dumps(backend))
    script = ("import pickle, sys; from support.circuits import bell; "
              f"b = pickle.loads(open({str(blob)!r}, 'rb').read()); "
              "r = b.run(bell(), shots=100, memory=True, seed_simulator=5).result(); "
              "print(r.backend_name, ','.join(r.get_memory()))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["qmio_qpu", ",".join(first.get_memory())]


# ---- Qiskit's own backend primitives on the qpu target -------------------------------------
def test_backend_sampler_v2_on_the_qpu(backend):
    isa = transpile(bell(), target=backend.target, optimization_level=1, seed_transpiler=1)
    sampler = BackendSamplerV2(backend=backend, options={"seed_simulator": 12})
    result = sampler.run([isa], shots=2000).result()
    counts = result[0].data.meas.get_counts()
    assert sum(counts.values()) == 2000 and (counts.get("00", 0) + counts.get("11", 0)) / 2000 > 0.85
    assert abs(counts.get("00", 0) - counts.get("11", 0)) < 200  # an even superposition, within noise
    again = sampler.run([isa], shots=2000).result()
    assert again[0].data.meas.get_bitstrings() == result[0].data.meas.get_bitstrings()


def test_backend_estimator_v2_on_the_qpu(backend):
    """<ZZ>, <XX> of a Bell pair positive and <YY> negative, by as much as the day's calibration
    lets them (a qubit hit by a TLS pulls them down, readout asymmetry moves <ZI> off zero):
    <ZZ> and <ZI> agree with the ones counted from the same circuit measured by ``backend.run``."""
    circuit = bell().remove_final_measurements(inplace=False)
    isa = transpile(circuit, target=backend.target, optimization_level=1, seed_transpiler=1)
    observables = [SparsePauliOp(label).apply_layout(isa.layout) for label in ("ZZ", "XX", "ZI", "YY")]
    estimator = BackendEstimatorV2(backend=backend, options={"seed_simulator": 3, "default_precision": 0.01})
    data = estimator.run([(isa, observables)]).result()[0].data
    zz, xx, zi, yy = (float(v) for v in data.evs)
    assert zz > 0.5 and xx > 0.5 and yy < -0.5  # entangled, and the basis changes keep the signs
    measured = isa.copy()  # the estimator's own Z-basis circuit: the ISA circuit measured where it ran
    measured.add_register(ClassicalRegister(2, "c"))
    measured.measure(isa.layout.final_index_layout()[:2], [0, 1])
    counts = backend.run(measured, shots=20000, seed_simulator=8).result().get_counts()
    # a key reads "c1 c0": c1 holds virtual qubit 1, the one "ZI" measures
    zz_counted = sum(n * (1 if key[0] == key[1] else -1) for key, n in counts.items()) / 20000
    zi_counted = sum(n * (1 if key[0] == "0" else -1) for key, n in counts.items()) / 20000
    assert abs(zz - zz_counted) < 5 * float(data.stds[0]) + 0.01
    assert abs(zi - zi_counted) < 5 * float(data.stds[2]) + 0.01
