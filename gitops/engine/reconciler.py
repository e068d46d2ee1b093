"""One reconcile pass, shared by `gitops sync` and the daemon:

    fetch -> load and validate -> failed-revision check -> pins -> observe -> plan -> apply -> record

Failed revisions: a commit whose manifests are invalid, or whose rollout failed (and rolled back),
is recorded as failed and not applied again on every poll. It is retried after a capped
exponential backoff, when a new commit arrives, or with ``force`` (`sync --force`). Meanwhile the
hosts keep running what they run: an invalid commit changes nothing, a failed rollout rolled back.

Pins (`gitops rollback`): a service rolled back to an older revision stays there while HEAD still
has the spec it had when it was pinned; the first commit that changes that service releases the
pin. So the loop never silently undoes a rollback, and never holds a service back from a fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gitops.core.model import DesiredState, ObservedState, SecretKey, ServiceSpec
from gitops.core.plan import Finding, Plan
from gitops.core.planner import PlanError, PlanOptions, plan
from gitops.core.ports import Checkout, DigestResolver, Host, Source
from gitops.engine.apply import ApplyHooks, ApplyStatus, apply_plan, evidence, record_pass
from gitops.engine.executor import ApplyResult, Executor
from gitops.engine.heal import SelfHeal, backoff_seconds
from gitops.engine.health import Inspector
from gitops.engine.images import DigestUnavailable, pin_and_observe, registry_client
from gitops.engine.lease import DEFAULT_TTL, new_holder
from gitops.engine.observe import observe_with_store, open_hosts
from gitops.errors import HostError
from gitops.failpoints import failpoint
from gitops.log import get_logger
from gitops.manifests.load import load_repo
from gitops.secret_key import installation_key
from gitops.source import SourceError, redact, revision_of
from gitops.state import StateError, StateStore


class LocalSource:
    """A working folder (gitops daemon --local): read in place, revision from git when it is a checkout."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self.display_url = str(self.path)
        self.ref = ""

    def fetch(self) -> Checkout:
        if not self.path.is_dir():
            raise SourceError(f"{self.path} is not a folder")
        revision = revision_of(self.path) or "local"
        if revision == "local" or revision.endswith("-dirty"):
            # Edits make no commit here: without a mark of the files, a fix to a failed rollout would be held
            # back as "the same revision, failed before" until the backoff ends.
            revision += "+" + folder_mark(self.path)
        return Checkout(revision, self.path, self.path)

    def fetch_commit(self, commit_or_ref: str) -> Checkout:
        raise SourceError("a local folder has no history to roll back to; use --repo", temporary=False)


