"""Emulator benchmark: SLURM fan-out vs one in-process Aer run, and the widest statevector.

    .venv/bin/python bench/bench_emulator.py [--circuits 1000] [--run-up-to 30] [--repeats 3]
    .venv/bin/python bench/bench_emulator.py --only cutting     # E3/E4 alone (a few minutes)

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
3. Circuit cutting past one node (issue 18), on SLURM workers as the sweep (``--cluster local``:
   a LocalCluster): a 34-qubit ansatz on two 17-qubit halves joined by two cut CX gates (72
   subexperiments of 17-19 qubits, 4000 shots each), estimated with ``cutting.estimate`` on 2
   workers: wall time end to end (goal <= 5 min) and error against Aer's exact MPS value of the
   same observables (measured in the same run, its time too). Then the subexperiment throughput
   on 1 and 2 workers (goal >= 1.7x): those 72 subexperiments four times over in one emulator
   job (enough batches to keep both workers busy), and the single estimate end to end. Each
   worker is one single-threaded process (one SLURM core; batched circuits run Aer with
   ``max_parallel_threads=1``, BatchSpec.parallel being only for a lone circuit of 20 qubits or more).

Prints a table and writes bench/results_emulator.json; ``--only`` runs just the parts named and
replaces only their sections of that file. Compare ratios within one run only: the machine is noisy.
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

from qmio_lab import config
from qmio_lab.emulator import EmulatorBackend, cutting
from qmio_lab.emulator.memory import STATEVECTOR, estimate
from qmio_lab.emulator.tasks import BatchSpec, pack, run_batch

ROOT = Path(__file__).resolve().parents[1]
SLURM_SCRIPT = ROOT / "tests" / "slurm" / "slurm.sh"
sys.path.insert(0, str(ROOT / "tests"))
from support.circuits import two_halves  # noqa: E402 - the cutting tests' 34-qubit construction
from support.slurm import start_two_workers, two_worker_settings  # noqa: E402 - the tests' two SLURM workers
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


CUT_PAULIS = ["I" * 16 + "ZZ" + "I" * 16, "I" * 33 + "Z", "Z" * 17 + "I" * 17]  # as tests/test_emulator_cutting.py
CUT_LABELS = "A" * 17 + "B" * 17


def start_workers(kind: str, n: int, workdir: Path, timeout: float = 120) -> tuple:
    """``n`` single-threaded emulator workers and a client: SLURM jobs of one core each (the
    tests' settings, ``n`` of them), or a LocalCluster of ``n`` one-thread processes."""
    from distributed import Client, LocalCluster

    if kind == "local":
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, memory_limit="2GiB",
                               dashboard_address=":0")
        return cluster, Client(cluster, set_as_default=False)
    import dask.config

    from qmio_lab.emulator import make_cluster

    workdir.mkdir(parents=True, exist_ok=True)
    settings = {**two_worker_settings(workdir), "qmio.emulator.slurm.adapt": {"minimum": n, "maximum": n}}
    with dask.config.set(settings):
        cluster, address = make_cluster()
    client = Client(address, security=cluster.security, set_as_default=False)
    try:
        client.wait_for_workers(n, timeout=timeout)
    except TimeoutError:
        client.close()
        cluster.close()
        raise
    return cluster, client


def mps_reference(circuit: QuantumCircuit, paulis: list[str]) -> tuple[list[float], float]:
    """Exact expectation values (Aer's MPS without truncation, ``precision=0``) and the median
    time of three runs in this process."""
    import numpy as np
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    estimator = AerEstimator(options={"backend_options": {"method": "matrix_product_state"},
                                      "default_precision": 0})
    pub = (circuit, [SparsePauliOp(p) for p in paulis])
    times, values = [], None
    for _ in range(3):
        t = time.perf_counter()
        values = np.asarray(estimator.run([pub]).result()[0].data.evs)
        times.append(time.perf_counter() - t)
    return [float(v) for v in values], statistics.median(times)


def cut_once(backend: EmulatorBackend, circuit: QuantumCircuit, paulis: list[str], seed: int) -> dict:
    """One ``cutting.estimate`` as a user calls it (plan included), timed end to end, with the
    workers' span (first batch started to last batch finished, their own clocks)."""
    load = os.getloadavg()[0]
    t = time.perf_counter()
    est = cutting.estimate(circuit, paulis, backend=backend, partition_labels=CUT_LABELS, seed=seed)
    wall = time.perf_counter() - t
    return {"wall_s": wall, "run_s": est.wall_s, "load_before": load, "values": [float(v) for v in est.values],
            "shots": est.shots, **where_it_ran(est.metadata["runs"])}


