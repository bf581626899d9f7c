"""Turning submitted circuits into native ones, each distinct circuit transpiled once.

Transpilation, not simulation, dominates small QPU jobs, so the cache is keyed by circuit
content, optimisation level and calibration snapshot: a hybrid loop resubmitting the same
circuit pays for the transpiler once per calibration.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from qiskit import QuantumCircuit
from qiskit.transpiler.exceptions import TranspilerError

from qmio_lab import config
from qmio_lab.compilation import compile_for
from qmio_lab.device import Calibration, QmioDevice
from qmio_lab.device.compact import compact
from qmio_lab.device.rules import check_circuit, has_measurement, is_native
from qmio_lab.device.timing import CircuitProfile
from qmio_lab.errors import InvalidCircuitError
from qmio_lab.lru import LRU
from qmio_lab.qpu.admission import AdmissionLimits, check_parsed, prescan
from qmio_lab.qpu.circuits import content_key, item_format, parse_circuit

if TYPE_CHECKING:
    from qmio_lab.qpu.sandbox import CompileSandbox


class Compiler:
    def __init__(self, device: QmioDevice, max_entries: int = 4096, sandbox: CompileSandbox | None = None) -> None:
        self.device = device
        self.sandbox = sandbox
        self.limits = AdmissionLimits.from_config(device.num_qubits)
        self._cache: LRU[tuple, Any] = LRU(max_entries)
        self._profiles: LRU[int, tuple[QuantumCircuit, CircuitProfile]] = LRU(max_entries)
        self._lock = threading.Lock()  # the caches and the counters
        self.transpile_count = 0
        self.hits = 0

    @staticmethod
    def _key(item: dict[str, Any], calibration: Calibration, optimization_level: int, digest: str | None) -> tuple:
        return (digest or content_key(item), optimization_level, calibration.id, item.get("name"))

    def cached(self, item: Any, calibration: Calibration, optimization_level: int = 1,
               digest: str | None = None) -> QuantumCircuit | None:
        """The native template if it is already known (cheap: no parsing, no transpiler).
        ``digest`` is the item's :func:`content_key`, computed once when the job arrives."""
        if not isinstance(item, dict) or not isinstance(item.get("name") or "", str):
            return None  # compile() explains what is wrong with it
        return self._lookup(self._key(item, calibration, optimization_level, digest))

    def _lookup(self, key: tuple) -> QuantumCircuit | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self.hits += 1
            return hit

    def compile(
        self, item: dict[str, Any], index: int, calibration: Calibration, optimization_level: int = 1,
        digest: str | None = None,
    ) -> QuantumCircuit:
        """Native circuit for ``item``; raises AdmissionError/InvalidCircuitError/PayloadError
        with the fix. A circuit not seen before is admitted and compiled in the sandbox (when
        the compiler has one). ``digest``: as for :meth:`cached` (a payload is hashed once)."""
        return self._compile(item, index, calibration, optimization_level, digest)[0]

    def _compile(self, item: dict[str, Any], index: int, calibration: Calibration, optimization_level: int,
                 digest: str | None, timeout_s: float | None = None) -> tuple[QuantumCircuit, tuple]:
        fmt = item_format(item, index)  # the PayloadError that explains the expected shape
        prescan(item, index, fmt, self.limits)  # sound fields before they become a key; bombs refused
        key = self._key(item, calibration, optimization_level, digest)
        hit = self._lookup(key)
        if hit is not None:
            return hit, key
        if self.sandbox is not None:
            native, transpiled = self.sandbox.compile(item, index, calibration, optimization_level, timeout_s)
        else:
            native, transpiled = compile_item(item, index, self.device, calibration, optimization_level,
                                              self.limits)
        if transpiled:
            with self._lock:
                self.transpile_count += 1
        self._remember(key, native)
        return native, key

    def compile_compact(
        self, item: dict[str, Any], index: int, calibration: Calibration, optimization_level: int = 1,
        digest: str | None = None,
    ) -> tuple[QuantumCircuit, QuantumCircuit, tuple[int, ...], str]:
        """The native template, its compact form (only the qubits it uses) with those qubits, and
        a key naming that compact form (what the simulator process keeps it under).

        Compacting once per template, not once per parameter binding or drift step (the noise
        is applied when it runs), keeps a hybrid loop's per-call work to binding values.
        """
        base = self._key(item, calibration, optimization_level, digest)
        template = self._lookup(base)
        if template is None:  # a new calibration, evicted, or a restart: compiled again
            # admitted when it arrived: the QPU's own time limit bounds this compile, not the
            # admission deadline (a wide circuit on a busy host must not fail for it)
            template, base = self._compile(item, index, calibration, optimization_level, digest,
                                           timeout_s=float(config.get("qpu.max_job_s")))
        key = ("compact", *base)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = compact(template, self.device.dt)
            self._remember(key, cached)
        small, qubits = cached
        return template, small, qubits, "/".join(map(str, key))

    def profile(self, template: QuantumCircuit, calibration: Calibration) -> CircuitProfile:
        """What sampling ``template`` costs, and how long one shot of it takes on the chip
        (``template`` was compiled for ``calibration``; once per template: a hybrid loop's
        submissions then pay a dictionary lookup for their estimate)."""
        with self._lock:
            known = self._profiles.get(id(template))
        if known is not None and known[0] is template:
            return known[1]
        profile = CircuitProfile.of(template, calibration)
        with self._lock:  # the template is kept with it, so its id cannot be reused meanwhile
            self._profiles.put(id(template), (template, profile))
        return profile

    def _remember(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._cache.put(key, value)


def native_circuit(
    circuit: QuantumCircuit, index: int, device: QmioDevice, calibration: Calibration, level: int
) -> tuple[QuantumCircuit, bool]:
    """The circuit as the chip runs it, and whether the transpiler had to make it so."""
    if is_native(circuit, calibration) and has_measurement(circuit):  # the pairs of this calibration
        return circuit, False
    return _transpile(circuit, index, device, calibration, level), True


def _transpile(circuit: QuantumCircuit, index: int, device: QmioDevice, calibration: Calibration,
               level: int) -> QuantumCircuit:
    n = device.num_qubits
    if circuit.num_qubits > n:
        raise InvalidCircuitError(
            f"circuit {index} ({circuit.name!r}) uses {circuit.num_qubits} qubits; the QMIO QPU "
            f"has {n}. Run it on the emulator target instead."
        )
    if not has_measurement(circuit):
        raise InvalidCircuitError(
            f"circuit {index} ({circuit.name!r}) has no measurement, so it returns no counts; "
            "add measure instructions (e.g. measure_all())"
        )
    try:
        out = compile_for(circuit, device.target(calibration), level=level)
    except (TranspilerError, Exception) as exc:  # the transpiler raises several types
        raise InvalidCircuitError(
            f"circuit {index} ({circuit.name!r}) cannot be mapped onto the QMIO chip: {exc}"
        ) from exc
    try:
        check_circuit(out, calibration)
    except InvalidCircuitError as exc:
        raise InvalidCircuitError(f"circuit {index}: {exc}") from exc
    return out


def compile_item(item: dict[str, Any], index: int, device: QmioDevice, calibration: Calibration,
                 level: int, limits: AdmissionLimits) -> tuple[QuantumCircuit, bool]:
    """Parse, check the limits that need the parsed circuit, compile: what the sandbox process
    runs for each circuit that passed :func:`~qmio_lab.qpu.admission.prescan`."""
    circuit = parse_circuit(item, index)
    check_parsed(circuit, index, limits)
    return native_circuit(circuit, index, device, calibration, level)
