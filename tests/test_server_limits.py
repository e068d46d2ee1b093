"""SECURITY.md 11b and 16 against the real daemon process on loopback: bounded connections, header and
body read timeouts, header limits, and the bearer token that guards /status and /metrics.

Every loop here is bounded (a count or a deadline) and every wait is on a condition: a socket being
closed by the daemon, a pass being recorded. Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import resource
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemonutil import DaemonProcess
from tests.hostile import run_gitops

PROJECT = "apiVersion: gitops/v1\nkind: Project\nmetadata:\n  name: srvlimits\n"
TOKEN = "s3cr3t-status-token-Zq81"


def local_repo(tmp: Path) -> Path:
    repo = tmp / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "project.yaml").write_text(PROJECT)
    return repo


def daemon(tmp: Path, *args: str, **kw: object) -> DaemonProcess:
    return DaemonProcess(tmp, "--local", str(local_repo(tmp)), "--interval", "1h", *args, **kw)  # type: ignore[arg-type]


def request(port: int, raw: bytes, timeout: float = 5) -> bytes:
    """Send ``raw`` on a new connection; everything the daemon answers until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
                if b"\r\n\r\n" in reply and _complete(reply):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
        return reply


def _complete(reply: bytes) -> bool:
    head, _, body = reply.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    reply = request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


def wait_closed(sock: socket.socket, *, deadline: float, trickle: bytes = b"") -> float:
    """Seconds until the daemon closes ``sock``. Meanwhile send one byte of ``trickle`` every 0.5 s
    (the wait for the socket to become readable paces it); fail at ``deadline``."""
    started = time.monotonic()
    sent = 0
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.5)
        if readable:
            try:
                if sock.recv(65536) == b"":
                    return time.monotonic() - started
            except ConnectionResetError:
                return time.monotonic() - started
            continue
        if sent < len(trickle):
            try:
                sock.send(trickle[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
            sent += 1
    raise AssertionError(f"the daemon kept the connection open ({sent} bytes trickled)")


def closed_by_peer(sock: socket.socket) -> bool:
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon with short read timeouts, set through its options."""
    with daemon(tmp_path_factory.mktemp("short"), "--header-timeout", "1s", "--body-timeout", "2s") as d:
        yield d


# --- header and body timeouts ------------------------------------------------------------------------------

def test_a_connection_that_never_sends_a_request_is_closed_after_the_header_timeout(short) -> None:
    with socket.create_connection(("127.0.0.1", short.port)) as s:
        elapsed = wait_closed(s, deadline=time.monotonic() + 10)
    assert 0.8 < elapsed < 3.0, elapsed


def test_slowloris_one_header_byte_every_half_second_is_closed_after_the_header_timeout(short) -> None:
    with socket.create_connection(("127.0.0.1", short.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        elapsed = wait_closed(s, deadline=time.monotonic() + 10, trickle=b"X-Slow: " + b"a" * 40)
    assert 0.8 < elapsed < 3.0, elapsed


def test_slowloris_on_a_kept_alive_connection_is_closed_after_the_header_timeout(short) -> None:
    with socket.create_connection(("127.0.0.1", short.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        elapsed = wait_closed(s, deadline=time.monotonic() + 10, trickle=b"X-Slow: " + b"a" * 40)
    assert elapsed < 3.0, elapsed


def test_a_slow_body_is_cut_after_the_body_timeout(short) -> None:
    with socket.create_connection(("127.0.0.1", short.port)) as s:
        s.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Length: 1000\r\n\r\n{")
        elapsed = wait_closed(s, deadline=time.monotonic() + 15, trickle=b"a" * 100)
    assert 1.8 < elapsed < 4.0, elapsed
    assert get(short.port, "/healthz")[0] == 200
    assert "Traceback" not in short.log.read_text() and "Exception in ASGI" not in short.log.read_text()


def test_a_slow_body_on_a_get_is_cut_too(short) -> None:
    with socket.create_connection(("127.0.0.1", short.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        elapsed = wait_closed(s, deadline=time.monotonic() + 15, trickle=b"a" * 100)
    assert elapsed < 4.0, elapsed


# --- header limits ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    "X-Big: " + "a" * 20000 + "\r\n",  # one field over the 16 KiB head
    "".join(f"X-{i}: {i}\r\n" for i in range(2000)),  # many fields, over the head size too
    "".join(f"X-{i}: {i}\r\n" for i in range(101)),  # 101 fields, under the head size
], ids=["one-large-field", "2000-fields", "101-fields"])
def test_headers_over_the_limits_get_431_or_400_never_5xx(short, headers: str) -> None:
    reply = request(short.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    status = int(reply.split(b" ", 2)[1])
    assert status in (400, 431), reply[:200]
    assert get(short.port, "/healthz")[0] == 200


def test_100_header_fields_are_still_served(short) -> None:
    headers = "".join(f"X-{i}: {i}\r\n" for i in range(98))  # + Host + Connection = 100
    assert get(short.port, "/healthz", dict(h.split(": ") for h in headers.split("\r\n") if h))[0] == 200


# --- a flood of idle connections --------------------------------------------------------------------------

class Flood:
    """Holds up to ``count`` idle connections to ``port`` open, and keeps replacing the oldest with a new
    one until stopped, or for ``seconds`` at most. Connects without blocking: a full accept queue makes
    the daemon's listener, not this thread, the bottleneck."""

    def __init__(self, port: int, count: int = 1000, seconds: float = 60) -> None:
        self.port, self.count, self.deadline = port, count, time.monotonic() + seconds
        self.open: deque[socket.socket] = deque()
        self.opened = 0
        self.stop = threading.Event()
        self.filled = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self) -> None:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        self.open.append(s)
        self.opened += 1

    def _run(self) -> None:
        while len(self.open) < self.count and time.monotonic() < self.deadline:
            self._connect()
        self.filled.set()
        while not self.stop.wait(0.002) and time.monotonic() < self.deadline:
            self.open.popleft().close()
            self._connect()

    def __enter__(self) -> Flood:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < self.count + 256:  # this test process holds the client ends
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, self.count + 256), hard))
        self.thread.start()
        assert self.filled.wait(30), "could not open the connections"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        for s in self.open:
            s.close()


