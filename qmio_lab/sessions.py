"""Sessions: one connection, each circuit transpiled once, and on the QPU an exclusive window.

Hybrid loops (VQE, QAOA) resubmit the same parameterized circuit thousands of times. A session
transpiles it once, sends the transpiled template once per call with only new parameter
values, and on the QPU holds a reservation so other users' jobs wait until it ends (QMIO's
time-limited tunnels). Leaving the ``with`` block, or an interrupted cell, closes it; the
service also ends it at ``max_time``.
"""
from __future__ import annotations

import hashlib
import io
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, qpy
from qiskit.providers import BackendV2

from qmio_lab.compilation import compile_for
from qmio_lab.qpu.circuits import circuit_to_item
from qmio_lab.qpu.client import QPUServiceError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


def parse_duration(text: str | float | int) -> float:
    """``"10m"`` → 600.0; plain numbers are seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"max_time must look like '90s', '10m' or '1h', got {text!r}")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def circuit_digest(circuit: QuantumCircuit) -> str:
    buf = io.BytesIO()
    qpy.dump(circuit, buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


@dataclass
class Template:
    """A transpiled (possibly parameterized) circuit and where each virtual qubit ended up."""

    circuit: QuantumCircuit
    physical: list[int]
    _item: dict[str, Any] | None = field(default=None, repr=False)

    def wire_item(self) -> dict[str, Any]:
        """The QPY payload, serialised once however often the template is run."""
        if self._item is None:
            self._item = circuit_to_item(self.circuit)
        return self._item


class Session:
    """Use :func:`session`; a ``Session`` is also the ``mode`` of SamplerV2/EstimatorV2."""

    def __init__(self, target: str | BackendV2 = "qpu", max_time: str | float = "10m", *,
                 optimization_level: int = 1, reserve: bool = True) -> None:
        from qmio_lab.backends import get_backend

        self.backend = get_backend(target) if isinstance(target, str) else target
        self.target_name = target if isinstance(target, str) else getattr(self.backend, "name", "backend")
        self.max_time_s = parse_duration(max_time)
        self.optimization_level = optimization_level
        self.transpile_count = 0
        self.qpu_seconds = 0.0  # QPU time (device seconds) this session's jobs held, as the service charged it
        self._templates: dict[str, Template] = {}
        self._measured: dict[tuple[str, str], Template] = {}
        self._lock = threading.Lock()
        self.reservation: dict[str, Any] | None = None
        if reserve and self.is_qpu:
            self.reservation = self.client.open_session(self.max_time_s)

    @property
    def is_qpu(self) -> bool:
        from qmio_lab.qpu.backend import QPUBackend

        return isinstance(self.backend, QPUBackend)

    @property
    def client(self):
        return self.backend.client  # type: ignore[attr-defined]

    # ---- templates ---------------------------------------------------------------------------
    def template(self, circuit: QuantumCircuit, digest: str | None = None) -> Template:
        """The transpiled template of ``circuit`` (transpiled on first use only)."""
        key = digest or circuit_digest(circuit)
        with self._lock:
            cached = self._templates.get(key)
        if cached is not None:
            return cached
        out = compile_for(circuit, self.backend, level=self.optimization_level)
        physical = out.layout.final_index_layout() if out.layout is not None else list(range(circuit.num_qubits))
        template = Template(out, physical)
        with self._lock:
            self.transpile_count += 1
            self._templates[key] = template
        return template

    def measured(self, circuit: QuantumCircuit, group, digest: str | None = None) -> Template:
        """Template plus the native basis change and measurements of one observable group."""
        from qmio_lab.observables import append_measurement

        digest = digest or circuit_digest(circuit)
        base = self.template(circuit, digest)
        key = (digest, group.key)
        with self._lock:
            cached = self._measured.get(key)
        if cached is None:
            cached = Template(append_measurement(base.circuit, group, base.physical), base.physical)
            with self._lock:
                self._measured[key] = cached
        return cached

    # ---- running ------------------------------------------------------------------------------
    def run_templates(
        self, work: Sequence[tuple[Template, np.ndarray | None]], shots: int, name: str | None = None,
        spent: list[float] | None = None,
    ) -> list[dict[str, int]]:
        """Counts for every template bound to every row of its values, in order; on the QPU,
        ``spent`` (if given) receives the QPU seconds each job held."""
        if self.is_qpu:
            return self._run_on_service(work, shots, name, spent if spent is not None else [])
        circuits = []
        for template, rows in work:
            if rows is None:
                circuits.append(template.circuit)
            else:
                params = list(template.circuit.parameters)
                circuits.extend(template.circuit.assign_parameters(dict(zip(params, row))) for row in rows)
        result = self.backend.run(circuits, shots=shots).result()
        return [result.get_counts(i) for i in range(len(circuits))]

    def _run_on_service(self, work, shots: int, name: str | None, spent: list[float]) -> list[dict[str, int]]:
        from qmio_lab import config

        limit = int(config.get("device.max_circuits"))
        items: list[dict[str, Any]] = []
        for template, rows in work:
            if rows is None:
                items.append(template.wire_item())
            else:
                for start in range(0, len(rows), limit):  # rows beyond the per-job limit: more jobs
                    chunk = rows[start:start + limit]
                    items.append({**template.wire_item(), "parameter_values": np.asarray(chunk, float).tolist()})
        counts: list[dict[str, int]] = []
        for batch in _batches(items, limit):
            job = self.client.submit_items(batch, shots, name=name, wait=30.0)
            if "result" in job:
                counts.extend(job["result"]["counts"])
            else:
                try:
                    counts.extend(self.client.wait_result(job["id"])["counts"])
                except QPUServiceError as exc:
                    from qmio_lab.qpu.backend import QPUJobError

                    raise QPUJobError(f"job {job['id']} did not complete: {exc}") from exc
                job = self.client.job(job["id"])  # a long job: its record now has the QPU time it held
            spent.append(float(job.get("qpu_seconds") or 0.0))
            with self._lock:
                self.qpu_seconds += spent[-1]
        return counts

    # ---- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        if self.reservation is not None:
            try:
                self.client.close_session(self.reservation["id"])
            finally:
                self.reservation = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        held = f" reserved until {self.reservation['expires_at']}" if self.reservation else ""
        return f"<Session {self.target_name}{held}, {len(self._templates)} template(s)>"


def _batches(items: list[dict[str, Any]], limit: int):
    """Split wire items into jobs of at most ``limit`` circuits each."""
    batch: list[dict[str, Any]] = []
    size = 0
    for item in items:
        n = len(item.get("parameter_values") or [None])
        if batch and size + n > limit:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += n
    if batch:
        yield batch

