"""Every notebook runs top to bottom in a real kernel, against a real QPU service and real Dask
workers (SLURM for the sweep notebook), and its results are checked, not only its absence of errors."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from support.moments import packaged_calendar_env
from support.services import stop_local_service
from support.notebooks import read_back, with_read_back

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run_notebook(name: str, timeout: int = 600) -> tuple[dict, nbformat.NotebookNode]:
    """Run the notebook top to bottom in a real kernel, then read what the test checks from it."""
    book = with_read_back(nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4), name)
    NotebookClient(book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return read_back(book), book


def html_outputs(book: nbformat.NotebookNode) -> str:
    return "".join(
        str(out.get("data", {}).get("text/html", "")) for cell in book.cells for out in cell.get("outputs", [])
    )


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("notebooks-home")
    saved = {k: os.environ.get(k) for k in ("QMIO_LAB_HOME", "QMIO_QPU_URL", "DASK_QMIO__EMULATOR__LOCAL__N_WORKERS")}
    os.environ["QMIO_LAB_HOME"] = str(home)
    os.environ.pop("QMIO_QPU_URL", None)
    os.environ["DASK_QMIO__EMULATOR__LOCAL__N_WORKERS"] = "1"
    # the notebooks share one QPU service: start it here, without a calendar (tests/conftest.py),
    # whichever notebook runs first (02 gives its own kernel the packaged calendar)
    from qmio_lab.qpu.launcher import start_local_service

    start_local_service(home / "qpu")
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    stop_local_service(home)


def test_01_quickstart(lab_home):
    check, book = run_notebook("01_quickstart")
    assert check["bell_qpu_good"] > 0.8 and check["bell_tvd"] < 0.15
    assert check["ghz_emu"] == [1.0, 1.0, 1.0]  # noiseless
    assert 0.6 < check["ghz_qpu"][0] < 1.0 and check["ghz_qpu"][2] < check["ghz_qpu"][0]
    assert check["calibration_id"].startswith("cal-")
    assert "total variation distance" in html_outputs(book)


def test_02_calibration_explorer(lab_home, monkeypatch):
    for key, value in packaged_calendar_env().items():  # the notebook explores the centre's calendar
        monkeypatch.setenv(key, value)
    check, book = run_notebook("02_calibration_explorer")
    assert len(check["windows"]) == 5 and check["weekday_windows_only"]
    assert check["ecr_after_monday"] < check["ecr_before_monday"]  # Monday's calibration reset the drift
    assert 40 < check["t1_median_now_us"] < 70
    assert "<svg" in html_outputs(book)  # the chip map


def test_03_hybrid_vqe_session(lab_home):
    check, _ = run_notebook("03_hybrid_vqe_session")
    assert check["transpiles"] == 1 and check["calls"] >= 20
    assert check["vqe"] < check["first"]
    assert abs(check["vqe"] - check["exact"]) < 0.2  # a noisy QPU, still close to the ground state
    assert check["emulator_energy"] < check["first"]
    # the suite's service keeps instant timing (tests/conftest.py); every call was charged its QPU time
    assert check["timing"] == "instant" and check["usage_jobs"] >= check["calls"] and check["usage_qpu_s"] > 0


def test_04_parameter_sweep_on_slurm(lab_home, slurm_conf, monkeypatch):
    monkeypatch.setenv("DASK_QMIO__EMULATOR__CLUSTER", "slurm")
    monkeypatch.setenv("DASK_QMIO__EMULATOR__SLURM__ADAPT__MAXIMUM", "2")
    check, _ = run_notebook("04_parameter_sweep_dask")
    assert check["kind"] == "slurm" and check["slurm_jobs"]
    assert check["results"] == check["circuits"] == 600 and check["in_order"]
    assert abs(check["parity_corner"]) < 0.1  # |0000> then H on all: uniform outcomes


def test_05_noise_replay(lab_home):
    check, _ = run_notebook("05_noise_replay")
    assert check["replay_calibration"] == check["calibration_id"]
    # "the replay matches the QPU, the noiseless emulator does not" (README): the replay's distance
    # is near the sampling noise of two 8000-shot runs (~0.02), the noiseless emulator's is not
    assert check["tvd_replay"] < 0.06, check
    assert check["tvd_ideal"] > 2 * check["tvd_replay"], check


def png_outputs(book: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for cell in book.cells for out in cell.get("outputs", []))


def near_calibration(fitted: float, calibrations: list[dict], key: str, rel: float) -> bool:
    """``fitted`` within ``rel`` of the figure ``key`` of the calibration in force before or after
    the experiments (the service steps its drift every qmio.qpu.drift_resolution_s device seconds,
    so a step may fall between them; it moves a figure by well under 1 %)."""
    return min(abs(fitted / c[key] - 1) for c in calibrations) < rel


def test_06_characterise_the_qpu(lab_home):
    """qiskit-experiments runs unchanged on the QPU target (issue 15) and recovers its calibration."""
    check, book = run_notebook("06_characterise_the_qpu")
    assert check["same_calibration"], check  # no recalibration between the experiments
    assert check["pulses_per_clifford"] == pytest.approx(20 / 24)
    assert len(check["qubits"]) == 2
    for q, fit in check["fits"].items():
        cals = fit["calibration"]
        assert abs(cals[1]["t1"] / cals[0]["t1"] - 1) < 0.02, (q, cals)  # drift during the notebook is small
        assert near_calibration(fit["t1"], cals, "t1", 0.2), (q, fit)
        assert near_calibration(fit["t2"], cals, "t2", 0.2), (q, fit)  # Hahn echo is the calibration's T2
        # the twin's dephasing is Markovian: T2* is T2 echo, the fringes run at the asked frequency
        assert near_calibration(fit["t2star"], cals, "t2", 0.25), (q, fit)
        assert fit["ramsey_freq"] == pytest.approx(fit["osc_freq"], rel=0.05), (q, fit)
        assert near_calibration(fit["p10"], cals, "p10", 0.2), (q, fit)
        assert near_calibration(fit["p01"], cals, "p01", 0.2), (q, fit)
        # RB: the notebook's prediction is n̄ pulses per Clifford times each pulse's error
        assert fit["epc_predicted"] == pytest.approx(20 / 24 * cals[0]["per_pulse"], rel=1e-9), (q, fit)
        assert abs(fit["epc"] / fit["epc_predicted"] - 1) < 0.35, (q, fit)
    assert check["summary_axes"] == 4
    assert png_outputs(book) >= 4  # three fits drawn by qiskit-experiments and the summary


def test_07_from_qmio_to_qmio_lab(lab_home):
    """A script written for the real QMIO runs unchanged with QMIO's own client through a tunnel
    (issue 16), and agrees with the same circuit through ``%%qmio`` and ``SamplerV2``."""
    from support.missing import missing
    from support.qmio_client import PYTHON, VENV

    if not PYTHON.exists():
        missing(f"QMIO's client venv is missing at {VENV}: `make qmio-client` creates it")
    written = [NOTEBOOKS / "qmio_script.py", NOTEBOOKS / "qmio_result.json"]  # what the notebook writes
    left_before = {p for p in written if p.exists()}
    try:
        check, book = run_notebook("07_from_qmio_to_qmio_lab")
    finally:
        for p in written:
            if p not in left_before:
                p.unlink(missing_ok=True)
    # the script ran through the gateway: one request on the tunnel, an ordinary job of its user
    assert check["tunnel_requests"] == 1, check
    job = check["script_job"]
    assert job["user"] == check["tunnel_user"] and job["name"] == "qmio client", job
    assert job["state"] == "done" and job["shots"] == 10000 and job["optimization_level"] == 1, job
    assert check["tunnel_state_after"] == "closed" and check["zmq_server_left"] is None
    assert set(check["shots"].values()) == {10000}, check["shots"]
    # one circuit, one compilation: the same physical qubits and calibration on all three roads
    ran_on = check["ran_on"]
    assert ran_on["script"]["physical_qubits"] == ran_on["magic"]["physical_qubits"] == ran_on["sampler"]["physical_qubits"], ran_on
    assert ran_on["script"]["calibration_id"] == ran_on["magic"]["calibration_id"] == ran_on["sampler"]["calibration_id"]
    # the three distributions agree to shot noise (two 10000-shot samples: ~0.01, 99 % below ~0.02),
    # while each is visibly off the ideal GHZ state (gate and readout errors, ~0.09)
    assert 0.01 < check["shot_noise_tvd"] < 0.03, check
    assert max(check["tvds"].values()) < 0.04, check
    assert all(0.04 < d < 0.25 for d in check["ideal_tvds"].values()), check
    assert png_outputs(book) >= 1


def test_08_beyond_one_node(lab_home):
    """A 34-qubit energy by circuit cutting on two Dask workers (issue 18) is within 0.05 of Aer's
    exact MPS value, and the notebook draws where and when its subexperiments ran."""
    import math

    check, book = run_notebook("08_beyond_one_node")
    # the plan, known before anything ran: a CX (overhead 9) and an RZZ(0.3) ((1 + 2 sin 0.3)^2) cut,
    # 6 x 6 QPD terms on each of the two 17-qubit parts
    plan = check["plan"]
    assert plan["num_cuts"] == 2 and plan["subcircuit_qubits"] == {"A": 17, "B": 17}, plan
    assert plan["sampling_overhead"] == pytest.approx(9 * (1 + 2 * math.sin(0.3)) ** 2), plan
    assert plan["num_subexperiments"] == check["estimate_plan_subexperiments"] == 72, plan
    assert check["shots"] == math.ceil(plan["sampling_overhead"] / 0.05**2)  # precision=0.05
    # the energy: cut estimate and EstimatorV2 (which runs this MPS-friendly pub whole) against exact MPS
    assert abs(check["energy"] - check["reference"]) < 0.05, check
    assert abs(check["estimator_energy"] - check["reference"]) < 0.05, check
    assert not check["estimator_cut"] and 0 < check["estimator_stds"] < 0.01
    assert check["reference"] < -0.1  # far from zero: a broken reconstruction would show
    # every subexperiment ran once, on the two workers of the scaled cluster, both of which took some
    runs = check["runs"]
    assert len(runs) == 72 and [r["part"] for r in runs] == ["A"] * 36 + ["B"] * 36
    assert len(check["cluster_workers"]) == 2 and {r["worker"] for r in runs} == set(check["cluster_workers"])
    assert all(r["method"] == "statevector" and r["started"] <= r["finished"] for r in runs)
    assert check["bar"] == 72  # the progress bar reached the end
    assert [line.split(" (")[0] for line in check["where"].splitlines()] == ["part A", "part B"]
    assert all(": emulator on " in line for line in check["where"].splitlines()), check["where"]
    # the plot: a bar per batch, a line per worker whose ends add up to every subexperiment
    assert check["plotted_workers"] == 2 and sum(check["plotted_done"]) == 72
    assert check["plotted_batches"] == len({(r["worker"], r["batch"]) for r in runs})
    assert png_outputs(book) >= 1
