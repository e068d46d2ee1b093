"""Status, history and rollback: one status document for the CLI and GET /status, failure evidence in the
record, rollback to a spec that differs, and escaped text output. Real git repos, a real daemon, real Docker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gitops.state import StateStore
from tests.conftest import service
from tests.daemonutil import DaemonProcess
from tests.dockerutil import project_containers
from tests.gitutil import Remote
from tests.hostile import run_gitops

FAST = "init: true\nstopGracePeriod: 2s\n"
CHECK = "healthcheck: {exec: ['sh', '-c', 'grep -q v1 /www/index.html'], interval: 200ms, retries: 2}\n" \
        "update: {healthyDeadline: 15s}\n"
OK_V2 = CHECK.replace("grep -q v1", "grep -q web")
HOSTILE = "boom\n::error::owned\x1b[31mred\x1b]0;title\x07"
# Fields of the status document that differ between two correct readings only because time passed:
# when the source was last fetched (each `gitops status --repo` fetches) or last failed to be.
TIME_DEPENDENT = (("source", "fetched_at"), ("source", "error_at"))


def project_yaml(name: str) -> str:
    return f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {name}}}\n"


@pytest.fixture
def remote(tmp_path: Path, project_name: str) -> Remote:
    r = Remote(tmp_path / "git")
    r.commit({"project.yaml": project_yaml(project_name), "web.yaml": service("web", FAST + CHECK)}, "first")
    return r


def gitops(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitops", *args, "--state-dir", str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def images(client: Any, project: str) -> list[str]:
    return sorted(c.image.tags[0] for c in project_containers(client, project, all=True))


def without_time(doc: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    for section, key in TIME_DEPENDENT:
        (doc.get(section) or {}).pop(key, None)
    return doc


def assert_escaped(text: str) -> None:
    """Nothing a repository or container said can move the cursor or command a CI runner."""
    assert "\x1b" not in text and "\x07" not in text
    assert not [line for line in text.splitlines() if line.lstrip().startswith("::")]


# -- the one status document ----------------------------------------------------------------------------------

@pytest.mark.docker
def test_status_endpoint_and_cli_status_are_the_same_document(tmp_path, remote, docker_client, project_name) -> None:
    """After the daemon's passes (converged, then an invalid HEAD), GET /status and `gitops status --format json`
    give the same document apart from the source's fetch times, with 0 changes pending once converged."""
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--interval", "1h") as d:
        commit = remote.commit({"web.yaml": service("web", FAST + OK_V2, image="local/web:2")})
        d.github_push()
        d.wait_for(lambda: d.last_pass()["revision"] == commit and d.last_pass()["outcome"] == "converged", 60,
                   "the update to converge")
        cli = gitops(tmp_path, "status", "--repo", str(remote.bare), "--format", "json")
        assert cli.returncode == 0, cli.stderr
        endpoint = d.status()
        assert endpoint["pending_changes"] == 0
        assert without_time(json.loads(cli.stdout)) == without_time(endpoint)

        # HEAD becomes invalid: the hosts keep the last revision that loaded, and both say so the same way
        bad = remote.commit({"web.yaml": service("web", FAST + "replicas: many"),
                             "db.yaml": service("db", "stopGracePeriod: soon")})
        d.github_push()
        d.wait_for(lambda: d.last_pass()["revision"] == bad, 30, "the invalid pass")
        cli = gitops(tmp_path, "status", "--repo", str(remote.bare), "--format", "json")
        assert cli.returncode == 1 and "web.yaml:9:13: spec.replicas" in cli.stderr
        document = json.loads(cli.stdout)
        endpoint = d.status()
        assert (document["revision"], document["source"]["commit"], document["last_pass"]["outcome"]) == (
            commit, bad, "invalid")
        assert without_time(document) == without_time(endpoint)

        # text history shows every FILE:LINE:COL of the invalid commit, not the first 120 characters
        history = gitops(tmp_path, "history")
        assert history.returncode == 0
        assert "web.yaml:9:13: spec.replicas" in history.stdout and "db.yaml:" in history.stdout


