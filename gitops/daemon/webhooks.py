"""Webhook authentication and interpretation, per provider (SECURITY.md items 8-12).

* GitHub: HMAC-SHA256 of the raw body in ``X-Hub-Signature-256: sha256=<hex>`` (never the SHA-1 header).
* GitLab: the shared token in ``X-Gitlab-Token``.
* Gitea: HMAC-SHA256 of the raw body as bare hex in ``X-Gitea-Signature``.
* generic: HMAC-SHA256 in ``X-Gitops-Signature: sha256=<hex>``, for anything else (scripts, CI).

Authentication happens on the raw bytes before anything is parsed. Comparisons are constant-time
over bytes; a header that is missing, empty, not ASCII or malformed fails like a wrong one (401).
The webhook never says which commit to deploy: it only asks for a pass, which fetches the tracked ref.
The push's `after` commit rides along only so that the scheduler can drop requests for a commit the
last pass already applied (a burst of deliveries for one push); it never selects what is fetched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

PROVIDERS = ("github", "gitlab", "gitea", "generic")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


@dataclass(frozen=True)
class Verdict:
    status: int  # HTTP status to answer
    message: str
    trigger: bool = False  # ask for a pass
    delivery: str = ""
    head: str = ""  # the commit the push says the ref moved to (`after`), lower-case full hex; "" if none


def _head(value: object) -> str:
    """A push payload's `after`: a full SHA-1 or SHA-256 commit id, never all zeros (a deleted ref)."""
    if not isinstance(value, str) or not _COMMIT.match(value.lower()) or not value.strip("0"):
        return ""
    return value.lower()


def _ascii(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return value.strip().encode("ascii")
    except UnicodeEncodeError:
        return None


def _hmac_hex(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")


def signature_ok(provider: str, secret: bytes, headers: Mapping[str, str], body: bytes) -> bool:
    """Constant-time check of the provider's signature or token. Never raises."""
    if not secret:
        return False
    if provider == "gitlab":
        token = _ascii(headers.get("x-gitlab-token"))
        return bool(token) and hmac.compare_digest(token, secret)  # type: ignore[arg-type]
    if provider == "gitea":
        raw = _ascii(headers.get("x-gitea-signature"))
        if not raw or not _HEX64.match(raw.decode().lower()):
            return False
        return hmac.compare_digest(raw.lower(), _hmac_hex(secret, body))
    header = "x-hub-signature-256" if provider == "github" else "x-gitops-signature"
    raw = _ascii(headers.get(header))
    if not raw or not raw.startswith(b"sha256="):
        return False
    digest = raw[len(b"sha256="):].lower()
    if not _HEX64.match(digest.decode()):
        return False
    return hmac.compare_digest(digest, _hmac_hex(secret, body))


def _event(provider: str, headers: Mapping[str, str]) -> str:
    name = {"github": "x-github-event", "gitlab": "x-gitlab-event", "gitea": "x-gitea-event"}.get(provider, "")
    return (headers.get(name) or "").strip().lower() if name else "push"


def _delivery(provider: str, headers: Mapping[str, str]) -> str:
    name = {"github": "x-github-delivery", "gitea": "x-gitea-delivery", "gitlab": "x-gitlab-event-uuid",
            "generic": "x-gitops-delivery"}[provider]
    value = (headers.get(name) or "").strip()
    return value[:200]


def interpret(provider: str, headers: Mapping[str, str], body: bytes, *, branch: str) -> Verdict:
    """What an authenticated delivery asks for. Any parse problem is a 400, never an exception."""
    event = _event(provider, headers)
    delivery = _delivery(provider, headers)
    if provider == "github" and event == "ping":
        return Verdict(200, "pong", delivery=delivery)
    if provider == "gitlab" and event not in ("push hook", "tag push hook"):
        return Verdict(202, f"ignored: event {event or '(none)'!r}", delivery=delivery)
    if provider in ("github", "gitea") and event not in ("push",):
        return Verdict(202, f"ignored: event {event or '(none)'!r}", delivery=delivery)
    if provider == "generic":
        return Verdict(202, "pass requested", trigger=True, delivery=delivery)
    try:
        payload = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Verdict(400, "body is not JSON", delivery=delivery)
    if not isinstance(payload, dict):
        return Verdict(400, "body is not a JSON object", delivery=delivery)
    ref = payload.get("ref")
    if not isinstance(ref, str):
        return Verdict(400, "push payload has no ref", delivery=delivery)
    if branch and ref not in (branch, f"refs/heads/{branch}", f"refs/tags/{branch}"):
        return Verdict(202, f"ignored: push to {ref[:100]}, not the tracked ref", delivery=delivery)
    return Verdict(202, "pass requested", trigger=True, delivery=delivery, head=_head(payload.get("after")))


class DeliveryLog:
    """Delivery ids already seen (bounded), so a redelivered webhook is answered but not acted on twice."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def seen(self, delivery: str) -> bool:
        if not delivery:
            return False
        if delivery in self._seen:
            return True
        self._seen[delivery] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return False
