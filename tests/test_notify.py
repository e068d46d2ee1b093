"""Notifications (issue 12, items 2 and 5): the events of a pass, their quiet period, masking, and delivery
through apprise and a signed JSON webhook to real HTTP servers on loopback.

Nothing here sleeps for a fixed time: a test waits for a condition with a deadline, or closes the notifier,
which sends what waits first (the worker is first in, first out)."""

from __future__ import annotations

import ast
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitops import log
from gitops.core.plan import Finding, Plan, Step
from gitops.engine.executor import ApplyResult, ServiceOutcome
from gitops.engine.reconciler import PassResult
from gitops.outcomes import events as events_module
from gitops.outcomes.events import MAX_LOG_CHARS, MAX_LOG_LINES, Event, Quiet, events_of, mask
from gitops.outcomes.notify import Notifier, sign, verify_signature

REV = "0123456789abcdef0123456789abcdef01234567"
CANARY = "canary-Secret-9f3b7c"  # a secret value of the desired state that a container prints
DEADLINE = 30.0  # generous: a loaded 2-core machine


# -- crafted passes ---------------------------------------------------------------------------------------
def step(name: str, action: str = "update", *, finding: Finding | None = None, reason: str = "spec changed",
         host: str = "h1", slot: int = 0) -> Step:
    return Step(f"service/{name}/{slot}@{host}", host, "service", name, action, reason,  # type: ignore[arg-type]
                slot=slot, finding=finding)


def plan_of(*steps: Step, unreachable: tuple[tuple[str, str], ...] = ()) -> Plan:
    return Plan(project="shop", revision=REV, steps=steps, unreachable=unreachable)


def rolled_back(*, logs: str = "", health: str = "", revision: str = REV) -> PassResult:
    outcomes = {"web": ServiceOutcome("web", "rolled_back", "health check failed after 3 tries", logs=logs,
                                      health_output=health),
                "api": ServiceOutcome("api", "converged")}
    return PassResult("failed", revision, "web: rolled_back: health check failed after 3 tries",
                      plan=plan_of(step("web"), step("api")), apply=ApplyResult(services=outcomes),
                      services={"web": "rolled_back", "api": "converged"})


def converged(revision: str = REV) -> PassResult:
    return PassResult("converged", revision, "converged", plan=plan_of(step("web")),
                      apply=ApplyResult(services={"web": ServiceOutcome("web", "converged")}),
                      services={"web": "converged"})


# -- events of a pass ---------------------------------------------------------------------------------------
def test_a_rolled_back_service_is_rolled_back_with_its_health_output_and_logs() -> None:
    found = events_of(rolled_back(logs="starting\nlistening on :80\npanic: no db", health="curl: (7) refused"),
                      "shop")
    assert [e.kind for e in found] == ["applied", "rolled_back"]
    applied, back = found
    assert applied.services == ("api",)
    assert (back.project, back.revision, back.services) == ("shop", REV, ("web",))
    assert back.reason == "web: health check failed after 3 tries"
    assert back.details_dict() == {"web": {"health_output": "curl: (7) refused",
                                           "logs": "starting\nlistening on :80\npanic: no db"}}


def test_a_failed_and_a_paused_service_are_failed() -> None:
    outcomes = {"db": ServiceOutcome("db", "failed", "image not found"),
                "web": ServiceOutcome("web", "paused", "health check failed", logs="oops")}
    result = PassResult("failed", REV, "two failed", plan=plan_of(step("db"), step("web")),
                        apply=ApplyResult(services=outcomes))
    [failed] = events_of(result, "shop")
    assert (failed.kind, failed.services) == ("failed", ("db", "web"))
    assert failed.reason == "db: image not found; web: health check failed"
    assert failed.details_dict()["web"]["logs"] == "oops"


def test_a_failure_before_any_apply_is_failed_with_the_message() -> None:
    refused = PassResult("failed", REV, "web: privileged is not allowed by the Project", errors=["x"])
    assert [(e.kind, e.reason) for e in events_of(refused, "shop")] == [
        ("failed", "web: privileged is not allowed by the Project")]
    crashed = PassResult("error", message="internal error: KeyError('x')")
    assert [e.kind for e in events_of(crashed, "shop")] == ["failed"]


