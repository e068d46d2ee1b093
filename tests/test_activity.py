"""The daemon's live activity (what the web page follows) and the hook fan-out that keeps one listener's bug
from failing a pass."""

from __future__ import annotations

import threading

from gitops.core.plan import Plan
from gitops.daemon.activity import Activity, FanOut
from gitops.engine.reconciler import PassResult


def test_a_reader_wakes_when_the_phase_changes_and_not_before() -> None:
    activity = Activity(clock=lambda: 100.0)
    start = activity.now()
    assert (start.phase, start.version) == ("idle", 0)
    assert activity.wait(start.version, timeout=0.01).version == 0  # nothing changed: the same snapshot
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.append(activity.wait(start.version, timeout=30).phase))
    reader.start()
    plan = Plan(project="p", revision="r1", steps=())
    activity.apply_started("r1", plan)
    reader.join(30)
    assert seen == ["applying"]
    assert (activity.now().revision, activity.now().plan) == ("r1", plan)
    activity.pass_finished(PassResult("converged", "r1"))
    after = activity.now()
    assert (after.phase, after.outcome, after.plan, after.version) == ("idle", "converged", None, 2)


def test_a_listener_that_raises_is_skipped_and_the_others_still_hear() -> None:
    class Broken:
        def pass_finished(self, result: PassResult) -> None:
            raise RuntimeError("bug")

        def fetch_failed(self) -> None:
            raise RuntimeError("bug")

        def apply_started(self, revision: str, plan: Plan) -> None:
            raise RuntimeError("bug")

    activity = Activity()
    hooks = FanOut([Broken(), activity])
    hooks.apply_started("r1", Plan(project="p", revision="r1", steps=()))
    hooks.fetch_failed()
    hooks.pass_finished(PassResult("failed", "r1"))
    assert (activity.now().phase, activity.now().outcome) == ("idle", "failed")
