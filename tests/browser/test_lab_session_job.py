"""The QMIO panel of a JupyterLab that runs as a SLURM job (``srun jupyter lab``, as a Hub
session started by batchspawner does): it shows the session's own job and, ten minutes before the
job's walltime, warns. The job is a real one of the real SLURM (tests/slurm/slurm.sh), in the qpu
partition with a nine-minute walltime, so the warning is due from the start."""
from __future__ import annotations

import re
import secrets
import subprocess

import pytest
from playwright.sync_api import expect

from conftest import ARTIFACTS, start_lab, stop_lab
from support.cli import wait_for
from support.slurm import diagnostics

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]


def _jobs_named(name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i"], capture_output=True, text=True, timeout=30)
    return out.stdout.split()


@pytest.fixture(scope="module")
def session_lab(slurm_conf, qpu_service, tmp_path_factory):
    name = f"qmio-browser-lab-{secrets.token_hex(3)}"
    launcher = ["srun", "--partition", "qpu", "--time", "00:09:00", "--mem", "1G", "--job-name", name]
    proc, info = start_lab(qpu_service, tmp_path_factory.mktemp("session-lab"), launcher)
    try:
        (job,) = wait_for(lambda: _jobs_named(name) or None, 30, f"no job {name}\n{diagnostics()}", interval=0.2)
        yield {**info, "job": job}
    finally:
        stop_lab(proc)
        subprocess.run(["scancel", "--name", name], timeout=30)
        wait_for(lambda: not _jobs_named(name), 60, f"job {name} outlived the lab\n{diagnostics()}", interval=0.3)


def test_panel_shows_the_sessions_slurm_job_and_warns_before_its_walltime(session_lab, page):
    page.goto(f"{session_lab['url']}/lab?token={session_lab['token']}")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    page.click('li[data-id="qmio-lab-panel"]')
    panel = page.locator("#qmio-lab-panel")
    job = panel.locator(".jp-qmio-session-job")
    expect(job).to_have_attribute("data-job-id", session_lab["job"], timeout=30_000)
    expect(job).to_contain_text(f"SLURM job {session_lab['job']} · qpu · running")
    expect(job).to_contain_text(re.compile(r"· [5-9] min left"))
    warning = panel.locator(".jp-qmio-session-warning")
    expect(warning).to_contain_text(f"SLURM job {session_lab['job']} reaches its walltime in")
    expect(warning).to_contain_text("Save your work now")
    # right above the emulator's section, which lists the emulator's worker jobs
    expect(panel.locator("section.jp-qmio-session + section.jp-qmio-emulator")).to_have_count(1)
    ARTIFACTS.mkdir(exist_ok=True)
    panel.screenshot(path=str(ARTIFACTS / "lab-panel-session-job.png"))
