"""Synthetic observed states: what hosts would report if a desired state had been applied.

Used by `gitops plan --base REF` (the change between two commits with no host at all), by the
planner tests and by the benchmarks. Pure: builds model objects only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from gitops.model import (
    DesiredState,
    HostObservation,
    ObservedContainer,
    ObservedObject,
    ObservedState,
    canonical_json,
    container_name,
    network_hashes_label,
    object_name,
)


def converged(desired: DesiredState, *,
              tweak: Callable[[ObservedContainer], ObservedContainer | None] | None = None) -> ObservedState:
    """What the hosts would report right after a successful apply of ``desired``.

    ``tweak`` may change (return a new container) or drop (return None) each container, to describe drift,
    an interrupted update and so on.
    """
    project = desired.project.name
    net_hashes = {n.name: n.spec_hash for n in desired.networks}
    per_host: dict[str, list[ObservedContainer]] = {h.name: [] for h in desired.hosts}
    nets: dict[str, set[str]] = {h.name: set() for h in desired.hosts}
    vols: dict[str, set[str]] = {h.name: set() for h in desired.hosts}
    for svc in desired.services:
        for inst in desired.instances(svc):
            name = container_name(project, svc.name, inst.slot, svc.spec_hash)
            networks = tuple(sorted(object_name(project, n.name) for n in svc.networks))
            volumes = tuple(sorted(object_name(project, m.source) for m in svc.mounts if m.type == "volume"))
            container = ObservedContainer(
                host=inst.host, id=f"id-{name}", name=name, service=svc.name, slot=inst.slot,
                spec_hash=svc.spec_hash, revision=desired.revision, state="running",
                health="healthy" if svc.healthcheck else "none", image=svc.image,
                spec_json=canonical_json(svc.container_config()),
                depends_on=tuple(sorted({d.service for d in svc.depends_on})), networks=networks, volumes=volumes,
                network_hashes=network_hashes_label(svc, net_hashes))
            nets[inst.host].update(networks)
            vols[inst.host].update(volumes)
            changed = tweak(container) if tweak else container
            if changed is not None:
                per_host[inst.host].append(changed)
    return ObservedState(tuple(
        HostObservation(h, True, "", tuple(per_host[h]),
                        tuple(ObservedObject(h, "network", n, n) for n in sorted(nets[h])),
                        tuple(ObservedObject(h, "volume", v, v) for v in sorted(vols[h])))
        for h in sorted(per_host)))


def with_containers(observed: ObservedState, host: str, *extra: ObservedContainer) -> ObservedState:
    """``observed`` with more containers on ``host``."""
    return ObservedState(tuple(
        dataclasses.replace(h, containers=h.containers + extra) if h.host == host else h for h in observed.hosts))


def unreachable(observed: ObservedState, host: str, error: str = "connection refused") -> ObservedState:
    return ObservedState(tuple(
        HostObservation(h.host, False, error) if h.host == host else h for h in observed.hosts))


def empty(desired: DesiredState) -> ObservedState:
    return ObservedState(tuple(HostObservation(h.name, True) for h in desired.hosts))
