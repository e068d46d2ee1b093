"""The daemon's web page: what GET /status says, for people, with the history and the pending plan.

    GET /          the page (server-rendered HTML; a few lines of plain JavaScript keep it live)
    GET /fragment  the page's <main> alone: what the script swaps in when something changed
    GET /events    server-sent events: one each time a pass starts applying or ends

The page is read-only and built from the same status document as /status (gitops.daemon.status), plus the
passes of the state store and the plan pending. Every value may come from an untrusted repository or a
container (names, errors, health-check output, log lines, label values): the templates are rendered with
autoescaping on and never mark a value safe, and each value goes through escape_text first, so that control
and bidi characters show as escapes instead of reordering or hiding text. The page loads nothing from
anywhere else: its CSS and script are inline, allowed by a per-answer nonce in its Content-Security-Policy.

Live updates: /events waits on the daemon's Activity (in a worker thread, a slice at a time) and sends an
event with the activity's version whenever it moves; the page then fetches /fragment. Each stream ends by
itself well before the server's body timeout (which would cut it) with `retry:` set, so the browser's
EventSource reconnects, and with the version it last saw, which the next stream compares at once (a version
carries a mark of the process that counted it, so one seen before the daemon restarted never matches). Without
JavaScript, a <noscript> refresh reloads the page instead.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol

import anyio
import anyio.to_thread
import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from gitops.core.plan import Plan, Step, allowed_sentence, escape_text, headline, short_revision
from gitops.daemon.activity import Activity, Snapshot

HISTORY_SHOWN = 20  # passes on the page
EVENTS_SECONDS = 20.0  # an event stream ends after this long at most ...
EVENTS_SHARE = 2 / 3  # ... and after this share of the server's body timeout, which would cut it
EVENTS_SLICE = 1.0  # a waiting thread returns this often, to notice the end of its stream or of the daemon
EVENTS_THREADS = 16  # threads waiting for streams at once (each stream holds one for a slice at a time)
RETRY_MS = 1000  # what the browser waits before it reconnects
REFRESH_SECONDS = 10  # the page's reload without JavaScript
BODY_TIMEOUT_KEY = "gitops.body_timeout"  # set in each request's scope by the server (make_server)

BASIC_CHALLENGE = 'Basic realm="gitops", charset="UTF-8"'

OK_OUTCOMES = frozenset({"converged", "no_changes", "healthy", "created", "updated", "unchanged", "removed"})
BUSY_OUTCOMES = frozenset({"running", "applying"})


class PageView(Protocol):
    """What the page asks the daemon (gitops.daemon.loop.Daemon)."""

    @property
    def activity(self) -> Activity: ...
    def status_and_pending(self) -> tuple[dict[str, Any], Plan | None]: ...
    def history(self, limit: int) -> list[dict[str, Any]]: ...
    def alive(self) -> bool: ...


# --- the view model: display-ready values, built from the status document ---------------------------------------

def one_line(value: object) -> str:
    """A value as one visible line: control, bidi and line-break characters shown as escapes."""
    return escape_text("" if value is None else str(value))


def many_lines(value: object) -> str:
    """Multi-line text (health output, log lines): each line escaped, the line breaks kept."""
    return "\n".join(escape_text(line) for line in ("" if value is None else str(value)).splitlines())


def when(timestamp: float | None) -> str:
    if not timestamp:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def tone(outcome: str) -> str:
    """A CSS class for an outcome; the text says it too."""
    if not outcome:
        return "none"
    return "ok" if outcome in OK_OUTCOMES else "busy" if outcome in BUSY_OUTCOMES else "bad"


def summary_text(summary: dict[str, Any]) -> str:
    """A plan summary as words, e.g. '1 update, 2 unchanged'."""
    words = (("create", "create"), ("update", "update"), ("remove", "remove"), ("noop", "unchanged"))
    parts = [f"{summary[key]} {word}" for key, word in words if summary.get(key)]
    return ", ".join(parts) if parts else ("nothing planned" if summary else "")


def step_view(step: Step) -> dict[str, Any]:
    return {"action": step.action, "label": step.label, "host": step.host, "reason": step.reason,
            "source": step.source, "changes": [change.describe() for change in step.changes]}


def plan_view(plan: Plan | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    return {"headline": headline(plan), "steps": [step_view(s) for s in plan.changes],
            "allowed": [allowed_sentence(e) for e in plan.allowed], "warnings": list(plan.warnings),
            "unreachable": [{"host": h, "error": e} for h, e in plan.unreachable]}


def _drift(service: dict[str, Any], containers: list[dict[str, Any]], pending: Plan | None) -> list[str]:
    """What the hosts show that the manifests did not ask for, in words."""
    replicas = service["replicas"]
    found = []
    fields = sorted({f for c in containers for f in c.get("hand_changes", ())})
    if replicas["changed_by_hand"]:
        found.append(f"{replicas['changed_by_hand']} changed by hand" + (f" ({', '.join(fields)})" if fields else ""))
    for key, word in (("stopped", "stopped"), ("restarting", "restarting")):
        if replicas[key]:
            found.append(f"{replicas[key]} {word}")
    # only what a container did by itself or was done to by hand: a change the manifests ask for that is not
    # applied yet (a failed commit, backed off) is the pending plan's, not drift
    steps = [s for s in (pending.changes if pending else ())
             if s.kind == "service" and s.name == service["name"] and s.finding is not None]
    if steps:
        kinds = ", ".join(sorted({s.finding.value for s in steps if s.finding is not None}))
        found.append(f"{len(steps)} to repair ({kinds})")
    return found


def service_view(service: dict[str, Any], containers: list[dict[str, Any]], pending: Plan | None, *,
                 applying: bool = False) -> dict[str, Any]:
    """One service's row; ``applying``: the plan being applied now changes it."""
    replicas = service["replicas"]
    desired = service["desired_revision"]
    running = service["running_revisions"]
    return {
        "name": service["name"],
        "image": service["image"],
        "image_digest": service.get("image_digest", ""),
        "desired_revision": short_revision(desired),
        "running_revisions": [short_revision(r) for r in running],
        "revision_behind": bool(running) and running != [desired],
        "replicas": replicas,
        "all_healthy": replicas["healthy"] >= replicas["desired"] and replicas["up_to_date"] >= replicas["desired"],
        "outcome": service["last_outcome"],
        "tone": tone(service["last_outcome"]),
        "applying": applying,
        "reason": service["reason"],
        "health_output": service["health_output"],
        "logs": service["logs"],
        "last_good_revision": short_revision(service["last_good_revision"]),
        "pinned_to": short_revision(service["pinned_to"]),
        "drift": _drift(service, containers, pending),
        "containers": [{"name": c["name"], "host": c["host"], "state": c["state"], "health": c["health"],
                        "revision": short_revision(c["revision"])} for c in containers],
    }


