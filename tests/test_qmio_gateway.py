"""QMIO's own client (PyPI ``qmio``, unmodified, in its own venv) against the service's tunnels.

A real service process, real ZeroMQ between processes, the real client's pickles: every request
becomes a job of the queue owned by the tunnel's user, and every reply is shaped as QMIO's
server shapes it (per-creg results with each creg's bit 0 first, ``{"Exception": ...}`` for
every error, never a hang).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from support.circuits import BELL_QASM2, BELL_QASM3
from support.qmio_client import require_client, run_client, send_raw
from support.services import USERS, ServiceProcess

GHZ_QASM2 = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[3];
creg c[3];
h q[0];
cx q[0], q[1];
cx q[1], q[2];
measure q -> c;
"""

GHZ_QASM3 = """OPENQASM 3.0;
include "stdgates.inc";
qubit[3] q;
bit[3] c;
h q[0];
cx q[0], q[1];
cx q[1], q[2];
c = measure q;
"""

# q[0] flipped, two cregs: QMIO writes each creg's bit 0 first, so a reads "10" and b "0"
TWO_CREGS = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[3];
creg a[2];
creg b[1];
x q[0];
measure q[0] -> a[0];
measure q[1] -> a[1];
measure q[2] -> b[0];
"""

# a mid-circuit measurement: simulated shot by shot, so 20000 shots hold the QPU about a second
MIDCIRCUIT = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[5];
creg c[6];
h q[0];
measure q[0] -> c[5];
cx q[0], q[1];
cx q[1], q[2];
cx q[2], q[3];
cx q[3], q[4];
measure q[0] -> c[0];
measure q[1] -> c[1];
measure q[2] -> c[2];
measure q[3] -> c[3];
measure q[4] -> c[4];
"""

ANSWER_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    require_client()
    service = ServiceProcess(tmp_path_factory.mktemp("gateway"), memory_limit=6 * 2**30).start()
    yield service
    service.stop()


def open_tunnel(svc: ServiceProcess, user: str = "alice", seconds: float = 300) -> dict:
    r = svc.http("POST", "/api/v1/tunnels", user=user, json={"max_time_s": seconds})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def tunnel(svc):
    return open_tunnel(svc, "alice", 900)


@pytest.fixture(autouse=True)
def close_tunnels_after(svc, tunnel):
    """Tunnels a test opens are closed after it (the per-user limit must not depend on order)."""
    yield
    for t in svc.http("GET", "/api/v1/tunnels", user="root").json()["tunnels"]:
        if t["state"] != "closed" and t["id"] != tunnel["id"]:
            svc.http("DELETE", f"/api/v1/tunnels/{t['id']}", user="root")


def correlated_share(counts: dict[str, int], width: int) -> float:
    return (counts.get("0" * width, 0) + counts.get("1" * width, 0)) / sum(counts.values())


@pytest.mark.parametrize("circuit,width", [(BELL_QASM2, 2), (BELL_QASM3, 2), (GHZ_QASM2, 3), (GHZ_QASM3, 3)],
                         ids=["bell-qasm2", "bell-qasm3", "ghz-qasm2", "ghz-qasm3"])
def test_bell_and_ghz_in_both_openqasm_versions(svc, tunnel, circuit, width):
    (reply,) = run_client(tunnel["endpoint"], [{"circuit": circuit, "shots": 1000}])
    assert "Exception" not in reply, reply
    counts = reply["results"]["c"]
    assert sum(counts.values()) == 1000
    assert all(len(key) == width and set(key) <= {"0", "1"} for key in counts)
    assert correlated_share(counts, width) > 0.75  # readout and gate errors spread the rest
    metrics = reply["execution_metrics"]
    assert metrics["optimized_circuit"].startswith("OPENQASM")
    assert "ecr" in metrics["optimized_circuit"] and metrics["optimized_instruction_count"] > 0
    job = svc.http("GET", f"/api/v1/jobs/{metrics['job_id']}").json()  # an ordinary job of the queue
    assert job["user"] == "alice" and job["state"] == "done" and job["shots"] == 1000


