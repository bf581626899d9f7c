"""The lab extension's commands, settings and status-bar item, used as a user would in Chromium.

README ("In JupyterLab: the QMIO panel"): *Run this .qasm file on the QPU* / *on the emulator*
(palette, category QMIO, and context menus), *Insert %%qmio cell*, the settings `defaultTarget`,
`defaultShots` and `chipMetric` (Settings → QMIO), and the status bar item ("click it to open the
panel"). Every test opens its own files in a fresh page with a reset workspace; the settings a
test needs are written through the lab's settings API before the page loads (what the settings
editor writes) or changed in the settings editor itself, and put back afterwards.
"""
from __future__ import annotations

import json
import re
import time

import nbformat
import pytest
import requests

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture reports it through tests/support/missing.py
    expect = None

from support.circuits import BELL_QASM2, BELL_QASM3

pytestmark = pytest.mark.timeout(240)

PLUGIN = "qmio-lab:plugin"
BASE_SETTINGS = {"refreshInterval": 1}  # what the lab fixture starts with
METRIC_LABELS = {"t1": "T1 (µs)", "t2": "T2 echo (µs)", "readout_error": "Readout error",
                 "sx_error": "SX error"}
TIME_METRICS = ("t1", "t2")  # in seconds from the lab, shown in µs; higher is better
KERNEL_IDLE = "(ipykernel) | Idle"
# the cell "Insert %%qmio cell" writes (commands.ts EXAMPLE_QASM), after its options line
EXAMPLE_QASM = BELL_QASM3.strip()


# ---- fixtures and helpers ------------------------------------------------------------------------
def _lab_request(lab: dict, method: str, path: str, **kw) -> requests.Response:
    resp = requests.request(method, f"{lab['url']}{path}", timeout=30,
                            headers={"Authorization": f"token {lab['token']}"}, **kw)
    resp.raise_for_status()
    return resp


def _service(service: dict, path: str) -> dict:
    resp = requests.get(f"{service['url']}{path}", timeout=60,
                        headers={"Authorization": f"Bearer {service['token']}"})
    resp.raise_for_status()
    return resp.json()


@pytest.fixture
def qmio_settings(lab):
    """Set the user's QMIO settings (through the lab's settings API, as the settings editor
    does); the page must load after the call. Put back to the lab's start settings afterwards."""
    def put(**values) -> None:
        _lab_request(lab, "PUT", f"/lab/api/settings/{PLUGIN}",
                     data=json.dumps({"raw": json.dumps({**BASE_SETTINGS, **values})}))

    put()
    yield put
    put()


