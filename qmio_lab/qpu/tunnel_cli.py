"""``qmio tunnel``: open, list and close tunnels for QMIO's own client.

The line for the shell goes to stdout alone (``eval "$(qmio tunnel)"`` sets ``ZMQ_SERVER``);
everything else goes to stderr. With ``--slurm`` the tunnel is opened from a SLURM job in the
QPU partition running the packaged ``slurm/qpu.sh``, as at QMIO: it lasts as long as that
job, and every request through it is checked against the job by the service's SLURM gate.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import resources
from typing import Any

from qmio_lab import config
from qmio_lab.errors import QPUServiceError, SlurmCommandError
from qmio_lab.qpu.client import QPUClient
from qmio_lab.slurm import POLL_TIMEOUT_S, is_job_id, run_command, squeue_job

_SLURM_START_S = 120.0  # how long to wait for the tunnel job to start and open its tunnel
_SQUEUE_GRACE_S = 5.0  # a job squeue does not list this soon after sbatch is not taken for ended yet
#: squeue's states of a job that has ended ("": squeue no longer lists it)
_ENDED = frozenset({"", "BOOT_FAIL", "CANCELLED", "COMPLETED", "COMPLETING", "DEADLINE", "FAILED", "NODE_FAIL",
                    "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT"})


def _request_tunnel(client: QPUClient, seconds: float, port: int | None, slurm_job_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"max_time_s": seconds}
    if port is not None:
        body["port"] = port
    if slurm_job_id is not None:
        body["slurm_job_id"] = slurm_job_id
    return client.open_tunnel(body)


def _announce(tunnel: dict[str, Any]) -> None:
    print(f"tunnel {tunnel['id']} for {tunnel['user']} open until {tunnel['expires_at']}", file=sys.stderr)
    print(tunnel["export"], flush=True)


def open_tunnel(client: QPUClient, seconds: float, *, port: int | None = None, hold: bool = False) -> int:
    job_id = os.environ.get("SLURM_JOB_ID") if hold else None
    tunnel = _request_tunnel(client, seconds, port, job_id)
    _announce(tunnel)
    if hold:
        _hold(client, tunnel)
    return 0


def _hold(client: QPUClient, tunnel: dict[str, Any]) -> None:
    """Stay until the tunnel's time is up; on SIGTERM (scancel, the job's time limit) or Ctrl-C,
    close it first, so a tunnel never outlives the job that holds it."""
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        while not stop["now"]:
            state = next((t for t in client.tunnels() if t["id"] == tunnel["id"]), {"state": "closed"})["state"]
            if state != "open":
                break
            time.sleep(1.0)
    finally:
        try:
            client.close_tunnel(tunnel["id"])
        except QPUServiceError:
            pass


def list_tunnels(client: QPUClient) -> int:
    tunnels = client.tunnels()
    if not tunnels:
        print("no tunnels", file=sys.stderr)
    for t in tunnels:
        print(f"{t['id']}  {t['user']:<12} {t['state']:<8} {t['endpoint']:<24} until {t['expires_at']}")
    return 0


def close_tunnel(client: QPUClient, tunnel_id: str) -> int:
    t = client.close_tunnel(tunnel_id)
    print(f"tunnel {t['id']} closed", file=sys.stderr)
    return 0


def qpu_script() -> str:
    """The packaged tunnel job script (as QMIO's ``qpu.sh``)."""
    return str(resources.files("qmio_lab") / "slurm" / "qpu.sh")


def open_tunnel_in_slurm(client: QPUClient, seconds: float, *, reservation: str | None = None,
                         port: int | None = None) -> int:
    """Submit the tunnel job to the QPU partition, wait for it to open its tunnel, print it."""
    if shutil.which("sbatch") is None:
        raise ValueError("--slurm needs SLURM's sbatch on PATH (run it on a login node of the cluster)")
    partition = config.get("qpu.slurm_partition") or "qpu"
    minutes, secs = divmod(int(seconds), 60)
    cmd = ["sbatch", "--parsable", f"--partition={partition}", f"--time={minutes // 60:02d}:{minutes % 60:02d}:{secs:02d}",
           "--job-name=qmio-tunnel", "--output=/dev/null"]
    if reservation:
        cmd.append(f"--reservation={reservation}")
    env = {**os.environ, "QMIO_QPU_URL": client.url, "QMIO_QPU_TOKEN": client.token or "",
           "QMIO_PYTHON": sys.executable, "QMIO_TUNNEL_SECONDS": str(int(seconds)),
           "QMIO_TUNNEL_PORT": "" if port is None else str(port)}
    out = subprocess.run([*cmd, qpu_script()], capture_output=True, text=True, env=env, timeout=60)
    if out.returncode != 0:
        raise ValueError(f"sbatch refused the tunnel job: {out.stderr.strip()[:300]}")
    job_id = out.stdout.strip().split(";")[0]
    if not is_job_id(job_id):
        raise ValueError(f"sbatch answered {out.stdout.strip()[:100]!r}, not a job id; is sbatch SLURM's?")
    print(f"tunnel job {job_id} submitted to partition {partition}; waiting for it to start", file=sys.stderr)
    submitted = time.monotonic()
    while time.monotonic() - submitted < _SLURM_START_S:
        tunnel = next((t for t in client.tunnels() if t.get("slurm_job_id") == job_id and t["state"] == "open"), None)
        if tunnel is not None:
            _announce(tunnel)
            return 0
        try:
            row = squeue_job(job_id, "%T", timeout=POLL_TIMEOUT_S)
        except SlurmCommandError:  # slurmctld busy: not an answer, ask again (the deadline still holds)
            row = ["UNKNOWN"]
        state = row[0].strip() if row else ""
        if state in _ENDED and time.monotonic() - submitted > _SQUEUE_GRACE_S:
            raise ValueError(f"tunnel job {job_id} ended ({state or 'gone'}) before opening a tunnel; "
                             "see `sacct -j " + job_id + "`")
        time.sleep(0.5)
    run_command(["scancel", job_id], POLL_TIMEOUT_S)
    raise ValueError(f"tunnel job {job_id} did not open a tunnel in {_SLURM_START_S:.0f} s (cancelled); "
                     "is the QPU partition busy? see `squeue -p " + partition + "`")
