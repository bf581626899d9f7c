"""QMIO's ZeroMQ gateway: tunnels through which the unmodified ``qmio`` client reaches the queue.

At QMIO a user opens a short "tunnel" (a SLURM job of at most 15 minutes) and points the client
at it with ``ZMQ_SERVER=tcp://host:port``. Here a tunnel is a ZeroMQ ROUTER socket that the
service opens for one user, on loopback (or the address in ``qmio.qpu.gateway.host``), until its
time limit. Each request the client sends becomes an ordinary job of the queue, owned by the
tunnel's user, taken through :func:`qmio_lab.qpu.submission.submit_job` like an HTTP submission
(admission limits, fair share, the SLURM gate, accounting, cancellation); its reply is the
real server's plain dict. Requests are read by :mod:`qmio_lab.qpu.qmio_wire`, which never
unpickles anything but plain data.

Every request that reaches the gateway is answered, because the client waits without a timeout:
a refusal, a failed job and a request to a tunnel past its time all get ``{"Exception": ...}``. An
expired tunnel keeps answering so for ``expired_grace_s``, then closes its socket.

One message never reaches it: one over the socket's hard cap (:attr:`GatewayLimits.hard_cap_bytes`,
four times ``max_message_kb`` plus 4 KiB). ZeroMQ reads only its size, drops the sender's
connection and keeps none of it, so no client can make the service hold a huge message. That
request is never answered: QMIO's client, which waits for ever, has to be interrupted, and its
socket (a REQ socket still waiting for that reply) cannot send again. A new client session
(``QmioRuntimeService().backend(...)``) on the same tunnel is served as usual, and so is everyone
else meanwhile. A message between ``max_message_kb`` and the hard cap gets an answer saying
what the limit is.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio
from qiskit import qasm2, qasm3

from qmio_lab import __version__, config
from qmio_lab.errors import GatewayRequestError, QmioError, SubmissionError
from qmio_lab.lru import LRU
from qmio_lab.qpu import qmio_wire, submission
from qmio_lab.qpu.auth import User
from qmio_lab.qpu.store import TERMINAL_STATES

if TYPE_CHECKING:
    from qmio_lab.qpu.service import QPUService

log = logging.getLogger(__name__)
_QASM_VERSION = re.compile(r"^\s*(?://[^\n]*\n\s*)*OPENQASM\s+(\d)", re.ASCII)
# a request waits for its job's end, woken by the executor's push of the change (no polling);
# past this without a word the job is read back from the store, in case a change was missed
_WAIT_STEP_S = 60.0


@dataclass(frozen=True)
class GatewayLimits:
    """The ``qmio.qpu.gateway`` settings."""

    host: str
    max_tunnel_s: float
    max_tunnels_per_user: int
    max_message_bytes: int
    max_in_flight: int
    expired_grace_s: float

    @classmethod
    def from_config(cls) -> GatewayLimits:
        g = config.get("qpu.gateway")
        return cls(host=str(g["host"]), max_tunnel_s=float(g["max_tunnel_s"]),
                   max_tunnels_per_user=int(g["max_tunnels_per_user"]),
                   max_message_bytes=int(float(g["max_message_kb"]) * 1024),
                   max_in_flight=int(g["max_in_flight"]), expired_grace_s=float(g["expired_grace_s"]))

    @property
    def hard_cap_bytes(self) -> int:
        """ZeroMQ's ``MAXMSGSIZE`` on a tunnel's socket: a peer sending a larger message is
        disconnected before any of it is kept (and that request is never answered)."""
        return 4 * self.max_message_bytes + 4096


@dataclass
class Tunnel:
    id: str
    user: User
    endpoint: str
    opened_at: float
    expires_at: float
    slurm_job_id: str | None
    socket: zmq.asyncio.Socket
    requests: int = 0
    in_flight: int = 0
    closed: bool = False
    tasks: set[asyncio.Task] = field(default_factory=set)

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id, "user": self.user.name, "endpoint": self.endpoint,
            "opened_at": _iso(self.opened_at), "expires_at": _iso(self.expires_at),
            "state": "closed" if self.closed else ("expired" if self.expired else "open"),
            "requests": self.requests, "slurm_job_id": self.slurm_job_id,
            "export": f"export ZMQ_SERVER={self.endpoint}",
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


class Tunnels:
    """The service's open tunnels; all on the service's event loop."""

    def __init__(self, service: QPUService, limits: GatewayLimits | None = None) -> None:
        self.service = service
        self.limits = limits or GatewayLimits.from_config()
        self._context: zmq.asyncio.Context | None = None
        self._tunnels: dict[str, Tunnel] = {}
        # the optimised circuit as written, by template (kept with it, so its id is not reused)
        self._written: LRU[int, tuple[Any, dict[str, Any]]] = LRU(256)  # a hybrid loop resends one circuit

    def of(self, user: str | None) -> list[Tunnel]:
        return [t for t in self._tunnels.values() if user is None or t.user.name == user]

    def get(self, tunnel_id: str) -> Tunnel | None:
        return self._tunnels.get(tunnel_id)

    def open(self, user: User, max_time_s: float, *, port: int | None = None,
             slurm_job_id: str | None = None) -> Tunnel:
        """A new tunnel for ``user``, listening at once. Raises SubmissionError when refused."""
        limit = self.limits.max_tunnel_s
        if isinstance(max_time_s, bool) or not isinstance(max_time_s, (int, float)) or not 1 <= max_time_s <= limit:
            raise SubmissionError(422, f"a tunnel lasts from 1 s to {limit:.0f} s (qmio.qpu.gateway.max_tunnel_s, "
                                       f"as QMIO's 15 minutes); got {str(max_time_s)[:20]}")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535):
            raise SubmissionError(422, f"port must be an integer from 1024 to 65535, or left out for a free one; "
                                       f"got {str(port)[:20]}")
        held = [t for t in self.of(user.name) if not t.closed and not t.expired]
        if len(held) >= self.limits.max_tunnels_per_user:
            raise SubmissionError(429, f"you hold {len(held)} open tunnels, the most one user may "
                                       f"(qmio.qpu.gateway.max_tunnels_per_user); close one first "
                                       f"(qmio tunnel --close ID, or DELETE /api/v1/tunnels/ID)")
        if self._context is None:
            self._context = zmq.asyncio.Context()
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        # a peer sending more than this is disconnected by ZeroMQ before the bytes are kept;
        # anything between the request limit and this gets an answer saying what the limit is
        sock.setsockopt(zmq.MAXMSGSIZE, self.limits.hard_cap_bytes)
        host = self.limits.host
        try:
            if port is None:
                port = sock.bind_to_random_port(f"tcp://{host}")
            else:
                sock.bind(f"tcp://{host}:{port}")
        except zmq.ZMQError as exc:
            sock.close()
            raise SubmissionError(409, f"cannot listen on {host}:{port}: {exc}; leave the port out "
                                       "for a free one") from exc
        now = time.time()
        tunnel = Tunnel(id=uuid.uuid4().hex[:16], user=user, endpoint=f"tcp://{host}:{port}", opened_at=now,
                        expires_at=now + float(max_time_s), slurm_job_id=slurm_job_id, socket=sock)
        self._tunnels[tunnel.id] = tunnel
        _spawn(tunnel, self._serve(tunnel))
        log.info("tunnel %s for %s at %s until %s", tunnel.id, user.name, tunnel.endpoint, _iso(tunnel.expires_at))
        return tunnel

    def close(self, tunnel_id: str) -> Tunnel | None:
        tunnel = self._tunnels.get(tunnel_id)
        if tunnel is not None and not tunnel.closed:
            tunnel.closed = True
            for task in list(tunnel.tasks):
                task.cancel()
            tunnel.socket.close(linger=0)
        return tunnel

    def close_all(self) -> None:
        for tunnel_id in list(self._tunnels):
            self.close(tunnel_id)
        if self._context is not None:
            self._context.term()
            self._context = None

    def _forget_closed(self) -> None:
        """Closed tunnels are listed for an hour, then forgotten (they hold no socket)."""
        cutoff = time.time() - 3600
        for tunnel_id, t in list(self._tunnels.items()):
            if t.closed and t.expires_at < cutoff:
                del self._tunnels[tunnel_id]

    # ---- serving --------------------------------------------------------------------------
    async def _serve(self, tunnel: Tunnel) -> None:
        """Read requests until the tunnel closes: when asked, or ``expired_grace_s`` after its
        time, by a timer (so each read is one wait on the socket, with no poll in front of it).
        Each request is answered by a task of its own: one client's job does not hold up others."""
        grace_end = tunnel.expires_at + self.limits.expired_grace_s
        closer = asyncio.get_running_loop().call_later(max(grace_end - time.time(), 0.0), self.close, tunnel.id)
        try:
            while not tunnel.closed:
                frames = await tunnel.socket.recv_multipart(copy=True)
                if len(frames) < 3 or frames[-2] != b"":  # not a REQ envelope: nothing to answer
                    continue
                identity, payload = frames[0], frames[-1]
                tunnel.requests += 1
                _spawn(tunnel, self._answer(tunnel, identity, payload))
        except (zmq.ZMQError, asyncio.CancelledError):  # closed: the socket, or this task by close()
            pass
        finally:
            closer.cancel()
            self.close(tunnel.id)
            self._forget_closed()

    async def _answer(self, tunnel: Tunnel, identity: bytes, payload: bytes) -> None:
        tunnel.in_flight += 1
        try:
            reply = await self._reply_to(tunnel, payload)
        except Exception as exc:  # every request gets an answer: the client waits for ever
            log.exception("tunnel %s: request failed", tunnel.id)
            reply = qmio_wire.error_reply(RuntimeError(f"internal error in the QPU service: {type(exc).__name__}"))
        finally:
            tunnel.in_flight -= 1
        if not tunnel.closed:
            try:
                await tunnel.socket.send_multipart([identity, b"", qmio_wire.dumps_reply(reply)])
            except zmq.ZMQError:
                pass

    async def _reply_to(self, tunnel: Tunnel, payload: bytes) -> dict[str, Any]:
        if tunnel.expired:
            return qmio_wire.error_reply(TimeoutError(
                f"this tunnel's time ended at {_iso(tunnel.expires_at)}; open a new one (qmio tunnel)"))
        if tunnel.in_flight > self.limits.max_in_flight:
            return qmio_wire.error_reply(RuntimeError(
                f"{self.limits.max_in_flight} requests are already running on this tunnel "
                "(qmio.qpu.gateway.max_in_flight); wait for their results"))
        try:
            request = qmio_wire.parse_request(qmio_wire.loads_plain(payload, self.limits.max_message_bytes),
                                              int(config.get("device.max_shots")))
        except GatewayRequestError as exc:
            return qmio_wire.error_reply(ValueError(str(exc)))
        if isinstance(request, qmio_wire.InfoRequest):
            return self.info(request.name)
        return await self.run_program(tunnel, request)

    def info(self, name: str) -> dict[str, Any]:
        """The answers to the client's informational messages, from the calibration in force."""
        cal = self.service.calibration_in_force()
        if name == "version":
            return {"version": f"qmio_lab {__version__}"}
        if name == "couplings":
            return {"couplings": [[c.control, c.target] for c in cal.couplers]}
        if name == "qubit_info":
            return {"qubit_info": {f"q[{i}]": {
                "T1 (s)": q.t1, "T2 (s)": q.t2, "Drive Frequency (Hz)": q.frequency,
                "Readout fidelity": 1.0 - q.readout_error} for i, q in enumerate(cal.qubits)}}
        return {"qpu_info": {"name": "qmio_qpu", "num_qubits": len(cal.qubits), "calibration_id": cal.id,
                             "calibrated_at": cal.taken_at.isoformat(), "state": self.service.state}}

    async def run_program(self, tunnel: Tunnel, request: qmio_wire.ProgramRequest) -> dict[str, Any]:
        """Queue the circuit as a job of the tunnel's user, wait for its end, answer as QMIO."""
        svc = self.service
        version = _QASM_VERSION.match(request.circuit)
        body: dict[str, Any] = {
            "circuits": [{"format": "qasm3" if version and version.group(1) == "3" else "qasm2",
                          "data": request.circuit}],
            "shots": request.shots, "optimization_level": request.optimization,
            "name": "qmio client", "slurm_job_id": tunnel.slurm_job_id,
        }
        if request.res_format != "binary_count":
            body["memory"] = True
        if request.repetition_period_s is not None:  # the chip's shot period; refused if a shot does not fit
            body["repetition_period"] = request.repetition_period_s
        try:
            submitted = await submission.submit_job(svc, tunnel.user, body)
        except SubmissionError as exc:
            return qmio_wire.error_reply(ValueError(str(exc)))
        svc.executor.wake()
        job = submitted.job
        while job["state"] not in TERMINAL_STATES:
            job = await svc.wait_for_job(job, _WAIT_STEP_S, until_terminal=True)
        if job["state"] != "done":
            return qmio_wire.error_reply(RuntimeError(
                f"job {job['id']} {job['state']}: {job.get('error') or 'no reason recorded'}"))
        result = json.loads(svc.store.result_json(job["id"]) or "{}")
        experiment = result["results"][0]
        header = experiment.get("header", {})
        cregs = [(str(name), int(size)) for name, size in header.get("creg_sizes", [])]
        data = experiment.get("data", {})
        try:
            if request.res_format == "binary_count":
                results = qmio_wire.creg_counts(data.get("counts", {}), cregs)
            else:
                width = int(header.get("memory_slots", sum(size for _, size in cregs)))
                shots = [format(int(h, 16), f"0{width}b") for h in data["memory"]]
                results = qmio_wire.creg_results(shots, cregs, request.res_format)
        except (KeyError, ValueError) as exc:
            return qmio_wire.error_reply(RuntimeError(f"job {job['id']}: its result has no per-shot data ({exc})"))
        return {"results": results, "execution_metrics": self._metrics(job, submitted)}

    def _metrics(self, job: dict[str, Any], submitted: submission.Submitted) -> dict[str, Any]:
        """The compiled circuit, as QMIO's server reports the optimised one: the template the
        submission compiled, which is the one the job ran unless the job ran with another
        calibration (then the compile cache's for the calibration in force, if it has one)."""
        metrics: dict[str, Any] = {"job_id": job["id"]}
        native = submitted.templates[0] if submitted.templates else None
        if job.get("calibration_id") != submitted.calibration_id and submitted.circuits:
            svc, item = self.service, submitted.circuits[0]
            try:
                native = svc.compiler.cached(item, svc.calibration_in_force(), job["optimization_level"],
                                             item.get("digest"))
            except QmioError:
                native = None
        if native is None:
            return metrics
        known = self._written.get(id(native))
        if known is not None and known[0] is native:
            return {**metrics, **known[1]}
        written = {"optimized_instruction_count": sum(1 for inst in native.data if inst.name != "barrier")}
        try:
            written["optimized_circuit"] = qasm2.dumps(native)
        except Exception:  # a construct OpenQASM 2 cannot write
            written["optimized_circuit"] = qasm3.dumps(native)
        self._written.put(id(native), (native, written))
        return {**metrics, **written}


def _spawn(tunnel: Tunnel, coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    tunnel.tasks.add(task)
    task.add_done_callback(tunnel.tasks.discard)