@pytest.fixture
def workdir(lab, request):
    """A folder of the lab's root for this test's files; its kernels are shut down afterwards."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")
    folder = lab["notebooks"] / name
    folder.mkdir()
    yield folder
    for session in _lab_request(lab, "GET", "/api/sessions").json():
        if session["path"].startswith(f"{name}/"):
            _lab_request(lab, "DELETE", f"/api/sessions/{session['id']}")


def _goto(page, lab: dict, path: str = "") -> None:
    """Open the lab on ``path`` (a file or folder under its root) with a fresh workspace."""
    target = f"/lab/tree/{path}" if path else "/lab"
    page.goto(f"{lab['url']}{target}?reset&token={lab['token']}")
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    # the extension is active and polling before anything is asked of it
    expect(page.locator(".jp-qmio-status")).to_contain_text("QPU online", timeout=30_000)


def _palette(page, label: str) -> None:
    """Run the command labelled exactly ``label`` from the command palette (it must be enabled)."""
    page.keyboard.press("Control+Shift+C")
    palette = page.locator("#modal-command-palette")
    expect(palette).to_be_visible()
    page.keyboard.type(label)
    item = palette.locator(".lm-CommandPalette-item").filter(
        has=page.locator(".lm-CommandPalette-itemLabel", has_text=re.compile(f"^{re.escape(label)}$")))
    expect(item).to_have_count(1, timeout=15_000)
    expect(item).not_to_have_class(re.compile(r"\blm-mod-disabled\b"))
    item.click()


def _context_menu(page, target, label: str) -> None:
    target.click(button="right")
    entry = page.locator(".lm-Menu .lm-Menu-item").filter(
        has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(label)}$")))
    expect(entry).to_have_count(1)
    expect(entry).not_to_have_class(re.compile(r"\blm-mod-disabled\b"))
    entry.click()


def _write_qasm(folder, name: str, text: str = BELL_QASM2) -> str:
    (folder / name).write_text(text)
    return f"{folder.name}/{name}"


def _queued_job_id(page, path: str) -> str:
    toast = page.locator(".Toastify__toast", has_text=f"{path} queued on the QPU as job")
    expect(toast).to_be_visible(timeout=30_000)
    return re.search(r"as job (\S+)", toast.inner_text()).group(1)


def _assert_noisy_bell(counts: dict[str, int], shots: int) -> None:
    """A Bell pair from the simulated (noisy) QPU: about half 00, half 11, little else."""
    assert sum(counts.values()) == shots, counts
    assert min(counts.get("00", 0), counts.get("11", 0)) >= 0.3 * shots, counts
    assert counts.get("00", 0) + counts.get("11", 0) >= 0.8 * shots, counts


def _check_qpu_job(service: dict, job_id: str, path: str, shots: int) -> None:
    """The job the command queued: this file, these shots, Bell counts from the simulated QPU."""
    deadline = time.monotonic() + 120
    job = _service(service, f"/api/v1/jobs/{job_id}")
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        job = _service(service, f"/api/v1/jobs/{job_id}?wait=30")  # returns when the state changes
    assert (job["state"], job["name"], job["shots"], job["num_circuits"]) == ("done", path, shots, 1), job
    _assert_noisy_bell(_service(service, f"/api/v1/jobs/{job_id}/result")["counts"][0], shots)


def _emulator_counts(page, path: str) -> dict[str, int]:
    """The counts dialog of "Run this .qasm file on the emulator" (closed after reading)."""
    dialog = page.locator(".jp-Dialog", has_text=f"Emulator counts: {path}")
    expect(dialog).to_be_visible(timeout=120_000)
    rows = dialog.locator("table.jp-qmio-table tr")
    counts = {r.locator("td").nth(0).inner_text(): int(r.locator("td").nth(1).inner_text())
              for r in rows.all()}
    dialog.get_by_role("button", name="Ok").click()
    expect(dialog).to_have_count(0)
    return counts


def _assert_noiseless_bell(counts: dict[str, int], shots: int) -> None:
    assert set(counts) <= {"00", "11"} and len(counts) == 2, counts
    assert sum(counts.values()) == shots, counts


def _panel_job(page, job_id: str):
    return page.locator(f'#qmio-lab-panel .jp-qmio-job[data-job-id="{job_id}"]')


# ---- Run this .qasm file ---------------------------------------------------------------------------
def test_run_open_qasm_file_on_the_qpu_from_the_palette(lab, qpu_service, qmio_settings, workdir, page):
    """The open .qasm file goes to the QPU with `defaultShots`; the job shows in the panel."""
    qmio_settings(defaultShots=250)
    path = _write_qasm(workdir, "bell.qasm")
    _goto(page, lab, path)
    editor = page.locator(".jp-FileEditor .cm-content")
    expect(editor).to_contain_text("OPENQASM 2.0;")
    editor.click()
    _palette(page, "Run this .qasm file on the QPU")
    job_id = _queued_job_id(page, path)

    # "Show queue" on the notification reveals the panel, where the job is listed and finishes
    expect(page.locator("#qmio-lab-panel")).to_be_hidden()
    page.locator(".Toastify__toast", has_text=job_id).get_by_role("button", name="Show queue").click()
    expect(page.locator("#qmio-lab-panel")).to_be_visible()
    item = _panel_job(page, job_id)
    expect(item.locator(".jp-qmio-job-name")).to_have_text(path, timeout=15_000)
    expect(item).to_have_attribute("data-state", "done", timeout=60_000)
    expect(item).to_have_attribute("title", f"{job_id} · 1 circuit(s) × 250 shots")
    _check_qpu_job(qpu_service, job_id, path, 250)


def test_run_edited_qasm_file_on_the_qpu_from_the_editor_menu(lab, qpu_service, qmio_settings, workdir, page):
    """The editor's context menu runs what the editor shows, unsaved edits included."""
    path = _write_qasm(workdir, "edited.qasm", BELL_QASM2.replace("h q[0];\n", ""))  # |00> only
    _goto(page, lab, path)
    editor = page.locator(".jp-FileEditor .cm-content")
    expect(editor).to_contain_text("cx q[0], q[1];")
    editor.locator(".cm-line", has_text="cx q[0], q[1];").click()
    page.keyboard.press("Home")
    page.keyboard.type("h q[0];\n")  # the Bell pair again, not saved
    expect(page.locator(".lm-TabBar-tab.jp-mod-dirty", has_text="edited.qasm")).to_have_count(1)
    _context_menu(page, editor, "Run this .qasm file on the QPU")
    job_id = _queued_job_id(page, path)
    _check_qpu_job(qpu_service, job_id, path, 1000)  # defaultShots' default


