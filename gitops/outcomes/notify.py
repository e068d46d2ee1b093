"""Notifications: each pass's events (gitops.outcomes.events) to people, through apprise (Slack, Teams,
Discord, Matrix, email, ntfy and the rest, configured by URLs in a file outside the repository), and to
machines, as a JSON document signed with HMAC-SHA256 like the webhooks gitops receives.

The hooks run in the pass's thread and only enqueue; one worker thread sends, so a service that is down or
hangs never slows a pass. The same news is sent once per quiet period (events.Quiet).

Secrets: every text is masked with the secret values of the desired state before it is cut (events), and
again as a whole. apprise URLs hold tokens (a Telegram bot token is the URL's host), so gitops logs a failing
service by its kind, its line in the file and, for the generic http schemes only, its host; what apprise
says about a failure is relayed with every piece of the service's URL masked, and apprise's own log lines
are kept out of the process's output.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from gitops.core.plan import Plan, escape_text
from gitops.engine.reconciler import PassResult
from gitops.log import get_logger
from gitops.outcomes.events import Event, Quiet, events_of, mask

if TYPE_CHECKING:
    import requests

SIGNATURE_HEADER = "X-Gitops-Signature-256"
EVENT_HEADER = "X-Gitops-Event"
DELIVERY_HEADER = "X-Gitops-Delivery"

TITLES = {"applied": "applied", "failed": "failed", "rolled_back": "rolled back", "invalid": "invalid commit",
          "drift_repaired": "drift repaired", "crash_looping": "crash-looping", "host_unreachable": "host unreachable",
          "source_unavailable": "source unavailable"}
# apprise schemes whose host is a host, never a token: only these have it in a log line
_HOST_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_URL_PIECES = re.compile(r"[/:@?&=#,;+]+")


# -- the signed webhook ------------------------------------------------------------------------------------
def sign(body: bytes, secret: bytes) -> str:
    """The value of X-Gitops-Signature-256 for ``body``: ``sha256=`` and the hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: bytes) -> bool:
    """True when ``header`` (X-Gitops-Signature-256) signs exactly ``body`` with ``secret``. Constant time over
    the digest; a missing, empty, non-ASCII or malformed header is False, never an exception."""
    if not secret or not header or not isinstance(body, bytes | bytearray):
        return False
    try:
        raw = header.strip().encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        return False
    if not raw.startswith(b"sha256="):
        return False
    digest = raw[len(b"sha256="):].lower()
    if not _HEX64.match(digest.decode("ascii")):
        return False
    expected = hmac.new(secret, bytes(body), hashlib.sha256).hexdigest().encode("ascii")
    return hmac.compare_digest(digest, expected)


