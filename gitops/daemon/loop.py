"""The loop: one worker runs passes; every trigger only asks for one.

Triggers (the poll timer, webhooks, file changes, Docker events, a manual request, the timer for
a crash-looping container's next try) go to a Scheduler. Requests that arrive while a pass is
pending merge into it, and at most one more pass follows the one that is running, however many
requests came in meanwhile. Webhook requests are also coalesced by the commit they announce: a
batch that only names the commit the last pass converged asks for nothing. The worker sleeps on a
condition until a request or a timer comes or the next poll is due (interval with +-10% jitter):
no busy polling.

SIGTERM or SIGINT: the worker finishes the pass in hand (a rolling update is not cut in half), then
the daemon exits; a second signal also cancels health waits in progress, which roll back safely.
"""

from __future__ import annotations

import random
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gitops.core.plan import Plan
from gitops.daemon.activity import Activity
from gitops.daemon.metrics import Metrics
from gitops.daemon.server import ServerLimits, make_app, make_server
from gitops.daemon.status import pending_plan, status_document
from gitops.engine.reconciler import PassResult, Reconciler
from gitops.errors import HostError
from gitops.hosts.docker import DockerHost
from gitops.hosts.registry import is_loopback
from gitops.log import get_logger


@dataclass(frozen=True)
class Batch:
    """Every request since the worker last took one, merged: what one pass is asked to do."""

    triggers: tuple[str, ...]
    force: bool = False
    requests: int = 0  # how many requests were merged
    heads: frozenset[str] = frozenset()  # commits webhooks said the tracked ref moved to
    headless: bool = True  # some request named no commit (poll, timer, event, file change, webhook without one)

    def asks_only_for(self, revision: str) -> bool:
        """True when every request was a webhook naming ``revision`` as the ref's new head."""
        return not self.force and not self.headless and self.heads == {revision}


HEAL_RETRY = "crash-loop retry"


class Scheduler:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._cond = threading.Condition()
        self._clock = clock
        self._pending: list[str] = []
        self._force = False
        self._count = 0
        self._heads: set[str] = set()
        self._headless = False
        self._timers: dict[str, float] = {}  # trigger -> when (clock) to request it
        self._stopped = False
        self.requests = 0

    def request(self, trigger: str, *, force: bool = False, head: str = "") -> None:
        """Ask for a pass; ``head`` is the commit a webhook says the tracked ref now points to, if it says."""
        with self._cond:
            self._add(trigger, force=force, head=head)
            self._cond.notify_all()

    def _add(self, trigger: str, *, force: bool = False, head: str = "") -> None:
        self.requests += 1
        self._count += 1
        if trigger not in self._pending:
            self._pending.append(trigger)
        self._force = self._force or force
        if head:
            self._heads.add(head)
        else:
            self._headless = True

    def schedule(self, trigger: str, at: float | None) -> None:
        """Request ``trigger`` at ``at`` (the scheduler's clock), replacing an earlier timer of it; None cancels."""
        with self._cond:
            if at is None:
                self._timers.pop(trigger, None)
            else:
                self._timers[trigger] = at
            self._cond.notify_all()

    def take(self, timeout: float) -> Batch | None:
        """Wait up to ``timeout`` for requests (timers come due as requests); return them merged, a 'poll'
        batch on timeout, or None once stopped."""
        deadline = self._clock() + max(0.0, timeout)
        with self._cond:
            while not self._stopped:
                now = self._clock()
                for trigger, at in sorted(self._timers.items(), key=lambda item: item[1]):
                    if at <= now:
                        del self._timers[trigger]
                        self._add(trigger)
                if self._pending:
                    batch = Batch(tuple(self._pending), self._force, self._count, frozenset(self._heads),
                                  self._headless)
                    self._pending, self._force, self._count, self._heads, self._headless = [], False, 0, set(), False
                    return batch
                if now >= deadline:
                    return Batch(("poll",))
                self._cond.wait(min([deadline, *self._timers.values()]) - now)
            return None

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped


