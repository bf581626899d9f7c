"""The QMIO client's wire, read safely: requests as the client pickles them, hostile pickles
refused without running or importing anything, and replies in the real server's shapes."""
from __future__ import annotations

import json
import os
import pickle
import pickletools
import time

import pytest

from qmio_lab.errors import GatewayRequestError
from qmio_lab.qpu.qmio_wire import (
    InfoRequest, ProgramRequest, creg_results, dumps_reply, error_reply, loads_plain, parse_request,
)

BELL = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n'
LIMIT = 1 << 20
#: (format, transforms) the client sends for each res_format (QAT's enum values)
FORMAT_VALUES = {"binary_count": (1, 3), "raw": (1, 2), "binary": (2, 2), "squash_binary_result_arrays": (2, 6)}


def config(shots=1000, period=None, optimization_value=None, res_format="binary_count") -> str:
    fmt, transforms = FORMAT_VALUES[res_format]
    data = {
        "repeats": shots, "repetition_period": period,
        "results_format": {"$type": "<class 'qat.purr.compiler.config.QuantumResultsFormat'>",
                           "$data": {"format": {"$value": fmt}, "transforms": {"$value": transforms}}},
        "metrics": {"$value": 6}, "active_calibrations": [],
        "optimizations": None if optimization_value is None else {"$value": optimization_value},
    }
    return json.dumps({"$type": "<class 'qat.purr.compiler.config.CompilerConfig'>", "$data": data})


def request(value, protocol=pickle.DEFAULT_PROTOCOL):
    return parse_request(loads_plain(pickle.dumps(value, protocol=protocol), LIMIT), max_shots=100_000)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_client_request_is_read(protocol):
    got = request((BELL, config(2000, 500e-6, 18, "raw")), protocol)
    assert got == ProgramRequest(BELL, 2000, 500e-6, 1, "raw")
    assert request((BELL, config(optimization_value=30, res_format="squash_binary_result_arrays"))) == \
        ProgramRequest(BELL, 1000, None, 2, "squash_binary_result_arrays")
    assert request((BELL, config(optimization_value=1))).optimization == 0
    assert request(("version",)) == InfoRequest("version")


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/qmio-wire-pwned",))


def _ext_pickle() -> bytes:
    """EXT1 names a global through copyreg's extension registry."""
    return b"\x80\x02\x82\x01."


@pytest.mark.parametrize("data, message", [
    (pickle.dumps(_Evil()), "names posix.system"),
    (pickle.dumps((BELL, _Evil())), "names posix.system"),
    (pickle.dumps(time.time), "names time.time"),
    (pickle.dumps(ValueError("x")), "the request names "),  # builtins, or tblib's hook where installed
    (pickle.dumps({1, 2}), "set"),  # sets are built from builtins.set in protocol 2
    (b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00P1\nP.", "persistent"),
    (b"not a pickle at all", r"not a pickled \(circuit, config\) tuple"),
    (pickle.dumps((BELL, config()))[:-5], "not a pickled"),
    (b"x" * (LIMIT + 1), "the limit is"),
])
def test_hostile_pickles_are_refused_without_running_anything(tmp_path, data, message):
    with pytest.raises(GatewayRequestError, match=message):
        loads_plain(data, LIMIT)
    assert not os.path.exists("/tmp/qmio-wire-pwned")


def test_extension_codes_reach_no_global():
    import copyreg

    copyreg.add_extension("os", "system", 1)
    try:
        with pytest.raises(GatewayRequestError, match="names os.system"):
            loads_plain(_ext_pickle(), LIMIT)
    finally:
        copyreg.remove_extension("os", "system", 1)


def _shared_list_pickle(refs: int, size: int) -> bytes:
    """One list of ``size`` items, then a list holding ``refs`` references to it (the memo)."""
    inner = list(range(size))
    return pickle.dumps([inner] * refs, protocol=4)


def test_a_memo_bomb_costs_linear_time():
    data = _shared_list_pickle(refs=200_000, size=200_000)  # 40e9 items if walked naively
    assert len(data) < LIMIT * 2
    t = time.perf_counter()
    value = loads_plain(data, LIMIT * 2)
    assert time.perf_counter() - t < 5 and len(value) == 200_000


def test_cycles_and_deep_nesting_are_handled():
    cyclic: list = []
    cyclic.append(cyclic)
    loads_plain(pickle.dumps(cyclic), LIMIT)  # plain, and checked once
    deep: list = []
    for _ in range(20):
        deep = [deep]
    with pytest.raises(GatewayRequestError, match="nests deeper"):
        loads_plain(pickle.dumps(deep), LIMIT)


@pytest.mark.parametrize("value, message", [
    ((BELL,), "expected a \\(circuit, config\\) tuple"),
    ((1, config()), "expected a \\(circuit, config\\) tuple"),
    ((BELL, 42), "CompilerConfig serialised as JSON"),
    ((BELL, "{"), "not JSON"),
    ((BELL, "[" * 100_000), "not JSON"),
    ((BELL, "{}"), "no '\\$data'"),
    ((BELL, config(shots=0)), "repeats \\(shots\\) must be an integer 1..100000"),
    ((BELL, config(shots=10**9)), "1..100000"),
    ((BELL, config(shots=True)), "1..100000"),
    ((BELL, config(period=-1)), "repetition_period must be seconds"),
    ((BELL, config(period=3600)), "repetition_period must be seconds"),
    ((BELL, config(optimization_value=7)), "optimizations value 7"),
    ((BELL, config().replace('"transforms": {"$value": 3}', '"transforms": {"$value": 9}')), "results format \\(1, 9\\)"),
    (("shutdown",), "expected a \\(circuit, config\\) tuple"),
])
def test_malformed_requests_say_what_is_wrong(value, message):
    with pytest.raises(GatewayRequestError, match=message):
        request(value)


def test_replies_are_plain_pickles_of_the_real_shapes():
    reply = {"results": {"c": {"00": 3}}, "execution_metrics": {"optimized_circuit": BELL,
                                                               "optimized_instruction_count": 4}}
    data = dumps_reply(reply)
    assert pickle.loads(data) == reply
    assert not any(op.name in ("GLOBAL", "STACK_GLOBAL", "REDUCE") for op, _, _ in pickletools.genops(data))
    err = error_reply(ValueError("No valid parser could be found"))
    assert err == {"Exception": "ValueError('No valid parser could be found')"}


def test_results_follow_qmios_bit_order_per_creg():
    # Qiskit memory: creg b (2 bits) is written left of creg a (1 bit); bit 0 rightmost
    memory = ["10 1", "01 0", "10 1"]
    cregs = [("a", 1), ("b", 2)]
    assert creg_results(memory, cregs, "binary_count") == {"a": {"1": 2, "0": 1}, "b": {"01": 2, "10": 1}}
    assert creg_results(memory, cregs, "squash_binary_result_arrays") == {"a": ["1", "0", "1"], "b": ["01", "10", "01"]}
    assert creg_results(memory, cregs, "binary") == {"a": [[1], [0], [1]], "b": [[0, 1], [1, 0], [0, 1]]}
    raw = creg_results(memory, cregs, "raw", seed=3)
    assert len(raw["b"]) == 2 and len(raw["b"][0]) == 3  # bits x shots
    assert [[v < 0 for v in row] for row in raw["b"]] == [[False, True, False], [True, False, True]]
    with pytest.raises(ValueError, match="the cregs hold 3"):
        creg_results(["1"], cregs, "binary_count")
