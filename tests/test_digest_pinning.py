"""Digest pinning (resolve: digest) in the engine's logic, on gitops.testing.FakeHost and a registry stand-in:
a moved tag is a rollout, a registry that does not answer rolls nothing, history keeps each digest, and a
rollback runs the exact digest it ran before. The same on a real registry and Docker: test_registry_docker."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from gitops.core.model import ObservedState, ephemeral_key
from gitops.core.plan import FieldChange
from gitops.engine.images import DigestUnavailable, pin_and_observe
from gitops.engine.observe import observe_all
from gitops.engine.reconciler import Reconciler
from gitops.errors import GitopsError
from gitops.manifests.load import load_repo
from gitops.state import StateStore
from gitops.testing import Commits, FakeHost
from tests.conftest import service

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64
PINNED = "resolve: digest\nhealthcheck: {exec: ['true'], interval: 200ms}"


class Registry:
    """What gitops.hosts.registry answers, as a dict: image -> digest, or the error it raises."""

    def __init__(self, tags: dict[str, str]) -> None:
        self.tags: dict[str, str | GitopsError] = dict(tags)
        self.asked: list[str] = []

    def resolve(self, image: str) -> str:
        self.asked.append(image)
        found = self.tags.get(image)
        if isinstance(found, GitopsError):
            raise found
        if found is None:
            raise GitopsError(f"registry: {image}: no such tag")
        return found


@pytest.fixture
def daemon(repo, tmp_path: Path):
    commits, host, registry = Commits(), FakeHost(), Registry({"local/app:1": A})
    commits.add("r1", repo({"app.yaml": service("app", PINNED, image="local/app:1")}))
    reconciler = Reconciler(commits, StateStore(tmp_path / "state"), key=ephemeral_key(),
                            connect=lambda desired: contextlib.nullcontext({"local": host}),
                            resolver_for=lambda desired: registry)
    return reconciler, host, registry, commits


def _images(host: FakeHost) -> list[str]:
    return sorted(c["image"] for c in host.containers.values() if c["state"] == "running")


def test_a_moved_tag_is_rolled_out_from_the_exact_digest_and_history_keeps_each(daemon) -> None:
    reconciler, host, registry, _ = daemon
    first = reconciler.run_pass("test")
    assert first.outcome == "converged"
    assert _images(host) == [f"local/app@{A}"]
    assert reconciler.run_pass("test").outcome == "no_changes"  # the tag still names A

    registry.tags["local/app:1"] = B
    moved = reconciler.run_pass("test")
    assert moved.outcome == "converged" and _images(host) == [f"local/app@{B}"]
    assert moved.plan is not None
    (step,) = moved.plan.changes
    assert [c.describe() for c in step.changes] == ["image local/app:1 (sha256:aaaaaaaaaaaa.. -> sha256:bbbbbbbbbbbb..)"]
    plan_json = json.loads(moved.plan.to_json())
    assert plan_json["steps"][0]["changes"][0] == {"path": "image", "old": f"local/app:1@{A}",
                                                  "new": f"local/app:1@{B}", "secret": False}
    images = [r.images for r in reconciler.state.passes(limit=5)]
    assert images[0] == {"app": B} and images[-1] == {"app": A}


def test_an_unhealthy_new_digest_is_rolled_back_to_the_old_containers(daemon) -> None:
    reconciler, host, registry, _ = daemon
    assert reconciler.run_pass("test").outcome == "converged"
    registry.tags["local/app:1"] = B
    host.health[f"local/app@{B}"] = "unhealthy"
    failed = reconciler.run_pass("test")
    assert failed.outcome == "failed" and failed.services == {"app": "rolled_back"}
    assert _images(host) == [f"local/app@{A}"]


def test_a_registry_that_does_not_answer_rolls_nothing_and_says_so(daemon) -> None:
    reconciler, host, registry, _ = daemon
    assert reconciler.run_pass("test").outcome == "converged"
    before = dict(host.containers)
    registry.tags["local/app:1"] = GitopsError("registry local: could not be reached; will retry", temporary=True)
    quiet = reconciler.run_pass("test")
    assert quiet.outcome == "no_changes" and host.containers == before
    assert quiet.plan is not None
    assert quiet.plan.warnings == (f"app: registry local: could not be reached; will retry; it keeps the digest "
                                   f"its containers run, {A[:19]}..",)
    from gitops.daemon.loop import Daemon

    status, pending = Daemon(reconciler).status_and_pending()  # what /status and the page show meanwhile
    assert status["warnings"] == list(quiet.plan.warnings) and pending is not None
    assert pending.warnings == quiet.plan.warnings


def test_a_first_deploy_whose_tag_cannot_be_resolved_fails_the_pass_and_changes_nothing(daemon) -> None:
    reconciler, host, registry, _ = daemon
    registry.tags["local/app:1"] = GitopsError("registry local: could not be reached; will retry", temporary=True)
    failed = reconciler.run_pass("test")
    assert failed.outcome == "failed" and host.containers == {}
    assert failed.message == "cannot resolve image digests: registry local: could not be reached; will retry"
    assert reconciler.state.failed("r1") is None  # temporary: the commit is not held against
    registry.tags["local/app:1"] = GitopsError("registry local: local/app:1: no such tag")
    assert reconciler.run_pass("test").outcome == "failed"
    assert reconciler.state.failed("r1") is not None  # a tag that does not exist is the commit's to fix


def test_rollback_at_the_same_revision_runs_the_digest_the_service_ran_before_and_holds_it(daemon) -> None:
    reconciler, host, registry, _ = daemon
    assert reconciler.run_pass("test").outcome == "converged"
    registry.tags["local/app:1"] = B
    assert reconciler.run_pass("test").outcome == "converged"  # B passes its gates, but is bad

    target, result = reconciler.rollback("app")
    assert (target.revision, target.digest) == ("r1", A)
    assert target.sentence("app") == (f"app: rolling back to r1 (image {A[:19]}..), the last converged revision "
                                      f"whose spec of app differs from the current one (skipped 1 revision with "
                                      f"the same spec: r1 (image {B[:19]}..))")
    assert result.outcome == "converged" and _images(host) == [f"local/app@{A}"]

    registry.tags["local/app:1"] = C  # the tag moves on: the pin holds the service where it was put
    assert reconciler.run_pass("test").outcome == "no_changes"
    assert _images(host) == [f"local/app@{A}"]
    assert reconciler.state.passes(limit=1)[0].images == {"app": A}


def test_a_commit_that_changes_the_service_releases_the_pin_and_resolves_the_tag_again(daemon, repo) -> None:
    reconciler, host, registry, commits = daemon
    reconciler.run_pass("test")
    registry.tags["local/app:1"] = B
    reconciler.run_pass("test")
    reconciler.rollback("app")
    commits.add("r2", repo({"app.yaml": service("app", PINNED + "\nenv: {MODE: x}", image="local/app:1")}))
    assert reconciler.run_pass("test").outcome == "converged"
    assert _images(host) == [f"local/app@{B}"]


def test_services_that_do_not_ask_are_never_looked_up_and_keep_their_spec_hash(repo) -> None:
    desired = load_repo(repo({"web.yaml": service("web"), "app.yaml": service("app", "pullPolicy: always",
                                                                              image="local/app:1"),
                              "fixed.yaml": service("fixed", "pullPolicy: always", image=f"local/app@{C}")}),
                        key=ephemeral_key()).desired
    assert desired is not None
    registry = Registry({"local/app:1": A})
    pinned, observed, warnings = pin_and_observe(desired, registry, lambda d: ObservedState())
    assert registry.asked == ["local/app:1"]  # pullPolicy always asks; an image named by digest never does
    assert {s.name: s.run_image for s in pinned.services} == {
        "web": "local/web:1", "app": f"local/app@{A}", "fixed": f"local/app@{C}"}
    assert pinned.service("web").spec_hash == desired.service("web").spec_hash
    assert pinned.service("app").spec_hash != desired.service("app").spec_hash
    assert warnings == ()


def test_one_lookup_per_image_and_every_failure_named_once(repo) -> None:
    files = {f"s{i}.yaml": service(f"s{i}", "resolve: digest", image="local/app:1") for i in range(5)}
    files["t.yaml"] = service("t", "resolve: digest", image="local/other:1")
    desired = load_repo(repo(files), key=ephemeral_key()).desired
    assert desired is not None
    registry = Registry({"local/app:1": GitopsError("registry local: refused the credentials")})
    with pytest.raises(DigestUnavailable) as caught:
        pin_and_observe(desired, registry, lambda d: ObservedState())
    assert sorted(registry.asked) == ["local/app:1", "local/other:1"]
    assert str(caught.value) == ("cannot resolve image digests: registry local: refused the credentials; "
                                 "registry: local/other:1: no such tag")
    assert not caught.value.temporary


def test_a_tag_change_and_a_digest_are_both_shown() -> None:
    change = FieldChange("image", f"local/app:1@{A}", f"local/app:2@{B}")
    assert change.describe() == "image: local/app:1 sha256:aaaaaaaaaaaa.. -> local/app:2 sha256:bbbbbbbbbbbb.."
    assert FieldChange("image", "local/app:1", f"local/app:1@{B}").describe() == (
        "image: local/app:1 -> local/app:1 sha256:bbbbbbbbbbbb..")


def test_a_running_digest_stands_in_only_for_the_same_tag(repo) -> None:
    host = FakeHost()
    desired = load_repo(repo({"app.yaml": service("app", "resolve: digest", image="local/app:1")}),
                        key=ephemeral_key()).desired
    assert desired is not None
    pinned, _, _ = pin_and_observe(desired, Registry({"local/app:1": A}), lambda d: ObservedState())
    host.create_container("test", pinned.service("app"), 0, "r1")
    moved = load_repo(repo({"app.yaml": service("app", "resolve: digest", image="local/app:2")}),
                      key=ephemeral_key()).desired
    assert moved is not None
    down = Registry({"local/app:2": GitopsError("registry local: could not be reached", temporary=True)})
    with pytest.raises(DigestUnavailable):  # app:1's digest cannot stand in for app:2
        pin_and_observe(moved, down, lambda d: observe_all(d, {"local": host}))  # type: ignore[dict-item]


def test_a_pinned_state_planned_against_itself_has_no_changes(repo) -> None:
    """plan --base compares two desired states with no host: the imagined containers run the pinned digest."""
    from gitops.core.observed import converged
    from gitops.core.planner import plan

    desired = load_repo(repo({"app.yaml": service("app", "resolve: digest\nreplicas: 2", image="local/app:1")}),
                        key=ephemeral_key()).desired
    assert desired is not None
    pinned, _, _ = pin_and_observe(desired, Registry({"local/app:1": A}), lambda d: ObservedState())
    assert not plan(pinned, converged(pinned)).has_changes
