"""`make bench`: every benchmark in one run, one table, bench/results.json, and the README table.

Each figure is a ratio against a baseline measured in the same run on the same machine.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import RESULTS, machine, save, table  # noqa: E402

ROOT = HERE.parent
README = ROOT / "README.md"


def emulator_rows(run_up_to: int) -> list[dict]:
    subprocess.run([sys.executable, str(HERE / "bench_emulator.py"), "--run-up-to", str(run_up_to)], check=True)
    data = json.loads((HERE / "results_emulator.json").read_text())
    sweep, width = data["sweep"], data["width"]
    cut = data.get("cutting")
    ran = [r for r in width["runs"] if r.get("ok")]
    widest = max(ran, key=lambda r: r["qubits"], default={"qubits": 0, "peak_rss": 0, "seconds": 0})
    widest_run = widest["qubits"]
    cores = sweep.get("cpus") or "all"
    return [
        {"id": "E1", "what": f"{sweep['circuits']}-circuit sweep on 2 SLURM workers vs Aer at its best in one process "
                             f"(parallel experiments on {cores} cores)",
         "ours": f"{sweep['slurm_2_workers_s']:.2f} s", "baseline": f"{sweep['aer_best_s']:.2f} s",
         "ratio": f"{sweep['speedup']:.2f}x", "goal": "≥ 1.5x", "met": sweep["speedup"] >= 1.5},
        {"id": "E1b", "what": "same sweep vs one-core Aer (max_parallel_threads=1, one experiment at a time)",
         "ours": f"{sweep['slurm_2_workers_s']:.2f} s", "baseline": f"{sweep['aer_one_core_s']:.2f} s",
         "ratio": f"{sweep['speedup_vs_one_core']:.2f}x", "goal": "-", "met": None},
        {"id": "E1'", "what": "of which the leaner path: the workers' code (plain circuits) in one process, one core",
         "ours": f"{sweep['in_process_compact_s']:.2f} s", "baseline": f"{sweep['aer_one_core_s']:.2f} s",
         "ratio": f"{sweep['speedup_compact_one_process']:.2f}x", "goal": "-", "met": None},
        {"id": "E2", "what": "widest statevector this machine runs (largest the memory model admits, run for real)",
         "ours": f"{widest_run} qubits run ({widest['peak_rss'] / 2**30:.1f} GiB peak, {widest['seconds']:.0f} s); "
                 f"model {width['largest_by_model']['double']}",
         "baseline": f"{width['machine_memory_bytes'] / 2**30:.1f} GiB RAM", "ratio": "-", "goal": "30 qubits",
         "met": widest_run >= 30},
    ] + (cutting_rows(cut) if cut else [])


def cutting_rows(cut: dict) -> list[dict]:
    """E3/E4 (issue 18): a 34-qubit estimate by circuit cutting on two workers; throughput 1 -> 2 workers."""
    kind = "SLURM" if cut["cluster"] == "slurm" else "local"
    widths = cut["subexperiment_qubits"]
    return [
        {"id": "E3", "what": f"{cut['qubits']}-qubit cut estimate ({cut['num_cuts']} cut CX, {cut['subexperiments']} "
                             f"subexperiments of {widths[0]}-{widths[-1]} qubits, {cut['shots']} shots) on 2 {kind} "
                             f"workers, end to end: wall time / max error of {len(cut['errors'])} estimates vs Aer MPS (exact)",
         "ours": f"{cut['wall_2_workers_s']:.1f} s / {cut['max_error']:.3f}",
         "baseline": f"{cut['mps_s'] * 1000:.0f} ms (MPS, one process)",
         "ratio": f"{cut['wall_2_workers_s'] / cut['mps_s']:.0f}x MPS time", "goal": "≤ 300 s / ≤ 0.05",
         "met": cut["wall_2_workers_s"] <= 300 and cut["max_error"] <= 0.05},
        {"id": "E4", "what": f"subexperiment throughput, 1 -> 2 {kind} workers of one thread: E3's {cut['subexperiments']} "
                             f"subexperiments x{cut['throughput_subexperiments'] // cut['subexperiments']} in one job",
         "ours": f"{cut['throughput_2_workers_per_s']:.1f}/s (the workers got {cut['cores_used']['2']:.2f} cores)",
         "baseline": f"{cut['throughput_1_worker_per_s']:.1f}/s (1 worker, {cut['cores_used']['1']:.2f} core)",
         "ratio": f"{cut['throughput_scaling']:.2f}x", "goal": "≥ 1.7x", "met": cut["throughput_scaling"] >= 1.7},
        {"id": "E4'", "what": "the E3 estimate itself, end to end (plan, deferral and reconstruction in the client)",
         "ours": f"{cut['wall_2_workers_s']:.2f} s", "baseline": f"{cut['wall_1_worker_s']:.2f} s (1 worker)",
         "ratio": f"{cut['estimate_scaling']:.2f}x", "goal": "-", "met": None},
    ]


def update_readme(markdown: str) -> None:
    text = README.read_text()
    block = f"<!-- bench:start -->\n{markdown}\n<!-- bench:end -->"
    new = re.sub(r"<!-- bench:start -->.*?<!-- bench:end -->", lambda _: block, text, flags=re.S)
    README.write_text(new)


def measured_on() -> str:
    """The commit the figures belong to: ``git rev-parse --short HEAD``, plus "+ uncommitted
    changes" when tracked files under qmio_lab/ or bench/ differ from it (the code measured is
    then not that commit's). The results files a run writes, and tests or docs edited meanwhile,
    do not change what was measured, so they do not count."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        changed = git("status", "--porcelain", "--untracked-files=no", "--", "qmio_lab", "bench",
                      ":(exclude)bench/results*.json")
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown (no git)"
    return f"commit {commit}" + (" + uncommitted changes" if changed.strip() else "")


def main() -> None:
    import bench_qpu

    commit = measured_on()  # the code as it is when the run starts
    bench_qpu.main([])  # sys.argv holds this script's own arguments, not bench_qpu's
    rows = json.loads(RESULTS.read_text())["qpu"]["rows"]
    erows = emulator_rows(run_up_to=int(sys.argv[1]) if len(sys.argv) > 1 else 30)
    save("emulator", erows)
    data = json.loads(RESULTS.read_text())
    data["commit"] = commit
    RESULTS.write_text(json.dumps(data, indent=2))
    markdown = f"Measured on {machine()}, {commit} ({data['qpu']['date']}):\n\n{table(rows + erows)}"
    print("\n" + markdown)
    update_readme(markdown)


if __name__ == "__main__":
    main()
