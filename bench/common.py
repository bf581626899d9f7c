"""Helpers shared by the benchmarks: a private QPU service, timing statistics, tables."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("results.json")
USERS = {
    "alice": {"token": "bench-alice-0123456789", "role": "user"},
    "bob": {"token": "bench-bob-0123456789ab", "role": "user"},
    "ops": {"token": "bench-ops-0123456789ab", "role": "admin"},
}


def stats_ms(seconds: list[float]) -> dict[str, float]:
    arr = np.asarray(seconds) * 1000
    return {"median_ms": float(np.median(arr)), "p99_ms": float(np.percentile(arr, 99)), "n": len(arr)}


class BenchService:
    """`qmio qpu serve` in a temporary directory, as a separate process. ``instant`` timing (a
    job holds the QPU only while it is simulated): the benchmarks measure this software, and
    hardware timing would add QMIO's 0.9 s per call to every figure (see the rows' texts)."""

    timing = "instant"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="qmio-bench-"))
        (self.dir / "users.json").write_text(json.dumps({"users": USERS}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qmio_lab.cli", "qpu", "serve", "--port", "0",
             "--db", str(self.dir / "q.sqlite"), "--users", str(self.dir / "users.json"),
             "--discovery", str(self.dir / "service.json"), "--timing", self.timing],
            stdout=open(self.dir / "log", "wb"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not (self.dir / "service.json").exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError((self.dir / "log").read_text())
            time.sleep(0.05)
        self.url = json.loads((self.dir / "service.json").read_text())["url"]

    def client(self, user: str = "alice"):
        from qmio_lab.qpu import QPUClient

        return QPUClient(self.url, USERS[user]["token"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def save(section: str, rows: list[dict]) -> None:
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[section] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows}
    RESULTS.write_text(json.dumps(data, indent=2))


def table(rows: list[dict]) -> str:
    lines = ["| id | measure | ours | baseline | ratio | goal | met |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['id']} | {r['what']} | {r['ours']} | {r['baseline']} | {r['ratio']} | {r['goal']} | "
                     f"{'-' if r['met'] is None else 'yes' if r['met'] else 'no'} |")
    return "\n".join(lines)
