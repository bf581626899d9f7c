"""%%qmio and %qmio in a real IPython kernel against a real local QPU service process."""
from __future__ import annotations

import time

import pytest

from support.circuits import BELL_QASM2, BELL_QASM3
from support.kernels import Kernel

MG = "get_ipython().magics_manager.registry['QmioMagics']"


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    kernel = Kernel(tmp_path_factory.mktemp("qmio_home"))
    kernel.execute("%load_ext qmio_lab\nfrom qmio_lab.qpu import default_client")
    yield kernel
    kernel.close()


def run_cell(k: Kernel, line: str, body: str, **kw):
    return k.execute(f"%%qmio {line}\n{body}", **kw)


def finished_result(k: Kernel, name: str) -> str:
    """Run a small Bell job to the end and keep its result as ``name`` (each test makes its own)."""
    run_cell(k, f"-s 50 -o {name}", BELL_QASM2)
    return name


def cancelled_job(k: Kernel, name: str) -> str:
    """Queue a job while the QPU is held and cancel it; the job is kept as ``name``."""
    k.execute("default_client().set_maintenance(True)")
    try:
        run_cell(k, f"--async -s 10 -o {name}", BELL_QASM2)
        k.execute(f"{name}.cancel()")
    finally:
        k.execute("default_client().set_maintenance(False)")
    assert k.value(f"{name}.status().name") == "CANCELLED"
    return name


def test_qasm2_cell_stores_result_and_shows_widgets(k):
    out = run_cell(k, "--shots 300 -o r2 --name bell2", BELL_QASM2)
    counts = k.value("r2.get_counts()")
    assert sum(counts.values()) == 300 and set(counts) <= {"00", "01", "10", "11"}
    assert counts.get("00", 0) + counts.get("11", 0) > 240  # a Bell state, with QPU noise
    kinds = [set(d) for d in out["displays"]]
    assert len(kinds) == 2 and all("application/vnd.jupyter.widget-view+json" in d for d in kinds)
    assert all("text/html" in d for d in kinds)  # plain viewers get the fallback
    assert "qmio-result" in out["displays"][1]["text/html"]
    assert out["result"] is None  # the view is displayed, not echoed again as Out[]
    assert k.value("r2._metadata['calibration_id']").startswith("cal-")


def test_monitor_and_result_view_state_after_the_job(k):
    run_cell(k, "-s 200 -o rv --name viewed", BELL_QASM2)
    row = k.value(f"(lambda r: [r.state.value, r.progress.value, r.progress.max, r.progress.bar_style, "
                  f"r.cancel_button.disabled, r.queue.value, r.label.value])({MG}.monitors[-1].rows[0])")
    assert row[0] == "<b>done</b>" and row[1] == row[2] == 1 and row[3] == "success" and row[4] is True
    assert row[5] == "queue: —"  # ended jobs have no queue position
    assert "viewed" in row[6]
    shown, job_id = k.value(f"[{MG}.monitors[-1].rows[0].qpu_time.value, rv.job_id]")
    held = k.value(f"default_client().job({job_id!r})['qpu_seconds']")
    assert held > 0 and shown == f"QPU: {held:.2f} s"  # what the service charged, once ended
    table, counts = k.value(f"[{MG}.views[-1].counts_table.value, rv.get_counts()]")
    for outcome, n in counts.items():
        assert f"<td>{outcome}</td><td>{n}</td>" in table
    assert k.value(f"{MG}.views[-1].histogram.value[:4] == b'\\x89PNG'")  # a PNG histogram


def test_qasm3_cell(k):
    run_cell(k, "-s 100 -o r3", BELL_QASM3)
    assert sum(k.value("r3.get_counts()").values()) == 100


def test_python_cell_last_expression_list_and_circuit_option(k):
    body = ("from qiskit import QuantumCircuit\n"
            "def ghz(n):\n    qc = QuantumCircuit(n)\n    qc.h(0)\n"
            "    for i in range(n - 1):\n        qc.cx(i, i + 1)\n    qc.measure_all()\n    return qc\n"
            "[ghz(2), ghz(3)]\n")
    run_cell(k, "-s 100 -O 2 -o rp", body)
    counts = k.value("rp.get_counts()")
    assert [len(next(iter(c))) for c in counts] == [2, 3]
    assert k.value(f"len({MG}.views[-1].selector.options)") == 2  # one entry per circuit
    run_cell(k, "--circuit mine -s 50 -o rc", "mine = ghz(2)\nother = 41 + 1\n")
    assert sum(k.value("rc.get_counts()").values()) == 50
    assert k.value("other") == 42  # the cell ran in the user namespace


