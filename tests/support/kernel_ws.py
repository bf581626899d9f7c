"""Run code in a Jupyter Server's kernel over its websocket API, as a browser would."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


def _message(code: str, session: str) -> dict:
    msg_id = uuid.uuid4().hex
    return {
        "header": {"msg_id": msg_id, "username": "test", "session": session, "msg_type": "execute_request",
                   "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }


def _json_part(raw: str | bytes) -> str | bytes:
    """The JSON of a websocket message: a message with binary buffers (widgets send them) comes
    as a binary frame: a count, offsets (4-byte big-endian each), the JSON, then the buffers."""
    if isinstance(raw, str):
        return raw
    count = int.from_bytes(raw[:4], "big")
    offsets = [int.from_bytes(raw[4 * (i + 1):4 * (i + 2)], "big") for i in range(count)]
    return raw[offsets[0]:offsets[1] if count > 1 else None]


async def _execute(ws_url: str, headers: dict, code: str, timeout: float) -> tuple[str, list[str]]:
    conn = await websocket_connect(HTTPRequest(ws_url, headers=headers, request_timeout=timeout))
    msg = _message(code, uuid.uuid4().hex)
    conn.write_message(json.dumps(msg))
    out, errors = [], []
    async def pump() -> None:
        while True:
            raw = await conn.read_message()
            if raw is None:
                raise ConnectionError("kernel websocket closed")
            reply = json.loads(_json_part(raw))
            if reply.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind = reply["msg_type"]
            if kind == "stream":
                out.append(reply["content"]["text"])
            elif kind == "error":
                errors.append("\n".join(reply["content"]["traceback"]))
            elif kind == "status" and reply["content"]["execution_state"] == "idle":
                return
    try:
        await asyncio.wait_for(pump(), timeout)
    finally:
        conn.close()
    return "".join(out), errors


@contextmanager
def new_kernel(server_url: str, token: str, timeout: float = 180) -> Iterator[Callable[[str], tuple[str, list[str]]]]:
    """A new kernel on ``server_url`` for the block: call the yielded function with a cell's code
    to run it there, as a notebook would; it returns ``(printed text, error tracebacks)``, the
    text being stdout and stderr together. The kernel is shut down when the block ends."""
    headers = {"Authorization": f"token {token}"}
    resp = requests.post(f"{server_url}/api/kernels", headers=headers, json={"name": "python3"}, timeout=60)
    resp.raise_for_status()
    kernel = resp.json()["id"]
    ws = server_url.replace("http", "ws", 1) + f"/api/kernels/{kernel}/channels"
    try:
        yield lambda code: asyncio.run(_execute(ws, headers, code, timeout))
    finally:
        requests.delete(f"{server_url}/api/kernels/{kernel}", headers=headers, timeout=30)


def run_cells_in_new_kernel(server_url: str, token: str, cells: list[str],
                            timeout: float = 180) -> list[tuple[str, list[str]]]:
    """Run ``cells`` one after another in one new kernel; each cell's ``(stdout, error
    tracebacks)``. A cell that raises does not stop the next ones: tests look at what it said."""
    with new_kernel(server_url, token, timeout) as run:
        return [run(code) for code in cells]


def run_in_new_kernel(server_url: str, token: str, code: str, timeout: float = 180) -> str:
    """Start a kernel on ``server_url`` (e.g. http://hub/user/alice), run ``code``, return what it printed."""
    with new_kernel(server_url, token, timeout) as run:
        stdout, errors = run(code)
    if errors:
        raise AssertionError("kernel raised:\n" + "\n".join(errors))
    return stdout
