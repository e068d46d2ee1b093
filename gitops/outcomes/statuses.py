"""Commit statuses on the forge: whoever pushed a commit sees there whether it deployed.

``statuses_for`` decides, from a pass's result, which statuses a commit gets (a pure function); ``CommitStatuses``
is a PassHooks listener that posts them from one background thread, so a forge that is slow, down or refusing
never blocks or fails a pass.

What a commit shows, per context (``gitops/<project>``, and with ``per_service`` also
``gitops/<project>/<service>``, because GitLab keeps one status per name and one service's success must not
hide another's failure):

* pending while an apply of it runs; success once the hosts run it (converged, or nothing to change);
* failure when its manifests are invalid, its rollout failed, a service rolled back or paused, or a host was
  unreachable. A rollback is never a success: the commit is not what runs.
* nothing when there is no commit to speak of (the source could not be fetched) or the pass did not look at
  it (another reconciler holds the lease, or the commit failed before and waits for its backoff).

Delivery: hooks only put statuses on a bounded queue. A newer status for the same (commit, context) replaces
one still queued, and a status the forge already has from this process is not sent again (the daemon polls
every minute: a converged commit gets one success, not one a minute). Network errors, timeouts, 429 and 5xx
are retried with exponential backoff and jitter (Retry-After honoured, up to ``max_delay``); any other 4xx is
logged once and dropped. No redirect is followed (the token would go with it), every request has a connect and
a read timeout, and TLS is verified (requests' default, never turned off here). The token is sent in a header
and nowhere else: it is in no log line, exception, repr or description.

The request shapes follow each provider's documentation:

* GitHub, "Create a commit status" (https://docs.github.com/en/rest/commits/statuses#create-a-commit-status):
  ``POST /repos/{owner}/{repo}/statuses/{sha}``, JSON ``state`` (error, failure, pending, success),
  ``target_url``, ``description``, ``context``; headers ``Accept: application/vnd.github+json``,
  ``Authorization: Bearer``, ``X-GitHub-Api-Version: 2022-11-28``
  (https://docs.github.com/en/rest/about-the-rest-api/api-versions). A 403 or 429 with
  ``x-ratelimit-remaining: 0`` or ``retry-after`` is a rate limit, retried
  (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api).
* GitLab, "Set the pipeline status of a commit" in the Commits API
  (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit): ``POST /projects/:id/statuses/:sha``
  where ``id`` is the numeric id or the URL-encoded project path (https://docs.gitlab.com/api/rest/#namespaced-paths),
  ``state`` one of pending, running, success, failed, canceled, the label in ``name``; header ``PRIVATE-TOKEN``
  (https://docs.gitlab.com/api/rest/authentication/). An apply in progress is ``running`` there (GitLab's
  ``pending`` means waiting to start), and a failure is ``failed``.
* Gitea and Forgejo, operation ``repoCreateStatus`` of the instance's API (``/api/swagger``):
  ``POST /repos/{owner}/{repo}/statuses/{sha}`` with a CreateStatusOption (``state`` pending, success, error,
  failure or warning; ``target_url``, ``description``, ``context``); header ``Authorization: token ...``
  (https://docs.gitea.com/development/api-usage).
"""

from __future__ import annotations

import collections
import email.utils
import json
import math
import random
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import quote, urlsplit

import requests
import requests.auth

from gitops.hosts.registry import is_loopback
from gitops.log import get_logger
from gitops.source import redact

if TYPE_CHECKING:
    from gitops.core.plan import Plan
    from gitops.engine.reconciler import PassResult

Provider = Literal["github", "gitlab", "gitea"]
State = Literal["pending", "success", "failure"]
StatusLine = tuple[str, str, str]  # (context, state, description)

PROVIDERS: tuple[str, ...] = get_args(Provider)
DEFAULT_API = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
DESCRIPTION_LIMIT = 140  # GitHub refuses longer descriptions; GitLab and Gitea take this much too
MESSAGE_LIMIT = 200  # of an API's error message, in a log line
TOKEN_FILE_LIMIT = 64 * 1024
TIMEOUT = (5.0, 10.0)  # connect, read (seconds)

