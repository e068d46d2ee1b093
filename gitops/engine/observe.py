"""Observing the hosts: connecting to every host of a DesiredState, one labelled list call per host
in parallel, and a settings check (settings_drift) of the containers gitops did not make itself."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import replace

from gitops.core.model import DesiredState, ObservedContainer, ObservedState, object_name
from gitops.core.ports import ApplyRecords, Host
from gitops.errors import HostError
from gitops.hosts.docker import DockerHost
from gitops.hosts.registry import client_for
from gitops.hosts.swarm import SwarmCluster
from gitops.state import StateError


def connect_hosts(desired: DesiredState, *, timeout: float = 60) -> Mapping[str, Host]:
    """A DockerHost per host, a SwarmCluster per Swarm cluster; their pulls send the registries' credentials (one
    client, made when first used)."""
    registries = client_for(desired)
    out: dict[str, Host] = {}
    for h in desired.hosts:
        if h.swarm:
            cluster = SwarmCluster(h, timeout=timeout, registries=registries)
            cluster.env_value = swarm_env_value(desired)
            out[h.name] = cluster
        else:
            out[h.name] = DockerHost(h, timeout=timeout, registries=registries)
    return out


def swarm_env_value(desired: DesiredState) -> Callable[[str, str, str], str]:
    """What stands for a variable of a Swarm service in its hand-change hash: for a secret one, its keyed digest
    when the value read back is the declared one (else a mark that it is not), never the value itself."""
    secrets = {(s.name, e.name): e for s in desired.services for e in s.env if e.secret}

    def value(service: str, name: str, found: str) -> str:
        declared = secrets.get((service, name))
        if declared is None:
            return found
        return declared.digest if found == declared.value else "secret:changed"

    return value


@contextmanager
def open_hosts(desired: DesiredState, *, timeout: float = 60) -> Iterator[Mapping[str, Host]]:
    """A DockerHost per host of ``desired``, all closed afterwards (connections open lazily)."""
    hosts = connect_hosts(desired, timeout=timeout)
    try:
        yield hosts
    finally:
        for host in hosts.values():
            host.close()


def observe_all(desired: DesiredState, hosts: Mapping[str, Host], *, trusted: Collection[str] = frozenset(),
                verified: dict[str, str] | None = None) -> ObservedState:
    """Observe every host in parallel: one labelled list call each (more only on first deploys).

    A container that claims the declared spec but is not ``trusted`` (gitops neither created it nor
    checked it before) is inspected once and compared with that spec: a copy made by hand with other
    settings gets ``hand_changes``. The IDs found as declared are added to ``verified`` (id -> host).
    """
    want: dict[str, tuple[set[str], set[str]]] = {h: (set(), set()) for h in hosts}
    for svc in desired.services:
        for inst in desired.instances(svc):
            if inst.host in want:
                want[inst.host][0].update(object_name(desired.project.name, n.name) for n in svc.networks
                                          if not n.external)
                want[inst.host][1].update(object_name(desired.project.name, m.source) for m in svc.mounts
                                          if m.type == "volume" and not m.external)
    for vol in desired.volumes:
        if vol.remove and not vol.external:
            for sets in want.values():
                sets[1].add(object_name(desired.project.name, vol.name))
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        futures = {name: pool.submit(host.observe, desired.project.name, want_networks=want[name][0],
                                     want_volumes=want[name][1]) for name, host in hosts.items()}
        observed = ObservedState(tuple(futures[name].result() for name in sorted(futures)))
    return _check_settings(desired, hosts, observed, trusted, verified if verified is not None else {})


def observe_with_store(desired: DesiredState, hosts: Mapping[str, Host], store: ApplyRecords) -> ObservedState:
    """observe_all, trusting the containers ``store`` knows as declared; it learns the ones found as
    declared and forgets the ones gone from reachable hosts. The store is only a cache here: when it
    cannot be read or written, more containers are inspected and nothing else changes."""
    try:
        trusted = store.trusted_containers()
    except StateError:
        trusted = {}
    verified: dict[str, str] = {}
    observed = observe_all(desired, hosts, trusted=trusted, verified=verified)
    present = {h.host: {c.id for c in h.containers} for h in observed.hosts if h.reachable}
    if verified or any(cid not in present.get(host, {cid}) for cid, host in trusted.items()):
        with suppress(StateError):
            store.trust_containers(verified, present=present)
    return observed


def _check_settings(desired: DesiredState, hosts: Mapping[str, Host], observed: ObservedState,
                    trusted: Collection[str], verified: dict[str, str]) -> ObservedState:
    specs = {s.name: s for s in desired.services}
    todo = [(h.host, c) for h in observed.hosts if h.reachable for c in h.containers
            if c.id not in trusted and c.service in specs and c.spec_hash == specs[c.service].spec_hash
            and c.image == specs[c.service].run_image]
    if not todo:
        return observed
    image_env: dict[str, list[str]] = {}
    found: dict[str, tuple[str, ...]] = {}

    def check(host: str, c: ObservedContainer) -> None:
        try:
            changes = hosts[host].settings_drift(desired.project.name, specs[c.service], c, image_env)
        except HostError:
            return  # not checked this time, so not trusted either; the next pass tries again
        found[c.id] = changes
        if not changes:
            verified[c.id] = host

    with ThreadPoolExecutor(max_workers=min(16, len(todo))) as pool:
        list(pool.map(lambda item: check(*item), todo))
    return ObservedState(tuple(
        replace(h, containers=tuple(replace(c, hand_changes=found[c.id]) if found.get(c.id) else c
                                    for c in h.containers))
        for h in observed.hosts))
