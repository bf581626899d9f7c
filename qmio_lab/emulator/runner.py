"""Fan a list of circuits out over Dask workers in batches, and gather results in order.

A Dask round trip costs about as much as 15 small simulations, so one task per small circuit
would spend most of a sweep on overhead. Circuits are cut into contiguous batches: large enough
to amortise the round trip, numerous enough (a few per worker) to balance load and to make the
loss of a worker cheap. Wide circuits get a task each. Every batch is submitted with
``retries``; a batch whose worker disappears (e.g. its SLURM job was cancelled) is rescheduled
by the Dask scheduler on the remaining or new workers.
"""
from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace

from distributed import Client, Future
from qiskit import QuantumCircuit
from qiskit.result.models import ExperimentResult

from qmio_lab import config
from qmio_lab.emulator.tasks import BatchSpec, pack, run_batch
from qmio_lab.emulator.wire import PlainCircuit

ProgressCallback = Callable[[int, int], None]


def batch_size(n_small: int, n_workers: int) -> int:
    """Circuits per batch for ``n_small`` small circuits on ``n_workers`` workers."""
    cfg = config.get("emulator.batch")
    per_worker = max(int(cfg["per_worker"]), 1)
    ideal = math.ceil(n_small / (max(n_workers, 1) * per_worker)) if n_small else 1
    return max(int(cfg["min_size"]), min(int(cfg["max_size"]), ideal))


def plan_batches(
    widths: Sequence[int], n_workers: int, keys: Sequence[Hashable] | None = None,
) -> list[range]:
    """Contiguous index ranges covering every circuit once, in order.

    A circuit at least ``qmio.emulator.batch.solo_qubits`` wide is a batch of its own; the others
    are grouped ``batch_size`` at a time, never across a change of ``keys`` (e.g. the method).
    """
    solo = int(config.get("emulator.batch.solo_qubits"))
    keys = list(keys) if keys is not None else [None] * len(widths)
    size = batch_size(sum(1 for w in widths if w < solo), n_workers)
    batches: list[range] = []
    start = 0
    for i, width in enumerate(widths):
        if width >= solo:
            if start < i:
                batches.extend(_chunks(start, i, size))
            batches.append(range(i, i + 1))
            start = i + 1
        elif i > start and keys[i] != keys[i - 1]:
            batches.extend(_chunks(start, i, size))
            start = i
    if start < len(widths):
        batches.extend(_chunks(start, len(widths), size))
    return batches


def _chunks(start: int, stop: int, size: int) -> list[range]:
    return [range(a, min(a + size, stop)) for a in range(start, stop, size)]


class Sweep:
    """The Dask futures of one job's batches, with progress counted in circuits."""

    def __init__(
        self, client: Client, circuits: Sequence[QuantumCircuit], batches: Sequence[range],
        specs: Sequence[BatchSpec], *, retries: int = 0, callback: ProgressCallback | None = None,
        name: str | None = None, encoded: Sequence[PlainCircuit | None] | None = None,
    ) -> None:
        self.total = len(circuits)
        self.batches = list(batches)
        self._done = 0
        self._lock = threading.Lock()
        self._callback = callback
        name = name or uuid.uuid4().hex
        self.futures: list[Future] = []
        for i, (r, spec) in enumerate(zip(self.batches, specs)):
            future = client.submit(
                run_batch,
                pack(circuits[r.start:r.stop], plain=spec.noise is None,
                     encoded=None if encoded is None else encoded[r.start:r.stop]),
                spec, r.start, i,
                key=f"qmio-emulator-{name}-{i}", retries=retries, pure=False,
            )
            future.add_done_callback(self._count(len(r)))
            self.futures.append(future)

    def _count(self, n: int) -> Callable[[Future], None]:
        def done(future: Future) -> None:
            if future.status != "finished":
                return
            with self._lock:
                self._done += n
                done_now = self._done
            if self._callback is not None:
                self._callback(done_now, self.total)
        return done

    def progress(self) -> tuple[int, int]:
        """``(circuits done, circuits in the job)``."""
        with self._lock:
            return self._done, self.total

    def results(self, timeout: float | None = None) -> list[ExperimentResult]:
        """Every circuit's result, in the order the circuits were given."""
        # Not distributed.wait(): it looks for a *default* client, and ours is deliberately not
        # the default (a user's own Dask client must stay theirs).
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[ExperimentResult] = []
        for future in self.futures:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            out.extend(future.result(timeout=remaining))
        return out

    def cancel(self) -> None:
        for future in self.futures:
            future.cancel()

    def release(self) -> None:
        """Let the workers drop the batch results once the client holds them."""
        for future in self.futures:
            future.release()


def specs_for(batches: Sequence[range], base: BatchSpec, methods: Sequence[str], widths: Sequence[int],
              unroll: Sequence[bool] | None = None) -> list[BatchSpec]:
    """One BatchSpec per batch: its method, all cores for a lone wide circuit, and whether a
    circuit of it needs unrolling for Aer (``unroll``, per circuit)."""
    solo = int(config.get("emulator.batch.solo_qubits"))
    return [
        replace(base, method=methods[r.start], parallel=len(r) == 1 and widths[r.start] >= solo,
                unroll=unroll is not None and any(unroll[i] for i in r))
        for r in batches
    ]
