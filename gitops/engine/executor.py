"""Runs a Plan against the hosts: dependency waves, rolling batches, health gates, rollback.

Steps are grouped into units (gitops.engine.schedule): one per network/volume step, one per service
(all its instances on all hosts), one per undeclared service being pruned. A unit starts when every unit it depends on
has succeeded, except that a service depending on another only waits until every instance of that
service is running (``condition: started``, the default) or has passed its health gate
(``condition: healthy``), not for its old containers to stop. A unit whose dependency failed before
it got that far is skipped. Independent units run in parallel.

What is bounded is the Docker calls in flight (``concurrency``: pull, create, start, inspect,
remove, logs), never the waiting: a health gate between its inspects, and a stop while the old
container uses its grace period, hold no slot. Every unit and instance in progress has a thread of
its own, so nothing queues behind a wait.

A service unit:
1. makes sure the image is on each host it needs (pull policy);
2. creates new instances, all at once;
3. replaces existing instances with at most ``update.parallelism`` of them in transition at once.
   A replica's transition ends when its new container is healthy and its old one has *exited*
   (start-first: stopped after the new one is healthy; asking it to stop is not enough), so a
   service never runs more than replicas + parallelism containers (SECURITY.md I2). Old
   containers are only *stopped* while the update goes on, and removed once the whole service is
   healthy, so that
4. on failure with failureAction rollback, every instance already updated, on every host, goes
   back: the new container is removed and the old one started again. With pause it stops there;
5. last, the removals: old containers, scaled-down or moved instances, leftovers.

Any exception while an instance is being updated (a host error, a failed health gate, or anything
else: a value docker-py cannot encode, a bug) fails that instance, and an update is always put back:
an old container stopped before the failure is started again. A plan is input, like a manifest:
before stopping, starting or removing a container the executor checks that it carries the
project's ownership labels and the step's service, whatever the plan names (SECURITY.md item 14).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, TypeVar

from gitops.core.model import LABEL_MANAGED, LABEL_PROJECT, LABEL_SERVICE, DesiredState, ServiceSpec
from gitops.core.plan import CreateArgs, Op, Plan, RemoveArgs, Step, SwarmArgs
from gitops.core.ports import Host
from gitops.core.swarm import monitor_seconds, swarm_service_spec
from gitops.engine.health import HealthFailure, wait_healthy
from gitops.engine.schedule import Level, Unit, UnitKind, Verdict, readiness, schedule
from gitops.errors import HostError, NotFound
from gitops.failpoints import failpoint
from gitops.hosts.docker import host_text
from gitops.hosts.swarm import Convergence, SwarmCluster

StepStatus = Literal["done", "failed", "rolled_back", "skipped", "unchanged"]
EventHook = Callable[[str, str, str], None]  # (step id, status, message)
P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class StepResult:
    status: StepStatus
    message: str = ""
    seconds: float = 0.0


@dataclass
class ServiceOutcome:
    service: str
    status: Literal["converged", "failed", "rolled_back", "paused", "skipped"]
    message: str = ""
    logs: str = ""
    health_output: str = ""
    temporary: bool = False  # failed because a host failed (retrying may help), not because of the spec


@dataclass
class ApplyResult:
    steps: dict[str, StepResult] = field(default_factory=dict)
    services: dict[str, ServiceOutcome] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    created: dict[str, str] = field(default_factory=dict)  # container id -> host: made by this run, not adopted

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.status in ("done", "unchanged") for r in self.steps.values())

    def service_statuses(self) -> dict[str, str]:
        return {name: str(o.status) for name, o in self.services.items()}

    def problems(self) -> list[str]:
        """Every error and every service that did not converge, one line each."""
        return self.errors + [f"{o.service}: {o.status}: {o.message}" for o in self.services.values()
                              if o.status != "converged"]


class _InstanceFailed(Exception):
    def __init__(self, record: _Done, message: str, *, logs: str = "", detail: str = "",
                 temporary: bool = False) -> None:
        super().__init__(message)
        self.record = record
        self.step = record.step
        self.logs = logs
        self.detail = detail
        self.temporary = temporary


class _Countdown:
    """Calls ``fn`` once, when it has been ticked ``n`` times (at once when ``n`` is 0). Thread-safe."""

    def __init__(self, n: int, fn: Callable[[], None]) -> None:
        self._left = n
        self._fn = fn
        self._lock = threading.Lock()
        if n == 0:
            fn()

    def __call__(self) -> None:
        with self._lock:
            self._left -= 1
            fire = self._left == 0
        if fire:
            self._fn()


def _spawn(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> Future[R]:
    """Run ``fn`` on a thread of its own and return its future.

    Threads are not what the executor bounds (Docker calls are): a task that waits, for a health gate
    or for an old container's grace period, holds only its own thread, and no task queues behind it.
    """
    future: Future[R] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            future.set_exception(exc)
        else:
            future.set_result(value)

    threading.Thread(target=run, name=f"gitops-{getattr(fn, '__name__', 'task')}").start()
    return future


class _Window:
    """At most ``size`` replicas of one service in transition at once; none admitted after a failure.

    A replica leaves the window when its instance has finished: new container healthy and, when the
    update stops an old one, that one exited. A replica whose old container is still in its grace
    period keeps its place, so with start-first at most ``size`` extra containers run (SECURITY.md I2).
    """

    def __init__(self, size: int) -> None:
        self._free = max(1, size)
        self._failed = False
        self._cond = threading.Condition()

    def enter(self) -> bool:
        """Wait for a free place; False once a replica in the window has failed (admit no more)."""
        with self._cond:
            self._cond.wait_for(lambda: self._free > 0 or self._failed)
            if self._failed:
                return False
            self._free -= 1
            return True

    def leave(self, finished: Future[Any]) -> None:
        with self._cond:
            self._free += 1
            self._failed = self._failed or finished.exception() is not None
            self._cond.notify_all()


class _BoundedInspector:
    """What the health gate asks of a host, with each inspect counted as a Docker call in flight."""

    def __init__(self, host: Host, slots: threading.BoundedSemaphore) -> None:
        self._host = host
        self._slots = slots

    def inspect(self, ref: str) -> dict[str, Any]:
        with self._slots:
            return self._host.inspect(ref)

    def probe_address(self) -> str:
        return self._host.probe_address()


@dataclass
class _Done:
    """What one instance's ops did, so they can be undone."""

    step: Step
    executed: list[Op] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)  # container name -> id
    deferred: list[Op] = field(default_factory=list)


