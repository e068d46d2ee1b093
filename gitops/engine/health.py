"""Deciding whether a new container is healthy, the way Docker would.

* exec healthcheck: Docker's own HEALTHCHECK status (the command runs inside the container);
* http / tcp: the reconciler probes the published host port itself;
* none: the container is still running after ``minHealthyTime``.

The deadline is never shorter than the time Docker needs to call a container unhealthy
(start period + retries x (interval + timeout)), so gitops does not give up before Docker decides.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from gitops.core.model import HealthCheck, ServiceSpec
from gitops.errors import GitopsError
from gitops.failpoints import failpoint
from gitops.hosts.docker import published_port


class HealthFailure(GitopsError):
    """The container did not become healthy; ``detail`` holds the health-check output.

    ``temporary`` says the container did not fail by itself: it was stopped by a signal from outside
    (its engine shutting down, someone's ``docker stop``) while the gate waited, so the spec is not
    to blame and a later pass may well succeed.
    """

    def __init__(self, message: str, detail: str = "", *, temporary: bool = False) -> None:
        super().__init__(message, temporary=temporary)
        self.detail = detail


# 128 + SIGTERM / SIGKILL: how a container ends when it is stopped rather than exiting on its own.
STOPPED_EXIT_CODES = (143, 137)


class Inspector(Protocol):
    def inspect(self, ref: str) -> dict[str, Any]: ...
    def probe_address(self) -> str: ...


def probe_tcp(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"tcp {host}:{port}: {exc.strerror or exc}"


def probe_http(host: str, port: int, path: str, status: int | None, timeout: float) -> tuple[bool, str]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "gitops-health"})
        response = conn.getresponse()
        response.read(4096)
        ok = response.status == status if status else 200 <= response.status < 400
        return ok, "" if ok else f"GET {path} answered {response.status}"
    except (OSError, http.client.HTTPException) as exc:
        return False, f"GET http://{host}:{port}{path}: {exc}"
    finally:
        conn.close()


def effective_deadline(svc: ServiceSpec) -> float:
    hc = svc.healthcheck
    docker_needs = (hc.deadline() if hc else 0.0) + svc.update.min_healthy_time
    return max(svc.update.healthy_deadline, docker_needs)


@dataclass
class _ProbeState:
    failures: int = 0
    last_error: str = ""


def _published(info: dict[str, Any], port: int, fallback_host: str) -> tuple[str, int] | None:
    found = published_port(info, port)
    if found is None:
        return None
    ip, host_port = found
    return (fallback_host if ip == "127.0.0.1" and fallback_host != "127.0.0.1" else ip), host_port


def wait_healthy(host: Inspector, ref: str, svc: ServiceSpec, *, cancel: threading.Event | None = None,
                 clock: Any = time.monotonic) -> float:
    """Block until ``ref`` is healthy for ``minHealthyTime``; return the seconds it took. Raises HealthFailure.

    With no health check and no minHealthyTime, a successful start is all there is to wait for.
    """
    hc: HealthCheck | None = svc.healthcheck
    min_healthy = svc.update.min_healthy_time
    if hc is None and min_healthy <= 0:
        return 0.0
    deadline = effective_deadline(svc)
    started = clock()
    healthy_since: float | None = None
    probe = _ProbeState()
    poll = 0.05 if hc is None else max(0.05, min(0.25, hc.interval / 2))
    cancel = cancel or threading.Event()
    while True:
        now = clock()
        info = host.inspect(ref)
        failpoint("during_health_wait")
        state = info.get("State") or {}
        status = state.get("Status", "")
        if status in ("exited", "dead") or (status == "restarting"):
            stopped = state.get("ExitCode") in STOPPED_EXIT_CODES and not state.get("OOMKilled")
            raise HealthFailure(f"container {status} (exit code {state.get('ExitCode')}"
                                + (", stopped from outside gitops" if stopped else "")
                                + (", killed: out of memory" if state.get("OOMKilled") else "") + ")",
                                _health_output(state), temporary=stopped)
        healthy = False
        if hc is None:
            healthy = status == "running"
        elif hc.kind == "exec":
            health = current_health(state)
            if health == "unhealthy":
                raise HealthFailure("health check failed", _health_output(state))
            healthy = health == "healthy"
        else:
            target = _published(info, hc.port, host.probe_address())
            if target is None:
                raise HealthFailure(f"port {hc.port} is not published, so it cannot be probed")
            if hc.kind == "http":
                ok, error = probe_http(target[0], target[1], hc.path, hc.status, hc.timeout)
            else:
                ok, error = probe_tcp(target[0], target[1], hc.timeout)
            if ok:
                healthy, probe.failures = True, 0
            elif now - started >= hc.start_period:
                probe.failures += 1
                probe.last_error = error
                if probe.failures >= hc.retries:
                    raise HealthFailure(f"{hc.kind} probe failed {probe.failures} times", probe.last_error)
        if healthy:
            healthy_since = healthy_since if healthy_since is not None else now
            if now - healthy_since >= min_healthy:
                return now - started
        else:
            healthy_since = None
        if now - started > deadline:
            raise HealthFailure(f"not healthy within {deadline:g}s", _health_output(state) or probe.last_error)
        wait = poll if hc is None or hc.kind == "exec" else hc.interval
        if healthy_since is not None:
            wait = min(wait, max(0.01, min_healthy - (now - healthy_since)))
        if cancel.wait(wait):
            raise HealthFailure("cancelled")


def docker_time(text: object) -> datetime | None:
    """A timestamp from an inspect answer (RFC 3339, nanoseconds cut to microseconds); None if absent or unset."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def current_health(state: dict[str, Any]) -> str:
    """Docker's health status, as far as it is about the container's current run.

    A container started again keeps the Health block of its previous run: its Log, and (seen on some engines
    right after ``start``) its old ``unhealthy`` or ``healthy`` Status. A status counts only once a check that
    began after ``State.StartedAt`` has ended; until then the container is still ``starting``. Both times come
    from the engine's own clock, so a host whose clock differs from the reconciler's is judged the same way.
    """
    health = state.get("Health") or {}
    status = str(health.get("Status") or "starting")
    if status not in ("healthy", "unhealthy"):
        return status
    started = docker_time(state.get("StartedAt"))
    if started is None:
        return status  # nothing to compare with: take Docker's word
    log = health.get("Log") or []
    last = docker_time(log[-1].get("Start")) if log and isinstance(log[-1], dict) else None
    return status if last is not None and last >= started else "starting"


def _health_output(state: dict[str, Any]) -> str:
    log = (state.get("Health") or {}).get("Log") or []
    if not log:
        return ""
    last = log[-1]
    return f"exit {last.get('ExitCode')}: {(last.get('Output') or '').strip()[-500:]}"
