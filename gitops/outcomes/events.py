"""What a pass means to the people and machines that want to hear about it: a list of events.

Pure: no network, no files, no clock (the caller passes ``now`` where time matters). The notifier turns
events into messages; commit statuses may read them too.

Every text of an event comes from the hosts or the repository (error messages, health-check output,
container logs), so each is masked first (secret values of the desired state become ``***``), then
made visible (controls, bidi and zero-width characters escaped, as in plans and logs), then cut to its
bound. Masking comes before cutting: a cut through a secret would leave a piece of it that no longer
matches the whole value.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gitops.core.plan import Finding, Plan, escape_text
from gitops.engine.apply import failure_details

if TYPE_CHECKING:
    from gitops.engine.reconciler import PassResult

Kind = Literal["applied", "failed", "rolled_back", "invalid", "drift_repaired", "crash_looping",
               "host_unreachable", "source_unavailable"]
KINDS: tuple[Kind, ...] = ("applied", "failed", "rolled_back", "invalid", "drift_repaired", "crash_looping",
                           "host_unreachable", "source_unavailable")
GOOD: frozenset[Kind] = frozenset({"applied", "drift_repaired"})  # the others say something is wrong

MAX_REASON_CHARS = 500  # one line; its start is kept (it says what failed)
MAX_OUTPUT_CHARS = 1000  # a health check's output; its end is kept (it says why)
MAX_LOG_LINES = 10  # the last log lines of the failing container
MAX_LOG_CHARS = 2000
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words and digits everywhere
MASK = "***"


@dataclass(frozen=True)
class Detail:
    """What one failing service said: its health check's output and its container's last log lines."""

    service: str
    health_output: str = ""
    logs: str = ""


@dataclass(frozen=True)
class Event:
    kind: Kind
    project: str
    revision: str = ""
    services: tuple[str, ...] = ()
    reason: str = ""  # one line
    details: tuple[Detail, ...] = ()  # failed and rolled_back: per service, masked and cut

    @property
    def good(self) -> bool:
        return self.kind in GOOD

    @property
    def key(self) -> tuple[str, str, tuple[str, ...], str]:
        """What makes two events the same news (details differ between two runs of one failure: timings)."""
        return (self.kind, self.revision, self.services, self.reason)

    def details_dict(self) -> dict[str, dict[str, str]]:
        return {d.service: {"health_output": d.health_output, "logs": d.logs} for d in self.details}


# -- masking and cutting ----------------------------------------------------------------------------------
def _candidates(secrets: Iterable[str]) -> list[str]:
    """The strings to mask, longest first: each value without the whitespace around it (a secret file's
    trailing newline is no part of what a program prints), and each line of a value of several lines (a key
    file), which a program logs one at a time."""
    found: set[str] = set()
    for value in secrets:
        if not isinstance(value, str):
            continue
        pieces = [value.strip()]
        if "\n" in pieces[0]:
            pieces += [line.strip() for line in pieces[0].splitlines()]
        found.update(p for p in pieces if len(p) >= MIN_SECRET_CHARS)
    return sorted(found, key=lambda s: (-len(s), s))


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret value replaced by ``***``, longest first (so a secret that contains
    another is masked whole). Values shorter than 4 characters are ignored: they would mask everything."""
    return _masked(text, _candidates(secrets))


