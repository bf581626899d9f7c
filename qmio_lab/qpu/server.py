"""HTTP/JSON front of the queue service (tornado). Handlers only translate; QPUService decides.

Every error is a 4xx/5xx with a JSON body ``{"error": message, "status": code}`` whose message
says what to change. Nothing from the network is unpickled: circuits come as QASM or QPY.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from datetime import datetime
from typing import Any

import tornado.web

from qmio_lab import config
from qmio_lab.errors import AdmissionError, CalibrationFileError, SubmissionError
from qmio_lab.qpu import submission
from qmio_lab.qpu.admission import check_reservation
from qmio_lab.qpu.auth import User
from qmio_lab.qpu.service import QPUService
from qmio_lab.qpu.store import STATES as JOB_STATES
from qmio_lab.qpu.usage import MAX_USAGE_DAYS

log = logging.getLogger(__name__)
MAX_WAIT_S = 60.0
_MAX_LIST = 10000  # jobs one listing returns at most


class ApiError(tornado.web.HTTPError):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(status, reason=None)
        self.message = message
        self.extra = extra

    @classmethod
    def refused(cls, exc: SubmissionError) -> ApiError:
        return cls(exc.status, str(exc), **exc.figures)


def ascii_int(text: str, max_digits: int) -> int | None:
    """``text`` as a non-negative integer of at most ``max_digits`` ASCII digits, else None.
    ``str.isdigit`` is not the test: it accepts '²' and other digits ``int`` refuses."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def payload_limit_bytes() -> int:
    return int(float(config.get("qpu.max_payload_mb")) * 1024 * 1024)