class Daemon:
    def __init__(self, reconciler: Reconciler, *, interval: float = 60.0, metrics: Metrics | None = None,
                 jitter: float = 0.1, rng: Callable[[], float] = random.random,
                 activity: Activity | None = None) -> None:
        self.reconciler = reconciler
        self.activity = activity or Activity()  # what a pass is doing now, for live views
        self.interval = interval
        self.jitter = jitter
        self.rng = rng
        self.scheduler = Scheduler()
        self.metrics = metrics or Metrics()
        self.passes = 0
        self.log = get_logger(component="daemon")
        self._ready = threading.Event()
        self._worker_alive = False
        self._signals = 0
        self.after_pass: Callable[[], None] = lambda: None

    # -- DaemonView for the HTTP server --------------------------------------------------------------------
    def request_pass(self, trigger: str, head: str = "") -> None:
        self.scheduler.request(trigger, head=head)

    def status(self) -> dict[str, Any]:
        """The document `gitops status --format json` prints, from the last pass's desired state (pins
        applied) and observation: changes pending are planned afresh, not those of the plan just applied."""
        r = self.reconciler
        return status_document(r.state, r.last_desired, r.last_observed, warnings=r.notes)

    def status_and_pending(self) -> tuple[dict[str, Any], Plan | None]:
        """status() and the plan whose changes it counts as pending, both from one reading of the last pass's
        desired state and observation (for the web page, which lists the plan's steps)."""
        r = self.reconciler
        desired, observed, notes = r.last_desired, r.last_observed, r.notes
        return (status_document(r.state, desired, observed, warnings=notes),
                pending_plan(desired, observed, notes))

    def history(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` passes, newest first, as `gitops history --format json` has them."""
        return [record.to_dict() for record in self.reconciler.state.passes(limit=limit)]

    def alive(self) -> bool:
        return self._worker_alive and not self.scheduler.stopped

    def ready(self) -> bool:
        return self._ready.is_set()

    # -- the loop -----------------------------------------------------------------------------------------
    def next_delay(self) -> float:
        return self.interval * (1 + self.jitter * (2 * self.rng() - 1))

    def run_worker(self) -> None:
        """Run passes until stopped. The first pass starts at once."""
        self._worker_alive = True
        self.scheduler.request("startup")
        next_poll = time.monotonic() + self.next_delay()
        try:
            while True:
                batch = self.scheduler.take(next_poll - time.monotonic())
                if batch is None:
                    break
                if self._already_applied(batch):
                    continue
                self.log.info("pass.starting", trigger=",".join(batch.triggers), requests=batch.requests)
                self.run_pass(",".join(batch.triggers), force=batch.force)
                self._ready.set()
                self.after_pass()
                self._schedule_heal_retry()
                next_poll = time.monotonic() + self.next_delay()
        finally:
            self._worker_alive = False

    def _already_applied(self, batch: Batch) -> bool:
        """Webhooks that only say the ref moved to the commit the last pass fetched and converged ask for
        nothing: a burst is coalesced by the head it announces, however long it lasts. (Drift is not theirs
        to find: Docker events and the poll do that.)"""
        last = self.reconciler.last_result
        if last is None or not last.ok or not batch.asks_only_for(last.revision):
            return False
        self.log.info("webhooks.coalesced", requests=batch.requests, revision=last.revision[:12],
                      note="the last pass already applied this commit")
        return True

    # Started a little after the backoff ends, so that the pass finds it over (its clock is not this one).
    RETRY_MARGIN = 0.1

    def _schedule_heal_retry(self) -> None:
        """Wake up when the first crash-looping container held back by the backoff may start again: nothing
        else would ask for that pass (its container is stopped: no events) before the next poll."""
        at = self.reconciler.heal.retry_at
        delay = None if at is None else at - self.reconciler.clock()
        if delay is None or delay <= 0:
            self.scheduler.schedule(HEAL_RETRY, None)
            return
        self.scheduler.schedule(HEAL_RETRY, time.monotonic() + delay + self.RETRY_MARGIN)
        self.log.info("heal.retry_scheduled", seconds=round(delay + self.RETRY_MARGIN, 3))

    def run_pass(self, trigger: str, *, force: bool = False) -> PassResult:
        self.passes += 1
        return self.reconciler.run_pass(trigger, force=force)

    def stop(self) -> None:
        self.scheduler.stop()

    def install_signal_handlers(self, on_stop: Callable[[], None]) -> None:
        def handle(signum: int, frame: object) -> None:
            self._signals += 1
            self.log.info("daemon.stopping", signal=signal.Signals(signum).name,
                          note="finishing the pass in hand" if self._signals == 1 else "cancelling health waits")
            if self._signals > 1:
                self.reconciler.cancel.set()
            self.stop()
            on_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)


class FolderWatch:
    """Asks for a pass when manifests under ``path`` change (watchdog), debounced."""

    def __init__(self, path: Path, request: Callable[[str], None], *, debounce: float = 0.3) -> None:
        # watchdog only for `daemon --local`: a daemon on a git remote never loads it
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        self.path = Path(path).resolve()
        self.debounce = debounce
        self.request = request
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        watch = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                rel = Path(str(event.src_path)).resolve()
                try:
                    parts = rel.relative_to(watch.path).parts
                except ValueError:
                    return
                if any(p.startswith(".") for p in parts):
                    return  # .git and editor swap files
                watch._changed()

        self._observer = Observer()
        self._observer.schedule(Handler(), str(self.path), recursive=True)

    def _changed(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.debounce, self.request, args=("file change",))
            self._timer.daemon = True
            self._timer.start()

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(5)
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()


class EventWatch:
    """Asks for a pass (debounced) when a managed container dies, stops or disappears on any host.

    One thread per host; a broken stream (the engine restarted, the host went away) reconnects with
    a capped backoff. The poll remains the safety net for anything the stream misses.
    """

    def __init__(self, reconciler: Reconciler, request: Callable[[str], None], *, debounce: float = 1.0) -> None:
        self.reconciler = reconciler
        self.request = request
        self.debounce = debounce
        self.stop_event = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.log = get_logger(component="events")

    def sync_hosts(self) -> None:
        """Start a watcher for each host of the last desired state that has none yet."""
        desired = self.reconciler.last_desired
        if desired is None or self.stop_event.is_set():
            return
        for spec in desired.hosts:
            if spec.name in self._threads or spec.swarm:  # a Swarm service's drift is seen by each pass's list call
                continue
            host = DockerHost(spec)
            thread = threading.Thread(target=self._watch, args=(host, desired.project.name), daemon=True,
                                      name=f"gitops-events-{spec.name}")
            self._threads[spec.name] = thread
            thread.start()

    def _watch(self, host: Any, project: str) -> None:
        delay = 1.0
        while not self.stop_event.is_set():
            try:
                for event in host.container_events(project, self.stop_event):
                    delay = 1.0
                    attrs = (event.get("Actor") or {}).get("Attributes") or {}
                    action = str(event.get("Action", ""))
                    if self.reconciler.heal.is_own_event(action, attrs.get("name", ""), str(event.get("id", ""))):
                        continue  # gitops did this itself
                    self._changed(f"docker event: {action} {attrs.get('name', '')} on {host.name}")
            except HostError as exc:
                self.log.info("events.reconnecting", host=host.name, error=str(exc), seconds=delay)
            if self.stop_event.wait(delay):
                return
            delay = min(30.0, delay * 2)

    def _changed(self, reason: str) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.debounce, self.request, args=(reason,))
            self._timer.daemon = True
            self._timer.start()

    def stop(self) -> None:
        self.stop_event.set()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()


def exposure_warning(host: str, *, token: bool) -> str | None:
    """What to warn about when the web page, /status and /metrics are open to more than this machine."""
    if token or is_loopback(host):  # a host name (not localhost) may resolve anywhere
        return None
    return (f"listening on {host} without a status token: anyone who reaches the port can read the web page, "
            "/status and /metrics; set --status-token-file or GITOPS_STATUS_TOKEN")


FD_OVERHEAD = 32  # the listener, the event loop's own descriptors, log files


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (git, Docker and the server all need descriptors);
    return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 16
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def fit_limits(limits: ServerLimits, nofile: int) -> ServerLimits:
    """``limits`` with at most half of ``nofile`` for the HTTP server (its connections and its accept
    batch): the other half stays for the worker's git, Docker and state-store connections, however
    many clients connect."""
    share = max(2, nofile // 2 - FD_OVERHEAD)
    batch = min(limits.accept_batch, share // 2)
    connections = min(limits.max_connections, share - batch)
    return replace(limits, accept_batch=batch, max_connections=connections)


def serve(daemon: Daemon, *, listen: str, secret: bytes | None, branch: str,
          watch: Path | None = None, status_token: bytes | None = None,
          limits: ServerLimits | None = None) -> int:
    """Run the daemon in the foreground: HTTP server in a thread, the worker in this (main) thread."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    asked = limits or ServerLimits()
    nofile = raise_fd_limit()
    limits = fit_limits(asked, nofile)
    if limits.max_connections < asked.max_connections:
        daemon.log.warning("daemon.max_connections_lowered", max_connections=limits.max_connections,
                           asked=asked.max_connections, rlimit_nofile=nofile,
                           note="half of RLIMIT_NOFILE stays for git, Docker and the state store")
    app = make_app(daemon, secret=secret or b"", branch=branch, metrics=daemon.metrics,
                   log=lambda event, **kw: daemon.log.info(event, **kw), status_token=status_token)
    if not secret:
        app.router.routes = [r for r in app.router.routes if not getattr(r, "path", "").startswith("/hooks")]
    warning = exposure_warning(host, token=bool(status_token))
    if warning:
        daemon.log.warning("daemon.status_open", message=warning)
    server = make_server(app, host=host, port=int(port), limits=limits)
    thread = threading.Thread(target=server.run, name="gitops-http", daemon=True)
    thread.start()
    watcher = FolderWatch(watch, daemon.request_pass) if watch else None
    if watcher:
        watcher.start()
    events = EventWatch(daemon.reconciler, daemon.request_pass)
    daemon.after_pass = events.sync_hosts

    def on_stop() -> None:
        server.should_exit = True

    daemon.install_signal_handlers(on_stop)
    daemon.log.info("daemon.started", listen=listen, interval=daemon.interval, webhooks=bool(secret),
                    status_token=bool(status_token), max_connections=limits.max_connections,
                    header_timeout=limits.header_timeout, body_timeout=limits.body_timeout,
                    watch=str(watch) if watch else None)
    try:
        daemon.run_worker()
    finally:
        server.should_exit = True
        events.stop()
        if watcher:
            watcher.stop()
        thread.join(5)
        daemon.log.info("daemon.stopped", passes=daemon.passes)
    return 0