def test_async_returns_at_once_and_other_cells_run(k):
    k.execute("default_client().set_maintenance(True)")  # hold the queue: the job stays queued
    try:
        t0 = time.monotonic()
        out = run_cell(k, "--async -s 100 -o job", BELL_QASM2)
        assert time.monotonic() - t0 < 20
        assert "qmio-job" in out["result"]["text/html"]  # the returned job renders as HTML
        assert k.value("1 + 1") == 2  # the kernel is free while the job waits
        assert k.value("job.status().name") == "QUEUED"
        k.wait_for(f"{MG}.monitors[-1].rows[0].state.value == '<b>queued</b>'")
        pos = k.value("job.queue_position()")
        shown = k.value(f"{MG}.monitors[-1].rows[0].queue.value")
        assert shown == f"queue: {'—' if pos is None else pos}"
        expected = k.value("job.record['estimated_qpu_seconds']")
        assert k.value(f"{MG}.monitors[-1].rows[0].qpu_time.value") == f"QPU: ~{expected:.2f} s"  # estimated
        assert k.value(f"{MG}.monitors[-1].rows[0].cancel_button.disabled") is False
    finally:
        k.execute("default_client().set_maintenance(False)")
    k.wait_for(f"len({MG}.monitors[-1].footer.children) == 1")  # the result view arrived
    assert k.value(f"{MG}.monitors[-1].rows[0].state.value") == "<b>done</b>"
    assert k.value(f"sum({MG}.monitors[-1].footer.children[0].counts[0].values())") == 100


def test_cancel_button_and_cancel_command(k):
    k.execute("default_client().set_maintenance(True)")
    try:
        run_cell(k, "--async -s 10 -o j1", BELL_QASM2)
        k.execute(f"m1 = {MG}.monitors[-1]; m1.rows[0].cancel_button.click()")
        k.wait_for("m1.rows[0].state.value == '<b>cancelled</b>'")
        assert k.value("m1.rows[0].cancel_button.disabled") is True
        assert k.value("m1.rows[0].progress.bar_style") == "warning"
        run_cell(k, "--async -s 10 -o j2", BELL_QASM2)
        jid = k.value("j2.job_id()")
        out = k.execute(f"%qmio cancel {jid}")
        assert out["stdout"].strip() == f"job {jid} cancelled"
        assert k.value("j2.status().name") == "CANCELLED"
    finally:
        k.execute("default_client().set_maintenance(False)")
    assert "no job 'nope'" in k.usage_error("%qmio cancel nope")
    done = k.value(f"{finished_result(k, 'r_cancel')}.job_id")
    assert "no longer queued" in k.usage_error(f"%qmio cancel {done}")
    assert "ID" in k.usage_error("%qmio cancel")


def test_interrupt_cancels_the_waiting_job(k):
    k.execute("default_client().set_maintenance(True)")
    service = k.service_client()

    def queued() -> bool:  # interrupt only once the cell's job is waiting in the queue
        return any(j["name"] == "interrupted" and j["state"] == "queued" for j in service.jobs(["queued"]))

    try:
        out = k.execute(f"%%qmio -s 10 --name interrupted\n{BELL_QASM2}", expect_error=True, interrupt_when=queued)
    finally:
        k.execute("default_client().set_maintenance(False)")
    assert out["error"].ename == "UsageError" and "interrupted; job" in out["error"].evalue
    assert "cancelled" in out["error"].evalue
    jobs = k.value("[j['state'] for j in default_client().jobs() if j['name'] == 'interrupted']")
    assert jobs == ["cancelled"]


