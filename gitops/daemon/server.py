"""The daemon's HTTP endpoints (starlette, served by uvicorn):

    POST /hooks/github | /hooks/gitlab | /hooks/gitea | /hooks/generic   ask for a pass
    GET  /status    the same document as `gitops status --format json`
    GET  /healthz   the worker loop is alive          GET /readyz   a first pass has finished
    GET  /metrics   Prometheus text format
    GET  /          the web page (gitops.daemon.web): /status for people, with history and the pending plan;
    GET  /fragment  its live part, and GET /events, server-sent events when a pass starts applying or ends

A webhook answers at once: it authenticates the raw body (read up to a cap, 413 beyond it without
reading the rest), then only asks the scheduler for a pass. It never decides what is deployed.

With a status token, /status and /metrics need `Authorization: Bearer TOKEN` (401 otherwise); the web
page takes the same bearer token, or HTTP Basic with the token as the password (any user name), so that
a browser can ask for it itself. /healthz and /readyz are always open (SECURITY.md 16).

Unauthenticated clients must not starve the daemon (SECURITY.md 11b). uvicorn bounds the request
head's size (h11, only while it is incomplete) and idle keep-alive time, but not the number of open
connections nor the time a client may take to send its head or body. ``limited_protocol`` adds
those: a connection cap that closes the connection whose request began longest ago (so a flood
cannot lock out /healthz, and the process keeps file descriptors for git and Docker), a header
timeout from the start of each request until its head is complete, and a body timeout from there
until the body is in and the answer written.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gitops.daemon.metrics import Metrics
from gitops.daemon.web import BODY_TIMEOUT_KEY, PageView, page_routes
from gitops.daemon.webhooks import PROVIDERS, DeliveryLog, interpret, signature_ok

DEFAULT_BODY_LIMIT = 1024 * 1024
BEARER_CHALLENGE = 'Bearer realm="gitops"'


class DaemonView(PageView, Protocol):
    """What the endpoints ask the daemon; the web page's part (status with its plan, history, activity) is
    PageView's."""

    def request_pass(self, trigger: str, head: str = "") -> None: ...
    def status(self) -> dict[str, Any]: ...
    def alive(self) -> bool: ...
    def ready(self) -> bool: ...


class _TooLarge(Exception):
    pass


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, or _TooLarge as soon as it passes ``limit`` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _TooLarge
        except ValueError:
            raise _TooLarge from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


def bearer_ok(request: Request, token: bytes) -> bool:
    """Exactly one `Authorization: Bearer TOKEN` header with the right token.

    Compared on the raw header bytes: a non-ASCII header is just a wrong token, never a TypeError.
    """
    values = [value for name, value in request.scope["headers"] if name == b"authorization"]
    if len(values) != 1:
        return False
    scheme, _, credentials = values[0].strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), token)


def basic_ok(request: Request, token: bytes) -> bool:
    """Exactly one `Authorization: Basic ...` header whose password is the token (the user name is not
    checked): what a browser sends once it has asked for it. Compared on bytes, like bearer_ok."""
    values = [value for name, value in request.scope["headers"] if name == b"authorization"]
    if len(values) != 1:
        return False
    scheme, _, credentials = values[0].strip().partition(b" ")
    if scheme.lower() != b"basic":
        return False
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _, colon, password = decoded.partition(b":")
    return bool(colon) and hmac.compare_digest(password, token)


