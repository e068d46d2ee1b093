"""Self-heal bookkeeping: gitops' own actions told apart from drift, and containers that keep dying.

Two memories that a level-triggered loop still needs, both short-lived and only in this process:

* **Own actions.** Every container gitops starts, stops or removes is noted with the Docker events that
  action explains, so the daemon's event watcher does not take gitops' own work for drift and start
  a pass for it (``note_own_action`` / ``is_own_event``).
* **Crash loops.** A container gitops started again (a repair of a stopped one) that then died by
  itself is held back with an exponential backoff (5 s, 10 s, ... 5 min), instead of being restarted
  on every pass. A container ended by a signal gitops did not send (``docker stop`` by someone:
  exit 143 or 137 without OOM) is drift to repair at once, not a crash. ``retry_at`` says when the
  first held container may start again, so the daemon can wake up for it.

Losing either memory (a restart) costs at most one extra pass or one early retry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from gitops.core.model import ObservedContainer, ObservedState
from gitops.core.plan import ContainerRef, Finding, Plan
from gitops.engine.health import STOPPED_EXIT_CODES, Inspector
from gitops.errors import HostError


def backoff_seconds(attempts: int, *, base: float, cap: float) -> float:
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


class SelfHeal:
    OWN_EVENTS = {"start": frozenset({"start"}), "stop": frozenset({"kill", "die", "stop"}),
                  "remove": frozenset({"kill", "die", "stop", "destroy"})}
    OWN_WINDOW = 120.0  # seconds an own action explains events for
    BACKOFF_BASE = 5.0
    BACKOFF_CAP = 300.0
    WINDOW = 900.0  # starts older than this are forgotten: the container is no longer crash-looping

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.starts: dict[str, list[float]] = {}  # container id -> times gitops started it again
        self.retry_at: float | None = None  # when the first held-back container may start again
        self._own: dict[str, tuple[frozenset[str], float]] = {}  # container name/id -> (events expected, when)
        self._own_stops: dict[str, float] = {}  # container name/id -> when gitops last stopped or removed it
        self._lock = threading.Lock()

    # -- gitops' own actions ------------------------------------------------------------------------------
    def note_own_action(self, refs: list[str], action: str) -> None:
        now = self.clock()
        with self._lock:
            for ref in refs:
                if ref:
                    earlier = self._own.get(ref)
                    kept = earlier[0] if earlier and now - earlier[1] <= self.OWN_WINDOW else frozenset()
                    self._own[ref] = (kept | self.OWN_EVENTS[action], now)
            for ref, (_, when) in list(self._own.items()):
                if now - when > self.OWN_WINDOW:
                    del self._own[ref]
            if action != "start":
                self._own_stops.update((ref, now) for ref in refs if ref)
            for ref, when in list(self._own_stops.items()):
                if now - when > self.WINDOW:
                    del self._own_stops[ref]

    def is_own_event(self, action: str, *refs: str) -> bool:
        """True when a Docker event is explained by something gitops itself just did."""
        now = self.clock()
        with self._lock:
            for ref in refs:
                expected = self._own.get(ref)
                if expected and action in expected[0] and now - expected[1] <= self.OWN_WINDOW:
                    return True
        return False

    # -- containers that keep dying ------------------------------------------------------------------------
    def hold(self, observed: ObservedState,
             hosts: Mapping[str, Inspector] | None = None) -> tuple[tuple[str, str], ...]:
        """The containers whose start is held back now, with why (the planner's ``hold`` option); sets
        ``retry_at``. ``hosts`` answers an inspect, to tell a `docker stop` from a crash."""
        now = self.clock()
        hold = []
        retry_at: float | None = None
        for host in observed.hosts:
            for c in host.containers:
                starts = [t for t in self.starts.get(c.id, []) if now - t < self.WINDOW]
                self.starts[c.id] = starts
                if c.running or not starts:
                    continue
                if self._stopped_by_hand(c, since=starts[-1], hosts=hosts):
                    self.starts[c.id] = []  # it did not die by itself: drift to repair now, not a crash
                    continue
                wait = backoff_seconds(len(starts), base=self.BACKOFF_BASE, cap=self.BACKOFF_CAP)
                left = wait - (now - starts[-1])
                if left > 0:
                    hold.append((c.name, f"started again {len(starts)} times, it died each time; next try in "
                                         f"{left:.0f}s"))
                    retry_at = now + left if retry_at is None else min(retry_at, now + left)
        self.retry_at = retry_at
        return tuple(sorted(hold))

    def _stopped_by_hand(self, c: ObservedContainer, *, since: float, hosts: Mapping[str, Inspector] | None) -> bool:
        """True when ``c`` ended by SIGTERM/SIGKILL (exit 143/137, not out of memory) that gitops did not send
        after its last start: someone's `docker stop`. Only inspected for containers gitops restarted lately."""
        with self._lock:
            if max(self._own_stops.get(c.id, 0.0), self._own_stops.get(c.name, 0.0)) >= since:
                return False  # gitops stopped it itself (an undone start): that start counts as failed
        host = hosts.get(c.host) if hosts else None
        if host is None:
            return False
        try:
            state = host.inspect(c.id).get("State") or {}
        except HostError:
            return False  # cannot tell: keep the backoff
        return state.get("ExitCode") in STOPPED_EXIT_CODES and not state.get("OOMKilled")

    def count_starts(self, executed: Plan, *, at: float) -> None:
        """Record the repair starts of ``executed`` at ``at``, taken before the apply: a stop gitops makes
        during it (an undone start) is then later than the start, and not taken for someone's `docker stop`."""
        for step in executed.changes:
            if step.finding is Finding.STOPPED:
                for op in step.ops:
                    if op.kind == "start" and isinstance(op.args, ContainerRef) and op.args.id:
                        self.starts.setdefault(op.args.id, []).append(at)
