"""``QPUClient``: the queue service's HTTP API as Python calls, over one kept-alive session.

A client can be copied and pickled at any time (qiskit-experiments and Qiskit Runtime's local
mode deep-copy the backends they are given): its connection pool holds sockets, so it is not
part of its state; a copy keeps the URL, token and timeout and opens its own pool on first use.
"""
from __future__ import annotations

import json as _json
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlparse
from urllib.request import getproxies, proxy_bypass

import urllib3
from qiskit import QuantumCircuit

from qmio_lab import config
from qmio_lab.device import Calibration
from qmio_lab.errors import QPUServiceError, QPUUnreachableError, QuotaWarning
from qmio_lab.qpu.circuits import circuit_to_item

TERMINAL = ("done", "failed", "cancelled")


def _pool_for(url: str) -> tuple[urllib3.PoolManager | urllib3.HTTPConnectionPool, str]:
    """A keep-alive pool, and what to put before each API path when calling through it.

    urllib3 directly rather than requests (a third less time per call, which a hybrid loop
    making thousands of calls notices), and a pool bound to the service's host rather than a
    PoolManager that parses and routes every URL again. The environment's proxy is used only
    where one applies to ``url``.
    """
    parsed = urlparse(url)
    proxy = getproxies().get(parsed.scheme)
    if proxy and parsed.hostname and not proxy_bypass(parsed.hostname) \
            and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        return urllib3.ProxyManager(proxy, maxsize=8), url
    return urllib3.connection_from_url(url, maxsize=8), parsed.path.rstrip("/")


