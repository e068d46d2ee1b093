"""Faults outside gitops (issue 5 items 5-6): the Docker daemon restarted mid-apply, a full disk under the
state directory. Git force-push and a hanging remote are in test_source.py and test_loop_docker.py."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitops.engine.reconciler import LocalSource, Reconciler
from gitops.state import StateStore
from tests.conftest import purge_project, service
from tests.gitutil import Remote

pytestmark = pytest.mark.docker

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "second-engine.sh"
BODY = ("init: true\nstopGracePeriod: 1s\nreplicas: 2\nrestart: unless-stopped\n"
        "healthcheck: {exec: ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/'], interval: 200ms}\n"
        "update: {parallelism: 1, minHealthyTime: 2s}\n")


def sync(remote: Remote, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitops", "sync", "--repo", str(remote.bare), "--state-dir",
                           str(state)], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def test_docker_daemon_restarted_mid_apply(tmp_path, second_engine, project_name) -> None:
    """dockerd stops and starts during a rolling update: gitops reports the failure without crashing,
    does not hold the commit against itself, and the next pass converges with no duplicates."""
    client = second_engine["client"]
    remote = Remote(tmp_path / "git")
    hosts = f"apiVersion: gitops/v1\nkind: Host\nmetadata: {{name: h2}}\nspec: {{url: '{second_engine['unix']}'}}\n"
    project = f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project_name}}}\n"
    remote.commit({"project.yaml": project, "hosts.yaml": hosts, "web.yaml": service("web", BODY)})
    state = tmp_path / "state"
    try:
        assert sync(remote, state).returncode == 0
        remote.commit({"web.yaml": service("web", BODY + "env: {V: '2'}")})
        proc = subprocess.Popen([sys.executable, "-m", "gitops", "sync", "--repo", str(remote.bare), "--state-dir",
                                 str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.2)  # inside the first replica's 2 s minHealthyTime
        subprocess.run(["bash", str(SCRIPT), "stop"], check=True, timeout=90)
        subprocess.run(["bash", str(SCRIPT), "start"], check=True, timeout=120, capture_output=True)
        out, err = proc.communicate(timeout=180)
        assert proc.returncode in (0, 1)  # survived: a clear outcome, not a crash
        assert "Traceback" not in err, err[-3000:]
        for _ in range(2):
            again = sync(remote, state)
            if again.returncode == 0:
                break
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        running = client.containers.list(filters={"label": [f"io.gitops.project={project_name}",
                                                            "io.gitops.managed=true"]})
        assert len(running) == 2 and all("V=2" in c.attrs["Config"]["Env"] for c in running)
        every = client.containers.list(all=True, filters={"label": [f"io.gitops.project={project_name}",
                                                                    "io.gitops.managed=true"]})
        assert len(every) == 2  # nothing left over from the interrupted pass
        planned = subprocess.run([sys.executable, "-m", "gitops", "plan", "--repo", str(remote.bare), "--state-dir",
                                  str(state), "--detailed-exitcode"], capture_output=True, text=True, timeout=120)
        assert planned.returncode == 0, planned.stdout
    finally:
        purge_project(client, project_name)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 512 KiB tmpfs for the state directory."""
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_under_the_state_directory(tmp_path, small_disk, docker_client, project_name) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "project.yaml").write_text(f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project_name}}}\n")
    (folder / "web.yaml").write_text(service("web", "init: true"))
    store = StateStore(small_disk)
    reconciler = Reconciler(LocalSource(folder), store)
    assert reconciler.run_pass("first").outcome == "converged"
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk to the last byte
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    before = [c.id for c in docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})]
    (folder / "web.yaml").write_text(service("web", "init: true", image="local/web:2"))
    full = reconciler.run_pass("disk full")
    assert full.outcome == "error"
    assert "disk is full" in full.message or "No space left" in full.message
    # nothing was applied without a record of it, and the store is intact
    after = [c.id for c in docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})]
    assert after == before
    with sqlite3.connect(f"file:{small_disk / 'state.db'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    os.remove(filler)  # space is back
    recovered = reconciler.run_pass("space back")
    assert recovered.outcome == "converged", recovered.message
    outcomes = [p.outcome for p in store.passes(limit=10)]
    assert outcomes[0] == "converged" and "converged" in outcomes[1:]
    assert store.check() == "ok"
