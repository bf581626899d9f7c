"""Qiskit V2 primitives on both targets: code written for Qiskit primitives runs unchanged.

``SamplerV2(mode)`` / ``EstimatorV2(mode)`` take a target name (``"qpu"``, ``"emulator"``,
``"simulator"``), a backend, or a :class:`~qmio_lab.sessions.Session`. Without a session each
primitive keeps its own template cache, so a loop still transpiles each circuit once.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from qiskit.primitives import (
    BaseEstimatorV2, BaseSamplerV2, BitArray, DataBin, PrimitiveJob, PrimitiveResult, PubResult,
    SamplerPubResult,
)
from qiskit.primitives.containers.estimator_pub import EstimatorPub, EstimatorPubLike
from qiskit.primitives.containers.sampler_pub import SamplerPub, SamplerPubLike
from qiskit.providers import BackendV2

from qmio_lab import config
from qmio_lab.device.rules import has_measurement
from qmio_lab.observables import group_paulis, pauli_expectations
from qmio_lab.sessions import Session, Template, circuit_digest

Mode = str | BackendV2 | Session


def _as_session(mode: Mode) -> Session:
    return mode if isinstance(mode, Session) else Session(mode, reserve=False)


def _rows(template: Template, bindings) -> tuple[np.ndarray | None, tuple[int, ...]]:
    """Parameter rows in the template's parameter order, and the bindings' shape."""
    params = list(template.circuit.parameters)
    shape = tuple(bindings.shape)
    if not params:
        return None, shape
    rows = bindings.as_array(params).reshape(-1, len(params))
    return rows, shape


def _target_shots(backend: BackendV2) -> int:
    """The target's own default: qmio.device.default_shots (QPU, simulator) or
    qmio.emulator.default_shots, as the backend's default options read them."""
    shots = getattr(type(backend)._default_options(), "shots", None)
    return int(shots) if shots else int(config.get("device.default_shots"))


class SamplerV2(BaseSamplerV2):
    def __init__(self, mode: Mode = "qpu", *, default_shots: int | None = None, seed: int | None = None) -> None:
        self.session = _as_session(mode)
        self.default_shots = default_shots if default_shots is not None else _target_shots(self.session.backend)
        self._rng = np.random.default_rng(seed)

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> PrimitiveJob[PrimitiveResult[SamplerPubResult]]:
        coerced = [SamplerPub.coerce(pub, shots or self.default_shots) for pub in pubs]
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs: list[SamplerPub]) -> PrimitiveResult[SamplerPubResult]:
        results = []
        for pub in pubs:
            if not has_measurement(pub.circuit):
                raise ValueError("a Sampler circuit needs measurements: add measure_all() or measure(...)")
            template = self.session.template(pub.circuit)
            rows, shape = _rows(template, pub.parameter_values)
            counts = self.session.run_templates([(template, rows)], pub.shots)
            results.append(self._pub_result(template, counts, shape, pub))
        return PrimitiveResult(results, metadata={"version": 2, "target": self.session.target_name})

    def _pub_result(self, template: Template, counts: list[dict[str, int]], shape, pub: SamplerPub) -> SamplerPubResult:
        regs = []
        start = 0
        for creg in template.circuit.cregs:  # clbit order: registers in declaration order
            regs.append((creg.name, creg.size, start))
            start += creg.size
        arrays = {name: np.zeros(shape + (pub.shots, max(math.ceil(size / 8), 1) if size else 0), np.uint8)
                  for name, size, _ in regs}
        for index, c in zip(np.ndindex(*shape), counts):
            samples = np.repeat(
                np.array([int(k.replace(" ", ""), 2) for k in c], dtype=object),
                np.array(list(c.values())),
            )
            self._rng.shuffle(samples)  # counts carry no order; give shots an unbiased order
            for name, size, offset in regs:
                if size:
                    bits = [(int(s) >> offset) & ((1 << size) - 1) for s in samples]
                    arrays[name][index] = BitArray.from_samples(bits, num_bits=size).array
        data = DataBin(**{name: BitArray(arrays[name], size) for name, size, _ in regs}, shape=shape)
        return SamplerPubResult(data, metadata={"shots": pub.shots, "circuit_metadata": pub.circuit.metadata})


