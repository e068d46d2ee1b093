"""`gitops daemon`'s outcome options are checked before anything starts: a clear error for each mistake, and no
token in any of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile import run_gitops

TOKEN = "ghp_optionsTokenCanary"


@pytest.mark.parametrize("extra, expected", [
    (["--commit-status", "github"], "--commit-status needs --commit-status-token-file FILE"),
    (["--commit-status", "gitea", "--commit-status-token-file", "TOKEN", "--commit-status-repo", "o/r"],
     "--commit-status gitea needs --commit-status-api-url, e.g. https://gitea.example.com/api/v1"),
    (["--commit-status", "github", "--commit-status-token-file", "TOKEN"],
     "--commit-status github: give --commit-status-repo OWNER/NAME (it cannot be told from --repo)"),
    (["--commit-status-per-service"], "the --commit-status-* options need --commit-status github|gitlab|gitea"),
    (["--notify-webhook", "https://hooks.example.com/x"],
     "--notify-webhook needs --notify-webhook-secret-file FILE (deliveries are signed)"),
    (["--notify-webhook-secret-file", "TOKEN"], "--notify-webhook-secret-file needs --notify-webhook URL"),
    (["--notify-webhook", "ftp://hooks.example.com/x", "--notify-webhook-secret-file", "TOKEN"],
     "must be http:// or https:// with a host"),
])
def test_outcome_option_mistakes_are_refused_before_the_daemon_starts(tmp_path: Path, extra: list[str],
                                                                      expected: str) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    args = [str(token) if a == "TOKEN" else a for a in extra]
    proc = run_gitops("daemon", "--local", str(tmp_path), "--no-webhooks", "--state-dir", str(tmp_path / "s"),
                      "--listen", "127.0.0.1:0", *args, tmp=tmp_path, timeout=60)
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    assert expected in proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr
