"""Commit statuses (gitops.outcomes.statuses): what a commit shows on GitHub, GitLab and Gitea after a pass, and
how they are posted, against loopback HTTP servers that check each API's documented request shape.

Every wait is on a condition with a deadline (the server saw N requests, the worker is idle), never a fixed
sleep; backoff waits go through an injected ``sleep`` that records and returns at once.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from gitops import log
from gitops.core.plan import Plan, Step
from gitops.engine.executor import ApplyResult, ServiceOutcome
from gitops.engine.reconciler import PassResult
from gitops.outcomes.statuses import (
    CommitStatuses,
    StatusConfig,
    guess_from_git_url,
    pending_for,
    read_token,
    statuses_for,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
SHA2 = "fedcba9876543210fedcba9876543210fedcba98"
TOKEN = "glpat-CANARY-5f2b9c71e0d4"  # the canary: it must reach the auth header and nothing else
WAIT = 20.0  # seconds any condition may take on a loaded machine

# Each API's documented request (see the module docstring of gitops.outcomes.statuses for the pages).
SHAPES: dict[str, dict[str, Any]] = {
    "github": {
        "path": re.compile(r"/repos/acme/shop/statuses/(?P<sha>[0-9a-f]{40})"),
        "auth": ("Authorization", f"Bearer {TOKEN}"),
        "headers": {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
        "label": "context",
        "states": {"error", "failure", "pending", "success"},
    },
    "gitlab": {
        # the project path URL-encoded in one segment: group%2Fsub%2Fshop
        "path": re.compile(r"/api/v4/projects/group%2Fsub%2Fshop/statuses/(?P<sha>[0-9a-f]{40})"),
        "auth": ("PRIVATE-TOKEN", TOKEN),
        "headers": {},
        "label": "name",
        "states": {"pending", "running", "success", "failed", "canceled"},
    },
    "gitea": {
        "path": re.compile(r"/api/v1/repos/acme/shop/statuses/(?P<sha>[0-9a-f]{40})"),
        "auth": ("Authorization", f"token {TOKEN}"),
        "headers": {},
        "label": "context",
        "states": {"pending", "success", "error", "failure", "warning"},
    },
}
FAILURE = {"github": "failure", "gitlab": "failed", "gitea": "failure"}
PENDING = {"github": "pending", "gitlab": "running", "gitea": "pending"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def context(self) -> str:
        return str(self.body.get("context", self.body.get("name", "")))


@dataclass
class Forge:
    """A loopback server for one provider: records every request, answers with the scripted ``answers`` in
    order (then 201), and answers 422 to any request that is not the API's documented shape."""

    provider: str
    answers: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # cleared: answers wait until it is set

    def __post_init__(self) -> None:
        self.release.set()
        self.changed = threading.Condition()
        forge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                forge.record("GET", self, b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                forge.record("POST", self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url + {"github": "", "gitlab": "/api/v4", "gitea": "/api/v1"}[self.provider]

    def check(self, method: str, handler: BaseHTTPRequestHandler, raw: bytes) -> tuple[list[str], dict[str, Any]]:
        shape = SHAPES[self.provider]
        wrong = []
        if method != "POST":
            wrong.append(f"method {method}")
        if not shape["path"].fullmatch(handler.path):
            wrong.append(f"path {handler.path}")
        name, value = shape["auth"]
        if handler.headers.get(name) != value:
            wrong.append(f"no {name} header as documented")
        for other in ("Authorization", "PRIVATE-TOKEN"):
            if other != name and other in handler.headers:
                wrong.append(f"an extra {other} header")
        for header, expected in shape["headers"].items():
            if handler.headers.get(header) != expected:
                wrong.append(f"{header}: {handler.headers.get(header)!r}")
        if (handler.headers.get("Content-Type") or "").split(";")[0] != "application/json":
            wrong.append(f"content type {handler.headers.get('Content-Type')!r}")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return [*wrong, "body is not JSON"], {}
        allowed = {"state", "target_url", "description", shape["label"]}
        if not isinstance(body, dict) or set(body) - allowed:
            wrong.append(f"fields {sorted(body)} beyond {sorted(allowed)}")
            body = body if isinstance(body, dict) else {}
        if body.get("state") not in shape["states"]:
            wrong.append(f"state {body.get('state')!r}")
        if not isinstance(body.get(shape["label"]), str) or not body.get(shape["label"]):
            wrong.append(f"no {shape['label']}")
        if not isinstance(body.get("description", ""), str) or len(body.get("description", "")) > 140:
            wrong.append("description longer than 140 characters")
        return wrong, body

    def record(self, method: str, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        wrong, body = self.check(method, handler, raw)
        with self.changed:
            self.seen.append(Seen(method, handler.path, dict(handler.headers.items()), body))
            self.problems += wrong
            answer = self.answers.pop(0) if self.answers else (201, {}, {"id": len(self.seen)})
            self.changed.notify_all()
        if wrong:
            answer = (422, {}, {"message": "; ".join(wrong)})
        self.release.wait(WAIT)
        code, headers, payload = answer
        data = json.dumps(payload).encode()
        handler.send_response(code)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def wait_for(self, count: int) -> list[Seen]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.seen) >= count, timeout=WAIT), \
                f"the server saw {len(self.seen)} requests, not {count}"
            return list(self.seen)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class Sleeps:
    """An injected ``sleep``: records each wait and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """JSON log lines of everything logged after it (loggers made later: CommitStatuses binds at construction)."""
    out = io.StringIO()
    log.configure(json=True, stream=out, level="debug")
    yield lambda: [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    log.configure(json=True, stream=io.StringIO())  # as tests/test_log.py leaves it: never a closed capture


@pytest.fixture
def forge() -> Iterator[Callable[..., Forge]]:
    made: list[Forge] = []

    def start(provider: str, answers: list[tuple[int, dict[str, str], Any]] | None = None) -> Forge:
        made.append(Forge(provider, list(answers or [])))
        return made[-1]

    yield start
    for server in made:
        server.close()


@pytest.fixture
def poster(logs: Any) -> Iterator[Callable[..., CommitStatuses]]:
    """CommitStatuses for a provider at an API URL; closed after the test."""
    made: list[CommitStatuses] = []

    def make(provider: str, api_url: str, *, per_service: bool = False, external_url: str = "",
             **options: Any) -> CommitStatuses:
        repo = "group/sub/shop" if provider == "gitlab" else "acme/shop"
        config = StatusConfig(provider=provider, api_url=api_url, repo=repo, token=TOKEN,  # type: ignore[arg-type]
                              per_service=per_service, external_url=external_url)
        options.setdefault("sleep", Sleeps())
        session = requests.Session()
        session.trust_env = False  # straight to loopback, whatever proxy the environment names
        options.setdefault("session", session)
        made.append(CommitStatuses(config, "shop", **options))
        return made[-1]

    yield make
    for statuses in made:
        statuses.close(5)


def plan_of(*services: str, revision: str = SHA) -> Plan:
    steps = tuple(Step(id=f"{name}-0", host="h1", kind="service", name=name, action="update",
                       reason="image changed", slot=0) for name in services)
    return Plan(project="shop", revision=revision, steps=steps)


def applied(revision: str, outcome: str, **services: tuple[str, str]) -> PassResult:
    """A pass that applied: each service's (status, message)."""
    result = ApplyResult(services={name: ServiceOutcome(name, status, message)  # type: ignore[arg-type]
                                   for name, (status, message) in services.items()})
    problems = result.problems()
    return PassResult(outcome, revision, "; ".join(problems) or "converged", plan=plan_of(*services),
                      apply=result, services=result.service_statuses(), errors=problems)


ROLLED_BACK = ("rolled_back", "web[0] on h1: health check failed: exit 1; rolled back to the previous version on "
                              "every host")


# -- each API's shape ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_pending_then_success_in_each_apis_documented_shape(provider: str, forge: Any, poster: Any) -> None:
    server = forge(provider)
    statuses = poster(provider, server.api_url)
    statuses.apply_started(SHA, plan_of("web"))
    server.wait_for(1)  # the pending is out before the pass ends (else the success would supersede it)
    statuses.pass_finished(applied(SHA, "converged", web=("converged", "")))
    pending, success = server.wait_for(2)
    assert server.problems == []
    assert [pending.body["state"], success.body["state"]] == [PENDING[provider], "success"]
    assert pending.context == success.context == "gitops/shop"
    assert pending.body["description"] == "deploying: 1 service"
    assert success.body["description"] == "converged: 1 service updated"
    assert "target_url" not in success.body  # no external_url configured
    assert SHA in success.path
    assert statuses.flush(WAIT) and statuses.counts() == {"posted": 2}


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_a_rollback_is_a_failure_never_a_success(provider: str, forge: Any, poster: Any) -> None:
    server = forge(provider)
    statuses = poster(provider, server.api_url)
    statuses.apply_started(SHA, plan_of("web"))
    server.wait_for(1)
    statuses.pass_finished(applied(SHA, "failed", web=ROLLED_BACK))
    seen = server.wait_for(2)
    assert server.problems == []
    assert seen[-1].body["state"] == FAILURE[provider]
    assert seen[-1].body["description"] == "rolled back: web[0] on h1: health check failed: exit 1"
    assert statuses.flush(WAIT)
    assert all(s.body["state"] != "success" for s in server.seen)


def test_gitlab_takes_a_numeric_project_id_as_it_is(forge: Any, logs: Any) -> None:
    server = forge("gitlab")
    config = StatusConfig(provider="gitlab", api_url=server.api_url, repo="4242", token=TOKEN)
    statuses = CommitStatuses(config, "shop", sleep=Sleeps())
    try:
        statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
        (seen,) = server.wait_for(1)
        assert seen.path == f"/api/v4/projects/4242/statuses/{SHA}"
        assert seen.body == {"state": "success", "description": "hosts match the manifests", "name": "gitops/shop"}
    finally:
        statuses.close(5)


def test_per_service_contexts_keep_their_own_state(forge: Any, poster: Any) -> None:
    server = forge("gitlab")
    statuses = poster("gitlab", server.api_url, per_service=True, external_url="https://deploy.example.com/")
    statuses.apply_started(SHA, plan_of("web", "api", "db"))
    pending = server.wait_for(4)
    assert {s.context: s.body["state"] for s in pending} == {
        "gitops/shop": "running", "gitops/shop/web": "running", "gitops/shop/api": "running",
        "gitops/shop/db": "running"}
    # web converged, api rolled back; the apply never reached db (the result says nothing of it)
    statuses.pass_finished(applied(SHA, "failed", web=("converged", ""), api=ROLLED_BACK))
    seen = server.wait_for(8)
    assert server.problems == []
    final = {s.context: s.body for s in seen[4:]}
    assert {context: body["state"] for context, body in final.items()} == {
        "gitops/shop": "failed", "gitops/shop/web": "success", "gitops/shop/api": "failed",
        "gitops/shop/db": "failed"}
    assert final["gitops/shop/api"]["description"].startswith("rolled back: ")
    assert final["gitops/shop"]["description"] == final["gitops/shop/db"]["description"]
    assert final["gitops/shop"]["target_url"] == "https://deploy.example.com/"
    assert final["gitops/shop/web"]["target_url"] == "https://deploy.example.com/#service-web"


# -- what is posted, and how often ----------------------------------------------------------------------------
def test_a_commit_that_stays_converged_gets_one_success(forge: Any, poster: Any) -> None:
    server = forge("github")
    statuses = poster("github", server.api_url)
    for _ in range(5):
        statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
    assert statuses.flush(WAIT)
    assert [s.body["state"] for s in server.seen] == ["success"]
    # a later quiet poll, or a repair of the same commit that converges, is no news either
    statuses.apply_started(SHA, plan_of("web"))
    statuses.pass_finished(applied(SHA, "converged", web=("converged", "")))
    statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
    assert statuses.flush(WAIT) and len(server.seen) == 1
    # but a failure of it is, and so is its success after that
    statuses.pass_finished(applied(SHA, "failed", web=ROLLED_BACK))
    statuses.flush(WAIT)
    statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
    assert statuses.flush(WAIT)
    assert [s.body["state"] for s in server.seen] == ["success", "failure", "success"]


def test_nothing_is_posted_without_a_commit_to_report_on(forge: Any, poster: Any) -> None:
    server = forge("github")
    statuses = poster("github", server.api_url)
    statuses.fetch_failed()
    statuses.pass_finished(PassResult("source_unavailable", message="source unavailable: timed out",
                                      errors=["timed out"]))
    statuses.pass_finished(PassResult("skipped", SHA, "another reconciler is applying to these hosts"))
    statuses.pass_finished(PassResult("no_changes", SHA, "dry run", plan=plan_of("web")))  # nothing applied
    statuses.pass_finished(PassResult("converged", "local", "converged"))  # a local folder: no commit
    statuses.apply_started("local", plan_of("web", revision="local"))
    assert statuses.flush(WAIT)
    assert server.seen == [] and statuses.counts() == {}


def test_a_newer_status_supersedes_one_still_queued(forge: Any, poster: Any) -> None:
    server = forge("github")
    statuses = poster("github", server.api_url)
    server.release.clear()  # the server holds its answers: the worker is stuck on the first request
    statuses.pass_finished(PassResult("no_changes", SHA2, "hosts match the manifests"))
    server.wait_for(1)
    statuses.apply_started(SHA, plan_of("web"))  # queued behind it ...
    statuses.pass_finished(applied(SHA, "converged", web=("converged", "")))  # ... and replaced before it was sent
    server.release.set()
    assert statuses.flush(WAIT)
    assert [(s.path.rsplit("/", 1)[1], s.body["state"]) for s in server.seen] == [(SHA2, "success"), (SHA, "success")]
    assert statuses.counts() == {"posted": 2, "superseded": 1}


def test_a_full_queue_drops_the_oldest(forge: Any, poster: Any) -> None:
    server = forge("github")
    statuses = poster("github", server.api_url, queue_size=2)
    server.release.clear()
    statuses.pass_finished(PassResult("no_changes", SHA2, "hosts match the manifests"))
    server.wait_for(1)
    for n in range(3):
        statuses.pass_finished(PassResult("invalid", SHA, errors=[f"error {n}"]))  # one key: supersedes
    statuses.pass_finished(PassResult("no_changes", "1" * 40, ""))
    statuses.pass_finished(PassResult("no_changes", "2" * 40, ""))  # the third key: the oldest goes
    server.release.set()
    assert statuses.flush(WAIT)
    assert [s.path.rsplit("/", 1)[1] for s in server.seen] == [SHA2, "1" * 40, "2" * 40]
    assert statuses.counts()["dropped"] == 1


# -- retries ------------------------------------------------------------------------------------------------------
def test_5xx_is_retried_with_exponential_backoff_and_jitter(forge: Any, poster: Any) -> None:
    server = forge("gitea", [(502, {}, {"message": "bad gateway"}), (503, {}, {})])
    sleeps = Sleeps()
    statuses = poster("gitea", server.api_url, sleep=sleeps, base_delay=2.0)
    statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
    assert len(server.wait_for(3)) == 3
    assert statuses.flush(WAIT)
    assert statuses.counts() == {"posted": 1}
    assert len(sleeps.calls) == 2
    assert 1.0 <= sleeps.calls[0] <= 2.0 and 2.0 <= sleeps.calls[1] <= 4.0


@pytest.mark.parametrize(("answer", "waited"), [
    ((429, {"Retry-After": "7"}, {"message": "slow down"}), 7.0),
    ((429, {"Retry-After": "3600"}, {}), 60.0),  # capped at max_delay
    ((403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 3600)},
      {"message": "API rate limit exceeded"}), 60.0),  # GitHub's primary rate limit
])
def test_rate_limits_wait_as_the_api_says(answer: Any, waited: float, forge: Any, poster: Any) -> None:
    server = forge("github", [answer])
    sleeps = Sleeps()
    statuses = poster("github", server.api_url, sleep=sleeps, max_delay=60.0)
    statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
    server.wait_for(2)
    assert statuses.flush(WAIT)
    assert sleeps.calls == [waited] and statuses.counts() == {"posted": 1}


