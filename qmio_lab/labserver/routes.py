"""Authenticated ``/qmio/...`` JSON routes; each only translates to and from ``QmioLabManager``.

Every refusal, whoever raises it (the manager's :class:`LabError`, tornado, Jupyter's auth),
leaves through one place, :meth:`QmioHandler.write_error`, as ``{"error": message, "status":
code}``. Bodies are streamed and capped, so an oversized one is refused from its headers and
never buffered.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable
from http.client import responses
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from qmio_lab.labserver.manager import EMULATE_FIELDS, MAX_QASM_CHARS, SUBMIT_FIELDS, LabError, QmioLabManager, \
    request_fields

AUTH_RESOURCE = "qmio"
#: The largest request body read: an OpenQASM program at its character limit, each character
#: as up to 4 bytes of UTF-8, and room for the other fields.
MAX_BODY_BYTES = 4 * MAX_QASM_CHARS + 2**16


def _not_a_number(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


@tornado.web.stream_request_body
class QmioHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> QmioLabManager:
        return self.settings["qmio_lab_manager"]

    async def prepare(self) -> None:
        await super().prepare()
        self._chunks: list[bytes] = []
        length = self.request.headers.get("Content-Length", "0").strip()
        if not length.isdigit() or len(length) > 12 or int(length) > MAX_BODY_BYTES:
            raise LabError(413, f"the request body is {length[:20]} bytes; the limit is {MAX_BODY_BYTES} "
                                f"(an OpenQASM program may have at most {MAX_QASM_CHARS} characters)")
        if self.request.connection is not None:  # a chunked body: tornado stops reading at the limit
            self.request.connection.set_max_body_size(MAX_BODY_BYTES)

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)  # at most MAX_BODY_BYTES in all (prepare)

    def json_body(self) -> Any:
        raw = b"".join(self._chunks)
        if not raw.strip():
            return {}
        try:
            return json.loads(raw, parse_constant=_not_a_number)
        except RecursionError:
            raise LabError(400, "the request body nests JSON too deeply") from None
        except ValueError as exc:  # UnicodeDecodeError included
            raise LabError(400, f"the request body is not JSON: {exc}") from exc

    async def reply(self, work: Awaitable[dict[str, Any]], status: int = 200) -> None:
        payload = await work
        self.set_status(status)
        self.finish(json.dumps(payload))

    def update_api_activity(self) -> None:
        """Jupyter reads ``?no_track_activity`` while finishing every reply: undecodable, it
        raised from inside finish() and the request never got an answer at all."""
        try:
            super().update_api_activity()
        except tornado.web.HTTPError:
            pass

    # ---- the one way out for every refusal ------------------------------------------------------
    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, LabError):  # a refusal, not a failure: no traceback
            self.log.info("%d %s: %s", value.status, self._request_summary(), value)
        else:
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, LabError):
            status_code, message = exc.status, str(exc)
            self.set_status(status_code)
        elif isinstance(exc, tornado.web.HTTPError) or exc is None:
            message = self._http_error_message(status_code, exc)
        else:
            message = (f"internal error in the qmio lab server extension ({type(exc).__name__}); "
                       "see the Jupyter server's log")
        self.finish(json.dumps({"error": message, "status": status_code}))

    def _http_error_message(self, status_code: int, exc: tornado.web.HTTPError | None) -> str:
        if exc is not None and exc.log_message:
            try:
                return exc.log_message % exc.args if exc.args else exc.log_message
            except (TypeError, ValueError):
                return exc.log_message
        if status_code == 403:
            return ("forbidden: this needs a signed-in Jupyter user allowed to use qmio "
                    "(log in, or send 'Authorization: token <token>')")
        if status_code == 405:
            allowed = [m for m in ("GET", "POST", "DELETE") if m.lower() in vars(type(self))]
            return (f"{self.request.method[:10]} is not allowed on {self.request.path[:200]}; "
                    f"use {' or '.join(allowed) or 'another route'}")
        return responses.get(status_code, "HTTP error")


class QPUStatusHandler(QmioHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(self.manager.qpu_status())


class QPUJobsHandler(QmioHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        await self.reply(self.manager.qpu_jobs(self.get_argument("limit", "50"), self.get_arguments("state")))

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        """Submit an OpenQASM program: ``{"qasm": "...", "shots": 1000, "name": "bell.qasm"}``."""
        fields = request_fields(self.json_body(), SUBMIT_FIELDS)
        await self.reply(self.manager.submit_qasm(**fields), 201)


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
        fields = request_fields(self.json_body(), EMULATE_FIELDS)
        await self.reply(self.manager.emulator_run(**fields))


class NoRouteHandler(QmioHandler):
    """Any other path under ``/qmio``: a JSON 404 naming the routes, not Jupyter's HTML page."""

    async def prepare(self) -> None:
        await super().prepare()
        if self.current_user is None:
            raise tornado.web.HTTPError(403)
        routes = ", ".join("/" + pattern.split("(")[0] + ("<job id>" if "(" in pattern else "") for pattern, _ in ROUTES)
        raise LabError(404, f"no /qmio route at {self.request.path[:200]!r}; the routes are {routes}")


ROUTES: list[tuple[str, type[QmioHandler]]] = [
    ("qmio/qpu/status", QPUStatusHandler),
    ("qmio/qpu/jobs", QPUJobsHandler),
    (r"qmio/qpu/jobs/(?P<job_id>[^/]+)", QPUJobHandler),  # the manager says which ids are ids
    ("qmio/qpu/chip", ChipHandler),
    ("qmio/qpu/calibrations", CalibrationsHandler),
    ("qmio/emulator", EmulatorHandler),
    ("qmio/emulator/run", EmulatorRunHandler),
]
NO_ROUTE = (r"qmio(?:/.*)?", NoRouteHandler)  # after ROUTES: what none of them matched


def setup_routes(web_app: Any) -> None:
    base = web_app.settings["base_url"]
    routes = [*ROUTES, NO_ROUTE]
    web_app.add_handlers(".*$", [(url_path_join(base, pattern), handler) for pattern, handler in routes])
