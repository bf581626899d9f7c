"""Malformed, oversized and hostile requests for the queue service (no tests here).

Generated from a fixed seed, so a failure names a case that can be replayed. Each case is a
request: method, path (with query), JSON-able body or raw bytes, and what is allowed back:
``refuse`` cases must get a 4xx; ``mutant`` cases (random edits of valid programs) may happen
to still be valid programs and so may be accepted (201), but never answered with a 5xx.
"""
from __future__ import annotations

import base64
import json
import random
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from support.circuits import BELL_QASM2, BELL_QASM3

GHZ_QASM2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\ncreg c[3];\nh q[0];\ncx q[0],q[1];\ncx q[1],q[2];\nmeasure q -> c;\n'
GATES_QASM2 = ('OPENQASM 2.0;\ninclude "qelib1.inc";\ngate majority a,b,c { cx c,b; cx c,a; ccx a,b,c; }\n'
               'qreg q[3];\ncreg c[3];\nmajority q[0],q[1],q[2];\nmeasure q -> c;\n')
PARAM_QASM3 = ('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nrx(0.5) q[0];\nrz(pi/4) q[1];\n'
               'cx q[0], q[1];\nc = measure q;\n')
BASES2 = [BELL_QASM2, GHZ_QASM2, GATES_QASM2]
BASES3 = [BELL_QASM3, PARAM_QASM3]

BIG = ["2000000000", "200000000", "4294967296", "99999999999999999999", "1e9", "-1", "0x7fffffff", "1024", "1025",
       "33", "100000"]
TOKENS = ["[", "]", ";", "{", "}", "(", ")", ",", "->", "qreg", "creg", "gate", "measure", "barrier", "opaque",
          "if(c==1)", "reset", "U(0,0,0)", "pi", "1e309", "-1e309", "nan", "0/0", "\x00", "\u202e", "\ud7ff",
          "é", "💥", "include \"/etc/passwd\";", "include \"qelib1.inc\";", "OPENQASM 2.0;", "OPENQASM 3.0;",
          "q[2000000000]", "c[-1]", "//", "/*", "*/", "\"", "'", "\\", "\n", "\t", "x" * 5000]
INCLUDES = ["/etc/passwd", "/etc/shadow", "../../../../etc/passwd", "/proc/self/environ", "/proc/self/cmdline",
            "qelib1.inc/../../etc/passwd", "./qelib1.inc", "QELIB1.INC", "stdgates.inc ", "/dev/zero",
            "/dev/urandom", "~/.ssh/id_rsa", "file:///etc/passwd", "http://127.0.0.1/x.inc", "%2Fetc%2Fpasswd",
            "", " ", "qmio.yaml", "queue.sqlite", "users.json"]


@dataclass
class Case:
    name: str
    method: str
    path: str
    body: Any = None
    raw: bytes | None = None
    kind: str = "refuse"  # refuse | mutant
    headers: dict[str, str] = field(default_factory=dict)


def job(circuits: Any, **extra: Any) -> dict[str, Any]:
    return {"circuits": circuits, "shots": 10, **extra}


