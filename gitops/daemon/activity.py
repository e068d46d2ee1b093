"""What the daemon is doing now, for live views (the web page's server-sent events), and the fan-out of a
pass's hooks to every listener.

``Activity`` keeps the phase (idle, or applying a revision's plan) with a version number that grows with
every change; a reader waits for the next version instead of polling. ``FanOut`` hands each hook call to
every listener in turn (metrics, activity, commit statuses, notifications) and keeps one listener's bug
from failing the pass or the others: hooks run in the pass's thread, so each must return quickly.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gitops.core.plan import Plan
from gitops.engine.reconciler import PassHooks, PassResult
from gitops.log import get_logger


@dataclass(frozen=True)
class Snapshot:
    version: int
    phase: str  # "idle" | "applying"
    revision: str = ""  # the revision being applied, or the last pass's
    plan: Plan | None = None  # the plan being applied (phase "applying")
    since: float = 0.0  # wall-clock time the phase began
    outcome: str = ""  # the last pass's outcome


class Activity:
    """A PassHooks that remembers the phase; ``wait(version, timeout)`` returns once it moved past ``version``."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._changed = threading.Condition()
        self._now = Snapshot(0, "idle")

    def now(self) -> Snapshot:
        with self._changed:
            return self._now

    def wait(self, version: int, timeout: float) -> Snapshot:
        with self._changed:
            self._changed.wait_for(lambda: self._now.version != version, timeout=timeout)
            return self._now

    def _set(self, **fields: object) -> None:
        with self._changed:
            self._now = dataclasses.replace(self._now, **fields, version=self._now.version + 1)  # type: ignore[arg-type]
            self._changed.notify_all()

    def apply_started(self, revision: str, plan: Plan) -> None:
        self._set(phase="applying", revision=revision, plan=plan, since=self.clock())

    def pass_finished(self, result: PassResult) -> None:
        self._set(phase="idle", revision=result.revision or self._now.revision, plan=None, since=self.clock(),
                  outcome=result.outcome)

    def fetch_failed(self) -> None:
        """A fetch that failed ends in pass_finished too: nothing to show until then."""


class FanOut:
    """Every hook call to every listener, in order; a listener that raises is logged and skipped."""

    def __init__(self, listeners: Sequence[PassHooks]) -> None:
        self.listeners = list(listeners)
        self.log = get_logger(component="hooks")

    def _each(self, call: Callable[[PassHooks], None], name: str) -> None:
        for listener in self.listeners:
            try:
                call(listener)
            except Exception:  # noqa: BLE001 - a listener's bug must not fail the pass or the other listeners
                self.log.exception("hook.failed", hook=name, listener=type(listener).__name__)

    def pass_finished(self, result: PassResult) -> None:
        self._each(lambda h: h.pass_finished(result), "pass_finished")

    def fetch_failed(self) -> None:
        self._each(lambda h: h.fetch_failed(), "fetch_failed")

    def apply_started(self, revision: str, plan: Plan) -> None:
        self._each(lambda h: h.apply_started(revision, plan), "apply_started")
