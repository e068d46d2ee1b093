"""Webhooks (SECURITY.md 8-12): signatures per provider, then real HTTP requests to the real server."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import random
import socket
import threading
import time

import pytest

from gitops.daemon.metrics import Metrics
from gitops.daemon.server import make_app, make_server
from gitops.daemon.webhooks import signature_ok

SECRET = b"It's a Secret to Everybody"


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_githubs_documented_vector() -> None:
    body = b"Hello, World!"
    expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(body) == expected
    assert signature_ok("github", SECRET, {"x-hub-signature-256": f"sha256={expected}"}, body)


@pytest.mark.parametrize("provider, headers, ok", [
    ("github", {"x-hub-signature-256": "sha256=" + sign(b"{}")}, True),
    ("github", {"x-hub-signature-256": "sha256=" + sign(b"{}").upper()}, True),
    ("github", {"x-hub-signature-256": "sha256=" + sign(b"{}", b"wrong")}, False),
    ("github", {"x-hub-signature": "sha1=" + hmac.new(SECRET, b"{}", hashlib.sha1).hexdigest()}, False),
    ("github", {"x-hub-signature-256": ""}, False),
    ("github", {"x-hub-signature-256": "sha256="}, False),
    ("github", {"x-hub-signature-256": sign(b"{}")}, False),  # no sha256= prefix
    ("github", {"x-hub-signature-256": "sha256=zz" + sign(b"{}")[2:]}, False),
    ("github", {"x-hub-signature-256": "sha256=ü" + sign(b"{}")[1:]}, False),  # non-ASCII: no TypeError
    ("github", {}, False),
    ("gitlab", {"x-gitlab-token": SECRET.decode()}, True),
    ("gitlab", {"x-gitlab-token": "It's a secret to everybody"}, False),
    ("gitlab", {"x-gitlab-token": "Ünicode"}, False),
    ("gitlab", {}, False),
    ("gitea", {"x-gitea-signature": sign(b"{}")}, True),
    ("gitea", {"x-gitea-signature": "sha256=" + sign(b"{}")}, False),  # Gitea sends bare hex
    ("gitea", {"x-gitea-signature": sign(b"{}x")}, False),
    ("generic", {"x-gitops-signature": "sha256=" + sign(b"{}")}, True),
    ("generic", {"x-gitops-signature": "sha256=" + sign(b"{}")[:-1]}, False),
])
def test_signatures(provider: str, headers: dict[str, str], ok: bool) -> None:
    assert signature_ok(provider, SECRET, headers, b"{}") is ok


def test_no_secret_never_verifies() -> None:
    assert not signature_ok("github", b"", {"x-hub-signature-256": "sha256=" + sign(b"{}", b"")}, b"{}")


# --- the real server ------------------------------------------------------------------------------------

class View:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.heads: list[str] = []

    def request_pass(self, trigger: str, head: str = "") -> None:
        self.requests.append(trigger)
        self.heads.append(head)

    def status(self) -> dict:
        return {"ok": True}

    def alive(self) -> bool:
        return True

    def ready(self) -> bool:
        return True


def running(app):  # type: ignore[no-untyped-def]
    """Serve ``app`` on a free loopback port with the daemon's server (make_server: its limits)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = make_server(app, host="127.0.0.1", port=port, log_level="error")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    return srv, thread, port


@pytest.fixture(scope="module")
def server():
    view = View()
    metrics = Metrics()
    srv, thread, port = running(make_app(view, secret=SECRET, branch="main", metrics=metrics, body_limit=1024 * 1024))
    yield port, view, metrics
    srv.should_exit = True
    thread.join(5)


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    started = time.perf_counter()
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    try:
        parsed = json.loads(data)
    except ValueError:
        parsed = {"raw": data.decode(errors="replace")}
    return response.status, parsed, elapsed


PUSH = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


def gh(body: bytes, event: str = "push", delivery: str | None = None) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + sign(body), "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or f"d-{random.random()}"}


def test_signed_push_asks_for_a_pass_within_a_second(server) -> None:
    port, view, _ = server
    before = len(view.requests)
    status, data, elapsed = post(port, "/hooks/github", PUSH, gh(PUSH))
    assert (status, data["message"]) == (202, "pass requested")
    assert elapsed < 1.0 and len(view.requests) == before + 1


