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

README = HERE.parent / "README.md"


def emulator_rows(run_up_to: int) -> list[dict]:
    subprocess.run([sys.executable, str(HERE / "bench_emulator.py"), "--run-up-to", str(run_up_to)], check=True)
    data = json.loads((HERE / "results_emulator.json").read_text())
    sweep, width = data["sweep"], data["width"]
    ran = [r for r in width["runs"] if r.get("ok")]
    widest = max(ran, key=lambda r: r["qubits"], default={"qubits": 0, "peak_rss": 0, "seconds": 0})
    widest_run = widest["qubits"]
    return [
        {"id": "E1", "what": f"{sweep['circuits']}-circuit sweep on 2 SLURM workers vs one batched in-process Aer run",
         "ours": f"{sweep['slurm_2_workers_s']:.2f} s", "baseline": f"{sweep['in_process_s']:.2f} s",
         "ratio": f"{sweep['speedup']:.2f}x", "goal": "≥ 1.5x", "met": sweep["speedup"] >= 1.5},
        {"id": "E1'", "what": "of which the leaner path: the workers' code (compact circuits) in one process",
         "ours": f"{sweep['in_process_compact_s']:.2f} s", "baseline": f"{sweep['in_process_s']:.2f} s",
         "ratio": f"{sweep['speedup_compact_one_process']:.2f}x", "goal": "-", "met": None},
        {"id": "E2", "what": "widest statevector this machine runs (largest the memory model admits, run for real)",
         "ours": f"{widest_run} qubits run ({widest['peak_rss'] / 2**30:.1f} GiB peak, {widest['seconds']:.0f} s); "
                 f"model {width['largest_by_model']['double']}",
         "baseline": f"{width['machine_memory_bytes'] / 2**30:.1f} GiB RAM", "ratio": "-", "goal": "30 qubits",
         "met": widest_run >= 30},
    ]


def update_readme(markdown: str) -> None:
    text = README.read_text()
    block = f"<!-- bench:start -->\n{markdown}\n<!-- bench:end -->"
    new = re.sub(r"<!-- bench:start -->.*?<!-- bench:end -->", lambda _: block, text, flags=re.S)
    README.write_text(new)


def main() -> None:
    import bench_qpu

    bench_qpu.main()
    rows = json.loads(RESULTS.read_text())["qpu"]["rows"]
    erows = emulator_rows(run_up_to=int(sys.argv[1]) if len(sys.argv) > 1 else 30)
    save("emulator", erows)
    all_rows = rows + erows
    data = json.loads(RESULTS.read_text())
    markdown = f"Measured on {machine()} ({data['qpu']['date']}):\n\n{table(all_rows)}"
    print("\n" + markdown)
    update_readme(markdown)


if __name__ == "__main__":
    main()