def test_an_invalid_commit_is_invalid() -> None:
    result = PassResult("invalid", REV, f"revision {REV[:12]} is invalid, nothing was changed: a.yaml:3:1: bad\nx")
    [event] = events_of(result, "shop")
    assert (event.kind, event.revision) == ("invalid", REV)
    assert event.reason == f"revision {REV[:12]} is invalid, nothing was changed: a.yaml:3:1: bad x"  # one line


def test_an_unreachable_host_is_host_unreachable_and_nothing_else() -> None:
    result = PassResult("failed", REV, "host h2 is unreachable: connection refused",
                        plan=plan_of(step("web", "noop"), unreachable=(("h2", "connection refused"),)))
    [event] = events_of(result, "shop")
    assert (event.kind, event.reason) == ("host_unreachable", "host h2 is unreachable: connection refused")


def test_a_host_unreachable_during_an_apply_comes_with_the_apply() -> None:
    result = converged()
    result.plan = plan_of(step("web"), unreachable=(("h2", "timed out"),))
    assert [e.kind for e in events_of(result, "shop")] == ["applied", "host_unreachable"]


def test_a_stopped_container_started_again_is_drift_repaired_not_applied() -> None:
    the_plan = plan_of(step("web", finding=Finding.STOPPED, reason="container is exited; starting it"),
                       step("web", "noop", slot=1, reason="up to date"))
    result = PassResult("converged", REV, "converged", plan=the_plan, drifted=1,
                        apply=ApplyResult(services={"web": ServiceOutcome("web", "converged")}))
    [event] = events_of(result, "shop")
    assert (event.kind, event.services) == ("drift_repaired", ("web",))
    assert event.reason == "web[0] on h1: container is exited; starting it"


def test_crash_looping_names_the_services_with_a_reason_that_stays_the_same_between_polls() -> None:
    def looping(held: str) -> PassResult:
        the_plan = plan_of(step("worker", "noop", finding=Finding.CRASH_LOOPING, reason=f"crash-looping: {held}"))
        return PassResult("no_changes", REV, "hosts match the manifests", plan=the_plan, crash_looping=1)

    first = events_of(looping("started again 3 times, it died each time; next try in 120s"), "shop")
    later = events_of(looping("started again 3 times, it died each time; next try in 60s"), "shop")
    assert [(e.kind, e.services) for e in first] == [("crash_looping", ("worker",))]
    assert first == later  # the seconds to the next try are not news


def test_source_unavailable() -> None:
    result = PassResult("source_unavailable", message="source unavailable: could not resolve host")
    [event] = events_of(result, "shop")
    assert (event.kind, event.revision, event.reason) == ("source_unavailable", "",
                                                          "source unavailable: could not resolve host")


def test_applied_and_the_passes_that_say_nothing() -> None:
    [event] = events_of(converged(), "shop")
    assert (event.kind, event.services, event.reason) == ("applied", ("web",), "converged: 1 updated")
    assert events_of(PassResult("no_changes", REV, "hosts match the manifests", plan=plan_of()), "shop") == []
    assert events_of(PassResult("skipped", REV, "failed before"), "shop") == []


def test_texts_are_masked_before_they_are_cut_and_made_visible() -> None:
    # the secret straddles the start of the kept window: cut first, a piece of it would remain
    logs = ("x" * (MAX_LOG_CHARS - 5)) + CANARY + "\n" + "\x1b[31mred\x1b[0m\n" + "\n".join(
        f"line {i}" for i in range(MAX_LOG_LINES - 2))
    one_line = "\n".join(["y" * 300] * 3)
    [event] = [e for e in events_of(rolled_back(logs=one_line + "\n" + logs, health=f"password={CANARY}"), "shop",
                                    secrets=[CANARY]) if e.kind == "rolled_back"]
    detail = event.details[0]
    kept = detail.logs.splitlines()
    assert len(kept) == MAX_LOG_LINES and len(detail.logs) <= MAX_LOG_CHARS
    assert kept[0].endswith("***") and CANARY[:6] not in detail.logs and CANARY[-6:] not in detail.logs
    assert kept[1] == "\\x1b[31mred\\x1b[0m"  # a terminal escape from a container is shown, not obeyed
    assert detail.health_output == "password=***"


def test_mask() -> None:
    assert mask("a hunter2xyz b hunter2 c", ["hunter2", "hunter2xyz"]) == "a *** b *** c"  # longest first
    assert mask("abc 123 abc", ["abc", "12", ""]) == "abc 123 abc"  # too short to mask
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\n-----END KEY-----\n"
    assert mask("loaded MIIEvQIBADANBgkqhkiG9w0BAQEF ok", [pem]) == "loaded *** ok"  # one line of a file
    assert mask("pw is s3cr3t-value.", ["s3cr3t-value\n"]) == "pw is ***."  # a file's trailing newline


