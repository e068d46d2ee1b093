"""`gitops daemon --local DIR`: edits make no commit, so a fix to a failed rollout must not wait for the backoff
of "the same revision, failed before"."""

from __future__ import annotations

import contextlib
from pathlib import Path

from gitops.core.model import ephemeral_key
from gitops.engine.reconciler import LocalSource, Reconciler, folder_mark
from gitops.state import StateStore
from gitops.testing import FakeHost
from tests.conftest import service

CHECK = "healthcheck: {exec: ['true'], interval: 200ms}"


def test_a_fix_in_a_local_folder_is_applied_at_once_after_a_failed_rollout(repo, tmp_path: Path) -> None:
    root, host = repo({"web.yaml": service("web", CHECK)}), FakeHost()
    reconciler = Reconciler(LocalSource(root), StateStore(tmp_path / "state"), key=ephemeral_key(),
                            connect=lambda desired: contextlib.nullcontext({"local": host}))
    assert reconciler.run_pass("startup").outcome == "converged"
    host.health["local/web:2"] = "unhealthy"
    (root / "web.yaml").write_text(service("web", CHECK, image="local/web:2"))
    broken = reconciler.run_pass("file change")
    assert broken.outcome == "failed" and broken.revision.startswith("local+")
    (root / "web.yaml").write_text(service("web", CHECK + "\nenv: {FIXED: 'yes'}", image="local/web:1"))
    fixed = reconciler.run_pass("file change")
    assert fixed.outcome == "converged", fixed.message
    assert fixed.revision != broken.revision


def test_the_folder_mark_changes_with_any_file_but_not_with_hidden_ones(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x")
    first = folder_mark(tmp_path)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    assert folder_mark(tmp_path) == first
    (tmp_path / "b.env").write_text("y")
    assert folder_mark(tmp_path) != first