def test_run_qasm_file_on_the_emulator_from_the_file_browser(lab, qmio_settings, workdir, page):
    """Right-click a .qasm file (not open anywhere): counts in a dialog; the emulator cluster runs."""
    qmio_settings(defaultShots=321)
    path = _write_qasm(workdir, "bell3.qasm", BELL_QASM3)
    _goto(page, lab, workdir.name)
    entry = page.locator('.jp-DirListing-item[data-file-type="openqasm"]', has_text="bell3.qasm")
    _context_menu(page, entry, "Run this .qasm file on the emulator")
    _assert_noiseless_bell(_emulator_counts(page, path), 321)
    # the panel's emulator section: the cluster the command made exists now
    page.click('li[data-id="qmio-lab-panel"]')
    emulator = page.locator("#qmio-lab-panel .jp-qmio-emulator-state")
    expect(emulator).to_have_attribute("data-state", "running", timeout=30_000)
    expect(emulator).to_have_text("local cluster · running · 1 worker(s)")


def test_run_qasm_file_selected_in_the_file_browser_from_the_palette(lab, qpu_service, qmio_settings, workdir,
                                                                     page):
    """The palette enables the command for a .qasm file selected in the file browser: it runs that file."""
    qmio_settings(defaultShots=111)
    path = _write_qasm(workdir, "selected.qasm")
    _goto(page, lab, workdir.name)
    page.locator(".jp-DirListing-item", has_text="selected.qasm").click()
    expect(page.locator(".jp-DirListing-item.jp-mod-selected")).to_have_text(re.compile("selected.qasm"))
    _palette(page, "Run this .qasm file on the QPU")
    job_id = _queued_job_id(page, path)
    _check_qpu_job(qpu_service, job_id, path, 111)


def test_run_command_runs_the_open_file_not_one_right_clicked_before(lab, qpu_service, qmio_settings, workdir,
                                                                     page):
    """A context menu opened (and dismissed) on another file must not redirect a later palette run."""
    other = _write_qasm(workdir, "other.qasm")
    path = _write_qasm(workdir, "open.qasm")
    _goto(page, lab, path)
    editor = page.locator(".jp-FileEditor .cm-content")
    expect(editor).to_contain_text("OPENQASM 2.0;")
    # a look at the other file's menu, then back to the editor
    page.locator(".jp-DirListing-item", has_text="other.qasm").click(button="right")
    expect(page.locator(".lm-Menu")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator(".lm-Menu")).to_have_count(0)
    expect(page.locator(".jp-DirListing-item.jp-mod-selected")).to_have_text(re.compile("other.qasm"))
    editor.click()
    expect(page.locator(".lm-TabBar-tab.lm-mod-current", has_text="open.qasm")).to_be_visible()
    _palette(page, "Run this .qasm file on the QPU")
    job_id = _queued_job_id(page, path)
    _check_qpu_job(qpu_service, job_id, path, 1000)
    assert other not in [j["name"] for j in _service(qpu_service, "/api/v1/jobs?limit=100")["jobs"]]