def make_app(daemon: DaemonView, *, secret: bytes, branch: str, metrics: Metrics,
             body_limit: int = DEFAULT_BODY_LIMIT, log: Callable[..., None] | None = None,
             status_token: bytes | None = None) -> Starlette:
    deliveries = DeliveryLog()

    def guarded(endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """``endpoint`` behind the status token, when one is configured."""
        async def check(request: Request) -> Response:
            if status_token and not bearer_ok(request, status_token):
                return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                    headers={"WWW-Authenticate": BEARER_CHALLENGE})
            response: Response = await endpoint(request)
            return response
        return check

    async def hook(request: Request) -> Response:
        provider = request.path_params["provider"]
        if provider not in PROVIDERS:
            return JSONResponse({"error": f"unknown provider; use one of {', '.join(PROVIDERS)}"}, status_code=404)

        def answer(code: int, message: str) -> Response:
            metrics.webhooks.labels(provider, str(code)).inc()
            return JSONResponse({"message": message}, status_code=code)

        try:
            body = await read_capped(request, body_limit)
        except _TooLarge:
            return answer(413, f"body larger than {body_limit} bytes")
        except ClientDisconnect:  # gone, or cut by the body timeout: nobody reads this answer
            return Response(status_code=400)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not signature_ok(provider, secret, headers, body):
            return answer(401, "missing or wrong signature")
        verdict = interpret(provider, headers, body, branch=branch)
        if verdict.trigger:
            if deliveries.seen(verdict.delivery):
                return answer(200, "duplicate delivery ignored")
            daemon.request_pass(f"webhook:{provider}", verdict.head)
        if log:
            log("webhook", provider=provider, status=verdict.status, message=verdict.message)
        return answer(verdict.status, verdict.message)

    async def status(request: Request) -> Response:
        return JSONResponse(daemon.status())

    async def healthz(request: Request) -> Response:
        ok = daemon.alive()
        return JSONResponse({"ok": ok}, status_code=200 if ok else 503)

    async def readyz(request: Request) -> Response:
        ok = daemon.ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    def page_reader(request: Request) -> bool:
        """The web page's readers: anyone without a status token, else the token as Bearer or Basic."""
        return not status_token or bearer_ok(request, status_token) or basic_ok(request, status_token)

    return Starlette(routes=[
        Route("/hooks/{provider}", hook, methods=["POST"]),
        Route("/status", guarded(status), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", guarded(metrics_endpoint), methods=["GET"]),
        *page_routes(daemon, authorized=page_reader),
    ])


# --- the HTTP server and its limits ------------------------------------------------------------------------

@dataclass(frozen=True)
class ServerLimits:
    max_connections: int = 128  # open at once; a new one closes the one whose request began longest ago
    header_timeout: float = 10.0  # from the start of a request (or of the connection) to its complete head
    body_timeout: float = 30.0  # from the complete head to the complete body and the answer written
    keep_alive: int = 5  # idle seconds between requests on one connection (uvicorn's own timer)
    max_head_bytes: int = 16 * 1024  # request line and header fields: 431 beyond (400 from h11 while incomplete)
    max_header_fields: int = 100  # 431 beyond
    # asyncio accepts up to this many sockets per wake-up before any protocol sees them: the server holds
    # at most max_connections + accept_batch descriptors
    accept_batch: int = 64
    listen_queue: int = 1024  # connections the kernel holds until accepted (no descriptor of ours each)


def limit_request_head(app: Any, *, max_fields: int, max_bytes: int) -> Any:
    """ASGI wrapper: 431 for a request head with more than ``max_fields`` header fields or more than
    ``max_bytes`` (h11 refuses a head over its size only while it is incomplete, not one that arrived
    whole in one read)."""
    async def limited(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            size = len(scope["raw_path"]) + len(scope["query_string"]) + sum(len(k) + len(v) + 4 for k, v in headers)
            problem = (f"more than {max_fields} header fields" if len(headers) > max_fields else
                       f"request head larger than {max_bytes} bytes" if size > max_bytes else "")
            if problem:
                response = JSONResponse({"error": problem}, status_code=431, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        await app(scope, receive, send)
    return limited


def limited_protocol(limits: ServerLimits) -> type[asyncio.Protocol]:
    """A uvicorn H11Protocol class enforcing ``limits``; one class (and one set of connections) per server.

    Each request has one timer: ``header_timeout`` until its head is in, then ``body_timeout`` until
    its body is in and its answer written (a client that does not read the answer is cut too). At
    ``max_connections`` a new connection closes the one still sending the request it began longest
    ago (else, when every connection is being answered, the oldest): real clients send theirs in
    milliseconds, so that is a connection someone holds open, and a flood of them cannot lock out
    /healthz.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol  # a private module of uvicorn: only where it is used

    # open connections, by the start of their current request (or wait for one), oldest first
    by_age: dict[LimitedH11Protocol, None] = {}
    sending: dict[LimitedH11Protocol, None] = {}  # those still sending it, in the same order

    class LimitedH11Protocol(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _phase = ""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            if len(by_age) >= limits.max_connections:
                next(iter(sending or by_age))._cut()
            self._track()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._track()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._track()

        def connection_lost(self, exc: Exception | None) -> None:
            self._forget()
            super().connection_lost(exc)

        # -- the limits --------------------------------------------------------------------------------
        def _track(self) -> None:
            """Arm the timer of the phase the request is in: its head, or the rest of it."""
            theirs, ours = self.conn.their_state, self.conn.our_state
            if self.transport.is_closing():
                self._forget()
            elif theirs is h11.IDLE:
                if self._phase != "head":  # a new connection, or the next request on a kept-alive one
                    self._arm("head", limits.header_timeout)
                    for table in (by_age, sending):
                        table.pop(self, None)
                        table[self] = None
            else:
                if theirs is not h11.SEND_BODY:
                    sending.pop(self, None)  # the request is in
                if theirs is h11.DONE and ours is h11.DONE:
                    self._arm("", None)  # between requests (pipelined, or uvicorn's keep-alive timer runs)
                elif self._phase != "rest":
                    self._arm("rest", limits.body_timeout)

        def _arm(self, phase: str, seconds: float | None) -> None:
            if self._timer is not None:
                self._timer.cancel()
            self._phase = phase
            self._timer = self.loop.call_later(seconds, self._cut) if seconds is not None else None

        def _cut(self) -> None:
            # abort, not close: a client that does not read must not keep the descriptor while a
            # write buffer drains
            self._forget()
            self.transport.abort()

        def _forget(self) -> None:
            self._arm("closed", None)
            by_age.pop(self, None)
            sending.pop(self, None)

    return LimitedH11Protocol


class LimitedServer(uvicorn.Server):
    """uvicorn's server with a kernel listen queue longer than its accept batch.

    uvicorn passes one number to asyncio for both. A short queue makes the kernel drop the SYN of a
    health probe while a flood fills it (the probe retries after a second); a long batch lets a flood
    open that many descriptors at once. So the queue is lengthened once the server listens.
    """

    def __init__(self, config: uvicorn.Config, *, listen_queue: int) -> None:
        super().__init__(config)
        self.listen_queue = listen_queue

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in getattr(self, "servers", []):
            for listener in server.sockets:
                with listener.dup() as sock:  # the same listening socket; listen() again sets its queue
                    sock.listen(self.listen_queue)


def tell_body_timeout(app: Any, seconds: float) -> Any:
    """ASGI wrapper: each request's scope says how long the server gives it to be answered, so that a
    stream (the web page's events) can end by itself before it is cut."""
    async def told(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope[BODY_TIMEOUT_KEY] = seconds
        await app(scope, receive, send)
    return told


def make_server(app: Any, *, host: str, port: int, limits: ServerLimits = ServerLimits(),
                log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for ``app`` on HOST:PORT with ``limits``; run it with ``server.run()``."""
    guarded = limit_request_head(tell_body_timeout(app, limits.body_timeout), max_fields=limits.max_header_fields,
                                 max_bytes=limits.max_head_bytes)
    config = uvicorn.Config(guarded, host=host, port=port, http=limited_protocol(limits), ws="none",
                            log_level=log_level, access_log=False, lifespan="off", backlog=limits.accept_batch,
                            timeout_keep_alive=limits.keep_alive, h11_max_incomplete_event_size=limits.max_head_bytes)
    return LimitedServer(config, listen_queue=limits.listen_queue)
