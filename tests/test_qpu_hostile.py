"""The queue service under careless and hostile input (issue 13), as a real process over HTTP.

Over a thousand generated requests (tests/support/hostile_inputs.py: QASM 2 and 3 mutations, register
and gate bombs, include paths, QPY with extreme headers, JSON type confusion, odd query values)
plus the cases reported against the service. Each must get a 4xx with a JSON ``error`` within
5 s (a mutant that is still a valid program may be accepted instead), never a 5xx; the
service's process tree stays under 1.5 GiB; and another user's Bell jobs keep completing.
The service runs with a memory cap of its own, so a bomb that got through could not take the
test machine down with it.
"""
from __future__ import annotations

import http.client
import json
import threading
import time
from urllib.parse import urlparse

import psutil
import pytest

from support.circuits import BELL_QASM2, bell
from support.hostile_inputs import Case, encode, hostile_cases
from support.services import USERS, ServiceProcess

TREE_LIMIT = 1.5 * 2**30
ANSWER_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    service = ServiceProcess(tmp_path_factory.mktemp("hostile"), memory_limit=6 * 2**30).start()
    yield service
    service.stop()


def tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


class Watch:
    """Samples the service tree's memory and keeps bob's Bell jobs going while the attack runs."""

    def __init__(self, svc: ServiceProcess) -> None:
        self.svc = svc
        self.peak = 0
        self.bob_done = 0
        self.bob_errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample, daemon=True),
                         threading.Thread(target=self._bob, daemon=True)]

    def __enter__(self) -> Watch:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.svc.proc.pid))
            time.sleep(0.05)

    def _bob(self) -> None:
        bob = self.svc.client("bob")
        while not self._stop.is_set():
            try:
                job = bob.submit(bell(), shots=100)
                done = bob.wait(job["id"], timeout=60)
                if done["state"] != "done":
                    self.bob_errors.append(f"{job['id']}: {done['state']} {done['error']}")
                else:
                    self.bob_done += 1
            except Exception as exc:  # the point of the test: bob must never see one
                self.bob_errors.append(repr(exc))
            time.sleep(0.2)


def send(svc: ServiceProcess, case: Case, user: str = "alice") -> tuple[int, dict | None, float]:
    """One request over a fresh connection; the status, the JSON body (None if not JSON), seconds."""
    url = urlparse(svc.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = encode(case) if case.method in ("POST", "PUT") else None
    headers = {"Authorization": f"Bearer {USERS[user]['token']}", "Content-Type": "application/json", **case.headers}
    start = time.monotonic()
    try:
        try:
            conn.request(case.method, case.path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service answered and closed before taking the whole (oversized) body
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    elapsed = time.monotonic() - start
    try:
        payload = json.loads(data)
    except ValueError:
        payload = None
    return resp.status, payload, elapsed


def test_every_hostile_request_gets_a_prompt_4xx_and_nobody_else_notices(svc):
    cases = hostile_cases()
    assert len(cases) >= 1000
    failures, accepted = [], []
    with Watch(svc) as watch:
        for case in cases:
            status, payload, elapsed = send(svc, case)
            problem = None
            if status >= 500:
                problem = "5xx"
            elif case.kind == "refuse" and not 400 <= status < 500:
                problem = f"not refused ({status})"
            elif status >= 400 and not (isinstance(payload, dict) and isinstance(payload.get("error"), str)):
                problem = "no JSON error body"
            elif elapsed > ANSWER_WITHIN_S:
                problem = f"answered after {elapsed:.1f} s"
            if problem:
                failures.append(f"{case.name}: {problem}: {status} {str(payload)[:200]}")
            if status == 201 and case.path.startswith("/api/v1/sessions"):  # a valid reservation:
                svc.client("alice").close_sessions()  # give the QPU back to bob at once
            elif status == 201 and isinstance(payload, dict) and "id" in payload:
                accepted.append(payload["id"])
        alice = svc.client("alice")
        for job_id in accepted:  # a mutant that was still a program: its job ends like any other
            assert alice.wait(job_id, timeout=120)["state"] in ("done", "failed")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:40])
    assert watch.peak < TREE_LIMIT, f"the service's processes reached {watch.peak / 2**30:.2f} GiB"
    assert not watch.bob_errors and watch.bob_done >= 5, (watch.bob_done, watch.bob_errors[:5])
    # and after the run, bob's next job completes at once
    bob = svc.client("bob")
    assert bob.wait(bob.submit(bell(), shots=100)["id"], timeout=30)["state"] == "done"


