"""The loop: one worker runs passes; every trigger only asks for one.

Triggers (the poll timer, webhooks, file changes, a manual request) go to a Scheduler. Requests
that arrive while a pass is pending merge into it, and at most one more pass follows the one that
is running, however many requests came in meanwhile. The worker sleeps on a condition until a
request comes or the next poll is due (interval with +-10% jitter): no busy polling.

SIGTERM or SIGINT: the worker finishes the pass in hand (a rolling update is not cut in half), then
the daemon exits; a second signal also cancels health waits in progress, which roll back safely.
"""

from __future__ import annotations

import ipaddress
import random
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from gitops.log import get_logger
from gitops.metrics import Metrics
from gitops.reconciler import PassResult, Reconciler
from gitops.server import ServerLimits
from gitops.status import build_status


class Scheduler:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[str] = []
        self._force = False
        self._stopped = False
        self.requests = 0

    def request(self, trigger: str, *, force: bool = False) -> None:
        with self._cond:
            self.requests += 1
            if trigger not in self._pending:
                self._pending.append(trigger)
            self._force = self._force or force
            self._cond.notify_all()

    def take(self, timeout: float) -> tuple[list[str], bool] | None:
        """Wait up to ``timeout`` for requests; return them (or ['poll'] on timeout), None once stopped."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._pending) or self._stopped, timeout=max(0.0, timeout))
            if self._stopped:
                return None
            triggers, force = self._pending or ["poll"], self._force
            self._pending, self._force = [], False
            return triggers, force

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped


class Daemon:
    def __init__(self, reconciler: Reconciler, *, interval: float = 60.0, metrics: Metrics | None = None,
                 jitter: float = 0.1, rng: Callable[[], float] = random.random) -> None:
        self.reconciler = reconciler
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
    def request_pass(self, trigger: str) -> None:
        self.scheduler.request(trigger)

    def status(self) -> dict[str, Any]:
        r = self.reconciler
        state = r.state
        passes = state.passes(limit=1)
        last_plan = r.last_result.plan if r.last_result else None
        return build_status(r.last_desired, r.last_observed, source=state.source(),
                            last_pass=passes[0] if passes else None, pins=state.pins(), last_good=state.last_good(),
                            warnings=last_plan.warnings if last_plan else (),
                            pending_changes=len(last_plan.changes) if last_plan else None)

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
                taken = self.scheduler.take(next_poll - time.monotonic())
                if taken is None:
                    break
                triggers, force = taken
                self.run_pass(",".join(triggers), force=force)
                self._ready.set()
                self.after_pass()
                next_poll = time.monotonic() + self.next_delay()
        finally:
            self._worker_alive = False

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
        from gitops.docker_host import DockerHost

        desired = self.reconciler.last_desired
        if desired is None or self.stop_event.is_set():
            return
        for spec in desired.hosts:
            if spec.name in self._threads:
                continue
            host = DockerHost(spec)
            thread = threading.Thread(target=self._watch, args=(host, desired.project.name), daemon=True,
                                      name=f"gitops-events-{spec.name}")
            self._threads[spec.name] = thread
            thread.start()

    def _watch(self, host: Any, project: str) -> None:
        from gitops.docker_host import HostError

        delay = 1.0
        while not self.stop_event.is_set():
            try:
                for event in host.container_events(project, self.stop_event):
                    delay = 1.0
                    attrs = (event.get("Actor") or {}).get("Attributes") or {}
                    action = str(event.get("Action", ""))
                    if self.reconciler.is_own_event(action, attrs.get("name", ""), str(event.get("id", ""))):
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
    """What to warn about when /status and /metrics are open to more than this machine."""
    if token or _is_loopback(host):
        return None
    return (f"listening on {host} without a status token: anyone who reaches the port can read /status and "
            "/metrics; set --status-token-file or GITOPS_STATUS_TOKEN")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name (other than localhost) may resolve anywhere


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
    from gitops.server import make_app, make_server

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