@pytest.mark.parametrize("target", ["qpu", "emulator"])
def test_run_qasm_file_on_the_default_target(lab, qpu_service, qmio_settings, workdir, page, target):
    """"Run this .qasm file (<defaultTarget>)" runs where `defaultTarget` says, with `defaultShots`."""
    qmio_settings(defaultTarget=target, defaultShots=123)
    path = _write_qasm(workdir, "default.qasm")
    _goto(page, lab, path)
    editor = page.locator(".jp-FileEditor .cm-content")
    expect(editor).to_contain_text("OPENQASM 2.0;")
    editor.click()
    _palette(page, f"Run this .qasm file ({target})")
    if target == "qpu":
        _check_qpu_job(qpu_service, _queued_job_id(page, path), path, 123)
    else:
        _assert_noiseless_bell(_emulator_counts(page, path), 123)


def _settings_field(page, key: str):
    """A QMIO field of the settings editor (Settings → Settings Editor), opened if need be."""
    field = page.locator(f'[id="jp-SettingsEditor-{PLUGIN}_{key}"]')
    if not field.is_visible():
        page.keyboard.press("Control+Comma")
    expect(field).to_be_visible(timeout=30_000)
    return field


def test_default_target_and_shots_changed_in_the_settings_editor_apply_at_once(lab, qmio_settings, workdir, page):
    """No reload: the next run after a change in the settings editor follows it."""
    path = _write_qasm(workdir, "live.qasm")
    _goto(page, lab, path)
    expect(page.locator(".jp-FileEditor .cm-content")).to_contain_text("OPENQASM 2.0;")
    _settings_field(page, "defaultShots").fill("77")
    _settings_field(page, "defaultTarget").select_option(label="emulator")
    page.locator(".lm-TabBar-tab", has_text="live.qasm").click()
    page.locator(".jp-FileEditor .cm-content").click()
    _palette(page, "Run this .qasm file (emulator)")
    _assert_noiseless_bell(_emulator_counts(page, path), 77)
    saved = _lab_request(lab, "GET", f"/lab/api/settings/{PLUGIN}").json()["settings"]
    assert (saved.get("defaultTarget"), saved.get("defaultShots")) == ("emulator", 77), saved


# ---- Insert %%qmio cell ----------------------------------------------------------------------------
def _notebook(folder, name: str, sources: list[str]) -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, folder / name)
    return f"{folder.name}/{name}"


def _cell_sources(page) -> list[str]:
    return page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor .cm-content").evaluate_all(
        "nodes => nodes.map(n => n.cmView ? n.cmView.view.state.doc.toString() : "
        "[...n.querySelectorAll('.cm-line')].map(l => l.textContent).join('\\n'))")


def _result_view(cell) -> tuple[dict[str, str], dict[str, int]]:
    """The `%%qmio` result view of a cell's output: its facts table and its counts table."""
    facts = cell.locator(".jp-OutputArea-output table.qmio-kv", has_text="shots")
    expect(facts).to_have_count(1, timeout=180_000)
    info = {r.locator("th").inner_text(): r.locator("td").inner_text() for r in facts.locator("tr").all()}
    counts_table = cell.locator(".jp-OutputArea-output table.qmio-table", has_text="probability")
    expect(counts_table).to_have_count(1)
    counts = {r.locator("td").nth(0).inner_text(): int(r.locator("td").nth(1).inner_text())
              for r in counts_table.locator("tbody tr").all()}
    return info, counts


@pytest.mark.parametrize("settings", [{}, {"defaultTarget": "emulator", "defaultShots": 64}],
                         ids=["defaults", "emulator-64"])
