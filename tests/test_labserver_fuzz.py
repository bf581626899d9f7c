"""The /qmio routes of the Jupyter server extension under malformed and hostile input (issue 13).

Every route of ``qmio_lab.labserver.routes.ROUTES``, with every method it accepts (and some it
does not), gets a few hundred generated requests (seeded, so a failure names a case to replay):
bodies that are not JSON or not objects, 10,000 levels of nesting, invalid UTF-8 and lone
surrogates, every field with values of the wrong type, unknown and missing fields, oversized
bodies and programs, the QASM bombs, include paths and mutations of ``tests/support/hostile_inputs.py``
for the submit route, odd query values and odd job ids. Each must be answered within 5 s with a
4xx whose JSON body's ``error`` says what is wrong (a 2xx where the input is in fact valid),
never a 5xx; afterwards the extension still reports the QPU and takes a Bell job.

Run with the handler tests: ``pytest -p pytest_jupyter.jupyter_server tests/test_labserver_fuzz.py``.
"""
from __future__ import annotations

import json
import random
import socket
import time
from dataclasses import dataclass, field
from http.client import responses
from typing import Any
from urllib.parse import quote

import pytest
from tornado.httpclient import HTTPClientError

from support.hostile_inputs import BIG, INCLUDES, hostile_cases
from support.circuits import BELL_QASM2 as BELL_QASM
from support.labserver import jp_server_config, service  # noqa: F401 - fixtures
from qmio_lab.labserver.manager import MAX_JOBS_LISTED, MAX_QASM_CHARS
from qmio_lab.labserver.routes import MAX_BODY_BYTES, ROUTES

pytestmark = pytest.mark.timeout(300)

ANSWER_WITHIN_S = 5.0
SEED = 13
METHODS = ("GET", "POST", "DELETE")
BROKEN_QASM = "OPENQASM 2.0;\nqreg q[2];\nfoo q[0];\n"  # fails to parse: safe to send to the emulator


@dataclass
class LabCase:
    name: str
    method: str
    path: str  # under the base URL, already URL-encoded, query included
    body: bytes | None = None
    kind: str = "refuse"  # refuse: a 4xx | maybe: a 2xx or a 4xx (the input may be valid)
    headers: dict[str, str] = field(default_factory=dict)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


def route_paths() -> dict[str, tuple[str, ...]]:
    """Each route's path (a job id filled in) and the methods its handler implements."""
    paths = {}
    for pattern, handler in ROUTES:
        path = pattern.replace("(?P<job_id>[^/]+)", "no-such-job")
        assert "(" not in path, f"a route with a path argument this test does not know: {pattern}"
        paths[path] = tuple(m for m in METHODS if m.lower() in vars(handler))
    return paths


ODD_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 1e308, -1e308, 2**63, 2**64 + 1, 10**40, "", " ", "10",
                         "x" * 10000, [], [1], ["OPENQASM 2.0;"], {}, {"a": 1}, [[[]]], "\ud800", "\udfff",
                         "\u0000", "💥", "\u202e", {"qasm": BELL_QASM}]


def _raw_bodies() -> dict[str, bytes]:
    deep = 10_000
    return {
        "not-json": b"{not json", "truncated": b'{"qasm": "OPENQASM', "array": b"[1,2]", "string": b'"x"',
        "number": b"1", "null": b"null", "true": b"true", "nan": b'{"qasm": "x", "shots": NaN}',
        "infinity": b'{"shots": Infinity}', "invalid-utf8": b'{"qasm": "\xff\xfe"}', "latin1": '{"name": "é"}'.encode("latin-1"),
        "utf16": '{"shots": 1}'.encode("utf-16"), "bom": b'\xef\xbb\xbf{"shots": 10}', "spaces": b" " * 1000,
        "deep-arrays": b"[" * deep + b"]" * deep, "deep-objects": b'{"a":' * deep + b"1" + b"}" * deep,
        "deep-in-field": b'{"qasm": ' + b"[" * deep + b"]" * deep + b"}", "huge-number": b'{"shots": 1' + b"0" * 5000 + b"}",
        "dup-keys": b'{"shots": 10, "shots": -1}', "surrogate-escape": b'{"qasm": "\\ud800"}',
        "nul": b'{"qasm": "\x00"}', "trailing-garbage": b'{"shots": 10} x', "two-objects": b"{}{}",
    }


def _valid(key: str, value: Any) -> bool:
    """Whether a submission's field may hold ``value`` (the QPU service's rules)."""
    if key == "shots":
        return type(value) is int and 1 <= value <= 100000
    if key == "name":
        return value is None or (isinstance(value, str) and len(value) <= 200
                                 and not any("\ud800" <= ch <= "\udfff" for ch in value))
    return False