def test_line_magics(k):
    help_out = k.execute("%qmio")["stdout"]
    for sub in ("status", "calibration", "jobs", "cancel", "cluster", "config"):
        assert f"%qmio {sub}" in help_out
    status = k.execute("%qmio status")["result"]
    assert "qmio-status" in status["text/html"] and "online" in status["text/html"]
    assert k.value("(lambda s: [s['state'], s['num_qubits']])(_)") == ["online", 32]
    finished_result(k, "r_line_1")
    finished_result(k, "r_line_2")
    newest = k.value("r_line_2.job_id")
    jobs = k.execute("%qmio jobs --limit 2")["result"]
    assert "qmio-jobs" in jobs["text/html"] and k.value("len(_)") == 2
    assert k.value("_[0]['id']") == newest  # newest first
    cancelled = k.value(f"{cancelled_job(k, 'j_line')}.job_id()")
    k.execute("cj = %qmio jobs --state cancelled")
    states = k.value("[j['state'] for j in cj]")
    assert states and set(states) == {"cancelled"} and cancelled in k.value("[j['id'] for j in cj]")
    cfg = k.execute("%qmio config")["result"]["text/html"]
    assert "seed: 2024" in cfg and "emulator:" in cfg


def test_calibration_view_state(k):
    out = k.execute("cv = %qmio calibration --metric t2\ncv")
    assert "application/vnd.jupyter.widget-view+json" in out["result"] and "<svg" in out["result"]["text/html"]
    cal_id, metric, chip = k.value("[cv.calibration.id, cv.metric.value, cv.chip.value]")
    assert metric == "t2" and cal_id.startswith("cal-") and chip.count('class="qubit"') == 32
    assert chip.count('class="coupler"') == 33 and "<title>Q0: T1" in chip
    header = k.value("cv.header.value")
    assert cal_id in header and "online" in header
    nxt = k.value("default_client().status()['next_calibration']")  # none: the tests run without a calendar
    assert f"<th style='text-align:left;padding-right:1em'>next window</th><td>" \
           f"{nxt['start'] + ' – ' + nxt['end'] if nxt else 'none scheduled'}</td>" in header
    k.execute("cv.metric.value = 'readout_error'; cv.qubit.value = 5")
    chip2, details = k.value("[cv.chip.value, cv.details.value]")
    assert chip2 != chip and "readout error" in chip2 and 'stroke="#d00"' in chip2
    assert "<td>5</td>" in details and "T1" in details
    k.execute(f"old = %qmio calibration --id {cal_id}")
    assert k.value("old.calibration.id") == cal_id
    hist = k.execute("h = %qmio calibration --history\nh")["result"]
    assert "qmio-cal-history" in hist["text/html"]
    assert k.value("[len(h.points), len(h.qubit.options) > 1]") == [1, True]
    median_plot = k.value("h.plot.value.hex()")
    k.execute("h.qubit.value = 3")
    assert k.value("h.plot.value[:4] == b'\\x89PNG'") is True
    assert k.value("h.plot.value.hex()") != median_plot  # the plot follows the qubit chosen


