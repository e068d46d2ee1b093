"""A daemon that starts while HEAD is a commit that failed (backed off) still shows what the hosts run: its first
passes skip the commit, but status and the page are not empty (a review found them empty for up to an hour)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from gitops.core.model import ephemeral_key
from gitops.daemon.status import status_document
from gitops.engine.reconciler import Reconciler
from gitops.state import StateStore
from gitops.testing import Commits, FakeHost
from tests.conftest import service

CHECK = "healthcheck: {exec: ['true'], interval: 200ms}"


def _daemon(commits: Commits, host: FakeHost, state: Path, key) -> Reconciler:
    return Reconciler(commits, StateStore(state), key=key,
                      connect=lambda desired: contextlib.nullcontext({"local": host}))


def test_after_a_restart_on_a_failed_commit_status_shows_the_services_and_why(repo, tmp_path: Path) -> None:
    commits, host, key = Commits(), FakeHost(), ephemeral_key()
    commits.add("r1", repo({"web.yaml": service("web", CHECK)}))
    first = _daemon(commits, host, tmp_path / "state", key)
    assert first.run_pass("startup").outcome == "converged"
    commits.add("r2", repo({"web.yaml": service("web", CHECK, image="local/web:2")}))
    host.health["local/web:2"] = "unhealthy"
    assert first.run_pass("poll").outcome == "failed"

    changes = [c for c in host.calls if c[0] in ("create", "start", "stop", "remove")]
    restarted = _daemon(commits, host, tmp_path / "state", key)
    skipped = restarted.run_pass("startup")
    assert skipped.outcome == "skipped"
    doc = status_document(restarted.state, restarted.last_desired, restarted.last_observed)
    (web,) = doc["services"]
    assert doc["project"] == "test" and doc["hosts"] == [{"name": "local", "reachable": True, "error": ""}]
    assert (web["replicas"]["running"], web["last_outcome"]) == (1, "rolled_back")
    assert web["reason"].startswith("web[0] on local: health check failed")
    assert [c for c in host.calls if c[0] in ("create", "start", "stop", "remove")] == changes  # looked only