def _body_cases(path: str, allowed: tuple[str, ...], good: dict[str, Any], rng: random.Random) -> list[LabCase]:
    """Malformed bodies for a POST route whose valid body has the fields ``allowed``; ``good``
    is a body that passes every check but one's (a broken program, for the emulator)."""
    emulator = path.startswith("qmio/emulator")
    cases = [LabCase(f"{path} raw {name}", "POST", path, raw) for name, raw in _raw_bodies().items()]
    cases.append(LabCase(f"{path} empty body", "POST", path, b""))  # no qasm: 422
    for key in allowed:
        for i, value in enumerate(ODD_VALUES):
            kind = "maybe" if not emulator and _valid(key, value) else "refuse"
            cases.append(LabCase(f"{path} {key}={str(value)[:20]!r}#{i}", "POST", path, _json({**good, key: value}), kind))
        missing = {k: v for k, v in good.items() if k != key}  # only qasm is required; the emulator's is broken
        kind = "maybe" if key != "qasm" and not emulator else "refuse"
        cases.append(LabCase(f"{path} without {key}", "POST", path, _json(missing), kind))
    for name in ["owner", "user", "circuits", "priority", "__proto__", "", "\ud800", "x" * 5000, "Qasm", "shot"]:
        cases.append(LabCase(f"{path} unknown field {name[:20]!r}", "POST", path, _json({**good, name: rng.choice(ODD_VALUES[:10])})))
    cases.append(LabCase(f"{path} qasm over the limit", "POST", path, _json({**good, "qasm": "x" * (MAX_QASM_CHARS + 1)})))
    cases.append(LabCase(f"{path} body over the limit", "POST", path, b'{"qasm": "' + b"x" * MAX_BODY_BYTES + b'"}'))
    return cases


def _emulator_programs() -> list[LabCase]:
    """Programs the emulator route must refuse before it parses (or starts a cluster): register
    bombs and include paths, from hostile_inputs' lists."""
    path = "qmio/emulator/run"
    cases = []
    for n in BIG:
        if n.isdigit() and int(n) > 1024:
            for text in (f'OPENQASM 2.0; include "qelib1.inc"; qreg q[{n}]; creg c[1]; measure q[0] -> c[0];',
                         f'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[{n}]; measure q[0] -> c[0];',
                         f"OPENQASM 3.0; qubit[{n}] q; bit[1] c; c[0] = measure q[0];",
                         f"OPENQASM 3.0; qubit[1] q; bit[{n}] c; c[0] = measure q[0];"):
                cases.append(LabCase(f"emulator bomb {n} {text[14:48]!r}", "POST", path, _json({"qasm": text, "shots": 10})))
    for include in INCLUDES:
        text = f'OPENQASM 2.0; include "{include}"; qreg q[1]; creg c[1]; measure q[0] -> c[0];'
        cases.append(LabCase(f"emulator include {include!r}", "POST", path, _json({"qasm": text, "shots": 10})))
    return cases


def _submit_programs(rng: random.Random, mutants: int) -> list[LabCase]:
    """hostile_inputs' QASM bombs, include paths and a seeded sample of its mutations, as lab
    submissions. A mutant (or a bomb within the limits) may still be a valid program: accepted."""
    path = "qmio/qpu/jobs"
    programs, sampled = [], []
    for case in hostile_cases(SEED):
        items = case.body.get("circuits") if isinstance(case.body, dict) else None
        if (case.path != "/api/v1/jobs" or case.name.startswith("json ") or set(case.body or ()) != {"circuits", "shots"}
                or not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict)):
            continue  # the lab submits one OpenQASM program: only those cases carry over
        if items[0].get("format", "qasm") == "qpy" or not isinstance(items[0].get("data"), str):
            continue
        target = sampled if "mutant-" in case.name else programs
        target.append(LabCase(f"submit {case.name}", "POST", path, _json({"qasm": items[0]["data"], "shots": 10, "name": "fuzz"}),
                              "maybe" if case.kind == "mutant" else "refuse"))
    return programs + rng.sample(sampled, mutants)


