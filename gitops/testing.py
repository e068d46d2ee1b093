"""Test helpers shipped with the package: a Docker host in memory, and observed states to plan against.

``FakeHost`` implements ``gitops.core.ports.Host`` the way ``gitops.hosts.docker.DockerHost`` behaves
towards the engine, without a Docker Engine:

* it writes and reads container labels with the same functions (``container_labels`` /
  ``observed_container``), so the planner sees a fake container exactly as it would see a real one;
* a name taken by this project's container of the same spec is adopted (``Created(adopted=True)``),
  a name taken by anything else is a ``NameConflict``; an unknown container is ``NotFound``, except for
  ``stop`` and ``remove`` (gone is done);
* networks and volumes are kept with their labels, the lease in memory with its expiry;
* faults are chosen per call: ``fail[(call, ref)]`` (``ref`` "*" for any) raises that exception once set,
  ``fail_create`` / ``fail_create_slots`` fail creates, ``unreachable`` makes ``observe`` report the host
  down and every other call raise ``HostUnreachable``;
* how containers behave once started is chosen per service: ``health`` (the health status they report),
  ``crash`` (services whose containers exit by themselves right after start, exit code 1), and
  ``stopping`` (called inside ``stop``, to make a stop take its grace period).

It records every call that changes something in ``calls`` as (call, ref). Thread-safe, like DockerHost.
Engine logic is tested on it; behaviour on Docker is still proven on Docker.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gitops.core.model import (
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_PROJECT,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    DesiredState,
    HostObservation,
    NetworkSpec,
    ObservedContainer,
    ObservedObject,
    ServiceSpec,
    VolumeSpec,
    container_labels,
    container_name,
    network_docker_name,
    object_name,
    observed_container,
    volume_docker_name,
)
from gitops.core.observed import converged, empty, unreachable, with_containers
from gitops.core.ports import Checkout, Created, Host, LeaseState
from gitops.errors import HostUnreachable, NameConflict, NotFound

__all__ = ["FakeHost", "converged", "empty", "host_with", "unreachable", "with_containers"]


class FakeHost:
    """A Docker host in memory: containers as id -> {name, labels, state, health, image, exit_code, ...}.

    ``health`` maps an image or a service name to the health status its containers report once started
    (image first; default "healthy"), for services whose health check Docker runs (exec)."""

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self.containers: dict[str, dict[str, Any]] = {}
        self.networks: dict[str, dict[str, str]] = {}  # docker name -> labels
        self.volumes: dict[str, dict[str, str]] = {}  # docker name -> labels
        self.images: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[tuple[str, str], Exception] = {}  # (call, ref or "*") -> what that call raises
        self.fail_create: Exception | None = None
        self.fail_create_slots: set[int] | None = None  # None: every slot fails while fail_create is set
        self.fail_remove: dict[str, Exception] = {}  # container id -> what removing it raises
        self.unreachable = False
        self.health: dict[str, str] = {}  # image or service -> status its started containers report
        self.crash: set[str] = set()  # services whose containers exit by themselves once started
        self.hand_changes: dict[str, tuple[str, ...]] = {}  # container id -> what settings_drift finds
        # Called inside stop() before the container counts as exited: a slow stop blocks here.
        self.stopping: Callable[[str], None] = lambda ref: None
        self.most_running: dict[str, int] = {}  # service -> the most containers of it running at once
        self.lease: dict[str, tuple[str, float]] = {}  # project -> (holder, expires at)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()  # what container_events yields
        self.lock = threading.RLock()
        self._ids = itertools.count(1)

    # -- set-up and inspection, for tests ---------------------------------------------------------------
    def add(self, cid: str, labels: dict[str, str], state: str = "running", *, name: str = "",
            image: str = "", health: str = "none") -> None:
        """Put a container on the host as if someone (gitops or not) had made it."""
        with self.lock:
            self.containers[cid] = {"name": name or cid, "labels": dict(labels), "state": state, "health": health,
                                    "image": image, "exit_code": 0, "networks": (), "volumes": ()}

    def running(self, service: str) -> int:
        with self.lock:
            return sum(1 for c in self.containers.values()
                       if c["state"] == "running" and c["labels"].get(LABEL_SERVICE) == service)

    def emit(self, action: str, cid: str) -> None:
        """A Docker event about container ``cid``, as container_events yields it."""
        with self.lock:
            c = self.containers.get(cid, {"name": cid, "labels": {}})
            self.events.put({"Type": "container", "Action": action, "id": cid,
                             "Actor": {"ID": cid, "Attributes": {**c["labels"], "name": c["name"]}}})

    def _check(self, call: str, ref: str = "") -> None:
        if self.unreachable:
            raise HostUnreachable(self.name, f"{call}: connection refused")
        for key in ((call, ref), (call, "*")):
            if key in self.fail:
                raise self.fail[key]

    def _record(self, call: str, ref: str) -> None:
        with self.lock:
            self.calls.append((call, ref))

    def _find(self, ref: str) -> tuple[str, dict[str, Any]]:
        with self.lock:
            if ref in self.containers:
                return ref, self.containers[ref]
            for cid, c in self.containers.items():
                if c["name"] == ref:
                    return cid, c
        raise NotFound(self.name, f"No such container: {ref}")

    # -- ports.Host ---------------------------------------------------------------------------------------
    def observe(self, project: str, *, want_networks: Iterable[str] = (),
                want_volumes: Iterable[str] = ()) -> HostObservation:
        if self.unreachable:
            return HostObservation(self.name, False, "list containers: connection refused")
        with self.lock:
            found: list[ObservedContainer] = []
            for cid, c in sorted(self.containers.items()):
                labels = c["labels"]
                if labels.get(LABEL_PROJECT) != project or labels.get(LABEL_MANAGED) != "true":
                    continue
                seen = observed_container(self.name, cid, c["name"], labels, state=c["state"],
                                          health=c["health"] if c["state"] == "running" else "none",
                                          image=c["image"], networks=c["networks"], volumes=c["volumes"])
                if seen is not None:
                    found.append(seen)
            networks = tuple(ObservedObject(self.name, "network", labels.get(LABEL_NAME, ""), name,
                                            labels.get(LABEL_SPEC_HASH, ""))
                             for name, labels in sorted(self.networks.items()) if labels.get(LABEL_PROJECT) == project)
            volumes = tuple(ObservedObject(self.name, "volume", labels.get(LABEL_NAME, ""), name)
                            for name, labels in sorted(self.volumes.items()) if labels.get(LABEL_PROJECT) == project)
        return HostObservation(self.name, True, "", tuple(found), networks, volumes)

    def ensure_image(self, image: str, policy: str) -> None:
        self._check("pull", image)
        with self.lock:
            if policy == "always" or image not in self.images:
                self.calls.append(("pull", image))
            self.images.add(image)

    def create_container(self, project: str, svc: ServiceSpec, slot: int, revision: str,
                         networks: dict[str, str] | None = None) -> Created:
        if self.fail_create is not None and (self.fail_create_slots is None or slot in self.fail_create_slots):
            raise self.fail_create
        name = container_name(project, svc.name, slot, svc.spec_hash)
        self._check("create", name)
        with self.lock:
            for cid, c in self.containers.items():
                if c["name"] == name:
                    labels = c["labels"]
                    if labels.get(LABEL_PROJECT) == project and labels.get(LABEL_SPEC_HASH) == svc.spec_hash:
                        return Created(cid, adopted=True)
                    raise NameConflict(self.name, f"a container named {name} exists and is not managed by "
                                       f"project {project}; gitops never adopts or replaces it")
            cid = f"new-{svc.name}-{slot}"
            if cid in self.containers:
                cid = f"{cid}-{next(self._ids)}"
            self.add(cid, container_labels(project, svc, slot, revision, networks), "created", name=name,
                     image=svc.run_image)
            # Docker keeps a health status only for the checks it runs itself (exec); gitops probes http/tcp
            self.containers[cid]["docker_health"] = svc.healthcheck is not None and svc.healthcheck.kind == "exec"
            self.containers[cid]["networks"] = tuple(network_docker_name(project, n) for n in svc.networks)
            self.containers[cid]["volumes"] = tuple(volume_docker_name(project, m) for m in svc.mounts
                                                    if m.type == "volume")
            self.calls.append(("create", cid))
        return Created(cid)

    def start(self, ref: str) -> None:
        self._check("start", ref)
        cid, container = self._find(ref)
        service = container["labels"].get(LABEL_SERVICE, "")
        with self.lock:
            self.calls.append(("start", cid))
            if service in self.crash:
                container.update(state="exited", exit_code=1, health="none")
            else:
                status = self.health.get(container["image"], self.health.get(service, "healthy"))
                container.update(state="running", exit_code=0,
                                 health=status if container.get("docker_health", True) else "none")
            now = self.running(service)
            self.most_running[service] = max(self.most_running.get(service, 0), now)

    def stop(self, ref: str, *, timeout: float) -> None:
        self._check("stop", ref)
        try:
            cid, container = self._find(ref)
        except NotFound:
            return
        self._record("stop", cid)
        self.stopping(cid)
        with self.lock:
            if container["state"] == "running":
                container.update(state="exited", exit_code=143, health="none")

    def remove(self, ref: str) -> None:
        self._check("remove", ref)
        try:
            cid, _ = self._find(ref)
        except NotFound:
            return
        if cid in self.fail_remove:
            raise self.fail_remove[cid]
        with self.lock:
            self.containers.pop(cid, None)
            self.calls.append(("remove", cid))

    def inspect(self, ref: str) -> dict[str, Any]:
        self._check("inspect", ref)
        cid, c = self._find(ref)
        with self.lock:
            state: dict[str, Any] = {"Status": c["state"], "Running": c["state"] == "running",
                                     "ExitCode": c["exit_code"], "OOMKilled": False}
            if c["health"] != "none":
                state["Health"] = {"Status": c["health"], "Log": []}
            return {"Id": cid, "Name": "/" + c["name"], "State": state,
                    "Config": {"Labels": dict(c["labels"]), "Image": c["image"]}}

    def logs(self, ref: str, *, tail: int = 20) -> str:
        return ""

    def probe_address(self) -> str:
        return "127.0.0.1"

    def create_network(self, project: str, net: NetworkSpec) -> None:
        self._create("network", self.networks, project, net.name, {**dict(net.labels), LABEL_SPEC_HASH: net.spec_hash})

    def create_volume(self, project: str, vol: VolumeSpec) -> None:
        self._create("volume", self.volumes, project, vol.name, dict(vol.labels))

    def _create(self, kind: str, store: dict[str, dict[str, str]], project: str, manifest_name: str,
                labels: dict[str, str]) -> None:
        """A network or volume, as the Docker driver makes one: ours again is fine, anyone else's a conflict."""
        name = object_name(project, manifest_name)
        self._check(f"{kind}_create", name)
        with self.lock:
            if name in store:
                if store[name].get(LABEL_PROJECT) == project:
                    return
                raise NameConflict(self.name, f"a {kind} named {name} exists and is not managed by project "
                                   f"{project}; gitops never adopts it")
            store[name] = {**labels, LABEL_MANAGED: "true", LABEL_PROJECT: project, LABEL_KIND: kind,
                           LABEL_NAME: manifest_name}
            self.calls.append((f"{kind}_create", name))

    def remove_volume(self, project: str, vol_name: str) -> None:
        name = object_name(project, vol_name)
        self._check("volume_remove", name)
        with self.lock:
            if name not in self.volumes:
                return
            if self.volumes[name].get(LABEL_PROJECT) != project:
                raise NameConflict(self.name, f"volume {name} is not managed by project {project}; not removed")
            del self.volumes[name]
            self.calls.append(("volume_remove", name))

    def settings_drift(self, project: str, svc: ServiceSpec, container: ObservedContainer,
                       image_env: dict[str, list[str]]) -> tuple[str, ...]:
        self._check("inspect", container.id)
        return self.hand_changes.get(container.id, ())

    def container_events(self, project: str, stop: threading.Event) -> Iterable[dict[str, Any]]:
        self._check("events")
        while not stop.is_set():
            try:
                event = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            if event["Actor"]["Attributes"].get(LABEL_PROJECT) == project:
                yield event

    def lease_acquire(self, project: str, holder: str, ttl: float, now: float, *,
                      holder_gone: Callable[[str], bool] = lambda holder: False) -> LeaseState:
        self._check("lease", project)
        with self.lock:
            current, until = self.lease.get(project, ("", 0.0))
            if current and current != holder and until > now and not holder_gone(current):
                return LeaseState(False, current, until)
            self.lease[project] = (holder, now + ttl)
            return LeaseState(True, holder, now + ttl)

    def lease_renew(self, project: str, holder: str, ttl: float, now: float) -> None:
        self._check("lease", project)
        with self.lock:
            if self.lease.get(project, ("", 0.0))[0] == holder:
                self.lease[project] = (holder, now + ttl)

    def lease_release(self, project: str, holder: str) -> None:
        with self.lock:
            if self.lease.get(project, ("", 0.0))[0] == holder:
                del self.lease[project]

    def close(self) -> None:
        return None