def timed_healthz(port: int) -> float:
    started = time.perf_counter()
    status = get(port, "/healthz")[0]
    elapsed = time.perf_counter() - started
    assert status == 200
    return elapsed


def test_1000_idle_connections_leave_healthz_memory_fds_and_the_worker_alone(tmp_path) -> None:
    with daemon(tmp_path, "--max-connections", "100", "--header-timeout", "30s") as d:
        assert d.proc is not None
        pid = d.proc.pid
        rss_before, fds_before = rss_mb(pid), open_fds(pid)
        with Flood(d.port, 1000) as flood:
            slowest = max(timed_healthz(d.port) for _ in range(10))
            rss_during, fds_during = rss_mb(pid), open_fds(pid)
            # a good client's webhook during the flood still gets a pass
            assert d.github_push() == 202
            d.wait_for(lambda: d.last_pass()["trigger"].startswith("webhook:github"), 30, "the webhook's pass")
            fds_during = max(fds_during, open_fds(pid))
        print(f"\nidle flood: {flood.opened} connections opened; RSS {rss_before:.1f} -> {rss_during:.1f} MB; "
              f"fds {fds_before} -> {fds_during}; slowest /healthz {slowest * 1000:.0f} ms")
    assert slowest < 1.0
    assert rss_during < 120, rss_during
    # the server's share: --max-connections plus its accept batch (64), never the flood's 1000
    assert fds_during - fds_before <= 100 + 64 + 8, (fds_before, fds_during)


