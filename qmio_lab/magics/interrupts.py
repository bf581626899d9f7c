"""Holding a kernel interrupt (SIGINT, Ctrl-C) over a few statements that must not be cut short.

Jupyter interrupts a kernel with SIGINT, and Python raises KeyboardInterrupt wherever the main
thread is. Raised while a cell's job is being submitted, the job exists but the cell never
learns its id, so it cannot be cancelled; raised inside the messages a widget's display sends
(while other threads update widgets too), it can leave the kernel's output channel mid-message,
and that kernel's next cells never finish. Held over such a block, the interrupt is raised
when the block ends, where the caller handles it; a second interrupt during the block is raised
at once, so a block stuck on the network still stops when asked twice.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Held:
    """Whether an interrupt came while the block ran (true once one did)."""

    def __init__(self) -> None:
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0


@contextmanager
def interrupt_held() -> Iterator[Held]:
    """SIGINT during the block is noted, not raised; the caller reads the result after the block.
    Off the main thread (where no signal handler can be set) the block runs unguarded."""
    held = Held()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def note(signum: int, frame: object) -> None:
        held.count += 1
        if held.count > 1:  # asked twice (a submission stuck on a network timeout): stop now
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)


__all__ = ["Held", "interrupt_held"]
