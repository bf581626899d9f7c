"""Real unix accounts for tests whose processes must run as other users (SLURM jobs of Hub users).

SLURM runs a job as its owner, so a Hub user whose server is a SLURM job must be a unix user
who can read this checkout's venv. Creating accounts needs root; elsewhere the tests that need
them are skipped (or fail in CI, ``support.missing``).
"""
from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.missing import missing

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def can_use_checkout(user: str) -> subprocess.CompletedProcess:
    """Whether ``user`` can run this venv's Python and import what a user server needs."""
    return _run("runuser", "-u", user, "--", sys.executable, "-c",
                "import qmio_lab, jupyterhub.singleuser, batchspawner, jupyterlab")


def needed_by_jobs() -> list[Path]:
    """What a job of another user runs: this checkout (its venv) and the venv's base Python."""
    return [ROOT, Path(sys.executable).resolve().parent, Path(sys.base_prefix).resolve()]


@contextmanager
def traversable_checkout() -> Iterator[list[Path]]:
    """Let other users reach this checkout and its Python: directories above them that others
    cannot enter (a clone or a pyenv under /root, say) get the search bit (o+x: enter, not
    list) until the block ends, and get their modes back then (a run killed meanwhile leaves the
    search bit on them: harmless, and the next run finds nothing to change)."""
    changed: list[tuple[Path, int]] = []
    dirs = dict.fromkeys(d for path in needed_by_jobs() for d in [*reversed(path.parents), path])
    for parent in dirs:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
            changed.append((parent, mode))
    try:
        yield [p for p, _ in changed]
    finally:
        for parent, mode in reversed(changed):
            parent.chmod(stat.S_IMODE(mode))


@contextmanager
def unix_users(names: list[str], homes: Path) -> Iterator[list[str]]:
    """Unix accounts ``names`` (homes under ``homes``), removed afterwards. Names must be the
    tests' own: an account of that name left by an earlier, killed run is replaced."""
    if os.geteuid() != 0:
        missing("creating unix users for SLURM jobs needs root (useradd)")
    made = []
    homes.mkdir(parents=True, exist_ok=True)
    homes.chmod(0o755)
    try:
        for name in names:
            if _exists(name):  # left by a run that was killed: these names are the tests' own
                _run("userdel", "--force", name)
            out = _run("useradd", "--create-home", "--home-dir", str(homes / name), "--shell", "/bin/bash",
                       "--user-group", name)
            if out.returncode != 0:
                missing(f"useradd {name} failed ({out.returncode}): {out.stderr.strip()}")
            made.append(name)
        yield names
    finally:
        for name in made:
            _run("userdel", "--force", name)


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