def _too_large(size: int | str, limit: int) -> ApiError:
    return ApiError(413, f"payload is {size} bytes; the limit is {limit} bytes "
                         f"({limit / 2**20:g} MB, qmio.qpu.max_payload_mb). Split the circuits over several jobs.")


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Bodies are streamed, so nothing of a request's body is read before its sender is known
    and its size is within the payload limit."""

    requires_auth = True
    # Set once prepare() has let the body be read. An answer before that ends the connection:
    # tornado cannot tell where the next request would start.
    _body_wanted = False

    @property
    def service(self) -> QPUService:
        return self.settings["service"]

    async def prepare(self) -> None:
        self.user: User | None = None
        self._chunks: list[bytes] = []
        if self.requires_auth:
            self.user = await self.service.auth.authenticate(self.request.headers.get("Authorization"))
            if self.user is None:
                raise ApiError(401, "missing or invalid token: send 'Authorization: Bearer <token>'")
        self._limit = payload_limit_bytes()
        length = self.request.headers.get("Content-Length")
        if length is not None and ((size := ascii_int(length.strip(), 19)) is None or size > self._limit):
            self.service.metrics.rejected.labels("413").inc()
            raise _too_large(length.strip()[:20], self._limit)
        if self.request.connection is not None:
            # a chunked body (no Content-Length) is cut off by tornado itself at the limit, with
            # a bare 400 and the connection closed: nothing beyond the limit is ever buffered
            self.request.connection.set_max_body_size(self._limit)
        self._body_wanted = True

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)  # at most the limit: set_max_body_size in prepare()

    @property
    def body(self) -> bytes:
        return b"".join(self._chunks)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body: dict[str, Any] = {"status": status_code}
        if not self._body_wanted:  # say so, or a keep-alive proxy (JupyterHub's) reuses it
            self.set_header("Connection", "close")
        if isinstance(exc, ApiError):
            body["error"] = exc.message
            body.update(exc.extra)
            again = exc.extra.get("resets_at") or exc.extra.get("retry_at")
            if status_code == 429 and isinstance(again, str):  # when trying again can succeed
                with contextlib.suppress(ValueError):
                    wait = datetime.fromisoformat(again).timestamp() - time.time()
                    self.set_header("Retry-After", str(max(math.ceil(wait), 1)))
        elif isinstance(exc, tornado.web.HTTPError):
            body["error"] = exc.log_message or self._reason
        else:
            body["error"] = "internal error in the QPU service; see its log"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def send(self, payload: Any, status: int = 200) -> None:
        self.send_json_text(json.dumps(payload), status)

    def send_json_text(self, text: str, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(text)

    def json_body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body or b"{}", parse_constant=_no_constant)
        except RecursionError:
            raise ApiError(400, "request body nests JSON too deeply") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        return data

    def owned_job(self, job_id: str) -> dict[str, Any]:
        job = self.service.store.job(job_id)
        if job is None:
            raise ApiError(404, f"no job with id {job_id!r}; list yours with GET /api/v1/jobs")
        assert self.user is not None
        if job["user"] != self.user.name and not self.user.is_admin:
            raise ApiError(403, f"job {job_id!r} belongs to another user")
        return job

    async def check_slurm(self, slurm_job_id: str | None) -> None:
        assert self.user is not None
        try:
            await submission.check_slurm(self.service, self.user, slurm_job_id)
        except SubmissionError as exc:
            raise ApiError.refused(exc) from exc

    async def long_poll(self, job: dict[str, Any], until_terminal: bool, timeout: float | None = None) -> dict[str, Any]:
        """With ``?wait=S`` (or ``timeout``): hold the request until the job changes state (or
        ends), at most S s.

        A waiting client hears of a change at once, so no client needs to poll in a loop.
        """
        if timeout is None:
            wait = self.get_argument("wait", None)
            if wait is None:
                return job
            try:
                timeout = float(wait)
            except ValueError:
                timeout = math.nan
            if not math.isfinite(timeout) or timeout < 0:
                raise ApiError(400, f"wait must be a number of seconds from 0 to {MAX_WAIT_S:g}; got {wait[:20]!r}")
        return await self.service.wait_for_job(job, min(timeout, MAX_WAIT_S), until_terminal=until_terminal)

    def require_admin(self) -> None:
        assert self.user is not None
        if not self.user.is_admin:
            raise ApiError(403, f"user {self.user.name!r} is not an admin; this needs the admin role")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _slurm_job_id(body: dict[str, Any]) -> str | None:
    try:
        return submission.slurm_job_id(body)
    except SubmissionError as exc:
        raise ApiError.refused(exc) from exc


class JobsHandler(BaseHandler):
    def get(self) -> None:
        assert self.user is not None
        states = tuple(s for s in self.get_arguments("state") if s)
        raw = self.get_argument("limit", "100")
        if (limit := ascii_int(raw, 6)) is None or not 1 <= limit <= _MAX_LIST:
            raise ApiError(400, f"limit must be an integer from 1 to {_MAX_LIST}; got {raw[:20]!r}")
        unknown = [s for s in states if s not in JOB_STATES]
        if unknown:
            raise ApiError(400, f"unknown state {unknown[0][:20]!r}; use one of {', '.join(JOB_STATES)}")
        owner = None if (self.user.is_admin and self.get_argument("all", "1") != "0") else self.user.name
        jobs = self.service.store.jobs(user=owner, states=states or None, limit=limit)
        self.send({"jobs": [self.service.job_view(j) for j in jobs]})

    async def post(self) -> None:
        assert self.user is not None
        svc = self.service
        try:
            submitted = await submission.submit_job(svc, self.user, self.json_body())
        except SubmissionError as exc:
            raise ApiError.refused(exc) from exc
        job = submitted.job
        warnings = {"warnings": list(submitted.warnings)} if submitted.warnings else {}
        self.set_header("Location", f"/api/v1/jobs/{job['id']}")
        if self.get_argument("wait", None) is not None:
            # Synchronous submission (as QMIO's own client): one round trip for job and result.
            svc.executor.wake()
            job = await self.long_poll(job, until_terminal=True)
            reply = json.dumps({**svc.job_view(job), **warnings})
            result = svc.store.result_json(job["id"]) if job["state"] == "done" else None
            if result is not None:  # splice the stored JSON in rather than parse and re-encode it
                reply = f'{reply[:-1]}, "result": {result}}}'
            self.send_json_text(reply, status=201)
            return
        self.send({**svc.job_view(job), **warnings}, status=201)
        # Wake the QPU only once the reply is on its way: claiming and compiling the job take the
        # GIL, and the client should not wait for them to hear that it was accepted.
        svc.executor.wake()


class JobHandler(BaseHandler):
    async def get(self, job_id: str) -> None:
        job = await self.long_poll(self.owned_job(job_id), until_terminal=False)
        self.send(self.service.job_view(job))

    def put(self, job_id: str) -> None:
        """An admin grants a queued job a boost over other users' jobs: ``{"boost": N}``."""
        self.require_admin()
        self.owned_job(job_id)
        boost = self.json_body().get("boost")
        if isinstance(boost, bool) or not isinstance(boost, int) or not 0 <= boost <= 1000:
            raise ApiError(422, f"boost must be an integer from 0 to 1000; got {str(boost)[:30]}")
        if not self.service.store.set_boost(job_id, boost):
            raise ApiError(409, f"job {job_id!r} is no longer queued; only queued jobs can be boosted")
        self.service.executor.wake()
        self.send(self.service.job_view(self.service.store.job(job_id)))  # type: ignore[arg-type]

    async def delete(self, job_id: str) -> None:
        job = self.owned_job(job_id)
        if self.service.store.cancel(job_id):
            self.service.metrics.finished.labels("cancelled").inc()
            cancelled = self.service.store.job(job_id)
            assert cancelled is not None
            self.service.events.notify(cancelled)  # whoever waits on it hears at once
            self.send(self.service.job_view(cancelled))
            return
        job = self.service.store.job(job_id) or job
        if job["state"] == "running":
            assert self.user is not None
            if not self.service.executor.stop_running(job_id, self.user.name):
                raise ApiError(409, f"job {job_id!r} is finishing on the QPU; it can no longer be stopped",
                               state="running")
            stopped = await self.long_poll(job, until_terminal=True, timeout=30)  # a stopped job ends in moments
            if stopped["state"] != "cancelled":
                raise ApiError(409, f"job {job_id!r} finished ({stopped['state']}) before it could be stopped",
                               state=stopped["state"])
            self.send(self.service.job_view(stopped))
            return
        raise ApiError(409, f"job {job_id!r} has already ended ({job['state']}); nothing to cancel",
                       state=job["state"])