def test_a_4xx_is_not_retried_and_logged_once_without_the_token(forge: Any, poster: Any, logs: Any) -> None:
    # an API that echoes what it got: the token must still not reach the log
    server = forge("github", [(401, {}, {"message": f"Bad credentials for {TOKEN}\n\x1b[31m" + "x" * 500})])
    statuses = poster("github", server.api_url)
    statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
    server.wait_for(1)
    assert statuses.flush(WAIT)
    assert len(server.seen) == 1 and statuses.counts() == {"rejected": 1}
    (line,) = [entry for entry in logs() if entry["event"] == "commit_status.rejected"]
    assert (line["provider"], line["repo"], line["sha"], line["context"], line["http_status"]) == (
        "github", "acme/shop", SHA[:12], "gitops/shop", 401)
    assert line["message"].startswith("Bad credentials for ***")
    assert len(line["message"]) <= 200 and "\x1b" not in line["message"]
    assert TOKEN not in json.dumps(logs())
    # the same status is not sent again on the next poll: it would be refused again
    statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
    assert statuses.flush(WAIT) and len(server.seen) == 1


def test_a_redirect_is_not_followed(forge: Any, poster: Any) -> None:
    elsewhere = forge("github")
    server = forge("github", [(301, {"Location": elsewhere.url + f"/repos/acme/shop/statuses/{SHA}"}, {})])
    statuses = poster("github", server.api_url)
    statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
    server.wait_for(1)
    assert statuses.flush(WAIT)
    assert statuses.counts() == {"rejected": 1} and elsewhere.seen == []