@pytest.mark.docker
def test_a_failed_rollout_records_health_output_and_log_lines_escaped(tmp_path, remote, docker_client,
                                                                     project_name) -> None:
    """The daemon's failure record carries the health-check output and the last log lines, in status, history
    and the log; as text they are escaped (a newline, '::error::' and ESC sequences stay visible, inert)."""
    # YAML single quotes keep the backslashes for printf: a newline, '::error::' and ESC[31m from the container
    failing = ("command: ['sh', '-c', 'printf \"booting\\n::error::from-log\\033[31mred\\n\"; "
               "exec httpd -f -p 8080 -h /www']\n"
               "healthcheck: {exec: ['sh', '-c', 'printf \"probe\\n::error::no\\033[31m\"; exit 1'], "
               "interval: 200ms, retries: 1}\nupdate: {healthyDeadline: 10s}\n")
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--interval", "1h") as d:
        commit = remote.commit({"web.yaml": service("web", FAST + failing)})
        d.github_push()
        d.wait_for(lambda: d.last_pass()["revision"] == commit and d.last_pass().get("finished_at"), 60, "the rollout")
        assert d.last_pass()["services"] == {"web": "rolled_back"}
        web = d.status()["services"][0]
        assert web["last_outcome"] == "rolled_back" and "health check failed" in web["reason"]
        assert web["health_output"] == "exit 1: probe\n::error::no\x1b[31m"
        assert "booting\n::error::from-log\x1b[31mred" in web["logs"]
        assert d.last_pass()["details"]["web"]["health_output"] == web["health_output"]
        failed = [json.loads(line) for line in d.log.read_text().splitlines() if '"pass.service_failed"' in line]
        assert failed and failed[-1]["health_output"] == web["health_output"] and "from-log" in failed[-1]["logs"]

        history = gitops(tmp_path, "history")
        assert "health check output: exit 1: probe\\n::error::no\\x1b[31m" in history.stdout
        assert "booting" in history.stdout and "    \\x3a:error::from-log\\x1b[31mred" in history.stdout
        assert_escaped(history.stdout)
        status = gitops(tmp_path, "status", "--repo", str(remote.bare))
        assert "health check output: exit 1: probe\\n::error::no\\x1b[31m" in status.stdout
        assert "    \\x3a:error::from-log\\x1b[31mred" in status.stdout
        assert_escaped(status.stdout)
        as_json = json.loads(gitops(tmp_path, "history", "--format", "json").stdout)
        assert as_json[0]["details"]["web"]["health_output"] == web["health_output"]


# -- rollback -------------------------------------------------------------------------------------------------