REPORTED = {  # the cases filed against the service, each with the words its refusal must use
    "creg bomb": ('OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[200000000]; measure q[0] -> c[0];',
                  "declares 200000000 classical bits; the limit is 1024"),
    "qreg bomb": ('OPENQASM 2.0; include "qelib1.inc"; qreg q[2000000000]; creg c[1]; measure q[0] -> c[0];',
                  "uses 2000000000 qubits; the QMIO QPU has 32"),
    "qubit bomb": ("OPENQASM 3.0; qubit[2000000000] q; bit[1] c; c[0] = measure q[0];",
                   "uses 2000000000 qubits; the QMIO QPU has 32"),
    "doubling gates": ('OPENQASM 2.0;\ninclude "qelib1.inc";\ngate g0 a { x a; }\n'
                       + "".join(f"gate g{i} a {{ g{i-1} a; g{i-1} a; }}\n" for i in range(1, 41))
                       + "qreg q[1]; creg c[1]; g40 q[0]; measure q[0] -> c[0];",
                       "more than 200000 operations once its gate definitions are unrolled"),
    "include passwd": ('OPENQASM 2.0; include "/etc/passwd"; qreg q[1]; creg c[1]; measure q[0] -> c[0];',
                       "include '/etc/passwd' is not allowed"),
    # 100,000 shots of a wide circuit that runs shot by shot (a measured qubit used again): hours
    "hours of shots": ('OPENQASM 2.0; include "qelib1.inc"; qreg q[20]; creg c[20]; creg first[1]; h q[0]; '
                       + " ".join(f"cx q[{i}],q[{i + 1}];" for i in range(19))
                       + " measure q[0] -> first[0]; x q[0]; measure q -> c;",
                       "one job may hold it for at most 600 s (qmio.qpu.max_job_s)", 100000),
}


@pytest.mark.parametrize("name", list(REPORTED))
def test_reported_attacks_are_refused_with_the_limit(svc, name):
    text, words, *shots = REPORTED[name]
    status, payload, elapsed = send(svc, Case(name, "POST", "/api/v1/jobs",
                                              {"circuits": [{"data": text}], "shots": shots[0] if shots else 10}))
    assert status == 422 and words in payload["error"], payload
    assert "root" not in payload["error"]  # nothing of the host's files comes back
    assert elapsed < ANSWER_WITHIN_S


def test_two_gate_bombs_at_once_do_not_block_other_users(svc):
    """One user's slow circuits occupy at most one sandbox: bob's new circuit is admitted while
    alice's two bombs (each runs into the sandbox's deadline) are being refused."""
    # 11**5 x gates through five levels of definitions: within max_operations, beyond the deadline
    fan = "gate f0 a { x a; }\n" + "".join(f"gate f{i} a {{ {'f%d a; ' % (i - 1) * 11}}}\n" for i in range(1, 6))
    text = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n' + fan + "qreg q[1]; creg c[1]; f5 q[0]; measure q[0] -> c[0];"
    results: list[tuple[int, str]] = []
    threads = [threading.Thread(target=lambda: results.append((lambda r: (r[0], r[1]["error"]))(
        send(svc, Case("bomb", "POST", "/api/v1/jobs", {"circuits": [{"data": text}], "shots": 10})))))
        for _ in range(2)]
    for t in threads:
        t.start()
    alice = svc.client("alice")
    deadline = time.monotonic() + 30
    while alice.status()["admission"]["busy"] < 1:  # alice's first bomb is in a sandbox
        assert time.monotonic() < deadline, "alice's bomb never reached a sandbox"
        time.sleep(0.01)
    fresh = bell()
    fresh.rz(0.123, 0)  # a circuit the service has not compiled yet
    bob = svc.client("bob")
    t0 = time.monotonic()
    job = bob.submit(fresh, shots=50)
    assert time.monotonic() - t0 < ANSWER_WITHIN_S
    assert bob.wait(job["id"], timeout=30)["state"] == "done"
    for t in threads:
        t.join(timeout=60)
    assert [status for status, _ in results] == [422, 422]
    assert all("took more than 4 s to parse and compile" in error for _, error in results), results


