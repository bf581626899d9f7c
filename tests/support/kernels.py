"""A real IPython kernel for the magics tests.

Each test module shares one kernel. The kernel gets its own QMIO_LAB_HOME, so the first QPU call
starts a fresh local QPU service process; teardown stops it by the pid in its discovery file.
"""
from __future__ import annotations

import json
import os
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager
from support.services import stop_local_service as stop_service


class KernelError(AssertionError):
    """A cell raised; ``ename``/``evalue``/``traceback`` say how."""

    def __init__(self, ename: str, evalue: str, traceback: list[str]) -> None:
        super().__init__(f"{ename}: {evalue}\n" + "\n".join(traceback))
        self.ename, self.evalue, self.traceback = ename, evalue, traceback


class Kernel:
    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env={**os.environ, "QMIO_LAB_HOME": str(home), "MPLBACKEND": "agg",
                                  "PYTHONUNBUFFERED": "1", **env})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def execute(self, code: str, timeout: float = 90, *, expect_error: bool = False,
                interrupt_when: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Run a cell; return its stdout, result data, display data and error (if expected).
        ``interrupt_when`` is polled while the cell runs; the kernel is interrupted once it is true."""
        msg_id = self.kc.execute(code, store_history=True)
        out: dict[str, Any] = {"stdout": "", "stderr": "", "result": None, "displays": [], "error": None}
        deadline = time.monotonic() + timeout
        while True:
            if interrupt_when is not None and interrupt_when():
                self.km.interrupt_kernel()
                interrupt_when = None
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell did not finish in {timeout} s:\n{code}")
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind == "execute_result":
                out["result"] = content["data"]
            elif kind == "display_data":
                out["displays"].append(content["data"])
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply = self._reply(msg_id, deadline)
        if reply["status"] == "error":
            out["error"] = KernelError(reply["ename"], reply["evalue"], reply["traceback"])
        if out["error"] is not None and not expect_error:
            raise out["error"]
        if expect_error and out["error"] is None:
            raise AssertionError(f"cell raised nothing:\n{code}")
        return out

    def _reply(self, msg_id: str, deadline: float) -> dict[str, Any]:
        while True:
            msg = self.kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 1))
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]

    def usage_error(self, code: str) -> str:
        """Run a cell that must fail with one UsageError line, no traceback; return the message."""
        out = self.execute(code, expect_error=True)
        err = out["error"]
        assert err.ename == "UsageError", err
        assert err.traceback == [], err.traceback
        assert out["stderr"].strip() == f"UsageError: {err.evalue}", out["stderr"]
        assert "\n" not in err.evalue.strip(), err.evalue
        return err.evalue

    def value(self, expr: str, timeout: float = 60) -> Any:
        """A JSON-able expression evaluated in the kernel."""
        out = self.execute(f"import json as _j; print(_j.dumps({expr}))", timeout)
        return json.loads(out["stdout"].strip().splitlines()[-1])

    def wait_for(self, expr: str, timeout: float = 30) -> Any:
        """Poll a kernel expression until it is truthy (other cells keep running meanwhile)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.value(expr)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"{expr} still false after {timeout} s")

    def service_client(self):
        """A client of the QPU service this kernel started (from its discovery file), as its user."""
        from qmio_lab.qpu import QPUClient

        info = json.loads((self.home / "qpu" / "service.json").read_text())
        return QPUClient(info["url"], info["token"])

    def close(self) -> None:
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=False)
        finally:
            stop_service(self.home)


