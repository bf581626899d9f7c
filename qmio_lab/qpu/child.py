"""Child processes of the service: started on a socket pair, bounded, and gone with the service.

The service runs untrusted work (parsing and compiling circuits) and heavy work (simulating) in
children so that a runaway cannot take the HTTP loop down with it. Each child here:

- is a plain ``python -m <module> <fd> ...`` (multiprocessing's fork would copy the service's
  threads and sockets; its spawn would re-import the service's main module);
- dies with the service (``PR_SET_PDEATHSIG``): a ``kill -9`` of the service leaves no simulator
  or compiler behind holding a core;
- may be given a memory budget (``RLIMIT_DATA``: heap and anonymous mappings, what a register
  or gate bomb allocates) and a CPU-seconds budget (``RLIMIT_CPU``).
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection

_PR_SET_PDEATHSIG = 1
#: The marker every child of the service carries in its environment, so a restarted service
#: can find the children its predecessor left (for instance after the machine's OOM killer).
CHILD_MARKER = "QMIO_SERVICE_CHILD"


def _die_with_parent(parent_pid: int) -> None:
    """In the child, before exec: ask the kernel for SIGKILL when the parent goes."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the EOF on the pipe still ends the child
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _limits(memory_bytes: int | None, cpu_seconds: int | None) -> Callable[[], None]:
    parent = os.getpid()

    def apply() -> None:
        _die_with_parent(parent)
        if memory_bytes:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
        if cpu_seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    return apply


def start_child(module: str, args: Sequence[str] = (), *, memory_bytes: int | None = None,
                cpu_seconds: int | None = None) -> tuple[subprocess.Popen, Connection]:
    """Start ``python -m module <fd> *args``; returns the process and our end of the pipe."""
    ours, theirs = socket.socketpair()
    env = {**os.environ, CHILD_MARKER: str(os.getpid()),
           # one thread each: a child is given one core's worth of work
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", module, str(theirs.fileno()), *args],
        pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
        preexec_fn=_limits(memory_bytes, cpu_seconds),
    )
    theirs.close()
    return proc, Connection(ours.detach())


def kill(proc: subprocess.Popen | None, conn: Connection | None) -> int | None:
    """Stop a child at once (it may be in a runaway loop); returns its exit code."""
    if conn is not None:
        conn.close()
    if proc is None:
        return None
    if proc.poll() is None:
        proc.kill()
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return None


def how_it_ended(code: int | None) -> str:
    """A child's exit code in words, for the message of the job or circuit it took with it."""
    return f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"


def reap_stale_children() -> list[int]:
    """Kill children an earlier service process left behind (whose parent is gone); returns
    their pids. Children of a live service (another one on this machine) are left alone."""
    import psutil

    killed = []
    for proc in psutil.process_iter(["pid", "environ"]):
        try:
            owner = (proc.info.get("environ") or {}).get(CHILD_MARKER)
            if owner is None or int(owner) == os.getpid() or psutil.pid_exists(int(owner)):
                continue
            proc.kill()
            killed.append(proc.pid)
        except (psutil.Error, ValueError):
            continue
    return killed
