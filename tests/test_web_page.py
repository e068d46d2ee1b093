"""The daemon's web page over real HTTP: the real server (make_app, make_server: uvicorn with the daemon's
limits) in this process, answering for a daemon whose status document, history and plan hold hostile values,
and the real `gitops daemon` process for its token.

What is checked: every value a repository or a container can set (health output, log lines, error messages,
plan reasons, label values, host errors) shows as text: no tag of its own, no template evaluation; the status
token guards the page (Bearer as for /status, or Basic with the token as the password) and /healthz stays
open; the Content-Security-Policy allows nothing but the page's own origin and its nonce-bearing inline
code; the event stream is framed as server-sent events and ends by itself before the body timeout.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from gitops.core.model import (
    DesiredState,
    HostObservation,
    HostSpec,
    ObservedContainer,
    ObservedState,
    ProjectSpec,
    ServiceSpec,
)
from gitops.core.plan import FieldChange, Plan, Step
from gitops.daemon.activity import Activity
from gitops.daemon.metrics import Metrics
from gitops.daemon.server import ServerLimits, make_app, make_server
from gitops.daemon.status import build_status
from gitops.engine.reconciler import PassResult
from gitops.state import PassRecord
from tests.daemonutil import DaemonProcess, free_port

MARKUP = "<script>alert(1)</script><img src=x onerror=alert(2)>"
TEMPLATE = "{{7*7}}"
HOSTILE = f"{MARKUP} {TEMPLATE}"
TOKEN = "page-token-Jq4x9"
DESIRED_REV = "a" * 40
RUNNING_REV = "b" * 40


# --- a daemon whose every repository- or container-made value is hostile ---------------------------------------

def hostile_plan() -> Plan:
    step = Step(id="s1", host="local", kind="service", name="web", action="update", reason=f"settings changed: {HOSTILE}",
                slot=0, changes=(FieldChange("labels.note", "calm", HOSTILE),), source="web.yaml:3")
    return Plan(project="shop", revision=DESIRED_REV, steps=(step,), warnings=(f"warning: {HOSTILE}",))


@dataclass
class FakeDaemon:
    """The PageView (and DaemonView) of a daemon after a failed rollout, from the real status builder."""

    activity: Activity = field(default_factory=Activity)
    plan: Plan | None = field(default_factory=hostile_plan)
    living: bool = True
    empty: bool = False

    def record(self) -> PassRecord:
        return PassRecord(7, 1_700_000_000.0, 1_700_000_004.5, "webhook:github", DESIRED_REV, "failed",
                          {"create": 0, "update": 1, "remove": 0, "noop": 0}, {"web": "rolled_back"},
                          f"web rolled back: {HOSTILE}",
                          {"web": {"message": f"unhealthy: {HOSTILE}", "health_output": f"{HOSTILE}\nsecond line",
                                   "logs": f"starting\n{HOSTILE}"}})

    def status_and_pending(self) -> tuple[dict[str, Any], Plan | None]:
        if self.empty:
            return build_status(None, None, source={}, last_pass=None, pins={}, last_good={}, pending=None), None
        svc = ServiceSpec("web", image="local/web:2", hosts=("local",), replicas=1, labels=(("note", HOSTILE),))
        desired = DesiredState(ProjectSpec("shop"), (HostSpec("local", "unix:///var/run/docker.sock"),), (), (),
                               (svc,), revision=DESIRED_REV)
        container = ObservedContainer(host="local", id="c1", name="shop-web-0", service="web", slot=0,
                                      spec_hash="old", revision=RUNNING_REV, state="running", health="healthy",
                                      image="local/web:1", hand_changes=("env.DEBUG",))
        observed = ObservedState((HostObservation("local", True, "", (container,)),
                                  HostObservation("edge", False, f"cannot connect: {HOSTILE}")))
        source = {"url": "https://git.example.invalid/shop.git", "ref": "main", "commit": DESIRED_REV,
                  "fetched_at": 1_700_000_000.0, "error": f"fetch failed: {HOSTILE}", "error_at": 1_700_000_100.0,
                  "available": False}
        status = build_status(desired, observed, source=source, last_pass=self.record(), pins={}, last_good={},
                              pending=self.plan)
        return status, self.plan

    def status(self) -> dict[str, Any]:
        return self.status_and_pending()[0]

    def history(self, limit: int) -> list[dict[str, Any]]:
        return [] if self.empty else [self.record().to_dict()][:limit]

    def request_pass(self, trigger: str, head: str = "") -> None:
        pass

    def alive(self) -> bool:
        return self.living

    def ready(self) -> bool:
        return True


@dataclass
class Served:
    url: str
    daemon: FakeDaemon

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kw)


@contextmanager
def serve(daemon: FakeDaemon, *, token: bytes | None = None, body_timeout: float = 30.0) -> Iterator[Served]:
    app = make_app(daemon, secret=b"s", branch="main", metrics=Metrics(), status_token=token)
    port = free_port()
    server = make_server(app, host="127.0.0.1", port=port, limits=ServerLimits(body_timeout=body_timeout))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", daemon)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def site() -> Iterator[Served]:
    with serve(FakeDaemon()) as served:
        yield served


@pytest.fixture
def guarded() -> Iterator[Served]:
    with serve(FakeDaemon(), token=TOKEN.encode()) as served:
        yield served


@pytest.fixture
def short() -> Iterator[Served]:
    """A server whose body timeout is 3 s: event streams must end by themselves before 2/3 of it."""
    with serve(FakeDaemon(), body_timeout=3.0) as served:
        yield served


# --- reading the HTML as a browser would ---------------------------------------------------------------------

class Parsed(HTMLParser):
    """Every start tag with its attributes, and the text of the document (entities decoded)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.chunks.append(data)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def csp(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in policy.split(";")) if d}