def _query_cases() -> list[LabCase]:
    cases = []
    odd = ["-1", "0", "201", str(MAX_JOBS_LISTED), "1e99", "abc", "", "nan", "inf", "1" * 5000, "%00", "1.5", "0x10", " 5",
           "٥", "²", "💥", "\ud800", "5;DROP TABLE jobs", "9" * 30]
    for v in odd:
        valid = v.strip().isascii() and v.strip().isdigit() and len(v) < 6 and 1 <= int(v) <= MAX_JOBS_LISTED
        cases.append(LabCase(f"jobs limit={v[:20]!r}", "GET", f"qmio/qpu/jobs?limit={quote(v, errors='surrogatepass')}",
                             kind="maybe" if valid else "refuse"))
    states = ["queued", "running", "done", "failed", "cancelled", "lost", "QUEUED", "queued ", "", "%", "x" * 5000, "💥",
              "queued,done", "queued'--"]
    for s in states:
        cases.append(LabCase(f"jobs state={s[:20]!r}", "GET", f"qmio/qpu/jobs?state={quote(s)}",
                             kind="maybe" if s.strip() in ("queued", "running", "done", "failed", "cancelled", "") else "refuse"))
    cases += [
        LabCase("jobs state repeated", "GET", "qmio/qpu/jobs?" + "&".join(["state=queued"] * 500), kind="maybe"),
        LabCase("jobs limit repeated", "GET", "qmio/qpu/jobs?limit=5&limit=abc"),
        LabCase("jobs limit repeated ok", "GET", "qmio/qpu/jobs?limit=abc&limit=5", kind="maybe"),
        LabCase("jobs invalid percent-utf8", "GET", "qmio/qpu/jobs?limit=%ff%fe"),
        LabCase("jobs invalid state utf8", "GET", "qmio/qpu/jobs?state=%c3%28"),
        LabCase("jobs long unknown param", "GET", "qmio/qpu/jobs?x=" + "y" * 20000, kind="maybe"),
        # (over 1000 query arguments, tornado itself answers a bare 400 before any handler runs)
        LabCase("jobs many params", "GET", "qmio/qpu/jobs?" + "&".join(f"p{i}={i}" for i in range(990)), kind="maybe"),
        LabCase("jobs no_track_activity odd", "GET", "qmio/qpu/jobs?no_track_activity=%ff", kind="maybe"),
    ]
    for path in ("qmio/qpu/status", "qmio/qpu/chip", "qmio/qpu/calibrations", "qmio/emulator"):
        for q in ("limit=-1", "state=lost", "x=" + "y" * 20000, "%ff=%fe", "a=1&a=2&a=3"):
            cases.append(LabCase(f"{path}?{q[:20]}", "GET", f"{path}?{q}", kind="maybe"))  # extra params are ignored
    return cases


def _path_cases(rng: random.Random) -> list[LabCase]:
    ids = ["a" * 65, "a" * 5000, "..", ".", "...", "%2e%2e", "%2e", "%00", "a%00b", "%2F", "..%2F..%2Fetc%2Fpasswd",
           "%3Fwait%3D60", "a%20b", "%E2%80%AE", quote("é"), quote("💥"), quote("job-ñ"), "%ff", "%c3%28", "%25", "a.b",
           "null", "undefined", "-", "_", "0" * 64, "%5Cetc", "a;b", "a%0d%0aX-Injected:%201"]
    cases = []
    for job_id in ids:
        cases.append(LabCase(f"cancel id {job_id[:30]!r} ({len(job_id)})", "DELETE", f"qmio/qpu/jobs/{job_id}"))
    for i in range(5):  # well-formed ids of no job: the service's 404
        cases.append(LabCase(f"cancel unknown uuid #{i}", "DELETE", f"qmio/qpu/jobs/{rng.randbytes(16).hex()}"))
    for path in ["qmio", "qmio/", "qmio/qpu", "qmio/qpu/", "qmio/qpu/jobs/", "qmio/qpu/jobs/x/y", "qmio/qpu/jobs/x/result",
                 "qmio/qpu/status/extra", "qmio/nope", "qmio/..%2F..%2Fapi%2Fcontents", "qmio/" + "z" * 5000,
                 "qmio/emulator/run/now", "qmio/%00", "qmio/" + quote("💥")]:
        for method in ("GET", "POST", "DELETE"):
            cases.append(LabCase(f"no route {method} {path[:40]!r}", method, path, b"{}" if method == "POST" else None))
    return cases


def _method_cases() -> list[LabCase]:
    cases = []
    for path, allowed in route_paths().items():
        for method in ("GET", "POST", "DELETE", "PUT", "PATCH"):
            if method not in allowed:
                body = b"{}" if method in ("POST", "PUT", "PATCH") else None
                cases.append(LabCase(f"{method} {path} (not allowed)", method, path, body))
    return cases