# Our three states as each API spells them.
_STATE_NAMES: dict[str, dict[str, str]] = {
    "github": {"pending": "pending", "success": "success", "failure": "failure"},
    "gitlab": {"pending": "running", "success": "success", "failure": "failed"},
    "gitea": {"pending": "pending", "success": "success", "failure": "failure"},
}
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_NAME_PART = re.compile(r"[A-Za-z0-9_.-]+")
_LINE_BREAKS = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


# -- configuration ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StatusConfig:
    """Where and how to post. ``api_url`` defaults to github.com's or gitlab.com's API; Gitea needs it given
    (like ``https://gitea.example.com/api/v1``). ``repo``: ``owner/name`` on GitHub and Gitea, the project path
    (``group/sub/name``) or numeric id on GitLab. ``external_url``: the daemon's web page, linked from each status.
    Invalid settings raise ValueError; no message ever holds the token."""

    provider: Provider
    api_url: str = ""
    repo: str
    token: str = field(repr=False)
    external_url: str = ""
    per_service: bool = False
    context: str = "gitops"

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(f"unknown commit status provider {str(self.provider)[:40]!r}: use github, gitlab or gitea")
        api = (self.api_url or DEFAULT_API.get(self.provider, "")).strip().rstrip("/")
        if not api:
            raise ValueError(f"{self.provider} commit statuses need the API URL (like https://git.example.com/api/v1)")
        _check_http_url(api, "commit status API URL", allow_path=True)
        object.__setattr__(self, "api_url", api)
        repo = self.repo.strip().strip("/")
        parts = repo.split("/")
        if self.provider == "gitlab":
            ok = repo.isdigit() or (len(parts) >= 2 and all(_NAME_PART.fullmatch(p) for p in parts))
            shape = "a project path (group/name, group/sub/name) or a numeric project id"
        else:
            ok = len(parts) == 2 and all(_NAME_PART.fullmatch(p) and p not in (".", "..") for p in parts)
            shape = "owner/name"
        if not ok:
            raise ValueError(f"{self.provider} repository {_shown(repo)} must be {shape}")
        object.__setattr__(self, "repo", repo)
        problem = _token_problem(self.token)
        if problem:
            raise ValueError(f"the commit status token {problem}")
        if self.external_url:
            _check_http_url(self.external_url, "external URL", allow_path=True, allow_http=True)
        context = _one_line(self.context, 100).strip("/")
        if not context:
            raise ValueError("the commit status context must not be empty")
        object.__setattr__(self, "context", context)


def _check_http_url(url: str, what: str, *, allow_path: bool, allow_http: bool = False) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} {_shown(redact(url))} must be an https:// URL")
    if parts.username or parts.password or parts.query or parts.fragment or (parts.path and not allow_path):
        raise ValueError(f"{what} {_shown(redact(url))} must have no user, password, query or fragment")
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname or ""):
        raise ValueError(f"{what} {_shown(redact(url))} must use https:// (the token would travel in clear); "
                         "plain http:// only on a loopback address")


def _token_problem(token: str) -> str:
    """What is wrong with a token, in words that never quote it; "" when nothing is."""
    if not isinstance(token, str) or not token.strip():
        return "is empty"
    if not token.isascii() or not token.isprintable() or any(ch.isspace() for ch in token):
        return "holds characters a token cannot have (spaces, line breaks, control or non-ASCII characters)"
    return ""


def _shown(value: str) -> str:
    return repr(_one_line(value, 80))


def read_token(path: str | Path) -> str:
    """The token in a file (surrounding white space stripped). ValueError, naming the file and never its content,
    when it cannot be read, is empty, or holds anything a token cannot."""
    where = Path(path)
    try:
        with where.open("rb") as handle:
            data = handle.read(TOKEN_FILE_LIMIT + 1)
    except OSError as exc:
        raise ValueError(f"cannot read the token file {where}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > TOKEN_FILE_LIMIT:
        raise ValueError(f"token file {where} is larger than {TOKEN_FILE_LIMIT} bytes: it should hold the token alone")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"token file {where} is not UTF-8 text") from None  # the decode error quotes a byte
    token = text.strip()
    problem = _token_problem(token)
    if problem:
        raise ValueError(f"token file {where} {problem}")
    return token


