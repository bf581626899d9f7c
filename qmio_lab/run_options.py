"""Run options as Qiskit's generic tools pass them, read the same way by every backend.

``BackendSamplerV2`` passes ``memory=True`` and ``seed_simulator``; qiskit-experiments, mthree
and Qiskit Runtime's local mode pass options written for qiskit-aer or IBM hardware
(``init_qubits``, ``rep_delay``, ``meas_return``, ``job_tags``...). Refusing those shuts every
such tool out, although none changes what our targets return. So an option a backend does not
know is ignored with one :class:`~qmio_lab.errors.IgnoredOptionWarning` naming it (and the
option meant, for a near miss), while a known option with a wrong value is refused with what to
pass instead. The emulator, the QPU backend and the in-process simulator all read options here.
"""
from __future__ import annotations

import difflib
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

from qmio_lab.errors import IgnoredOptionWarning

#: options accepted at the one value our targets give, refused at any other
FIXED = {"meas_level": (2, "returns classified bits (meas_level=2) only")}


def merge(target: str, known: Mapping[str, Any], given: Mapping[str, Any], *, stacklevel: int = 4) -> dict[str, Any]:
    """``known`` (the backend's options) updated with the ``given`` ones it knows; the others
    dropped with one warning that says ``target`` ignores them."""
    unknown = sorted(k for k in given if k not in known and k not in FIXED)
    if unknown:
        hints = [f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name)
                 for name in unknown for close in [difflib.get_close_matches(name, list(known), n=1)]]
        warnings.warn(f"the {target} ignores run option(s) {', '.join(hints)}: it does not use them "
                      f"(its options are {sorted(known)})", IgnoredOptionWarning, stacklevel=stacklevel)
    for name, (value, why) in FIXED.items():
        if name in given and integer(name, given[name]) != value:
            raise ValueError(f"{name}={given[name]!r} is not available: the {target} {why}")
    return {**known, **{k: v for k, v in given.items() if k in known}}


def integer(name: str, value: Any) -> Any:
    """``value`` as a plain ``int`` when it is an integer of any kind (numpy's too, which JSON
    cannot carry); anything else is returned for the check that words the refusal."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def flag(name: str, value: Any, what: str = "") -> bool:
    """A True/False option (numpy's booleans and None taken as such)."""
    if value is None or isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise ValueError(f"{name} must be True or False{f' ({what})' if what else ''}, not {value!r}")


def seed(value: Any, limit: int | None = None) -> int | None:
    """``seed_simulator``: None (fresh randomness) or an integer in ``[0, limit)``."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0
            or (limit is not None and value >= limit)):
        what = f"an integer from 0 to {limit - 1}" if limit is not None else "a non-negative integer"
        raise ValueError(f"seed_simulator must be {what}, or None for fresh randomness; not {value!r}")
    return int(value)
