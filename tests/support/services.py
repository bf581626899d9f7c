"""Real QPU services for the tests (no fakes: real HTTP, real SQLite file).

``ServiceProcess`` runs a private ``qmio qpu serve`` with its own users, database and settings;
``local_service`` starts the local service the way kernels and the lab server find it
(``$QMIO_LAB_HOME/qpu/service.json``). Both are stopped by pid, because the local service
outlives its starter by design.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

USERS = {
    "alice": {"token": "alice-token-0123456789", "role": "user"},
    "bob": {"token": "bob-token-0123456789abc", "role": "user"},
    "root": {"token": "admin-token-0123456789", "role": "admin"},
}
# Users with no QPU time behind them: fair share orders users by the QPU seconds they used
# recently, and that carries over between the tests sharing a service, so a test about who goes
# next takes a pair of its own.
SPARE_USERS = ("carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "kim", "luis")
USERS.update({name: {"token": f"{name}-token-0123456789abcdef", "role": "user"} for name in SPARE_USERS})


class ServiceProcess:
    def __init__(self, directory: Path, *extra_args: str, users: dict | None = None,
                 env: dict[str, str] | None = None, memory_limit: int | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = self.dir / "queue.sqlite"
        self.users_file = self.dir / "users.json"  # JSON is valid YAML
        self.users = users or USERS
        self.users_file.write_text(json.dumps({"users": self.users}))
        self.discovery = self.dir / "service.json"
        self.extra = list(extra_args)
        self.env = dict(env or {})
        self.memory_limit = memory_limit  # RLIMIT_DATA of the service (and so its children): for attacks
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> ServiceProcess:
        self.discovery.unlink(missing_ok=True)
        log = open(self.dir / "service.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qmio_lab.cli", "qpu", "serve", "--port", "0", "--db", str(self.db),
             "--users", str(self.users_file), "--discovery", str(self.discovery), *self.extra],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            preexec_fn=self._limit if self.memory_limit else None,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            if self.discovery.exists():
                self.url = json.loads(self.discovery.read_text())["url"]
                requests.get(f"{self.url}/metrics", timeout=5).raise_for_status()
                return self
            time.sleep(0.05)
        raise AssertionError(f"service did not start:\n{self.log()}")

    def _limit(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (self.memory_limit, self.memory_limit))

    def log(self) -> str:
        path = self.dir / "service.log"
        return path.read_text() if path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def client(self, user: str):
        from qmio_lab.qpu import QPUClient

        return QPUClient(self.url, self.users[user]["token"])

    def http(self, method: str, path: str, user: str | None = "alice", **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if user:
            headers["Authorization"] = f"Bearer {self.users[user]['token']}"
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kw)


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM, wait for the process to go, SIGKILL if it will not."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reap it, or it stays a zombie
                return
        except ChildProcessError:  # not our child: its parent reaps it
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def stop_local_service(home: Path) -> None:
    """Stop the QPU service that ``default_client()`` started under ``home`` (its discovery pid)."""
    disc = home / "qpu" / "service.json"
    if disc.exists():
        stop_pid(int(json.loads(disc.read_text())["pid"]))


@contextmanager
def local_service(home: Path) -> Iterator[dict]:
    """Start the local service with ``QMIO_LAB_HOME=home``; yields its discovery record."""
    from qmio_lab.qpu import launcher

    old = os.environ.get("QMIO_LAB_HOME")
    os.environ["QMIO_LAB_HOME"] = str(home)
    for var in ("QMIO_QPU_URL", "QMIO_QPU_TOKEN"):
        os.environ.pop(var, None)
    launcher.reset_default_client()
    info: dict = {}
    try:
        launcher.default_client()
        info = json.loads(launcher.discovery_file().read_text())
        yield info
    finally:
        launcher.reset_default_client()
        if info.get("pid"):
            stop_pid(int(info["pid"]))
        if old is None:
            os.environ.pop("QMIO_LAB_HOME", None)
        else:
            os.environ["QMIO_LAB_HOME"] = old