def test_each_creg_reads_bit_zero_first(svc, tunnel):
    (reply,) = run_client(tunnel["endpoint"], [{"circuit": TWO_CREGS, "shots": 2000}])
    a, b = reply["results"]["a"], reply["results"]["b"]
    assert max(a, key=a.get) == "10" and max(b, key=b.get) == "0"
    assert sum(a.values()) == sum(b.values()) == 2000


def test_all_four_result_formats(svc, tunnel):
    shots = 300
    calls = [{"circuit": TWO_CREGS, "shots": shots, "res_format": f}
             for f in ("binary_count", "raw", "binary", "squash_binary_result_arrays")]
    counts, raw, binary, squash = run_client(tunnel["endpoint"], calls)
    for reply in (counts, raw, binary, squash):
        assert "Exception" not in reply, reply
        assert set(reply["results"]) == {"a", "b"}
    assert sum(counts["results"]["a"].values()) == shots
    # binary: one 0/1 list per shot; squash: the same as strings
    assert len(binary["results"]["a"]) == shots and all(len(s) == 2 for s in binary["results"]["a"])
    assert all(set(s) <= {0, 1} for s in binary["results"]["a"])
    assert len(squash["results"]["a"]) == shots and all(len(s) == 2 for s in squash["results"]["a"])
    majority = sum(s == "10" for s in squash["results"]["a"]) / shots
    assert majority > 0.75
    # raw: readout values bit by bit over the shots, negative meaning 1
    bit0, bit1 = raw["results"]["a"]
    assert len(bit0) == len(bit1) == shots
    assert sum(v < 0 for v in bit0) / shots > 0.75 and sum(v < 0 for v in bit1) / shots < 0.25


def test_repetition_period_and_optimization_levels(svc, tunnel):
    calls = [{"circuit": GHZ_QASM2, "shots": 500, "repetition_period": 5e-4, "optimization": level}
             for level in (0, 1, 2)]
    replies = run_client(tunnel["endpoint"], calls)
    levels = []
    for reply in replies:
        assert "Exception" not in reply, reply
        assert correlated_share(reply["results"]["c"], 3) > 0.7
        levels.append(svc.http("GET", f"/api/v1/jobs/{reply['execution_metrics']['job_id']}").json()["optimization_level"])
    assert levels == [0, 1, 2]
    (bad,) = run_client(tunnel["endpoint"], [{"circuit": GHZ_QASM2, "shots": 10, "repetition_period": 5.0}])
    assert "repetition_period" in bad["Exception"]


def test_malformed_circuits_get_an_exception_promptly(svc, tunnel):
    calls = [{"circuit": "OPENQASM 2.0;\nqreg q[2];\nfoo q[0];\n", "shots": 10},
             {"circuit": "not a program at all", "shots": 10},
             {"circuit": BELL_QASM2.replace("qreg q[2]", "qreg q[64]"), "shots": 10},
             {"circuit": BELL_QASM2, "shots": 10**7}]
    started = time.monotonic()
    replies = run_client(tunnel["endpoint"], calls)
    assert time.monotonic() - started < 4 * ANSWER_WITHIN_S
    assert all(set(r) == {"Exception"} for r in replies), replies
    assert "line 3" in replies[0]["Exception"] and "foo" in replies[0]["Exception"]
    assert "qubits" in replies[2]["Exception"]
    assert "repeats" in replies[3]["Exception"]


def test_hostile_messages_are_refused_and_the_gateway_keeps_serving(svc, tunnel):
    class Evil:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(svc.dir / "pwned")],))

    messages = [
        pickle.dumps(Evil()),
        b"\x80\x04garbage",
        pickle.dumps(("x" * (2 * 2**20), "{}")),  # over qmio.qpu.gateway.max_message_kb
        pickle.dumps(([[[[[[[[[[[["deep"]]]]]]]]]]]], "{}")),
        pickle.dumps(("version",)),
    ]
    replies = send_raw(tunnel["endpoint"], messages)
    assert not (svc.dir / "pwned").exists()
    assert "subprocess" in replies[0]["Exception"] or "call" in replies[0]["Exception"]
    assert "not a pickled" in replies[1]["Exception"]
    assert "limit" in replies[2]["Exception"]
    assert "deeper" in replies[3]["Exception"]
    assert replies[4]["version"].startswith("qmio_lab")
    (after,) = run_client(tunnel["endpoint"], [{"circuit": BELL_QASM2, "shots": 100}])
    assert sum(after["results"]["c"].values()) == 100