class ResultHandler(BaseHandler):
    async def get(self, job_id: str) -> None:
        job = await self.long_poll(self.owned_job(job_id), until_terminal=True)
        if job["state"] == "done":
            result = self.service.store.result_json(job_id)
            if result is not None:
                self.send_json_text(result)
                return
        view = self.service.job_view(job)
        if job["state"] in ("queued", "running"):
            where = f" (queue position {view['queue_position']})" if view["queue_position"] else ""
            raise ApiError(409, f"job {job_id!r} is {job['state']}{where}; its result is not ready yet. "
                                f"Poll GET /api/v1/jobs/{job_id}?wait=30", state=job["state"])
        reason = f": {job['error']}" if job["error"] else ""
        raise ApiError(409, f"job {job_id!r} {job['state']} and has no result{reason}", state=job["state"])


class StatusHandler(BaseHandler):
    def get(self) -> None:
        self.send(self.service.status())

    def put(self) -> None:
        self.require_admin()
        body = self.json_body()
        if not isinstance(body.get("maintenance"), bool):
            raise ApiError(400, 'send {"maintenance": true} or {"maintenance": false}')
        self.service.executor.set_maintenance(body["maintenance"])
        self.send(self.service.status())


class CalibrationHandler(BaseHandler):
    def get(self) -> None:
        cal = self.service.calibration_in_force()
        self.send({**cal.to_dict(), "summary": cal.summary(), "age_s": cal.age.total_seconds()})


class CalibrationsHandler(BaseHandler):
    def get(self) -> None:
        full = self.get_argument("full", "0") == "1"
        items = []
        for cal in self.service.device.history:
            item = {"id": cal.id, "taken_at": cal.taken_at.isoformat(), "summary": cal.summary()}
            if full:
                item["calibration"] = cal.to_dict()
            items.append(item)
        self.send({"calibrations": items})

    async def post(self) -> None:
        self.require_admin()
        cal = await asyncio.wrap_future(self.service.executor.request_calibration())
        self.send({**cal.to_dict(), "summary": cal.summary()}, status=201)


class CalibrationImportHandler(BaseHandler):
    """Admin: real QMIO calibration files into the history (``qmio calibration import``)."""

    _MAX_FILES = 1000

    def post(self) -> None:
        self.require_admin()
        files = self.json_body().get("files")
        if not isinstance(files, list) or not 1 <= len(files) <= self._MAX_FILES:
            raise ApiError(400, f'send {{"files": [{{"name": "YYYY_MM_DD__HH_MM_SS.json", "content": {{...}}}}]}} '
                                f"with 1 to {self._MAX_FILES} files")
        pairs = []
        for i, item in enumerate(files):
            if not (isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("content"), dict)):
                raise ApiError(400, f"files[{i}] must be {{\"name\": <file name>, \"content\": <the file's JSON object>}}")
            pairs.append((item["name"], item["content"]))
        try:
            imported = self.service.import_calibrations(pairs)
        except CalibrationFileError as exc:
            raise ApiError(422, str(exc)) from exc
        in_force = self.service.device.calibration.id
        self.send({"imported": [
            {"id": item.calibration.id, "taken_at": item.calibration.taken_at.isoformat(), "notes": list(item.notes),
             "missing_pairs": [list(p) for p in item.missing_pairs], "in_force": item.calibration.id == in_force}
            for item in imported]}, status=201)