def where_it_ran(runs: list[dict]) -> dict:
    """Span on the workers' clocks, workers and batches, from each subexperiment's metadata."""
    sizes: dict = {}
    for r in runs:
        sizes[r["batch"]] = sizes.get(r["batch"], 0) + 1
    return {"span_s": max(r["batch_finished"] for r in runs) - min(r["batch_started"] for r in runs),
            "subexperiments": len(runs), "workers": len({r["worker"] for r in runs}),
            "batch_sizes": [sizes[k] for k in sorted(sizes)],
            "slurm_jobs": sorted({str(r["slurm_job_id"]) for r in runs if r.get("slurm_job_id")})}


def workers_cpu_s(backend: EmulatorBackend) -> float:
    """CPU seconds the workers' processes have used so far (they run on this machine, local or
    SLURM): over a run, the cores the workers actually got, whatever else shares the machine."""
    pids = backend.client().run(os.getpid).values()
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def throughput_once(backend: EmulatorBackend, circuits: list[QuantumCircuit], shots: int, seed: int) -> dict:
    """The subexperiments as one emulator job (as ``cutting.estimate`` sends them), submitted to
    results gathered, with the CPU time its workers got meanwhile."""
    load = os.getloadavg()[0]
    cpu = workers_cpu_s(backend)
    t = time.perf_counter()
    result = backend.run(circuits, shots=shots, seed_simulator=seed).result()
    wall = time.perf_counter() - t
    cpu = workers_cpu_s(backend) - cpu
    return {"wall_s": wall, "load_before": load, "workers_cpu_s": cpu, "cores_used": cpu / wall,
            **where_it_ran([m.metadata for m in result.results])}


