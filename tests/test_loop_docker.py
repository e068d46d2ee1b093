"""The GitOps loop end to end: real git repos, a real daemon process, real HTTP, the real engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import service
from tests.daemonutil import DaemonProcess
from tests.dockerutil import project_containers
from tests.gitutil import Remote

pytestmark = pytest.mark.docker

FAST = "init: true\nstopGracePeriod: 2s\n"
CHECK = "healthcheck: {exec: ['sh', '-c', 'grep -q v1 /www/index.html'], interval: 200ms, retries: 2}\n" \
        "update: {healthyDeadline: 15s}\n"


@pytest.fixture
def remote(tmp_path: Path, project_name: str) -> Remote:
    r = Remote(tmp_path / "git")
    r.commit({"project.yaml": f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project_name}}}\n",
              "web.yaml": service("web", FAST + CHECK)}, "first")
    return r


def images(client, project: str) -> list[str]:
    return sorted(c.image.tags[0] for c in project_containers(client, project, all=True))


def ids(client, project: str) -> list[str]:
    return sorted(c.id for c in project_containers(client, project, all=True))


def test_push_and_signed_webhook_converge(tmp_path, remote, docker_client, project_name) -> None:
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--ref", "main", "--interval", "1h") as d:
        assert d.last_pass()["outcome"] == "converged" and images(docker_client, project_name) == ["local/web:1"]
        commit = remote.commit({"web.yaml": service("web", FAST + CHECK.replace("grep -q v1", "grep -q web"),
                                                    image="local/web:2")})
        sent = time.time()
        assert d.github_push() == 202
        d.wait_for(lambda: d.last_pass()["revision"] == commit, 30, "the pass of the new commit")
        assert d.last_pass()["started_at"] - sent < 1.0  # the webhook asks, the worker starts at once
        d.wait_for(lambda: d.last_pass()["outcome"] == "converged" and d.last_pass()["revision"] == commit, 60,
                   "convergence")
        assert images(docker_client, project_name) == ["local/web:2"]
        status = d.status()
        svc = status["services"][0]
        assert (svc["name"], svc["replicas"]["healthy"], svc["running_revisions"]) == ("web", 1, [commit])
        assert status["source"]["available"] and status["source"]["commit"] == commit
        assert d.get("/healthz")[0] == 200
        text = d.get("/metrics")[1].decode()
        for name in ("gitops_pass_duration_seconds", "gitops_passes_total", "gitops_last_successful_sync_timestamp_seconds",
                     "gitops_fetch_errors_total", "gitops_drifted_instances", "gitops_webhook_requests_total"):
            assert name in text
        assert d.stop() == 0
    assert "daemon.stopped" in d.log.read_text()


def _burst(d: DaemonProcess, count: int, spread: float, after: str) -> list[int]:
    """``count`` signed pushes announcing ``after``, sent at even times over ``spread`` seconds."""
    codes: list[int] = []
    begin = time.monotonic()

    def send(i: int) -> None:
        time.sleep(max(0.0, begin + spread * i / count - time.monotonic()))  # the load's schedule, not a wait
        codes.append(d.github_push(after=after))

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(send, range(count)))
    return codes


@pytest.mark.parametrize("spread", [1.0, 3.0])
def test_a_burst_of_200_webhooks_causes_at_most_2_passes(tmp_path, remote, docker_client, project_name,
                                                         spread: float) -> None:
    """200 signed pushes of one commit over 1 s (and 3 s), longer than a pass: requests are coalesced by the
    head they announce, not by when they arrive, so one pass applies the commit and the rest ask for nothing."""
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--interval", "1h") as d:
        before = d.metric("gitops_passes_total")
        applies_before = len(d.log_events("apply.started"))
        commit = remote.commit({"web.yaml": service("web", FAST + CHECK + "env: {BURST: '1'}")})
        codes = _burst(d, 200, spread, commit)
        assert codes.count(202) == 200

        def taken() -> int:  # requests the worker has taken: merged into a pass, or dropped as already applied
            return sum(e["requests"] for e in d.log_events("pass.starting") + d.log_events("webhooks.coalesced"))

        d.wait_for(lambda: taken() == 201, 60, "the worker to take every request (startup + 200)")
        d.wait_for(lambda: d.last_pass().get("finished_at") and d.last_pass()["revision"] == commit, 60, "the pass")
        passes = d.metric("gitops_passes_total") - before
        applies = len(d.log_events("apply.started")) - applies_before
        print(f"spread {spread}s: {passes:.0f} passes, {applies} applied, "
              f"{len(d.log_events('webhooks.coalesced'))} coalesced batches")
        assert d.last_pass()["outcome"] == "converged" and applies == 1
        assert 1 <= passes <= 2, passes


def test_polling_alone_converges(tmp_path, remote, docker_client, project_name) -> None:
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--interval", "1s", "--no-webhooks", secret=None) as d:
        assert d.get("/hooks/github")[0] in (404, 405)  # no webhook endpoint without a secret
        commit = remote.commit({"web.yaml": service("web", FAST + CHECK + "env: {POLLED: 'yes'}")})
        d.wait_for(lambda: d.last_pass()["revision"] == commit and d.last_pass()["outcome"] == "converged", 30,
                   "a poll to converge")


def test_invalid_commit_changes_nothing_and_says_where(tmp_path, remote, docker_client, project_name) -> None:
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--interval", "1h") as d:
        before = ids(docker_client, project_name)
        commit = remote.commit({"web.yaml": service("web", FAST + "replicas: many")})
        d.github_push()
        d.wait_for(lambda: d.last_pass()["revision"] == commit, 30, "the invalid pass")
        last = d.last_pass()
        assert last["outcome"] == "invalid"
        assert "web.yaml:9:13: spec.replicas: expected integer, got string 'many'" in last["error"]
        assert ids(docker_client, project_name) == before


def test_failed_rollout_is_rolled_back_recorded_and_not_reapplied(tmp_path, remote, docker_client, project_name) -> None:
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--interval", "1h") as d:
        commit = remote.commit({"web.yaml": service("web", FAST + CHECK, image="local/web:2")})  # v2 fails its check
        d.github_push()
        d.wait_for(lambda: d.last_pass()["revision"] == commit and d.last_pass().get("finished_at"), 60, "the rollout")
        assert d.last_pass()["outcome"] == "failed" and d.last_pass()["services"] == {"web": "rolled_back"}
        assert images(docker_client, project_name) == ["local/web:1"]
        before = ids(docker_client, project_name)
        d.github_push()  # the next trigger must not try the same broken commit again
        d.wait_for(lambda: d.last_pass()["outcome"] == "skipped", 30, "a skipped pass")
        assert "failed before" in d.last_pass()["error"]
        assert ids(docker_client, project_name) == before
        fixed = remote.commit({"web.yaml": service("web", FAST + CHECK + "env: {FIXED: '1'}")})
        d.github_push()
        d.wait_for(lambda: d.last_pass()["revision"] == fixed
                   and d.last_pass()["outcome"] in ("converged", "no_changes"), 60, "the fix to converge")
        assert all("FIXED=1" in c.attrs["Config"]["Env"] for c in docker_client.containers.list(
            filters={"label": [f"io.gitops.project={project_name}", "io.gitops.managed=true"]}))


def test_the_remote_going_away_leaves_hosts_alone_and_recovers(tmp_path, remote, docker_client, project_name) -> None:
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--interval", "1h", "--fetch-timeout", "5") as d:
        before = ids(docker_client, project_name)
        moved = remote.bare.with_name("moved.git")
        shutil.move(remote.bare, moved)
        d.github_push()
        d.wait_for(lambda: d.last_pass()["outcome"] == "source_unavailable", 30, "source unavailable")
        status = d.status()
        assert status["source"]["available"] is False and "cannot fetch" in status["source"]["error"]
        assert d.metric("gitops_fetch_errors_total") >= 1
        assert ids(docker_client, project_name) == before
        shutil.move(moved, remote.bare)
        d.github_push()
        d.wait_for(lambda: d.last_pass()["outcome"] in ("no_changes", "converged"), 30, "recovery")
        assert d.status()["source"]["available"] is True


def test_daemon_refuses_webhooks_without_a_secret(tmp_path, remote) -> None:
    proc = subprocess.run([sys.executable, "-m", "gitops", "daemon", "--repo", str(remote.bare), "--state-dir",
                           str(tmp_path / "s")], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={k: v for k, v in __import__("os").environ.items() if k != "GITOPS_WEBHOOK_SECRET"})
    assert proc.returncode == 1 and "webhooks need a secret" in proc.stderr


def test_local_watch_reconciles_on_file_change(tmp_path, docker_client, project_name) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "project.yaml").write_text(f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project_name}}}\n")
    (folder / "web.yaml").write_text(service("web", FAST))
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        assert images(docker_client, project_name) == ["local/web:1"]
        (folder / "web.yaml").write_text(service("web", FAST, image="local/web:2"))
        d.wait_for(lambda: images(docker_client, project_name) == ["local/web:2"], 30, "the file change to apply")


def test_sync_history_and_rollback_with_a_pin(tmp_path, remote, docker_client, project_name) -> None:
    def gitops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gitops", *args, "--state-dir", str(tmp_path / "state")],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=remote.work, capture_output=True, text=True).stdout.strip()
    assert gitops("sync", "--repo", str(remote.bare)).returncode == 0
    ok_v2 = CHECK.replace("grep -q v1", "grep -q web")
    second = remote.commit({"web.yaml": service("web", FAST + ok_v2, image="local/web:2")})
    assert gitops("sync", "--repo", str(remote.bare)).returncode == 0
    assert images(docker_client, project_name) == ["local/web:2"]
    history = gitops("history", "web", "--format", "json")
    assert [p["revision"] for p in json.loads(history.stdout)] == [second, first]

    rolled = gitops("rollback", "web", "--repo", str(remote.bare))
    assert rolled.returncode == 0, rolled.stderr
    assert f"web pinned to {first[:12]}" in rolled.stdout
    assert images(docker_client, project_name) == ["local/web:1"]
    # the loop does not undo it: HEAD still says v2, but the service stays pinned
    again = gitops("sync", "--repo", str(remote.bare))
    assert again.returncode == 0 and images(docker_client, project_name) == ["local/web:1"]
    # a commit that changes the service releases the pin
    remote.commit({"web.yaml": service("web", FAST + ok_v2 + "env: {AFTER_PIN: '1'}", image="local/web:2")})
    assert gitops("sync", "--repo", str(remote.bare)).returncode == 0
    assert images(docker_client, project_name) == ["local/web:2"]


def test_sigterm_during_an_apply_finishes_the_pass_then_exits(tmp_path, remote, docker_client, project_name) -> None:
    slow = CHECK.replace("update: {healthyDeadline: 15s}", "update: {healthyDeadline: 15s, minHealthyTime: 2s}")
    with DaemonProcess(tmp_path, "--repo", str(remote.bare), "--interval", "1h") as d:
        commit = remote.commit({"web.yaml": service("web", FAST + slow + "env: {SLOW: '1'}")})
        before = d.metric("gitops_last_apply_started_timestamp_seconds")
        d.github_push()
        d.wait_for(lambda: d.metric("gitops_last_apply_started_timestamp_seconds") > before, 20, "the apply to start")
        assert d.stop() == 0  # SIGTERM in the middle of the 2 s health gate
    log = d.log.read_text()
    finished = [json.loads(line) for line in log.splitlines() if '"pass.finished"' in line]
    assert finished[-1]["revision"] == commit[:12] and finished[-1]["outcome"] == "converged"
    assert log.index('"daemon.stopping"') < log.rindex('"pass.finished"') < log.index('"daemon.stopped"')
    running = docker_client.containers.list(filters={"label": [f"io.gitops.project={project_name}",
                                                               "io.gitops.managed=true"]})
    assert len(running) == 1 and "SLOW=1" in running[0].attrs["Config"]["Env"]