def _timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def test_an_api_that_is_down_never_holds_a_pass(poster: Any, logs: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections are refused
    sleeps = Sleeps()
    statuses = poster("github", f"http://127.0.0.1:{port}", sleep=sleeps, max_attempts=6)
    assert _timed(lambda: statuses.apply_started(SHA, plan_of("web"))) < 0.1
    assert _timed(lambda: statuses.pass_finished(applied(SHA, "converged", web=("converged", "")))) < 0.1
    assert statuses.flush(WAIT)
    assert "posted" not in statuses.counts() and len(sleeps.calls) >= 5
    # the success was tried six times (the pending before it, until the success replaced it)
    (line,) = [entry for entry in logs() if entry["event"] == "commit_status.gave_up" and entry["state"] == "success"]
    assert line["attempts"] == 6 and "ConnectionError" in line["error"]


def test_an_api_that_never_answers_never_holds_a_pass(poster: Any) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        sleeps = Sleeps()
        statuses = poster("gitlab", f"http://127.0.0.1:{silent.getsockname()[1]}/api/v4", sleep=sleeps,
                          max_attempts=3, timeout=(2.0, 0.2))
        assert _timed(lambda: statuses.apply_started(SHA, plan_of("web"))) < 0.1
        assert _timed(lambda: statuses.pass_finished(applied(SHA, "failed", web=ROLLED_BACK))) < 0.1
        assert statuses.flush(WAIT)
        assert statuses.counts().get("gave_up", 0) >= 1 and len(sleeps.calls) >= 2


def test_close_tries_what_is_queued_then_takes_nothing_more(forge: Any, poster: Any) -> None:
    server = forge("github")
    statuses = poster("github", server.api_url)
    server.release.clear()
    statuses.pass_finished(PassResult("no_changes", SHA2, "hosts match the manifests"))
    server.wait_for(1)
    statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
    server.release.set()
    assert statuses.close(WAIT)
    assert len(server.seen) == 2
    statuses.pass_finished(applied(SHA, "failed", web=ROLLED_BACK))  # after close: ignored, never raises
    assert statuses.flush(1) and len(server.seen) == 2


def test_close_gives_up_at_its_deadline_when_the_api_is_down(poster: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    statuses = poster("github", f"http://127.0.0.1:{port}", sleep=None, base_delay=30.0, max_delay=30.0)
    statuses.pass_finished(PassResult("no_changes", SHA, "hosts match the manifests"))
    started = time.monotonic()
    statuses.close(1.0)  # the backoff wait (15 to 30 s) is cut at the deadline
    assert statuses.flush(WAIT) and time.monotonic() - started < 10
    assert statuses.counts() == {"gave_up": 1}


# -- the token ----------------------------------------------------------------------------------------------------
def test_the_token_is_in_no_log_line_description_exception_or_repr(forge: Any, poster: Any, logs: Any,
                                                                    tmp_path: Path) -> None:
    server = forge("gitea", [(500, {}, {"message": TOKEN})])
    statuses = poster("gitea", server.api_url)
    leaky = f"cannot pull: https://bob:{TOKEN}@registry.example.com/v2/ said {TOKEN}"
    statuses.pass_finished(PassResult("failed", SHA, leaky, errors=[leaky]))
    server.wait_for(2)
    assert statuses.flush(WAIT)
    posted = server.seen[-1].body["description"]
    assert TOKEN not in posted and "bob" not in posted and "***" in posted
    at_the_cut = PassResult("invalid", SHA2, errors=["x" * 95 + TOKEN])  # cut mid-token unless scrubbed first
    ((_, _, description),) = statuses_for(at_the_cut, "shop", per_service=False, secrets=[TOKEN])
    assert TOKEN[:5] not in description and description.endswith("***")
    assert TOKEN not in json.dumps(logs())
    assert TOKEN not in repr(statuses.config) and TOKEN not in repr(statuses) and TOKEN not in str(vars(statuses))
    # only the auth header carries it
    assert all(TOKEN not in json.dumps(s.body) + s.path for s in server.seen)
    # errors about a token or its file never quote it
    for bad in (TOKEN + "\n", TOKEN + " x", TOKEN + "\x00", TOKEN + "é"):
        with pytest.raises(ValueError) as raised:
            StatusConfig(provider="github", repo="acme/shop", token=bad)
        assert TOKEN not in str(raised.value)
    for bad in (TOKEN + " x", TOKEN + "\x00", TOKEN + "é", "\n" + TOKEN + "\n" + TOKEN):
        (tmp_path / "token").write_bytes(bad.encode() + b"\n")
        with pytest.raises(ValueError) as raised:
            read_token(tmp_path / "token")
        assert TOKEN not in str(raised.value) and str(tmp_path / "token") in str(raised.value)
    (tmp_path / "token").write_bytes(TOKEN.encode()[:6] + b"\xff\xfe" + TOKEN.encode()[6:])
    with pytest.raises(ValueError) as raised:
        read_token(tmp_path / "token")
    assert "0xff" not in str(raised.value) and raised.value.__suppress_context__


# -- the pure parts -----------------------------------------------------------------------------------------------
def test_statuses_for_each_outcome() -> None:
    def one(result: PassResult) -> list[tuple[str, str, str]]:
        return statuses_for(result, "shop", per_service=False)

    assert one(PassResult("converged", SHA, services={"a": "converged", "b": "converged", "c": "converged"})) == [
        ("gitops/shop", "success", "converged: 3 services updated")]
    assert one(PassResult("no_changes", SHA, "hosts match the manifests")) == [
        ("gitops/shop", "success", "hosts match the manifests")]
    assert one(PassResult("invalid", SHA, errors=["web.yaml:3:1: unknown field", "db.yaml:1:1: x"])) == [
        ("gitops/shop", "failure", "invalid, nothing was changed: web.yaml:3:1: unknown field")]
    assert one(PassResult("failed", SHA, "tag gone", errors=["registry says: tag 1.4 not found"])) == [
        ("gitops/shop", "failure", "failed: registry says: tag 1.4 not found")]
    paused = applied(SHA, "failed", web=("paused", "web[1] on h2: unhealthy; paused (failureAction: pause)"))
    assert one(paused) == [("gitops/shop", "failure", "paused: web[1] on h2: unhealthy")]
    unreachable = PassResult("failed", SHA, "host h2 is unreachable: ssh: connection refused",
                             plan=Plan("shop", SHA, (), unreachable=(("h2", "ssh: connection refused"),)),
                             errors=["host h2 is unreachable: ssh: connection refused"])
    assert one(unreachable) == [("gitops/shop", "failure", "host h2 is unreachable: ssh: connection refused")]
    both = applied(SHA, "failed", api=ROLLED_BACK, web=("converged", ""))
    assert one(both)[0][1:] == ("failure", "rolled back: api: web[0] on h1: health check failed: exit 1")
    assert statuses_for(both, "shop", per_service=True)[1:] == [
        ("gitops/shop/api", "failure", "rolled back: web[0] on h1: health check failed: exit 1"),
        ("gitops/shop/web", "success", "converged")]
    for nothing in (PassResult("source_unavailable", message="x"), PassResult("skipped", SHA, "lease busy"),
                    PassResult("error", message="state store unwritable"),
                    PassResult("no_changes", SHA, "dry run", plan=plan_of("web"))):
        assert one(nothing) == []
    assert pending_for(SHA, plan_of("web", "api"), "shop", per_service=True) == [
        ("gitops/shop", "pending", "deploying: 2 services"),
        ("gitops/shop/api", "pending", "deploying: 1 instance change"),
        ("gitops/shop/web", "pending", "deploying: 1 instance change")]
    assert statuses_for(PassResult("no_changes", SHA), "shop", per_service=False, prefix="deploy")[0][0] == \
        "deploy/shop"


def test_descriptions_are_one_clean_line_of_at_most_140_characters() -> None:
    nasty = "manifest\x1b[31m error\r\n\tin\u202e web.yaml\x00:\u2028" + "word " * 60
    ((_, state, description),) = statuses_for(PassResult("invalid", SHA, errors=[nasty]), "shop", per_service=False)
    assert state == "failure"
    assert len(description) == 140 and description.endswith("…")
    assert description.startswith("invalid, nothing was changed: manifest[31m error in web.yaml: word word")
    assert all(ch.isprintable() for ch in description)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://github.com/acme/shop.git", ("github", "https://api.github.com", "acme/shop")),
    ("https://x-access-token:secret@github.com/acme/shop", ("github", "https://api.github.com", "acme/shop")),
    ("git@github.com:acme/shop.git", ("github", "https://api.github.com", "acme/shop")),
    ("ssh://git@github.com/acme/shop.git", ("github", "https://api.github.com", "acme/shop")),
    ("ssh://git@github.com:22/acme/shop", ("github", "https://api.github.com", "acme/shop")),
    ("https://gitlab.com/group/sub/shop.git", ("gitlab", "https://gitlab.com/api/v4", "group/sub/shop")),
    ("git@gitlab.com:group/shop.git", ("gitlab", "https://gitlab.com/api/v4", "group/shop")),
    ("ssh://git@gitlab.com/group/sub/shop.git", ("gitlab", "https://gitlab.com/api/v4", "group/sub/shop")),
    ("https://gitlab.com/group/shop/-/tree/main", ("gitlab", "https://gitlab.com/api/v4", "group/shop")),
    ("https://gitea.example.com/acme/shop.git", (None, "", "")),
    ("https://github.com/acme", (None, "", "")),
    ("/srv/repos/shop", (None, "", "")),
    ("file:///srv/repos/shop", (None, "", "")),
])
def test_guess_from_git_url(url: str, expected: tuple[str | None, str, str]) -> None:
    assert guess_from_git_url(url) == expected