# --- escaping -----------------------------------------------------------------------------------------------

def test_every_hostile_value_shows_as_text_and_adds_no_markup(site: Served) -> None:
    response = site.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    page = Parsed(html)
    # The hostile values are there, as text, once per place that shows them ...
    places = {"history error": f"web rolled back: {HOSTILE}", "last pass error": f"web rolled back: {HOSTILE}",
              "service reason": f"unhealthy: {HOSTILE}", "health output": HOSTILE, "log line": HOSTILE,
              "plan reason": f"settings changed: {HOSTILE}", "label value": f'labels.note: calm -> "{HOSTILE}"',
              "host error": f"cannot connect: {HOSTILE}", "source error": f"fetch failed: {HOSTILE}",
              "plan warning": f"warning: {HOSTILE}"}
    for where, text in places.items():
        assert text in page.text, f"{where}: {text!r} is not shown as text"
    assert page.text.count(HOSTILE) >= 12  # reason, health output and logs show in the service row and in history
    # ... and none of them made an element, an attribute or a template expression of its own
    assert MARKUP not in html and "<img" not in html
    assert [a for _, attrs in page.tags for a in attrs if a.startswith("on")] == []
    assert len(page.named("script")) == 1 and page.named("img") == []
    assert page.text.count(TEMPLATE) == page.text.count(HOSTILE)  # never evaluated
    # the same holds for the live part the script swaps in
    fragment = site.get("/fragment")
    assert fragment.status_code == 200 and MARKUP not in fragment.text
    assert Parsed(fragment.text).named("script") == [] and f"unhealthy: {HOSTILE}" in Parsed(fragment.text).text


def test_the_plan_being_applied_is_escaped_too(site: Served) -> None:
    site.daemon.activity.apply_started(DESIRED_REV, hostile_plan())
    page = Parsed(site.get("/").text)
    assert ("section", {"id": "activity", "class": "banner", "data-phase": "applying"}) in page.tags
    assert page.text.count(f"settings changed: {HOSTILE}") == 2  # the plan applied now, and the one pending
    assert page.named("img") == [] and len(page.named("script")) == 1


def test_control_and_bidi_characters_show_as_escapes(site: Served) -> None:
    site.daemon.plan = Plan(project="shop", revision=DESIRED_REV, steps=(Step(
        id="s1", host="local", kind="service", name="web", action="update",
        reason="evil\u202eexe.txt \x1b[31mred\x1b[0m"),))
    text = Parsed(site.get("/").text).text
    assert "\u202e" not in text and "\x1b" not in text
    assert "evil\\u202eexe.txt \\x1b[31mred\\x1b[0m" in text


def test_no_template_marks_a_value_safe() -> None:
    """Autoescaping is the whole defence: no template may switch it off or mark anything safe."""
    folder = Path(__file__).resolve().parent.parent / "gitops" / "daemon" / "templates"
    templates = sorted(folder.glob("*.html"))
    assert [t.name for t in templates] == ["main.html", "page.html"]
    for template in templates:
        text = template.read_text()
        assert not re.search(r"\|\s*safe|autoescape\s+false|Markup|\|\s*e\b", text), template.name


