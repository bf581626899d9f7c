"""Small helpers for tests that run the real ``qmio`` command and real servers as processes.

Every process gets its own ``HOME`` and ``QMIO_LAB_HOME`` (dask reads ``~/.config/dask`` at
import, Jupyter writes runtime files under ``~``), so nothing leaks between tests or from the
developer's own configuration.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import requests

import qmio_lab
from support.missing import missing
from support.services import stop_pid

QMIO = [sys.executable, "-m", "qmio_lab.cli"]
T = TypeVar("T")

#: A Tuesday noon: 19 h before the next 07:00 UTC window, so nothing a test does meets one.
QUIET_TIME = "2026-11-24T12:00:00+00:00"


def isolated_env(home: Path, *, drop_qmio_settings: bool = False, **extra: str) -> dict[str, str]:
    """The current environment with ``HOME`` and ``QMIO_LAB_HOME`` under ``home``.

    The QPU service a kernel would be told about (``QMIO_QPU_URL``/``TOKEN``) and a dask config
    path are removed; with ``drop_qmio_settings`` every ``DASK_QMIO__*`` variable too, for tests
    that must control the whole configuration.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("QMIO_QPU_URL", "QMIO_QPU_TOKEN", "DASK_CONFIG")
           and not (drop_qmio_settings and k.startswith("DASK_QMIO__"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), QMIO_LAB_HOME=str(home / "lab"), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_qmio(*args: str, env: dict[str, str], timeout: float = 180, cwd: Path | None = None
             ) -> subprocess.CompletedProcess:
    """``qmio ARGS`` to completion, output captured as text."""
    return subprocess.run([*QMIO, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or env["HOME"])


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll until ``predicate()`` is truthy (and return it), or fail saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def get_json(url: str, **kw: Any) -> Any:
    response = requests.get(url, timeout=30, **kw)
    response.raise_for_status()
    return response.json()


class LoggedProcess:
    """A long-running command with stdout and stderr in one log file, in a session of its own."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        self.log_path = log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd or env.get("HOME"), stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, needle: str, timeout: float) -> str:
        """The first log line containing ``needle``; fails early if the process has exited."""
        def found() -> str | None:
            for line in self.log().splitlines():
                if needle in line:
                    return line
            assert self.proc.poll() is None, f"exited with {self.proc.returncode} before {needle!r}:\n{self.log()}"
            return None

        return wait_for(found, timeout, f"no {needle!r} in the log:\n{self.log()}")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait; SIGKILL the whole session if it will not go."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_session()
            raise

    def kill_session(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=10)
        self._log.close()


class JupyterServer(LoggedProcess):
    """``jupyter server`` (with the qmio_lab server extension, enabled at install) on a free port."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.token = os.urandom(16).hex()
        root = home / "notebooks"
        root.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}"]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        super().__init__(argv, env, home / "jupyter-server.log")
        self.url = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"token {self.token}"}

    def wait_ready(self, timeout: float = 60) -> JupyterServer:
        def ready() -> bool:
            assert self.proc.poll() is None, f"jupyter server exited:\n{self.log()}"
            try:
                return requests.get(f"{self.url}/api/status", headers=self.headers, timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, timeout, f"jupyter server did not answer:\n{self.log()}", interval=0.2)
        return self

    def qmio(self, *parts: str) -> Any:
        response = requests.get("/".join([self.url, "qmio", *parts]), headers=self.headers, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()


def discovery(home: Path) -> dict:
    """The local QPU service's discovery record under ``$QMIO_LAB_HOME`` (``home/lab``)."""
    return json.loads((home / "lab" / "qpu" / "service.json").read_text())


def serve_qpu(env: dict[str, str], *args: str, name: str = "qpu") -> tuple[LoggedProcess, str, str | None]:
    """``qmio qpu serve --discovery ... ARGS`` as its own process: (process, url, token it wrote)."""
    home = Path(env["HOME"])
    disc = home / f"{name}-service.json"
    disc.unlink(missing_ok=True)
    proc = LoggedProcess([*QMIO, "qpu", "serve", "--discovery", str(disc), *args], env, home / f"{name}.log")

    def found() -> dict | None:
        assert proc.proc.poll() is None, f"qmio qpu serve exited with {proc.proc.returncode}:\n{proc.log()}"
        return json.loads(disc.read_text()) if disc.exists() else None

    info = wait_for(found, 60, f"qmio qpu serve did not start:\n{proc.log()}")
    return proc, info["url"], info["token"]


# ---- qmio lab ---------------------------------------------------------------------------------
def descendants(pid: int) -> dict[int, str]:
    return {p.pid: " ".join(p.cmdline()) for p in psutil.Process(pid).children(recursive=True)}


@pytest.fixture
def lab_env(tmp_path):
    if importlib.util.find_spec("jupyterlab") is None:
        missing("JupyterLab (pip install -e '.[test]', as make test does)")
    if not (Path(qmio_lab.__file__).parent / "labextension" / "package.json").exists():
        missing("the built qmio-lab JupyterLab extension (make labextension, or pip install . without "
                "SKIP_JUPYTER_BUILDER)")
    env = isolated_env(tmp_path / "home")
    yield env
    # the QPU service `qmio lab` started outlives it by design (kernels share it): stop it here
    disc = Path(env["QMIO_LAB_HOME"]) / "qpu" / "service.json"
    if disc.exists():
        stop_pid(int(json.loads(disc.read_text())["pid"]))


def start_lab(env: dict[str, str], *args: str) -> tuple[LoggedProcess, str, str]:
    port = free_port()
    home = Path(env["HOME"])
    lab = LoggedProcess([*QMIO, "lab", "--port", str(port), *args], env, home / "lab.log")
    line = lab.wait_log("JupyterLab: http", timeout=120)
    url, token = re.search(r"JupyterLab: (http://127\.0\.0\.1:\d+)/lab\?token=([0-9a-f]+)", line).groups()
    assert url == f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert lab.proc.poll() is None, lab.log()
        try:
            return requests.get(f"{url}/api/status", params={"token": token}, timeout=2).ok
        except requests.ConnectionError:
            return False

    wait_for(answers, 90, f"JupyterLab did not answer on {url}:\n{lab.log()}", interval=0.2)
    return lab, url, token
