"""The crash matrix (issue 5 item 2, SECURITY.md "Crash safety and faults").

For each failpoint, in a start-first and a stop-first rolling update of 2 replicas: `gitops sync` is
SIGKILLed at that point, then run again until it converges, while a probe requests the service every
50 ms. Invariants checked:
  I1 the service always answers (some container of it serves every probe tick)
  I2 never more running containers than replicas + 1 (the surge of parallelism 1)
  I3 no orphan survives: after recovery exactly the replicas run, all on the new spec, nothing stopped
  I4 an unmanaged container is unchanged          I5 the named volume is still there
  I6 after recovery, the next plan is empty       I7 the state store passes SQLite's integrity check
Recovery must take at most two passes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.failpoints import POINTS
from tests.conftest import service
from tests.gitutil import Remote
from tests.sampling import Prober, RunningCount

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BODY = ("init: true\nstopGracePeriod: 1s\nreplicas: 2\n"
        "ports: [{container: 8080, hostIp: 127.0.0.1}]\n"
        "mounts: [{type: volume, source: data, target: /data}]\n"
        "healthcheck: {exec: ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/'], interval: 200ms, retries: 3}\n")


def run(remote: Remote, state: Path, *args: str, failpoint: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GITOPS_FAILPOINTS": failpoint} if failpoint else dict(os.environ)
    if not failpoint:
        env.pop("GITOPS_FAILPOINTS", None)
    return subprocess.run([sys.executable, "-m", "gitops", *args, "--repo", str(remote.bare), "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("order", ["start-first", "stop-first"])
def test_crash_matrix(order: str, tmp_path: Path, docker_client, project_name) -> None:
    remote = Remote(tmp_path / "git")
    body = BODY + f"update: {{order: {order}, parallelism: 1}}\n"
    files = {"project.yaml": f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project_name}}}\n",
             "volume.yaml": "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: data}\n",
             "web.yaml": service("web", body)}
    remote.commit(files)
    state = tmp_path / "state"
    assert run(remote, state, "sync").returncode == 0
    decoy = docker_client.containers.run("local/busybox:1", ["sleep", "600"], detach=True,
                                         labels={"io.gitops.service": "web"}, name=f"{project_name}-decoy")
    decoy_before = docker_client.api.inspect_container(decoy.id)
    report = []
    try:
        for point in POINTS:
            remote.commit({"web.yaml": service("web", body + f"env: {{EPISODE: '{point}'}}")})
            with Prober(docker_client, project_name, "web") as probe, RunningCount(docker_client, project_name) as count:
                crashed = run(remote, state, "sync", failpoint=point)
                assert crashed.returncode == -9, (point, crashed.returncode, crashed.stderr[-2000:])
                assert f"failpoint {point} reached" in crashed.stderr
                passes = 0
                for _ in range(2):
                    passes += 1
                    again = run(remote, state, "sync")
                    if again.returncode == 0:
                        break
                assert again.returncode == 0, (point, again.stdout[-1500:], again.stderr[-1500:])
            # I1, I2
            assert probe.failures == [], (point, probe.failures[:3])
            assert count.max <= 2 + 1, (point, count.max)
            # I3: exactly the replicas, all new, nothing stopped left behind
            mine = docker_client.containers.list(all=True, filters={"label": [f"io.gitops.project={project_name}",
                                                                                "io.gitops.service=web"]})
            assert len(mine) == 2 and all(c.status == "running" for c in mine), (point, [(c.name, c.status) for c in mine])
            assert all(f"EPISODE={point}" in c.attrs["Config"]["Env"] for c in mine), point
            # I4, I5
            assert docker_client.api.inspect_container(decoy.id) == decoy_before, point
            assert docker_client.volumes.get(f"{project_name}_data")
            # I6
            plan = run(remote, state, "plan", "--detailed-exitcode")
            assert plan.returncode == 0, (point, plan.stdout)
            # I7
            with sqlite3.connect(state / "state.db") as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            report.append((order, point, passes, probe.ok, count.max))
    finally:
        decoy.remove(force=True)
    print("\n".join(f"{o:11} {p:20} recovered in {n} pass(es), {ok} probe answers, max {m} running"
                    for o, p, n, ok, m in report))