def guess_from_git_url(url: str) -> tuple[Provider | None, str, str]:
    """(provider, api_url, repo) for a clone URL of github.com or gitlab.com (https://, ssh:// or
    ``git@host:owner/repo.git``), else (None, "", ""). Credentials in the URL are never part of the answer."""
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("https", "http", "ssh", "git+ssh", "ssh+git"):
            return None, "", ""
        try:
            host = (parts.hostname or "").lower()
        except ValueError:
            return None, "", ""
        path = parts.path
    else:
        match = re.fullmatch(r"(?:[^@/:]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*)", url)
        if not match:
            return None, "", ""
        host, path = match["host"].lower(), match["path"]
    segments = [s for s in path.split("/") if s]
    if "-" in segments:  # a GitLab page (group/name/-/tree/main), not the project itself
        segments = segments[:segments.index("-")]
    if segments:
        segments[-1] = segments[-1].removesuffix(".git")
    if not segments or not all(_NAME_PART.fullmatch(s) for s in segments):
        return None, "", ""
    if host == "github.com" and len(segments) == 2:
        return "github", DEFAULT_API["github"], "/".join(segments)
    if host == "gitlab.com" and len(segments) >= 2:
        return "gitlab", DEFAULT_API["gitlab"], "/".join(segments)
    return None, "", ""


