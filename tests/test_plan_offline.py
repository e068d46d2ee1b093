"""Plans for pull requests with no Docker daemon reachable: between two refs, and against a snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import service
from tests.gitutil import Remote

NO_DOCKER = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
PROJECT = "apiVersion: gitops/v1\nkind: Project\nmetadata: {name: pr}\n"


def gitops(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitops", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env or NO_DOCKER, stdin=subprocess.DEVNULL)


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Remote, str, str]:
    r = Remote(tmp_path / "git")
    base = r.commit({"deploy/project.yaml": PROJECT, "deploy/web.yaml": service("web", "replicas: 2"),
                     "deploy/old.yaml": service("old")}, "base")
    from tests.gitutil import git

    git("checkout", "-q", "-b", "feature", cwd=r.work)
    head = r.commit({"deploy/web.yaml": service("web", "replicas: 3", image="local/web:2"),
                     "deploy/old.yaml": None, "deploy/api.yaml": service("api")}, "feature", push=False)
    git("push", "-q", "origin", "feature", cwd=r.work)
    return r, base, head


def test_plan_between_two_refs_needs_no_docker(remote, tmp_path: Path) -> None:
    r, base, head = remote
    proc = gitops("plan", "--repo", str(r.bare), "--ref", "feature", "--path", "deploy", "--base", "main",
                  "--state-dir", str(tmp_path / "s"), "--format", "markdown", "--detailed-exitcode")
    assert proc.returncode == 2, proc.stderr
    out = proc.stdout
    assert f"### gitops plan: `pr` at `{head[:12]}`" in out
    assert "| + | `api[0]` | `local` | create | new instance (`api.yaml:4`) |" in out
    assert "| ~ | `web[0]` | `local` | update |" in out and "| + | `web[2]` | `local` | create |" in out
    assert "prune is off: old" in out  # removal of a service is shown, and why nothing is removed
    assert "+ image: local/web:2" in out


def test_plan_base_for_a_local_checkout(remote, tmp_path: Path) -> None:
    r, base, head = remote
    proc = gitops("plan", str(r.work / "deploy"), "--base", base, "--state-dir", str(tmp_path / "s"),
                  "--detailed-exitcode")
    assert proc.returncode == 2, proc.stderr
    assert "~ web[0] on local" in proc.stdout and "image: local/web:1 -> local/web:2" in proc.stdout


def test_plan_base_same_ref_has_no_changes(remote, tmp_path: Path) -> None:
    r, base, head = remote
    proc = gitops("plan", "--repo", str(r.bare), "--ref", "main", "--path", "deploy", "--base", "main",
                  "--state-dir", str(tmp_path / "s"), "--detailed-exitcode")
    assert proc.returncode == 0 and "No changes." in proc.stdout


def test_plan_without_docker_and_without_a_snapshot_fails_clearly(remote, tmp_path: Path) -> None:
    r, base, head = remote
    proc = gitops("plan", str(r.work / "deploy"))
    assert proc.returncode == 1
    assert "host local is unreachable" in proc.stdout and "nonexistent/docker.sock" in proc.stdout


@pytest.mark.docker
def test_plan_against_a_saved_status_snapshot(remote, tmp_path: Path, docker_client, project_name) -> None:
    """Save `status --format json` where Docker is, then plan against it where it is not."""
    r, base, head = remote
    folder = tmp_path / "live"
    folder.mkdir()
    (folder / "project.yaml").write_text(PROJECT.replace("name: pr", f"name: {project_name}"))
    (folder / "web.yaml").write_text(service("web", "init: true"))
    env = dict(os.environ)
    assert gitops("apply", str(folder), "--yes", env=env).returncode == 0
    snapshot = gitops("status", str(folder), "--format", "json", "--state-dir", str(tmp_path / "s"), env=env)
    assert snapshot.returncode == 0, snapshot.stderr
    snap_file = tmp_path / "snapshot.json"
    snap_file.write_text(snapshot.stdout)
    assert json.loads(snapshot.stdout)["observed"]["hosts"][0]["containers"][0]["service"] == "web"
    same = gitops("plan", str(folder), "--observed", str(snap_file), "--detailed-exitcode")
    assert same.returncode == 0 and "No changes." in same.stdout
    (folder / "web.yaml").write_text(service("web", "init: true", image="local/web:2"))
    changed = gitops("plan", str(folder), "--observed", str(snap_file), "--detailed-exitcode")
    assert changed.returncode == 2 and "image: local/web:1 -> local/web:2" in changed.stdout


@pytest.mark.docker
def test_secret_canary_never_leaves_the_secret_file(tmp_path: Path, docker_client, project_name) -> None:
    """A secret's value reaches the container, and nothing else: not plans, logs, store, status or history."""
    canary = "CANARY-s3cr3t-7d1f"
    r = Remote(tmp_path / "git")
    body = "init: true\nenv:\n  TOKEN: {secretFile: token.txt}\n  PLAIN: visible\n"
    r.commit({"project.yaml": PROJECT.replace("name: pr", f"name: {project_name}"),
              "web.yaml": service("web", body), "token.txt": canary + "\n"})
    state = tmp_path / "state"
    env = dict(os.environ)
    outputs = [gitops("sync", "--repo", str(r.bare), "--state-dir", str(state), env=env)]
    r.commit({"token.txt": canary + "-rotated\n"})
    outputs.append(gitops("plan", "--repo", str(r.bare), "--state-dir", str(state), "--format", "json", env=env))
    outputs.append(gitops("sync", "--repo", str(r.bare), "--state-dir", str(state), env=env))
    outputs.append(gitops("status", "--repo", str(r.bare), "--state-dir", str(state), "--format", "json", env=env))
    outputs.append(gitops("history", "--state-dir", str(state), "--format", "json", env=env))
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    assert "(secret changed)" in outputs[1].stdout or '"secret": true' in outputs[1].stdout
    for o in outputs:
        assert canary not in o.stdout + o.stderr
    stored = b"".join(p.read_bytes() for p in state.glob("state.db*"))
    assert canary.encode() not in stored
    container = docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})[0]
    assert f"TOKEN={canary}-rotated" in container.attrs["Config"]["Env"]  # it did reach the container
    assert canary not in json.dumps(container.labels)
    # SECURITY.md 16: the digest on the label and in status is keyed with the installation's key, which
    # itself appears nowhere: not in any output, the store, any other file under the state dir, or a label.
    from gitops.core.model import legacy_secret_digest
    from gitops.secret_key import KEY_FILE
    from tests.test_secret_key import key_forms

    shown = json.loads(outputs[3].stdout)["observed"]["hosts"][0]["containers"][0]
    digest = json.loads(shown["spec_json"])["env"]["TOKEN"]
    assert digest.startswith("secret:") and digest != legacy_secret_digest("TOKEN", canary + "-rotated")
    key = (state / KEY_FILE).read_bytes()
    files = [p.read_bytes().decode("latin-1") for p in state.rglob("*") if p.is_file() and p.name != KEY_FILE]
    for form in key_forms(key):
        assert not any(form in o.stdout + o.stderr for o in outputs), form
        assert not any(form in f for f in files), form
        assert form not in json.dumps(container.labels)


def test_plan_base_says_when_a_registry_does_not_answer_and_plans_by_the_tag(tmp_path: Path) -> None:
    """resolve: digest with no registry reachable (a closed port on loopback): the plan is made, by tag, and says
    the digest is unknown for each service; the same tag on both sides is no change."""
    r = Remote(tmp_path / "git")
    image = "127.0.0.1:9/shop/app:1.4"  # port 9 (discard): nothing listens here
    base = r.commit({"project.yaml": PROJECT, "app.yaml": service("app", "resolve: digest", image=image)}, "base")
    r.commit({"app.yaml": service("app", "resolve: digest\nreplicas: 2", image=image)}, "head")
    proc = gitops("plan", "--repo", str(r.bare), "--base", base, "--state-dir", str(tmp_path / "s"),
                  "--format", "json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert [(s["name"], s["slot"], s["action"]) for s in plan["steps"] if s["action"] != "noop"] == [("app", 1, "create")]
    (warning,) = plan["warnings"]
    assert warning.startswith("app: digest not resolved, planned by its tag: registry 127.0.0.1:9 could not be "
                              "reached")