def _mutate(rng: random.Random, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randrange(len(chars) + 1)
        if op < 0.35 and chars:
            del chars[min(pos, len(chars) - 1):min(pos, len(chars) - 1) + rng.randint(1, 8)]
        elif op < 0.75:
            chars[pos:pos] = list(" " + rng.choice(TOKENS) + " ")
        elif op < 0.9:
            lines = "".join(chars).split("\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[rng.randrange(len(lines))])
            chars = list("\n".join(lines))
        else:
            number = rng.choice(BIG)
            text2 = "".join(chars)
            chars = list(text2.replace("[2]", f"[{number}]", 1).replace("[3]", f"[{number}]", 1))
    return "".join(chars)


def _bombs() -> list[Case]:
    cases = []
    for size in ("2147483647 + 0", "0X7FFF_FFFF", "0b" + "1" * 40, "2 * 1073741824", "n"):  # sizes a decimal scan misses
        cases.append(Case(f"qubit[{size}]", "POST", "/api/v1/jobs",
                          job([{"data": f"OPENQASM 3.0; qubit[{size}] q; bit[1] c; c[0] = measure q[0];"}])))
    for n in BIG:
        cases += [
            Case(f"qreg[{n}]", "POST", "/api/v1/jobs", job([{"data": f'OPENQASM 2.0; include "qelib1.inc"; qreg q[{n}]; creg c[1]; measure q[0] -> c[0];'}])),
            Case(f"creg[{n}]", "POST", "/api/v1/jobs", job([{"data": f'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[{n}]; measure q[0] -> c[0];'}])),
            Case(f"qubit[{n}]", "POST", "/api/v1/jobs", job([{"data": f"OPENQASM 3.0; qubit[{n}] q; bit[1] c; c[0] = measure q[0];"}])),
            Case(f"bit[{n}]", "POST", "/api/v1/jobs", job([{"data": f"OPENQASM 3.0; qubit[1] q; bit[{n}] c; c[0] = measure q[0];"}])),
            Case(f"many-cregs-{n}", "POST", "/api/v1/jobs", job([{"data": 'OPENQASM 2.0; include "qelib1.inc"; qreg q[1];'
                                                                   + "".join(f" creg c{i}[{n}];" for i in range(20)) + " measure q[0] -> c0[0];"}])),
        ]
    for c in cases:  # sizes within the limits make valid programs: those may be accepted
        size = c.name.rsplit("-", 1)[-1].strip("[]").split("[")[-1].rstrip("]")
        if size in ("33", "1024") and c.name.startswith(("creg", "bit", "many-cregs")) and not (
                c.name.startswith("many-cregs") and int(size) * 20 > 1024):
            c.kind = "mutant"
    for depth in (20, 40, 64, 200, 1000):
        defs = "gate g0 a { x a; }\n" + "".join(f"gate g{i} a {{ g{i-1} a; g{i-1} a; }}\n" for i in range(1, depth + 1))
        cases.append(Case(f"doubling-gates-{depth}", "POST", "/api/v1/jobs", job([{"data": 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
                                                                                   + defs + f"qreg q[1]; creg c[1]; g{depth} q[0]; measure q[0] -> c[0];"}])))
        chain = "gate h0 a { x a; }\n" + "".join(f"gate h{i} a {{ h{i-1} a; }}\n" for i in range(1, depth + 1))
        cases.append(Case(f"chained-gates-{depth}", "POST", "/api/v1/jobs", job([{"data": 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
                                                                                  + chain + f"qreg q[1]; creg c[1]; h{depth} q[0]; measure q[0] -> c[0];"}]),
                          kind="mutant" if depth < 50 else "refuse"))  # within max_nesting: a valid program
    for width in (10, 100):
        fan = "gate f0 a { x a; }\n" + "".join(f"gate f{i} a {{ {' '.join(f'f{i-1} a;' for _ in range(width))} }}\n" for i in range(1, 6))
        cases.append(Case(f"fan-gates-{width}", "POST", "/api/v1/jobs", job([{"data": 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
                                                                              + fan + "qreg q[1]; creg c[1]; f5 q[0]; measure q[0] -> c[0];"}])))
    cases.append(Case("qasm3-for-billion", "POST", "/api/v1/jobs", job([{"data": 'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[1] c; '
                                                                         'for int i in [0:1000000000] { x q[0]; } c[0] = measure q[0];'}])))
    cases.append(Case("qasm3-while", "POST", "/api/v1/jobs", job([{"data": 'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[1] c; '
                                                                   'c[0] = measure q[0]; while (c[0] == 0) { c[0] = measure q[0]; }'}])))
    cases.append(Case("qasm3-const-size", "POST", "/api/v1/jobs", job([{"data": "OPENQASM 3.0; const uint n = 2000000000; qubit[1] q; "
                                                                        "bit[n] c; c[0] = measure q[0];"}])))
    cases.append(Case("long-expression", "POST", "/api/v1/jobs", job([{"data": 'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1]; rz('
                                                                       + "+".join(["pi"] * 50000) + ") q[0]; measure q[0] -> c[0];"}]), kind="mutant"))
    cases.append(Case("deep-parentheses", "POST", "/api/v1/jobs", job([{"data": 'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1]; rz('
                                                                        + "(" * 20000 + "pi" + ")" * 20000 + ") q[0]; measure q[0] -> c[0];"}]), kind="mutant"))
    cases.append(Case("many-gates", "POST", "/api/v1/jobs", job([{"data": 'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; creg c[1];'
                                                                  + " x q[0];" * 300000 + " measure q[0] -> c[0];"}])))
    return cases


def _includes() -> list[Case]:
    cases = []
    for path in INCLUDES:
        cases.append(Case(f"include2 {path!r}", "POST", "/api/v1/jobs", job([{"data": f'OPENQASM 2.0; include "{path}"; qreg q[1]; creg c[1]; measure q[0] -> c[0];'}])))
        cases.append(Case(f"include3 {path!r}", "POST", "/api/v1/jobs", job([{"data": f'OPENQASM 3.0; include "{path}"; qubit[1] q; bit[1] c; c[0] = measure q[0];'}])))
    cases.append(Case("include2 stdgates", "POST", "/api/v1/jobs", job([{"data": 'OPENQASM 2.0; include "stdgates.inc"; qreg q[1]; creg c[1]; measure q[0] -> c[0];'}])))
    return cases


def _qpy_header(version: int, circuits: int) -> bytes:
    return b"QISKIT" + struct.pack("!BBBBQ", version, 2, 6, 0, circuits)


def _qpy(rng: random.Random) -> list[Case]:
    from qiskit import qpy
    import io

    from support.circuits import bell

    buf = io.BytesIO()
    qpy.dump(bell(), buf)
    good = buf.getvalue()
    blobs = {"empty": b"", "magic-only": b"QISKIT", "huge-count": _qpy_header(13, 2**63 - 1),
             "zero-count": _qpy_header(13, 0), "future-version": _qpy_header(250, 1), "version-0": _qpy_header(0, 1),
             "truncated": good[: len(good) // 2], "two-circuits": None}
    for i in range(40):  # the good file with a few bytes of its header set to extremes
        data = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(6, min(len(data), 80))
            data[pos:pos + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00", b"\x80\x00\x00\x00"])
        blobs[f"header-flip-{i}"] = bytes(data)
    cases = []
    for name, blob in blobs.items():
        if blob is None:
            buf = io.BytesIO()
            qpy.dump([bell(), bell()], buf)
            blob = buf.getvalue()
        kind = "mutant" if name.startswith("header-flip") else "refuse"
        cases.append(Case(f"qpy {name}", "POST", "/api/v1/jobs", job([{"format": "qpy", "data": base64.b64encode(blob).decode()}]), kind=kind))
    cases.append(Case("qpy not-base64", "POST", "/api/v1/jobs", job([{"format": "qpy", "data": "%%%"}])))
    cases.append(Case("qpy big-garbage", "POST", "/api/v1/jobs", job([{"format": "qpy", "data": base64.b64encode(rng.randbytes(3_000_000)).decode()}])))
    return cases


def _json_confusion() -> list[Case]:
    odd = [None, True, False, 0, -1, 1.5, 1e308, -1e308, 2**63, 2**64 + 1, "", "x" * 10000, "10", [], [1], {}, {"a": 1},
           [[[]]], "\ud800", "\u0000", "💥"]
    cases = []
    # digits str.isdigit passes that are not a SLURM job id: superscript two, Arabic-Indic, an array task
    job_ids = ["\u00b2", "\u0661\u0662\u0663", "12_3", "1" * 21]
    fields = {"shots": odd, "priority": odd, "optimization_level": odd, "name": odd, "slurm_job_id": odd + job_ids,
              "circuits": odd + [[None], [1], ["OPENQASM 2.0;"], [{"data": 5}], [{"data": None}], [{"format": "qasm4", "data": "x"}],
                                 [{"format": 7, "data": BELL_QASM2}], [{"data": BELL_QASM2, "name": "\ud800"}],
                                 [{"data": "\ud800"}], [{"data": BELL_QASM2 + "// \udfff"}],
                                 [{"format": "qpy", "data": "\ud800"}],
                                 [{"data": BELL_QASM2, "name": ["x"]}], [{"data": BELL_QASM2, "parameter_values": "x"}],
                                 [{"data": BELL_QASM2, "parameter_values": [[1e308]] * 2}], [{}] * 2000]}
    good = {"circuits": [{"data": BELL_QASM2}], "shots": 10}
    for key, values in fields.items():
        for i, value in enumerate(values):
            body = {**good, key: value}
            # a value that is valid for the field is not hostile: those cases say so
            valid = (key == "shots" and value in (1.5,) and False) or \
                (key in ("priority", "optimization_level") and type(value) is int and 0 <= value <= 3) or \
                (key == "shots" and type(value) is int and 1 <= value <= 100000) or \
                (key == "name" and (value is None or (isinstance(value, str) and len(value) <= 200 and value != "\ud800"))) or \
                (key == "slurm_job_id" and (value in (None, "", 0, "10") or value is False
                                            or (type(value) is int and 0 <= value < 10**20)))
            cases.append(Case(f"json {key}={str(value)[:30]!r}#{i}", "POST", "/api/v1/jobs", body,
                              kind="mutant" if valid else "refuse"))
    cases.append(Case("json unknown field", "POST", "/api/v1/jobs", {**good, "owner": "root"}))
    for i, digest in enumerate([5, None, "0" * 64, "x" * 100000, ["a"], {"a": 1}]):  # never trusted: runs as sent
        cases.append(Case(f"json item digest#{i}", "POST", "/api/v1/jobs",
                          {**good, "circuits": [{"data": BELL_QASM2, "digest": digest}]}, kind="mutant"))
    cases.append(Case("json user field", "POST", "/api/v1/jobs", {**good, "user": "bob"}))
    for name, raw in {"not-json": b"{not json", "array": b"[1,2]", "string": b'"x"', "number": b"1", "null": b"null",
                      "nan": b'{"circuits": [{"data": "x"}], "shots": NaN}', "infinity": b'{"shots": Infinity}',
                      "invalid-utf8": b'{"name": "\xff\xfe"}', "utf16": '{"shots": 1}'.encode("utf-16"),
                      "deep-arrays": b"[" * 100000 + b"]" * 100000, "deep-objects": b'{"a":' * 50000 + b"1" + b"}" * 50000,
                      "huge-number": b'{"shots": 1' + b"0" * 5000 + b"}", "dup-keys": b'{"shots": 10, "shots": -1, "circuits": []}',
                      "bom": b'\xef\xbb\xbf{"shots": 10}', "empty": b"", "spaces": b" " * 1000}.items():
        cases.append(Case(f"raw {name}", "POST", "/api/v1/jobs", raw=raw))
        cases.append(Case(f"raw status {name}", "PUT", "/api/v1/status", raw=raw))
        cases.append(Case(f"raw session {name}", "POST", "/api/v1/sessions", raw=raw,
                          kind="mutant" if name == "empty" else "refuse"))
    for value in odd:
        cases.append(Case(f"session max_time_s={str(value)[:20]!r}", "POST", "/api/v1/sessions", {"max_time_s": value},
                          kind="mutant" if type(value) in (int, float) and 0 < value <= 900 else "refuse"))
    cases.append(Case("oversized body", "POST", "/api/v1/jobs", raw=b'{"circuits": [{"data": "' + b"x" * (17 * 2**20) + b'"}]}'))
    cases.append(Case("lying content-length", "POST", "/api/v1/jobs", raw=b"{}", headers={"Content-Length": "99999999999"}))
    return cases


def _queries() -> list[Case]:
    values = ["-1", "0", "1e99", "abc", "", "nan", "inf", "-inf", "1" * 5000, "10001", "%00", "1.5", "0x10", " 5", "💥"]
    cases = []
    for v in values:
        q = quote(v)
        cases.append(Case(f"limit={v[:20]!r}", "GET", f"/api/v1/jobs?limit={q}", kind="mutant" if v == " 5" else "refuse"))
        cases.append(Case(f"wait={v[:20]!r}", "GET", f"/api/v1/jobs/doesnotexist?wait={q}"))
        cases.append(Case(f"state={v[:20]!r}", "GET", f"/api/v1/jobs?state={q}", kind="mutant" if v == "" else "refuse"))
    for path in ["/api/v1/jobs/" + "a" * 5000, "/api/v1/jobs/../../etc/passwd", "/api/v1/jobs/%2e%2e%2fetc",
                 "/api/v1/calibrations/" + "c" * 5000, "/api/v1/calibrations/..%2f..%2fetc%2fpasswd",
                 "/api/v1/sessions/" + "s" * 300, "/api/v1/jobs/x/result?wait=" + "9" * 400, "/" + "x" * 10000]:
        cases.append(Case(f"path {path[:40]!r}", "GET", path))
    return cases


def hostile_cases(seed: int = 13) -> list[Case]:
    rng = random.Random(seed)
    cases = _bombs() + _includes() + _qpy(rng) + _json_confusion() + _queries()
    for i in range(300):
        base = rng.choice(BASES2)
        cases.append(Case(f"qasm2-mutant-{i}", "POST", "/api/v1/jobs", job([{"format": "qasm2", "data": _mutate(rng, base)}]), kind="mutant"))
    for i in range(300):
        base = rng.choice(BASES3)
        cases.append(Case(f"qasm3-mutant-{i}", "POST", "/api/v1/jobs", job([{"format": "qasm3", "data": _mutate(rng, base)}]), kind="mutant"))
    return cases


def encode(case: Case) -> bytes:
    if case.raw is not None:
        return case.raw
    return json.dumps(case.body).encode("utf-8", "surrogatepass")
