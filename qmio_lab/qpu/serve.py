"""Running the queue service as a process: ``qmio qpu serve``."""
from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import tornado.httpserver

from qmio_lab import config
from qmio_lab.qpu.auth import HubAuth, TokenAuth, new_token
from qmio_lab.qpu.clock import SimClock
from qmio_lab.qpu.server import make_app, payload_limit_bytes
from qmio_lab.qpu.service import QPUService

log = logging.getLogger("qmio_lab.qpu")


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    db: Path | None = None
    users_file: Path | None = None
    time_scale: float | None = None
    start_time: datetime | None = None
    seed: int | None = None
    discovery: Path | None = None
    slurm_partition: str | None = None
    hub: bool = False
    timing: str | None = None  # hardware | instant; None: qmio.device.timing


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_discovery(path: Path, url: str, token: str | None) -> None:
    """Where other kernels find this service: URL, token, pid (readable by the owner only)."""
    config.private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "token": token, "pid": os.getpid()}, fh)
    os.replace(tmp, path)


def build_auth(users_file: Path | None) -> tuple[TokenAuth, str | None]:
    """Users from the file (or config); with none, the current OS user as admin with a new token."""
    users_file = users_file or (Path(config.get("qpu.users_file")) if config.get("qpu.users_file") else None)
    if users_file:
        return TokenAuth.from_file(users_file), None
    token = new_token()
    return TokenAuth({getpass.getuser(): {"token": token, "role": "admin"}}), token


def hub_settings() -> tuple[str, int, str]:
    """Host, port and URL prefix a Hub-managed service must use (from the Hub's environment)."""
    url = os.environ.get("JUPYTERHUB_SERVICE_URL")
    if not url or not os.environ.get("JUPYTERHUB_API_TOKEN"):
        raise SystemExit("qmio qpu serve --hub must be started by JupyterHub as a managed service "
                         "(JUPYTERHUB_SERVICE_URL and JUPYTERHUB_API_TOKEN are not set)")
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80, os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")


async def _serve(opts: ServeOptions) -> None:
    prefix = "/"
    if opts.hub:
        opts.host, opts.port, prefix = hub_settings()
        auth, own_token = HubAuth(admin_group=config.get("qpu.hub_admin_group"),
                                  account_groups=tuple(config.get("qpu.accounts", None) or {})), None
    else:
        auth, own_token = build_auth(opts.users_file)
    db = opts.db or (config.lab_home() / "qpu" / "queue.sqlite")
    scale = opts.time_scale if opts.time_scale is not None else float(config.get("qpu.time_scale"))
    clock = SimClock(scale=scale, start=opts.start_time) if (opts.start_time or scale != 1.0) else None
    partition = opts.slurm_partition or config.get("qpu.slurm_partition")
    service = QPUService(db, auth, clock=clock, seed=opts.seed, slurm_partition=partition, timing=opts.timing)
    # bodies stream into the handlers, which read one only from a known user and within the limit
    server = tornado.httpserver.HTTPServer(make_app(service, prefix), max_body_size=payload_limit_bytes(), xheaders=True)
    port = opts.port or free_port(opts.host)
    server.listen(port, opts.host)
    service.start()
    url = f"http://{opts.host}:{port}{prefix.rstrip('/')}"
    if opts.discovery:
        write_discovery(opts.discovery, url, own_token)
    if own_token and not opts.discovery:  # before the line that says it is ready: whoever reads that has the token
        print(f"admin token for {getpass.getuser()}: {own_token}", flush=True)
    print(f"qmio qpu service listening on {url} (db {db}, time scale {service.clock.scale}, "
          f"{service.timing.mode} timing)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    service.stop()
    if opts.discovery:
        opts.discovery.unlink(missing_ok=True)


def serve(opts: ServeOptions) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("qiskit").setLevel(logging.WARNING)  # its INFO is a line per transpiler pass
    # The HTTP loop and the QPU thread hand work to each other many times per job; Python's
    # default 5 ms GIL switch interval would add up to that much to every hand-off.
    sys.setswitchinterval(0.0005)
    asyncio.run(_serve(opts))
