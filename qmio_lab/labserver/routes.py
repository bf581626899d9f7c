"""Authenticated ``/qmio/...`` JSON routes; each only translates to and from ``QmioLabManager``."""
from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from qmio_lab.labserver.manager import LabError, QmioLabManager

AUTH_RESOURCE = "qmio"


class QmioHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> QmioLabManager:
        return self.settings["qmio_lab_manager"]

    async def reply(self, work: Awaitable[dict[str, Any]], status: int = 200) -> None:
        try:
            payload = await work
        except LabError as exc:
            status, payload = exc.status, {"error": str(exc), "status": exc.status}
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise tornado.web.HTTPError(400, reason=f"the request body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, reason="the request body must be a JSON object")
        return data

    def int_argument(self, body: dict[str, Any], key: str, default: int) -> int:
        value = body.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise tornado.web.HTTPError(400, reason=f"{key!r} must be an integer, e.g. {default}")
        return value


class QPUStatusHandler(QmioHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(self.manager.qpu_status())


class QPUJobsHandler(QmioHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            limit = int(self.get_argument("limit", "50"))
        except ValueError as exc:
            raise tornado.web.HTTPError(400, reason="limit must be an integer, e.g. 50") from exc
        states = tuple(s for s in self.get_arguments("state") if s)
        await self.reply(self.manager.qpu_jobs(limit, states))

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        """Submit an OpenQASM program: ``{"qasm": "...", "shots": 1000, "name": "bell.qasm"}``."""
        body = self.body()
        shots = self.int_argument(body, "shots", 1000)
        name = body.get("name")
        await self.reply(self.manager.submit_qasm(body.get("qasm"), shots, str(name) if name else None), 201)


class QPUJobHandler(QmioHandler):
    @tornado.web.authenticated
    @authorized
    async def delete(self, job_id: str) -> None:
        await self.reply(self.manager.cancel_job(job_id))


class ChipHandler(QmioHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(self.manager.chip())


class CalibrationsHandler(QmioHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(self.manager.calibrations())


class EmulatorHandler(QmioHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(self.manager.emulator_status())


class EmulatorRunHandler(QmioHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        """Emulate an OpenQASM program: ``{"qasm": "...", "shots": 1000}`` → counts."""
        body = self.body()
        await self.reply(self.manager.emulator_run(body.get("qasm"), self.int_argument(body, "shots", 1000)))


ROUTES: list[tuple[str, type[QmioHandler]]] = [
    ("qmio/qpu/status", QPUStatusHandler),
    ("qmio/qpu/jobs", QPUJobsHandler),
    (r"qmio/qpu/jobs/(?P<job_id>[A-Za-z0-9_.-]+)", QPUJobHandler),
    ("qmio/qpu/chip", ChipHandler),
    ("qmio/qpu/calibrations", CalibrationsHandler),
    ("qmio/emulator", EmulatorHandler),
    ("qmio/emulator/run", EmulatorRunHandler),
]


def setup_routes(web_app: Any) -> None:
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, pattern), handler) for pattern, handler in ROUTES])