def test_a_daemon_without_any_state_yet_renders(tmp_path: Path) -> None:
    with serve(FakeDaemon(plan=None, empty=True)) as served:
        response = served.get("/")
        assert response.status_code == 200
        text = Parsed(response.text).text
        assert "No services" in text and "No pass recorded yet" in text and "Not fetched yet" in text


# --- the status token ---------------------------------------------------------------------------------------

def basic(user: str, password: str | bytes) -> str:
    raw = password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(user.encode() + b":" + raw).decode()


@pytest.mark.parametrize("path", ["/", "/fragment", "/events"])
def test_the_page_needs_the_token_and_a_browser_is_asked_for_it(guarded: Served, path: str) -> None:
    refused = guarded.get(path)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('Basic realm="gitops"')
    assert "shop" not in refused.text and "rolled back" not in refused.text
    for wrong in ({"Authorization": "Bearer nope"}, {"Authorization": basic("gitops", "nope")},
                  {"Authorization": basic(TOKEN, "")},  # the token as the user name is not the password
                  {"Authorization": "Basic !!!not-base64"}, {"Authorization": basic("gitops", "t\xf6ken".encode())},
                  {"Authorization": f"Digest {TOKEN}"}):
        assert guarded.get(path, headers=wrong).status_code == 401, wrong
    if path == "/events":
        return
    for good in ({"Authorization": f"Bearer {TOKEN}"}, {"Authorization": basic("gitops", TOKEN)},
                 {"Authorization": basic("", TOKEN)}):
        answer = guarded.get(path, headers=good)
        assert answer.status_code == 200 and "rolled back" in answer.text, good
        assert TOKEN not in answer.text