class QPUClient:
    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._http: urllib3.PoolManager | urllib3.HTTPConnectionPool | None = None
        self._base = ""

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the connection pool (its sockets cannot be copied or pickled)."""
        state = self.__dict__.copy()
        state["_http"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._http = None  # reconnects on the first request

    def _pool(self) -> urllib3.PoolManager | urllib3.HTTPConnectionPool:
        """The keep-alive pool, opened on first use (a new client, a copy or an unpickled one)."""
        http = self._http
        if http is None:
            http, self._base = _pool_for(self.url)
            self._http = http
        return http

    def __repr__(self) -> str:
        return f"<QPUClient {self.url}>"

    def _request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                 timeout: float | None = None) -> Any:
        http = self._pool()
        url = f"{self._base}{path}"
        if params:
            query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
            url = f"{url}?{query}" if query else url
        body = None if json is None else _json.dumps(json).encode()
        try:
            resp = http.request(
                method, url, body=body, headers=self._headers, redirect=False,
                timeout=urllib3.Timeout(total=timeout or self.timeout),
            )
        except urllib3.exceptions.HTTPError as exc:
            raise QPUUnreachableError(
                f"cannot reach the QPU service at {self.url}: is it running? "
                "(qmio qpu serve, or unset qmio.qpu.url to start a local one)"
            ) from exc
        try:
            payload = _json.loads(resp.data) if resp.data else {}
        except ValueError:
            payload = {"error": resp.data[:500].decode(errors="replace")}
        if resp.status >= 400:
            raise QPUServiceError(
                f"QPU service said {resp.status}: {payload.get('error', resp.reason)}",
                status=resp.status, payload=payload,
            )
        return payload

    # ---- jobs ---------------------------------------------------------------------------
    def submit(
        self, circuits: QuantumCircuit | str | Sequence[QuantumCircuit | str], shots: int | None = None, *,
        name: str | None = None, priority: int = 0, optimization_level: int = 1,
        circuit_format: str = "qpy", memory: bool = False, seed: int | None = None,
        repetition_period: float | None = None,
    ) -> dict[str, Any]:
        """Queue circuits (QuantumCircuit objects or OpenQASM 2/3 text); returns the job record.
        ``shots`` defaults to ``qmio.device.default_shots``; ``memory`` asks for per-shot
        outcomes in the result, ``seed`` for reproducible shots (None: fresh randomness),
        ``repetition_period`` seconds from one shot to the next on the chip (None: QMIO's default)."""
        if shots is None:
            shots = int(config.get("device.default_shots"))
        if isinstance(circuits, (QuantumCircuit, str)):
            circuits = [circuits]
        items = [circuit_to_item(c, circuit_format) for c in circuits]
        return self.submit_items(items, shots, name=name, priority=priority, optimization_level=optimization_level,
                                 memory=memory, seed=seed, repetition_period=repetition_period)

    def job(self, job_id: str, wait: float | None = None) -> dict[str, Any]:
        params = {"wait": wait} if wait else None
        timeout = self.timeout + (wait or 0)
        return self._request("GET", f"/api/v1/jobs/{job_id}", params=params, timeout=timeout)

    def jobs(self, states: Sequence[str] = (), limit: int = 100) -> list[dict[str, Any]]:
        return self._request("GET", "/api/v1/jobs", params={"state": list(states), "limit": limit})["jobs"]

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/api/v1/jobs/{job_id}")

    def result(self, job_id: str, wait: float | None = None) -> dict[str, Any]:
        """The result; with ``wait`` the service holds the request until the job ends (≤ 60 s)."""
        params = {"wait": wait} if wait else None
        return self._request("GET", f"/api/v1/jobs/{job_id}/result", params=params,
                             timeout=self.timeout + (wait or 0))

    def wait_result(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job ends and return its result in one round trip when it is quick.

        Raises QPUServiceError (409) when the job failed or was cancelled.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"job {job_id} still not finished after {timeout} s")
            try:
                return self.result(job_id, wait=min(30.0, remaining) if remaining else 30.0)
            except QPUServiceError as exc:
                if exc.status == 409 and exc.payload.get("state") in ("queued", "running"):
                    continue
                raise

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 20.0) -> dict[str, Any]:
        """Block until the job ends; the service pushes the change (long poll), no busy loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"job {job_id} still not finished after {timeout} s")
            job = self.job(job_id, wait=min(poll, remaining) if remaining else poll)
            if job["state"] in TERMINAL:
                return job

    def submit_items(
        self, items: list[dict[str, Any]], shots: int, *, name: str | None = None, priority: int = 0,
        optimization_level: int = 1, wait: float | None = None, memory: bool = False,
        seed: int | None = None, repetition_period: float | None = None,
    ) -> dict[str, Any]:
        """Low-level submit of wire items, e.g. one template with ``parameter_values`` rows.

        With ``wait`` the service answers when the job ends (or after ``wait`` s), and a finished
        job's record carries its ``result``: one round trip for short jobs in hybrid loops.
        ``memory``, ``seed`` and ``repetition_period`` are sent only when set, so a client talks
        to older services too. A job accepted near its account's budget comes back with
        ``warnings``, which are also raised as :class:`~qmio_lab.errors.QuotaWarning`.
        """
        body: dict[str, Any] = {"circuits": items, "shots": shots, "priority": priority,
                                "optimization_level": optimization_level}
        if name:
            body["name"] = name
        if memory is not False:  # the service refuses anything but a bool, with what to pass
            body["memory"] = memory
        if seed is not None:
            body["seed"] = seed
        if repetition_period is not None:
            body["repetition_period"] = repetition_period
        slurm_job = os.environ.get("SLURM_JOB_ID")
        if slurm_job:
            body["slurm_job_id"] = slurm_job
        if wait:
            job = self._request("POST", "/api/v1/jobs", json=body, params={"wait": wait}, timeout=self.timeout + wait)
        else:
            job = self._request("POST", "/api/v1/jobs", json=body)
        for text in job.get("warnings", ()):
            warnings.warn(text, QuotaWarning, stacklevel=3)
        return job

    # ---- accounting ---------------------------------------------------------------------
    def usage(self, days: int = 7, user: str | None = None, everyone: bool = False) -> dict[str, Any]:
        """QPU seconds per UTC day, user and account over the last ``days`` days, with totals and
        the budgets that apply: the caller's own, or (admins) ``user``'s or ``everyone``'s."""
        params: dict[str, Any] = {"days": days, "user": user}
        if everyone:
            params["all"] = "true"
        return self._request("GET", "/api/v1/usage", params=params)

    # ---- sessions -----------------------------------------------------------------------
    def open_session(self, max_time_s: float) -> dict[str, Any]:
        body: dict[str, Any] = {"max_time_s": max_time_s}
        if os.environ.get("SLURM_JOB_ID"):
            body["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
        return self._request("POST", "/api/v1/sessions", json=body)

    def close_session(self, session_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/api/v1/sessions/{session_id}")

    def close_sessions(self) -> int:
        """Close every session of this user (e.g. one left open by an interrupted cell)."""
        return self._request("DELETE", "/api/v1/sessions")["closed"]

    def sessions(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/v1/sessions")["sessions"]

    # ---- tunnels (QMIO's ZeroMQ protocol, for its own client) -------------------------------
    def open_tunnel(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body``: ``max_time_s``, optionally ``port`` and ``slurm_job_id``."""
        return self._request("POST", "/api/v1/tunnels", json=body)

    def tunnels(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/v1/tunnels")["tunnels"]

    def close_tunnel(self, tunnel_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/api/v1/tunnels/{tunnel_id}")

    # ---- device -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return self._request("GET", "/api/v1/status")

    def set_maintenance(self, on: bool) -> dict[str, Any]:
        return self._request("PUT", "/api/v1/status", json={"maintenance": on})

    def calibration(self) -> Calibration:
        """The calibration in force now, drifted to the service's current device time."""
        return Calibration.from_dict(self._request("GET", "/api/v1/calibration"))

    def get_calibration(self, cal_id: str) -> Calibration:
        """A stored snapshot by id, as taken (e.g. to replay a QPU result's noise)."""
        return Calibration.from_dict(self._request("GET", f"/api/v1/calibrations/{cal_id}"))

    def calibrations(self, full: bool = False) -> list[dict[str, Any]]:
        return self._request("GET", "/api/v1/calibrations", params={"full": int(full)})["calibrations"]

    def import_calibrations(self, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Admin: QMIO calibration files (``{"name": "YYYY_MM_DD__HH_MM_SS.json", "content": {...}}``)
        into the service's history; each with the notes its reading made."""
        return self._request("POST", "/api/v1/calibrations/import", json={"files": files})["imported"]

    def recalibrate(self) -> Calibration:
        return Calibration.from_dict(self._request("POST", "/api/v1/calibrations", timeout=self.timeout + 60))
