"""Compose files are untrusted repository content (SECURITY.md 1, 2, 4, 4b, 4c, 15, 17): paths stay inside the
checkout, interpolation is bounded, the policy sees what the merged stack asks for, and neither a file outside
the repository nor a secret value reaches any output. Each case is a whole `gitops` process within the bounds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import write_files
from tests.hostile import run_gitops

CANARY = "CANARY-9f2c51"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(f"TOKEN={CANARY}\n")
    return secret


def validate(root: Path, tmp_path: Path) -> list[str]:
    measured = run_gitops("validate", str(root), tmp=tmp_path)
    measured.within_bounds()
    assert measured.returncode == 1, measured.stdout
    assert CANARY not in measured.stdout + measured.stderr and "Traceback" not in measured.stderr
    return [line.removeprefix(f"{root}/") for line in measured.stderr.splitlines()[:-1]]


@pytest.mark.parametrize(("service", "top", "expected"), [
    ("env_file: [../outside/secret.txt]", "",
     "compose.yaml:5:16: services.web.env_file[0]: '../outside/secret.txt' resolves outside the repository"),
    ("volumes: ['../outside:/etc/app:ro']", "",
     "compose.yaml:5:14: services.web.volumes: '../outside' resolves outside the repository"),
    ("secrets: [s]", "secrets:\n  s: {file: ../outside/secret.txt}\n",
     "compose.yaml:5:14: services.web.secrets: '../outside/secret.txt' resolves outside the repository"),
    ("env_file: [.git/config]", "",
     "compose.yaml:5:16: services.web.env_file[0]: '.git/config' is inside a .git folder, which holds git's "
     "configuration and credentials; it can never be read by a manifest"),
])
def test_paths_a_compose_file_names_stay_inside_the_repository(tmp_path: Path, outside: Path, service: str,
                                                                top: str, expected: str) -> None:
    root = write_files(tmp_path / "repo", {"compose.yaml": f"name: s\nservices:\n  web:\n    image: a\n"
                                                          f"    {service}\n{top}",
                                          ".git/config": f"token={CANARY}\n"})
    assert validate(root, tmp_path) == [expected]


def test_a_dot_env_symlink_out_of_the_repository_is_refused(tmp_path: Path, outside: Path) -> None:
    root = write_files(tmp_path / "repo", {"compose.yaml": "name: s\nservices:\n  web: {image: 'a:${TOKEN}'}\n"})
    os.symlink(outside, root / ".env")
    assert validate(root, tmp_path) == [".env: '.env' resolves outside the repository"]


def test_interpolation_cannot_blow_up_memory(tmp_path: Path) -> None:
    """A 256 KiB value used 4,000 times would be a gigabyte of strings from a small file."""
    uses = "\n".join(f"      V{i}: ${{BIG}}" for i in range(4000))
    root = write_files(tmp_path / "repo", {"compose.yaml": f"name: s\nservices:\n  web:\n    image: a\n"
                                                          f"    environment:\n{uses}\n",
                                          ".env": "BIG=" + "x" * (250 * 1024) + "\n"})
    found = validate(root, tmp_path)
    assert len(found) == 1 and found[0].endswith(
        "interpolation made more than 4194304 characters in this file; use fewer or shorter variables"), found


def test_deep_variable_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    root = write_files(tmp_path / "repo", {"compose.yaml": "name: s\nservices:\n  web:\n    image: '"
                                                          + "${A:-" * 5000 + "x" + "}" * 5000 + "'\n"})
    (found,) = validate(root, tmp_path)
    assert found.startswith("compose.yaml:4:12: services.web.image: ") and "nested deeper than 32" in found


def test_the_policy_sees_what_merge_keys_and_merged_files_ask_for(tmp_path: Path) -> None:
    project = "apiVersion: gitops/v1\nkind: Project\nmetadata: {name: s}\nspec:\n  compose:\n" \
              "    - files: [base.yaml, override.yaml]\n"
    files = {"project.yaml": project,
             "base.yaml": "x-root: &root {privileged: true}\nservices:\n  web:\n    image: a\n"
                          "  db:\n    <<: *root\n    image: b\n",
             "override.yaml": "services:\n  web:\n    <<: {cap_add: [SYS_ADMIN]}\n"
                              "    volumes: ['/var/run/docker.sock:/s']\n"}
    found = validate(write_files(tmp_path / "repo", files), tmp_path)
    rules = sorted(line.split("policy rule '")[1].split("'")[0] for line in found if "policy rule" in line)
    assert rules == ["cap-add", "docker-socket-mount", "host-path", "privileged", "sensitive-bind-mount"], found
    # an anchor of another file does not exist in this one: an error, never a setting silently dropped
    files["base.yaml"] = "x-root: &root {privileged: true}\nservices:\n  web:\n    image: a\n"
    files["override.yaml"] = "services:\n  db:\n    <<: *root\n"
    assert validate(write_files(tmp_path / "again", files), tmp_path) == [
        "override.yaml:3:9: alias '*root' has no anchor before it"]


def test_values_from_a_compose_file_are_escaped_in_every_plan_format(tmp_path: Path) -> None:
    evil = "\\x1b[2J\\u202e##[error]"
    root = write_files(tmp_path / "repo", {"compose.yaml": f"name: s\nservices:\n  web:\n    image: a\n"
                                                          f"    environment: {{MSG: \"{evil}\"}}\n"})
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"hosts": [{"host": "local", "reachable": True, "containers": [], "networks": [],
                                            "volumes": []}]}))
    for fmt in ("text", "markdown", "json"):
        out = run_gitops("plan", str(root), "--observed", str(empty), "--format", fmt, tmp=tmp_path).stdout
        assert "\x1b" not in out and "\u202e" not in out and "\n##[" not in out, fmt


def test_a_secret_of_a_compose_stack_never_reaches_a_plan(tmp_path: Path) -> None:
    root = write_files(tmp_path / "repo", {
        "compose.yaml": "name: s\nservices:\n  web:\n    image: a\n    secrets: [token]\n"
                        "secrets:\n  token: {file: ./token.txt}\n",
        "token.txt": CANARY + "\n"})
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"hosts": [{"host": "local", "reachable": True, "containers": [], "networks": [],
                                            "volumes": []}]}))
    for fmt in ("text", "markdown", "json"):
        planned = run_gitops("plan", str(root), "--observed", str(empty), "--format", fmt, tmp=tmp_path)
        assert planned.returncode == 0 and CANARY not in planned.stdout + planned.stderr, fmt
    converted = run_gitops("convert", str(root), tmp=tmp_path)
    assert converted.returncode == 0 and CANARY not in converted.stdout