class EstimatorV2(BaseEstimatorV2):
    def __init__(self, mode: Mode = "qpu", *, default_precision: float = 0.015625) -> None:
        self.session = _as_session(mode)
        self.default_precision = default_precision

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> PrimitiveJob[PrimitiveResult[PubResult]]:
        coerced = [EstimatorPub.coerce(pub, precision or self.default_precision) for pub in pubs]
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs: list[EstimatorPub]) -> PrimitiveResult[PubResult]:
        plans = []
        work: list[tuple[Template, np.ndarray | None]] = []
        shots_of = []
        for pub in pubs:
            shots = max(math.ceil(1.0 / pub.precision**2), 1)
            observables = pub.observables.ravel()
            groups = group_paulis(label for obs in observables for label in obs)
            digest = circuit_digest(pub.circuit)  # once per call: it serialises the circuit
            base = self.session.template(pub.circuit, digest)
            rows, pshape = _rows(base, pub.parameter_values)
            first = len(work)
            for group in groups:
                work.append((self.session.measured(pub.circuit, group, digest), rows))
            plans.append((pub, groups, first, pshape, shots))
            shots_of.append(shots)
        counts = self._run_work(work, shots_of, plans)
        results = [self._pub_result(plan, counts) for plan in plans]
        return PrimitiveResult(results, metadata={"version": 2, "target": self.session.target_name})

    def _run_work(self, work, shots_of, plans) -> dict[int, list[dict[str, int]]]:
        """Run every group circuit; pubs sharing a shot count go in one job."""
        out: dict[int, list[dict[str, int]]] = {}
        for shots in sorted(set(shots_of)):
            idx = [i for plan in plans if plan[4] == shots for i in range(plan[2], plan[2] + len(plan[1]))]
            if not idx:
                continue
            flat = self.session.run_templates([work[i] for i in idx], shots)
            pos = 0
            for i in idx:
                rows = work[i][1]
                n = 1 if rows is None else len(rows)
                out[i] = flat[pos:pos + n]
                pos += n
        return out

    def _pub_result(self, plan, counts: dict[int, list[dict[str, int]]]) -> PubResult:
        pub, groups, first, pshape, shots = plan
        nbind = int(np.prod(pshape)) if pshape else 1
        expectations: list[dict[str, float]] = [{} for _ in range(nbind)]
        for g, group in enumerate(groups):
            for b, c in enumerate(counts[first + g]):
                for label, (value, _) in pauli_expectations(c, group).items():
                    expectations[b][label] = value
        obs_flat = pub.observables.ravel()
        bshape = np.broadcast_shapes(pub.observables.shape, pshape)
        obs_index = np.broadcast_to(np.arange(max(pub.observables.size, 1)).reshape(pub.observables.shape), bshape)
        par_index = np.broadcast_to(np.arange(nbind).reshape(pshape), bshape)
        evs = np.zeros(bshape)
        stds = np.zeros(bshape)
        for idx in np.ndindex(*bshape):
            obs = obs_flat[int(obs_index[idx])]
            table = expectations[int(par_index[idx])]
            ev, var = 0.0, 0.0
            for label, coeff in obs.items():
                value = 1.0 if set(label) == {"I"} else table[label]
                ev += float(np.real(coeff)) * value
                var += abs(coeff) ** 2 * (1 - value**2)
            evs[idx] = ev
            stds[idx] = math.sqrt(max(var, 0.0) / shots)
        data = DataBin(evs=evs, stds=stds, shape=bshape)
        return PubResult(data, metadata={"target_precision": pub.precision, "shots": shots,
                                         "circuit_metadata": pub.circuit.metadata})