def test_events_stays_pure() -> None:
    """No network, files, processes or clock in events.py (the caller passes ``now``)."""
    tree = ast.parse(Path(events_module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"socket", "http", "urllib", "requests", "apprise", "time", "datetime", "os", "subprocess",
                           "pathlib", "threading", "io", "random", "uuid"}
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "open" not in called and "print" not in called


# -- the quiet period --------------------------------------------------------------------------------------
def test_the_same_failure_is_news_once_per_quiet_period() -> None:
    quiet = Quiet(3600)
    failed = Event("failed", "shop", REV, ("web",), "web: refused")
    assert [quiet.should_send(failed, 1000.0 + i * 60) for i in range(5)] == [True, False, False, False, False]
    assert quiet.should_send(failed, 1000.0 + 3600) is True
    assert quiet.should_send(Event("failed", "shop", REV, ("web",), "web: other"), 4700.0) is True  # different


def test_a_success_after_a_failure_always_goes_and_makes_the_failure_news_again() -> None:
    quiet = Quiet(3600)
    failed = Event("failed", "shop", REV, ("web",), "web: refused")
    applied = Event("applied", "shop", REV, ("web",), "converged")
    assert quiet.should_send(applied, 0.0)
    assert quiet.should_send(failed, 10.0)
    assert quiet.should_send(applied, 20.0)  # the same success as before: still news after a failure
    assert quiet.should_send(failed, 30.0)  # it came back
    assert not quiet.should_send(failed, 40.0)


def test_quiet_memory_is_bounded() -> None:
    quiet = Quiet(3600, limit=10)
    for i in range(1000):
        assert quiet.should_send(Event("failed", "shop", f"r{i}"), float(i))
    assert len(quiet._sent) == 10
    assert quiet.should_send(Event("failed", "shop", "r0"), 1000.0)  # forgotten: sent again


# -- signatures -----------------------------------------------------------------------------------------------
def test_verify_signature() -> None:
    secret, body = b"It's a Secret to Everybody", b"Hello, World!"
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"  # GitHub's vector
    assert sign(body, secret) == header
    assert verify_signature(body, header, secret)
    assert verify_signature(body, header.upper().replace("SHA256=", "sha256="), secret)
    assert not verify_signature(body + b" ", header, secret)
    assert not verify_signature(body, header, b"other")
    for bad in (None, "", "sha256=", "sha1=" + "0" * 40, header[:-1], header + "0", "sha256=" + "zz" * 32,
                "sha256=75710\u00e9" + "0" * 58):
        assert not verify_signature(body, bad, secret)
    assert not verify_signature(body, header, b"")


def test_a_webhook_needs_a_secret_and_an_http_url() -> None:
    with pytest.raises(ValueError, match="secret"):
        Notifier("shop", webhook_url="http://127.0.0.1:9/x")
    with pytest.raises(ValueError, match="http"):
        Notifier("shop", webhook_url="file:///etc/passwd", webhook_secret=b"k")


# -- real receivers on loopback ---------------------------------------------------------------------------
@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Request] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # statuses to answer in turn; then 200
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, n: int) -> list[Request]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.requests) >= n, timeout=DEADLINE), \
                f"{len(self.requests)} requests, waited for {n}"
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            got = state["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with got.changed:
                got.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = got.answers.pop(0) if got.answers else 200
                got.changed.notify_all()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["r"] = Receiver(f"127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["r"]
    server.shutdown()
    server.server_close()


@pytest.fixture
def hanging() -> Iterator[str]:
    """host:port of a server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    sock.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused
    return port


@pytest.fixture
def logs() -> io.StringIO:
    """gitops' log lines (JSON), for loggers made after this fixture (the notifier's is made in __init__)."""
    out = io.StringIO()
    log.configure(json=True, stream=out, level="debug")
    return out


def wait_until(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def apprise_file(tmp_path: Path, *urls: str) -> Path:
    path = tmp_path / "apprise.txt"
    path.write_text("# where gitops tells people\n\n" + "\n".join(urls) + "\n")
    return path


def test_apprise_json_receives_title_and_body(tmp_path: Path, receiver: Receiver, logs: io.StringIO) -> None:
    notifier = Notifier("shop", apprise_config=apprise_file(tmp_path, f"json://{receiver.url}/notify"))
    notifier.pass_finished(rolled_back(logs="booting\npanic: no db", health="curl: (7) refused"))
    [first, second] = receiver.wait_for(2)  # applied(api), then rolled_back(web)
    assert notifier.close(DEADLINE)
    assert first.path == second.path == "/notify"
    payload = json.loads(second.body)
    assert payload["title"] == f"[shop] rolled back at {REV[:12]}: web"
    assert payload["type"] == "failure"
    assert payload["message"].splitlines() == [
        "project: shop", f"revision: {REV[:12]}", "services: web", "reason: web: health check failed after 3 tries",
        "", "web: health check output:", "curl: (7) refused", "", "web: last log lines:", "booting", "panic: no db"]
    assert json.loads(first.body)["type"] == "success"
    assert '"event": "notify.sent"' in logs.getvalue()


def test_the_signed_webhook_verifies_and_a_tampered_body_does_not(receiver: Receiver) -> None:
    secret = b"shared-secret-of-the-receiver"
    notifier = Notifier("shop", webhook_url=f"http://{receiver.url}/hook?x=1", webhook_secret=secret,
                        clock=lambda: 1_700_000_000.0)
    notifier.pass_finished(PassResult("invalid", REV, "revision is invalid: a.yaml:1:1: bad"))
    [got] = receiver.wait_for(1)
    assert notifier.close(DEADLINE)
    assert got.path == "/hook?x=1"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-gitops-event"] == "invalid" and len(got.headers["x-gitops-delivery"]) == 36
    assert verify_signature(got.body, got.headers["x-gitops-signature-256"], secret)
    tampered = got.body.replace(b"invalid", b"applied")
    assert tampered != got.body and not verify_signature(tampered, got.headers["x-gitops-signature-256"], secret)
    assert json.loads(got.body) == {"event": "invalid", "project": "shop", "revision": REV, "services": [],
                                    "reason": "revision is invalid: a.yaml:1:1: bad", "details": {},
                                    "time": "2023-11-14T22:13:20Z"}


def test_the_webhook_retries_a_5xx_with_the_same_delivery_and_never_follows_a_redirect(receiver: Receiver) -> None:
    notifier = Notifier("shop", webhook_url=f"http://{receiver.url}/hook", webhook_secret=b"k", backoff=0.01)
    receiver.answers[:] = [503, 500]
    notifier.pass_finished(converged("a" * 40))
    tries = receiver.wait_for(3)
    assert len({t.headers["x-gitops-delivery"] for t in tries}) == 1 and {t.body for t in tries} == {tries[0].body}
    receiver.answers[:] = [302]
    notifier.pass_finished(converged("b" * 40))
    assert notifier.close(DEADLINE)
    assert [r.path for r in receiver.requests] == ["/hook"] * 4  # the redirect was not followed, nor retried


def test_the_same_failure_on_five_polls_notifies_once_then_after_the_quiet_period(tmp_path: Path,
                                                                                   receiver: Receiver) -> None:
    now = [1000.0]
    notifier = Notifier("shop", apprise_config=apprise_file(tmp_path, f"json://{receiver.url}/a"),
                        webhook_url=f"http://{receiver.url}/w", webhook_secret=b"k", quiet=600,
                        clock=lambda: now[0])
    unreachable = PassResult("failed", REV, "host h2 is unreachable: refused",
                             plan=plan_of(unreachable=(("h2", "refused"),)))
    for _ in range(5):
        notifier.pass_finished(unreachable)
        now[0] += 60
    notifier.pass_finished(converged())  # a success after the failure: news
    now[0] += 60
    notifier.pass_finished(unreachable)  # and the failure is news again once it comes back
    now[0] += 60
    notifier.pass_finished(unreachable)
    now[0] += 600
    notifier.pass_finished(unreachable)  # after the quiet period
    assert notifier.close(DEADLINE)
    kinds = [json.loads(r.body)["event"] for r in receiver.requests if r.path == "/w"]
    assert kinds == ["host_unreachable", "applied", "host_unreachable", "host_unreachable"]
    assert len([r for r in receiver.requests if r.path == "/a"]) == 4


def test_a_secret_in_logs_and_health_output_reaches_no_notification_and_no_log_line(
        tmp_path: Path, receiver: Receiver, logs: io.StringIO, capfd: pytest.CaptureFixture[str]) -> None:
    notifier = Notifier("shop", apprise_config=apprise_file(tmp_path, f"json://{receiver.url}/a"),
                        webhook_url=f"http://{receiver.url}/w", webhook_secret=b"k",
                        secrets=lambda: ["some-other-secret", CANARY + "\n"])
    leaky = rolled_back(logs=f"connecting with password {CANARY}\nfailed", health=f"DB_PASSWORD={CANARY} rejected")
    leaky.message = f"web: rolled_back: health check failed: DB_PASSWORD={CANARY}"
    notifier.apply_started(REV, plan_of())
    notifier.pass_finished(leaky)
    got = receiver.wait_for(4)
    assert notifier.close(DEADLINE)
    bodies = [r.body.decode() for r in got]
    assert all(CANARY not in b for b in bodies)
    hook = json.loads(next(r.body for r in got if r.path == "/w" and b"rolled_back" in r.body))
    assert hook["details"]["web"] == {"health_output": "DB_PASSWORD=*** rejected",
                                      "logs": "connecting with password ***\nfailed"}
    message = json.loads(next(r.body for r in got if r.path == "/a" and b"rolled back" in r.body))["message"]
    assert "DB_PASSWORD=*** rejected" in message and "connecting with password ***" in message
    assert logs.getvalue() and CANARY not in logs.getvalue()
    out, err = capfd.readouterr()
    assert CANARY not in out + err


def test_an_apprise_token_is_in_no_log_line_when_its_service_is_down(tmp_path: Path, logs: io.StringIO,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    token = "xoxb-Token-4f1d2c9a8b"
    port = closed_port()
    config = apprise_file(tmp_path, f"json://bot:{token}@127.0.0.1:{port}/hooks/{token}?cto=2&rto=2")
    notifier = Notifier("shop", apprise_config=config)
    notifier.pass_finished(PassResult("invalid", REV, "bad"))
    wait_until(lambda: "notify.apprise_failed" in logs.getvalue(), "the failed delivery in the log")
    assert notifier.close(DEADLINE)
    [line] = [json.loads(x) for x in logs.getvalue().splitlines() if "notify.apprise_failed" in x]
    assert (line["schema"], line["entry"], line["host"], line["kind"]) == ("json", 1, "127.0.0.1", "invalid")
    assert line["error"]  # what apprise said, masked
    out, err = capfd.readouterr()
    assert token not in logs.getvalue() + out + err


def test_a_receiver_down_or_hanging_never_slows_a_pass(tmp_path: Path, hanging: str) -> None:
    down = f"127.0.0.1:{closed_port()}"
    config = apprise_file(tmp_path, f"json://{hanging}/a?cto=1&rto=1", f"json://{down}/a?cto=1&rto=1")
    notifiers = [Notifier("shop", apprise_config=config, timeout=1, backoff=0.05),
                 Notifier("shop", webhook_url=f"http://{hanging}/w", webhook_secret=b"k", timeout=1, backoff=0.05),
                 Notifier("shop", webhook_url=f"http://{down}/w", webhook_secret=b"k", timeout=1, backoff=0.05)]
    slowest = 0.0
    for i in range(5):
        for notifier in notifiers:
            began = time.perf_counter()
            notifier.pass_finished(rolled_back(revision=f"{i:040d}", logs="x" * 5000))
            slowest = max(slowest, time.perf_counter() - began)
    assert slowest < 0.1, slowest  # it only enqueues: microseconds, unless the machine is very busy
    began = time.monotonic()
    for notifier in notifiers:
        notifier.close(0.2)  # gives up what it could not send
    assert time.monotonic() - began < 5


def test_a_missing_apprise_file_is_logged_and_the_webhook_still_goes(tmp_path: Path, receiver: Receiver,
                                                                     logs: io.StringIO) -> None:
    notifier = Notifier("shop", apprise_config=tmp_path / "nowhere.txt", webhook_url=f"http://{receiver.url}/w",
                        webhook_secret=b"k")
    notifier.pass_finished(PassResult("source_unavailable", message="source unavailable: timed out"))
    [got] = receiver.wait_for(1)
    assert notifier.close(DEADLINE)
    assert got.headers["x-gitops-event"] == "source_unavailable"
    assert "notify.apprise_config_missing" in logs.getvalue()
