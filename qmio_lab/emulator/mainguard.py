"""Say, in one line, that a script starting the local emulator cluster needs a main guard.

A ``LocalCluster`` starts its workers with multiprocessing's *spawn* method (Dask's default,
``distributed.worker.multiprocessing-method``): each worker process runs the main script again
to rebuild its module. In a plain script whose top level calls the emulator, every worker then
tries to start a cluster of its own while it is still bootstrapping, and the user gets
``RuntimeError: Nanny failed to start`` under several screens of multiprocessing's bootstrapping
text. This module finds that case before any process starts: the main module will be re-run by
the workers and the emulator is being called from its top level, outside an
``if __name__ == "__main__":`` block. Inside a worker that is re-running such a script it stops
the re-run quietly (the parent, which raises the one clear error, speaks for it).
"""
from __future__ import annotations

import ast
import multiprocessing
import sys
from types import FrameType, ModuleType

import dask.config

from qmio_lab.errors import EmulatorClusterError

MESSAGE = (
    "the emulator's local Dask cluster starts worker processes that re-run {script}, and this "
    "script calls the emulator at its top level (line {line}): put that code under "
    "`if __name__ == \"__main__\":`, or run it in a notebook (or set qmio.emulator.cluster to a "
    "running scheduler's address)"
)


def _spawns() -> bool:
    method = dask.config.get("distributed.worker.multiprocessing-method", default="spawn")
    return method == "spawn"


def _rerun_path(main: ModuleType) -> str | None:
    """The file spawned processes execute again as ``__mp_main__`` (multiprocessing's own rule:
    a ``-m`` module unless it is a package's ``__main__``, else a script path), or None."""
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None)
    if name is not None:
        if name == "__main__" or name.endswith(".__main__"):
            return None
        return getattr(spec, "origin", None)
    path = getattr(main, "__file__", None)
    if not path or not str(path).endswith(".py"):
        return None
    return str(path)


def _module_frame(main: ModuleType) -> FrameType | None:
    """The frame running the main module's top-level code, if it is on this thread's stack."""
    frame: FrameType | None = sys._getframe(1)
    namespace = vars(main)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is namespace:
            return frame
        frame = frame.f_back
    return None


def _is_main_test(test: ast.expr) -> tuple[bool, bool]:
    """``(mentions __name__ compared with "__main__", compared with ==)`` for an ``if`` test."""
    for node in ast.walk(test):
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            sides = [node.left, *node.comparators]
            names = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
            if names and main:
                return True, isinstance(node.ops[0], ast.Eq)
    return False, False


def guarded(source: str, line: int) -> bool:
    """Whether ``line`` of ``source`` lies inside an ``if __name__ == "__main__":`` block (or the
    ``else`` of ``if __name__ != "__main__":``). Unreadable source counts as guarded."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return True
    for node in ast.walk(tree):
        if not isinstance(node, ast.If):
            continue
        is_main, equal = _is_main_test(node.test)
        if not is_main:
            continue
        block = node.body if equal else node.orelse
        if block and block[0].lineno <= line <= (block[-1].end_lineno or block[-1].lineno):
            return True
    return False


def check() -> None:
    """Refuse to start a local cluster that cannot start, with the fix (see the module's doc).

    In a worker process re-running an unguarded script, exit quietly instead: multiprocessing
    would print its bootstrapping traceback there, once per worker.
    """
    if not _spawns():
        return
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(1)  # a spawned worker re-running the script; the parent explains
    main = sys.modules.get("__main__")
    if main is None:
        return
    path = _rerun_path(main)
    if path is None:
        return
    frame = _module_frame(main)
    if frame is None:
        return
    try:
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
    except OSError:
        return
    if not guarded(source, frame.f_lineno):
        raise EmulatorClusterError(MESSAGE.format(script=path, line=frame.f_lineno))
