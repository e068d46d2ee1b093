"""How the executor schedules work, on a fake host: waiting (a stop's grace period) holds no slot, and
a service never has more than ``parallelism`` replicas in transition (SECURITY.md I2)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from gitops.core.model import DesiredState, ephemeral_key
from gitops.core.observed import converged
from gitops.core.planner import plan
from gitops.engine.executor import ApplyResult, Executor
from gitops.manifests.load import load_repo
from gitops.testing import FakeHost, host_with
from tests.conftest import service


@pytest.fixture
def desired_of(repo) -> Callable[..., DesiredState]:
    key = ephemeral_key()

    def load(bodies: dict[str, str], image: str = "local/web:1") -> DesiredState:
        files = {f"{name}.yaml": service(name, body, image=image) for name, body in bodies.items()}
        outcome = load_repo(repo(files), revision="r1", key=key)
        assert outcome.desired is not None, outcome.errors
        return outcome.desired

    return load


def _apply_in_background(new: DesiredState, old: DesiredState, host: FakeHost,
                         concurrency: int) -> tuple[threading.Thread, list[ApplyResult]]:
    out: list[ApplyResult] = []
    thread = threading.Thread(target=lambda: out.append(
        Executor(new, {"local": host}, concurrency=concurrency).apply(plan(new, converged(old)))))  # type: ignore[dict-item]
    thread.start()
    return thread, out


def test_a_stop_in_its_grace_period_holds_up_no_other_service(desired_of) -> None:
    """With one Docker call at a time (concurrency 1), an old container that takes its whole grace
    period to stop must not keep the other service from being updated meanwhile."""
    bodies = {"a": "update: {order: start-first}", "b": "update: {order: start-first}"}
    old = desired_of(bodies)
    host = host_with(old)
    release, asked = threading.Event(), threading.Event()

    def slow_stop(ref: str) -> None:
        asked.set()
        release.wait(10)

    host.stopping = slow_stop
    new = desired_of(bodies, image="local/web:2")
    thread, out = _apply_in_background(new, old, host, concurrency=1)
    try:
        assert asked.wait(5)
        both_started = threading.Event()

        def watch() -> None:
            while not release.is_set():
                with host.lock:
                    if {("start", "new-a-0"), ("start", "new-b-0")} <= set(host.calls):
                        both_started.set()
                        return
                release.wait(0.01)

        threading.Thread(target=watch, daemon=True).start()
        assert both_started.wait(5), host.calls
    finally:
        release.set()
        thread.join(10)
    assert out and out[0].ok, out
    assert sorted(host.containers) == ["new-a-0", "new-b-0"]


@pytest.mark.parametrize("parallelism", [1, 2])
def test_slow_stops_never_put_more_than_parallelism_extra_containers_running(desired_of, parallelism: int) -> None:
    """start-first: a replica's surge slot is free again only once its old container has exited, not
    when it is asked to stop, so at most replicas + parallelism containers run (invariant I2)."""
    body = f"replicas: 4\nupdate: {{order: start-first, parallelism: {parallelism}}}"
    old = desired_of({"web": body})
    host = host_with(old)
    # a stop that takes a while, the way a container that ignores SIGTERM does: the next replica must wait
    host.stopping = lambda ref: threading.Event().wait(0.05)
    new = desired_of({"web": body}, image="local/web:2")
    result = Executor(new, {"local": host}).apply(plan(new, converged(old)))  # type: ignore[dict-item]
    assert result.ok, result
    assert host.most_running["web"] == 4 + parallelism
    assert sorted(host.containers) == [f"new-web-{i}" for i in range(4)]
