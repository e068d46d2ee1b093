"""`gitops validate`: exit codes, error lines on stderr, JSON output (the CLI contract of DESIGN.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from gitops.cli.commands import main
from tests.conftest import service
from tests.examplerepo import EXAMPLE, SECRET, example_copy


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitops", *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_example_repo_is_valid(tmp_path: Path) -> None:
    """The shipped example validates cleanly with its age key, through the real console entry point."""
    example = example_copy(tmp_path / "example")
    proc = run("validate", str(example.root), env=example.env)
    assert proc.returncode == 0, proc.stderr
    assert "valid (6 documents: 3 services, 1 networks, 1 volumes, 0 hosts)" in proc.stdout
    assert example.password not in proc.stdout + proc.stderr


def test_example_repo_without_its_key_names_the_encrypted_file(tmp_path: Path) -> None:
    """The checkout's example keeps its secret encrypted, for a key that is not in the repository: without a
    key, validate says which file it cannot decrypt and why."""
    env = {k: v for k, v in os.environ.items() if k != "SOPS_AGE_KEY_FILE"}
    proc = run("validate", str(EXAMPLE), env=env)
    assert proc.returncode == 1
    assert f"'../{SECRET}' cannot be decrypted: encrypted with SOPS for age recipients, and there is no age " \
           "identity to decrypt it" in proc.stderr


def test_invalid_repo_exits_1_with_one_error_per_line(repo) -> None:
    root = repo({"s.yaml": service("web", "replicas: x\nhelthcheck: {}")})
    proc = run("validate", str(root))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"{root}/s.yaml:7:13: spec.replicas: expected integer, got string 'x'",
        f"{root}/s.yaml:8:3: spec.helthcheck: unknown field 'helthcheck'; did you mean 'healthcheck'?",
        f"2 errors in {root}",
    ]
    assert proc.stdout == ""


def test_errors_are_relative_to_the_working_directory(repo) -> None:
    """Run from inside the repo with no PATH, errors name files as the user would open them."""
    root = repo({"svc/s.yaml": service("web", "replicas: x")})
    proc = subprocess.run([sys.executable, "-m", "gitops", "validate"], cwd=root, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == "svc/s.yaml:7:13: spec.replicas: expected integer, got string 'x'"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("validate", str(tmp_path / "missing")).returncode == 2
    assert run("validate", "--format", "yaml", str(tmp_path)).returncode == 2
    assert run("no-such-command").returncode == 2


def test_json_output_is_data(repo, tmp_path: Path, monkeypatch) -> None:
    root = repo({"s.yaml": service("web", "replicas: x")})
    result = CliRunner().invoke(main, ["validate", "--format", "json", str(root)])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data == {"valid": False, "documents": 2, "errors": [
        {"file": "s.yaml", "line": 7, "column": 13, "message": "spec.replicas: expected integer, got string 'x'"}]}
    example = example_copy(tmp_path / "example")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(example.key_file))
    ok = CliRunner().invoke(main, ["validate", "--format", "json", str(example.root)])
    assert ok.exit_code == 0 and json.loads(ok.stdout) == {"valid": True, "documents": 6, "errors": []}


def test_secret_canary_never_printed(repo) -> None:
    """A secret file's value appears in no validate output, valid or not."""
    body = "env:\n  TOKEN: {secretFile: token}\nreplicas: x"
    root = repo({"s.yaml": service("web", body), "token": "CANARY-SECRET-91\n"})
    for args in (["validate", str(root)], ["validate", "--format", "json", str(root)]):
        proc = run(*args)
        assert "CANARY-SECRET-91" not in proc.stdout + proc.stderr