@pytest.mark.parametrize("provider, headers", [
    ("github", lambda body: gh(body)),
    ("gitlab", lambda body: {"X-Gitlab-Token": SECRET.decode(), "X-Gitlab-Event": "Push Hook"}),
    ("gitea", lambda body: {"X-Gitea-Signature": sign(body), "X-Gitea-Event": "push"}),
])
def test_a_push_passes_on_the_new_head_it_announces(server, provider: str, headers) -> None:
    """The `after` commit travels with the request, so that the scheduler can coalesce by it; anything that
    is not a full commit id (a deleted branch's zeros, a short or non-hex value) names no head."""
    port, view, _ = server
    for after, head in (("a1" * 20, "a1" * 20), ("B2" * 32, "b2" * 32), ("0" * 40, ""), ("abc123", ""),
                        ("z" * 40, ""), (None, ""), (7, "")):
        body = json.dumps({"ref": "refs/heads/main", "after": after}).encode()
        assert post(port, f"/hooks/{provider}", body, headers(body))[0] == 202
        assert view.heads[-1] == head, (after, view.heads[-1])


def test_each_provider_over_http(server) -> None:
    port, view, _ = server
    assert post(port, "/hooks/gitlab", PUSH, {"X-Gitlab-Token": SECRET.decode(), "X-Gitlab-Event": "Push Hook"})[0] == 202
    assert post(port, "/hooks/gitea", PUSH, {"X-Gitea-Signature": sign(PUSH), "X-Gitea-Event": "push"})[0] == 202
    assert post(port, "/hooks/generic", b"", {"X-Gitops-Signature": "sha256=" + sign(b"")})[0] == 202
    assert post(port, "/hooks/bitbucket", PUSH, {})[0] == 404


@pytest.mark.parametrize("headers, code", [
    ({}, 401),
    ({"X-Hub-Signature-256": ""}, 401),
    ({"X-Hub-Signature-256": "sha256=nothex", "X-GitHub-Event": "push"}, 401),
    ({"X-Hub-Signature-256": "sha256=" + sign(PUSH, b"wrong"), "X-GitHub-Event": "push"}, 401),
    ({"X-Hub-Signature": "sha1=" + hmac.new(SECRET, PUSH, hashlib.sha1).hexdigest(), "X-GitHub-Event": "push"}, 401),
])
def test_bad_signatures_are_401(server, headers: dict[str, str], code: int) -> None:
    port, view, _ = server
    before = len(view.requests)
    assert post(port, "/hooks/github", PUSH, headers)[0] == code
    assert len(view.requests) == before


def test_non_ascii_signature_header_is_401_not_500(server) -> None:
    port, _, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest("POST", "/hooks/github")
    conn.putheader("X-Hub-Signature-256", "sha256=\xe9\xe9".encode("latin-1"))
    conn.putheader("Content-Length", str(len(PUSH)))
    conn.endheaders(PUSH)
    assert conn.getresponse().status == 401
    conn.close()


def test_authenticated_but_unparsable_is_400(server) -> None:
    port, view, _ = server
    for body in (b"{not json", b"[1,2]", b'{"no_ref": 1}', b"\xff\xfe", b"[" * 100000):
        assert post(port, "/hooks/github", body, gh(body))[0] == 400, body[:20]


def test_ping_other_events_and_other_branches_are_answered_and_ignored(server) -> None:
    port, view, _ = server
    before = len(view.requests)
    assert post(port, "/hooks/github", b"{}", gh(b"{}", "ping"))[:2] == (200, {"message": "pong"})
    assert post(port, "/hooks/github", PUSH, gh(PUSH, "issues"))[0] == 202
    other = json.dumps({"ref": "refs/heads/feature"}).encode()
    status, data, _ = post(port, "/hooks/github", other, gh(other))
    assert status == 202 and data["message"].startswith("ignored: push to refs/heads/feature")
    assert len(view.requests) == before


def test_duplicate_deliveries_are_ignored(server) -> None:
    port, view, _ = server
    before = len(view.requests)
    assert post(port, "/hooks/github", PUSH, gh(PUSH, delivery="same-id"))[0] == 202
    status, data, _ = post(port, "/hooks/github", PUSH, gh(PUSH, delivery="same-id"))
    assert (status, data["message"]) == (200, "duplicate delivery ignored")
    assert len(view.requests) == before + 1


def test_oversized_body_with_content_length_is_413_without_reading_it(server) -> None:
    port, _, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n" + b"x" * 1000)
        started = time.perf_counter()
        reply = s.recv(200)
        assert reply.startswith(b"HTTP/1.1 413") and time.perf_counter() - started < 1


def test_oversized_chunked_body_is_413(server) -> None:
    port, _, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def chunks():
        for _ in range(40):
            yield b"x" * 65536  # 2.5 MiB in all, no Content-Length

    conn.request("POST", "/hooks/github", body=chunks(), headers={"X-GitHub-Event": "push"}, encode_chunked=True)
    assert conn.getresponse().status == 413
    conn.close()


def test_fuzzed_requests_never_get_a_5xx(server) -> None:
    port, _, metrics = server
    rng = random.Random(7)
    codes = set()
    for i in range(300):
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
        if i % 3 == 0:
            body = json.dumps({"ref": rng.choice([None, 5, "refs/heads/main", ["x"], {"a": 1}])}).encode()
        headers = rng.choice([{}, gh(body), gh(body, rng.choice(["push", "ping", "", "x" * 300])),
                              {"X-Hub-Signature-256": "sha256=" + "".join(rng.choice("0123456789abcdef") for _ in range(64))}])
        path = rng.choice(["/hooks/github", "/hooks/gitlab", "/hooks/gitea", "/hooks/generic"])
        codes.add(post(port, path, body, headers)[0])
    assert max(codes) < 500 and 401 in codes
    text = metrics.render().decode()
    assert 'gitops_webhook_requests_total{code="401",provider="github"}' in text


# --- the status token (SECURITY.md 16) ---------------------------------------------------------------------

TOKEN = "tok-3Fq9-status"


@pytest.fixture(scope="module")
def guarded():
    view = View()
    srv, thread, port = running(make_app(view, secret=SECRET, branch="main", metrics=Metrics(),
                                         status_token=TOKEN.encode()))
    yield port, view
    srv.should_exit = True
    thread.join(5)


def raw_get(port: int, path: str, *header_lines: bytes) -> tuple[int, bytes, bytes]:
    """GET with header lines sent as raw bytes (non-ASCII included); status, head and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  + b"".join(line + b"\r\n" for line in header_lines) + b"\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


@pytest.mark.parametrize("path", ["/status", "/metrics"])
@pytest.mark.parametrize("lines", [
    (),
    (b"Authorization: Bearer",),
    (b"Authorization: Bearer ",),
    (b"Authorization: Bearer wrong",),
    (b"Authorization: Bearer " + TOKEN.encode() + b"x",),
    (b"Authorization: Bearer " + TOKEN.encode()[:-1],),
    (b"Authorization: Basic " + TOKEN.encode(),),
    (b"Authorization: " + TOKEN.encode(),),
    (b"Authorization: Bearer \xe9\xe9\xff",),  # non-ASCII: 401, never a 500
    (b"Authorization: Bearer " + TOKEN.encode()[:-1] + b"\xe9",),
    (b"Authorization: Bearer wrong", b"Authorization: Bearer " + TOKEN.encode()),  # two: ambiguous
], ids=["none", "bearer-only", "bearer-space", "wrong", "longer", "shorter", "basic", "no-scheme", "non-ascii",
        "non-ascii-tail", "two-headers"])
def test_status_and_metrics_refuse_without_the_right_token(guarded, path: str, lines: tuple[bytes, ...]) -> None:
    port, _ = guarded
    status, head, body = raw_get(port, path, *lines)
    assert status == 401
    assert b'\r\nwww-authenticate: Bearer realm="gitops"\r\n' in head + b"\r\n"
    assert json.loads(body) == {"error": "missing or wrong bearer token"}
    assert TOKEN.encode()[:6] not in body


@pytest.mark.parametrize("scheme", [b"Bearer", b"bearer", b"BEARER"])
def test_status_and_metrics_with_the_token(guarded, scheme: bytes) -> None:
    port, _ = guarded
    for path in ("/status", "/metrics"):
        assert raw_get(port, path, b"Authorization: " + scheme + b" " + TOKEN.encode())[0] == 200


def test_healthz_readyz_and_webhooks_do_not_need_the_status_token(guarded) -> None:
    port, view = guarded
    assert raw_get(port, "/healthz")[0] == 200 and raw_get(port, "/readyz")[0] == 200
    before = len(view.requests)
    assert post(port, "/hooks/github", PUSH, gh(PUSH))[0] == 202 and len(view.requests) == before + 1


def test_without_a_token_status_stays_open(server) -> None:
    port, _, _ = server
    assert raw_get(port, "/status")[0] == 200 and raw_get(port, "/metrics")[0] == 200