@pytest.mark.docker
def test_rollback_skips_revisions_with_the_same_spec_and_status_counts_against_the_pin(
        tmp_path, remote, docker_client, project_name) -> None:
    """After a commit that only adds a notes file, rollback picks the last converged spec that differs (and says
    which revisions it skipped); while the pin holds, status counts no changes pending."""
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=remote.work, capture_output=True,
                           text=True).stdout.strip()
    assert gitops(tmp_path, "sync", "--repo", str(remote.bare)).returncode == 0
    second = remote.commit({"web.yaml": service("web", FAST + OK_V2, image="local/web:2")})
    assert gitops(tmp_path, "sync", "--repo", str(remote.bare)).returncode == 0
    third = remote.commit({"NOTES.md": "only notes\n"})
    assert gitops(tmp_path, "sync", "--repo", str(remote.bare)).returncode == 0

    rolled = gitops(tmp_path, "rollback", "web", "--repo", str(remote.bare))
    assert rolled.returncode == 0, rolled.stderr
    assert (f"web: rolling back to {first[:12]}, the last converged revision whose spec of web differs from the "
            f"current one (skipped 1 revision with the same spec: {second[:12]})") in rolled.stdout
    assert f"web pinned to {first[:12]}" in rolled.stdout
    assert images(docker_client, project_name) == ["local/web:1"]

    status = gitops(tmp_path, "status", "--repo", str(remote.bare), "--format", "json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["revision"] == third and doc["pending_changes"] == 0
    assert doc["services"][0]["pinned_to"] == first
    text = gitops(tmp_path, "status", "--repo", str(remote.bare)).stdout
    assert "changes pending" not in text and f"pinned to {first[:12]}" in text


# -- text output escapes what repositories and hosts said -----------------------------------------------------

def test_history_text_escapes_hostile_values_and_keeps_every_error(tmp_path: Path) -> None:
    """History text prints a whole error (every FILE:LINE:COL) and the failure evidence, each escaped."""
    store = StateStore(tmp_path / "state")
    errors = "; ".join(f"services/web-{i:02d}.yaml:{i + 3}:7: spec.replicas: expected integer, got string"
                       for i in range(8))
    store.finish_pass(store.begin_pass("poll", now=10.0), revision="a" * 40, outcome="invalid",
                      error=f"revision aaaaaaaaaaaa is invalid, nothing was changed: {errors}", now=11.0)
    store.finish_pass(store.begin_pass("webhook", now=20.0), revision="b" * 40, outcome="failed",
                      services={"web": "rolled_back"}, error=f"web: rolled_back: {HOSTILE}",
                      details={"web": {"message": HOSTILE, "health_output": HOSTILE, "logs": f"one\n{HOSTILE}"}},
                      now=21.0)
    store.close()
    shown = run_gitops("history", "--state-dir", str(tmp_path / "state"), tmp=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert all(f"services/web-{i:02d}.yaml:{i + 3}:7:" in shown.stdout for i in range(8))
    assert "web: rolled_back: boom\\n::error::owned\\x1b[31mred\\x1b]0;title\\x07" in shown.stdout
    assert "health check output: boom\\n::error::owned\\x1b[31mred" in shown.stdout
    assert_escaped(shown.stdout)
    shown.within_bounds()


def test_status_text_escapes_a_hostile_service_reason(tmp_path: Path, repo) -> None:
    """A service's reason, health-check output and log lines are printed escaped by `gitops status`."""
    root = repo({"web.yaml": service("web"),
                 "host.yaml": "apiVersion: gitops/v1\nkind: Host\nmetadata: {name: gone}\n"
                              f"spec: {{url: 'unix://{tmp_path}/no.sock'}}\n"})
    store = StateStore(tmp_path / "state")
    store.finish_pass(store.begin_pass("poll"), revision="b" * 40, outcome="failed", services={"web": "failed"},
                      error=f"web: failed: {HOSTILE}",
                      details={"web": {"message": f"web: failed: {HOSTILE}", "health_output": HOSTILE,
                                       "logs": HOSTILE}})
    store.close()
    shown = run_gitops("status", str(root), "--state-dir", str(tmp_path / "state"), tmp=tmp_path)
    assert "reason: web: failed: boom\\n::error::owned\\x1b[31mred" in shown.stdout, shown.stdout + shown.stderr
    assert "health check output: boom\\n::error::owned" in shown.stdout
    assert_escaped(shown.stdout + shown.stderr)


def test_a_service_keeps_its_last_outcome_and_why_while_later_passes_skip_its_failed_commit(tmp_path: Path,
                                                                                          repo) -> None:
    """Passes that skip a backed-off commit name no service: status and the page still say why it failed."""
    from gitops.core.model import ObservedState, ephemeral_key
    from gitops.daemon.status import status_document
    from gitops.manifests.load import load_repo

    desired = load_repo(repo({"web.yaml": service("web")}), revision="b" * 40, key=ephemeral_key()).desired
    assert desired is not None
    store = StateStore(tmp_path / "state")
    store.finish_pass(store.begin_pass("poll"), revision="b" * 40, outcome="failed", services={"web": "rolled_back"},
                      error="web: rolled_back: health check failed",
                      details={"web": {"message": "web[0] on local: health check failed", "health_output": "exit 1",
                                       "logs": "db refused"}})
    for _ in range(3):
        store.finish_pass(store.begin_pass("poll"), revision="b" * 40, outcome="skipped",
                          error="revision bbbbbbbbbbbb failed before; not applied again until ...")
    (web,) = status_document(store, desired, ObservedState())["services"]
    assert (web["last_outcome"], web["reason"], web["health_output"], web["logs"]) == (
        "rolled_back", "web[0] on local: health check failed", "exit 1", "db refused")
    assert web["last_outcome_revision"] == "b" * 40