def pass_view(record: dict[str, Any]) -> dict[str, Any]:
    details = record.get("details") or {}
    return {
        "id": record["id"],
        "started": when(record["started_at"]),
        "duration": seconds(record.get("duration")),
        "trigger": record["trigger"],
        "revision": short_revision(record["revision"]),
        "outcome": record["outcome"],
        "tone": tone(record["outcome"]),
        "summary": summary_text(record.get("summary") or {}),
        "error": record.get("error", ""),
        "services": sorted((record.get("services") or {}).items()),
        "evidence": [{"service": name, **found} for name, found in sorted(details.items())
                     if any(found.get(k) for k in ("message", "health_output", "logs"))],
        "pins": sorted((record.get("pins") or {}).items()),
    }


def page_model(status: dict[str, Any], pending: Plan | None, history: Iterable[dict[str, Any]],
               now: Snapshot) -> dict[str, Any]:
    """Everything the templates show, from the status document, the plan it counted as pending changes, the
    newest passes and the daemon's activity."""
    observed = status.get("observed") or {}
    containers = [c for h in observed.get("hosts", ()) for c in h.get("containers", ())]
    source = status.get("source") or {}
    last = status.get("last_pass")
    applied = now.plan if now.phase == "applying" else None
    changing = {step.name for step in (applied.changes if applied else ()) if step.kind == "service"}
    return {
        "project": status["project"],
        "revision": short_revision(status["revision"]),
        "version": now.version,  # the routes show it tagged with their epoch (tagged_version)
        "activity": {"phase": now.phase, "revision": short_revision(now.revision), "since": when(now.since),
                     "outcome": now.outcome, "plan": plan_view(applied)},
        "last_pass": pass_view(last) if last else None,
        "services": [service_view(s, sorted((c for c in containers if c["service"] == s["name"]),
                                            key=lambda c: (c["host"], c["slot"], c["name"])), pending,
                                 applying=s["name"] in changing)
                     for s in status["services"]],
        "hosts": status["hosts"],
        "source": {"url": source.get("url", ""), "ref": source.get("ref", ""),
                   "commit": short_revision(source.get("commit", "")), "fetched": when(source.get("fetched_at")),
                   "error": source.get("error", ""), "error_at": when(source.get("error_at")),
                   "available": source.get("available")} if source else None,
        "warnings": status.get("warnings", []),
        "pending_changes": status.get("pending_changes"),
        "pending": plan_view(pending),
        "history": [pass_view(p) for p in history],
    }


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("gitops.daemon", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["line"] = one_line
    env.filters["lines"] = many_lines
    return env


# --- the routes --------------------------------------------------------------------------------------------------

def security_headers(nonce: str = "") -> dict[str, str]:
    """No origin but the daemon's own, no inline script or style but the page's (by its nonce), no framing."""
    inline = f"'nonce-{nonce}'" if nonce else "'none'"
    policy = (f"default-src 'none'; script-src {inline}; style-src {inline}; connect-src 'self'; img-src data:; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


def tagged_version(epoch: str, version: int) -> str:
    """An activity version as the page and the events carry it: EPOCH.VERSION, EPOCH drawn once per app (so,
    per daemon process: its Activity counts from 0 again after a restart)."""
    return f"{epoch}.{version}"


def known_version(request: Request, epoch: str) -> int | None:
    """The activity version the client last saw: the id of its last event (on a reconnect), else the page's;
    None when it has none, or one this process did not count."""
    for value in (request.headers.get("last-event-id"), request.query_params.get("version")):
        mark, dot, number = (value or "").partition(".")
        if dot and mark == epoch and number.isascii() and number.isdigit() and len(number) < 20:
            return int(number)
        if value:
            return None
    return None


def stream_seconds(request: Request) -> float:
    """How long one event stream lasts: ended by itself before the server's body timeout cuts it."""
    body_timeout = request.scope.get(BODY_TIMEOUT_KEY)
    if isinstance(body_timeout, int | float) and body_timeout > 0:
        return min(EVENTS_SECONDS, body_timeout * EVENTS_SHARE)
    return EVENTS_SECONDS


def event_frame(snapshot: Snapshot, epoch: str) -> str:
    data = json.dumps({"version": snapshot.version, "phase": snapshot.phase, "revision": snapshot.revision,
                       "outcome": snapshot.outcome})  # ASCII, one line: a value cannot end the frame
    return f"id: {tagged_version(epoch, snapshot.version)}\nevent: activity\ndata: {data}\n\n"


def page_routes(daemon: PageView, *, authorized: Callable[[Request], bool]) -> list[Route]:
    """GET /, /fragment and /events, each answered only when ``authorized(request)``."""
    env = templates()
    epoch = secrets.token_hex(4)
    limiter: list[anyio.CapacityLimiter] = []  # made in the event loop, at the first stream

    def model() -> dict[str, Any]:
        now = daemon.activity.now()  # first: a change after it makes the version the page carries old, never new
        status, pending = daemon.status_and_pending()
        return {**page_model(status, pending, daemon.history(HISTORY_SHOWN), now),
                "version": tagged_version(epoch, now.version)}

    def render(name: str, nonce: str) -> str:
        return env.get_template(name).render(**model(), nonce=nonce, refresh=REFRESH_SECONDS,
                                             rendered=when(time.time()))

    def refused() -> Response:
        return HTMLResponse("<!doctype html><title>gitops</title><p>This page needs the daemon's status token "
                            "(as the password).</p>\n", status_code=401,
                            headers={**security_headers(), "WWW-Authenticate": BASIC_CHALLENGE})

    async def page(request: Request) -> Response:
        if not authorized(request):
            return refused()
        nonce = secrets.token_urlsafe(18)
        html = await run_in_threadpool(render, "page.html", nonce)
        return HTMLResponse(html, headers=security_headers(nonce))

    async def fragment(request: Request) -> Response:
        if not authorized(request):
            return refused()
        html = await run_in_threadpool(render, "main.html", "")
        return HTMLResponse(html, headers=security_headers())

    async def events(request: Request) -> Response:
        if not authorized(request):
            return refused()
        if not limiter:
            limiter.append(anyio.CapacityLimiter(EVENTS_THREADS))
        seen, lasts = known_version(request, epoch), stream_seconds(request)

        async def stream() -> AsyncIterator[str]:
            yield f"retry: {RETRY_MS}\n\n"
            deadline = time.monotonic() + lasts
            snapshot = daemon.activity.now()
            version = seen
            while True:
                if snapshot.version != version:
                    version = snapshot.version
                    yield event_frame(snapshot, epoch)
                left = deadline - time.monotonic()
                if left <= 0 or not daemon.alive():
                    return  # the browser reconnects after RETRY_MS, with the last id it saw
                snapshot = await anyio.to_thread.run_sync(daemon.activity.wait, snapshot.version,
                                                          min(left, EVENTS_SLICE), limiter=limiter[0])

        return StreamingResponse(stream(), media_type="text/event-stream; charset=utf-8",
                                 headers={**security_headers(), "X-Accel-Buffering": "no"})

    return [Route("/", page, methods=["GET"]), Route("/fragment", fragment, methods=["GET"]),
            Route("/events", events, methods=["GET"])]