# -- what a commit shows ----------------------------------------------------------------------------------------
def _one_line(text: str, limit: int) -> str:
    """``text`` as one line of at most ``limit`` characters: no control, format or line-separator characters,
    credentials in URLs removed, runs of white space as one space, cut with "…"."""
    kept = []
    for ch in redact(str(text)):
        if ch in _LINE_BREAKS:
            kept.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            kept.append(ch)
    line = " ".join("".join(kept).split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def describe(text: str, secrets: Iterable[str] = ()) -> str:
    """A status description: one clean line of at most 140 characters (GitHub's limit), each of ``secrets``
    replaced by ``***`` before it is cut (so no part of one is left at the cut)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _one_line(text, DESCRIPTION_LIMIT)


def project_context(project: str, prefix: str = "gitops") -> str:
    return _one_line(f"{prefix}/{project}", 200)


def service_context(project: str, service: str, prefix: str = "gitops") -> str:
    return _one_line(f"{prefix}/{project}/{service}", 200)


_SUFFIXES = ("; rolled back to the previous version on every host", "; paused (failureAction: pause)")


def _reason(message: str) -> str:
    for suffix in _SUFFIXES:
        message = message.removesuffix(suffix)
    return message


def _service_line(status: str, message: str) -> tuple[State, str]:
    """A service's outcome in an apply as (state, description)."""
    reason = _reason(message)
    if status == "converged":
        return "success", "converged"
    if status == "rolled_back":
        return "failure", f"rolled back: {reason or 'its new version failed'}"
    if status == "paused":
        return "failure", f"paused: {reason or 'its update failed'}"
    if status == "skipped":
        return "failure", f"not applied: {reason or 'another change failed first'}"
    return "failure", f"failed: {reason or status}"


def statuses_for(result: PassResult, project: str, *, per_service: bool, prefix: str = "gitops",
                 secrets: Iterable[str] = ()) -> list[StatusLine]:
    """The statuses a pass's commit gets: (context, state, description), the project's context first.

    Empty when there is nothing to report on: no commit (the source was unavailable), a pass that skipped it
    (lease busy, or a failed commit waiting for its backoff), or a dry run. A service that rolled back or
    paused is a failure, never a success. ``secrets`` never appear in a description."""
    secrets = tuple(secrets)
    if not result.revision:
        return []
    main = project_context(project, prefix)
    outcome = result.outcome
    if outcome in ("source_unavailable", "skipped"):
        return []
    if outcome == "no_changes" and result.plan is not None and result.plan.has_changes:
        return []  # a dry run: nothing was applied
    held = dict(sorted(result.pins.items()))
    if outcome in ("converged", "no_changes") and held:
        # gitops rollback holds these at an older revision: this commit's version of them is not what runs
        name, revision = next(iter(held.items()))
        more = f" (and {len(held) - 1} more)" if len(held) > 1 else ""
        found = [(main, "failure", describe(f"{name} held at {revision[:12]} by gitops rollback{more}: this "
                                            f"commit's version is not deployed", secrets))]
        if per_service:
            found += [(service_context(project, n, prefix), "failure",
                       describe(f"held at {r[:12]} by gitops rollback", secrets)) for n, r in held.items()]
        return found
    if outcome == "no_changes":
        return [(main, "success", "hosts match the manifests")]
    services = dict(sorted(result.services.items()))
    messages = {name: o.message for name, o in result.apply.services.items()} if result.apply else {}
    lines = {name: _service_line(status, messages.get(name, "")) for name, status in services.items()}
    if outcome == "converged":
        updated = sum(1 for status in services.values() if status == "converged")
        head: tuple[str, str] = ("success", f"converged: {updated} service{'s' if updated != 1 else ''} updated"
                                 if updated else "converged")
    elif outcome == "invalid":
        first = result.errors[0] if result.errors else result.message
        head = ("failure", f"invalid, nothing was changed: {first}")
    else:  # failed, or an error that still names the commit
        head = ("failure", _failure(result, services, messages))
    found = [(main, head[0], describe(head[1], secrets))]
    if per_service:
        found += [(service_context(project, name, prefix), state, describe(text, secrets))
                  for name, (state, text) in lines.items()]
    return found


def _failure(result: PassResult, services: dict[str, str], messages: dict[str, str]) -> str:
    """The project's description of a failed pass: the worst service outcome first (a rollback), else the
    first problem."""
    for status, verb in (("rolled_back", "rolled back"), ("paused", "paused"), ("failed", "failed")):
        names = [name for name, s in services.items() if s == status]
        if names:
            name, reason = names[0], _reason(messages.get(names[0], "")) or status
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            return f"{verb}: {reason if reason.startswith(name) else f'{name}: {reason}'}{more}"
    unreachable = result.plan.unreachable if result.plan is not None else ()
    if unreachable and result.apply is None:
        host, error = unreachable[0]
        more = f" (and {len(unreachable) - 1} more hosts)" if len(unreachable) > 1 else ""
        return f"host {host} is unreachable: {error}{more}"
    first = result.errors[0] if result.errors else result.message
    return f"{'failed' if result.outcome == 'failed' else result.outcome}: {first or 'no reason given'}"


def pending_for(revision: str, plan: Plan, project: str, *, per_service: bool,
                prefix: str = "gitops") -> list[StatusLine]:
    """The statuses of a commit whose apply starts: the project's, and with ``per_service`` each service
    the plan changes."""
    if not revision:
        return []
    changes = plan.changes
    names = sorted({step.name for step in changes if step.kind == "service"})
    what = f"{len(names)} service{'s' if len(names) != 1 else ''}" if names else f"{len(changes)} change(s)"
    found = [(project_context(project, prefix), "pending", describe(f"deploying: {what}"))]
    if per_service:
        for name in names:
            count = sum(1 for step in changes if step.kind == "service" and step.name == name)
            found.append((service_context(project, name, prefix), "pending",
                          describe(f"deploying: {count} instance change{'s' if count != 1 else ''}")))
    return found


# -- posting ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Status:
    sha: str
    context: str
    state: str  # pending | success | failure: ours, spelled per provider when sent
    description: str
    target_url: str

    @property
    def key(self) -> tuple[str, str]:
        return self.sha, self.context

    @property
    def payload(self) -> tuple[str, str, str]:
        return self.state, self.description, self.target_url


class _TokenAuth(requests.auth.AuthBase):
    """The provider's auth header on one request. An auth object (not a session header) also keeps requests
    from replacing it with ~/.netrc credentials. Its repr is object's: no token."""

    def __init__(self, provider: str, token: str) -> None:
        self._provider = provider
        self._token = token

    def __call__(self, request: Any) -> Any:
        if self._provider == "github":
            request.headers["Authorization"] = f"Bearer {self._token}"
        elif self._provider == "gitlab":
            request.headers["PRIVATE-TOKEN"] = self._token
        else:
            request.headers["Authorization"] = f"token {self._token}"
        return request


def _request_for(config: StatusConfig, status: _Status) -> tuple[str, dict[str, str], dict[str, str]]:
    """(url, headers without the token, JSON body) of one status, as the provider's API documents it."""
    state = _STATE_NAMES[config.provider][status.state]
    body: dict[str, str] = {"state": state}
    if status.target_url:
        body["target_url"] = status.target_url
    body["description"] = status.description
    headers = {"Accept": "application/json", "User-Agent": "gitops-commit-status"}
    if config.provider == "gitlab":
        body["name"] = status.context
        url = f"{config.api_url}/projects/{quote(config.repo, safe='')}/statuses/{status.sha}"
    else:
        body["context"] = status.context
        owner, name = config.repo.split("/")
        url = f"{config.api_url}/repos/{quote(owner, safe='')}/{quote(name, safe='')}/statuses/{status.sha}"
    if config.provider == "github":
        headers["Accept"] = "application/vnd.github+json"
        headers["X-GitHub-Api-Version"] = "2022-11-28"
    return url, headers, body


@dataclass(frozen=True)
class _Answer:
    kind: Literal["posted", "retry", "rejected"]
    why: str = ""  # for the log: an HTTP status and the API's message, or the kind of network error
    http_status: int = 0
    wait: float | None = None  # Retry-After (or a rate limit's reset), in seconds


class CommitStatuses:
    """A PassHooks listener that posts commit statuses. Hooks only enqueue; one daemon thread posts.

    ``sleep`` waits between attempts (default: a wait that ``close`` cuts short); ``timeout`` is each request's
    (connect, read) timeout. ``close(timeout)`` is for the daemon's shutdown."""

    def __init__(self, config: StatusConfig, project: str, *, session: requests.Session | None = None,
                 sleep: Callable[[float], object] | None = None, max_attempts: int = 6, base_delay: float = 1.0,
                 max_delay: float = 60.0, queue_size: int = 256,
                 timeout: tuple[float, float] = TIMEOUT) -> None:
        self.config = config
        self.project = project
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.queue_size = max(1, queue_size)
        self.timeout = timeout
        self.log = get_logger(component="commit-status", provider=config.provider, repo=config.repo)
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()
        self._auth = _TokenAuth(config.provider, config.token)
        self._abort = threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._wait
        self._random = random.Random()
        self._cond = threading.Condition()
        self._queue: collections.OrderedDict[tuple[str, str], _Status] = collections.OrderedDict()
        # The last status handed over per (sha, context): queued, being sent, or posted. Bounded.
        self._wanted: collections.OrderedDict[tuple[str, str], tuple[str, str, str]] = collections.OrderedDict()
        self._pending: collections.OrderedDict[str, set[str]] = collections.OrderedDict()  # sha -> contexts pending
        self._busy = False
        self._closing = False
        self._deadline = math.inf
        self._counts = collections.Counter[str]()
        self._thread = threading.Thread(target=self._run, name="commit-status", daemon=True)
        self._thread.start()

    # -- PassHooks: called in the pass's thread; they only enqueue and never raise -------------------------------
    def apply_started(self, revision: str, plan: Plan) -> None:
        self._guarded(lambda: self._started(revision, plan), "apply_started")

    def pass_finished(self, result: PassResult) -> None:
        self._guarded(lambda: self._finished(result), "pass_finished")

    def fetch_failed(self) -> None:
        """No commit to report on: nothing to post."""

    def _guarded(self, call: Callable[[], None], hook: str) -> None:
        try:
            call()
        except Exception:  # noqa: BLE001 - a status must never fail a pass
            self.log.exception("commit_status.hook_failed", hook=hook)

    def _started(self, revision: str, plan: Plan) -> None:
        if not _SHA.fullmatch(revision):
            return  # a local folder's "local", or anything else that names no commit
        self.project = plan.project or self.project  # the daemon learns it from the manifests
        lines = pending_for(revision, plan, self.project, per_service=self.config.per_service,
                            prefix=self.config.context)
        with self._cond:
            self._pending.setdefault(revision, set()).update(context for context, _, _ in lines)
            self._pending.move_to_end(revision)
            while len(self._pending) > 64:
                self._pending.popitem(last=False)
        self._offer(revision, lines)

    def _finished(self, result: PassResult) -> None:
        sha = result.revision
        if not _SHA.fullmatch(sha):
            return
        self.project = result.project or self.project
        lines = statuses_for(result, self.project, per_service=self.config.per_service, prefix=self.config.context,
                             secrets=(self.config.token,))
        if not lines:
            return
        with self._cond:
            left = self._pending.pop(sha, set()) - {context for context, _, _ in lines}
        _, state, text = lines[0]
        # A context set pending at the start that this result says nothing of (the apply stopped before that
        # service) gets the project's outcome: no status stays pending for ever.
        self._offer(sha, lines + [(context, state, text) for context in sorted(left)])

    def _offer(self, sha: str, lines: Iterable[StatusLine]) -> None:
        for context, state, text in lines:
            self._put(_Status(sha, context, state, describe(text, (self.config.token,)), self._target(context)))

    def _target(self, context: str) -> str:
        base = self.config.external_url
        own = project_context(self.project, self.config.context) + "/"
        if base and context.startswith(own):
            return f"{base}#service-{quote(context[len(own):], safe='')}"
        return base

    def _scrub(self, text: str) -> str:
        return text.replace(self.config.token, "***")

    def _put(self, status: _Status) -> None:
        with self._cond:
            if self._closing:
                return
            key = status.key
            wanted = self._wanted.get(key)
            if wanted == status.payload:
                return  # the forge has it already, or will
            if wanted is not None and wanted[0] == "success" and status.state in ("success", "pending"):
                return  # a commit that deployed keeps its success: a repair of it, or a quiet poll, is no news
            self._wanted[key] = status.payload
            self._wanted.move_to_end(key)
            while len(self._wanted) > 4096:
                self._wanted.popitem(last=False)
            if key in self._queue:
                self._counts["superseded"] += 1
            elif len(self._queue) >= self.queue_size:
                old_key, old = self._queue.popitem(last=False)
                if self._wanted.get(old_key) == old.payload:
                    del self._wanted[old_key]
                self._counts["dropped"] += 1
                self.log.warning("commit_status.dropped", sha=old.sha[:12], context=old.context,
                                 reason=f"more than {self.queue_size} statuses waiting")
            self._queue[key] = status
            self._cond.notify_all()

    # -- the worker -------------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._past_deadline():
                    if self._queue:
                        self._counts["abandoned"] += len(self._queue)
                    self._queue.clear()
                    self._cond.notify_all()
                    return
                _, status = self._queue.popitem(last=False)
                self._busy = True
            try:
                self._deliver(status)
            except Exception:  # noqa: BLE001 - the worker must outlive any bug in one delivery
                self.log.exception("commit_status.bug", sha=status.sha[:12], context=status.context)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _wait(self, seconds: float) -> None:
        """The default ``sleep``: ends early at close's deadline."""
        end = time.monotonic() + seconds
        with self._cond:
            while not self._abort.is_set():
                limit = min(end, self._deadline if self._closing else math.inf)
                now = time.monotonic()
                if now >= limit:
                    return
                self._cond.wait(limit - now)

    def _past_deadline(self) -> bool:
        return self._closing and time.monotonic() >= self._deadline

    def _superseded(self, status: _Status) -> bool:
        with self._cond:
            return status.key in self._queue

    def _deliver(self, status: _Status) -> None:
        answer = _Answer("retry")
        attempt = 0
        while attempt < self.max_attempts:
            attempt += 1
            answer = self._post(status)
            if answer.kind == "posted":
                self._count("posted")
                self.log.info("commit_status.posted", sha=status.sha[:12], context=status.context,
                              state=status.state)
                return
            if answer.kind == "rejected":
                self._count("rejected")  # the same status would be refused again: it stays "wanted", not re-sent
                self.log.error("commit_status.rejected", sha=status.sha[:12], context=status.context,
                               state=status.state, http_status=answer.http_status, message=answer.why)
                return
            if attempt >= self.max_attempts or self._superseded(status):
                break
            delay = answer.wait if answer.wait is not None else self._backoff(attempt)
            delay = min(max(0.0, delay), self.max_delay)
            with self._cond:
                if self._closing:
                    delay = min(delay, self._deadline - time.monotonic())
            if delay < 0:
                break
            self.log.debug("commit_status.retry", sha=status.sha[:12], context=status.context, attempt=attempt,
                           seconds=round(delay, 3), error=answer.why)
            self._sleep(delay)
            if self._superseded(status) or self._abort.is_set():
                break
            with self._cond:
                if self._past_deadline():
                    break
        if self._superseded(status):
            self._count("superseded")
            return
        with self._cond:
            if self._wanted.get(status.key) == status.payload:
                del self._wanted[status.key]  # not on the forge: the next pass may offer it again
            self._counts["gave_up"] += 1
        self.log.warning("commit_status.gave_up", sha=status.sha[:12], context=status.context, state=status.state,
                         attempts=attempt, error=answer.why)

    def _count(self, what: str) -> None:
        with self._cond:
            self._counts[what] += 1

    def _backoff(self, attempt: int) -> float:
        """Exponential, with jitter: between half and all of base * 2^(attempt-1), at most max_delay."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling * self._random.uniform(0.5, 1.0)

    def _post(self, status: _Status) -> _Answer:
        url, headers, body = _request_for(self.config, status)
        try:
            response = self._session.post(url, json=body, headers=headers, auth=self._auth, timeout=self.timeout,
                                          allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            return _Answer("retry", self._clean(f"{type(exc).__name__}: {exc}"))
        try:
            code = response.status_code
            if 200 <= code < 300:
                return _Answer("posted", http_status=code)
            message = self._clean(_api_message(response))
            why = f"HTTP {code}: {message}" if message else f"HTTP {code}"
            limited = code == 403 and (response.headers.get("x-ratelimit-remaining") == "0"
                                       or "retry-after" in response.headers)
            if code == 429 or code >= 500 or limited:
                return _Answer("retry", why, code, _wait_of(response.headers))
            if 300 <= code < 400:
                message = "a redirect, not followed (the token would go with it): is the API URL right?"
            return _Answer("rejected", message, code)
        finally:
            response.close()

    def _clean(self, text: str) -> str:
        return _one_line(self._scrub(text), MESSAGE_LIMIT)

    # -- for the daemon and tests -------------------------------------------------------------------------------------
    def flush(self, timeout: float) -> bool:
        """Wait until nothing is queued or being sent (retries included); False when ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout=timeout)

    def counts(self) -> dict[str, int]:
        """How many statuses were posted, rejected (4xx), given up (retries exhausted), superseded, dropped
        (queue full) and abandoned (still queued at close)."""
        with self._cond:
            return dict(self._counts)

    def close(self, timeout: float = 10.0) -> bool:
        """Stop taking statuses, try what is queued for up to ``timeout`` seconds, and stop the worker. True when
        the worker finished in time (a request still in flight after that is left to its own timeout)."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + max(0.0, timeout)
            self._cond.notify_all()
        self._thread.join(max(0.0, timeout))
        self._abort.set()  # the deadline has passed: no more waits or attempts
        with self._cond:
            self._cond.notify_all()
        self._thread.join(0.5)  # a worker waking from its wait at the deadline
        done = not self._thread.is_alive()
        if done and self._own_session:
            self._session.close()
        return done


def _api_message(response: requests.Response, limit: int = 16 * 1024) -> str:
    """The error message of an API's answer (GitHub, Gitea: ``message``; GitLab: ``message`` or ``error``), read
    up to ``limit`` bytes."""
    raw = b""
    try:
        for chunk in response.iter_content(4096):
            raw += chunk
            if len(raw) >= limit:
                break
    except requests.RequestException:
        pass
    text = raw[:limit].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        for key in ("message", "error"):
            if key in data:
                value = data[key]
                return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text


def _wait_of(headers: Any) -> float | None:
    """Seconds to wait from Retry-After (seconds or an HTTP date) or GitHub's x-ratelimit-reset; None if neither."""
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - time.time())
    reset = headers.get("x-ratelimit-reset")
    if reset and reset.strip().isdigit() and headers.get("x-ratelimit-remaining") == "0":
        return max(0.0, float(reset) - time.time())
    return None
