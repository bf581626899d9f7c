"""The session's own SLURM job in the lab panel: the ten-minute warning rule, squeue's durations,
and the view of a real job of the real SLURM (tests/slurm/slurm.sh)."""
from __future__ import annotations

import asyncio
import subprocess

import pytest

from qmio_lab.labserver.manager import QmioLabManager

from qmio_lab.labserver.session_job import WARN_BEFORE_END_S, SessionJobError, parse_job, session_job, walltime_warning
from qmio_lab.slurm import duration_s
from support.cli import wait_for
from support.slurm import diagnostics


@pytest.mark.parametrize("text, seconds", [
    ("0:00", 0), ("9:59", 599), ("59:59", 3599), ("1:00:00", 3600), ("12:34:56", 45296),
    ("1-00:00:00", 86400), ("2-03:04:05", 183845), ("1-02", 93600), ("UNLIMITED", None), ("NOT_SET", None),
])
def test_durations_as_squeue_prints_them(text, seconds):
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["soon", "1:2:3:4", "1-", "1-x"])
def test_unreadable_durations_say_what_is_expected(text):
    with pytest.raises(ValueError, match="expected e.g. 1-02:03:04"):
        duration_s(text)


def test_the_warning_starts_ten_minutes_before_the_walltime():
    assert WARN_BEFORE_END_S == 600
    assert walltime_warning("42", None) is None  # no time limit: nothing to warn about
    assert walltime_warning("42", 601) is None
    at_ten = walltime_warning("42", 600)
    assert at_ten and "SLURM job 42" in at_ten and "in 10 min" in at_ten and "Save your work" in at_ten
    assert "in 3 min" in walltime_warning("42", 200)
    assert "in less than a minute" in walltime_warning("42", 59)
    assert "in less than a minute" in walltime_warning("42", -5)  # squeue's clock may run past it


def test_a_squeue_line_becomes_the_panels_view():
    assert parse_job("123|qpu|RUNNING|8:20|10:00") == {
        "id": "123", "partition": "qpu", "state": "running", "time_left_s": 500, "time_limit": "10:00",
        "warning": walltime_warning("123", 500)}
    assert parse_job("7|emulator|RUNNING|UNLIMITED|UNLIMITED")["warning"] is None
    with pytest.raises(ValueError, match="expected 5 '|'-separated fields"):
        parse_job("123 qpu RUNNING")


def test_outside_slurm_there_is_no_session_job_and_a_broken_squeue_is_named():
    assert session_job({}) is None
    with pytest.raises(SessionJobError, match="is not a SLURM job id"):
        session_job({"SLURM_JOB_ID": "1; rm -rf /"})
    with pytest.raises(SessionJobError, match="could not run /nonexistent/squeue"):
        session_job({"SLURM_JOB_ID": "1"}, squeue="/nonexistent/squeue")


def test_the_labs_view_has_no_session_job_outside_slurm_and_names_a_missing_squeue(monkeypatch, tmp_path):
    manager = QmioLabManager()
    try:
        monkeypatch.delenv("SLURM_JOB_ID", raising=False)
        assert asyncio.run(manager.session()) == {"session_job": None}
        monkeypatch.setenv("SLURM_JOB_ID", "12")
        monkeypatch.setenv("PATH", str(tmp_path))  # a node without SLURM's commands
        view = asyncio.run(manager.session())
        assert view["session_job"] is None and "could not run squeue" in view["session_error"]
    finally:
        manager.close()


def _running_job(time: str) -> str:
    sub = subprocess.run(["sbatch", "--parsable", "--partition", "qpu", "--time", time, "--mem", "100M",
                          "--output", "/dev/null", "--wrap", "sleep 300"], capture_output=True, text=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip().split(";")[0]
    wait_for(lambda: subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True,
                                    timeout=30).stdout.strip() == "RUNNING", 30, f"job {job} never ran\n{diagnostics()}",
             interval=0.2)
    return job


@pytest.mark.slurm
def test_a_real_jobs_view_warns_only_near_its_walltime(slurm_conf):
    short, long = _running_job("00:09:00"), _running_job("00:30:00")
    try:
        near = session_job({"SLURM_JOB_ID": short})
        assert (near["id"], near["partition"], near["state"]) == (short, "qpu", "running")
        assert 500 < near["time_left_s"] <= 540 and near["time_limit"] == "9:00"
        assert near["warning"] and f"SLURM job {short}" in near["warning"]
        far = session_job({"SLURM_JOB_ID": long})
        assert 1700 < far["time_left_s"] <= 1800 and far["warning"] is None
    finally:
        subprocess.run(["scancel", short, long], timeout=30)
    wait_for(lambda: session_job({"SLURM_JOB_ID": short})["state"] == "ended", 60,
             f"job {short} still listed after scancel\n{diagnostics()}", interval=0.3)
