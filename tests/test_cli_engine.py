"""`gitops plan` and `gitops apply` as a user runs them: real process, real engine, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import service

pytestmark = pytest.mark.docker

FAST = "init: true\nstopGracePeriod: 2s\n"


def gitops(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitops", *args], capture_output=True, text=True, timeout=180,
                          cwd=cwd, stdin=subprocess.DEVNULL)


@pytest.fixture
def write(repo, project_name):
    def make(files: dict[str, str], *, prune: bool = False) -> Path:
        spec = "spec: {prune: true}\n" if prune else ""
        return repo({"project.yaml": f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project_name}}}\n{spec}",
                     **files}, project=False)
    return make


def test_apply_needs_yes_without_a_terminal(write, docker_client, project_name) -> None:
    root = write({"web.yaml": service("web", FAST)})
    proc = gitops("apply", str(root))
    assert proc.returncode == 1
    assert "not on a terminal, so nobody can confirm: pass --yes to apply" in proc.stderr
    assert docker_client.containers.list(all=True, filters={"label": f"io.gitops.project={project_name}"}) == []


def test_plan_exit_codes_and_apply(write, project_name, tmp_path) -> None:
    root = write({"web.yaml": service("web", FAST)})
    before = gitops("plan", str(root), "--detailed-exitcode")
    assert before.returncode == 2 and "+ web[0] on local" in before.stdout
    assert gitops("plan", str(root)).returncode == 0  # without the flag, changes are still success
    applied = gitops("apply", str(root), "--yes", "--state-dir", str(tmp_path / "state"))
    assert applied.returncode == 0, applied.stderr
    assert "Apply succeeded" in applied.stdout + applied.stderr
    history = json.loads(gitops("history", "--state-dir", str(tmp_path / "state"), "--format", "json").stdout)
    assert [(h["trigger"], h["outcome"], h["services"]) for h in history] == [("apply", "converged", {"web": "converged"})]
    after = gitops("plan", str(root), "--detailed-exitcode")
    assert after.returncode == 0 and "No changes." in after.stdout


def test_saved_plan_is_refused_when_anything_moved(write, tmp_path, project_name) -> None:
    root = write({"web.yaml": service("web", FAST)})
    saved = tmp_path / "plan.json"
    assert gitops("plan", str(root), "--out", str(saved), "--format", "json").returncode == 0
    schema = json.loads((Path(__file__).parent.parent / "schemas" / "plan.json").read_text())
    from jsonschema import Draft202012Validator
    assert list(Draft202012Validator(schema).iter_errors(json.loads(saved.read_text()))) == []
    # the manifests change after the plan was made
    (root / "web.yaml").write_text(service("web", FAST, image="local/web:2"))
    stale = gitops("apply", str(root), "--plan", str(saved), "--yes")
    assert stale.returncode == 1 and "the saved plan is stale: the manifests changed" in stale.stderr
    # back to what was planned, but the hosts change: someone started the service meanwhile
    (root / "web.yaml").write_text(service("web", FAST))
    assert gitops("apply", str(root), "--yes").returncode == 0
    moved = gitops("apply", str(root), "--plan", str(saved), "--yes")
    assert moved.returncode == 1 and "the containers on the hosts changed" in moved.stderr


def test_saved_plan_applies_when_nothing_moved(write, tmp_path, docker_client, project_name) -> None:
    root = write({"web.yaml": service("web", FAST)})
    saved = tmp_path / "plan.json"
    assert gitops("plan", str(root), "--out", str(saved)).returncode == 0
    proc = gitops("apply", str(root), "--plan", str(saved), "--yes")
    assert proc.returncode == 0, proc.stderr
    assert len(docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})) == 1


def test_failed_apply_exits_1_with_logs_and_health_output(write, project_name, tmp_path) -> None:
    """A failed manual apply shows the health-check output, and its history record keeps it like a daemon pass's."""
    check = "healthcheck: {exec: ['sh', '-c', 'echo checking; grep -q v1 /www/index.html'], interval: 200ms, retries: 2}"
    root = write({"web.yaml": service("web", FAST + check)})
    state = ["--state-dir", str(tmp_path / "state")]
    assert gitops("apply", str(root), "--yes", *state).returncode == 0
    (root / "web.yaml").write_text(service("web", FAST + check, image="local/web:2"))
    proc = gitops("apply", str(root), "--yes", *state)
    assert proc.returncode == 1
    assert "web: rolled_back: web[0] on local: health check failed" in proc.stderr
    assert "health check output: exit 1: checking" in proc.stderr
    assert "Apply FAILED" in proc.stderr
    history = json.loads(gitops("history", *state, "--format", "json").stdout)
    failed = history[0]
    assert failed["outcome"] == "failed"
    assert failed["details"]["web"]["health_output"].startswith("exit 1: checking")
    assert "health check failed" in failed["details"]["web"]["message"]


def test_empty_manifests_never_prune_everything(write, project_name) -> None:
    root = write({"web.yaml": service("web", FAST)}, prune=True)
    assert gitops("apply", str(root), "--yes").returncode == 0
    (root / "web.yaml").unlink()
    proc = gitops("plan", str(root))
    assert proc.returncode == 1 and "--allow-empty" in proc.stderr
    allowed = gitops("plan", str(root), "--allow-empty", "--detailed-exitcode")
    assert allowed.returncode == 2 and "- web[0] on local" in allowed.stdout


def test_invalid_manifests_change_nothing(write, docker_client, project_name) -> None:
    root = write({"web.yaml": service("web", FAST + "replicas: many")})
    proc = gitops("apply", str(root), "--yes")
    assert proc.returncode == 1 and "spec.replicas: expected integer" in proc.stderr
    assert docker_client.containers.list(all=True, filters={"label": f"io.gitops.project={project_name}"}) == []
