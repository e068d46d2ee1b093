"""The executor on a fake host: any exception mid-update rolls back, and whatever a plan names, only
the project's own containers are stopped, started or removed (SECURITY.md I1 and item 14)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from gitops.core.model import LABEL_MANAGED, LABEL_PROJECT, LABEL_SERVICE, DesiredState, ephemeral_key
from gitops.core.observed import converged
from gitops.core.plan import ContainerRef, Op, Plan, RemoveArgs, Step
from gitops.core.planner import plan
from gitops.engine.executor import Executor
from gitops.errors import HostError
from gitops.manifests.load import load_repo
from gitops.testing import host_with
from tests.conftest import service


@pytest.fixture
def desired_of(repo) -> Callable[..., DesiredState]:
    key = ephemeral_key()

    def load(body: str, image: str = "local/web:1") -> DesiredState:
        outcome = load_repo(repo({"web.yaml": service("web", body, image=image)}), revision="r1", key=key)
        assert outcome.desired is not None, outcome.errors
        return outcome.desired

    return load


@pytest.mark.parametrize("error", [ValueError("cannot convert float NaN to integer"), KeyError("bug"),
                                   HostError("local", "create container: boom")])
def test_stop_first_create_raising_starts_the_old_container_again(desired_of, error: Exception) -> None:
    old = desired_of("update: {order: stop-first}")
    host = host_with(old)
    old_id = next(iter(host.containers))
    new = desired_of("update: {order: stop-first}", image="local/web:2")
    host.fail_create = error
    result = Executor(new, {"local": host}).apply(plan(new, converged(old)))  # type: ignore[dict-item]
    why = str(error) if isinstance(error, HostError) else f"{type(error).__name__}: {error}"
    assert result.services["web"].status == "rolled_back"
    assert result.services["web"].message == f"web[0] on local: {why}; rolled back to the previous version on every host"
    assert host.calls == [("pull", "local/web:2"), ("stop", old_id), ("start", old_id)]
    assert host.containers[old_id]["state"] == "running"


def test_a_failed_put_back_is_reported_with_the_failure(desired_of) -> None:
    old = desired_of("update: {order: stop-first}")
    host = host_with(old)
    old_id = next(iter(host.containers))
    new = desired_of("update: {order: stop-first}", image="local/web:2")
    host.fail_create = RuntimeError("create broke")

    def no_start(ref: str) -> None:
        raise OSError("engine went away")

    host.start = no_start  # type: ignore[method-assign]
    result = Executor(new, {"local": host}).apply(plan(new, converged(old)))  # type: ignore[dict-item]
    assert result.services["web"].message == (
        "web[0] on local: RuntimeError: create broke; putting web[0] back failed: OSError: engine went away; "
        "rolled back to the previous version on every host")
    assert host.containers[old_id]["state"] == "exited"


def _hostile(project: str, *ops: Op, action: str = "remove") -> Plan:
    return Plan(project, "r1", (Step("service/web/0@local/remove/x", "local", "service", "web", action,  # type: ignore[arg-type]
                                     "hostile", slot=0, ops=ops),))


DECOYS = {
    "unlabelled": {},
    "other project": {LABEL_MANAGED: "true", LABEL_PROJECT: "other", LABEL_SERVICE: "web"},
    "not managed": {LABEL_PROJECT: "test", LABEL_SERVICE: "web"},
    "other service": {LABEL_MANAGED: "true", LABEL_PROJECT: "test", LABEL_SERVICE: "db"},
}


@pytest.mark.parametrize("labels", DECOYS.values(), ids=DECOYS.keys())
def test_the_executor_never_stops_or_removes_a_container_that_is_not_its_own(desired_of, labels) -> None:
    desired = desired_of("")
    host = host_with(desired)
    host.add("decoy", labels)
    the_plan = _hostile(desired.project.name, Op("stop", "decoy", ContainerRef("decoy")), Op("remove", "decoy", RemoveArgs("decoy")))
    result = Executor(desired, {"local": host}).apply(the_plan)  # type: ignore[dict-item]
    assert result.steps["service/web/0@local/remove/x"].message == (
        "local: refusing to stop container decoy: it is not a container of service web of project test "
        "(labels io.gitops.managed=true, io.gitops.project=test, io.gitops.service=web); gitops never "
        "touches a container it does not manage")
    assert host.calls == [] and host.containers["decoy"]["state"] == "running"


def test_the_executor_never_starts_or_removes_a_decoy_named_by_an_update(desired_of) -> None:
    """An edited update step: adopt a decoy (so that undo would remove it), start a stopped decoy."""
    desired = desired_of("")
    host = host_with(desired)
    host.add("decoy", {}, state="exited")
    step = Step("service/web/0@local", "local", "service", "web", "update", "hostile", slot=0,
                ops=(Op("adopt", "decoy", ContainerRef("decoy"), undo="remove"), Op("start", "decoy", ContainerRef("decoy"))))
    result = Executor(desired, {"local": host}).apply(dataclasses.replace(_hostile("test"), steps=(step,)))  # type: ignore[dict-item]
    assert result.services["web"].message.startswith(
        "web[0] on local: local: refusing to start container decoy: it is not a container of service web")
    assert result.services["web"].message.endswith(
        "; putting web[0] back failed: local: refusing to remove container decoy: it is not a container of "
        "service web of project test (labels io.gitops.managed=true, io.gitops.project=test, io.gitops.service=web); "
        "gitops never touches a container it does not manage; rolled back to the previous version on every host")
    assert host.calls == [] and host.containers["decoy"]["state"] == "exited"


def test_the_executor_still_removes_its_own_containers(desired_of) -> None:
    desired = desired_of("")
    host = host_with(desired)
    own = next(iter(host.containers))
    result = Executor(desired, {"local": host}).apply(  # type: ignore[dict-item]
        _hostile("test", Op("stop", "web", ContainerRef(own)), Op("remove", "web", RemoveArgs(own))))
    assert result.ok and host.calls == [("stop", own), ("remove", own)]


def test_a_host_error_while_the_pause_path_removes_old_containers_is_reported(desired_of) -> None:
    """failureAction pause keeps the replicas already updated and removes their old containers, the
    same way a converged update does: a host error there is reported, never raised (issue item 12)."""
    body = "replicas: 2\nupdate: {order: start-first, parallelism: 1, failureAction: pause}"
    old = desired_of(body)
    host = host_with(old)
    old_ids = {c.slot: c.id for c in converged(old).hosts[0].containers}
    new = desired_of(body, image="local/web:2")
    host.fail_create, host.fail_create_slots = HostError("local", "create container: no space left"), {1}
    host.fail_remove[old_ids[0]] = HostError("local", f"remove {old_ids[0]}: engine went away")
    result = Executor(new, {"local": host}).apply(plan(new, converged(old)))  # type: ignore[dict-item]
    assert result.services["web"].status == "paused"
    assert result.services["web"].message == (
        "web[1] on local: local: create container: no space left; paused (failureAction: pause)")
    assert result.errors == [f"service/web/0@local: could not remove old container: local: remove {old_ids[0]}: "
                             "engine went away"]
    assert result.steps["service/web/0@local"].status == "done"
    assert result.steps["service/web/1@local"].status == "failed"
    assert host.containers["new-web-0"]["state"] == "running" and host.containers[old_ids[1]]["state"] == "running"
