"""The widgets in this process: model values after construction and after user changes."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.quantum_info import SparsePauliOp

from qmio_lab.device import QmioSimulator
from qmio_lab.widgets import (
    CalibrationHistory, CalibrationView, EstimatorView, JobMonitor, ResultView, chip_svg, compare,
    job_html, jobs_html, result_html, status_html, total_variation_distance, view,
)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def sim_result(device):
    sim = QmioSimulator(device)
    circuits = []
    for n in (2, 3):
        qc = QuantumCircuit(n, name=f"ghz{n}")
        qc.h(0)
        for i in range(n - 1):
            qc.cx(i, i + 1)
        qc.measure_all()
        circuits.append(qc)
    job = sim.run(transpile(circuits, sim), shots=500)
    return job, job.result()


def test_total_variation_distance():
    assert total_variation_distance({"0": 5}, {"0": 7}) == 0
    assert total_variation_distance({"0": 1}, {"1": 3}) == 1
    assert total_variation_distance({"00": 40, "11": 60}, {"00": 50, "11": 45, "01": 5}) == pytest.approx(0.15)


def test_chip_svg_colours_follow_the_metric(device):
    cal = device.calibration
    t1 = chip_svg(cal, "t1")
    assert t1.count('class="qubit"') == 32 and t1.count('class="coupler"') == 33
    assert chip_svg(cal, "readout_error") != t1
    worst = int(np.argmin(cal.qubit_metric("t1")))
    assert f'data-qubit="{worst}" data-value="{cal.qubits[worst].t1:.6g}"><circle' in t1
    with pytest.raises(ValueError, match="unknown metric"):
        chip_svg(cal, "t9")


def test_calibration_view_model(device):
    v = CalibrationView(device.calibration, {"state": "online", "next_calibration": {"start": "S", "end": "E"}})
    assert v.metric.value == "t1" and v.details.value == ""
    before = v.chip.value
    v.metric.value = "sx_error"
    v.qubit.value = 7
    assert v.chip.value != before and "SX error" in v.chip.value and "<td>7</td>" in v.details.value
    assert "next window" in v.header.value and "S – E" in v.header.value
    bundle = v._repr_mimebundle_()
    assert WIDGET_MIME in bundle and "<svg" in bundle["text/html"]


def test_calibration_history(device):
    cals = [device.calibration_at(device.calibration.taken_at + timedelta(days=d)) for d in (0, 2, 5)]
    h = CalibrationHistory(cals)
    assert len(h.points) == 3 and len(h.qubit.options) == 33
    first = h.plot.value
    h.metric.value = "ecr_error_median"
    assert h.plot.value != first
    h.qubit.value = 4
    h.qubit_metric.value = "t2"
    from qmio_lab.widgets.calibration import history_png

    assert bytes(h.plot.value).startswith(b"\x89PNG") and bytes(h.plot.value) == history_png(h.points, "t2", 4)
    h.qubit.value = 5
    assert bytes(h.plot.value) == history_png(h.points, "t2", 5) != history_png(h.points, "t2", 4)
    assert "qmio-cal-history" in h._repr_html_()
    with pytest.raises(ValueError, match="no calibrations"):
        CalibrationHistory([])


def test_result_view_and_repr(sim_result):
    _, result = sim_result
    v = view(result, title="sim")
    assert isinstance(v, ResultView) and len(v.selector.options) == 2
    first = v.counts_table.value
    v.selector.value = 1
    assert v.counts_table.value != first
    for outcome, n in result.get_counts(1).items():
        assert f"<td>{outcome}</td><td>{n}</td>" in v.counts_table.value
    html = result_html(result)
    assert html.count("<img") == 2 and "calibration" in html
    assert "text/html" in v._repr_mimebundle_()


def test_comparison_of_two_results(sim_result):
    _, result = sim_result
    c = compare(result, {"00": 250, "11": 250}, labels=("qpu", "ideal"))
    counts = result.get_counts(0)
    assert c.tvd == pytest.approx(total_variation_distance(counts, {"00": 250, "11": 250}))
    assert "p(ideal)" in c.table.value and f"{c.tvd:.4f}" in c.summary.value
    assert "qmio-compare" in c._repr_html_()


def test_estimator_view():
    from qiskit_aer.primitives import EstimatorV2

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    obs = [SparsePauliOp("ZZ"), SparsePauliOp("XX"), SparsePauliOp("ZI")]
    result = EstimatorV2().run([(qc, obs)]).result()
    v = view(result)
    assert isinstance(v, EstimatorView)
    assert [r[:2] for r in v.rows] == [(0, 0), (0, 1), (0, 2)]
    assert [round(r[2], 6) for r in v.rows] == pytest.approx([1.0, 1.0, 0.0], abs=1e-6)
    assert "1.00000" in v.table.value and "<img" in v._repr_html_()


def test_job_monitor_on_a_finished_simulator_job(sim_result):
    job, _ = sim_result
    seen = []
    m = JobMonitor(job, interval=0.05, on_finish=lambda j, row: seen.append(row.job_state.state))
    assert m.wait(10)
    row = m.rows[0]
    assert row.state.value == "<b>done</b>" and row.queue.value == "queue: —"
    assert row.progress.value == row.progress.max == 1 and row.cancel_button.disabled
    assert seen == ["done"] and "done" in m._repr_html_() and "done" in job_html(job)
    second = m.add(job)  # several jobs in one monitor; the thread restarts
    assert m.wait(10) and len(m.rows) == 2 and second.state.value == "<b>done</b>"


def test_job_monitor_shows_the_qpu_seconds_and_eta_of_queued_then_finished_qpu_jobs(tmp_path):
    """A real service under hardware timing (two device seconds per second): while the QPU is in
    maintenance the monitor shows each job's expected QPU seconds and its ETA behind the job
    ahead; once they have run, the QPU seconds the service charged and no ETA."""
    from qmio_lab.qpu import QPUBackend
    from qmio_lab.widgets.jobs import _eta_text
    from support.services import ServiceProcess

    svc = ServiceProcess(tmp_path / "svc", "--timing", "hardware", "--time-scale", "2").start()
    try:
        bell = QuantumCircuit(2)
        bell.h(0)
        bell.cx(0, 1)
        bell.measure_all()
        svc.client("root").set_maintenance(True)
        backend = QPUBackend(svc.client("carol"))
        big, small, dropped = (backend.run(bell, shots=n) for n in (10_000, 300, 500))
        m = JobMonitor([big, small, dropped], interval=0.05)
        first, second, third = m.rows
        assert third.qpu_time.value.startswith("QPU: ~")
        svc.client("carol").cancel(dropped.job_id())
        est = {j.job_id(): svc.client("carol").job(j.job_id())["estimated_qpu_seconds"] for j in (big, small)}
        assert est[big.job_id()] == pytest.approx(5.9, rel=0.1)  # QMIO's 10,000-shot call
        assert first.qpu_time.value == f"QPU: ~{est[big.job_id()]:.2f} s"
        assert second.qpu_time.value == f"QPU: ~{est[small.job_id()]:.2f} s"
        eta = svc.client("carol").job(small.job_id())["eta_s"]
        assert eta == pytest.approx(est[big.job_id()] / 2, rel=0.05)  # the job ahead, in real seconds
        assert second.queue.value == "queue: 2" and second.eta.value == f"ETA: {_eta_text(eta)}" != "ETA: 0 s"
        assert first.eta.value == "ETA: 0 s"
        assert "QPU seconds" in second._repr_html_() and f"~{est[small.job_id()]:.2f} s" in second._repr_html_()
        svc.client("root").set_maintenance(False)
        assert m.wait(60), [r.job_state for r in m.rows]
        for row, job in ((first, big), (second, small)):
            held = svc.client("carol").job(job.job_id())["qpu_seconds"]
            assert held == pytest.approx(est[job.job_id()], rel=0.1)
            assert row.qpu_time.value == f"QPU: {held:.2f} s" and row.eta.value == "ETA: —"
        assert third.job_state.state == "cancelled" and third.qpu_time.value == "QPU: —"  # never held it
    finally:
        svc.stop()


def test_job_list_and_usage_show_qpu_seconds():
    from qmio_lab.widgets.reprs import usage_html

    html = jobs_html([{"id": "j1", "name": "big", "state": "queued", "queue_position": 2, "eta_s": 12.5,
                       "shots": 10000, "num_circuits": 1, "estimated_qpu_seconds": 5.9, "qpu_seconds": None,
                       "created_at": "2026-12-07T10:00:00+00:00", "calibration_id": None}])
    assert "<td>12.50</td>" in html and "<td>5.90</td>" in html and "est. QPU s" in html
    report = {"since": "2026-12-06T00:00:00+00:00", "until": "2026-12-07T12:00:00+00:00", "user": "ana",
              "timing": "hardware", "totals": {"jobs": 3, "qpu_seconds": 12.0},
              "rows": [{"day": "2026-12-06", "user": "ana", "account": "physics", "jobs": 2, "qpu_seconds": 7.0,
                        "reserved_s": 0.0},
                       {"day": "2026-12-07", "user": "ana", "account": "physics", "jobs": 1, "qpu_seconds": 5.0,
                        "reserved_s": 1.5}],
              "budgets": [{"account": "physics", "qpu_seconds": 60, "period": "week", "used": 12.0, "pending": 3.0,
                           "remaining": 45.0, "resets_at": "2026-12-14T00:00:00+00:00"}]}
    out = usage_html(report)
    assert "QPU usage of ana" in out and "total: 3 jobs, 12.0 s of QPU time" in out
    assert "budget physics: 12.0 of 60 QPU s per week used, 3.0 held by queued jobs, 45.0 left (25% taken)" in out
    assert out.count("<img") == 1
    assert "no QPU time used in this period" in usage_html({**report, "rows": [], "budgets": []})


def test_status_and_jobs_html():
    assert "no jobs" in jobs_html([])
    html = status_html({"state": "calibrating", "queue_depth": 3, "calibration": {"id": "cal-x", "age_s": 7200},
                        "next_calibration": {"start": "a", "end": "b"}})
    assert "calibrating" in html and "2.0 h" in html and "cal-x" in html
