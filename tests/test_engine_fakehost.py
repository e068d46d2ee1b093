"""The engine's logic on gitops.testing.FakeHost: rollback across hosts, dependency waves, prune order,
crash-loop backoff and repairs that must not fail a commit, through the same Executor and Reconciler the
daemon uses. Each behaviour is also proven on Docker (test_engine_docker, test_drift_docker,
test_loop_docker); here it is fast and every call is visible."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from pathlib import Path

import pytest

from gitops.core.model import DesiredState, ephemeral_key
from gitops.core.plan import Finding
from gitops.core.planner import PlanOptions, plan
from gitops.core.ports import Host
from gitops.engine.executor import Executor
from gitops.engine.observe import observe_all
from gitops.engine.reconciler import LocalSource, Reconciler
from gitops.errors import NameConflict, NotFound
from gitops.manifests.load import load_repo
from gitops.state import StateStore
from gitops.testing import FakeHost, host_with
from tests.conftest import service

HOSTS = ("apiVersion: gitops/v1\nkind: Host\nmetadata: {name: h1}\nspec: {url: 'unix:///run/h1.sock'}\n---\n"
         "apiVersion: gitops/v1\nkind: Host\nmetadata: {name: h2}\nspec: {url: 'unix:///run/h2.sock'}\n")
EXEC_CHECK = "healthcheck: {exec: ['true'], interval: 200ms}"


@pytest.fixture
def desired_of(repo) -> Callable[[dict[str, str]], DesiredState]:
    key = ephemeral_key()

    def load(files: dict[str, str]) -> DesiredState:
        outcome = load_repo(repo(files), revision="r1", key=key)
        assert outcome.desired is not None, outcome.errors
        return outcome.desired

    return load


def _apply(desired: DesiredState, hosts: dict[str, FakeHost], **options: bool):
    observed = observe_all(desired, hosts)  # type: ignore[arg-type]
    return Executor(desired, hosts).apply(plan(desired, observed, options=PlanOptions(**options)))  # type: ignore[arg-type]


def test_the_fake_host_has_every_call_of_the_host_protocol_with_the_same_parameters() -> None:
    wanted = {name: member for name, member in vars(Host).items() if callable(member) and not name.startswith("_")}
    assert len(wanted) == 18
    for name, member in wanted.items():
        ours = getattr(FakeHost, name)
        assert list(inspect.signature(ours).parameters) == list(inspect.signature(member).parameters), name
    assert isinstance(FakeHost().name, str)


def test_the_fake_host_answers_as_docker_does(desired_of) -> None:
    """Adoption of its own half-made container, NameConflict for a stranger's, NotFound for an unknown one."""
    desired = desired_of({"web.yaml": service("web")})
    svc = desired.service("web")
    host = FakeHost()
    first = host.create_container("test", svc, 0, "r1")
    assert not first.adopted
    assert host.create_container("test", svc, 0, "r1") == first.__class__(first.id, adopted=True)
    stranger = FakeHost()
    stranger.add("x", {}, name=host.containers[first.id]["name"])
    with pytest.raises(NameConflict):
        stranger.create_container("test", svc, 0, "r1")
    with pytest.raises(NotFound):
        host.inspect("nope")
    host.stop("nope", timeout=1)  # gone is done
    host.remove("nope")
    (seen,) = host.observe("test").containers
    assert (seen.service, seen.slot, seen.spec_hash, seen.state) == ("web", 0, svc.spec_hash, "created")
    assert host.observe("other").containers == ()


def test_a_failed_health_gate_on_one_host_rolls_back_the_replica_already_updated_on_the_other(desired_of) -> None:
    body = f"replicas: 2\nplacement: {{hosts: [h1, h2]}}\n{EXEC_CHECK}\nupdate: {{order: start-first, parallelism: 1}}"
    old = desired_of({"h.yaml": HOSTS, "web.yaml": service("web", body)})
    hosts = {"h1": host_with(old, "h1"), "h2": host_with(old, "h2")}
    before = {name: sorted(h.containers) for name, h in hosts.items()}
    new = desired_of({"h.yaml": HOSTS, "web.yaml": service("web", body, image="local/web:2")})
    hosts["h2"].health["local/web:2"] = "unhealthy"
    result = _apply(new, hosts)
    assert result.services["web"].status == "rolled_back", result
    assert result.services["web"].message.startswith("web[1] on h2: health check failed")
    for name, host in hosts.items():
        assert sorted(host.containers) == before[name], name  # the new containers are gone again
        assert all(c["state"] == "running" for c in host.containers.values()), name
    # h1's replica had been updated and its old container stopped; the rollback started it again
    (old_h1,) = before["h1"]
    h1_calls = hosts["h1"].calls
    assert ("create", "new-web-0") in h1_calls and ("remove", "new-web-0") in h1_calls
    assert h1_calls.index(("stop", old_h1)) < h1_calls.index(("start", old_h1))


def test_a_service_waits_for_the_health_of_what_it_depends_on(desired_of) -> None:
    desired = desired_of({"db.yaml": service("db", EXEC_CHECK),
                          "web.yaml": service("web", "dependsOn: [{service: db, condition: healthy}]")})
    host = FakeHost()
    assert _apply(desired, {"local": host}).ok
    assert host.calls.index(("start", "new-db-0")) < host.calls.index(("create", "new-web-0"))
    assert {c["state"] for c in host.containers.values()} == {"running"}


def test_a_service_is_not_created_when_what_it_depends_on_never_becomes_healthy(desired_of) -> None:
    desired = desired_of({"db.yaml": service("db", EXEC_CHECK),
                          "web.yaml": service("web", "dependsOn: [{service: db, condition: healthy}]")})
    host = FakeHost()
    host.health["db"] = "unhealthy"
    result = _apply(desired, {"local": host})
    assert result.services["db"].status == "failed"
    assert result.services["web"].status == "skipped"
    assert not any(ref.startswith("new-web") for _, ref in host.calls)