def test_connections_held_in_the_middle_of_a_body_do_not_lock_out_healthz(tmp_path) -> None:
    head = b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Length: 100000\r\n\r\n{"
    with daemon(tmp_path, "--max-connections", "20", "--body-timeout", "60s") as d:
        held = []
        try:
            for _ in range(40):  # twice the limit, each past its head and stuck in its body
                s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
                s.sendall(head)
                held.append(s)
            for _ in range(5):
                assert timed_healthz(d.port) < 1.0
            # the oldest were closed to make room: the daemon holds at most 20
            assert sum(1 for s in held if closed_by_peer(s)) >= 20
        finally:
            for s in held:
                s.close()


def test_the_fd_budget_stays_well_below_rlimit_nofile(tmp_path) -> None:
    """With a soft limit of 300 file descriptors, 1000 allowed connections would starve git and Docker:
    the daemon lowers the connection limit to its budget and says so."""
    repo = local_repo(tmp_path)
    d = DaemonProcess(tmp_path, "--local", str(repo), "--interval", "1h", "--max-connections", "1000")
    d.cmd = ["prlimit", "--nofile=300:300", "--", *d.cmd]
    with d:
        assert d.proc is not None
        with Flood(d.port, 600, seconds=30):
            assert timed_healthz(d.port) < 1.0
            assert open_fds(d.proc.pid) < 300 // 2 + 40
    events = [json.loads(line) for line in d.log.read_text().splitlines() if line.startswith("{")]
    lowered = [e for e in events if e["event"] == "daemon.max_connections_lowered"]
    # half of 300 less 32 for the daemon itself: 118, split between the accept batch and the connections
    assert lowered and lowered[0]["max_connections"] == 59 and lowered[0]["asked"] == 1000, lowered


# --- the status token -------------------------------------------------------------------------------------

def test_status_and_metrics_need_the_token_healthz_and_readyz_do_not(tmp_path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    with daemon(tmp_path, "--status-token-file", str(tmp_path / "token")) as d:
        for path in ("/status", "/metrics"):
            code, headers, body = get(d.port, path)
            assert (code, headers.get("www-authenticate")) == (401, 'Bearer realm="gitops"'), body
            assert get(d.port, path, {"Authorization": "Bearer wrong"})[0] == 401
            assert get(d.port, path, {"Authorization": f"Basic {TOKEN}"})[0] == 401
            assert get(d.port, path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        reply = request(d.port, b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                b"Authorization: Bearer \xe9\xe9\xff\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 401"), reply[:100]
        assert get(d.port, "/healthz")[0] == 200 and get(d.port, "/readyz")[0] == 200
        status = get(d.port, "/status", {"Authorization": f"bearer {TOKEN}"})[2]
        assert json.loads(status)["project"] == "srvlimits" and TOKEN.encode() not in status
        assert d.stop() == 0
    assert TOKEN not in d.log.read_text()
    assert '"status_token": true' in d.log.read_text()


def test_status_token_from_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GITOPS_STATUS_TOKEN", TOKEN)
    with daemon(tmp_path) as d:
        assert get(d.port, "/metrics")[0] == 401
        assert get(d.port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert TOKEN not in d.log.read_text()


@pytest.mark.parametrize("content, message", [
    ("\n", "status token file {path} is empty"),
    ("has space\n", "status token file {path}: the token must be printable ASCII without spaces "
                    "(it is sent as `Authorization: Bearer TOKEN`)"),
])
def test_a_bad_status_token_file_is_refused_without_showing_it(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    m = run_gitops("daemon", "--local", str(local_repo(tmp_path)), "--no-webhooks", "--state-dir",
                   str(tmp_path / "state"), "--status-token-file", str(path), tmp=tmp_path)
    assert m.returncode == 1 and f"Error: {message.format(path=path)}" in m.stderr, m.stderr
    assert "has space" not in m.stderr
    m.within_bounds()


@pytest.mark.parametrize("option", ["--header-timeout", "--body-timeout"])
def test_a_zero_timeout_is_refused(tmp_path, option: str) -> None:
    m = run_gitops("daemon", "--local", str(local_repo(tmp_path)), "--no-webhooks", option, "0s", tmp=tmp_path)
    assert m.returncode == 2 and f"Error: Invalid value for {option}: '0s' must be longer than zero, like 10s" in m.stderr
    m.within_bounds()


@pytest.mark.parametrize("host, token, warns", [
    ("0.0.0.0", False, True), ("::", False, True), ("10.1.2.3", False, True), ("example.org", False, True),
    ("0.0.0.0", True, False), ("127.0.0.1", False, False), ("127.0.0.2", False, False), ("::1", False, False),
    ("localhost", False, False),
])
def test_no_token_on_a_non_loopback_address_warns(host: str, token: bool, warns: bool) -> None:
    from gitops.daemon.loop import exposure_warning

    warning = exposure_warning(host, token=token)
    if warns:
        assert warning == (f"listening on {host} without a status token: anyone who reaches the port can read "
                           "the web page, /status and /metrics; set --status-token-file or GITOPS_STATUS_TOKEN")
    else:
        assert warning is None
