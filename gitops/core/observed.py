"""Synthetic observed states: what hosts would report if a desired state had been applied.

Used by `gitops plan --base REF` (the change between two commits with no host at all), by the
planner tests and by the benchmarks; and ``snapshot_from_json`` reads a saved one (`gitops plan
--observed FILE`), checking every field, so a malformed file is an error that says what is wrong.
Pure: builds model objects only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, Literal, get_args, get_origin, get_type_hints

from gitops.core.model import (
    LABEL_SPEC,
    DesiredState,
    HostObservation,
    ObservedContainer,
    ObservedObject,
    ObservedState,
    ObservedSwarmService,
    canonical_json,
    container_name,
    network_docker_name,
    network_hashes_label,
    volume_docker_name,
)
from gitops.core.swarm import LABEL_SWARM_HASH, swarm_service_spec
from gitops.errors import GitopsError


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
    clusters = {h.name: h for h in desired.hosts if h.swarm}
    services: dict[str, list[ObservedSwarmService]] = {h: [] for h in clusters}
    for svc in desired.services:
        if len(svc.hosts) == 1 and svc.hosts[0] in clusters:  # one Swarm service, as gitops made it
            spec, _ = swarm_service_spec(project, svc, desired.revision, host=clusters[svc.hosts[0]],
                                         declared_volumes=desired.volumes)
            services[svc.hosts[0]].append(ObservedSwarmService(
                host=svc.hosts[0], id=f"id-{spec['Name']}", name=spec["Name"], service=svc.name, version=1,
                spec_hash=svc.spec_hash, swarm_hash=spec["Labels"][LABEL_SWARM_HASH], revision=desired.revision,
                spec_json=spec["Labels"][LABEL_SPEC], update_state="completed", replicas=svc.replicas,
                running=svc.replicas, depends_on=tuple(sorted({d.service for d in svc.depends_on}))))
            nets[svc.hosts[0]].update(network_docker_name(project, n) for n in svc.networks)
            continue
        for inst in desired.instances(svc):
            name = container_name(project, svc.name, inst.slot, svc.spec_hash)
            networks = tuple(sorted(network_docker_name(project, n) for n in svc.networks))
            volumes = tuple(sorted(volume_docker_name(project, m) for m in svc.mounts if m.type == "volume"))
            container = ObservedContainer(
                host=inst.host, id=f"id-{name}", name=name, service=svc.name, slot=inst.slot,
                spec_hash=svc.spec_hash, revision=desired.revision, state="running",
                health="healthy" if svc.healthcheck else "none", image=svc.run_image,
                spec_json=canonical_json(svc.container_config()),
                depends_on=tuple(sorted({d.service for d in svc.depends_on})), networks=networks, volumes=volumes,
                network_hashes=network_hashes_label(svc, net_hashes), key_id=svc.secret_key_id)
            nets[inst.host].update(networks)
            vols[inst.host].update(volumes)
            changed = tweak(container) if tweak else container
            if changed is not None:
                per_host[inst.host].append(changed)
    return ObservedState(tuple(
        HostObservation(h, True, "", tuple(per_host[h]),
                        tuple(ObservedObject(h, "network", n, n) for n in sorted(nets[h])),
                        tuple(ObservedObject(h, "volume", v, v) for v in sorted(vols[h])),
                        h in clusters, tuple(services.get(h, ())))
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


# --- saved snapshots (`gitops status --format json`, read by `gitops plan --observed FILE`) ---------------

MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024


class SnapshotError(GitopsError, ValueError):
    """A snapshot that is not JSON or not the shape `gitops status --format json` writes; says where."""


def snapshot_from_json(text: str) -> ObservedState:
    """The observed state saved in a status document (or a bare ``{"hosts": [...]}``), every field checked."""
    if len(text) > MAX_SNAPSHOT_BYTES:
        raise SnapshotError(f"more than {MAX_SNAPSHOT_BYTES} bytes")
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise SnapshotError("not JSON: nested too deeply") from exc
    except ValueError as exc:  # also numbers of more than 4,300 digits
        raise SnapshotError(f"not JSON: {exc}") from exc
    if isinstance(data, dict) and "observed" in data:
        data = data["observed"]
        if data is None:
            raise SnapshotError("observed is null: the status was saved when no host had been observed")
        where = "observed"
    else:
        where = ""
    body = _mapping(data, where or "the document", {"hosts"})
    if "hosts" not in body:
        raise SnapshotError(f"{where or 'the document'}: hosts is missing")
    return ObservedState(_value(body["hosts"], tuple[HostObservation, ...], _at(where, "hosts")))


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _mapping(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SnapshotError(f"{where}: expected an object, got {_json_type(value)}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise SnapshotError(f"{where}: unknown field {unknown[0][:60]!r}")
    return value


def _make(cls: Any, value: Any, where: str) -> Any:
    """An instance of the dataclass ``cls`` from ``value``, each field checked against its type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    data = _mapping(value, where, set(fields))
    args = {}
    for name, spec in fields.items():
        if name not in data:
            if spec.default is dataclasses.MISSING:
                raise SnapshotError(f"{where}: {name} is missing")
            continue
        args[name] = _value(data[name], hints[name], f"{where}.{name}")
    return cls(**args)


def _value(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin is Literal:
        if value not in get_args(hint):
            raise SnapshotError(f"{where}: expected one of {list(get_args(hint))}, got {_json_type(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise SnapshotError(f"{where}: expected a list, got {_json_type(value)}")
        item = get_args(hint)[0]
        return tuple(_value(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return _make(hint, value, where)
    # bool is an int in Python: a slot of `true` is as wrong as a slot of "1"
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise SnapshotError(f"{where}: expected {_TYPE_NAMES.get(hint, str(hint))}, got {_json_type(value)}")
    return value


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