def test_insert_qmio_cell_and_run_it(lab, qpu_service, qmio_settings, workdir, page, settings):
    """The inserted cell (and the %load_ext above it) uses `defaultTarget`/`defaultShots` and runs."""
    qmio_settings(**settings)
    target, shots = settings.get("defaultTarget", "qpu"), settings.get("defaultShots", 1000)
    path = _notebook(workdir, "insert.ipynb", ['print("first cell")'])
    _goto(page, lab, path)
    expect(page.locator(".jp-StatusBar-Widget", has_text=KERNEL_IDLE).first).to_be_visible(timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell").first.click()
    _palette(page, "Insert %%qmio cell")
    expected = ["%load_ext qmio_lab", 'print("first cell")', f"%%qmio --target {target} --shots {shots}\n{EXAMPLE_QASM}"]
    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(3)
    assert _cell_sources(page) == expected

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells.nth(1).locator(".jp-OutputArea-output")).to_have_text("first cell", timeout=120_000)
    info, counts = _result_view(cells.nth(2))
    expect(cells.nth(2).locator(".jp-OutputArea-output", has_text=f"{target} result")).to_have_count(1)
    assert int(info["shots"]) == shots and sum(counts.values()) == shots, (info, counts)
    assert not cells.nth(2).locator(".jp-OutputArea-output[data-mime-type*='error']").count()
    if target == "emulator":
        _assert_noiseless_bell(counts, shots)
    else:
        job = _service(qpu_service, f"/api/v1/jobs/{info['job']}")
        assert (job["state"], job["shots"]) == ("done", shots), job
        _assert_noisy_bell(counts, shots)


def test_insert_qmio_cell_from_the_notebook_menu_when_the_extension_is_loaded(lab, qmio_settings, workdir, page):
    """With `%load_ext qmio_lab` in the notebook already, only the %%qmio cell is added, below the active one."""
    qmio_settings(defaultShots=4000)
    path = _notebook(workdir, "loaded.ipynb", ["%load_ext qmio_lab", "x = 1", "y = 2"])
    _goto(page, lab, path)
    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells).to_have_count(3)
    cells.nth(1).locator(".jp-InputPrompt").click()  # select the middle cell, command mode
    _context_menu(page, cells.nth(1).locator(".jp-InputPrompt"), "Insert %%qmio cell")
    expect(cells).to_have_count(4)
    assert _cell_sources(page) == ["%load_ext qmio_lab", "x = 1", f"%%qmio --target qpu --shots 4000\n{EXAMPLE_QASM}",
                                   "y = 2"]


# ---- chipMetric --------------------------------------------------------------------------------------
def _hues_expected(lab: dict, metric: str) -> dict[int, int]:
    """What chip.ts colours each qubit for ``metric``: red (0) worst ... green (120) best of the chip."""
    chip = _lab_request(lab, "GET", "/qmio/qpu/chip").json()
    values = {q["id"]: q[metric] for q in chip["qubits"]}
    lo, hi = min(values.values()), max(values.values())
    hues = {}
    for q, v in values.items():
        t = (v - lo) / (hi - lo)
        hues[q] = round(120 * (t if metric in TIME_METRICS else 1 - t))
    return hues


def _hues_shown(page) -> dict[int, int]:
    pairs = page.locator("#qmio-lab-panel svg.jp-qmio-chip g.jp-qmio-qubit").evaluate_all(
        "gs => gs.map(g => [g.dataset.qubit, g.querySelector('circle').getAttribute('fill')])")
    hues = {}
    for qubit, fill in pairs:
        m = re.fullmatch(r"hsl\((\d+), 70%, 45%\)", fill)
        assert m, fill
        hues[int(qubit)] = int(m.group(1))
    return hues


