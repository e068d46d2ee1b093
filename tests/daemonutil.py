"""Run `gitops daemon` as a real process and talk to it over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

SECRET = b"loop-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaemonProcess:
    def __init__(self, tmp: Path, *args: str, secret: bytes | None = SECRET) -> None:
        self.port = free_port()
        self.state = tmp / "state"
        self.log = tmp / "daemon.log"
        secret_args: list[str] = []
        if secret is not None:
            secret_file = tmp / "secret"
            secret_file.write_bytes(secret + b"\n")
            secret_args = ["--webhook-secret-file", str(secret_file)]
        self.cmd = [sys.executable, "-m", "gitops", "--log-format", "json", "daemon", "--listen",
                    f"127.0.0.1:{self.port}", "--state-dir", str(self.state), *secret_args, *args]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DaemonProcess:
        self.proc = subprocess.Popen(self.cmd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env={**os.environ})
        self.wait_for(lambda: self.get("/readyz")[0] == 200, 60, "daemon ready")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except OSError:
            return 0, b""

    def status(self) -> dict:
        code, body = self.get("/status")
        assert code == 200, body
        return json.loads(body)

    def github_push(self, branch: str = "main", *, delivery: str | None = None, after: str | None = None) -> int:
        """A signed GitHub push delivery; ``after`` is the new head it announces (GitHub always sends one)."""
        payload = {"ref": f"refs/heads/{branch}", **({"after": after} if after else {})}
        body = json.dumps(payload).encode()
        sig = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/hooks/github", data=body, method="POST", headers={
            "X-Hub-Signature-256": sig, "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def metric(self, name: str) -> float:
        text = self.get("/metrics")[1].decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_for(self, check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) waiting for {what}:\n"
                                     + self.log.read_text()[-3000:])
            try:
                if check():
                    return
            except (AssertionError, KeyError, TypeError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n" + self.log.read_text()[-3000:])

    def last_pass(self) -> dict:
        return self.status()["last_pass"] or {}

    def log_events(self, event: str) -> list[dict]:
        """The daemon's JSON log lines whose event is ``event``."""
        found = []
        for line in self.log.read_text().splitlines():
            if f'"{event}"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line still being written
                if record.get("event") == event:
                    found.append(record)
        return found