PRUNING = "apiVersion: gitops/v1\nkind: Project\nmetadata: {name: test}\nspec: {prune: true}\n"


def test_undeclared_services_are_removed_dependents_first(desired_of) -> None:
    shop = {"project.yaml": PRUNING, "db.yaml": service("db"), "api.yaml": service("api", "dependsOn: [db]"),
            "web.yaml": service("web", "dependsOn: [api]")}
    old = desired_of(shop)
    host = host_with(old)
    ids = {c["labels"]["io.gitops.service"]: cid for cid, c in host.containers.items()}
    new = desired_of({"project.yaml": PRUNING, "other.yaml": service("other")})
    assert _apply(new, {"local": host}).ok
    removed = [ref for call, ref in host.calls if call == "remove"]
    assert removed == [ids["web"], ids["api"], ids["db"]]
    assert [c["labels"]["io.gitops.service"] for c in host.containers.values()] == ["other"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def daemon_on(repo, tmp_path: Path):
    """A Reconciler (what `gitops daemon` runs each pass) on a folder of manifests and one fake host."""

    def make(files: dict[str, str]) -> tuple[Reconciler, FakeHost, Clock]:
        host, clock = FakeHost(), Clock()
        reconciler = Reconciler(LocalSource(repo(files)), StateStore(tmp_path / "state"), clock=clock,
                                connect=lambda desired: contextlib.nullcontext({"local": host}))
        return reconciler, host, clock

    return make


def _starts(host: FakeHost, cid: str) -> int:
    return host.calls.count(("start", cid))


def test_a_container_that_keeps_dying_is_retried_with_a_growing_backoff(daemon_on) -> None:
    reconciler, host, clock = daemon_on({"web.yaml": service("web")})
    assert reconciler.run_pass("test").outcome == "converged"
    (cid,) = host.containers
    host.crash.add("web")
    host.containers[cid].update(state="exited", exit_code=1)  # it died by itself

    assert reconciler.run_pass("test").outcome == "converged"  # started again: a drift repair
    assert _starts(host, cid) == 2 and host.containers[cid]["state"] == "exited"  # and it died again

    for wait, starts in [(5, 3), (10, 4), (20, 5)]:
        clock.now += 1
        held = reconciler.run_pass("test")
        assert _starts(host, cid) == starts - 1, "held back: not started again"
        assert held.crash_looping == 1 and held.plan is not None
        (step,) = held.plan.steps
        assert step.finding is Finding.CRASH_LOOPING
        assert step.reason.endswith(f"died each time; next try in {wait - 1}s")
        assert reconciler.heal.retry_at == pytest.approx(clock.now + wait - 1)  # the daemon wakes up then
        clock.now += wait - 1
        reconciler.run_pass("test")
        assert _starts(host, cid) == starts, f"retried after {wait}s"


def test_a_container_stopped_by_hand_is_started_at_once_not_held_as_crash_looping(daemon_on) -> None:
    reconciler, host, clock = daemon_on({"web.yaml": service("web")})
    reconciler.run_pass("test")
    (cid,) = host.containers
    for _ in range(3):
        host.containers[cid].update(state="exited", exit_code=143)  # `docker stop` by someone
        clock.now += 1
        assert reconciler.run_pass("test").outcome == "converged"
        assert host.containers[cid]["state"] == "running"
    assert _starts(host, cid) == 4


@pytest.mark.parametrize("by_hand", ["stopped", "removed"])
def test_a_repair_that_fails_its_health_gate_never_marks_the_commit_failed(daemon_on, by_hand: str) -> None:
    """Day-2 bug 7: the commit converged before; a failed repair of it is the container's trouble, not the
    commit's: it is not recorded as failed, and the next pass is not skipped with the revision's backoff."""
    reconciler, host, clock = daemon_on({"web.yaml": service("web", EXEC_CHECK)})
    assert reconciler.run_pass("test").outcome == "converged"
    (cid,) = host.containers
    if by_hand == "stopped":
        host.containers[cid].update(state="exited", exit_code=143)
    else:
        del host.containers[cid]
    host.health["web"] = "unhealthy"
    failed = reconciler.run_pass("test")
    assert failed.outcome == "failed" and "health check failed" in failed.message
    if by_hand == "stopped":
        assert failed.message.endswith("; a repair, not a rollout: the container is left as the repair made it")
    assert reconciler.state.failed(failed.revision) is None
    assert [c["state"] for c in host.containers.values()] == ["running"]
    clock.now += 1
    assert reconciler.run_pass("test").outcome != "skipped"


def test_a_new_spec_that_fails_its_health_gate_marks_the_commit_failed(daemon_on, repo) -> None:
    """The other side of the rule above: a rollout of a spec that never converged is the commit's fault."""
    reconciler, host, clock = daemon_on({"web.yaml": service("web", EXEC_CHECK)})
    host.health["web"] = "unhealthy"
    failed = reconciler.run_pass("test")
    assert failed.outcome == "failed"
    assert reconciler.state.failed(failed.revision) is not None
    clock.now += 1
    assert reconciler.run_pass("test").outcome == "skipped"


def test_an_unreachable_host_fails_the_pass_but_not_the_commit(daemon_on) -> None:
    reconciler, host, clock = daemon_on({"web.yaml": service("web")})
    host.unreachable = True
    result = reconciler.run_pass("test")
    assert result.outcome == "failed" and "unreachable" in result.message
    assert reconciler.state.failed(result.revision) is None
    host.unreachable = False
    clock.now += 1
    assert reconciler.run_pass("test").outcome == "converged"