def _assert_coloured_by(page, lab: dict, metric: str) -> None:
    chip = page.locator("#qmio-lab-panel svg.jp-qmio-chip")
    expect(chip).to_have_attribute("aria-label", f"QMIO chip coloured by {METRIC_LABELS[metric]}", timeout=30_000)
    expect(chip.locator("g.jp-qmio-qubit")).to_have_count(32)
    expect(chip.locator("line.jp-qmio-coupler")).to_have_count(33)  # QMIO's 33 ECR pairs
    expect(page.locator("#qmio-lab-panel select.jp-qmio-metric")).to_have_value(metric)
    order = "red" if metric in TIME_METRICS else "green"
    legend = page.locator("#qmio-lab-panel .jp-qmio-legend")
    expect(legend).to_have_text(re.compile(rf"^{re.escape(METRIC_LABELS[metric])}: {order} [\d.]+ (µs|%) … "))
    if metric in TIME_METRICS:  # the chip sends seconds; the legend shows the chip's lowest in µs
        lowest_us = float(re.search(r"([\d.]+) µs", legend.inner_text()).group(1))
        chip_s = min(q[metric] for q in _lab_request(lab, "GET", "/qmio/qpu/chip").json()["qubits"])
        assert lowest_us == pytest.approx(chip_s * 1e6, rel=0.05)
    expected, shown = _hues_expected(lab, metric), _hues_shown(page)
    # the figures drift a little between the panel's fetch and ours: allow 2 of the 120 hue steps
    off = {q: (shown[q], expected[q]) for q in expected if abs(shown[q] - expected[q]) > 2}
    assert not off, f"qubits not coloured by {metric} (shown, expected): {off}"


@pytest.mark.parametrize("metric", ["t2", "readout_error"])
def test_chip_metric_setting_colours_the_chip_map(lab, qmio_settings, page, metric):
    qmio_settings(chipMetric=metric)
    # the check can fail: these metrics colour the chip differently from the default T1
    t1, other = _hues_expected(lab, "t1"), _hues_expected(lab, metric)
    assert sum(abs(t1[q] - other[q]) > 10 for q in t1) >= 8
    _goto(page, lab)
    page.click('li[data-id="qmio-lab-panel"]')
    _assert_coloured_by(page, lab, metric)


def test_chip_metric_changed_in_the_settings_editor_recolours_the_open_panel(lab, qmio_settings, page):
    _goto(page, lab)
    page.click('li[data-id="qmio-lab-panel"]')
    _assert_coloured_by(page, lab, "t1")  # the default
    _settings_field(page, "chipMetric").select_option(label="sx_error")
    _assert_coloured_by(page, lab, "sx_error")
    expect(page.locator("#qmio-lab-panel")).to_be_visible()  # the editor opened beside it
    # and it is the user's setting now, not only the panel's state
    raw = _lab_request(lab, "GET", f"/lab/api/settings/{PLUGIN}").json()["settings"]
    assert raw.get("chipMetric") == "sx_error", raw


# ---- the status bar ----------------------------------------------------------------------------------
def test_status_bar_item_click_opens_the_panel(lab, qpu_service, qmio_settings, page):
    _goto(page, lab)
    status = page.locator(".jp-qmio-status")
    expect(status).to_have_text(re.compile(r"^QPU online · 0 queued · calibrated \d+ (s|min|h|d) ago$"))
    panel, tab = page.locator("#qmio-lab-panel"), page.locator('li[data-id="qmio-lab-panel"]')
    expect(page.locator("#filebrowser")).to_be_visible()  # a reset workspace shows the files
    expect(panel).to_be_hidden()

    status.click()
    expect(panel).to_be_visible()
    expect(tab).to_have_class(re.compile(r"\blm-mod-current\b"))
    expect(page.locator("#filebrowser")).to_be_hidden()
    cal_id = _service(qpu_service, "/api/v1/status")["calibration"]["id"]
    expect(panel.locator(".jp-qmio-qpu-state")).to_have_attribute("data-state", "online")
    expect(panel.locator(".jp-qmio-facts")).to_contain_text(cal_id)

    # with the sidebar collapsed, a click opens it again on the panel
    tab.click()
    expect(panel).to_be_hidden()
    status.click()
    expect(panel).to_be_visible()
    expect(tab).to_have_class(re.compile(r"\blm-mod-current\b"))