class CalibrationByIdHandler(BaseHandler):
    def get(self, cal_id: str) -> None:
        try:
            cal = self.service.device.calibration_by_id(cal_id)
        except LookupError as exc:
            raise ApiError(404, str(exc)) from exc
        self.send({**cal.to_dict(), "summary": cal.summary()})


class SessionsHandler(BaseHandler):
    """Exclusive reservations: while one is open only its holder's jobs run (QMIO's tunnels)."""

    def get(self) -> None:
        assert self.user is not None
        owner = None if self.user.is_admin else self.user.name
        self.send({"sessions": [self.service.session_view(s) for s in self.service.store.sessions(owner)]})

    async def post(self) -> None:
        assert self.user is not None
        body = self.json_body()
        unknown = set(body) - {"max_time_s", "slurm_job_id"}
        if unknown:
            raise ApiError(400, f"unknown field(s) {sorted(unknown)[:5]}; allowed: max_time_s, slurm_job_id")
        await self.check_slurm(_slurm_job_id(body))
        limit = float(config.get("qpu.max_session_s"))
        max_time = body.get("max_time_s", limit)
        if isinstance(max_time, bool) or not isinstance(max_time, (int, float)) or not 0 < max_time <= limit:
            raise ApiError(422, f"max_time_s must be a number of seconds from 1 to {limit:.0f}; got {max_time!r}")
        if not self.user.is_admin:
            try:
                check_reservation(self.service.store, self.user.name, float(max_time), time.time())
            except AdmissionError as exc:
                self.service.metrics.rejected.labels("429").inc()
                raise ApiError(429, str(exc), retry_at=exc.retry_at) from exc
        session, opened = self.service.store.open_session(self.user.name, float(max_time),
                                                          self.user.charged_account)
        if not opened:
            until = self.service.session_view(session)["expires_at"]
            if session["user"] == self.user.name:
                message = (f"you already hold session {session['id']} until {until}; close it first "
                           f"(DELETE /api/v1/sessions/{session['id']})")
            else:
                message = (f"the QPU is reserved by another user until {until}; your jobs still queue "
                           "and run when the reservation ends")
            raise ApiError(409, message, reserved_until=until)
        self.service.executor.wake()
        self.send(self.service.session_view(session), status=201)

    def delete(self) -> None:
        assert self.user is not None
        closed = self.service.store.close_sessions(self.user.name)
        self.service.executor.wake()
        self.send({"closed": closed})


class SessionHandler(BaseHandler):
    def delete(self, sid: str) -> None:
        assert self.user is not None
        session = self.service.store.session(sid)
        if session is None:
            raise ApiError(404, f"no session with id {sid!r}")
        if session["user"] != self.user.name and not self.user.is_admin:
            raise ApiError(403, f"session {sid!r} belongs to another user")
        self.service.store.close_sessions(session["user"], sid)
        self.service.executor.wake()
        self.send(self.service.session_view(self.service.store.session(sid)))  # type: ignore[arg-type]


class TunnelsHandler(BaseHandler):
    """Per-user endpoints of QMIO's ZeroMQ protocol (qmio_lab.qpu.gateway), for its own client."""

    def get(self) -> None:
        assert self.user is not None
        owner = None if self.user.is_admin else self.user.name
        self.send({"tunnels": [t.view() for t in self.service.tunnels.of(owner)]})

    async def post(self) -> None:
        assert self.user is not None
        body = self.json_body()
        unknown = set(body) - {"max_time_s", "port", "slurm_job_id"}
        if unknown:
            raise ApiError(400, f"unknown field(s) {sorted(unknown)[:5]}; allowed: max_time_s, port, slurm_job_id")
        job_id = _slurm_job_id(body)
        await self.check_slurm(job_id)
        try:
            tunnel = self.service.tunnels.open(self.user, body.get("max_time_s", 180), port=body.get("port"),
                                               slurm_job_id=job_id)
        except SubmissionError as exc:
            raise ApiError.refused(exc) from exc
        self.send(tunnel.view(), status=201)


class TunnelHandler(BaseHandler):
    def delete(self, tunnel_id: str) -> None:
        assert self.user is not None
        tunnel = self.service.tunnels.get(tunnel_id)
        if tunnel is None:
            raise ApiError(404, f"no tunnel with id {tunnel_id!r}; list yours with GET /api/v1/tunnels")
        if tunnel.user.name != self.user.name and not self.user.is_admin:
            raise ApiError(403, f"tunnel {tunnel_id!r} belongs to another user")
        self.service.tunnels.close(tunnel_id)
        self.send(tunnel.view())