def folder_mark(root: Path, *, limit: int = 20000) -> str:
    """12 hex digits that change when a file below ``root`` (hidden folders left out) is added, removed or
    written: a hash of each file's path, size and modification time."""
    digest = hashlib.sha256()
    for count, path in enumerate(sorted(p for p in root.rglob("*") if not any(
            part.startswith(".") for part in p.relative_to(root).parts))):
        if count >= limit:
            break
        try:
            info = path.lstat()
        except OSError:
            continue
        digest.update(f"{path.relative_to(root)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


@dataclass
class PassResult:
    outcome: str
    revision: str = ""
    message: str = ""
    plan: Plan | None = None
    apply: ApplyResult | None = None
    services: dict[str, str] = field(default_factory=dict)  # service -> outcome
    errors: list[str] = field(default_factory=list)
    duration: float = 0.0
    drifted: int = 0
    crash_looping: int = 0
    project: str = ""  # the project's name, from the manifests this pass (or the last pass that read them)
    pins: dict[str, str] = field(default_factory=dict)  # services held at an older revision (gitops rollback)

    @property
    def ok(self) -> bool:
        return self.outcome in ("converged", "no_changes")


class PassHooks(Protocol):
    """Told what a pass does, in the pass's thread: hooks must return quickly and never raise (the daemon's
    gitops.daemon.activity.FanOut guards each one)."""

    def pass_finished(self, result: PassResult) -> None: ...
    def fetch_failed(self) -> None: ...
    def apply_started(self, revision: str, plan: Plan) -> None: ...


class _NoHooks:
    def pass_finished(self, result: PassResult) -> None: ...
    def fetch_failed(self) -> None: ...
    def apply_started(self, revision: str, plan: Plan) -> None: ...


def _drifted(the_plan: Plan) -> int:
    """Instances found changed by hand: stopped, replaced (healed or only reported), or crash-looping."""
    return sum(1 for s in the_plan.steps if s.finding is not None)


def _repairs_only(the_plan: Plan) -> set[str]:
    """Services whose every change puts back a container of the commit's own spec (found stopped, or
    replaced by hand): drift repairs, not a rollout of the commit."""
    repair: dict[str, bool] = {}
    for step in the_plan.changes:
        if step.kind == "service":
            repair[step.name] = repair.get(step.name, True) and step.finding is Finding.STOPPED
    return {name for name, only in repair.items() if only}


class Reconciler:
    def __init__(self, source: Source, state: StateStore, *, key: SecretKey | None = None,
                 allow_empty: bool = False, concurrency: int = 8,
                 backoff_base: float = 60.0, backoff_cap: float = 3600.0, hooks: PassHooks | None = None,
                 lease_ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.time,
                 connect: Callable[[DesiredState], AbstractContextManager[Mapping[str, Host]]] = open_hosts,
                 resolver_for: Callable[[DesiredState], DigestResolver] = registry_client) -> None:
        self.source = source
        self.connect = connect  # the hosts of a desired state: Docker (open_hosts), or fakes in tests
        self.resolver_for = resolver_for  # looks tags up on their registries (resolve: digest)
        self.notes: tuple[str, ...] = ()  # warnings of the last pass found before planning (a registry down)
        self.state = state
        # Secret digests are compared with the containers' labels: always the installation's key.
        self.key = key or installation_key(state.directory)
        self.allow_empty = allow_empty
        self.concurrency = concurrency
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.hooks = hooks or _NoHooks()
        self.clock = clock
        self.log = get_logger(source=source.display_url)
        self.last_desired: DesiredState | None = None
        self._pass_desired: DesiredState | None = None
        self.last_observed: ObservedState | None = None
        self.last_result: PassResult | None = None
        self.cancel = threading.Event()  # set on a second SIGTERM: health waits give up and roll back
        self.lease_ttl = lease_ttl
        self.holder = new_holder()
        self._pins_held: dict[str, str] = {}
        self.heal = SelfHeal(clock)  # gitops' own actions, and containers that keep dying

    # -- the pass -----------------------------------------------------------------------------------------
    def run_pass(self, trigger: str, *, force: bool = False, dry_run: bool = False) -> PassResult:
        started = time.monotonic()
        try:
            pass_id = self.state.begin_pass(trigger)
        except StateError as exc:
            result = PassResult("error", message=str(exc), errors=[str(exc)])
            self.log.error("pass.state_unwritable", error=str(exc))
            self.hooks.pass_finished(result)
            return result
        self._pins_held = {}  # filled by _apply_pins, recorded with the pass
        self.notes = ()
        self._pass_desired = None  # this pass's, once resolved: its digests are recorded
        try:
            result = self._pass(force=force, dry_run=dry_run)
        except Exception as exc:  # noqa: BLE001 - the loop must survive anything a pass throws
            self.log.exception("pass.crashed")
            result = PassResult("error", message=f"internal error: {exc!r}", errors=[repr(exc)])
        result.duration = time.monotonic() - started
        result.project = result.project or (self.last_desired.project.name if self.last_desired else "")
        result.pins = dict(self._pins_held)
        failpoint("before_record")
        try:
            record_pass(self.state, pass_id, revision=result.revision, outcome=result.outcome, message=result.message,
                        plan=result.plan, applied=result.apply, pins=self._pins_held,
                        desired=self._pass_desired)
        except StateError as exc:
            result.errors.append(str(exc))
            self.log.error("pass.state_unwritable", error=str(exc))
        self.last_result = result
        for warning in result.plan.warnings if result.plan else ():
            self.log.warning("plan.warning", warning=warning)
        for name, found in sorted(evidence(result.apply).items()):  # the evidence `gitops apply` prints
            self.log.error("pass.service_failed", service=name, status=result.services.get(name, ""), **found)
        self.log.info("pass.finished", trigger=trigger, outcome=result.outcome, revision=result.revision[:12],
                      seconds=round(result.duration, 3), message=result.message)
        self.hooks.pass_finished(result)
        return result

    def _pass(self, *, force: bool, dry_run: bool) -> PassResult:
        try:
            checkout = self.source.fetch()
        except SourceError as exc:
            if exc.revision:  # fetched, but that commit cannot be checked out (too large, absolute symlink...)
                return self._unusable_revision(exc.revision, str(exc), force=force)
            self.hooks.fetch_failed()
            reason = str(exc)
            self._safe(lambda: self.state.record_fetch(url=self.source.display_url, ref=self.source.ref, error=reason))
            return PassResult("source_unavailable", message=f"source unavailable: {reason}", errors=[reason])
        revision = checkout.commit
        self._safe(lambda: self.state.record_fetch(url=self.source.display_url, ref=self.source.ref, commit=revision))

        skipped = self._skip_failed(revision, force=force)
        if skipped is not None:
            if self.last_desired is None:  # just started: status and the page still need what the hosts run
                self._look_only(checkout)
            return skipped

        try:
            outcome = load_repo(checkout.path, revision=revision, key=self.key)
        except Exception as exc:  # noqa: BLE001 - a loader bug fails this revision once, not every poll
            return self._unexpected(revision, "loading", exc)
        if outcome.desired is None:
            errors = [str(e) for e in outcome.errors]
            summary = f"{len(errors)} invalid manifest error(s): {errors[0]}"
            self._safe(lambda: self.state.mark_failed(revision, summary))
            shown = "; ".join(errors[:20]) + (f"; and {len(errors) - 20} more" if len(errors) > 20 else "")
            return PassResult("invalid", revision, f"revision {revision[:12]} is invalid, nothing was changed: {shown}",
                              errors=errors)
        desired = self._apply_pins(outcome.desired)
        self.last_desired = desired

        with self.connect(desired) as hosts:
            try:
                desired, observed, self.notes = pin_and_observe(
                    desired, self.resolver_for(desired), lambda d: observe_with_store(d, hosts, self.state))
            except DigestUnavailable as exc:
                problem = str(exc)
                if not exc.temporary:  # a tag that does not exist, credentials refused: the commit's to fix
                    self._safe(lambda: self.state.mark_failed(revision, problem))
                return PassResult("failed", revision, problem, errors=[problem])
            self.last_desired = self._pass_desired = desired
            self.last_observed = observed
            try:
                the_plan = plan(desired, observed, options=self._options(observed, hosts))
            except PlanError as exc:
                refusal = str(exc)
                self._safe(lambda: self.state.mark_failed(revision, refusal))
                return PassResult("failed", revision, refusal, errors=[refusal])
            except Exception as exc:  # noqa: BLE001 - a planner bug fails this revision once, not every poll
                return self._unexpected(revision, "planning", exc)
            looping = self._crash_looping(observed, the_plan)
            drifted = _drifted(the_plan)
            if not the_plan.has_changes:
                self._record_good(desired, revision, {s.name for s in desired.services})
                unreachable = [f"host {h} is unreachable: {e}" for h, e in the_plan.unreachable]
                return PassResult("failed" if unreachable else "no_changes", revision,
                                  "; ".join(unreachable) or "hosts match the manifests", plan=the_plan,
                                  errors=unreachable, crash_looping=looping, drifted=drifted)
            if dry_run:
                return PassResult("no_changes", revision, "dry run", plan=the_plan)
            try:
                done = apply_plan(desired, hosts, the_plan, approved=False, records=self.state,
                                  replan=lambda now: plan(desired, now, options=self._options(now, hosts)),
                                  holder=self.holder, lease_ttl=self.lease_ttl, concurrency=self.concurrency,
                                  hooks=ApplyHooks(before_execute=self._apply_started, run=self._execute,
                                                   on_own_action=self.heal.note_own_action, cancel=self.cancel))
            except HostError as exc:
                return PassResult("failed", revision, f"cannot take the apply lease: {exc}", errors=[str(exc)])
        for problem in done.unrecorded:
            self.log.error("state.write_failed", error=problem)
        the_plan = done.plan
        if done.status is ApplyStatus.LEASE_BUSY:
            return PassResult("skipped", revision, done.message)
        if done.status is ApplyStatus.ALREADY_APPLIED:
            return PassResult("no_changes", revision, done.message, plan=the_plan)
        assert done.result is not None and done.status is ApplyStatus.APPLIED
        applied = done.result
        self.last_observed = done.observed
        drifted = _drifted(the_plan)
        services = applied.service_statuses()
        if applied.ok:
            self._safe(lambda: self.state.mark_good(revision))
            return PassResult("converged", revision, "converged", plan=the_plan, apply=applied, services=services,
                              drifted=drifted, crash_looping=looping)
        problems = applied.problems()
        # Only the commit's own failures (health checks, refused specs) block it from being retried; a host
        # that failed under it (unreachable, restarting) is retried on the next pass.
        # Nor does a failed drift repair: it put back the commit's own containers, which converged before.
        # A service whose spec converged before (a container removed by hand, created again) is one too.
        repairs = _repairs_only(the_plan) | self._converged_before(desired)
        own_fault = [o for o in applied.services.values()
                     if o.status not in ("converged", "skipped") and not o.temporary and o.service not in repairs]
        if own_fault:
            self._safe(lambda: self.state.mark_failed(revision, problems[0] if problems else "apply failed"))
        return PassResult("failed", revision, "; ".join(problems) or "apply failed", plan=the_plan, apply=applied,
                          services=services, errors=problems, drifted=drifted, crash_looping=looping)

    def _look_only(self, checkout: Checkout) -> None:
        """Learn the desired state and what the hosts run without changing anything: HEAD's manifests, or, when
        they do not load, those of the newest revision that converged. For a daemon that starts while its HEAD
        is a commit that failed (and is backed off), so that status and the page are not empty meanwhile."""
        revisions = [checkout.commit] + [r.revision for r in self.state.passes(limit=50)
                                         if r.outcome == "converged" and r.revision != checkout.commit]
        for revision in dict.fromkeys(revisions):
            try:
                at = checkout if revision == checkout.commit else self.source.fetch_commit(revision)
                loaded = load_repo(at.path, revision=at.commit, key=self.key)
                if loaded.desired is None:
                    continue
                project = loaded.desired.project.name
                desired = with_pins(loaded.desired, self.state.pins(project), self.spec_at,
                                    self.state.pin_digests(project))
                with self.connect(desired) as hosts:
                    desired, observed, _ = pin_and_observe(desired, self.resolver_for(desired),
                                                           lambda d: observe_with_store(d, hosts, self.state),
                                                           unresolved_ok=True)
            except Exception as exc:  # noqa: BLE001 - only for display: the skipped pass stands as it is
                self.log.warning("status.look_failed", revision=revision[:12], error=str(exc))
                return
            self.last_desired, self.last_observed = desired, observed
            return

    def _converged_before(self, desired: DesiredState) -> set[str]:
        """Services whose spec now is one they ran healthy with before (their last good spec)."""
        try:
            good = self.state.last_good()
        except StateError:
            return set()
        return {s.name for s in desired.services if s.name in good and good[s.name][1] == s.spec_hash}

    def _apply_started(self, the_plan: Plan) -> None:
        self.hooks.apply_started(the_plan.revision, the_plan)
        self.log.info("apply.started", revision=the_plan.revision[:12], changes=len(the_plan.changes))
        for step in the_plan.changes[:50]:  # why each change is made: field names only, never values
            self.log.info("apply.change", step=step.label, host=step.host, action=step.action, reason=step.reason)

    def _execute(self, executor: Executor, the_plan: Plan) -> ApplyResult:
        began = self.clock()
        applied = executor.apply(the_plan)
        self.heal.count_starts(the_plan, at=began)
        return applied

    def _options(self, observed: ObservedState, hosts: Mapping[str, Inspector] | None = None) -> PlanOptions:
        return PlanOptions(allow_empty=self.allow_empty, hold=self.heal.hold(observed, hosts), warnings=self.notes)

    @staticmethod
    def _crash_looping(observed: ObservedState, the_plan: Plan) -> int:
        restarting = sum(1 for h in observed.hosts for c in h.containers if c.state == "restarting")
        held = sum(1 for s in the_plan.steps if s.finding is Finding.CRASH_LOOPING)
        return restarting + held

    def _record_good(self, desired: DesiredState, revision: str, names: set[str]) -> None:
        specs = {s.name: s.spec_hash for s in desired.services if s.name in names}
        self._safe(lambda: self.state.record_good(specs, revision))

    # -- revisions that cannot be applied --------------------------------------------------------------------
    def _skip_failed(self, revision: str, *, force: bool) -> PassResult | None:
        """A revision that failed before is skipped until its backoff has passed (or with force)."""
        failed = self.state.failed(revision)
        if failed is None or force:
            return None
        wait = backoff_seconds(failed.attempts, base=self.backoff_base, cap=self.backoff_cap)
        if self.clock() - failed.last_attempt >= wait:
            return None
        return PassResult("skipped", revision, f"revision {revision[:12]} failed before ({failed.error}); "
                          f"not applied again until a new commit, {wait:.0f}s after its last attempt, "
                          "or sync --force")

    def _unusable_revision(self, revision: str, reason: str, *, force: bool) -> PassResult:
        """The source is fine, but this commit cannot be checked out: recorded as invalid, with backoff."""
        self._safe(lambda: self.state.record_fetch(url=self.source.display_url, ref=self.source.ref, commit=revision))
        skipped = self._skip_failed(revision, force=force)
        if skipped is not None:
            return skipped
        self._safe(lambda: self.state.mark_failed(revision, reason))
        return PassResult("invalid", revision, f"revision {revision[:12]} is invalid, nothing was changed: {reason}",
                          errors=[reason])

    def _unexpected(self, revision: str, stage: str, exc: Exception) -> PassResult:
        """An exception nobody expected while loading or planning a revision: a bug, recorded against the
        revision (with backoff) so the loop does not hit it on every poll. Called inside the except block."""
        self.log.exception("pass.unexpected_error", revision=revision[:12], stage=stage)
        what = f"unexpected error while {stage} it: {type(exc).__name__}: {redact(str(exc))[:300]}"
        self._safe(lambda: self.state.mark_failed(revision, what))
        return PassResult("failed", revision, f"revision {revision[:12]} failed: {what} (a bug in gitops; not retried "
                          "until a new commit, the backoff, or sync --force)", errors=[what])

    def _safe(self, write: Callable[[], Any]) -> None:
        """State writes must not stop a pass (a full disk is reported, not fatal)."""
        try:
            write()
        except StateError as exc:
            self.log.error("state.write_failed", error=str(exc))

    # -- pins ---------------------------------------------------------------------------------------------
    def _apply_pins(self, desired: DesiredState) -> DesiredState:
        project = desired.project.name
        pins = self.state.pins(project)
        if not pins:
            return desired
        for svc in desired.services:
            if svc.name in pins and svc.spec_hash != pins[svc.name][1]:
                self.state.unpin(project, svc.name)
                self.log.info("pin.released", service=svc.name, reason="a new commit changed the service")
        for name in set(pins) - {s.name for s in desired.services}:
            self.state.unpin(project, name)
        held = self.state.pins(project)
        pinned = with_pins(desired, held, self.spec_at, self.state.pin_digests(project))
        self._pins_held = {s.name: held[s.name][0] for s in pinned.services if s.name in held
                           and s.spec_hash != desired.service(s.name).spec_hash}
        return pinned

    def spec_at(self, service: str, revision: str) -> ServiceSpec | None:
        return service_at(self.source.fetch_commit(revision), service, key=self.key)

    def rollback(self, service: str, *, to: str | None = None) -> tuple[RollbackTarget, PassResult]:
        """Pin ``service`` at ``to`` (default: the last converged revision whose spec of it differs from the
        one it has now) and apply now."""
        head = self.source.fetch()
        loaded = load_repo(head.path, revision=head.commit, key=self.key)
        if loaded.desired is None:
            raise SourceError(f"HEAD {head.commit[:12]} is invalid; fix it before rolling back", temporary=False)
        try:
            current = loaded.desired.service(service)
        except KeyError:
            raise SourceError(f"service {service!r} is not declared at HEAD", temporary=False) from None
        project = loaded.desired.project.name
        held = with_pins(loaded.desired, self.state.pins(project), self.spec_at, self.state.pin_digests(project))
        now = self._as_running(held.service(service)).spec_hash
        if to is None:
            target = self._previous_revision(service, now)
        else:
            spec = self.spec_at(service, to)
            if spec is None:
                raise SourceError(f"service {service!r} does not exist (or does not validate) at {to[:12]}",
                                  temporary=False)
            revision = self.source.fetch_commit(to).commit
            digest = self._recorded_digest(service, revision) if spec.resolve == "digest" else ""
            spec = dataclasses.replace(spec, digest=digest) if digest else spec
            target = RollbackTarget(revision, same_spec=spec.spec_hash == now, digest=digest)
        self.state.pin(project, service, target.revision, current.spec_hash, digest=target.digest)
        return target, self.run_pass(f"rollback {service}", force=True)

    def _as_running(self, spec: ServiceSpec) -> ServiceSpec:
        """``spec`` with the digest its containers run as history knows it (the newest converged pass's), for a
        service whose tag is resolved: two revisions with one tag differ by the digest they ran."""
        if spec.resolve != "digest" or spec.digest:
            return spec
        for record in self.state.passes(limit=200, service=spec.name):
            if record.services.get(spec.name) == "converged" and record.images.get(spec.name):
                return dataclasses.replace(spec, digest=record.images[spec.name])
        return spec

    def _recorded_digest(self, service: str, revision: str) -> str:
        """The digest ``service`` ran when it converged at ``revision`` (the newest such pass); "" if none."""
        for record in self.state.passes(limit=200, service=service):
            if ((record.pins.get(service) or record.revision) == revision
                    and record.services.get(service) == "converged" and record.images.get(service)):
                return record.images[service]
        return ""

    def _previous_revision(self, service: str, current_hash: str) -> RollbackTarget:
        """The newest revision at which ``service`` converged with a spec other than ``current_hash``: a
        revision with the same spec (a commit that only touched other files) would pin it where it is.
        A service whose tag is resolved is told apart by the digest it ran too: a tag that moved under one
        revision rolls back to the digest it had before."""
        # a pass that held the service at a pin ran the pinned revision's spec, not its own revision's
        candidates = [(r.pins.get(service) or r.revision, r.images.get(service, ""))
                      for r in self.state.passes(limit=200, service=service)
                      if r.revision and r.services.get(service) == "converged"]
        good = self.state.last_good().get(service)
        if good:
            candidates.append((good[0], self._recorded_digest(service, good[0])))
        skipped: list[str] = []
        for revision, digest in dict.fromkeys(candidates):  # newest first, each once
            if len(skipped) >= self.MAX_ROLLBACK_CANDIDATES:
                break
            try:
                spec = self.spec_at(service, revision)
            except SourceError:
                continue  # a commit gone from the remote (force-push) cannot be rolled back to
            if spec is None:
                continue
            digest = digest if spec.resolve == "digest" else ""
            if digest:
                spec = dataclasses.replace(spec, digest=digest)
            if spec.spec_hash != current_hash:
                return RollbackTarget(revision, picked=True, skipped=tuple(skipped), digest=digest)
            entry = f"{revision}@{digest}" if digest else revision  # one revision may have run two digests
            if entry not in skipped:
                skipped.append(entry)
        note = f" ({_skipped(tuple(skipped))})" if skipped else ""
        raise SourceError(f"no earlier converged revision of {service!r} has a spec other than the one it has "
                          f"now{note}; pass --to REVISION", temporary=False)

    MAX_ROLLBACK_CANDIDATES = 50


@dataclass(frozen=True)
class RollbackTarget:
    """The revision a rollback pins, and why it was chosen."""

    revision: str
    picked: bool = False  # chosen by gitops (no --to)
    skipped: tuple[str, ...] = ()  # newer converged revisions passed over: their spec was the current one
    same_spec: bool = False  # --to named a revision whose spec is the one the service has now
    digest: str = ""  # the image digest it ran then (services whose tag is resolved), which the pin holds

    def sentence(self, service: str) -> str:
        rev = self.revision[:12] + (f" (image {self.digest[:19]}..)" if self.digest else "")
        if self.same_spec:
            return f"{service}: the spec of {service} at {rev} is the one it has now: the pin keeps it as it is"
        if not self.picked:
            return f"{service}: rolling back to {rev}"
        return (f"{service}: rolling back to {rev}, the last converged revision whose spec of {service} differs "
                f"from the current one" + (f" ({_skipped(self.skipped)})" if self.skipped else ""))


def _skipped(revisions: tuple[str, ...]) -> str:
    def one(entry: str) -> str:
        revision, _, digest = entry.partition("@")
        return revision[:12] + (f" (image {digest[:19]}..)" if digest else "")

    shown = ", ".join(one(r) for r in revisions[:10]) + (", ..." if len(revisions) > 10 else "")
    return f"skipped {len(revisions)} revision{'s' if len(revisions) != 1 else ''} with the same spec: {shown}"


def service_at(checkout: Checkout, service: str, *, key: SecretKey) -> ServiceSpec | None:
    """``service``'s spec in ``checkout``; None when the revision does not validate or lacks it."""
    loaded = load_repo(checkout.path, revision=checkout.commit, key=key)
    if loaded.desired is None:
        return None
    try:
        return loaded.desired.service(service)
    except KeyError:
        return None


def with_pins(desired: DesiredState, pins: dict[str, tuple[str, str]],
              spec_at: Callable[[str, str], ServiceSpec | None],
              digests: Mapping[str, str] | None = None) -> DesiredState:
    """``desired`` with each pinned service at its pinned revision's spec, while the pin holds (HEAD still
    has the spec it had when pinned); replicas and placement stay HEAD's. Reads only: releasing a pin is
    the pass's job. The pass and `gitops status` both use it, so status compares with what a pass enforces."""
    services = list(desired.services)
    for i, svc in enumerate(services):
        held = pins.get(svc.name)
        if held is None or held[1] != svc.spec_hash:
            continue
        pinned = spec_at(svc.name, held[0])
        if pinned is not None:
            digest = (digests or {}).get(svc.name, "") if pinned.resolve == "digest" else ""
            services[i] = dataclasses.replace(pinned, replicas=svc.replicas, hosts=svc.hosts,
                                              digest=digest or pinned.digest)
    return dataclasses.replace(desired, services=tuple(services))
