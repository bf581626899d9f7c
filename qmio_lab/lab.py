"""``qmio lab``: JupyterLab with everything a user needs already running.

Starts (or reuses) this user's QPU service, a shared Dask cluster for the emulator that every
kernel and the QMIO panel use (its address goes to them through ``DASK_QMIO__EMULATOR__CLUSTER``),
then JupyterLab itself, and prints the URL with its token. Ctrl-C stops the lab and the cluster;
the QPU service stays up for other sessions, as it does when kernels start it.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from qmio_lab import config


def _start_dask(directory: Path, workers: int) -> tuple[subprocess.Popen, subprocess.Popen, str]:
    config.private_dir(directory)
    sched_file = directory / "scheduler.json"
    sched_file.unlink(missing_ok=True)
    log = config.private_file(directory / "dask.log")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not sched_file.exists():
        if scheduler.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the Dask scheduler did not start; see {directory / 'dask.log'}")
        time.sleep(0.1)
    address = json.loads(sched_file.read_text())["address"]
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
         "--nworkers", str(workers), "--nthreads", "1", "--local-directory", str(directory / "workers")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return scheduler, worker, address


def run_lab(port: int = 8888, notebook_dir: Path | None = None, workers: int | None = None) -> int:
    from qmio_lab.qpu.launcher import default_client

    client = default_client()
    status = client.status()
    print(f"QPU service: {client.url} ({status['state']}, calibration {status['calibration']['id']})", flush=True)
    env = dict(os.environ)
    procs: list[subprocess.Popen] = []
    if config.get("emulator.cluster") == "local":
        n = workers or max(1, min(2, os.cpu_count() or 1))
        scheduler, worker, address = _start_dask(config.lab_home() / "dask", n)
        procs += [worker, scheduler]
        env["DASK_QMIO__EMULATOR__CLUSTER"] = address
        print(f"emulator: Dask LocalCluster at {address} with {n} worker(s)", flush=True)
    else:
        print(f"emulator: cluster from configuration ({config.get('emulator.cluster')})", flush=True)
    token = secrets.token_hex(16)
    root = notebook_dir or Path.cwd() / "notebooks"
    args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if (root / "01_quickstart.ipynb").exists():
        args.append("--LabApp.default_url=/lab/tree/01_quickstart.ipynb")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")
    def stop_on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_term)  # `kill` and CI timeouts clean up like Ctrl-C
    lab = subprocess.Popen(args, env=env)
    print(f"\nJupyterLab: http://127.0.0.1:{port}/lab?token={token}\n(Ctrl-C stops it)\n", flush=True)
    try:
        return lab.wait()
    except KeyboardInterrupt:
        lab.terminate()
        return lab.wait(timeout=30)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
