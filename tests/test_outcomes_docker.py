"""Outcomes where people look, end to end on the real engine: a `gitops daemon` process with commit statuses (a
GitHub-shaped API on loopback that checks each request), a signed JSON webhook and an apprise service. A commit
that fails its health check gives, in the same run, a failure status with the reason, one notification with the
health output, and the web page showing the rollback; the next commit that converges flips the status to
success. The token and a secret canary appear in none of it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitops.outcomes.notify import verify_signature
from tests.conftest import PROJECT, service
from tests.daemonutil import DaemonProcess
from tests.gitutil import Remote

pytestmark = pytest.mark.docker
TOKEN = "ghp_statusTokenCanary0123456789"
HOOK_SECRET = b"notify-secret-canary"
CANARY = "canary-db-password-7d1"
HEALTHY = "init: true\nstopGracePeriod: 1s\nhealthcheck: {exec: ['true'], interval: 200ms}"
FAILING = ("init: true\nstopGracePeriod: 1s\nupdate: {healthyDeadline: 5s}\n"
           "healthcheck: {exec: ['sh', '-c', 'echo db refused the password; exit 1'], interval: 200ms, retries: 1}")


class Receiver:
    """One loopback server for the three: GitHub's status API, the signed webhook and apprise's json://."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(201)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seen(self, prefix: str) -> list[tuple[str, dict[str, str], bytes]]:
        with self.lock:
            return [r for r in self.requests if r[0].startswith(prefix)]

    def statuses(self, sha: str) -> list[dict]:
        found = []
        for _path, headers, body in self.seen(f"/repos/shop-org/config/statuses/{sha}"):
            assert headers["Authorization"] == f"Bearer {TOKEN}"
            assert headers["Accept"] == "application/vnd.github+json"
            found.append(json.loads(body))
        return found

    def webhook_events(self) -> list[dict]:
        out = []
        for _, headers, body in self.seen("/hook"):
            assert verify_signature(body, headers.get("X-Gitops-Signature-256"), HOOK_SECRET)
            out.append(json.loads(body))
        return out


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()


def test_a_failed_commit_reaches_the_forge_the_chat_and_the_page_and_the_next_one_flips_to_success(
        docker_client, project_name, receiver, tmp_path: Path) -> None:
    remote = Remote(tmp_path / "git")
    files = {"project.yaml": PROJECT.replace("name: test", f"name: {project_name}"),
             "db-password": CANARY + "\n",
             "web.yaml": service("web", HEALTHY + "\nenv: {DB_PASSWORD: {secretFile: db-password}}")}
    first = remote.commit(files)
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "hook-secret").write_bytes(HOOK_SECRET)
    (tmp_path / "apprise.txt").write_text(f"# the team's chat\njson://{receiver.url.removeprefix('http://')}/chat\n")
    args = ["--repo", str(remote.bare), "--interval", "1s", "--no-webhooks",
            "--commit-status", "github", "--commit-status-api-url", receiver.url,
            "--commit-status-repo", "shop-org/config", "--commit-status-token-file", str(tmp_path / "token"),
            "--external-url", "https://gitops.example.com/",
            "--notify-webhook", f"{receiver.url}/hook", "--notify-webhook-secret-file", str(tmp_path / "hook-secret"),
            "--notify-config", str(tmp_path / "apprise.txt")]
    with DaemonProcess(tmp_path, *args, secret=None) as d:
        d.wait_for(lambda: [s["state"] for s in receiver.statuses(first)][-1:] == ["success"], 90,
                   "the first commit's success status")
        assert [s["state"] for s in receiver.statuses(first)] == ["pending", "success"]
        assert receiver.statuses(first)[-1]["context"] == f"gitops/{project_name}"
        assert receiver.statuses(first)[-1]["target_url"] == "https://gitops.example.com/"

        broken = remote.commit({"web.yaml": service("web", FAILING + "\nenv: {DB_PASSWORD: {secretFile: db-password}}",
                                                   image="local/web:2")})
        d.wait_for(lambda: [s["state"] for s in receiver.statuses(broken)][-1:] == ["failure"], 120,
                   "the broken commit's failure status")
        failure = receiver.statuses(broken)[-1]
        assert failure["description"].startswith("rolled back: web")
        d.wait_for(lambda: any(e["event"] == "rolled_back" for e in receiver.webhook_events()), 60,
                   "the rollback's signed webhook")
        d.wait_for(lambda: receiver.seen("/chat"), 60, "the rollback in the team's chat (apprise)")
        (event,) = [e for e in receiver.webhook_events() if e["event"] == "rolled_back"]
        assert event["revision"] == broken and event["services"] == ["web"]
        assert "db refused the password" in event["details"]["web"]["health_output"]
        page = d.get("/")
        assert page[0] == 200 and b"rolled_back" in page[1] and b"db refused the password" in page[1]

        # the same failure on the next polls is not sent again (quiet period: 1 h)
        polls = d.metric("gitops_passes_total")
        d.wait_for(lambda: d.metric("gitops_passes_total") >= polls + 3, 60, "three more polls")
        fixed = remote.commit({"web.yaml": service("web", HEALTHY + "\nenv: {DB_PASSWORD: {secretFile: db-password}}",
                                                   image="local/web:2")})
        d.wait_for(lambda: [s["state"] for s in receiver.statuses(fixed)][-1:] == ["success"], 120,
                   "the fixed commit flips the status to success")
    rolled = [e for e in receiver.webhook_events() if e["event"] == "rolled_back"]
    assert len(rolled) == 1, "the same failure, repeated on every poll, is sent once"
    everything = [body for _, _, body in receiver.requests] + [d.log.read_bytes()]
    for blob in everything:
        assert TOKEN.encode() not in blob and CANARY.encode() not in blob
