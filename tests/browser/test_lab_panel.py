"""The QMIO panel in a real JupyterLab, in headless Chromium, against the real QPU service.

A notebook cell in a kernel started by the lab submits a job with
``qmio_lab.get_backend("qpu").run(...)``; the panel lists it and cancels it. Maintenance mode
(set with the service's admin token) holds the queue so the job stays queued long enough.
"""
from __future__ import annotations

import re

import nbformat
import pytest
import requests
from playwright.sync_api import expect

from conftest import ARTIFACTS
from support.services import stop_pid

pytestmark = pytest.mark.timeout(180)

SUBMIT_CELL = """\
import qmio_lab
from qiskit import QuantumCircuit
qc = QuantumCircuit(2)
qc.h(0); qc.cx(0, 1); qc.measure_all()
job = qmio_lab.get_backend("qpu").run(qc, shots=100, name="browser-bell")
print("submitted", job.job_id())
"""

LONG_CELL = """\
from qiskit.circuit.random import random_circuit
long = qmio_lab.get_backend("qpu").run([random_circuit(8, 12, measure=True, seed=7)] * 16, shots=4000,
                                       name="browser-long")
print("long", long.job_id())
"""


def _admin(service: dict, method: str, path: str, **kw) -> dict:
    resp = requests.request(method, f"{service['url']}{path}", timeout=30,
                            headers={"Authorization": f"Bearer {service['token']}"}, **kw)
    resp.raise_for_status()
    return resp.json()


def _maintenance(service: dict, on: bool) -> None:
    _admin(service, "PUT", "/api/v1/status", json={"maintenance": on})


def test_panel_shows_live_state_and_cancels_a_notebook_job(lab, qpu_service, page):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SUBMIT_CELL), nbformat.v4.new_code_cell(LONG_CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, lab["notebooks"] / "submit.ipynb")
    try:
        _run(lab, qpu_service, page)
    finally:
        try:
            _maintenance(qpu_service, False)
        except requests.ConnectionError:
            pass  # the test stopped it


