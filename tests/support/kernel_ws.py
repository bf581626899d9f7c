"""Run code in a Jupyter Server's kernel over its websocket API, as a browser would."""
from __future__ import annotations

import asyncio
import json
import uuid

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
            reply = json.loads(raw)
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


def run_in_new_kernel(server_url: str, token: str, code: str, timeout: float = 180) -> str:
    """Start a kernel on ``server_url`` (e.g. http://hub/user/alice), run ``code``, return stdout."""
    headers = {"Authorization": f"token {token}"}
    resp = requests.post(f"{server_url}/api/kernels", headers=headers, json={"name": "python3"}, timeout=60)
    resp.raise_for_status()
    kernel = resp.json()["id"]
    ws = server_url.replace("http", "ws", 1) + f"/api/kernels/{kernel}/channels"
    try:
        stdout, errors = asyncio.run(_execute(ws, headers, code, timeout))
    finally:
        requests.delete(f"{server_url}/api/kernels/{kernel}", headers=headers, timeout=30)
    if errors:
        raise AssertionError("kernel raised:\n" + "\n".join(errors))
    return stdout