def test_a_message_over_the_hard_cap_drops_only_its_senders_connection(svc, tunnel):
    """ZeroMQ disconnects a peer whose message is over the socket's MAXMSGSIZE before keeping any
    of it, so that request is never answered and the REQ socket that sent it (the client's) is
    stuck waiting; the service, the same tunnel for a new client session and other users'
    tunnels go on as before."""
    import zmq

    from qmio_lab.qpu.gateway import GatewayLimits

    cap = GatewayLimits.from_config().hard_cap_bytes
    assert cap > GatewayLimits.from_config().max_message_bytes  # between the two: refused with an answer
    bob = open_tunnel(svc, "bob")
    context = zmq.Context()
    sock = context.socket(zmq.REQ)  # as QMIO's client's socket
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(tunnel["endpoint"])
    try:
        sock.send(pickle.dumps(("x" * (cap + 1), "{}")))
        assert not sock.poll(3000), "no answer comes to a message ZeroMQ cut off"
        with pytest.raises(zmq.ZMQError) as stuck:
            sock.send(pickle.dumps(("version",)))
        assert stuck.value.errno == zmq.EFSM  # still waiting for that reply: the client has to start anew
    finally:
        sock.close()
        context.term()
    assert svc.proc.poll() is None, svc.log()
    assert svc.http("GET", "/api/v1/status").status_code == 200
    (other,) = run_client(bob["endpoint"], [{"circuit": BELL_QASM2, "shots": 100}])
    assert sum(other["results"]["c"].values()) == 100
    # a new session through the same tunnel is served, also with the refusal of a large message
    (again,) = run_client(tunnel["endpoint"], [{"circuit": BELL_QASM2, "shots": 100}])
    assert sum(again["results"]["c"].values()) == 100
    big, version = send_raw(tunnel["endpoint"], [pickle.dumps(("x" * (cap // 2), "{}")), pickle.dumps(("version",))])
    assert "limit" in big["Exception"] and version["version"].startswith("qmio_lab")
    listed = {t["id"]: t for t in svc.http("GET", "/api/v1/tunnels", user="alice").json()["tunnels"]}
    assert listed[tunnel["id"]]["state"] == "open"


def test_two_users_tunnels_share_the_qpu_fairly(svc):
    alice, bob = open_tunnel(svc, "alice"), open_tunnel(svc, "bob")
    big = {"circuit": MIDCIRCUIT, "shots": 20000}
    with ThreadPoolExecutor(4) as pool:
        # alice keeps three clients busy; bob comes with one request once hers are queued
        alices = [pool.submit(run_client, alice["endpoint"], [big, big]) for _ in range(3)]
        time.sleep(1.0)
        bobs = pool.submit(run_client, bob["endpoint"], [big])
        replies = [r for f in alices for r in f.result()] + bobs.result()
    assert all("Exception" not in r for r in replies), replies
    jobs = {j["id"]: j for j in svc.http("GET", "/api/v1/jobs", user="root").json()["jobs"]}
    ran = [jobs[r["execution_metrics"]["job_id"]] for r in replies]
    assert {j["user"] for j in ran} == {"alice", "bob"}
    bob_job = next(j for j in ran if j["user"] == "bob")
    t = datetime.fromisoformat
    jumped = [j for j in ran if j["user"] == "alice"
              and t(bob_job["created_at"]) < t(j["started_at"]) < t(bob_job["started_at"])]
    contested = [j for j in ran if j["user"] == "alice" and t(j["started_at"]) > t(bob_job["created_at"])]
    assert len(contested) >= 2, "alice still had jobs queued when bob's came"
    assert len(jumped) <= 1, "fair share: once bob has queued, at most the job alice had next runs before his"
    assert sum(j["user"] == "alice" for j in ran) == 6  # each tunnel's jobs are its user's


def test_a_tunnel_past_its_time_refuses_requests(svc):
    short = open_tunnel(svc, "bob", seconds=2)
    time.sleep(2.5)
    (reply,) = run_client(short["endpoint"], [{"circuit": BELL_QASM2, "shots": 10}])
    assert "time ended" in reply["Exception"] and "qmio tunnel" in reply["Exception"]
    listed = {t["id"]: t for t in svc.http("GET", "/api/v1/tunnels", user="bob").json()["tunnels"]}
    assert listed[short["id"]]["state"] == "expired"


def test_an_expired_tunnel_closes_once_its_grace_is_over():
    """Past its time a tunnel still answers (that it expired) for expired_grace_s, then its socket
    closes: a timer ends it, not a poll of the socket."""
    import asyncio

    from qmio_lab.qpu.auth import User
    from qmio_lab.qpu.gateway import GatewayLimits, Tunnels

    limits = GatewayLimits(host="127.0.0.1", max_tunnel_s=60, max_tunnels_per_user=1, max_message_bytes=1024,
                           max_in_flight=1, expired_grace_s=0.5)

    async def scenario() -> list[str]:
        tunnels = Tunnels(None, limits)  # type: ignore[arg-type]  # nothing here reaches the service
        t = tunnels.open(User("carol"), 1)
        states = [t.view()["state"]]
        await asyncio.sleep(1.2)
        states.append(t.view()["state"])
        await asyncio.sleep(0.8)
        states.append(t.view()["state"])
        assert t.socket.closed and not t.tasks
        tunnels.close_all()
        return states

    assert asyncio.run(scenario()) == ["open", "expired", "closed"]


def test_tunnel_limits_and_ownership(svc):
    too_long = svc.http("POST", "/api/v1/tunnels", user="bob", json={"max_time_s": 3600})
    assert too_long.status_code == 422 and "max_tunnel_s" in too_long.json()["error"]
    odd = svc.http("POST", "/api/v1/tunnels", user="bob", json={"max_time_s": 60, "colour": 1})
    assert odd.status_code == 400
    bad_port = svc.http("POST", "/api/v1/tunnels", user="bob", json={"max_time_s": 60, "port": 80})
    assert bad_port.status_code == 422
    held = [t for t in svc.http("GET", "/api/v1/tunnels", user="bob").json()["tunnels"] if t["state"] == "open"]
    for _ in range(2 - len(held)):
        open_tunnel(svc, "bob", 60)
    third = svc.http("POST", "/api/v1/tunnels", user="bob", json={"max_time_s": 60})
    assert third.status_code == 429 and "max_tunnels_per_user" in third.json()["error"]
    mine = next(t for t in svc.http("GET", "/api/v1/tunnels", user="bob").json()["tunnels"] if t["state"] == "open")
    assert svc.http("DELETE", f"/api/v1/tunnels/{mine['id']}", user="alice").status_code == 403
    closed = svc.http("DELETE", f"/api/v1/tunnels/{mine['id']}", user="bob")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"


def test_qmio_tunnel_prints_the_export_line(svc):
    env = {"QMIO_QPU_URL": svc.url, "QMIO_QPU_TOKEN": USERS["root"]["token"]}
    out = subprocess.run([sys.executable, "-m", "qmio_lab.cli", "tunnel", "--time", "00:01:00"],
                         capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith("export ZMQ_SERVER=tcp://127.0.0.1:"), out.stdout
    (reply,) = run_client(line.split("=", 1)[1], [{"circuit": BELL_QASM2, "shots": 50}])
    assert sum(reply["results"]["c"].values()) == 50
    refused = subprocess.run([sys.executable, "-m", "qmio_lab.cli", "tunnel", "--time", "00:20:00"],
                             capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert refused.returncode != 0 and "max_tunnel_s" in refused.stderr
    listed = svc.http("GET", "/api/v1/tunnels", user="root").json()["tunnels"]
    assert any(t["user"] == "root" and t["endpoint"] == line.split("=", 1)[1] for t in listed)
