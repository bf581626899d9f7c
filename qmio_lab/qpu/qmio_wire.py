"""The wire of QMIO's own client (``pip install qmio``): what its ZeroMQ REQ socket sends and
what the centre's server answers, as plain data.

The client sends a pickled ``(circuit_text, config_json)`` tuple (``send_pyobj``) and waits for a
pickled dict, without a timeout. Pickle can name any global of the receiving process, so a
request is read by :class:`PlainUnpickler`, which refuses every global: only str, bytes, int,
float, bool, None and tuples, lists and dicts of them come out, after a size check. Replies are
plain dicts shaped as the real server shapes them: ``{"results": {creg: ...},
"execution_metrics": {...}}``, or ``{"Exception": "<repr>"}`` for every failure.
"""
from __future__ import annotations

import io
import json
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qmio_lab import config as qmio_config
from qmio_lab.errors import GatewayRequestError

#: the client's four result formats, by (InlineResultsProcessing, ResultsFormatting) values
RESULT_FORMATS = {(1, 3): "binary_count", (1, 2): "raw", (2, 2): "binary", (2, 6): "squash_binary_result_arrays"}
#: Tket optimisation values the client sends for optimization=0, 1, 2
OPTIMIZATIONS = {1: 0, 18: 1, 30: 2}
#: the requests answered without running anything (the client's and QAT's message names)
INFO_REQUESTS = ("version", "couplings", "qubit_info", "qpu_info")
_PLAIN = (str, bytes, int, float, bool, type(None))
_MAX_DEPTH = 8


class PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any global (a class, a function, ``os.system``) is refused,
    so no request can make the service import or call anything."""

    def find_class(self, module: str, name: str) -> Any:
        raise GatewayRequestError(f"the request names {module[:40]}.{name[:40]}; only plain data "
                                  "(strings, numbers, tuples, lists, dicts) is accepted")

    def persistent_load(self, pid: Any) -> Any:
        raise GatewayRequestError("persistent ids are not accepted")


def loads_plain(data: bytes, max_bytes: int) -> Any:
    """A request's Python value, if it is plain data of at most ``max_bytes``."""
    if len(data) > max_bytes:
        raise GatewayRequestError(f"the request is {len(data)} bytes; the limit is {max_bytes} "
                                  "(qmio.qpu.gateway.max_message_kb)")
    try:
        value = PlainUnpickler(io.BytesIO(data)).load()
    except GatewayRequestError:
        raise
    except Exception as exc:  # truncated or garbled pickles raise many types
        raise GatewayRequestError(f"the request is not a pickled (circuit, config) tuple: "
                                  f"{type(exc).__name__}: {str(exc)[:100]}") from None
    _check_plain(value, 0)
    return value


def _check_plain(value: Any, depth: int, seen: set[int] | None = None) -> None:
    """Plain data all the way down. Pickle's memo lets a short message refer to one list many
    times (or to itself): each container is checked once, so the cost stays linear."""
    seen = set() if seen is None else seen
    if isinstance(value, _PLAIN):
        return
    if depth > _MAX_DEPTH:
        raise GatewayRequestError(f"the request nests deeper than {_MAX_DEPTH} levels")
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, (tuple, list)):
        for item in value:
            _check_plain(item, depth + 1, seen)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, depth + 1, seen)
            _check_plain(item, depth + 1, seen)
        return
    raise GatewayRequestError(f"the request holds a {type(value).__name__}; only plain data is accepted")


def dumps_reply(reply: Mapping[str, Any]) -> bytes:
    """A reply for ``recv_pyobj``: protocol 4, which every Python 3 the client runs reads."""
    return pickle.dumps(dict(reply), protocol=4)


@dataclass(frozen=True)
class ProgramRequest:
    """One ``backend.run(circuit=..., shots=..., ...)`` of the client."""

    circuit: str
    shots: int
    repetition_period_s: float | None
    optimization: int
    res_format: str


@dataclass(frozen=True)
class InfoRequest:
    name: str


def parse_request(value: Any, max_shots: int) -> ProgramRequest | InfoRequest:
    """What the client asked, from the unpickled value; GatewayRequestError says what is wrong."""
    if isinstance(value, (tuple, list)) and len(value) == 1 and value[0] in INFO_REQUESTS:
        return InfoRequest(value[0])
    if isinstance(value, str) and value in INFO_REQUESTS:
        return InfoRequest(value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str)):
        raise GatewayRequestError("expected a (circuit, config) tuple: the OpenQASM text and the "
                                  f"CompilerConfig JSON, or one of {', '.join(INFO_REQUESTS)}")
    circuit, config_text = value
    if isinstance(config_text, bytes):
        config_text = config_text.decode("utf-8", "replace")
    if not isinstance(config_text, str):
        raise GatewayRequestError("the config must be the CompilerConfig serialised as JSON text")
    try:
        config = json.loads(config_text)
    except (ValueError, RecursionError) as exc:
        raise GatewayRequestError(f"the config is not JSON: {str(exc)[:100]}") from None
    data = config.get("$data") if isinstance(config, dict) else None
    if not isinstance(data, dict):
        raise GatewayRequestError("the config has no '$data' object (a QAT CompilerConfig)")
    shots = data.get("repeats")
    if not isinstance(shots, int) or isinstance(shots, bool) or not 1 <= shots <= max_shots:
        raise GatewayRequestError(f"repeats (shots) must be an integer 1..{max_shots}, got {str(shots)[:20]}")
    period = data.get("repetition_period")
    longest = float(qmio_config.get("device.hardware_timing.max_repetition_period_s"))
    if period is not None and (not isinstance(period, (int, float)) or isinstance(period, bool)
                               or not 0 < period <= longest):
        raise GatewayRequestError(f"repetition_period must be seconds in (0, {longest:g}], got {str(period)[:20]}")
    return ProgramRequest(circuit, shots, None if period is None else float(period),
                          _optimization(data.get("optimizations")), _results_format(data.get("results_format")))