def _noop_hook(step_id: str, status: str, message: str) -> None:
    return None


def _why(exc: Exception) -> str:
    """An exception as one phrase: a HostError's own words, else its type and message (a bug or a
    value Docker's client refused is still reported, never swallowed)."""
    if isinstance(exc, HostError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Executor:
    def __init__(self, desired: DesiredState, hosts: Mapping[str, Host], *, concurrency: int = 8,
                 on_event: EventHook = _noop_hook) -> None:
        self.desired = desired
        self.hosts = hosts
        self.project = desired.project.name
        self.concurrency = concurrency
        self.on_event = on_event
        self.cancel = threading.Event()
        # Told of every container gitops starts, stops or removes, with the Docker events that explains, so an
        # event watcher can tell gitops' own actions from drift.
        self.on_own_action: Callable[[list[str], str], None] = lambda refs, action: None
        self._created: dict[str, str] = {}  # container id -> host, of every container this run created
        # (host, container id) found to carry this project's labels: labels never change, so once is enough
        self._owned: set[tuple[str, str]] = set()
        self._network_hashes = {n.name: n.spec_hash for n in desired.networks if not n.external}
        # The Docker calls in flight, across units, instances and hosts. A stop is not counted: it mostly
        # waits out the old container's grace period, and waiting must not keep other work from Docker.
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        self._lock = threading.Lock()

    def _call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """One Docker call, holding one of the ``concurrency`` slots while it runs."""
        with self._slots:
            return fn(*args, **kwargs)

    # -- entry point ------------------------------------------------------------------------------------
    def apply(self, plan: Plan) -> ApplyResult:
        started = time.monotonic()
        result = ApplyResult()
        for host, error in plan.unreachable:
            result.errors.append(f"host {host} is unreachable: {error}")
        plan_schedule = schedule(plan, self.desired)
        for step in plan.steps:
            if step.action == "noop":
                result.steps[step.id] = StepResult("unchanged")
        # Units report STARTED (every instance running), HEALTHY (every instance past its health gate; old
        # containers may still be stopping) and then whether they succeeded, through one queue.
        messages: queue.Queue[tuple[Unit, Level | bool]] = queue.Queue()
        reached: dict[Level, set[Unit]] = {Level.STARTED: set(), Level.HEALTHY: set()}
        final: dict[Unit, bool] = {}  # unit -> succeeded
        pending = set(plan_schedule.units)
        in_flight = 0

        def run(unit: Unit) -> None:
            try:
                ok = self._run_unit(unit, result, lambda: messages.put((unit, Level.STARTED)),
                                    lambda: messages.put((unit, Level.HEALTHY)))
            except Exception as exc:  # noqa: BLE001 - a bug must not leave other units hanging
                ok = False
                with self._lock:
                    result.errors.append(f"{unit}: internal error: {exc!r}")
            messages.put((unit, ok))

        while pending or in_flight:
            for unit in sorted(pending, key=str):
                verdict, blockers = readiness(plan_schedule.needs[unit], reached, final)
                if verdict is Verdict.SKIP:
                    pending.discard(unit)
                    final[unit] = False
                    self._skip(list(unit.steps), result, f"skipped: {', '.join(blockers)} failed")
                elif verdict is Verdict.GO:
                    pending.discard(unit)
                    in_flight += 1
                    _spawn(run, unit)
            if not in_flight:
                if pending:  # cannot happen with an acyclic plan; never wait forever on it
                    result.errors.append(f"units never became ready: {', '.join(sorted(map(str, pending)))}")
                break
            unit, message = messages.get()
            if isinstance(message, Level):
                reached[message].add(unit)
            else:
                in_flight -= 1
                final[unit] = message
        self._swarm_cleanup(plan)
        result.seconds = time.monotonic() - started
        result.created = dict(self._created)
        return result

    def _swarm_cleanup(self, plan: Plan) -> None:
        """Once every unit is done: the secrets and configs that no Swarm service of the project mounts any more
        (a change or a removal leaves them behind; Swarm cannot change one in place), once per cluster."""
        clusters = {s.host for s in plan.steps for op in s.ops if op.kind.startswith("service_")}
        for name in sorted(clusters):
            host = self.hosts.get(name)
            if isinstance(host, SwarmCluster):
                with contextlib.suppress(HostError):  # the next apply removes them otherwise
                    self._call(host.remove_unused_files, self.project)

    def _skip(self, steps: list[Step], result: ApplyResult, message: str) -> None:
        for step in steps:
            result.steps[step.id] = StepResult("skipped", message)
            self.on_event(step.id, "skipped", message)
        names = {s.name for s in steps if s.kind == "service"}
        for name in names:
            result.services[name] = ServiceOutcome(name, "skipped", message)

    def _run_unit(self, unit: Unit, result: ApplyResult, started: Callable[[], None],
                  healthy: Callable[[], None]) -> bool:
        if unit.kind is UnitKind.SERVICE:
            return self._service(self.desired.service(unit.name), list(unit.steps), result, started, healthy)
        if unit.kind is UnitKind.PRUNE:
            return self._removals(list(unit.steps), result)
        return self._infra(unit.steps[0], result)

    def _record(self, result: ApplyResult, step: Step, status: StepStatus, message: str = "",
                seconds: float = 0.0) -> None:
        with self._lock:
            result.steps[step.id] = StepResult(status, message, seconds)
        self.on_event(step.id, status, message)

    # -- networks and volumes ------------------------------------------------------------------------------
    def _infra(self, step: Step, result: ApplyResult) -> bool:
        host = self.hosts[step.host]
        started = time.monotonic()
        try:
            for op in step.ops:
                if op.kind == "network_create":
                    self._call(host.create_network, self.project,
                               next(n for n in self.desired.networks if n.name == step.name))
                elif op.kind == "volume_create":
                    self._call(host.create_volume, self.project,
                               next(v for v in self.desired.volumes if v.name == step.name))
                elif op.kind == "volume_remove":
                    self._call(host.remove_volume, self.project, step.name)
        except HostError as exc:
            self._record(result, step, "failed", str(exc))
            return False
        self._record(result, step, "done", seconds=time.monotonic() - started)
        return True

    # -- removals (prune, scale down, leftovers) ---------------------------------------------------------
    def _removals(self, steps: list[Step], result: ApplyResult) -> bool:
        futures = {_spawn(self._remove_step, s): s for s in steps}
        ok = True
        for future, step in futures.items():
            error = future.exception()
            if error is None:
                self._record(result, step, "done")
            else:
                ok = False
                self._record(result, step, "failed", str(error))
        return ok

    def _remove_step(self, step: Step) -> None:
        grace = self._grace(step.name)
        for op in step.ops:
            ref = op.ref
            if op.kind == "service_remove":
                self._swarm_remove(step, op)
            elif op.kind == "stop":
                self._stop(step, op.container, ref, grace)
            elif op.kind == "remove":
                self._remove(step, op.container, ref)

    # -- Swarm services: Swarm rolls the tasks; gitops sends the spec and follows the rollout to its end ---------
    def _cluster(self, step: Step) -> SwarmCluster:
        host = self.hosts[step.host]
        if not isinstance(host, SwarmCluster):
            raise HostError(step.host, f"{step.label}: the plan has a Swarm service on {step.host}, which is not a "
                            "Swarm cluster (Host mode: swarm)")
        return host

    def _swarm_remove(self, step: Step, op: Op) -> None:
        """Remove a Swarm service, once it is known to carry the project's labels and the step's service."""
        cluster = self._cluster(step)
        assert isinstance(op.args, SwarmArgs)
        try:
            info = self._call(cluster.inspect_service, op.args.id or op.container)
        except NotFound:
            return
        labels = (info.get("Spec") or {}).get("Labels") or {}
        wanted = {LABEL_MANAGED: "true", LABEL_PROJECT: self.project, LABEL_SERVICE: step.name}
        if any(labels.get(k) != v for k, v in wanted.items()):
            raise HostError(step.host, f"refusing to remove Swarm service {host_text(op.container)}: it is not "
                            f"service {step.name} of project {self.project}; gitops never touches a service it "
                            "does not manage")
        self._call(cluster.remove_service, str(info["ID"]))

    def _swarm_service(self, svc: ServiceSpec, steps: list[Step], result: ApplyResult,
                       all_running: Callable[[], None], all_healthy: Callable[[], None]) -> bool:
        started = time.monotonic()
        (step,) = [s for s in steps if s.action in ("create", "update")]
        removals = [s for s in steps if s.action == "remove"]
        self.on_event(step.id, "running", step.reason)
        try:
            cluster = self._cluster(step)
            spec, _ = swarm_service_spec(self.project, svc, self.desired.revision, host=cluster.spec,
                                         declared_volumes=self.desired.volumes)
            auth = cluster.registry_auth(svc.run_image)
            service_id = ""
            for op in step.ops:
                assert isinstance(op.args, SwarmArgs)
                if op.kind == "service_create":
                    service_id = self._call(cluster.create_service, spec, auth=auth, project=self.project, svc=svc)
                elif op.kind == "service_update":
                    service_id = op.args.id
                    self._own_service(cluster, step, service_id)
                    self._call(cluster.update_service, service_id, op.args.version, spec, auth=auth,
                               project=self.project, svc=svc)
        except Exception as exc:  # noqa: BLE001 - the service did not start its rollout: nothing to put back
            message = f"{step.label} on {step.host}: {_why(exc)}"
            self._record(result, step, "failed", message)
            self._skip(removals, result, "skipped: the service's update did not start")
            temporary = isinstance(exc, HostError) and exc.temporary
            result.services[svc.name] = ServiceOutcome(svc.name, "failed", message, temporary=temporary)
            return False
        batches = -(-max(1, svc.replicas) // max(1, svc.update.parallelism))
        monitor, _ = monitor_seconds(svc)
        deadline = time.monotonic() + batches * (svc.update.healthy_deadline + monitor + svc.stop_grace_period)
        try:
            done = cluster.converge(service_id, deadline=deadline, cancel=self.cancel,
                                    roll_back=svc.update.failure_action == "rollback")
        except HostError as exc:  # the manager stopped answering while the rollout went on: Swarm carries on
            done = Convergence("failed", f"following the rollout: {exc}")
        if not done.ok:
            message = f"{step.label} on {step.host}: {done.message}"
            if done.task_errors:
                message += f" ({'; '.join(done.task_errors)})"
            status: Literal["rolled_back", "paused", "failed"] = (
                "rolled_back" if done.status == "rolled_back" and step.action == "update" else
                "paused" if done.status == "paused" else "failed")
            self._record(result, step, "rolled_back" if status == "rolled_back" else "failed", message)
            self._skip(removals, result, "skipped: the service did not converge")
            result.services[svc.name] = ServiceOutcome(svc.name, status, message, done.logs.strip(),
                                                       "; ".join(done.task_errors))
            return False
        self._record(result, step, "done", seconds=time.monotonic() - started)
        all_running()  # every task runs, healthy, on the new spec: dependents may go
        all_healthy()
        ok = self._removals(removals, result) if removals else True
        result.services[svc.name] = ServiceOutcome(svc.name, "converged" if ok else "failed")
        return ok

    def _own_service(self, cluster: SwarmCluster, step: Step, service_id: str) -> None:
        info = self._call(cluster.inspect_service, service_id)
        labels = (info.get("Spec") or {}).get("Labels") or {}
        wanted = {LABEL_MANAGED: "true", LABEL_PROJECT: self.project, LABEL_SERVICE: step.name}
        if any(labels.get(k) != v for k, v in wanted.items()):
            raise HostError(step.host, f"refusing to update Swarm service {host_text(service_id)}: it is not "
                            f"service {step.name} of project {self.project}")

    # -- container actions: only ever on the project's own containers -------------------------------------
    def _own(self, step: Step, ref: str, action: str) -> str | None:
        """The full id of container ``ref`` on the step's host, once it is known to carry the project's
        ownership labels and the step's service; None when there is no such container.

        Raises HostError for anything else: the plan may have been edited, and nothing without the
        project's labels is ever stopped, started or removed (SECURITY.md item 14).
        """
        host = self.hosts[step.host]
        if (step.host, ref) in self._owned or self._created.get(ref) == step.host:
            return ref
        try:
            info = self._call(host.inspect, ref)
        except NotFound:
            return None
        labels = (info.get("Config") or {}).get("Labels") or {}
        wanted = {LABEL_MANAGED: "true", LABEL_PROJECT: self.project, LABEL_SERVICE: step.name}
        if any(labels.get(k) != v for k, v in wanted.items()):
            raise HostError(step.host, f"refusing to {action} container {host_text(ref)}: it is not a container of "
                            f"service {step.name} of project {self.project} (labels "
                            f"{', '.join(f'{k}={v}' for k, v in wanted.items())}); gitops never touches a "
                            "container it does not manage")
        container_id = str(info.get("Id") or ref)
        with self._lock:
            self._owned.add((step.host, container_id))
        return container_id

    def _stop(self, step: Step, name: str, ref: str, timeout: float) -> None:
        container_id = self._own(step, ref, "stop")
        if container_id is not None:  # already gone: nothing to stop
            self.on_own_action([name, ref, container_id], "stop")
            # Not counted as a call in flight: Docker answers once the container has exited, which for one
            # that drains (or ignores SIGTERM) is its whole grace period of waiting.
            self.hosts[step.host].stop(container_id, timeout=timeout)

    def _start(self, step: Step, name: str, ref: str) -> None:
        container_id = self._own(step, ref, "start")
        if container_id is None:
            raise HostError(step.host, f"start {host_text(ref)}: no such container")
        self.on_own_action([name, ref, container_id], "start")
        self._call(self.hosts[step.host].start, container_id)

    def _remove(self, step: Step, name: str, ref: str) -> None:
        container_id = self._own(step, ref, "remove")
        if container_id is not None:  # already gone: nothing to remove
            self.on_own_action([name, ref, container_id], "remove")
            self._call(self.hosts[step.host].remove, container_id)

    def _grace(self, service: str) -> float:
        try:
            return self.desired.service(service).stop_grace_period
        except KeyError:
            return 10.0

    # -- services -----------------------------------------------------------------------------------------
    def _service(self, svc: ServiceSpec, steps: list[Step], result: ApplyResult,
                 all_running: Callable[[], None], all_healthy: Callable[[], None]) -> bool:
        if any(op.kind in ("service_create", "service_update") for s in steps for op in s.ops):
            return self._swarm_service(svc, steps, result, all_running, all_healthy)
        started = time.monotonic()
        creates = [s for s in steps if s.action == "create"]
        updates = sorted((s for s in steps if s.action == "update"), key=lambda s: (s.slot or 0, s.host))
        removals = [s for s in steps if s.action == "remove"]
        for step in creates + updates:
            self.on_event(step.id, "running", step.reason)

        # 1. images, once per host, before any container is touched
        hosts_needing = sorted({s.host for s in creates + updates if any(o.kind == "pull" for o in s.ops)})
        pulls = {h: _spawn(self._call, self.hosts[h].ensure_image, svc.run_image, svc.pull_policy)
                 for h in hosts_needing}
        pull_errors = {h: f.exception() for h, f in pulls.items() if f.exception() is not None}
        if pull_errors:
            for step in creates + updates:
                message = str(pull_errors.get(step.host) or "image not available on another host of this service")
                self._record(result, step, "failed", message)
            self._skip(removals, result, "skipped: the service's update did not start")
            temporary = all(isinstance(e, HostError) and e.temporary for e in pull_errors.values())
            result.services[svc.name] = ServiceOutcome(svc.name, "failed", "; ".join(map(str, pull_errors.values())),
                                                       temporary=temporary)
            return False

        done: list[_Done] = []
        failure: _InstanceFailed | None = None
        # Dependents waiting for this service to be healthy may go once every new container has passed its
        # health gate: they need not wait for the old containers to stop.
        healthy = _Countdown(len(creates) + len(updates), all_healthy)
        # 2. new instances: nothing to protect, so all at once. Once all of them run (existing instances
        # already do), dependents that only need this service started may go.
        running = _Countdown(len(creates), all_running)
        items = self._collect([_spawn(self._instance, svc, step, running, healthy) for step in creates])
        # 3. the rolling update, at most `parallelism` replicas at a time
        if not any(isinstance(item, _InstanceFailed) for item in items):
            items += self._roll(svc, updates, healthy)
        for item in items:
            if isinstance(item, _InstanceFailed):
                failure = failure or item
            else:
                done.append(item)

        if failure is not None:
            return self._fail(svc, creates, updates, removals, done, failure, result, started)

        # 5. the service is healthy everywhere: now the old containers can go
        self._finish(done, result, started)
        ok = self._removals(removals, result) if removals else True
        result.services[svc.name] = ServiceOutcome(svc.name, "converged" if ok else "failed")
        return ok

    def _roll(self, svc: ServiceSpec, updates: list[Step],
              healthy: Callable[[], None]) -> list[_Done | _InstanceFailed]:
        """Update instances in order, at most ``update.parallelism`` in transition at once (see _Window);
        after a failure, the ones already in transition finish and no other starts."""
        window = _Window(svc.update.parallelism)
        futures: list[Future[_Done]] = []
        for step in updates:
            if not window.enter():
                break
            future = _spawn(self._instance, svc, step, lambda: None, healthy)
            future.add_done_callback(window.leave)
            futures.append(future)
        return self._collect(futures)

    def _finish(self, done: list[_Done], result: ApplyResult, started: float) -> None:
        """Record updated instances done and remove the old containers they left stopped, in parallel.

        One path for a converged service and for the replicas a paused one keeps: a host error while
        removing is reported in ``result.errors``, never raised (the new containers serve either way).
        """
        removing = [(item, _spawn(self._remove_deferred, item)) for item in done]
        for item, future in removing:
            problem = future.result()
            if problem:
                with self._lock:
                    result.errors.append(f"{item.step.id}: could not remove old container: {problem}")
            self._record(result, item.step, "done", seconds=time.monotonic() - started)

    def _remove_deferred(self, item: _Done) -> str:
        """Remove the old containers an instance's update left stopped. Returns problems, if any."""
        problems = []
        for op in item.deferred:
            try:
                self._remove(item.step, op.container, op.ref)
            except Exception as exc:  # noqa: BLE001 - reported; the other removals still go ahead
                problems.append(_why(exc))
        return "; ".join(problems)

    @staticmethod
    def _collect(futures: list[Future[_Done]]) -> list[_Done | _InstanceFailed]:
        """Every instance's outcome, once all have finished; anything but an instance failure is a bug."""
        wait(futures)
        out: list[_Done | _InstanceFailed] = []
        for future in futures:
            error = future.exception()
            if isinstance(error, _InstanceFailed):
                out.append(error)
            elif error is not None:
                raise error
            else:
                out.append(future.result())
        return out

    def _instance(self, svc: ServiceSpec, step: Step, on_started: Callable[[], None],
                  on_healthy: Callable[[], None]) -> _Done:
        host = self.hosts[step.host]
        record = _Done(step)
        current = ""
        try:
            for op in step.ops:
                ref = record.refs.get(op.container) or op.ref
                if op.kind == "pull":
                    continue  # done once per host before the batch
                if op.kind == "adopt":
                    record.refs[op.container] = op.ref  # the new one of this slot
                    current = op.container
                if op.kind == "create":
                    assert isinstance(op.args, CreateArgs)  # Op refuses other args for a create
                    self.on_own_action([op.container], "start")
                    made = self._call(host.create_container, self.project, svc, op.args.slot,
                                      self.desired.revision, self._network_hashes)
                    record.refs[op.container] = made.id
                    if not made.adopted:  # an adopted one may be a copy made by hand: never trusted unseen
                        with self._lock:
                            self._created[made.id] = step.host
                    current = op.container
                    failpoint("after_create")
                elif op.kind == "start":
                    self._start(step, op.container, ref)
                    current = op.container
                    failpoint("after_start")
                    on_started()
                elif op.kind == "wait_healthy":
                    wait_healthy(_BoundedInspector(host, self._slots), ref, svc, cancel=self.cancel)
                    on_healthy()
                elif op.kind == "stop":
                    self._stop(step, op.container, ref, svc.stop_grace_period)
                    failpoint("after_stop_old")
                elif op.kind == "remove":
                    if isinstance(op.args, RemoveArgs) and op.args.after == "service":
                        record.deferred.append(op)
                        continue
                    self._remove(step, op.container, ref)
                record.executed.append(op)
        except HealthFailure as exc:
            ref = record.refs.get(current, current)
            raise _InstanceFailed(record, f"{step.label} on {step.host}: {exc}", logs=self._call(host.logs, ref),
                                  detail=exc.detail, temporary=exc.temporary) from exc
        except HostError as exc:
            raise _InstanceFailed(record, f"{step.label} on {step.host}: {exc}", temporary=exc.temporary) from exc
        except Exception as exc:
            # Anything else (docker-py refusing a value while building the create request, a bug) fails
            # the instance the same way, so that _fail puts back an old container already stopped.
            raise _InstanceFailed(record, f"{step.label} on {step.host}: {_why(exc)}") from exc
        return record

    def _undo(self, item: _Done) -> str:
        """Revert one instance: remove what was created, start what was stopped. Returns problems, if any.
        A container started by a repair stays running: it was down before, and may yet become healthy.

        Every op is undone even when an earlier undo failed: an old container must get its chance to
        start again whatever happened to the new one.
        """
        problems = []
        for op in reversed(item.executed):
            ref = item.refs.get(op.container) or op.ref
            try:
                if op.undo == "remove":
                    self._remove(item.step, op.container, ref)
                elif op.undo == "start":
                    self._start(item.step, op.container, ref)
            except Exception as exc:  # noqa: BLE001 - reported with the failure; the rest is still undone
                problems.append(_why(exc))
        return "; ".join(problems)

    def _fail(self, svc: ServiceSpec, creates: list[Step], updates: list[Step], removals: list[Step],
              done: list[_Done], failure: _InstanceFailed, result: ApplyResult, started: float) -> bool:
        """Roll back (or pause) after a failed instance, and report the failure with its evidence."""
        action = svc.update.failure_action
        failed_step = failure.step
        # The failing instance of an update is always reverted: it must not stay half-done.
        not_undone = self._undo(failure.record) if failed_step.action == "update" else ""
        outcome_status: Literal["rolled_back", "paused", "failed"]
        rollout: list[Step] = []
        if action == "rollback":
            for item in done:
                if item.step.action == "update":
                    problem = self._undo(item)
                    self._record(result, item.step, "rolled_back", problem or "rolled back to the previous spec")
                else:
                    self._record(result, item.step, "done")
            # A repair (a container found stopped, or replaced by hand) put back as it was found is no rollback
            # to a previous version: the spec stays the one that runs, and the repair is tried again later.
            rollout = [s for s in updates if s.finding is None]
            outcome_status = "rolled_back" if rollout else "failed"
        else:
            self._finish(done, result, started)  # keep what succeeded; its old container is no longer needed
            outcome_status = "paused"
        handled = {d.step.id for d in done} | {failed_step.id}
        self._record(result, failed_step, "failed", str(failure))
        for step in creates + updates:
            if step.id not in handled:
                self._record(result, step, "skipped", f"not started: {failed_step.label} failed")
        self._skip(removals, result, "skipped: the service did not converge")
        message = str(failure)
        if not_undone:
            message += f"; putting {failed_step.label} back failed: {not_undone}"
        if outcome_status == "rolled_back":
            message += "; rolled back to the previous version on every host"
        elif outcome_status == "failed" and updates and not rollout:
            message += "; a repair, not a rollout: the container is left as the repair made it"
        elif outcome_status == "paused":
            message += "; paused (failureAction: pause)"
        result.services[svc.name] = ServiceOutcome(svc.name, outcome_status, message, failure.logs.strip(),
                                                   failure.detail, temporary=failure.temporary)
        return False