class UsageHandler(BaseHandler):
    """QPU seconds per day, user and account, with the budgets: the caller's own, or (admins,
    ``?user=NAME`` or ``?all=true``) anyone's."""

    def get(self) -> None:
        assert self.user is not None
        raw = self.get_argument("days", "7")
        if (days := ascii_int(raw, 4)) is None or not 1 <= days <= MAX_USAGE_DAYS:
            raise ApiError(400, f"days must be an integer from 1 to {MAX_USAGE_DAYS}; got {raw[:20]!r}")
        who: str | None = self.user.name
        other = self.get_argument("user", None)
        everyone = self.get_argument("all", "false").lower() in ("1", "true", "yes")
        if other is not None or everyone:
            self.require_admin()
            who = None if everyone else other
        account = self.user.charged_account if who == self.user.name else None
        report = self.service.accounting.report(who, days, time.time(), account=account)
        self.send({**report, "timing": self.service.timing.mode, "user": who})


class MetricsHandler(BaseHandler):
    """Unauthenticated like any Prometheus target: it exposes device figures and counts only.
    QPU seconds by account come too when the scrape sends an admin's bearer token (Prometheus's
    ``authorization: {credentials: ...}``)."""

    requires_auth = False

    async def get(self) -> None:
        svc = self.service
        body = svc.metrics.render(svc.state, svc.store.counts_by_state(), svc.calibration_in_force())
        if self.request.headers.get("Authorization"):  # anyone else's token sees what everyone sees
            user = await svc.auth.authenticate(self.request.headers.get("Authorization"))
            if user is not None and user.is_admin:
                body += svc.metrics.render_usage()
        self.set_header("Content-Type", "text/plain; version=0.0.4")
        self.finish(body)


class NotFoundHandler(BaseHandler):
    requires_auth = False

    def prepare(self) -> None:
        raise ApiError(404, f"no such endpoint {self.request.method} {self.request.path}; see /api/v1/status")


_SLOW_REQUEST_S = 1.0
_METHODS = ("GET", "POST", "PUT", "DELETE")  # label values; anything else counts as "other"
_access_log = logging.getLogger("tornado.access")


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Log refused, failed and slow requests; successful ones only at DEBUG.

    A hybrid loop makes hundreds of thousands of calls: an INFO line for each would bury the
    log and cost every call time. Counts of everything are on /metrics.
    """
    status = handler.get_status()
    seconds = handler.request.request_time()
    service = handler.settings.get("service")
    if service is not None:
        method = handler.request.method if handler.request.method in _METHODS else "other"
        service.metrics.requests.labels(method, str(status)).inc()
    if status >= 500:
        level = logging.ERROR
    elif status >= 400:
        level = logging.WARNING
    elif seconds > _SLOW_REQUEST_S and handler.get_argument("wait", None) is None:
        level = logging.INFO
    else:
        level = logging.DEBUG
    if _access_log.isEnabledFor(level):
        summary = handler._request_summary()
        if len(summary) > 300:  # a hostile URL must not flood the log
            summary = summary[:300] + f"... ({len(summary)} characters)"
        _access_log.log(level, "%d %s %.2fms", status, summary, 1000 * seconds)


def make_app(service: QPUService, prefix: str = "/") -> tornado.web.Application:
    """Routes under ``prefix`` (``/services/<name>/`` behind a JupyterHub proxy)."""
    jid = r"([A-Za-z0-9_\-]+)"
    base = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    routes = [
        (r"api/v1/jobs/?", JobsHandler),
        (rf"api/v1/jobs/{jid}/?", JobHandler),
        (rf"api/v1/jobs/{jid}/result/?", ResultHandler),
        (r"api/v1/status/?", StatusHandler),
        (r"api/v1/calibration/?", CalibrationHandler),
        (r"api/v1/calibrations/?", CalibrationsHandler),
        (r"api/v1/calibrations/import/?", CalibrationImportHandler),
        (r"api/v1/calibrations/([A-Za-z0-9_\-:.+]+)/?", CalibrationByIdHandler),
        (r"api/v1/sessions/?", SessionsHandler),
        (rf"api/v1/sessions/{jid}/?", SessionHandler),
        (r"api/v1/tunnels/?", TunnelsHandler),
        (rf"api/v1/tunnels/{jid}/?", TunnelHandler),
        (r"api/v1/usage/?", UsageHandler),
        (r"metrics", MetricsHandler),
    ]
    return tornado.web.Application(
        [(base + pattern, handler) for pattern, handler in routes],
        default_handler_class=NotFoundHandler,
        service=service,
        log_function=log_request,
    )