def _run(lab: dict, service: dict, page) -> None:
    page.goto(f"{lab['url']}/lab/tree/submit.ipynb?token={lab['token']}")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)

    # the sidebar panel appears and shows the live state of the service
    page.click('li[data-id="qmio-lab-panel"]')
    panel = page.locator("#qmio-lab-panel")
    expect(panel.locator(".jp-qmio-qpu-state")).to_have_attribute("data-state", "online", timeout=30_000)
    cal_id = _admin(service, "GET", "/api/v1/status")["calibration"]["id"]
    expect(panel.locator(".jp-qmio-facts")).to_contain_text(cal_id)
    expect(panel.locator(".jp-qmio-chip .jp-qmio-qubit")).to_have_count(32, timeout=30_000)
    emulator = panel.locator(".jp-qmio-emulator-state")
    expect(emulator).to_have_attribute("data-state", "not started", timeout=15_000)
    expect(emulator).to_contain_text("local cluster")
    status_item = page.locator(".jp-qmio-status")
    expect(status_item).to_contain_text("QPU online · 0 queued · calibrated", timeout=15_000)

    # the service changes state: panel and status bar follow
    _maintenance(service, True)
    expect(panel.locator(".jp-qmio-qpu-state")).to_have_attribute("data-state", "maintenance", timeout=15_000)
    expect(status_item).to_contain_text("QPU maintenance · 0 queued")

    # a job submitted from a notebook cell in a kernel the lab started
    expect(page.locator(".jp-StatusBar-Widget", has_text="(ipykernel) | Idle").first).to_be_visible(timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output", has_text="submitted")
    expect(output).to_be_visible(timeout=90_000)
    job_id = output.inner_text().split()[-1]
    assert _admin(service, "GET", f"/api/v1/jobs/{job_id}")["state"] == "queued"

    job_item = panel.locator(f'.jp-qmio-job[data-job-id="{job_id}"]')
    expect(job_item).to_have_attribute("data-state", "queued", timeout=15_000)
    # a compact table: name, then target, state, QPU seconds (expected while it waits) and age
    expect(panel.locator(".jp-qmio-job-header span")).to_have_text(["target", "state", "QPU s", "age"])
    expect(job_item.locator(".jp-qmio-job-name")).to_have_text("browser-bell")
    expect(job_item.locator(".jp-qmio-job-target")).to_have_text("qpu")
    expect(job_item.locator(".jp-qmio-job-state")).to_have_text(re.compile(r"^queued #1( · ~\d+ (s|min|h|d))?$"))
    expected = _admin(service, "GET", f"/api/v1/jobs/{job_id}")["estimated_qpu_seconds"]
    expect(job_item.locator(".jp-qmio-job-qpu")).to_have_text(f"~{expected:.2f} s")
    expect(job_item.locator(".jp-qmio-job-age")).to_have_text(re.compile(r"^\d+ (s|min)$"))
    for column in ("target", "state", "qpu", "age"):  # a table: each header stands over its column
        head = panel.locator(f".jp-qmio-job-header .jp-qmio-job-{column}").bounding_box()
        cell = job_item.locator(f".jp-qmio-job-{column}").bounding_box()
        assert abs(head["x"] - cell["x"]) < 1 and abs(head["width"] - cell["width"]) < 1, (column, head, cell)
    expect(status_item).to_contain_text("QPU maintenance · 1 queued", timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "qmio-lab-panel.png"))

    # cancelled from the panel
    job_item.locator("button.jp-qmio-cancel").click()
    expect(job_item).to_have_attribute("data-state", "cancelled", timeout=15_000)
    expect(job_item.locator(".jp-qmio-job-qpu")).to_have_text("—")  # it never held the QPU
    assert _admin(service, "GET", f"/api/v1/jobs/{job_id}")["state"] == "cancelled"
    expect(status_item).to_contain_text("0 queued", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "qmio-lab-panel-cancelled.png"))

    # a long job (the next cell), held in the queue first: its expected QPU seconds (sixteen
    # 8-qubit circuits: a figure the two decimals show, unlike a Bell state's under instant timing)
    page.locator(".jp-Notebook .jp-Cell").nth(1).click()
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output", has_text="long ")
    expect(output).to_be_visible(timeout=90_000)
    long_id = output.inner_text().split()[-1]
    long_item = panel.locator(f'.jp-qmio-job[data-job-id="{long_id}"]')
    expect(long_item).to_have_attribute("data-state", "queued", timeout=15_000)
    expected = _admin(service, "GET", f"/api/v1/jobs/{long_id}")["estimated_qpu_seconds"]
    assert expected >= 0.01, expected
    expect(long_item.locator(".jp-qmio-job-qpu")).to_have_text(f"~{expected:.2f} s")
    expect(long_item.locator(".jp-qmio-job-qpu")).to_have_attribute("title", re.compile("expected"))
    # released: the panel shows how many of its circuits are done
    _maintenance(service, False)
    expect(long_item).to_contain_text(re.compile(r"running · ([1-9]|1[0-5])/16"), timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "qmio-lab-panel-progress.png"))
    expect(long_item).to_have_attribute("data-state", "done", timeout=120_000)
    held = _admin(service, "GET", f"/api/v1/jobs/{long_id}")["qpu_seconds"]  # what its account is charged
    assert held >= 0.01, held
    expect(long_item.locator(".jp-qmio-job-qpu")).to_have_text(f"{held:.2f} s", timeout=15_000)
    expect(long_item.locator(".jp-qmio-job-qpu")).to_have_attribute("title", re.compile("held"))

    # a command from the palette: the calibration dashboard
    page.locator("#jp-main-dock-panel").click()
    page.keyboard.press("Control+Shift+C")
    page.keyboard.type("Open calibration dashboard")
    page.keyboard.press("Enter")
    dashboard = page.locator(".jp-qmio-dashboard")
    expect(dashboard.locator("svg.jp-qmio-chip")).to_have_count(4, timeout=20_000)
    expect(dashboard).to_contain_text(cal_id)

    # the service goes away: a clear message, not stale figures
    stop_pid(int(service["pid"]))
    expect(panel.locator(".jp-qmio-message")).to_contain_text("QPU service unreachable", timeout=20_000)
    expect(panel.locator(".jp-qmio-message")).to_contain_text(service["url"])
    expect(status_item).to_have_text("QPU unreachable")
    expect(panel.locator(".jp-qmio-qpu-state")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "qmio-lab-panel-unreachable.png"))