def test_unauthenticated_bodies_are_not_read(svc):
    url = urlparse(svc.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:  # announce 200 MB, send none of it: the refusal comes at once, from the headers alone
        conn.putrequest("POST", "/api/v1/jobs")
        conn.putheader("Content-Length", str(200 * 2**20))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 401 and "Bearer" in json.loads(resp.read())["error"]
    finally:
        conn.close()


@pytest.mark.parametrize("path, words", [
    ("/api/v1/jobs?limit=-1", "limit must be an integer from 1 to 10000"),
    ("/api/v1/jobs?limit=0", "limit must be an integer from 1 to 10000"),
    ("/api/v1/jobs?limit=%C2%B2", "limit must be an integer from 1 to 10000"),  # '²' passes str.isdigit
    ("/api/v1/jobs?state=lost", "unknown state 'lost'"),
    ("/api/v1/usage?days=%C2%B2", "days must be an integer from 1 to 366"),
    ("/api/v1/usage?days=%D9%A3", "days must be an integer from 1 to 366"),  # an Arabic-Indic three
    ("/api/v1/usage?days=99999", "days must be an integer from 1 to 366"),
    ("/api/v1/usage?days=0", "days must be an integer from 1 to 366"),
])
def test_odd_list_queries_are_refused(svc, path, words):
    status, payload, _ = send(svc, Case(path, "GET", path))
    assert status == 400 and words in payload["error"]


def test_only_an_admin_reads_another_users_usage(svc):
    for path in ("/api/v1/usage?user=bob", "/api/v1/usage?all=true", "/api/v1/usage?user=%00../etc"):
        status, payload, _ = send(svc, Case(path, "GET", path))
        assert status == 403 and "admin" in payload["error"], (path, payload)


@pytest.mark.parametrize("period", [0, -1e-3, 1e308, 2, "5e-4", True, None, [], {"s": 1}, 1e-300])
def test_odd_repetition_periods_are_refused(svc, period):
    """Outside (0, 1] s, not a number, or shorter than the circuit's own shot (1e-300): a 422
    that says what to send; None is the default and runs."""
    body = {"circuits": [{"data": BELL_QASM2}], "shots": 10, "repetition_period": period}
    status, payload, elapsed = send(svc, Case(str(period), "POST", "/api/v1/jobs", body=body))
    assert elapsed < 5
    if period is None:
        assert status == 201, payload
        return
    assert status == 422, payload
    assert "repetition_period" in payload["error"] and ("must be seconds" in payload["error"]
                                                        or "shorter than the circuit" in payload["error"])


@pytest.mark.parametrize("body, words", [
    ({"circuits": [{"data": "OPENQASM 2.0;"}], "name": "\ud800"}, "valid Unicode text"),
    ({"circuits": [{"data": "OPENQASM 2.0;", "name": "\udfff"}]}, "valid Unicode text"),
])
def test_lone_surrogates_are_refused(svc, body, words):
    status, payload, _ = send(svc, Case("surrogate", "POST", "/api/v1/jobs", body))
    assert status == 422 and words in payload["error"]


def test_deep_json_is_refused(svc):
    status, payload, _ = send(svc, Case("deep", "POST", "/api/v1/jobs", raw=b"[" * 100000 + b"]" * 100000))
    assert status == 400 and "nests JSON too deeply" in payload["error"]


def test_a_chunked_body_is_cut_off_at_the_payload_limit(svc):
    """No Content-Length to refuse up front: the body streams in, and tornado stops taking it at
    the limit (a bare 400 and a closed connection, the one refusal without a JSON body) instead
    of buffering it whole; the service carries on."""
    url = urlparse(svc.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    chunk = b"x" * 2**20

    def body():
        yield b'{"circuits": [{"data": "'
        for _ in range(40):  # 40 MiB, against a 16 MB limit
            yield chunk

    try:
        try:
            conn.request("POST", "/api/v1/jobs", body=body(), encode_chunked=True,
                         headers={"Authorization": f"Bearer {USERS['alice']['token']}"})
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the last chunk went out
        resp = conn.getresponse()
        assert resp.status == 400
    finally:
        conn.close()
    assert tree_rss(svc.proc.pid) < TREE_LIMIT
    bob = svc.client("bob")
    assert bob.wait(bob.submit(bell(), shots=50)["id"], timeout=30)["state"] == "done"


@pytest.mark.parametrize("length", ["-5", "abc", "1e9", "99999999999999999999999"])
def test_odd_content_lengths_are_refused(svc, length):
    url = urlparse(svc.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.putrequest("POST", "/api/v1/jobs")
        conn.putheader("Authorization", f"Bearer {USERS['alice']['token']}")
        conn.putheader("Content-Length", length)
        conn.endheaders()
        resp = conn.getresponse()
        assert 400 <= resp.status < 500, resp.status
    finally:
        conn.close()