def webhook_document(event: Event, now: float) -> dict[str, Any]:
    return {"event": event.kind, "project": event.project, "revision": event.revision,
            "services": list(event.services), "reason": event.reason, "details": event.details_dict(),
            "time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _where(url: str) -> str:
    """scheme://host[:port] of a URL: what a log line may say of it (no user, password, path or query)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}"
    except ValueError:
        return "(malformed URL)"


# -- messages for people -----------------------------------------------------------------------------------
def _no_mentions(text: str) -> str:
    """An '@' from a log line must not page a whole channel (@everyone, @here, <!channel>): shown as '＠'."""
    return text.replace("@", "\uff20").replace("<!", "<\u01c3")


def title_of(event: Event) -> str:
    where = f" at {event.revision[:12]}" if event.revision else ""
    services = ""
    if event.services:
        services = ": " + ", ".join(event.services[:5]) + (f" and {len(event.services) - 5} more"
                                                            if len(event.services) > 5 else "")
    return _no_mentions(escape_text(f"[{event.project}] {TITLES.get(event.kind, event.kind)}{where}{services}"))


def body_of(event: Event) -> str:
    """Plain text: project, revision, services, reason, then each failing service's health-check output and
    last log lines (already masked, made visible and cut by events)."""
    lines = [f"project: {escape_text(event.project)}"]
    if event.revision:
        lines.append(f"revision: {event.revision[:12]}")
    if event.services:
        lines.append(f"services: {', '.join(escape_text(s) for s in event.services)}")
    if event.reason:
        lines.append(f"reason: {event.reason}")
    for detail in event.details:
        if detail.health_output:
            lines += ["", f"{escape_text(detail.service)}: health check output:", detail.health_output]
        if detail.logs:
            lines += ["", f"{escape_text(detail.service)}: last log lines:", detail.logs]
    return _no_mentions("\n".join(lines))


def _notify_type(event: Event) -> str:
    if event.good:
        return "success"
    return "warning" if event.kind in ("host_unreachable", "source_unavailable") else "failure"


# -- what apprise says, kept out of the process's logs ------------------------------------------------------
_heard: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("gitops_apprise_heard", default=None)
_relay_lock = threading.Lock()
_relay_installed = False


class _Relay(logging.Handler):
    """apprise's warnings and errors, to whoever listens in this context (apprise copies the context into
    its worker threads); the rest is dropped."""

    def emit(self, record: logging.LogRecord) -> None:
        heard = _heard.get()
        if heard is None or record.levelno < logging.WARNING or len(heard) >= 20:
            return
        with contextlib.suppress(Exception):
            heard.append(record.getMessage())


def _install_relay() -> None:
    global _relay_installed
    with _relay_lock:
        if _relay_installed:
            return
        apprise_log = logging.getLogger("apprise")
        apprise_log.addHandler(_Relay())
        apprise_log.propagate = False  # its lines may hold URL tokens: never to the root logger's handlers
        _relay_installed = True


@contextlib.contextmanager
def _listening() -> Iterator[list[str]]:
    heard: list[str] = []
    token = _heard.set(heard)
    try:
        yield heard
    finally:
        _heard.reset(token)


def _url_pieces(url: str) -> list[str]:
    """Every piece of an apprise URL between its separators (host, user, password, path, query values),
    also %-decoded: masked in whatever apprise says of that service."""
    rest = url.split("://", 1)[-1]
    pieces = [p for p in _URL_PIECES.split(rest) if p]
    return pieces + [unquote(p) for p in pieces] + [rest]


class Notifier:
    """PassHooks that notify. ``secrets`` gives the secret values of the current desired state (env secret
    values, secret file contents); it is called in the pass's thread, so it must only read memory.

    ``apprise_config``: a file of apprise URLs (one a line, ``#`` comments, or apprise's YAML), read again
    for every message so that an edit needs no restart. ``webhook_url`` and ``webhook_secret``: a JSON
    document per event, signed (X-Gitops-Signature-256, see ``verify_signature``)."""

    def __init__(self, project: str, *, apprise_config: Path | None = None, webhook_url: str = "",
                 webhook_secret: bytes = b"", quiet: float = 3600.0,
                 secrets: Callable[[], Iterable[str]] = lambda: (), clock: Callable[[], float] = time.time,
                 timeout: float = 10.0, attempts: int = 3, backoff: float = 1.0, max_queue: int = 100) -> None:
        if webhook_url:
            scheme = webhook_url.split("://", 1)[0].lower() if "://" in webhook_url else ""
            if scheme not in ("http", "https") or not urlsplit(webhook_url).hostname:
                raise ValueError(f"notification webhook URL {_where(webhook_url)!r} must be http:// or https:// "
                                 "with a host")
            if not webhook_secret:
                raise ValueError("a notification webhook needs a secret to sign its deliveries with")
        self.project = project
        self.apprise_config = Path(apprise_config) if apprise_config else None
        self.webhook_url = webhook_url
        self._webhook_secret = bytes(webhook_secret)
        self._secrets = secrets
        self.clock = clock
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.quiet = Quiet(quiet)  # the worker's alone
        self.log = get_logger(component="notify", project=project)
        self._queue: queue.Queue[tuple[PassResult, tuple[str, ...], float] | None] = queue.Queue(max(1, max_queue))
        self._stop = threading.Event()
        self._closed = False
        self._session: requests.Session | None = None
        if self.apprise_config is not None:
            _install_relay()
        self._worker = threading.Thread(target=self._run, name=f"gitops-notify-{project}", daemon=True)
        self._worker.start()

    # -- PassHooks: in the pass's thread, never blocking -----------------------------------------------------
    def apply_started(self, revision: str, plan: Plan) -> None:
        """Nothing to say yet: the pass's end says how it went."""

    def fetch_failed(self) -> None:
        """The pass ends with source_unavailable, which pass_finished reports."""

    def pass_finished(self, result: PassResult) -> None:
        if self._closed:
            return
        try:
            values = tuple(v for v in self._secrets() if isinstance(v, str))
        except Exception as exc:  # noqa: BLE001 - without them nothing could be masked: send nothing
            self.log.error("notify.secrets_unavailable", error=type(exc).__name__)
            return
        try:
            self._queue.put_nowait((result, values, self.clock()))
        except queue.Full:
            self.log.warning("notify.dropped", revision=result.revision[:12], outcome=result.outcome,
                             reason="too many notifications waiting to be sent")

    def close(self, timeout: float = 5.0) -> bool:
        """Send what waits, for up to ``timeout`` seconds, then stop (retries are given up). True when the
        worker has finished."""
        self._closed = True
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=max(0.0, timeout))
        self._worker.join(max(0.0, deadline - time.monotonic()))
        if self._worker.is_alive():
            self._stop.set()
            self.log.warning("notify.unsent", waiting=self._queue.qsize(),
                             reason=f"still sending after {timeout:.0f}s at shutdown")
            return False
        if self._session is not None:
            self._session.close()
        return True

    # -- the worker ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            result, values, now = item
            try:
                for event in events_of(result, result.project or self.project, secrets=values):
                    if self._stop.is_set():
                        return
                    if not self.quiet.should_send(event, now):
                        self.log.debug("notify.quiet", kind=event.kind, revision=event.revision[:12])
                        continue
                    self.deliver(event, now=now, secrets=values)
            except Exception as exc:  # noqa: BLE001 - a bug must not end the worker; its text could hold values
                self.log.error("notify.bug", error=type(exc).__name__, revision=result.revision[:12])

    def deliver(self, event: Event, *, now: float, secrets: Iterable[str] = ()) -> None:
        """Send one event to every configured receiver, now, in this thread (no quiet period). Never raises."""
        values = tuple(secrets)
        if self.apprise_config is not None:
            try:
                self._send_apprise(event, values)
            except Exception as exc:  # noqa: BLE001 - apprise's or a plugin's bug: logged, never raised
                self.log.error("notify.apprise_failed", kind=event.kind, error=type(exc).__name__)
        if self.webhook_url:
            try:
                self._send_webhook(event, now, values)
            except Exception as exc:  # noqa: BLE001
                self.log.error("notify.webhook_failed", kind=event.kind, url=_where(self.webhook_url),
                               error=type(exc).__name__)

    # -- apprise -----------------------------------------------------------------------------------------------
    def _send_apprise(self, event: Event, secrets: tuple[str, ...]) -> None:
        import apprise  # here: 0.3 s and its plugins, paid by the worker once, never by commands that only load this

        path = self.apprise_config
        assert path is not None
        if not path.is_file():
            self.log.warning("notify.apprise_config_missing", path=str(path), kind=event.kind)
            return
        title = mask(title_of(event), secrets)
        body = mask(body_of(event), secrets)
        with _listening():  # what apprise says while reading the file may quote a URL: not relayed
            config = apprise.AppriseConfig()
            config.add(str(path))
            everyone = apprise.Apprise()
            everyone.add(config)
            services = list(everyone)
        if not services:
            self.log.warning("notify.apprise_no_services", path=str(path), kind=event.kind)
            return
        for index, service in enumerate(services, 1):
            try:
                schema = str(service.url(privacy=True)).split("://", 1)[0].lower() or "?"
            except Exception:  # noqa: BLE001 - a plugin's bug: the kind of service is enough
                schema = "?"
            where: dict[str, Any] = {"service": str(getattr(service, "service_name", "") or schema),
                                     "schema": schema, "entry": index}
            if schema in _HOST_SCHEMES and getattr(service, "host", None):
                where["host"] = str(service.host)
            with _listening() as heard:
                try:
                    one = apprise.Apprise()
                    one.add(service)
                    ok = bool(one.notify(body=body, title=title, notify_type=_notify_type(event),
                                         body_format=apprise.NotifyFormat.TEXT))
                except Exception as exc:  # noqa: BLE001 - a plugin's bug is a failed delivery
                    ok = False
                    heard.append(type(exc).__name__)
            if ok:
                self.log.info("notify.sent", kind=event.kind, revision=event.revision[:12], **where)
                continue
            try:
                pieces = _url_pieces(str(service.url(privacy=False)))
            except Exception:  # noqa: BLE001 - without the pieces, nothing apprise said can be shown
                pieces, heard = [], ["(apprise's message withheld)"] if heard else []
            said = mask(" | ".join(heard), [*pieces, *secrets])
            self.log.warning("notify.apprise_failed", kind=event.kind, revision=event.revision[:12],
                             error=escape_text(said)[:500] or "the service refused or did not answer", **where)

    # -- the signed webhook ------------------------------------------------------------------------------------
    def _send_webhook(self, event: Event, now: float, secrets: tuple[str, ...]) -> None:
        import requests  # here, like apprise: loading this module costs no HTTP stack

        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # no proxy, ~/.netrc credentials or CA bundle from the environment
        doc = webhook_document(event, now)
        doc["reason"] = mask(doc["reason"], secrets)
        doc["details"] = {name: {k: mask(v, secrets) for k, v in found.items()}
                          for name, found in doc["details"].items()}
        body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")
        delivery = str(uuid.uuid4())
        headers = {"Content-Type": "application/json", EVENT_HEADER: event.kind, DELIVERY_HEADER: delivery,
                   SIGNATURE_HEADER: sign(body, self._webhook_secret), "User-Agent": "gitops-notify"}
        where = _where(self.webhook_url)
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                answer = self._session.post(self.webhook_url, data=body, headers=headers, allow_redirects=False,
                                            timeout=(self.timeout, self.timeout), stream=True)
                status = answer.status_code
                answer.close()  # the answer's body is not read: a receiver cannot make gitops hold it
            except requests.RequestException as exc:  # its text quotes the URL: the type name only
                problem = type(exc).__name__
            else:
                if 200 <= status < 300:
                    self.log.info("notify.webhook_sent", kind=event.kind, revision=event.revision[:12], url=where,
                                  delivery=delivery, attempt=attempt)
                    return
                problem = f"HTTP {status}"
                if status < 500 and status != 429:  # refused (a redirect is never followed): retrying won't help
                    break
            if attempt < self.attempts and self._stop.wait(self.backoff * 2 ** (attempt - 1)):
                break
        self.log.warning("notify.webhook_failed", kind=event.kind, revision=event.revision[:12], url=where,
                         delivery=delivery, error=problem, attempts=attempt)
