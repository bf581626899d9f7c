"""``qmio lab``: JupyterLab with everything a user needs already running.

Starts (or reuses) this user's QPU service, a shared Dask cluster for the emulator that every
kernel and the QMIO panel use (its address goes to them through ``DASK_QMIO__EMULATOR__CLUSTER``),
then JupyterLab itself, and prints the URL with its token. Ctrl-C stops the lab and the cluster;
the QPU service stays up for other sessions, as it does when kernels start it.

The cluster speaks TLS with a key made for each lab (0600 files in the private lab directory):
Dask runs the pickled tasks any connecting client sends, so only the lab's own server and kernels
(told through ``DASK_DISTRIBUTED__COMM__TLS__*``) may connect.
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


def write_tls(directory: Path) -> dict[str, str]:
    """A new self-signed certificate and its key as 0600 files in ``directory`` (made private).

    Returns the dask settings (environment variables) under which a client presents them.
    The certificate is its own CA: scheduler, workers and clients all hold this one pair.
    """
    from distributed.security import Security

    config.private_dir(directory)
    made = Security.temporary()
    files = {"cert.pem": made.tls_scheduler_cert, "key.pem": made.tls_scheduler_key}
    for name, pem in files.items():
        (directory / name).unlink(missing_ok=True)  # a new file: created 0600, whatever was there
        with config.private_file(directory / name, "w") as out:
            out.write(pem)
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    return {
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": cert,
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": cert,
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": key,
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
    }


def _start_dask(directory: Path, workers: int) -> tuple[subprocess.Popen, subprocess.Popen, str, dict[str, str]]:
    config.private_dir(directory)
    sched_file = directory / "scheduler.json"
    sched_file.unlink(missing_ok=True)
    tls_env = write_tls(directory / "tls")
    cert = tls_env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"]
    tls = ["--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", tls_env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"]]
    log = config.private_file(directory / "dask.log")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--protocol", "tls", "--host", "127.0.0.1",
         "--port", "0", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file), *tls],
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
         "--nworkers", str(workers), "--nthreads", "1", "--local-directory", str(directory / "workers"),
         "--protocol", "tls", "--host", "127.0.0.1", *tls],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return scheduler, worker, address, tls_env


def run_lab(port: int = 8888, notebook_dir: Path | None = None, workers: int | None = None) -> int:
    from qmio_lab.qpu.launcher import default_client

    client = default_client()
    status = client.status()
    print(f"QPU service: {client.url} ({status['state']}, calibration {status['calibration']['id']})", flush=True)
    env = dict(os.environ)
    procs: list[subprocess.Popen] = []
    if config.get("emulator.cluster") == "local":
        n = workers or max(1, min(2, os.cpu_count() or 1))
        scheduler, worker, address, tls_env = _start_dask(config.lab_home() / "dask", n)
        procs += [worker, scheduler]
        env["DASK_QMIO__EMULATOR__CLUSTER"] = address
        env.update(tls_env)  # the lab server and its kernels connect with the cluster's key
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
