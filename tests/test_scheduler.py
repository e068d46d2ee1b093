"""The daemon's trigger queue: requests merge, timers come due as requests, webhooks coalesce by head."""

from __future__ import annotations

import threading
import time

from gitops.daemon.loop import HEAL_RETRY, Batch, Daemon, Scheduler
from gitops.engine.heal import SelfHeal
from gitops.engine.reconciler import PassResult


def test_requests_merge_into_one_batch_with_what_they_announce() -> None:
    s = Scheduler()
    s.request("webhook:github", head="a" * 40)
    s.request("webhook:github", head="a" * 40)
    s.request("webhook:gitea", head="b" * 40)
    batch = s.take(0)
    assert batch == Batch(("webhook:github", "webhook:gitea"), False, 3, frozenset({"a" * 40, "b" * 40}), False)
    assert s.take(0) == Batch(("poll",))


def test_a_request_without_a_head_is_never_coalesced_away() -> None:
    s = Scheduler()
    s.request("webhook:github", head="a" * 40)
    s.request("docker event: die web on local")
    batch = s.take(0)
    assert batch is not None and batch.headless and not batch.asks_only_for("a" * 40)
    s.request("webhook:github", head="a" * 40, force=True)
    forced = s.take(0)
    assert forced is not None and not forced.asks_only_for("a" * 40)


def test_a_timer_comes_due_as_a_request_long_before_the_poll() -> None:
    s = Scheduler()
    s.schedule(HEAL_RETRY, time.monotonic() + 0.2)
    started = time.monotonic()
    batch = s.take(3600)
    assert batch is not None and batch.triggers == (HEAL_RETRY,) and time.monotonic() - started < 30
    s.schedule(HEAL_RETRY, time.monotonic() + 0.1)
    s.schedule(HEAL_RETRY, None)  # cancelled: the poll comes first
    assert s.take(0.3) == Batch(("poll",))


def test_stop_wakes_a_waiting_take() -> None:
    s = Scheduler()
    got: list[Batch | None] = [Batch(("x",))]
    worker = threading.Thread(target=lambda: got.__setitem__(0, s.take(3600)))
    worker.start()
    s.stop()
    worker.join(10)
    assert got == [None]


class FakeReconciler:
    def __init__(self, last: PassResult | None) -> None:
        self.last_result = last
        self.heal = SelfHeal(time.time)
        self.clock = time.time


def test_webhooks_for_the_commit_the_last_pass_converged_ask_for_nothing() -> None:
    head = "c" * 40
    daemon = Daemon(FakeReconciler(PassResult("converged", head)))  # type: ignore[arg-type]
    assert daemon._already_applied(Batch(("webhook:github",), False, 5, frozenset({head}), False))
    assert not daemon._already_applied(Batch(("webhook:github",), False, 1, frozenset({"d" * 40}), False))
    daemon.reconciler.last_result = PassResult("failed", head)
    assert not daemon._already_applied(Batch(("webhook:github",), False, 1, frozenset({head}), False))


def test_the_daemon_wakes_up_when_a_held_back_container_may_start_again() -> None:
    reconciler = FakeReconciler(None)
    daemon = Daemon(reconciler)  # type: ignore[arg-type]
    reconciler.heal.retry_at = time.time() + 0.3
    daemon._schedule_heal_retry()
    batch = daemon.scheduler.take(3600)
    assert batch is not None and batch.triggers == (HEAL_RETRY,)
    reconciler.heal.retry_at = time.time() - 1  # already over (a pass that ended early): no timer, no hot loop
    daemon._schedule_heal_retry()
    assert daemon.scheduler.take(0.2) == Batch(("poll",))