def test_config_defaults_and_refusals(tmp_path: Path) -> None:
    assert StatusConfig(provider="github", repo="acme/shop", token="t").api_url == "https://api.github.com"
    assert StatusConfig(provider="gitlab", repo="g/s/p", token="t").api_url == "https://gitlab.com/api/v4"
    gitea = StatusConfig(provider="gitea", api_url="https://git.example.com/api/v1/", repo="acme/shop", token="t")
    assert gitea.api_url == "https://git.example.com/api/v1"
    for wrong, says in [
        ({"provider": "gitea", "repo": "acme/shop"}, "API URL"),
        ({"provider": "github", "repo": "acme/shop", "api_url": "http://github.example.com"}, "https://"),
        ({"provider": "github", "repo": "acme/shop", "api_url": "https://u:p@github.example.com"}, "no user"),
        ({"provider": "github", "repo": "acme"}, "owner/name"),
        ({"provider": "github", "repo": "acme/../shop"}, "owner/name"),
        ({"provider": "gitlab", "repo": "shop"}, "project path"),
        ({"provider": "bitbucket", "repo": "acme/shop"}, "github, gitlab or gitea"),
        ({"provider": "github", "repo": "acme/shop", "external_url": "javascript:alert(1)"}, "external URL"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            StatusConfig(token="t", **wrong)  # type: ignore[arg-type]
    (tmp_path / "token").write_text("\n  abc123  \n")
    assert read_token(tmp_path / "token") == "abc123"
    (tmp_path / "empty").write_text(" \n")
    with pytest.raises(ValueError, match="empty"):
        read_token(tmp_path / "empty")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "missing"))):
        read_token(tmp_path / "missing")



def test_a_service_held_by_gitops_rollback_never_reads_as_success() -> None:
    from gitops.outcomes.statuses import statuses_for

    result = PassResult("no_changes", "b" * 40, "hosts match the manifests", pins={"web": "a" * 40})
    assert statuses_for(result, "shop", per_service=True) == [
        ("gitops/shop", "failure", f"web held at {'a' * 12} by gitops rollback: this commit's version is not "
                                   "deployed"),
        ("gitops/shop/web", "failure", f"held at {'a' * 12} by gitops rollback")]