def _enum_value(node: Any, what: str) -> int:
    value = node.get("$value") if isinstance(node, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise GatewayRequestError(f"the config's {what} has no integer '$value'")
    return value


def _optimization(node: Any) -> int:
    if node is None:
        return 0
    value = _enum_value(node, "optimizations")
    if value not in OPTIMIZATIONS:
        raise GatewayRequestError(f"optimizations value {value} is not one the client sends (1, 18, 30)")
    return OPTIMIZATIONS[value]


def _results_format(node: Any) -> str:
    if node is None:
        return "binary_count"
    data = node.get("$data") if isinstance(node, dict) else None
    if not isinstance(data, dict):
        raise GatewayRequestError("the config's results_format has no '$data'")
    key = (_enum_value(data.get("format"), "results format"), _enum_value(data.get("transforms"), "results transforms"))
    if key not in RESULT_FORMATS:
        raise GatewayRequestError(f"results format {key} is not one of the client's four "
                                  "(binary_count, raw, binary, squash_binary_result_arrays)")
    return RESULT_FORMATS[key]


# ---- replies ---------------------------------------------------------------------------
def error_reply(exc: BaseException) -> dict[str, str]:
    """The real server's error reply: the exception's repr under ``"Exception"``."""
    return {"Exception": repr(exc)}


def creg_counts(counts: Mapping[str, int], cregs: Sequence[tuple[str, int]]) -> dict[str, dict[str, int]]:
    """Per-creg counts in QMIO's shape (each creg's bit 0 first) from Qiskit's counts with hex
    keys over all clbits (the cregs' clbits in declaration order, clbit 0 least significant)."""
    out: dict[str, dict[str, int]] = {name: {} for name, _ in cregs}
    for key, n in counts.items():
        value = int(key, 16) if key.startswith("0x") else int(key.replace(" ", ""), 2)
        offset = 0
        for name, size in cregs:
            bits = "".join(str((value >> (offset + k)) & 1) for k in range(size))
            out[name][bits] = out[name].get(bits, 0) + int(n)
            offset += size
    return out


def creg_results(memory: Sequence[str], cregs: Sequence[tuple[str, int]], res_format: str,
                 seed: int | None = None) -> dict[str, Any]:
    """Per-creg results in QMIO's shape from Qiskit-ordered per-shot memory.

    ``memory`` holds one bitstring per shot as Qiskit writes it (the last creg first, bit 0 of
    each creg rightmost, cregs separated by spaces or not); ``cregs`` is ``[(name, size), ...]``
    in declaration order. QMIO writes each creg's bit 0 first.
    """
    width = sum(size for _, size in cregs)
    per_creg: dict[str, list[str]] = {name: [] for name, _ in cregs}
    for shot in memory:
        bits = shot.replace(" ", "")
        if len(bits) != width:
            raise ValueError(f"a shot has {len(bits)} bits; the cregs hold {width}")
        end = len(bits)
        for name, size in cregs:  # Qiskit puts the first creg rightmost
            per_creg[name].append(bits[end - size:end][::-1])
            end -= size
    if res_format == "binary_count":
        out: dict[str, Any] = {}
        for name, shots in per_creg.items():
            counts: dict[str, int] = {}
            for s in shots:
                counts[s] = counts.get(s, 0) + 1
            out[name] = counts
        return out
    if res_format == "squash_binary_result_arrays":
        return {name: list(shots) for name, shots in per_creg.items()}
    if res_format == "binary":
        return {name: [[int(b) for b in s] for s in shots] for name, shots in per_creg.items()}
    if res_format == "raw":  # readout values, bit by bit over the shots: negative means 1
        rng = np.random.default_rng(seed)
        out = {}
        for name, shots in per_creg.items():
            size = dict(cregs)[name]
            bits = np.array([[int(s[k]) for s in shots] for k in range(size)], dtype=float).reshape(size, len(shots))
            values = (1.0 - 2.0 * bits) * rng.normal(1.0, 0.15, bits.shape).clip(0.05, None)
            out[name] = values.round(6).tolist()
        return out
    raise ValueError(f"unknown results format {res_format!r}")