def _masked(text: str, candidates: list[str]) -> str:
    for secret in candidates:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class _Clean:
    """Mask, then make visible, then cut: the order matters (see the module's docstring)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = _candidates(secrets)

    def _mask(self, text: str) -> str:
        return _masked(text, self.secrets)

    def reason(self, text: str) -> str:
        line = escape_text(" ".join(self._mask(str(text)).split()))
        return line if len(line) <= MAX_REASON_CHARS else line[:MAX_REASON_CHARS - 3] + "..."

    def output(self, text: str) -> str:
        lines = [escape_text(line) for line in self._mask(str(text)).splitlines()]
        return "\n".join(lines).strip("\n")[-MAX_OUTPUT_CHARS:]

    def logs(self, text: str) -> str:
        lines = [escape_text(line) for line in self._mask(str(text)).splitlines()]
        return "\n".join(lines[-MAX_LOG_LINES:])[-MAX_LOG_CHARS:]


# -- a pass as events ---------------------------------------------------------------------------------------
def _repairs(the_plan: Plan | None) -> dict[str, list[str]]:
    """Services whose every change puts back the commit's own container (found stopped, or replaced by
    hand), with what was found: drift repaired, not a rollout."""
    found: dict[str, list[str]] = {}
    mixed: set[str] = set()
    for step in the_plan.changes if the_plan else ():
        if step.kind != "service":
            continue
        if step.finding in (Finding.STOPPED, Finding.REPLACED_BY_HAND):
            found.setdefault(step.name, []).append(f"{step.label} on {step.host}: {step.reason}")
        else:
            mixed.add(step.name)
    return {name: why for name, why in found.items() if name not in mixed}


def _summary(the_plan: Plan | None) -> str:
    if the_plan is None:
        return "converged"
    counts = the_plan.summary()
    done = [f"{counts[a]} {word}" for a, word in (("create", "created"), ("update", "updated"), ("remove", "removed"))
            if counts.get(a)]
    return "converged" + (f": {', '.join(done)}" if done else "")


def events_of(result: PassResult, project: str, *, secrets: Iterable[str] = ()) -> list[Event]:
    """The events of one pass, in the order people should read them. A pass that changed nothing and found
    nothing wrong has none; neither has a skipped one (a revision that failed before, waiting its backoff).

    ``secrets`` are the secret values of the desired state: masked in every text before it is cut."""
    clean = _Clean(secrets)
    rev = result.revision

    def event(kind: Kind, services: Iterable[str] = (), reason: str = "",
              details: tuple[Detail, ...] = ()) -> Event:
        return Event(kind, project, rev, tuple(sorted(set(services))), clean.reason(reason), details)

    if result.outcome == "source_unavailable":
        return [event("source_unavailable", reason=result.message)]
    if result.outcome == "invalid":
        return [event("invalid", reason=result.message)]
    if result.outcome == "skipped":
        return []

    events: list[Event] = []
    the_plan = result.plan
    unreachable = the_plan.unreachable if the_plan is not None else ()
    applied = result.apply
    if applied is not None:
        repairs = _repairs(the_plan)
        outcomes = applied.services
        converged = [name for name, o in outcomes.items() if o.status == "converged"]
        rolled = [name for name, o in outcomes.items() if o.status == "rolled_back"]
        failed = [name for name, o in outcomes.items() if o.status in ("failed", "paused")]
        rollout = [name for name in converged if name not in repairs]
        fixed = [name for name in converged if name in repairs]
        if rollout or (result.ok and not fixed):
            events.append(event("applied", rollout, _summary(the_plan)))
        if fixed:
            events.append(event("drift_repaired", fixed, "; ".join(why for n in sorted(fixed) for why in repairs[n])))
        found = failure_details(applied)

        def bad(kind: Kind, names: list[str]) -> Event:
            names = sorted(names)
            why = "; ".join(f"{n}: {found.get(n, {}).get('message') or outcomes[n].status}" for n in names)
            details = tuple(Detail(n, clean.output(found.get(n, {}).get("health_output", "")),
                                   clean.logs(found.get(n, {}).get("logs", ""))) for n in names)
            return event(kind, names, why, details)

        if rolled:
            events.append(bad("rolled_back", rolled))
        if failed:
            events.append(bad("failed", failed))
        if not rolled and not failed and not result.ok:
            events.append(event("failed", reason="; ".join(applied.errors) or result.message or "apply failed"))
    elif result.outcome in ("failed", "error") and not (unreachable and the_plan is not None
                                                         and not the_plan.has_changes):
        # refused by policy, a tag that resolves nowhere, the lease, a bug: the message says which
        events.append(event("failed", reason=result.message or "; ".join(result.errors) or result.outcome))
    if unreachable:
        events.append(event("host_unreachable", (),
                            "; ".join(f"host {host} is unreachable: {error}" for host, error in unreachable)))
    if result.crash_looping:
        steps = [s for s in the_plan.steps if s.finding is Finding.CRASH_LOOPING] if the_plan else []
        # Not the step's reason: it counts the seconds to the next try, and would make every poll news.
        why = "; ".join(f"{s.label} on {s.host} died after each start" for s in steps[:20])
        events.append(event("crash_looping", [s.name for s in steps],
                            why or f"{result.crash_looping} container(s) keep restarting"))
    return events


# -- the same news once ------------------------------------------------------------------------------------
class Quiet:
    """Says whether an event is news: one with the key of an event sent less than ``quiet`` seconds ago is
    not (the same failure found again on every poll). An ``applied`` after a bad event always goes, and makes
    the bad ones news again when they come back. A drift repair is no such recovery (a container that dies
    again and again is repaired again and again): it is news once per quiet period like the others.
    Remembers at most ``limit`` keys, the oldest go first."""

    def __init__(self, quiet: float = 3600.0, *, limit: int = 1000) -> None:
        self.quiet = quiet
        self.limit = max(1, limit)
        self._sent: OrderedDict[tuple[str, str, tuple[str, ...], str], float] = OrderedDict()
        self._bad_since_good = False

    def should_send(self, event: Event, now: float) -> bool:
        key = event.key
        last = self._sent.get(key)
        fresh = last is not None and 0 <= now - last < self.quiet
        if event.kind == "applied":
            send = not fresh or self._bad_since_good
            if self._bad_since_good:  # recovered: the next failure is news, whatever it is
                self._sent = OrderedDict((k, t) for k, t in self._sent.items() if k[0] in GOOD)
            self._bad_since_good = False
        else:
            send = not fresh
            self._bad_since_good = self._bad_since_good or not event.good
        if send:
            self._sent.pop(key, None)
            self._sent[key] = now
            while len(self._sent) > self.limit:
                self._sent.popitem(last=False)
        return send
