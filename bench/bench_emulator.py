"""Emulator benchmark: SLURM fan-out vs one in-process Aer run, and the widest statevector.

    .venv/bin/python bench/bench_emulator.py [--circuits 1000] [--run-up-to 30] [--repeats 3]

1. A sweep of 1000 different random 5-qubit circuits: ``EmulatorBackend`` on two dask-jobqueue
   workers running as SLURM jobs (SLURM is started with tests/slurm/slurm.sh when ``sinfo`` does
   not answer) against one batched in-process ``AerSimulator`` run at its best on the same
   machine (parallel experiments on every core). Goal: >= 1.5x faster. Beside it, Aer on one
   core and the workers' code (plain circuits, no Python assembly) in this process on one
   core, to show how much of the speed-up is the leaner path and how much is the second worker.
2. The widest statevector this machine emulates: the memory model's answer for one worker
   holding the machine's memory, and actual runs (peak RSS, time) from 24 to 27 qubits and of
   that largest width, when it is at most ``--run-up-to`` qubits.
   Goal: 30 qubits on a 24 GiB machine.

Prints a table and writes bench/results_emulator.json. Compare ratios within one run only:
the machine is noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from dask.utils import format_bytes
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.random import random_circuit
from qiskit_aer import AerSimulator

from qmio_lab.emulator import EmulatorBackend
from qmio_lab.emulator.memory import STATEVECTOR, estimate
from qmio_lab.emulator.tasks import BatchSpec, pack, run_batch

ROOT = Path(__file__).resolve().parents[1]
SLURM_SCRIPT = ROOT / "tests" / "slurm" / "slurm.sh"
sys.path.insert(0, str(ROOT / "tests"))
from support.slurm import start_two_workers  # noqa: E402 - the tests' two SLURM workers
RESULTS = Path(__file__).with_name("results_emulator.json")
SHOTS = 1000


def ensure_slurm() -> str:
    """SLURM_CONF of a running SLURM with an ``emulator`` partition, starting one if needed."""
    conf = os.environ.get("SLURM_CONF") or str(Path(tempfile.gettempdir()) / "qmio-slurm" / "slurm.conf")
    env = {**os.environ, "SLURM_CONF": conf}
    probe = subprocess.run(["sinfo", "-h", "-p", "emulator"], capture_output=True, text=True, env=env)
    if probe.returncode != 0 or not probe.stdout.strip():
        subprocess.run(["bash", str(SLURM_SCRIPT), "install"], check=True)
        subprocess.run(["bash", str(SLURM_SCRIPT), "start", str(Path(conf).parent)], check=True)
    os.environ["SLURM_CONF"] = conf
    return conf


def sweep_circuits(n: int) -> list[QuantumCircuit]:
    """Random circuits compiled once for the emulator's basis (both contenders get the same)."""
    raw = [random_circuit(5, depth=8, measure=True, seed=i) for i in range(n)]
    return transpile(raw, EmulatorBackend(), optimization_level=0, seed_transpiler=0)


