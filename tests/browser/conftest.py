"""A real JupyterLab (with qmio_lab's extensions) and a real QPU service, driven by Chromium."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.services import local_service  # noqa: E402
from support.missing import missing  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _need_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    missing(f"{CHROMIUM} (apt-get install -y chromium; make test does this)")


# The QPU service and the lab are shared by the tests of one module, and each module gets its own:
# a module may stop the service (test_lab_panel.py does) or start the lab's emulator cluster
# (test_lab_commands.py does) without changing what another module's tests see.
@pytest.fixture(scope="module")
def qpu_service(tmp_path_factory):
    home = tmp_path_factory.mktemp("qmio-home")
    with local_service(home) as info:
        yield {**info, "home": home}
        _reap(int(info["pid"]))


def _reap(pid: int, timeout: float = 15.0) -> None:
    """Stop the service this process started (the launcher's child) and collect its exit status.

    Unreaped, it lingers as a zombie that ``stop_pid`` (signal 0) takes for alive for 15 s.
    """
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(0.05)
    except ChildProcessError:
        pass  # already collected, or not our child: stop_pid handles it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    """Hide the news toast; poll every second so the test sees changes quickly."""
    news = settings_dir / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    ours = settings_dir / "qmio-lab"
    ours.mkdir(parents=True)
    (ours / "plugin.jupyterlab-settings").write_text(json.dumps({"refreshInterval": 1}))


def start_lab(qpu_service: dict, root: Path, launcher: list[str] | None = None) -> tuple[subprocess.Popen, dict]:
    """``jupyter lab`` as a user runs it, sharing the QPU service through $QMIO_LAB_HOME;
    ``launcher`` runs it inside something (``srun ...``: the lab is then a SLURM job's)."""
    notebooks, settings = root / "notebooks", root / "settings"
    notebooks.mkdir()
    _write_settings(settings)
    port, token = _free_port(), secrets.token_hex(16)
    # the lab reaches the service as configured (URL + the user's token), kernels likewise
    env = {**os.environ, "QMIO_LAB_HOME": str(qpu_service["home"]),
           "QMIO_QPU_URL": qpu_service["url"], "QMIO_QPU_TOKEN": qpu_service["token"],
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
           # an emulator cluster (the lab's or a kernel's) gets one worker: the machine has 2 cores
           "DASK_QMIO__EMULATOR__LOCAL__N_WORKERS": "1"}
    env.pop("SLURM_JOB_ID", None)  # a lab outside SLURM, unless the launcher makes it a job's
    log = open(root / "lab.log", "wb")
    proc = subprocess.Popen(
        [*(launcher or []), sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
         "--LabApp.news_url=None", "--ServerApp.open_browser=False"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, (root / "lab.log").read_text()
        try:
            if requests.get(f"{url}/api/status", params={"token": token}, timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"JupyterLab did not start:\n{(root / 'lab.log').read_text()}"
        time.sleep(0.2)
    return proc, {"url": url, "token": token, "notebooks": notebooks, "log": root / "lab.log", "settings": settings}


def stop_lab(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def lab(qpu_service, tmp_path_factory):
    proc, info = start_lab(qpu_service, tmp_path_factory.mktemp("lab"))
    yield info
    stop_lab(proc)


@pytest.fixture(scope="session")
def browser():
    _need_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright Python package (pip install -e '.[test]')")

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"))
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


