"""The emulator's run options (read as every backend reads them: :mod:`qmio_lab.run_options`)."""
from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from qiskit import QuantumCircuit

from qmio_lab import run_options
from qmio_lab.emulator.memory import METHODS
from qmio_lab.errors import InvalidCircuitError, InvalidShotsError


def read(known: Mapping[str, Any], given: Mapping[str, Any], *, stacklevel: int = 4) -> dict[str, Any]:
    """``known`` (the backend's options) updated with ``given``: values checked and normalised
    (numpy integers become ``int``), unknown names dropped with one ``IgnoredOptionWarning``."""
    opts = run_options.merge("QMIO emulator", known, given, stacklevel=stacklevel)
    opts["shots"] = _shots(opts["shots"])
    opts["memory"] = run_options.flag("memory", opts.get("memory", False))
    opts["seed_simulator"] = run_options.seed(opts.get("seed_simulator"))
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