def lab_cases(seed: int = SEED, mutants: int = 60) -> list[LabCase]:
    rng = random.Random(seed)
    cases = _body_cases("qmio/qpu/jobs", ("qasm", "shots", "name"), {"qasm": BELL_QASM, "shots": 10, "name": "fuzz"}, rng)
    cases += _body_cases("qmio/emulator/run", ("qasm", "shots"), {"qasm": BROKEN_QASM, "shots": 10}, rng)
    cases += [LabCase(f"emulator shots={str(v)[:20]!r}", "POST", "qmio/emulator/run", _json({"qasm": BELL_QASM, "shots": v}))
              for v in ODD_VALUES if not (type(v) is int and 1 <= v <= 100000)]
    cases += _emulator_programs() + _submit_programs(rng, mutants) + _query_cases() + _path_cases(rng) + _method_cases()
    return cases


def test_the_cases_cover_every_route_and_method():
    cases = lab_cases()
    assert len(cases) >= 400
    assert len({c.name for c in cases}) == len(cases), "case names must be unique (a failure names one)"
    for path, methods in route_paths().items():
        for method in methods:
            mine = [c for c in cases if c.method == method and c.path.split("?")[0] == path]
            assert len(mine) >= 2 or path.startswith("qmio/qpu/jobs/"), (method, path)
    assert sum(c.path.startswith("qmio/qpu/jobs/") and c.method == "DELETE" for c in cases) >= 20


# ---- against a real extension and a real QPU service -------------------------------------------
async def send(http_server_client, jp_base_url, jp_auth_header, case: LabCase) -> tuple[int, Any, float]:
    headers = {**jp_auth_header, "Content-Type": "application/json", **case.headers}
    body = case.body
    if body is None and case.method in ("POST", "PUT", "PATCH"):
        body = b""
    start = time.monotonic()
    try:
        response = await http_server_client.fetch(
            jp_base_url.rstrip("/") + "/" + case.path, method=case.method, body=body, headers=headers,
            raise_error=False, request_timeout=3 * ANSWER_WITHIN_S, allow_nonstandard_methods=True,
            follow_redirects=False)
    except Exception as exc:  # no answer at all (a timeout, a closed connection): that case fails
        return 599, repr(exc), time.monotonic() - start
    elapsed = time.monotonic() - start
    try:
        payload = json.loads(response.body) if response.body else None
    except ValueError:
        payload = None
    return response.code, payload, elapsed


GENERIC = set(responses.values()) | {"Unhandled error", "HTTP error"}


def problem_of(case: LabCase, status: int, payload: Any, elapsed: float) -> str | None:
    if status >= 500 or status < 200:
        return f"{status}"
    if case.kind == "refuse" and not 400 <= status < 500:
        return f"not refused ({status})"
    if status >= 400:
        if not (isinstance(payload, dict) and isinstance(payload.get("error"), str) and payload["error"].strip()):
            return "no JSON {'error': ...} body"
        if payload["error"] in GENERIC:
            return f"an error that does not say what is wrong: {payload['error']!r}"
        if payload.get("status") != status:
            return f"body status {payload.get('status')} for {status}"
    elif not isinstance(payload, dict):
        return "a 2xx without a JSON object"
    if elapsed > ANSWER_WITHIN_S:
        return f"answered after {elapsed:.1f} s"
    return None


async def test_every_malformed_request_gets_a_prompt_precise_4xx(http_server_client, jp_base_url, jp_auth_header, service):
    cases = lab_cases()
    service.set_maintenance(True)  # what a mutant gets accepted stays queued, and is cancelled below
    failures, accepted = [], []
    try:
        for case in cases:
            status, payload, elapsed = await send(http_server_client, jp_base_url, jp_auth_header, case)
            problem = problem_of(case, status, payload, elapsed)
            if problem:
                failures.append(f"{case.name}: {problem}: {str(payload)[:240]}")
            if status == 201 and isinstance(payload, dict):
                accepted.append(payload["id"])
    finally:
        for job_id in accepted:
            service.cancel(job_id)
        service.set_maintenance(False)
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:60])

    # and the extension still works: the QPU's status, and a Bell job that runs
    ok = LabCase("status", "GET", "qmio/qpu/status", kind="maybe")
    status, payload, _ = await send(http_server_client, jp_base_url, jp_auth_header, ok)
    assert (status, payload["state"]) == (200, "online")
    bell = LabCase("bell", "POST", "qmio/qpu/jobs", _json({"qasm": BELL_QASM, "shots": 100, "name": "bell.qasm"}), "maybe")
    status, job, _ = await send(http_server_client, jp_base_url, jp_auth_header, bell)
    assert status == 201, job
    assert service.wait(job["id"], timeout=60)["state"] == "done"


