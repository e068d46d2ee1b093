"""One applier at a time (issue 5 item 3): the lease on the real engine, holders that die, racing daemons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitops.core.model import HostSpec
from gitops.errors import NameConflict
from gitops.hosts.docker import DockerHost, lease_name
from tests.conftest import service
from tests.daemonutil import DaemonProcess
from tests.gitutil import Remote

pytestmark = pytest.mark.docker

FAST = "init: true\nstopGracePeriod: 1s\n"


def test_lease_primitives(project_name, docker_client) -> None:
    host = DockerHost(HostSpec("local", ""))
    now = time.time()
    a = host.lease_acquire(project_name, "holder-a", 30, now)
    assert a.acquired and a.holder == "holder-a"
    b = host.lease_acquire(project_name, "holder-b", 30, now)
    assert not b.acquired and b.holder == "holder-a" and b.expires_at >= now + 29
    assert host.lease_acquire(project_name, "holder-a", 30, now).acquired  # the holder renews
    # expired: someone else takes it over
    later = now + 31
    c = host.lease_acquire(project_name, "holder-c", 30, later)
    assert c.acquired and c.holder == "holder-c"
    host.lease_release(project_name, "holder-a")  # not the holder: nothing happens
    assert docker_client.containers.get(lease_name(project_name)).labels["io.gitops.lease-holder"] == "holder-c"
    host.lease_release(project_name, "holder-c")
    assert docker_client.containers.list(all=True, filters={"name": lease_name(project_name)}) == []
    host.close()


def test_a_container_squatting_the_lease_name_is_an_error(project_name, docker_client) -> None:
    squatter = docker_client.containers.create("local/busybox:1", ["true"], name=lease_name(project_name))
    try:
        with pytest.raises(NameConflict, match="not a gitops lease"):
            DockerHost(HostSpec("local", "")).lease_acquire(project_name, "me", 30, time.time())
    finally:
        squatter.remove(force=True)


@pytest.fixture
def remote(tmp_path: Path, project_name: str) -> Remote:
    r = Remote(tmp_path / "git")
    r.commit({"project.yaml": f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project_name}}}\n",
              "web.yaml": service("web", FAST + "replicas: 2")})
    return r


def sync(remote: Remote, state: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitops", "sync", "--repo", str(remote.bare), "--state-dir",
                           str(state), *extra], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


def test_a_killed_holders_lease_is_taken_over(tmp_path, remote, docker_client, project_name) -> None:
    """SIGKILLed while holding the lease: the next reconciler on this machine sees the holder is gone."""
    killed = sync(remote, tmp_path / "a", env={"GITOPS_FAILPOINTS": "after_create"})
    assert killed.returncode == -9 and "failpoint after_create reached" in killed.stderr
    assert docker_client.containers.get(lease_name(project_name)).labels["io.gitops.lease-holder"]
    took_over = sync(remote, tmp_path / "b")
    assert took_over.returncode == 0, took_over.stderr
    running = docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})
    assert len(running) == 2  # the killed pass's half-made container was adopted, not duplicated
    assert docker_client.containers.list(all=True, filters={"name": lease_name(project_name)}) == []


def test_a_lease_of_another_machine_is_taken_over_after_it_expires(tmp_path, remote, docker_client,
                                                                     project_name) -> None:
    """A holder elsewhere cannot be checked for life: its lease blocks until its TTL runs out."""
    host = DockerHost(HostSpec("local", ""))
    assert host.lease_acquire(project_name, "other-machine:4242:abcd", 3, time.time()).acquired
    blocked = sync(remote, tmp_path / "b")
    assert blocked.returncode == 1 and "another reconciler (other-machine:4242:abcd)" in blocked.stderr
    time.sleep(3.2)
    took_over = sync(remote, tmp_path / "b")
    assert took_over.returncode == 0, took_over.stderr
    assert len(docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})) == 2
    host.close()


def _apply_windows(log: Path) -> list[tuple[float, float]]:
    from datetime import datetime

    def ts(rec: dict) -> float:
        return datetime.fromisoformat(rec["timestamp"].replace("Z", "+00:00")).timestamp()

    windows, start = [], None
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if rec.get("event") == "apply.started":
            start = ts(rec)
        elif rec.get("event") == "pass.finished" and start is not None:
            windows.append((start, ts(rec)))
            start = None
    return windows


@pytest.mark.slow
def test_two_daemons_started_together_never_apply_at_once(tmp_path, remote, docker_client, project_name) -> None:
    """20 rounds: a new commit, two daemons started at the same moment. Never two appliers, no duplicates."""
    appliers = []
    for i in range(20):
        remote.commit({"web.yaml": service("web", FAST + f"replicas: 2\nenv: {{ROUND: '{i}'}}")})
        a = DaemonProcess(tmp_path / f"a{i}", "--repo", str(remote.bare), "--interval", "1h", "--no-webhooks",
                          secret=None)
        b = DaemonProcess(tmp_path / f"b{i}", "--repo", str(remote.bare), "--interval", "1h", "--no-webhooks",
                          secret=None)
        for d in (a, b):
            d.state.parent.mkdir(parents=True, exist_ok=True)
        with a, b:
            pass  # both are ready: each has finished its startup pass
        wa, wb = _apply_windows(a.log), _apply_windows(b.log)
        for s1, e1 in wa:
            for s2, e2 in wb:
                assert e1 <= s2 or e2 <= s1, f"round {i}: both applied at once"
        appliers.append(len(wa) + len(wb))
        running = docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})
        assert len(running) == 2, f"round {i}: {len(running)} running"
        assert {c.attrs["Config"]["Env"].count(f"ROUND={i}") for c in running} == {1}
    assert all(n >= 1 for n in appliers)  # someone applied every round
