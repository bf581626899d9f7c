"""A real JupyterHub (deploy/jupyterhub/jupyterhub_config.py) on loopback, for the Hub tests.

The Hub runs with the deployment's own configuration, plus a test-only admin service token the
tests use to create users, start and stop servers, and reach those servers' kernels. Settings
come from the environment, as at a site; each test module passes its own (e.g. the SLURM
profile's ``QMIO_HUB_SPAWNER=slurm``).
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests

from support.kernel_ws import run_in_new_kernel
from support.missing import missing

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "jupyterhub" / "jupyterhub_config.py"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_proxy() -> str:
    local = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    found = str(local) if local.exists() else shutil.which("configurable-http-proxy")
    if not found:
        missing("configurable-http-proxy (make test installs it with npm)")
    return found


@dataclass
class Hub:
    """A running Hub: its public URL, API, admin headers, state directory and process."""

    url: str
    state: Path
    proc: subprocess.Popen
    headers: dict[str, str] = field(default_factory=lambda: {"Authorization": f"token {ADMIN_TOKEN}"})

    @property
    def api(self) -> str:
        return f"{self.url}/hub/api"

    def log(self, tail: int = 5000) -> str:
        return (self.state / "hub.log").read_text(errors="replace")[-tail:]

    def user(self, name: str) -> dict:
        resp = requests.get(f"{self.api}/users/{name}", headers=self.headers, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM to the Hub's process group (the Hub stops its servers and services first)."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def start_hub(state: Path, extra_env: dict[str, str] | None = None, timeout: float = 90) -> Hub:
    """Start the deployment's Hub with state in ``state``; return once its QPU service answers."""
    port = free_port()
    wrapper = state / "test_config.py"
    wrapper.write_text(
        f"c = get_config()\nload_subconfig({str(CONFIG)!r})\n"
        f"c.JupyterHub.services.append({{'name': 'test-admin', 'api_token': {ADMIN_TOKEN!r}}})\n"
        "c.JupyterHub.load_roles.append({'name': 'test-admin', 'services': ['test-admin'], "
        "'scopes': ['admin:users', 'admin:servers', 'access:servers', 'list:users', 'read:users']})\n"
    )
    env = {**os.environ, "QMIO_HUB_PORT": str(port), "QMIO_HUB_API_PORT": str(free_port()),
           "QMIO_HUB_PROXY_API_PORT": str(free_port()), "QMIO_QPU_PORT": str(free_port()),
           "QMIO_HUB_STATE": str(state), "QMIO_HUB_PROXY": find_proxy(), "QMIO_HUB_ADMINS": "ops",
           "QMIO_HUB_DEMO": "1", **(extra_env or {})}
    for var in ("QMIO_QPU_URL", "QMIO_QPU_TOKEN", "QMIO_LAB_HOME", "SLURM_JOB_ID"):
        env.pop(var, None)
    with open(state / "hub.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(wrapper)], cwd=state,
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    hub = Hub(url=f"http://127.0.0.1:{port}", state=state, proc=proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the Hub exited with {proc.returncode}:\n{hub.log()}")
        try:
            if requests.get(f"{hub.url}/services/qmio-qpu/metrics", timeout=2).status_code == 200:
                return hub
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    hub.stop()
    raise AssertionError(f"hub or QPU service did not come up in {timeout:.0f} s:\n{hub.log()}")


def request_server(hub: Hub, user: str, options: dict | None = None) -> requests.Response:
    """Ask the Hub to start ``user``'s server (creating the user), with ``options`` as user_options."""
    requests.post(f"{hub.api}/users/{user}", headers=hub.headers, timeout=30)
    return requests.post(f"{hub.api}/users/{user}/server", headers=hub.headers, json=options or {}, timeout=60)


def start_server(hub: Hub, user: str, options: dict | None = None, timeout: float = 120) -> str:
    """The user's server URL, starting the server unless an earlier test left it running."""
    requests.post(f"{hub.api}/users/{user}", headers=hub.headers, timeout=30)
    if not hub.user(user).get("servers", {}).get("", {}).get("ready"):
        resp = request_server(hub, user, options)
        assert resp.status_code in (201, 202), resp.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = hub.user(user).get("servers", {}).get("", {})
        if server.get("ready"):
            return f"{hub.url}/user/{user}"
        if not server:  # the spawn failed and was cleaned up
            break
        time.sleep(0.3)
    raise AssertionError(f"{user}'s server did not start:\n{hub.log()}")


def stop_server(hub: Hub, user: str, timeout: float = 60) -> None:
    """Stop ``user``'s server and wait until the Hub has no server for them."""
    resp = requests.delete(f"{hub.api}/users/{user}/server", headers=hub.headers, timeout=60)
    assert resp.status_code in (202, 204), resp.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not hub.user(user).get("servers"):
            return
        time.sleep(0.3)
    raise AssertionError(f"{user}'s server did not stop:\n{hub.log()}")


def run_as(hub: Hub, user: str, code: str, timeout: float = 180) -> dict:
    """Run ``code`` in a new kernel of ``user``'s server; its last stdout line, as JSON."""
    stdout = run_in_new_kernel(start_server(hub, user), ADMIN_TOKEN, code, timeout=timeout)
    return json.loads(stdout.strip().splitlines()[-1])


def log_in(hub: Hub, user: str, password: str = "any password (the demo's dummy authenticator)") -> requests.Session:
    """A browser-like session that logged in through the Hub's login form."""
    browser = requests.Session()
    page = browser.get(f"{hub.url}/hub/login", timeout=30)
    page.raise_for_status()
    done = browser.post(f"{hub.url}/hub/login", timeout=60, allow_redirects=False,
                        data={"username": user, "password": password, "_xsrf": _xsrf(page.text)})
    assert done.status_code == 302, f"login of {user} answered {done.status_code}: {done.text[:500]}"
    return browser


def spawn_from_form(hub: Hub, browser: requests.Session, fields: dict[str, str]) -> None:
    """Start the logged-in user's server from the Hub's spawn page, its form filled with ``fields``."""
    form = browser.get(f"{hub.url}/hub/spawn", timeout=60)
    form.raise_for_status()
    for name in fields:
        assert f'name="{name}"' in form.text, f"the spawn page has no field {name!r}:\n{form.text[:2000]}"
    action = re.search(r'<form[^>]*\saction="([^"]+)"', form.text, re.S)  # it carries the _xsrf token
    assert action, f"no form on the spawn page:\n{form.text[:2000]}"
    sent = browser.post(urljoin(form.url, html.unescape(action.group(1))), data=fields, timeout=60,
                        allow_redirects=False)
    assert sent.status_code == 302, f"spawn form answered {sent.status_code}: {sent.text[:500]}"


def _xsrf(page: str) -> str:
    found = re.search(r'name="_xsrf" value="([^"]+)"', page)
    assert found, f"no _xsrf field in the Hub's page:\n{page[:2000]}"
    return found.group(1)
