"""THE apply path: lease -> look again and check the plan still holds -> execute -> trust -> record.

`gitops apply`, `gitops sync`, the daemon and the tests' deployer all change hosts through
``apply_plan``, so they cannot disagree about what an apply is: which hosts are locked, what counts as
"the hosts moved since the plan was made", which containers are trusted afterwards, and what the
history says. ``record_pass`` writes a pass into the store the same way for all of them; the status
document is built from those records by gitops.daemon.status.

Whether the plan "still holds" depends on who approved it:
* ``approved=True`` (a person answered yes to a plan shown to them, or `apply --plan FILE`): the plan
  runs only if the hosts look exactly as when it was made (the observed fingerprint), else STALE and
  nothing changes: nobody approved a different plan;
* ``approved=False`` (the loop): the plan is made again from the new look, and that one runs; when it
  has nothing to do (another reconciler applied it meanwhile) the outcome is ALREADY_APPLIED.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gitops.core.model import DesiredState, ObservedState
from gitops.core.plan import Plan
from gitops.core.planner import observed_fingerprint
from gitops.core.ports import ApplyRecords, Host
from gitops.engine.executor import ApplyResult, Executor
from gitops.engine.lease import DEFAULT_TTL, Lease
from gitops.engine.observe import observe_all, observe_with_store
from gitops.state import StateError, bounded_details


class ApplyStatus(enum.Enum):
    APPLIED = "applied"  # the plan ran (``result`` says how it went)
    LEASE_BUSY = "lease_busy"  # another reconciler holds the lease on these hosts; nothing changed
    STALE = "stale"  # an approved plan no longer matches the hosts; nothing changed
    ALREADY_APPLIED = "already_applied"  # the fresh plan had nothing to do


@dataclass(frozen=True)
class ApplyOutcome:
    status: ApplyStatus
    plan: Plan  # the plan that ran, or the one that was refused
    result: ApplyResult | None = None
    observed: ObservedState | None = None  # the hosts after the apply (APPLIED only)
    holder: str = ""  # LEASE_BUSY: who holds the lease, and until when (Unix time)
    expires_at: float = 0.0
    started_at: float = 0.0
    unrecorded: tuple[str, ...] = ()  # store writes that failed after the hosts changed (reported, not fatal)

    @property
    def message(self) -> str:
        if self.status is ApplyStatus.LEASE_BUSY:
            return (f"another reconciler ({self.holder}) is applying to these hosts; its lease ends within "
                    f"{max(0.0, self.expires_at - time.time()):.0f}s")
        if self.status is ApplyStatus.STALE:
            return ("the containers on the hosts changed since the plan was made; nothing was applied: "
                    "make the plan again")
        if self.status is ApplyStatus.ALREADY_APPLIED:
            return "another reconciler already applied it"
        assert self.result is not None
        return "converged" if self.result.ok else "; ".join(self.result.problems()) or "apply failed"


@dataclass
class ApplyHooks:
    """What callers see of an apply while it runs. All optional."""

    before_execute: Callable[[Plan], None] = lambda plan: None  # the plan is about to run (after the checks)
    run: Callable[[Executor, Plan], ApplyResult] = lambda executor, plan: executor.apply(plan)  # e.g. with progress
    on_own_action: Callable[[list[str], str], None] = lambda refs, action: None  # containers gitops touches
    cancel: threading.Event = field(default_factory=threading.Event)  # set: health waits give up and roll back


def look(desired: DesiredState, hosts: Mapping[str, Host], records: ApplyRecords | None) -> ObservedState:
    """Observe the hosts. With a store, containers it knows as declared need no inspect (a cache only)."""
    if records is None:
        return observe_all(desired, hosts)
    return observe_with_store(desired, hosts, records)


def apply_plan(desired: DesiredState, hosts: Mapping[str, Host], the_plan: Plan, *, approved: bool,
               replan: Callable[[ObservedState], Plan], records: ApplyRecords | None = None,
               holder: str | None = None, lease_ttl: float = DEFAULT_TTL, concurrency: int = 8,
               hooks: ApplyHooks | None = None) -> ApplyOutcome:
    """Apply ``the_plan`` (made from ``desired`` and an earlier look at ``hosts``) under the lease.

    ``replan`` makes a plan from a new look with the caller's options. Raises HostError when the lease
    cannot be taken at all (a host refuses the call); every failure after that is in the result.
    """
    hooks = hooks or ApplyHooks()
    unreachable = dict(the_plan.unreachable)
    lease = Lease([hosts[h] for h in sorted(hosts) if h not in unreachable], desired.project.name,
                  ttl=lease_ttl, holder=holder)
    held = lease.acquire()
    if not held.acquired:
        return ApplyOutcome(ApplyStatus.LEASE_BUSY, the_plan, holder=held.holder, expires_at=held.expires_at)
    try:
        # Another reconciler may have changed the hosts between the first look and the lease.
        now = look(desired, hosts, records)
        if approved:
            if observed_fingerprint(now) != the_plan.observed_fingerprint:
                return ApplyOutcome(ApplyStatus.STALE, the_plan)
        else:
            the_plan = replan(now)
            if not the_plan.has_changes:
                return ApplyOutcome(ApplyStatus.ALREADY_APPLIED, the_plan, observed=now)
        hooks.before_execute(the_plan)
        started = time.time()
        executor = Executor(desired, hosts, concurrency=concurrency)
        executor.cancel = hooks.cancel
        executor.on_own_action = hooks.on_own_action
        result = hooks.run(executor, the_plan)
        unrecorded: list[str] = []
        if records is not None and result.created:  # what this apply made needs no inspect next time
            _write(unrecorded, lambda: records.trust_containers(result.created))
        after = look(desired, hosts, records)  # status reports what runs now, not before
    finally:
        lease.release()
    if records is not None:
        good = result.service_statuses()
        _write(unrecorded, lambda: records.record_good({s.name: s.spec_hash for s in desired.services
                                                        if good.get(s.name, "converged") == "converged"},
                                                       desired.revision))
    return ApplyOutcome(ApplyStatus.APPLIED, the_plan, result, after, started_at=started,
                        unrecorded=tuple(unrecorded))


def failure_details(applied: ApplyResult | None) -> dict[str, dict[str, str]]:
    """Per service that did not converge: its message, health-check output and last log lines, for the
    pass record (the store cuts them to a bounded size)."""
    if applied is None:
        return {}
    return {o.service: {"message": o.message, "health_output": o.health_output, "logs": o.logs}
            for o in applied.services.values() if o.status != "converged"}


def record_pass(records: ApplyRecords, pass_id: int, *, revision: str, outcome: str, message: str,
                plan: Plan | None, applied: ApplyResult | None, pins: dict[str, str] | None = None,
                desired: DesiredState | None = None) -> None:
    """Finish the record of one pass (`gitops apply` is a pass too): what history, status and /status show.
    With ``desired``, the digest each service's image was resolved to is kept too (what a rollback runs).

    Raises StateError when the store cannot be written; the caller says so."""
    services = applied.service_statuses() if applied is not None else {}
    images = {s.name: s.digest for s in desired.services if s.digest} if desired is not None else {}
    records.finish_pass(pass_id, revision=revision, outcome=outcome, summary=plan.summary() if plan else {},
                        services=services, error="" if outcome in ("converged", "no_changes") else message,
                        details=failure_details(applied), pins=pins or {}, images=images)


def evidence(applied: ApplyResult | None) -> dict[str, dict[str, str]]:
    """The failure details as the store keeps them (bounded), for a log line that matches history."""
    return bounded_details(failure_details(applied))


def _write(problems: list[str], write: Callable[[], object]) -> None:
    """After the hosts changed the store is a record, not a gate: a failed write is reported with the
    outcome and must not hide it."""
    try:
        write()
    except StateError as exc:
        problems.append(str(exc))