def timed_together(contenders: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each contender, run alternately after one warm-up each, so that the
    machine's drifting load hits all of them alike."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def aer_at_its_best() -> AerSimulator:
    """The peer a user would pick for a batch of small circuits on this machine: Aer running as
    many experiments at once as there are cores (``max_parallel_experiments=0`` means up to
    ``max_parallel_threads``), every core allowed, and shot parallelism off, which Aer cannot
    combine with parallel experiments. ``statevector_parallel_threshold`` (14) stays as it is:
    it parallelises inside one circuit wider than 14 qubits, never these 5-qubit ones."""
    return AerSimulator(max_parallel_threads=os.cpu_count() or 1, max_parallel_experiments=0,
                        max_parallel_shots=1)


def bench_sweep(n_circuits: int, repeats: int, workdir: Path) -> dict:
    """E1: the sweep on two SLURM workers against Aer at its best on this machine (the goal's
    baseline), against Aer on one core, and the workers' own code in this process on one core,
    to split the speed-up into the leaner path and the second worker.

    The one-core Aer is pinned (``max_parallel_threads=1``) rather than the default
    ``AerSimulator()``: the default also runs one experiment at a time, and on a quiet machine
    as fast, but its OpenMP shot threads make it slower and erratic while other work shares
    the cores, which would flatter every ratio taken against it."""
    circuits = sweep_circuits(n_circuits)
    best = aer_at_its_best()
    one_core = AerSimulator(max_parallel_threads=1)
    cluster, client = start_two_workers(workdir, timeout=120)
    try:
        backend = EmulatorBackend(client=client, cluster=cluster)
        last: dict = {}

        def on_slurm() -> None:
            last["result"] = backend.run(circuits, shots=SHOTS).result()

        one_process = BatchSpec(shots=SHOTS, method="automatic")
        medians = timed_together({
            "aer_best": lambda: best.run(circuits, shots=SHOTS).result(),
            "aer_one_core": lambda: one_core.run(circuits, shots=SHOTS).result(),
            # the workers' code in this process: what the plain-circuit path alone is worth
            "in_process_compact": lambda: run_batch(pack(circuits), one_process, 0, 0),
            "slurm": on_slurm,
        }, repeats)
        result = last["result"]
        jobs = sorted({str(m.metadata.get("slurm_job_id")) for m in result.results})
    finally:
        client.close()
        cluster.close()
    return {
        "circuits": n_circuits, "qubits": 5, "shots": SHOTS, "cpus": os.cpu_count(),
        "aer_best_options": {k: getattr(best.options, k) for k in
                             ("max_parallel_threads", "max_parallel_experiments", "max_parallel_shots")},
        "aer_best_s": medians["aer_best"], "aer_one_core_s": medians["aer_one_core"],
        "in_process_compact_s": medians["in_process_compact"],
        "slurm_2_workers_s": medians["slurm"],
        "speedup": medians["aer_best"] / medians["slurm"],
        "speedup_vs_one_core": medians["aer_one_core"] / medians["slurm"],
        "speedup_compact_one_process": medians["aer_one_core"] / medians["in_process_compact"],
        "goal_speedup": 1.5, "batches": result.batches, "slurm_jobs": jobs,
    }


def wide_circuit(n: int) -> QuantumCircuit:
    """Entangled on every cut (a ring of CZ between two layers), so only statevector fits."""
    qc = QuantumCircuit(n, name=f"wide{n}")
    qc.h(range(n))
    for i in range(n):
        qc.cz(i, (i + 1) % n)
    for i in range(n):
        qc.rx(0.1 * (i + 1), i)
    qc.measure_all()
    return qc


_CHILD = """
import json, resource, sys, time
from qmio_lab.emulator.tasks import BatchSpec, run_batch
sys.path.insert(0, {bench!r})
from bench_emulator import wide_circuit
n = int(sys.argv[1]); precision = sys.argv[2]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
res = run_batch([wide_circuit(n)], BatchSpec(shots=100, method="statevector", precision=precision, parallel=True), 0, 0)
print(json.dumps({{"seconds": time.perf_counter() - t, "base_rss": before * 1024,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "ok": bool(res[0].success)}}))
"""


def run_wide(n: int, precision: str) -> dict:
    """Run the same worker code in a fresh process, so its peak RSS is this circuit's alone."""
    code = _CHILD.format(bench=str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", code, str(n), precision], capture_output=True, text=True)
    if out.returncode != 0:
        return {"ok": False, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_width(run_up_to: int) -> dict:
    """Largest width the memory model admits on one worker with this machine's memory; runs."""
    total = psutil.virtual_memory().total
    worker = int(total * 0.95)  # one worker alone on the machine; Dask's nanny stops it at 95%
    model = {}
    for precision in ("double", "single"):
        fits = [n for n in range(20, 36)
                if estimate(wide_circuit(n), STATEVECTOR, precision).needed_bytes <= worker]
        model[precision] = max(fits) if fits else None
    runs = []
    # a ladder up to 27 qubits shows how time and memory double; then the largest the model
    # admits, if asked for, is run for real (30 qubits: minutes and about 16 GiB; E2 gives the figures)
    widths = set(range(24, min(run_up_to, 27) + 1))
    if model["double"] is not None and model["double"] <= run_up_to:
        widths.add(model["double"])
    for n in sorted(widths):
        est = estimate(wide_circuit(n), STATEVECTOR, "double")
        if est.needed_bytes > worker:
            break
        measured = run_wide(n, "double")
        runs.append({"qubits": n, "precision": "double", "estimate_bytes": est.needed_bytes,
                     "statevector_bytes": est.statevector_bytes, **measured})
    return {"machine_memory_bytes": total, "worker_memory_bytes": worker,
            "largest_by_model": model, "goal_qubits": 30, "runs": runs}


def print_tables(sweep: dict, width: dict) -> None:
    print(f"\nSweep of {sweep['circuits']} random {sweep['qubits']}-qubit circuits, {sweep['shots']} shots")
    print(f"  {'Aer at its best (all cores)':<32}{sweep['aer_best_s']:>8.2f} s   ({sweep['aer_best_options']})")
    print(f"  {'Aer on one core':<32}{sweep['aer_one_core_s']:>8.2f} s   (max_parallel_threads=1)")
    print(f"  {'  plain path, this process':<32}{sweep['in_process_compact_s']:>8.2f} s"
          f"   ({sweep['speedup_compact_one_process']:.2f} x one-core Aer: no Python assembly, one core)")
    print(f"  {'EmulatorBackend, 2 SLURM workers':<32}{sweep['slurm_2_workers_s']:>8.2f} s"
          f"   ({sweep['batches']} batches, jobs {', '.join(sweep['slurm_jobs'])})")
    verdict = "meets" if sweep["speedup"] >= sweep["goal_speedup"] else "misses"
    print(f"  {'speed-up':<32}{sweep['speedup']:>8.2f} x   ({verdict} the {sweep['goal_speedup']}x goal against "
          f"Aer at its best; {sweep['speedup_vs_one_core']:.2f} x against one-core Aer)")
    print(f"\nWidest statevector on this machine ({format_bytes(width['machine_memory_bytes'])}; "
          f"one worker with {format_bytes(width['worker_memory_bytes'])})")
    m = width["largest_by_model"]
    print(f"  memory model: {m['double']} qubits in double precision, {m['single']} in single "
          f"(goal {width['goal_qubits']})")
    print(f"  {'qubits':>6} {'estimate':>12} {'peak RSS':>12} {'time':>9}")
    for r in width["runs"]:
        if r.get("ok"):
            print(f"  {r['qubits']:>6} {format_bytes(r['estimate_bytes']):>12} "
                  f"{format_bytes(r['peak_rss']):>12} {r['seconds']:>8.1f}s")
        else:
            print(f"  {r['qubits']:>6} {format_bytes(r['estimate_bytes']):>12} failed: {r.get('error')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--circuits", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run-up-to", type=int, default=30,
                        help="largest width actually run (each +1 doubles time and memory)")
    args = parser.parse_args(argv)
    ensure_slurm()
    with tempfile.TemporaryDirectory(prefix="qmio-bench-") as tmp:
        sweep = bench_sweep(args.circuits, args.repeats, Path(tmp))
    width = bench_width(args.run_up_to)
    print_tables(sweep, width)
    record = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "sweep": sweep, "width": width, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
