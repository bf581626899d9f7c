"""How much memory a circuit needs, which simulation method to use, and when to refuse.

Users of the emulator cannot see what a circuit costs, and a worker that runs out of memory is
killed by the OOM killer (or Dask's nanny) with no useful message. So every circuit is
estimated before it is submitted: a statevector needs 16·2^n bytes in double precision (8·2^n
in single); a wide circuit with little entanglement runs as a matrix product state, whose size
is bounded by the two-qubit gates that cross each cut of the qubit line.
"""
from __future__ import annotations

from dataclasses import dataclass

from dask.utils import format_bytes, parse_bytes
from qiskit import QuantumCircuit

from qmio_lab import config
from qmio_lab.errors import EmulatorMemoryError

STATEVECTOR = "statevector"
MPS = "matrix_product_state"
METHODS = (STATEVECTOR, MPS)
BYTES_PER_AMPLITUDE = {"double": 16, "single": 8}

#: Two-qubit gates whose operator Schmidt rank is 2 (controlled gates and Ising couplings):
#: each raises the bond dimension across a cut it crosses at most twofold; anything else 4x.
_RANK_TWO = frozenset({
    "cx", "cy", "cz", "ch", "cp", "crx", "cry", "crz", "cu", "cu1", "cs", "csdg", "csx",
    "ecr", "rzz", "rxx", "ryy", "rzx", "mcx", "ccx", "ccz", "mcp",
})
_NOT_GATES = frozenset({"barrier", "measure", "reset", "delay", "save_statevector", "snapshot"})


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of one circuit under the chosen method."""

    num_qubits: int
    method: str
    precision: str
    statevector_bytes: int
    mps_bytes: int | None  # None: not computed (a narrow circuit that fits as a statevector)
    needed_bytes: int  # what the worker must have: chosen method, Aer overhead and process

    def describe(self) -> str:
        raw = self.statevector_bytes if self.method == STATEVECTOR else (self.mps_bytes or 0)
        return (f"{format_bytes(self.needed_bytes)} as {self.method} ({format_bytes(raw)} of "
                f"{self.precision}-precision state plus simulator and process overhead)")


def simulated_width(circuit: QuantumCircuit) -> int:
    """Qubits Aer actually simulates: it drops qubits no operation touches (truncation), so a
    3-qubit GHZ written on a 34-qubit register costs 3 qubits, not 34."""
    return len({q for inst in circuit.data if inst.operation.name != "barrier" for q in inst.qubits})


def statevector_bytes(num_qubits: int, precision: str = "double") -> int:
    """Bytes of the state vector: 16·2^n (double) or 8·2^n (single)."""
    try:
        return BYTES_PER_AMPLITUDE[precision] * 2 ** num_qubits
    except KeyError:
        raise ValueError(f"precision must be 'double' or 'single', not {precision!r}") from None


def mps_bytes(circuit: QuantumCircuit, precision: str = "double") -> int:
    """Upper bound on a matrix product state of ``circuit`` (no truncation).

    The bond across the cut after qubit k is at most 2^min(k+1, n-k-1) and at most the product
    of the Schmidt ranks of the gates that cross it; each site holds 2·χ_left·χ_right amplitudes.
    """
    n = circuit.num_qubits
    if n == 0:
        return 0
    log_bond = [0.0] * max(n - 1, 0)  # log2 of the bond across cut k (between k and k+1)
    for inst in circuit.data:
        op = inst.operation
        if op.name in _NOT_GATES or len(inst.qubits) < 2:
            continue
        idx = sorted(circuit.find_bit(q).index for q in inst.qubits)
        step = 1.0 if op.name in _RANK_TWO else 2.0
        for k in range(idx[0], idx[-1]):
            log_bond[k] += step
    bonds = [2 ** min(b, k + 1, n - k - 1) for k, b in enumerate(log_bond)]
    chi = [1, *bonds, 1]
    amplitudes = sum(2 * chi[i] * chi[i + 1] for i in range(n))
    return int(BYTES_PER_AMPLITUDE[precision] * amplitudes)


def widest_statevector(worker_memory: int, precision: str = "double") -> int:
    """The most qubits a worker of ``worker_memory`` bytes holds as a statevector, margins included."""
    n = 1
    while _needed(statevector_bytes(n + 1, precision)) <= worker_memory:
        n += 1
    return n


def _needed(raw: int) -> int:
    overhead = float(config.get("emulator.memory.overhead"))
    return int(raw * overhead) + parse_bytes(str(config.get("emulator.memory.reserve")))


def estimate(
    circuit: QuantumCircuit, method: str | None = None, precision: str | None = None,
    worker_memory: int | None = None,
) -> MemoryEstimate:
    """Choose the method for ``circuit`` (unless given) and estimate its peak memory.

    Statevector is exact and fastest for narrow circuits; a wide circuit (from
    ``qmio.emulator.memory.mps_min_qubits`` qubits) runs as a matrix product state when that
    is far smaller (``mps_gain``), or when only the MPS fits ``worker_memory``.
    """
    precision = precision or str(config.get("emulator.memory.precision"))
    narrow = circuit.num_qubits < int(config.get("emulator.memory.mps_min_qubits"))
    if method in (None, STATEVECTOR) and narrow:  # the common case, decided without a pass
        sv = statevector_bytes(circuit.num_qubits, precision)  # over the whole circuit
        if worker_memory is None or _needed(sv) <= worker_memory:
            return MemoryEstimate(circuit.num_qubits, STATEVECTOR, precision, sv, None, _needed(sv))
    n = simulated_width(circuit)
    sv = statevector_bytes(n, precision)
    mps = mps_bytes(circuit, precision)
    if method is None:
        wide = n >= int(config.get("emulator.memory.mps_min_qubits"))
        much_smaller = mps * float(config.get("emulator.memory.mps_gain")) <= sv
        sv_fits = worker_memory is None or _needed(sv) <= worker_memory
        method = MPS if (wide and much_smaller) or (not sv_fits and _needed(mps) <= worker_memory) else STATEVECTOR
    elif method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} or None (automatic), not {method!r}")
    raw = sv if method == STATEVECTOR else mps
    return MemoryEstimate(n, method, precision, sv, mps, _needed(raw))


def fits(est: MemoryEstimate, largest_worker: int) -> bool:
    """Whether the largest worker holds the circuit ``est`` estimates (the rule check_fits
    enforces and EstimatorV2 reads to choose cutting)."""
    return est.needed_bytes <= largest_worker


def check_fits(circuit: QuantumCircuit, est: MemoryEstimate, largest_worker: int) -> None:
    """Refuse a circuit that fits no worker, before any worker can be killed by it, with what
    each method would need: the statevector's size and the matrix product state's bound."""
    if fits(est, largest_worker):
        return
    mps = est.mps_bytes if est.mps_bytes is not None else mps_bytes(circuit, est.precision)
    single = ""
    if est.precision == "double" and est.method == STATEVECTOR:
        single = " Single precision halves the statevector (one qubit more fits): run(..., precision='single')."
    raise EmulatorMemoryError(
        f"circuit {circuit.name!r} on {est.num_qubits} qubits fits no emulator worker (the largest has a "
        f"memory limit of {format_bytes(largest_worker)}): as a statevector it needs "
        f"{format_bytes(_needed(est.statevector_bytes))} ({format_bytes(est.statevector_bytes)} of "
        f"{est.precision}-precision state plus simulator and process overhead), as a matrix product state up to "
        f"{format_bytes(_needed(mps))} (the bound its entanglement allows). Use fewer qubits, or workers with more "
        f"memory (jobqueue.slurm.memory, or qmio.emulator.local.memory_limit).{single} For expectation values, "
        "EstimatorV2 on the emulator cuts the circuit into parts that fit (qmio_lab.emulator.cutting)."
    )