# ---- the bugs the fuzzing found, one each ---------------------------------------------------------
async def fetch_error(jp_fetch, *parts, **kw) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*parts, **kw)
    return info.value.code, json.loads(info.value.response.body)


async def test_deep_json_is_a_400_not_a_recursion_error(jp_fetch, service):
    code, body = await fetch_error(jp_fetch, "qmio", "qpu", "jobs", method="POST", body=b"[" * 10_000 + b"]" * 10_000)
    assert (code, body) == (400, {"error": "the request body nests JSON too deeply", "status": 400})


async def test_refusals_by_tornado_and_jupyter_have_the_same_shape(jp_fetch, service):
    code, body = await fetch_error(jp_fetch, "qmio", "qpu", "status", method="POST", body="{}")
    assert (code, body["status"]) == (405, 405) and body["error"].startswith("POST is not allowed") and "use GET" in body["error"]
    code, body = await fetch_error(jp_fetch, "qmio", "qpu", "jobs", method="GET", headers={"Authorization": ""})
    assert code == 403 and "token" in body["error"] and set(body) == {"error", "status"}
    code, body = await fetch_error(jp_fetch, "qmio", "qpu", "nope")
    assert code == 404 and "/qmio/qpu/status" in body["error"]


async def test_unknown_fields_and_wrong_types_are_named(jp_fetch, service):
    code, body = await fetch_error(jp_fetch, "qmio", "qpu", "jobs", method="POST",
                                   body=json.dumps({"qasm": BELL_QASM, "shot": 10}))
    assert code == 400 and "'shot'" in body["error"] and "allowed: qasm, shots, name" in body["error"]
    code, body = await fetch_error(jp_fetch, "qmio", "qpu", "jobs", method="POST",
                                   body=json.dumps({"qasm": BELL_QASM, "name": ["bell"]}))
    assert code == 400 and "'name' must be a string" in body["error"]
    code, body = await fetch_error(jp_fetch, "qmio", "qpu", "jobs", method="POST",
                                   body=json.dumps({"qasm": BELL_QASM, "shots": 10**9}))
    assert code == 422 and "from 1 to 100000" in body["error"]
    code, body = await fetch_error(jp_fetch, "qmio", "qpu", "jobs", params={"limit": "-1"})
    assert code == 400 and f"from 1 to {MAX_JOBS_LISTED}" in body["error"]
    code, body = await fetch_error(jp_fetch, "qmio", "qpu", "jobs", params={"state": "lost"})
    assert code == 400 and "unknown state 'lost'" in body["error"]
    code, body = await fetch_error(jp_fetch, "qmio", "qpu", "jobs", "..", method="DELETE")
    assert code == 400 and "not a job id" in body["error"]


async def test_a_register_bomb_never_reaches_the_emulators_parser(jp_fetch, service):
    """Parsing ``qreg q[2000000000]`` in the Jupyter server's process would take it down."""
    from qmio_lab.emulator import cluster as clusters

    code, body = await fetch_error(jp_fetch, "qmio", "emulator", "run", method="POST", body=json.dumps(
        {"qasm": 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2000000000]; creg c[1]; measure q[0] -> c[0];', "shots": 10}))
    assert code == 422 and "uses 2000000000 qubits; the emulator accepts at most 34" in body["error"]
    code, body = await fetch_error(jp_fetch, "qmio", "emulator", "run", method="POST", body=json.dumps(
        {"qasm": 'OPENQASM 2.0; include "/etc/passwd"; qreg q[1];', "shots": 10}))
    assert code == 422 and "include '/etc/passwd' is not allowed" in body["error"]
    assert clusters._shared.client is None  # and no cluster was started to refuse them


async def test_an_announced_oversized_body_is_refused_from_its_headers(http_server_client, jp_http_port, jp_base_url,
                                                                       jp_auth_header, service):
    """200 MB announced, none of it sent: the 413 comes at once and nothing is buffered."""
    import asyncio

    def exchange() -> tuple[int, dict]:
        with socket.create_connection(("127.0.0.1", jp_http_port), timeout=5) as sock:
            sock.sendall(f"POST {jp_base_url}qmio/qpu/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Authorization: {jp_auth_header['Authorization']}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {200 * 2**20}\r\n\r\n".encode())
            reply = sock.makefile("rb")
            status = int(reply.readline().split()[1])
            length = 0
            while (line := reply.readline().strip()):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            return status, json.loads(reply.read(length))

    code, body = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, exchange), 10)
    assert code == 413 and f"the limit is {MAX_BODY_BYTES}" in body["error"]