@pytest.mark.parametrize("line, body, message", [
    ("--shots 0", BELL_QASM2, "--shots 0 is out of range"),
    ("--shots 200000", BELL_QASM2, "out of range; use 1..100000"),
    ("--shots many", BELL_QASM2, "invalid int value: 'many'"),
    ("--target moon", BELL_QASM2, "invalid choice: 'moon'"),
    ("-O 5", BELL_QASM2, "invalid choice: 5"),
    ("--bogus", BELL_QASM2, "unrecognized arguments: --bogus"),
    ("--noise calibration:x", BELL_QASM2, "add --target emulator"),
    ("--target emulator --noise thermal", BELL_QASM2, "write calibration:<id>"),
    ("--priority -1", BELL_QASM2, "--priority -1"),
    ("-o 1bad", BELL_QASM2, "-o 1bad: not a valid Python variable name"),
    ("", "   \n", "the %%qmio cell is empty"),
    ("", "OPENQASM 2.0;\nqreg q[2];\nh q[0];\n", "OpenQASM 2 error: line 3, column 0"),
    ("", "OPENQASM 3.0;\nqubit[2] q;\nfoo q[0];\n", "OpenQASM 3 error: line 3, column 0: gate 'foo' is not defined"),
    ("--target simulator", "OPENQASM 2.0;\nqreg q[2];\nh q[0];\n", "OpenQASM 2 error: line 3, column 0"),
    ("", 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\nh q[0];\n', "has no measurement"),
    ("", "OPENQASM 4.0;\n", "OPENQASM 4 is not supported"),
    ("", "from qiskit import QuantumCircuit\nqc = QuantumCircuit(2\n", "neither OpenQASM nor valid Python"),
    ("", "x = 1\n1 / 0\n", "ZeroDivisionError: division by zero (cell line 2)"),
    ("", "42\n", "value is a int, not a QuantumCircuit"),
    ("", "x = 1\n", "must end with an expression"),
    ("", "[]\n", "empty list"),
    ("--circuit nothere", "x = 1\n", "defines no variable 'nothere'"),
    ("--circuit qc", BELL_QASM2, "this cell is OpenQASM"),
    ("", "from qiskit import QuantumCircuit\nqc = QuantumCircuit(2)\nqc.h(0)\nqc\n", "has no measurement"),
    ("", "from qiskit import QuantumCircuit\nqc = QuantumCircuit(40)\nqc.h(0)\nqc.measure_all()\nqc\n",
     "qpu refused the job"),
])
def test_cell_errors_are_one_usage_line(k, line, body, message):
    assert message in k.usage_error(f"%%qmio {line}\n{body}")


def test_line_errors_are_one_usage_line(k):
    assert "unknown subcommand 'bogus'" in k.usage_error("%qmio bogus")
    assert "invalid int value: 'x'" in k.usage_error("%qmio jobs --limit x")
    assert "--limit 0" in k.usage_error("%qmio jobs --limit 0")
    assert "invalid choice: 'lost'" in k.usage_error("%qmio jobs --state lost")
    assert "--metric t9" in k.usage_error("%qmio calibration --metric t9")
    assert "no calibration 'cal-nope'" in k.usage_error("%qmio calibration --id cal-nope")
    assert "unrecognized arguments" in k.usage_error("%qmio status now")


def test_help_documents_every_option(k):
    cell_doc = k.value("get_ipython().find_cell_magic('qmio').__doc__")
    for opt in ("--target", "--shots", "--optimization-level", "--noise", "--name", "--async", "-o VAR",
                "--circuit", "OpenQASM 3"):
        assert opt in cell_doc
    line_doc = k.value("get_ipython().find_line_magic('qmio').__doc__")
    assert "--history" in line_doc and "scale" in line_doc and "--state" in line_doc


def test_results_jobs_and_calibrations_render_html(k):
    html = k.execute(finished_result(k, "r_html"))["result"]["text/html"]
    assert "qmio-result" in html and "data:image/png;base64" in html and "calibration" in html
    assert "calibration age" in html
    cal = k.execute("default_client().calibration()")["result"]["text/html"]
    assert "<svg" in cal and "qmio-calibration" in cal
    assert "cancelled" in k.execute(cancelled_job(k, "j_html"))["result"]["text/html"]


def test_unload_removes_the_magics(k):
    finished_result(k, "r_unload")
    assert "qmio-result" in k.execute("r_unload")["result"]["text/html"]
    k.execute("%unload_ext qmio_lab")
    err = k.execute("%qmio status", expect_error=True)["error"]
    assert err.ename == "UsageError" and "Line magic function `%qmio` not found" in err.evalue
    assert "qmio-result" not in k.execute("r_unload")["result"].get("text/html", "")
    k.execute("%load_ext qmio_lab")
    assert "qmio-status" in k.execute("%qmio status")["result"]["text/html"]


def test_usage_and_job_list_show_qpu_seconds(k):
    finished_result(k, "r_usage")
    jobs = k.execute("%qmio jobs --limit 1")["result"]["text/html"]
    assert "est. QPU s" in jobs and "QPU s" in jobs and "ETA" in jobs
    assert k.value("_[0]['qpu_seconds']") > 0 and k.value("_[0]['estimated_qpu_seconds']") > 0
    out = k.execute("u = %qmio usage --days 1\nu")["result"]
    assert "qmio-usage" in out["text/html"] and "<img" in out["text/html"] and "QPU usage of" in out["text/html"]
    assert k.value("u['totals']['jobs']") >= 1 and k.value("u['totals']['qpu_seconds']") > 0
    assert k.value("u['timing']") == "instant"  # the suite's (tests/conftest.py)
    mine = k.value("u['totals']['qpu_seconds']")
    everyone = k.execute("%qmio usage --all")["result"]["text/html"]  # the local service's admin is its user
    assert "QPU usage of everyone" in everyone
    assert k.value("_['totals']['qpu_seconds']") >= mine
    assert "--user NAME or --all, not both" in k.usage_error("%qmio usage --all --user x")
    assert "--days 0" in k.usage_error("%qmio usage --days 0")
