"""Binder: rebuild the environment from binder/ alone, the way repo2docker would, and run the
quickstart through binder/start.

repo2docker itself needs Docker to build; here we ask it (--no-build --debug) for the Dockerfile
it would build from this repository and replay its install steps in a fresh virtualenv.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from support.missing import missing
from support.services import stop_local_service
from support.notebooks import read_back, with_read_back

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def repo2docker_steps(repo: Path) -> list[str]:
    """The RUN lines of repo2docker's Dockerfile that act on this repository's binder/ files."""
    exe = shutil.which("jupyter-repo2docker", path=str(Path(sys.executable).parent))
    if exe is None:
        missing("jupyter-repo2docker (make test installs it)")
    out = subprocess.run([exe, "--no-build", "--debug", str(repo)], capture_output=True, text=True, timeout=300)
    dockerfile = out.stdout + out.stderr
    steps = [line[len("RUN "):].strip() for line in dockerfile.splitlines()
             if line.startswith("RUN ") and "binder/" in line and "chmod" not in line]
    assert steps, f"repo2docker printed no binder steps:\n{dockerfile[-3000:]}"
    return steps


def test_binder_environment_runs_the_quickstart(tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True, timeout=120)
    steps = repo2docker_steps(repo)
    assert any("pip install" in s and "binder/requirements.txt" in s for s in steps)
    assert any("binder/postBuild" in s for s in steps)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
           "KERNEL_PYTHON_PREFIX": str(venv), "NB_PYTHON_PREFIX": str(venv), "VIRTUAL_ENV": str(venv)}
    for var in ("QMIO_LAB_HOME", "QMIO_QPU_URL", "QMIO_QPU_TOKEN", "PYTHONPATH"):
        env.pop(var, None)
    for step in steps:
        command = re.sub(r"\$\{(KERNEL|NB)_PYTHON_PREFIX\}", str(venv), step)
        run = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, f"{command}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"

    out = tmp_path / "quickstart-out.ipynb"
    reading = repo / "notebooks" / "01_quickstart-read-back.ipynb"  # the quickstart, and the test's cell
    nbformat.write(with_read_back(nbformat.read(repo / "notebooks" / "01_quickstart.ipynb", as_version=4),
                                  "01_quickstart"), reading)
    try:
        run = subprocess.run(
            ["./binder/start", "jupyter", "nbconvert", "--to", "notebook", "--execute",
             "--ExecutePreprocessor.timeout=600", "--output", str(out), str(reading)],
            cwd=repo, env=env, capture_output=True, text=True, timeout=900,
        )
        assert run.returncode == 0, run.stderr[-5000:]
        assert "QMIO QPU simulator: online" in run.stdout + run.stderr
        assert "time scale 360.0x" in run.stdout + run.stderr
        check = read_back(nbformat.read(out, as_version=4))
        assert check["ghz_emu"] == [1.0, 1.0, 1.0] and check["bell_qpu_good"] > 0.8
        lab_list = subprocess.run(["jupyter", "labextension", "list"], env=env, capture_output=True, text=True)
        assert re.search(r"qmio-lab .*enabled", lab_list.stdout + lab_list.stderr)
    finally:
        stop_local_service(home / ".local" / "share" / "qmio_lab")
