"""A Docker host as a dict, for executor tests that need no engine: it records every call that changes
something, can fail chosen calls, and can make stops take time the way a container's grace period does."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gitops.core.model import LABEL_MANAGED, LABEL_PROJECT, LABEL_SERVICE, DesiredState, ServiceSpec
from gitops.core.observed import converged
from gitops.core.ports import Created
from gitops.errors import NotFound


class FakeHost:
    """Containers as a dict: id -> (labels, state). Thread-safe, like DockerHost."""

    name = "local"

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_create: Exception | None = None
        self.fail_create_slots: set[int] | None = None  # None: every slot fails while fail_create is set
        self.fail_remove: dict[str, Exception] = {}  # container id -> what removing it raises
        # Called inside stop() before the container counts as exited: a slow stop blocks here.
        self.stopping: Callable[[str], None] = lambda ref: None
        self.most_running: dict[str, int] = {}  # service -> the most containers of it running at once
        self.lock = threading.Lock()

    def add(self, cid: str, labels: dict[str, str], state: str = "running") -> None:
        with self.lock:
            self.containers[cid] = {"labels": dict(labels), "state": state}

    def running(self, service: str) -> int:
        with self.lock:
            return sum(1 for c in self.containers.values()
                       if c["state"] == "running" and c["labels"].get(LABEL_SERVICE) == service)

    def ensure_image(self, image: str, policy: str) -> None:
        return None

    def create_container(self, project: str, svc: ServiceSpec, slot: int, revision: str,
                         networks: dict[str, str] | None = None) -> Created:
        if self.fail_create is not None and (self.fail_create_slots is None or slot in self.fail_create_slots):
            raise self.fail_create
        cid = f"new-{svc.name}-{slot}"
        self.add(cid, {LABEL_MANAGED: "true", LABEL_PROJECT: project, LABEL_SERVICE: svc.name}, "created")
        self._call("create", cid)
        return Created(cid)

    def _call(self, what: str, ref: str) -> None:
        with self.lock:
            self.calls.append((what, ref))

    def _get(self, ref: str) -> dict[str, Any]:
        with self.lock:
            if ref not in self.containers:
                raise NotFound(self.name, f"No such container: {ref}")
            return self.containers[ref]

    def start(self, ref: str) -> None:
        container = self._get(ref)
        service = container["labels"].get(LABEL_SERVICE, "")
        with self.lock:
            container["state"] = "running"
            self.calls.append(("start", ref))
        now = self.running(service)
        with self.lock:
            self.most_running[service] = max(self.most_running.get(service, 0), now)

    def stop(self, ref: str, *, timeout: float) -> None:
        self._get(ref)
        self._call("stop", ref)
        self.stopping(ref)
        self._get(ref)["state"] = "exited"

    def remove(self, ref: str) -> None:
        self._get(ref)
        if ref in self.fail_remove:
            raise self.fail_remove[ref]
        with self.lock:
            del self.containers[ref]
            self.calls.append(("remove", ref))

    def inspect(self, ref: str) -> dict[str, Any]:
        c = self._get(ref)
        return {"Id": ref, "Config": {"Labels": c["labels"]}, "State": {"Status": c["state"]}}

    def logs(self, ref: str, *, tail: int = 20) -> str:
        return ""

    def probe_address(self) -> str:
        return "127.0.0.1"


def host_with(desired: DesiredState) -> FakeHost:
    """A fake host holding ``desired``'s containers as converged() names them, running."""
    host = FakeHost()
    for c in converged(desired).hosts[0].containers:
        host.add(c.id, {LABEL_MANAGED: "true", LABEL_PROJECT: desired.project.name, LABEL_SERVICE: c.service})
    return host