def test_the_event_stream_opens_with_the_token(guarded: Served) -> None:
    with httpx.stream("GET", guarded.url + "/events", headers={"Authorization": basic("u", TOKEN)}, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")


def test_health_and_readiness_stay_open_and_status_keeps_its_bearer_challenge(guarded: Served) -> None:
    assert guarded.get("/healthz").status_code == 200 and guarded.get("/readyz").status_code == 200
    status = guarded.get("/status", headers={"Authorization": basic("gitops", TOKEN)})
    assert status.status_code == 401 and status.headers["www-authenticate"] == 'Bearer realm="gitops"'
    assert guarded.get("/status", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_real_daemon_guards_its_page_with_the_status_token(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "project.yaml").write_text("apiVersion: gitops/v1\nkind: Project\nmetadata:\n  name: webtoken\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    with DaemonProcess(tmp_path, "--local", str(repo), "--interval", "1h", "--no-webhooks",
                       "--status-token-file", str(tmp_path / "token"), secret=None) as d:
        url = f"http://127.0.0.1:{d.port}/"
        refused = httpx.get(url, timeout=10)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic ")
        page = httpx.get(url, auth=("anyone", TOKEN), timeout=10)
        assert page.status_code == 200
        text = Parsed(page.text).text
        assert "webtoken" in text and "History" in text and TOKEN not in page.text
        history = [attrs.get("data-outcome") for tag, attrs in Parsed(page.text).tags if tag == "tbody"
                   and "data-pass" in attrs]
        assert history and history[0] in ("converged", "no_changes")


# --- headers: nothing from elsewhere, no inline code but the page's own ----------------------------------------

def test_the_policy_allows_no_other_origin_and_only_the_pages_own_inline_code(site: Served) -> None:
    first, second = site.get("/"), site.get("/")
    policy = csp(first)
    assert policy["default-src"] == ["'none'"]
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{20,})'", policy["script-src"][0])
    assert nonce and len(policy["script-src"]) == 1 and policy["style-src"] == policy["script-src"]
    assert policy["connect-src"] == ["'self'"] and policy["img-src"] == ["data:"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'none'"]
    for sources in policy.values():
        assert not [s for s in sources if s in ("*", "'unsafe-inline'", "'unsafe-eval'", "http:", "https:")
                    or "://" in s or s.startswith("*.")]
    page = Parsed(first.text)
    assert [s.get("nonce") for s in page.named("script") + page.named("style")] == [nonce.group(1)] * 2
    assert [s for s in page.named("script") if s.get("src")] == []
    assert csp(second)["script-src"] != policy["script-src"]  # a new nonce each time
    links = [v for _, attrs in page.tags for k, v in attrs.items() if k in ("src", "href", "action") and v]
    assert links == ["data:,"]  # the empty favicon: nothing is loaded from anywhere
    with httpx.stream("GET", site.url + "/events", timeout=10) as events:  # its headers only: it lasts 20 s
        for response in (first, site.get("/fragment"), events):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["cache-control"] == "no-store"
            assert csp(response)["default-src"] == ["'none'"]


# --- the event stream ----------------------------------------------------------------------------------------

def read_events(response: httpx.Response, on_event: Any = None, *,
                first_only: bool = False) -> tuple[list[dict[str, Any]], str]:
    """The events of a stream until it ends (or its first one), each as its fields (a block without data is no
    event, as in EventSource); and the stream's text."""
    events, fields, text = [], {}, []
    for line in response.iter_lines():
        text.append(line)
        if line == "":
            if "data" in fields:
                events.append(fields)
                if on_event:
                    on_event(fields)
                if first_only:
                    break
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
    return events, "\n".join(text)


def page_version(served: Served) -> str:
    """The activity version the page was rendered at, as its script hands it to /events."""
    mains = Parsed(served.get("/").text).named("main")
    assert len(mains) == 1 and mains[0]["data-version"]
    return str(mains[0]["data-version"])


def test_events_are_framed_sent_on_change_and_the_stream_ends_before_the_body_timeout(short: Served) -> None:
    activity = short.daemon.activity
    epoch = page_version(short).split(".")[0]
    started = time.monotonic()

    def on_event(event: dict[str, str]) -> None:
        if json.loads(event["data"])["phase"] == "idle" and event["id"] == f"{epoch}.0":
            activity.apply_started(DESIRED_REV, hostile_plan())  # a pass starts while the page listens
        elif json.loads(event["data"])["phase"] == "applying":
            activity.pass_finished(PassResult("failed", DESIRED_REV))

    with httpx.stream("GET", short.url + "/events", timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        events, text = read_events(response, on_event)
    took = time.monotonic() - started
    assert text.startswith("retry: 1000\n")
    assert [e["event"] for e in events] == ["activity"] * 3
    assert [e["id"] for e in events] == [f"{epoch}.0", f"{epoch}.1", f"{epoch}.2"]
    assert [(json.loads(e["data"])["phase"], json.loads(e["data"])["outcome"]) for e in events] == [
        ("idle", ""), ("applying", ""), ("idle", "failed")]
    # it ended by itself (no cut: httpx read the chunked end), at 2/3 of the 3 s body timeout
    assert 1.8 <= took < 3.0, took


def test_a_stream_that_knows_the_version_sends_only_changes(short: Served) -> None:
    short.daemon.activity.pass_finished(PassResult("converged", DESIRED_REV))
    version = page_version(short)
    epoch, number = version.split(".")
    assert number == "1"
    with httpx.stream("GET", short.url + f"/events?version={version}", timeout=10) as response:
        events, text = read_events(response)
    assert events == [] and text.startswith("retry: 1000")
    # a reconnect sends the id it last saw, which wins over the page's; each of these is out of date
    for last in (f"{epoch}.0", "1", f"{'0' * len(epoch)}.1", "x", f"{epoch}.-1"):
        with httpx.stream("GET", short.url + f"/events?version={version}", headers={"Last-Event-ID": last},
                          timeout=10) as response:
            started = time.monotonic()
            events, _ = read_events(response, first_only=True)
            assert [e["id"] for e in events] == [version] and time.monotonic() - started < 1.0, last


def test_a_stream_ends_when_the_daemon_stops(short: Served) -> None:
    short.daemon.living = False
    started = time.monotonic()
    with httpx.stream("GET", short.url + "/events", timeout=10) as response:
        events, _ = read_events(response)
    assert len(events) == 1 and time.monotonic() - started < 1.5


def test_drift_names_only_what_hosts_did_not_changes_waiting_to_be_applied() -> None:
    """A failed commit's update waiting out its backoff is the pending plan's, not drift; a stopped container
    the next pass starts again is drift."""
    from gitops.core.plan import Finding, Plan, Step
    from gitops.daemon.web import _drift

    row = {"name": "web", "replicas": {"changed_by_hand": 0, "stopped": 0, "restarting": 0}}
    waiting = Step(id="service/web/0@local", kind="service", name="web", slot=0, host="local", action="update",
                   reason="image changed")
    repair = Step(id="service/web/1@local", kind="service", name="web", slot=1, host="local", action="update",
                  reason="stopped", finding=Finding.STOPPED)
    assert _drift(row, [], Plan(project="p", revision="r", steps=(waiting,))) == []
    assert _drift(row, [], Plan(project="p", revision="r", steps=(waiting, repair))) == ["1 to repair (stopped)"]
