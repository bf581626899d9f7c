"""The emulator's run options, read the way Qiskit's generic tools pass them.

``BackendSamplerV2`` passes ``memory=True`` and ``seed_simulator``; qiskit-experiments and
Qiskit Runtime's local mode pass options written for qiskit-aer or for IBM hardware
(``init_qubits``, ``rep_delay``, ``meas_return``...). Refusing those with a ``TypeError`` shuts
every such tool out, although none of them changes what an ideal simulation returns. So an
option the emulator does not know is ignored with a warning naming it, while a known option with
a wrong value is still refused, with what to pass instead.
"""
from __future__ import annotations

import difflib
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from qiskit import QuantumCircuit

from qmio_lab.emulator.memory import METHODS
from qmio_lab.errors import InvalidCircuitError, InvalidShotsError

#: Options that are accepted at the one value the emulator gives, and refused at any other.
_FIXED = {"meas_level": (2, "the emulator returns classified bits (meas_level=2) only")}


class IgnoredOptionWarning(UserWarning):
    """A run option the emulator does not use was passed (and ignored)."""


def read(known: Mapping[str, Any], given: Mapping[str, Any], *, stacklevel: int = 3) -> dict[str, Any]:
    """``known`` (the backend's options) updated with ``given``: values checked and normalised
    (numpy integers become ``int``), unknown names dropped with one :class:`IgnoredOptionWarning`.
    """
    unknown = sorted(k for k in given if k not in known and k not in _FIXED)
    if unknown:
        hints = [f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name)
                 for name in unknown for close in [difflib.get_close_matches(name, list(known), n=1)]]
        warnings.warn(
            f"the QMIO emulator ignores run option(s) {', '.join(hints)}: it does not use them "
            f"(its options are {sorted(known)})", IgnoredOptionWarning, stacklevel=stacklevel,
        )
    for name, (value, why) in _FIXED.items():
        if name in given and int(given[name]) != value:
            raise ValueError(f"{name}={given[name]!r} is not available: {why}")
    opts = {**known, **{k: v for k, v in given.items() if k in known}}
    opts["shots"] = _shots(opts["shots"])
    opts["memory"] = _flag("memory", opts.get("memory", False))
    opts["seed_simulator"] = _seed(opts.get("seed_simulator"))
    if opts.get("method") is not None and opts["method"] not in METHODS:
        raise ValueError(f"method must be None (chosen per circuit) or one of {list(METHODS)}, "
                         f"not {opts['method']!r}")
    if opts.get("precision") not in (None, "double", "single"):
        raise ValueError(f"precision must be 'double' or 'single', not {opts['precision']!r}")
    if opts.get("callback") is not None and not callable(opts["callback"]):
        raise ValueError(f"callback must be a function callback(done, total), not {opts['callback']!r}")
    return opts


def _shots(shots: Any) -> int:
    if isinstance(shots, bool) or not isinstance(shots, numbers.Integral) or shots < 1:
        raise InvalidShotsError(f"shots must be a positive integer, got {shots!r}")
    return int(shots)


def _flag(name: str, value: Any) -> bool:
    if value is None or isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise ValueError(f"{name} must be True or False, not {value!r}")


def _seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed_simulator must be a non-negative integer or None, not {seed!r}")
    return int(seed)


def bind(circuits: Sequence[QuantumCircuit], binds: Any) -> list[QuantumCircuit]:
    """qiskit-aer's ``parameter_binds``: one ``{parameter: [values...]}`` per circuit; each circuit
    runs once per position in its value lists, results circuit by circuit, as Aer orders them."""
    if binds is None:
        return list(circuits)
    if not isinstance(binds, Sequence) or isinstance(binds, (str, bytes)) or len(binds) != len(circuits):
        raise ValueError(
            f"parameter_binds must be a list of one dict {{parameter: [values]}} per circuit "
            f"({len(circuits)} circuit(s)), not {binds!r}"
        )
    out: list[QuantumCircuit] = []
    for index, (circuit, table) in enumerate(zip(circuits, binds)):
        if not isinstance(table, Mapping):
            raise ValueError(f"parameter_binds[{index}] must be a dict {{parameter: [values]}}, not {table!r}")
        lengths = {len(values) for values in table.values()}
        if len(lengths) > 1:
            raise ValueError(f"parameter_binds[{index}] gives value lists of different lengths {sorted(lengths)}; "
                             "give every parameter of a circuit the same number of values")
        missing = set(circuit.parameters) - set(table)
        if missing:
            raise InvalidCircuitError(
                f"circuit {circuit.name!r} has parameters {sorted(p.name for p in missing)} with no "
                f"value in parameter_binds[{index}]"
            )
        if not table:
            out.append(circuit)
            continue
        for j in range(lengths.pop()):
            bound = circuit.assign_parameters({p: values[j] for p, values in table.items()})
            bound.name = circuit.name  # as Aer names each bound run: the circuit's own name
            out.append(bound)
    return out