def bench_cutting(kind: str, repeats: int, workdir: Path, copies: int = 4) -> dict:
    """E3 and E4: the 34-qubit cut estimate (2 cut CX gates, 72 subexperiments) on two workers,
    end to end, against the exact MPS value; and the subexperiment throughput on one and two
    workers: the same estimate's 72 subexperiments, ``copies`` times over in one emulator job
    (288: 4 batches of 72 on one worker, 8 of 36 on two, so the second worker is never idle
    for want of a batch), and the single estimate end to end. Runs on one and two workers
    alternate after a warm-up each, so the machine's drifting load hits both alike; both
    clusters stay up meanwhile."""
    import numpy as np

    circuit = two_halves(34, seed=3)  # two cut CX gates: overhead 81, 72 subexperiments
    reference, mps_s = mps_reference(circuit, CUT_PAULIS)
    problem = cutting.plan(circuit, CUT_PAULIS, partition_labels=CUT_LABELS)
    subexperiments = [cutting.defer_measurements(c) for part in problem.subexperiments.values() for c in part]
    shots = int(config.get("emulator.cutting.shots"))
    clusters = {}
    try:
        for n in (1, 2):
            clusters[n] = start_workers(kind, n, workdir / f"cut-{n}")
        backends = {n: EmulatorBackend(client=client, cluster=cluster) for n, (cluster, client) in clusters.items()}
        runs: dict[tuple[str, int], list[dict]] = {(w, n): [] for w in ("estimate", "throughput") for n in (1, 2)}
        for n in (1, 2):  # warm-up: worker imports, first Aer calls
            cut_once(backends[n], circuit, CUT_PAULIS, seed=0)
        for rep in range(repeats):
            for n in (1, 2):
                runs[("estimate", n)].append(cut_once(backends[n], circuit, CUT_PAULIS, seed=1 + rep))
                runs[("throughput", n)].append(throughput_once(backends[n], subexperiments * copies, shots, 1 + rep))
    finally:
        for cluster, client in clusters.values():
            client.close()
            cluster.close()

    def median(workload: str, n: int, key: str = "wall_s") -> float:
        return statistics.median(r[key] for r in runs[(workload, n)])

    errors = [float(np.max(np.abs(np.asarray(r["values"]) - reference))) for n in (1, 2) for r in runs[("estimate", n)]]
    count = len(subexperiments) * copies
    rate = {n: count / median("throughput", n) for n in (1, 2)}
    span_rate = {n: count / median("throughput", n, "span_s") for n in (1, 2)}
    return {
        "cluster": kind, "repeats": repeats, "cpus": os.cpu_count(), "qubits": circuit.num_qubits,
        "paulis": CUT_PAULIS, "plan": problem.plan.describe(), "num_cuts": problem.plan.num_cuts,
        "sampling_overhead": problem.plan.sampling_overhead, "subexperiments": problem.plan.num_subexperiments,
        "subexperiment_qubits": sorted({c.num_qubits for c in subexperiments}), "shots": shots,
        "mps_reference": reference, "mps_s": mps_s,
        "wall_2_workers_s": median("estimate", 2), "wall_1_worker_s": median("estimate", 1),
        "span_2_workers_s": median("estimate", 2, "span_s"), "span_1_worker_s": median("estimate", 1, "span_s"),
        "max_error": max(errors), "errors": errors, "goal_wall_s": 300, "goal_error": 0.05,
        "throughput_subexperiments": count,
        "throughput_1_worker_per_s": rate[1], "throughput_2_workers_per_s": rate[2],
        "throughput_scaling": rate[2] / rate[1],
        "throughput_scaling_on_workers": span_rate[2] / span_rate[1],  # first batch start to last finish
        # cores the workers got while the throughput job ran (2 at most), and subexperiments per CPU second
        "cores_used": {n: statistics.median(r["cores_used"] for r in runs[("throughput", n)]) for n in (1, 2)},
        "per_cpu_s": {n: count / statistics.median(r["workers_cpu_s"] for r in runs[("throughput", n)]) for n in (1, 2)},
        "throughput_scaling_best": min(r["wall_s"] for r in runs[("throughput", 1)])
        / min(r["wall_s"] for r in runs[("throughput", 2)]),  # the least disturbed run of each
        "estimate_scaling": median("estimate", 1) / median("estimate", 2),
        "goal_scaling": 1.7,
        # the 1-minute load average before each run: other work on the machine shows here
        "load_before_median": statistics.median(r["load_before"] for rs in runs.values() for r in rs),
        "runs": {f"{w}_{n}": [{k: v for k, v in r.items() if k != "values"} for r in rs] for (w, n), rs in runs.items()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_cutting(cut: dict) -> None:
    print(f"\nCircuit cutting, {cut['cluster']} workers (one thread each): {cut['plan']}; "
          f"{cut['subexperiment_qubits']} qubits, {cut['shots']} shots each")
    print(f"  {'Aer MPS, one process (exact)':<34}{cut['mps_s']:>8.3f} s")
    print(f"  {'cut estimate, 2 workers':<34}{cut['wall_2_workers_s']:>8.2f} s   (max error {cut['max_error']:.4f}; "
          f"goals {cut['goal_wall_s']} s, {cut['goal_error']})")
    print(f"  {'cut estimate, 1 worker':<34}{cut['wall_1_worker_s']:>8.2f} s   "
          f"({cut['estimate_scaling']:.2f} x end to end with 2)")
    print(f"  {cut['throughput_subexperiments']} subexperiments in one job: {cut['throughput_1_worker_per_s']:.1f}/s on "
          f"1 worker, {cut['throughput_2_workers_per_s']:.1f}/s on 2: {cut['throughput_scaling']:.2f} x "
          f"(goal {cut['goal_scaling']} x; {cut['throughput_scaling_on_workers']:.2f} x on the workers' clocks)")
    cores, per_cpu = cut["cores_used"], cut["per_cpu_s"]
    print(f"  the workers got {cores[1]:.2f} core(s) with 1 worker, {cores[2]:.2f} with 2 (median load average "
          f"{cut['load_before_median']:.1f}); {per_cpu[1]:.1f} and {per_cpu[2]:.1f} subexperiments per CPU second")


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
    parser.add_argument("--only", nargs="+", choices=PARTS,
                        help="run only these parts; only their sections of results_emulator.json are replaced")
    parser.add_argument("--cluster", choices=("slurm", "local"), default="slurm",
                        help="workers for the cutting rows: SLURM jobs (as the sweep) or a LocalCluster")
    args = parser.parse_args(argv)
    parts = args.only or PARTS
    record = json.loads(RESULTS.read_text()) if args.only and RESULTS.exists() else {}
    if "sweep" in parts or ("cutting" in parts and args.cluster == "slurm"):
        ensure_slurm()
    if "sweep" in parts:
        with tempfile.TemporaryDirectory(prefix="qmio-bench-") as tmp:
            record["sweep"] = bench_sweep(args.circuits, args.repeats, Path(tmp))
    if "width" in parts:
        record["width"] = bench_width(args.run_up_to)
    if "cutting" in parts:
        with tempfile.TemporaryDirectory(prefix="qmio-bench-") as tmp:
            record["cutting"] = bench_cutting(args.cluster, args.repeats, Path(tmp))
    if "sweep" in parts and "width" in parts:
        print_tables(record["sweep"], record["width"])
    if "cutting" in parts:
        print_cutting(record["cutting"])
    record["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    if not args.only:
        record["when"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    order = ("machine", "sweep", "width", "cutting", "when")
    RESULTS.write_text(json.dumps({k: record[k] for k in order if k in record}, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}" + (f" ({', '.join(parts)})" if args.only else ""))
    return 0


PARTS = ("sweep", "width", "cutting")


if __name__ == "__main__":
    sys.exit(main())