def _is_a_host(host: FakeHost) -> Host:
    return host  # mypy checks here that FakeHost implements the whole Host Protocol


def host_with(desired: DesiredState, name: str = "local") -> FakeHost:
    """A fake host running ``desired``'s containers on host ``name`` (under the ids converged() gives them),
    with their networks, volumes and images, and no calls recorded yet."""
    host = FakeHost(name)
    project = desired.project.name
    net_hashes = {n.name: n.spec_hash for n in desired.networks}
    for net in desired.networks:
        host.create_network(project, net)
    for vol in desired.volumes:
        if not vol.remove:
            host.create_volume(project, vol)
    for observation in converged(desired).hosts:
        if observation.host != name:
            continue
        for c in observation.containers:
            svc = desired.service(c.service)
            host.add(c.id, container_labels(project, svc, c.slot, desired.revision, net_hashes), name=c.name,
                     image=svc.run_image, health=c.health)
            host.containers[c.id].update(networks=c.networks, volumes=c.volumes, docker_health=(
                svc.healthcheck is not None and svc.healthcheck.kind == "exec"))
            host.images.add(svc.run_image)
    host.calls.clear()
    return host


class Commits:
    """A Source with history for tests: each commit is a folder of manifests; HEAD is the newest added."""

    display_url = "test"
    ref = "main"

    def __init__(self) -> None:
        self.commits: dict[str, Path] = {}
        self.head = ""

    def add(self, revision: str, root: Path) -> None:
        self.commits[revision] = root
        self.head = revision

    def fetch(self) -> Checkout:
        return self.fetch_commit(self.head)

    def fetch_commit(self, commit_or_ref: str) -> Checkout:
        root = self.commits[commit_or_ref]
        return Checkout(commit_or_ref, root, root)
