"""One applier at a time: a lease held on every reachable host of the project while a pass applies.

Hosts are locked in name order (no two reconcilers can each hold half). The lease expires ``ttl``
seconds after its last renewal; while held, a background thread renews it every ttl/3, so a holder
that dies (SIGKILL, power loss) blocks others for at most ``ttl``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from gitops.core.ports import Host, LeaseState
from gitops.errors import HostError
from gitops.process import pid_alive

DEFAULT_TTL = 300.0


def new_holder() -> str:
    """Who holds a lease: 'machine:pid:nonce'."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_gone(holder: str) -> bool:
    """True when the holder ran on this machine and its process is gone (its lease is dead now).

    A holder on another machine cannot be checked: its lease lapses when its TTL runs out.
    """
    machine, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return machine == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


class Lease:
    def __init__(self, hosts: list[Host], project: str, *, ttl: float = DEFAULT_TTL, holder: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.hosts = sorted(hosts, key=lambda h: h.name)
        self.project = project
        self.ttl = ttl
        self.holder = holder or new_holder()
        self.clock = clock
        self._held: list[Host] = []
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> LeaseState:
        """Take the lease on every host, or none of them. Returns who holds it when it is not ours."""
        for host in self.hosts:
            state = host.lease_acquire(self.project, self.holder, self.ttl, self.clock(), holder_gone=holder_gone)
            if not state.acquired:
                self.release()
                return state
            self._held.append(host)
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True, name="gitops-lease")
        self._renewer.start()
        return LeaseState(True, self.holder, self.clock() + self.ttl)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            for host in list(self._held):
                # a host that is down fails its own steps anyway; the lease there lapses by itself
                with contextlib.suppress(HostError):
                    host.lease_renew(self.project, self.holder, self.ttl, self.clock())

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(5)
            self._renewer = None
        for host in reversed(self._held):
            with contextlib.suppress(HostError):
                host.lease_release(self.project, self.holder)
        self._held = []
