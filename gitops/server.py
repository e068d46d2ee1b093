"""The daemon's HTTP endpoints (starlette, served by uvicorn):

    POST /hooks/github | /hooks/gitlab | /hooks/gitea | /hooks/generic   ask for a pass
    GET  /status    the same document as `gitops status --format json`
    GET  /healthz   the worker loop is alive          GET /readyz   a first pass has finished
    GET  /metrics   Prometheus text format

A webhook answers at once: it authenticates the raw body (read up to a cap, 413 beyond it without
reading the rest), then only asks the scheduler for a pass. It never decides what is deployed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gitops.metrics import Metrics
from gitops.webhooks import PROVIDERS, DeliveryLog, interpret, signature_ok

DEFAULT_BODY_LIMIT = 1024 * 1024


class DaemonView(Protocol):
    def request_pass(self, trigger: str) -> None: ...
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


def make_app(daemon: DaemonView, *, secret: bytes, branch: str, metrics: Metrics,
             body_limit: int = DEFAULT_BODY_LIMIT, log: Callable[..., None] | None = None) -> Starlette:
    deliveries = DeliveryLog()

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
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not signature_ok(provider, secret, headers, body):
            return answer(401, "missing or wrong signature")
        verdict = interpret(provider, headers, body, branch=branch)
        if verdict.trigger:
            if deliveries.seen(verdict.delivery):
                return answer(200, "duplicate delivery ignored")
            daemon.request_pass(f"webhook:{provider}")
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

    return Starlette(routes=[
        Route("/hooks/{provider}", hook, methods=["POST"]),
        Route("/status", status, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ])
