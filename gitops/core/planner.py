"""plan(desired, observed) -> Plan: the diff between the manifests and what the hosts run.

Pure and deterministic: no docker, git, network or clock; every collection is sorted, so the same
inputs always give the same plan. Level-triggered: it needs no memory of earlier passes, because
names and labels on the hosts tell old containers from new ones (an interrupted update leaves
both, and the next plan keeps the right one and removes the other).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gitops.core.model import (
    LABEL_SPEC,
    DesiredState,
    HostObservation,
    HostSpec,
    Instance,
    ObservedContainer,
    ObservedState,
    ObservedSwarmService,
    ServiceSpec,
    canonical_json,
    container_name,
    legacy_secret_digest,
    object_name,
)
from gitops.core.plan import (
    ContainerRef,
    CreateArgs,
    FieldChange,
    Finding,
    NetworkArgs,
    Op,
    Plan,
    PullArgs,
    RemoveArgs,
    Step,
    SwarmArgs,
    VolumeArgs,
)
from gitops.core.swarm import LABEL_SWARM_HASH, swarm_service_spec
from gitops.errors import GitopsError


class PlanError(GitopsError):
    """The plan cannot be made safely (permanent until the input changes: retrying will not help)."""


@dataclass(frozen=True)
class PlanOptions:
    allow_empty: bool = False
    # Containers (by name) that keep dying after gitops started them: leave them stopped for now,
    # with the reason, instead of restarting them on every pass (the caller owns the backoff clock).
    hold: tuple[tuple[str, str], ...] = ()  # (container name, reason)
    # Warnings found before planning, shown with the plan's own (e.g. a registry that did not answer).
    warnings: tuple[str, ...] = ()


# --- fingerprints ---------------------------------------------------------------------------------------


def desired_fingerprint(desired: DesiredState) -> str:
    parts = {
        "project": desired.project.name,
        "prune": desired.project.prune,
        "services": {s.name: [s.spec_hash, s.replicas, list(s.hosts), s.update.order, s.self_heal]
                     for s in desired.services},
        "networks": {n.name: n.spec_hash for n in desired.networks},
        "volumes": {v.name: [v.driver, list(v.options), v.remove] for v in desired.volumes},
        "hosts": {h.name: h.url for h in desired.hosts},
    }
    swarm = {s.name: [list(s.node_selector), list(s.spread)] for s in desired.services if s.node_selector or s.spread}
    if swarm or any(h.swarm for h in desired.hosts):  # only then: older fingerprints stay as they were
        parts["swarm"] = {"services": swarm, "hosts": {h.name: [h.mode, h.endpoint_mode, h.publish_mode]
                                                       for h in desired.hosts if h.swarm}}
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


def observed_fingerprint(observed: ObservedState) -> str:
    parts = []
    for host in sorted(observed.hosts, key=lambda h: h.host):
        part = [host.host, host.reachable,
                sorted([c.id, c.spec_hash, c.state] for c in host.containers),
                sorted(n.docker_name for n in host.networks), sorted(v.docker_name for v in host.volumes)]
        if host.swarm:
            part.append(sorted([s.id, s.version, s.swarm_hash, s.hand_changed] for s in host.services))
        parts.append(part)
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


# --- field-level changes ------------------------------------------------------------------------------


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


SPEC_LABEL_LIMIT = 256 * 1024  # a recorded spec longer than this is not read (gitops writes far less)
MAX_CHANGES = 200  # field changes listed per Swarm step; the rest are counted

REKEY_REASON = ("secret digests were made with another key (upgrade or another installation); "
                "recreated to carry digests under this installation's key")


def field_changes(old_json: str, new: ServiceSpec, *, old_key_id: str | None = None) -> tuple[FieldChange, ...]:
    """What differs between a running container's recorded spec and the desired one.

    Values of secret variables are never shown: only that they changed. ``old_key_id`` is the key id
    the container was made under (None: the same key as ``new``), see ``compare_specs``.
    """
    return compare_specs(old_json, new, old_key_id=old_key_id)[0]


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("secret:")


def compare_specs(old_json: str, new: ServiceSpec, *,
                  old_key_id: str | None = None) -> tuple[tuple[FieldChange, ...], bool]:
    """The field changes, and whether secret digests were compared across two keys (a re-key).

    Digests made under another key always differ, so "(secret changed)" is only claimed when the value
    did change as far as can be known: under the same key, by the digests; for a container made before
    gitops kept a key (no key id), by the name-keyed digest of that time; under another installation's
    key it cannot be known, so only the re-key is reported.
    """
    try:
        old = json.loads(old_json) if old_json and len(old_json) <= SPEC_LABEL_LIMIT else None
    except (ValueError, RecursionError):  # a label read from the host: any text may be there
        old = None
    if not isinstance(old, dict):
        return (FieldChange("spec", None, None, secret=True),), False  # unknown old spec: say only that it differs
    flat_old: dict[str, Any] = {}
    flat_new: dict[str, Any] = {}
    _flatten(old, "", flat_old)
    _flatten(new.container_config(), "", flat_new)
    secrets = {f"env.{e.name}": e for e in new.env if e.secret}
    secret_files = {f"files.{f.target}" for f in new.files if f.secret}
    other_key = old_key_id is not None and old_key_id != new.secret_key_id
    changes = []
    rekeyed = False
    for path in sorted(set(flat_old) | set(flat_new)):
        a, b = flat_old.get(path), flat_new.get(path)
        if a == b:
            continue
        if other_key and path in secret_files and _is_digest(a) and _is_digest(b):
            rekeyed = True
            if old_key_id:
                continue  # under another installation's key: whether the content changed cannot be known
        if other_key and path in secrets and _is_digest(a) and _is_digest(b):
            rekeyed = True
            var = secrets[path]
            if old_key_id or a == legacy_secret_digest(var.name, var.value):
                continue  # unknown (another installation) or known unchanged (made before the upgrade)
        is_secret = path in secrets or _is_digest(a) or _is_digest(b)
        changes.append(FieldChange(path, None if is_secret else a, None if is_secret else b, secret=is_secret))
    return tuple(changes), rekeyed


def swarm_changes(old_json: str, new_spec: dict[str, Any], svc: ServiceSpec) -> tuple[FieldChange, ...]:
    """What differs between a Swarm service's recorded spec (its LABEL_SPEC) and the one gitops would send: the
    container settings as for a container, plus replicas, placement, update policy and endpoint. Secret values are
    never shown."""
    try:
        old = json.loads(old_json) if old_json and len(old_json) <= SPEC_LABEL_LIMIT else None
        new = json.loads(new_spec["Labels"][LABEL_SPEC])
    except (ValueError, RecursionError):  # a label is the cluster's word, not gitops': any text may be there
        old = new = None
    if not isinstance(old, dict) or not isinstance(new, dict):
        return (FieldChange("spec", None, None, secret=True),)
    flat_old: dict[str, Any] = {}
    flat_new: dict[str, Any] = {}
    _flatten(old, "", flat_old)
    _flatten(new, "", flat_new)
    secrets = {f"env.{e.name}" for e in svc.env if e.secret} | {f"files.{f.target}" for f in svc.files if f.secret}
    changes = []
    for path in sorted(set(flat_old) | set(flat_new)):
        a, b = flat_old.get(path), flat_new.get(path)
        if a != b:
            hidden = path in secrets or _is_digest(a) or _is_digest(b)
            changes.append(FieldChange(path, None if hidden else a, None if hidden else b, secret=hidden))
    if len(changes) > MAX_CHANGES:
        return (*changes[:MAX_CHANGES], FieldChange(f"({len(changes) - MAX_CHANGES} more fields)", None, None))
    return tuple(changes)


# --- the planner --------------------------------------------------------------------------------------


def _replaced(c: ObservedContainer, svc: ServiceSpec) -> bool:
    """A container with our labels but other settings than its spec: replaced by hand (drift).

    Seen from the list call when the image differs (Docker lists an image by ID when its name was
    removed or moved; that is not taken as drift), or from an inspect (``hand_changes``).
    """
    return bool(c.hand_changes) or (bool(c.image) and not c.image.startswith("sha256:") and c.image != svc.run_image)


def _hand_made(c: ObservedContainer, svc: ServiceSpec) -> tuple[tuple[FieldChange, ...], str]:
    """What differs on a container replaced by hand, and a sentence saying so."""
    fields = list(c.hand_changes)
    changes: list[FieldChange] = []
    if "image" in fields or (c.image and not c.image.startswith("sha256:") and c.image != svc.run_image):
        changes.append(FieldChange("image", c.image, svc.run_image))
        fields = [f for f in fields if f != "image"]
    changes += [FieldChange(f, "by-hand", "declared") for f in fields]
    what = f" with {c.image}" if not fields else "; " + ", ".join(fields) + " differ"
    return tuple(changes), f"container is not the declared one (replaced by hand{what})"


def _attached_under_other_spec(obs: HostObservation, network: str, spec_hash: str) -> bool:
    """Whether a container on this host was attached to ``network`` when its manifest said otherwise."""
    for c in obs.containers:
        recorded = dict(entry.partition("=")[::2] for entry in c.network_hashes.split(",") if entry)
        if network in recorded and recorded[network] != spec_hash[:12]:
            return True
    return False


def _pick(containers: list[ObservedContainer]) -> ObservedContainer:
    """The container to keep among several of one slot: running first, then by name for determinism."""
    return sorted(containers, key=lambda c: (not c.running, c.name, c.id))[0]


def _service_order(services: Iterable[ServiceSpec]) -> dict[str, int]:
    """Wave number per service: 0 for no dependencies, else 1 + the deepest dependency."""
    by_name = {s.name: s for s in services}
    depth: dict[str, int] = {}
    for name in sorted(by_name):
        stack = [name]
        while stack:
            top = stack[-1]
            deps = [d.service for d in by_name[top].depends_on if d.service in by_name]
            pending = [d for d in deps if d not in depth and d not in stack]
            if pending:
                stack.append(pending[0])
                continue
            depth[top] = 1 + max((depth.get(d, 0) for d in deps), default=-1)
            stack.pop()
    return depth


class _Planner:
    def __init__(self, desired: DesiredState, observed: ObservedState, options: PlanOptions) -> None:
        self.desired = desired
        self.observed = observed
        self.options = options
        self.project = desired.project.name
        self.steps: list[Step] = []
        self.warnings: list[str] = list(options.warnings)
        self.unreachable = {h.host: h.error for h in observed.hosts if not h.reachable}
        self.reachable = {h.host for h in observed.hosts if h.reachable}
        # (service, host, slot) -> containers
        self.slots: dict[tuple[str, str, int], list[ObservedContainer]] = defaultdict(list)
        self.by_service: dict[str, list[ObservedContainer]] = defaultdict(list)
        for host in observed.hosts:
            for c in host.containers:
                self.slots[(c.service, c.host, c.slot)].append(c)
                self.by_service[c.service].append(c)
        self.clusters = {h.name: h for h in desired.hosts if h.swarm}
        self.swarm_by_service: dict[str, list[ObservedSwarmService]] = defaultdict(list)
        for host in observed.hosts:
            for found in host.services:
                self.swarm_by_service[found.service].append(found)
        self.infra_steps: dict[tuple[str, str, str], str] = {}  # (kind, name, host) -> step id
        self.service_steps: dict[str, list[str]] = defaultdict(list)  # service -> create/update step ids
        self.rekeyed = 0  # containers recreated because their secret digests were made under another key

    def run(self) -> Plan:
        declared = {s.name for s in self.desired.services}
        undeclared = sorted((set(self.by_service) | set(self.swarm_by_service)) - declared)
        if not self.desired.services and undeclared and self.desired.project.prune and not self.options.allow_empty:
            raise PlanError(
                "the manifests declare no service, so pruning would remove every container of project "
                f"'{self.project}' ({len(undeclared)} services); if that is really intended, pass --allow-empty")
        self.infrastructure()
        for svc in self.desired.services:  # already in dependency-wave order
            self.service(svc)
        self.prune(undeclared)
        self.volume_removals()
        if self.rekeyed:
            one = self.rekeyed == 1
            self.warnings.append(
                f"{self.rekeyed} container{'' if one else 's'} with secrets {'was' if one else 'were'} made under "
                "another key (a gitops upgrade, or a snapshot of another installation): "
                f"{'it is' if one else 'they are'} recreated to carry digests under this installation's key")
        return Plan(
            project=self.project,
            revision=self.desired.revision,
            steps=tuple(self.steps),
            desired_fingerprint=desired_fingerprint(self.desired),
            observed_fingerprint=observed_fingerprint(self.observed),
            warnings=tuple(self.warnings),
            unreachable=tuple(sorted(self.unreachable.items())),
            # what the Project's policy let through, listed first in every rendering; sorted whole so
            # the JSON plan stays byte-for-byte the same for the same inputs
            allowed=tuple(sorted(set(self.desired.exceptions),
                                 key=lambda e: (e.kind, e.name, e.rule, e.detail, e.file, e.line))),
        )

    # -- networks and volumes, created before anything uses them ------------------------------------------
    def infrastructure(self) -> None:
        needs: dict[tuple[str, str], set[str]] = defaultdict(set)  # (kind, name) -> hosts
        for svc in self.desired.services:
            hosts = {i.host for i in self.desired.instances(svc)} | {h for h in svc.hosts if h in self.clusters}
            for net in svc.networks:
                if not net.external:  # an external network exists already and is never gitops' to make
                    needs[("network", net.name)] |= hosts
            for mount in svc.mounts:
                if mount.type == "volume" and not mount.external:
                    # on a Swarm cluster, each node makes a volume when a task that mounts it starts there
                    needs[("volume", mount.source)] |= {h for h in hosts if h not in self.clusters}
        networks = {n.name: n for n in self.desired.networks}
        for (kind, name), hosts in sorted(needs.items()):
            docker_name = object_name(self.project, name)
            for host in sorted(hosts):
                if host not in self.reachable:
                    continue
                obs = self.observed.host(host)
                assert obs is not None
                present = {o.docker_name: o for o in (obs.networks if kind == "network" else obs.volumes)}
                step_id = f"{kind}/{name}@{host}"
                if docker_name in present:
                    found = present[docker_name]
                    if kind == "network" and (found.spec_hash and found.spec_hash != networks[name].spec_hash
                                              or _attached_under_other_spec(obs, name, networks[name].spec_hash)):
                        self.warnings.append(
                            f"network {name} on {host} differs from its manifest; gitops does not recreate a "
                            "network containers use: remove the containers attached to it and the network "
                            f"(docker network rm {docker_name}), and the next pass recreates them as declared")
                    self.steps.append(Step(step_id, host, kind, name, "noop", "exists"))  # type: ignore[arg-type]
                    continue
                if kind == "network":
                    op = Op("network_create", docker_name, NetworkArgs(name, networks[name].spec_hash))
                else:
                    op = Op("volume_create", docker_name, VolumeArgs(name))
                self.steps.append(Step(step_id, host, kind, name, "create", f"{kind} is not on the host",  # type: ignore[arg-type]
                                       ops=(op,)))
                self.infra_steps[(kind, name, host)] = step_id

    def _infra_deps(self, svc: ServiceSpec, host: str) -> tuple[str, ...]:
        deps = [self.infra_steps.get(("network", n.name, host)) for n in svc.networks]
        deps += [self.infra_steps.get(("volume", m.source, host)) for m in svc.mounts if m.type == "volume"]
        return tuple(sorted(d for d in deps if d))

    def _dependency_steps(self, svc: ServiceSpec) -> tuple[str, ...]:
        out: list[str] = []
        for dep in svc.depends_on:
            out += self.service_steps.get(dep.service, [])
        return tuple(sorted(set(out)))

    # -- services --------------------------------------------------------------------------------------
    def service(self, svc: ServiceSpec) -> None:
        cluster = self.clusters.get(svc.hosts[0]) if len(svc.hosts) == 1 else None
        moved = [s for s in self.swarm_by_service.get(svc.name, []) if cluster is None or s.host != cluster.name]
        if cluster is not None:
            self.swarm_service(svc, cluster)
            # containers it ran as before (on plain hosts, or before the Host became a cluster) go once it converged
            after = tuple(self.service_steps.get(svc.name, []))
            for c in sorted(self.by_service.get(svc.name, []), key=lambda c: (c.host, c.slot, c.name)):
                if c.host in self.reachable:
                    self.steps.append(self._removal(c, f"the service now runs on Swarm cluster {cluster.name}", after))
        else:
            self.container_service(svc)
        for found in moved:  # it ran on a cluster it is no longer placed on
            if found.host in self.reachable:
                self.steps.append(self._swarm_removal(found, f"no longer placed on {found.host}",
                                                      tuple(self.service_steps.get(svc.name, []))))

    def container_service(self, svc: ServiceSpec) -> None:
        wanted = self.desired.instances(svc)
        wanted_keys = {(i.host, i.slot) for i in wanted}
        pull = Op("pull", svc.run_image, PullArgs(svc.pull_policy))
        # Services are planned in dependency order (see plan()), so dependency steps are known here.
        dep_steps = self._dependency_steps(svc)
        created: list[str] = []
        removals: list[Step] = []
        for inst in wanted:
            if inst.host not in self.reachable:
                continue
            step, extra = self.instance(svc, inst, pull, dep_steps)
            self.steps.append(step)
            if step.action in ("create", "update"):
                created.append(step.id)
            removals += extra
        # Containers of this service that no wanted instance claims: scaled down or moved elsewhere.
        for c in sorted(self.by_service.get(svc.name, []), key=lambda c: (c.host, c.slot, c.name)):
            if (c.host, c.slot) in wanted_keys or c.host not in self.reachable:
                continue
            if c.slot >= svc.replicas:
                reason = f"scaled down to {svc.replicas} replicas"
            else:
                reason = f"slot {c.slot} now runs on {self._host_of(svc, c.slot)}"
            removals.append(self._removal(c, reason, tuple(created)))
        self.steps += removals
        self.service_steps[svc.name] = created

    # -- services on a Swarm cluster: one Swarm service each, updated in place by Swarm ------------------------
    def swarm_service(self, svc: ServiceSpec, cluster: HostSpec) -> None:
        self.service_steps[svc.name] = []
        if cluster.name not in self.reachable:
            return
        obs = self.observed.host(cluster.name)
        assert obs is not None
        spec, notes = swarm_service_spec(self.project, svc, self.desired.revision, host=cluster,
                                           declared_volumes=self.desired.volumes)
        name = spec["Name"]
        found = sorted((s for s in obs.services if s.service == svc.name), key=lambda s: (s.name != name, s.name))
        step_id = f"service/{svc.name}@{cluster.name}"
        deps = tuple(sorted(set(self._infra_deps(svc, cluster.name)) | set(self._dependency_steps(svc))))
        for extra in found[1:]:  # a second Swarm service claiming the same gitops service: not ours to keep
            self.steps.append(self._swarm_removal(extra, "a second Swarm service of this service", (step_id,)))
        secret_env = sorted(e.name for e in svc.env if e.secret)
        if secret_env:  # told with every change of the service, so that it is seen before the value is sent
            notes = (*notes, f"{svc.name}: secret env {', '.join(secret_env)} is part of the Swarm service's spec, "
                             "readable by anyone who can `docker service inspect` it (and kept in its previous "
                             "spec after a change); deliver it as files with secret: true to make it a Swarm secret")
        args = SwarmArgs(svc.name)
        if not found:
            self.warnings.extend(notes)
            self.steps.append(Step(step_id, cluster.name, "service", svc.name, "create", "new Swarm service",
                                   depends_on=deps, ops=(Op("service_create", name, args),
                                                         Op("wait_converged", name, args))))
            self.service_steps[svc.name] = [step_id]
            return
        current = found[0]
        wanted_hash = spec["Labels"][LABEL_SWARM_HASH]
        if current.swarm_hash == wanted_hash and not current.hand_changed:
            reason = "up to date"
            if current.running < current.replicas:
                reason = f"up to date; {current.running} of {current.replicas} tasks running (Swarm places them)"
                self.warnings.append(f"{svc.name} on {cluster.name}: {current.running} of {current.replicas} tasks "
                                     "running; Swarm reschedules them itself" +
                                     (f" (last task error: {current.task_error})" if current.task_error else ""))
            if current.update_state in ("paused", "rollback_paused"):
                self.warnings.append(f"{svc.name} on {cluster.name}: Swarm {current.update_state.replace('_', ' ')} "
                                     f"its last update: {current.update_message or 'no reason given'}")
            self.steps.append(Step(step_id, cluster.name, "service", svc.name, "noop", reason))
            return
        args = SwarmArgs(svc.name, current.id, current.version)
        ops = (Op("service_update", name, args), Op("wait_converged", name, args))
        if current.swarm_hash == wanted_hash:  # the declared spec, changed since by hand
            if not svc.self_heal:
                self.warnings.append(f"{svc.name} on {cluster.name}: changed by hand (docker service update) "
                                     "(drift; selfHeal is off, so it is only reported)")
                self.steps.append(Step(step_id, cluster.name, "service", svc.name, "noop",
                                       "changed by hand (selfHeal off)", finding=Finding.SELF_HEAL_OFF))
                return
            self.steps.append(Step(step_id, cluster.name, "service", svc.name, "update",
                                   "Swarm service changed by hand (docker service update); putting the declared "
                                   "spec back", changes=(FieldChange("spec", "by-hand", "declared"),),
                                   depends_on=deps, ops=ops, finding=Finding.REPLACED_BY_HAND))
            self.service_steps[svc.name] = [step_id]
            return
        self.warnings.extend(notes)
        changes = swarm_changes(current.spec_json, spec, svc)
        what = ", ".join(c.path for c in changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
        self.steps.append(Step(step_id, cluster.name, "service", svc.name, "update",
                               f"{svc.update.order} rolling update by Swarm ({what or 'spec'} changed)",
                               changes=changes, depends_on=deps, ops=ops))
        self.service_steps[svc.name] = [step_id]

    def _swarm_removal(self, found: ObservedSwarmService, reason: str, after: tuple[str, ...]) -> Step:
        return Step(f"service/{found.service}@{found.host}/remove/{found.name}", found.host, "service", found.service,
                    "remove", reason, depends_on=after,
                    ops=(Op("service_remove", found.name, SwarmArgs(found.service, found.id, found.version)),))

    def _host_of(self, svc: ServiceSpec, slot: int) -> str:
        return svc.hosts[slot % len(svc.hosts)] if svc.hosts else "no host"

    def _removal(self, c: ObservedContainer, reason: str, after: tuple[str, ...]) -> Step:
        ops: tuple[Op, ...] = (Op("stop", c.name, ContainerRef(c.id)), Op("remove", c.name, RemoveArgs(c.id)))
        if not c.running:
            ops = (Op("remove", c.name, RemoveArgs(c.id)),)
        return Step(f"service/{c.service}/{c.slot}@{c.host}/remove/{c.name}", c.host, "service", c.service,
                    "remove", reason, slot=c.slot, depends_on=after, ops=ops)

    def instance(self, svc: ServiceSpec, inst: Instance, pull: Op,
                 dep_steps: tuple[str, ...]) -> tuple[Step, list[Step]]:
        step_id = f"service/{svc.name}/{inst.slot}@{inst.host}"
        containers = self.slots.get((svc.name, inst.host, inst.slot), [])
        current = [c for c in containers if c.spec_hash == svc.spec_hash and not _replaced(c, svc)]
        stale = [c for c in containers if c not in current]
        deps = tuple(sorted(set(self._infra_deps(svc, inst.host)) | set(dep_steps)))
        new_name = container_name(self.project, svc.name, inst.slot, svc.spec_hash)
        create_args = CreateArgs(svc.name, inst.slot, svc.spec_hash)

        if current:
            keep = _pick(current)
            others = sorted((c for c in containers if c is not keep), key=lambda c: c.name)
            still_running = [c for c in others if c.running]
            # Stopped leftovers of an interrupted update are only clutter: remove them after the service.
            extra = [self._removal(c, "leftover of an interrupted update", (step_id,))
                     for c in others if not c.running]
            if keep.running and not still_running:
                return Step(step_id, inst.host, "service", svc.name, "noop", "up to date", slot=inst.slot), extra
            held = dict(self.options.hold).get(keep.name)
            if not keep.running and not still_running and held:
                self.warnings.append(f"{svc.name}[{inst.slot}] on {inst.host} keeps crashing: {held}")
                return Step(step_id, inst.host, "service", svc.name, "noop", f"crash-looping: {held}",
                            slot=inst.slot, finding=Finding.CRASH_LOOPING), extra
            if not keep.running and not still_running and not svc.self_heal:
                self.warnings.append(f"{svc.name}[{inst.slot}] on {inst.host} is {keep.state} (drift; selfHeal is "
                                     "off, so it is only reported)")
                return Step(step_id, inst.host, "service", svc.name, "noop", f"{keep.state} (selfHeal off)",
                            slot=inst.slot, finding=Finding.SELF_HEAL_OFF), extra
            # Finish what an interrupted pass left, inside this slot's batch so that at most one extra
            # container runs at a time: the new one (started if needed) must be healthy, then the old
            # ones still running stop.
            ops: tuple[Op, ...] = ()
            if still_running:  # rolling back means going back to the old one: the new one goes
                ops += (Op("adopt", keep.name, ContainerRef(keep.id), undo="remove"),)
            if not keep.running:
                ops += (Op("start", keep.name, ContainerRef(keep.id), undo="stop"),)
            ops += (Op("wait_healthy", keep.name, ContainerRef(keep.id)),)
            for old_one in still_running:
                ops += (Op("stop", old_one.name, ContainerRef(old_one.id), undo="start"),
                        Op("remove", old_one.name, RemoveArgs(old_one.id, "service")))
            reason = ("finishing an interrupted update" if still_running
                      else f"container is {keep.state}; starting it")
            return Step(step_id, inst.host, "service", svc.name, "update", reason, slot=inst.slot, depends_on=deps,
                        ops=ops, finding=None if still_running else Finding.STOPPED), extra

        if not stale:
            ops = (pull, Op("create", new_name, create_args, undo="remove"), Op("start", new_name, undo="stop"),
                   Op("wait_healthy", new_name))
            return Step(step_id, inst.host, "service", svc.name, "create", "new instance", slot=inst.slot,
                        depends_on=deps, ops=ops), []

        old = _pick(stale)
        extra = [self._removal(c, "leftover of an interrupted update", (step_id,))
                 for c in sorted(stale, key=lambda c: c.name) if c is not old]
        changes, rekeyed = compare_specs(old.spec_json, svc, old_key_id=old.key_id)
        order = svc.update.order
        if not old.running:
            ops = (pull, Op("create", new_name, create_args, undo="remove"), Op("start", new_name, undo="stop"),
                   Op("wait_healthy", new_name), Op("remove", old.name, RemoveArgs(old.id, "service")))
        elif order == "start-first":
            ops = (pull, Op("create", new_name, create_args, undo="remove"), Op("start", new_name, undo="stop"),
                   Op("wait_healthy", new_name), Op("stop", old.name, ContainerRef(old.id), undo="start"),
                   Op("remove", old.name, RemoveArgs(old.id, "service")))
        else:
            ops = (pull, Op("stop", old.name, ContainerRef(old.id), undo="start"),
                   Op("create", new_name, create_args, undo="remove"), Op("start", new_name, undo="stop"),
                   Op("wait_healthy", new_name),
                   Op("remove", old.name, RemoveArgs(old.id, "service")))
        what = ", ".join(c.path for c in changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
        reason = f"{order} rolling update ({what or 'spec'} changed)"
        if rekeyed:
            self.rekeyed += 1
            reason = f"{order} rolling update ({what} changed); {REKEY_REASON}" if what else \
                f"{order} rolling update: {REKEY_REASON}"
        if old.spec_hash == svc.spec_hash:  # same labels, other settings: someone replaced it by hand
            changes, found = _hand_made(old, svc)
            reason = f"{found}; replacing it"
            if not svc.self_heal:
                self.warnings.append(f"{svc.name}[{inst.slot}] on {inst.host}: {found} (drift; "
                                     "selfHeal is off, so it is only reported)")
                return Step(step_id, inst.host, "service", svc.name, "noop", "replaced by hand (selfHeal off)",
                            slot=inst.slot, finding=Finding.SELF_HEAL_OFF), extra
            # It holds the very name the declared container needs, so it has to go first.
            ops = (pull, Op("stop", old.name, ContainerRef(old.id)), Op("remove", old.name, RemoveArgs(old.id)),
                   Op("create", new_name, create_args, undo="remove"), Op("start", new_name, undo="stop"),
                   Op("wait_healthy", new_name))
        drift = Finding.REPLACED_BY_HAND if old.spec_hash == svc.spec_hash else None
        return Step(step_id, inst.host, "service", svc.name, "update", reason, slot=inst.slot, changes=changes,
                    depends_on=deps, ops=ops, finding=drift), extra

    # -- removal of what the manifests no longer declare -----------------------------------------------
    def prune(self, undeclared: list[str]) -> None:
        if not undeclared:
            return
        if not self.desired.project.prune:
            self.warnings.append("not declared any more but kept, because prune is off: " + ", ".join(undeclared))
            return
        # Reverse dependency order: a service is removed only after the services that depend on it.
        dependents: dict[str, set[str]] = defaultdict(set)
        for name in undeclared:
            for c in self.by_service.get(name, []):
                for dep in c.depends_on:
                    dependents[dep].add(name)
            for found in self.swarm_by_service.get(name, []):
                for dep in found.depends_on:
                    dependents[dep].add(name)
        ids: dict[str, list[str]] = defaultdict(list)
        pending = list(undeclared)
        steps_of: dict[str, list[Step]] = {}
        while pending:
            ready = [n for n in pending if not (dependents.get(n, set()) & set(pending))] or pending[:1]
            for name in sorted(ready):
                after = tuple(sorted(i for d in dependents.get(name, ()) for i in ids[d]))
                steps = [self._removal(c, "service no longer declared (prune is on)", after)
                         for c in sorted(self.by_service.get(name, []), key=lambda c: (c.host, c.slot, c.name))
                         if c.host in self.reachable]
                steps += [self._swarm_removal(found, "service no longer declared (prune is on)", after)
                          for found in sorted(self.swarm_by_service.get(name, []), key=lambda f: (f.host, f.name))
                          if found.host in self.reachable]
                steps_of[name] = steps
                ids[name] = [s.id for s in steps]
                pending.remove(name)
        for name in undeclared:
            self.steps += steps_of[name]

    def volume_removals(self) -> None:
        for vol in sorted(self.desired.volumes, key=lambda v: v.name):
            if not vol.remove or vol.external:
                continue
            docker_name = object_name(self.project, vol.name)
            for host in sorted(self.reachable):
                obs = self.observed.host(host)
                assert obs is not None
                if any(v.docker_name == docker_name for v in obs.volumes):
                    users = tuple(sorted(s.id for s in self.steps if s.action == "remove" and s.host == host))
                    self.steps.append(Step(f"volume/{vol.name}@{host}/remove", host, "volume", vol.name, "remove",
                                           "the manifest says remove: true (its data is deleted)", depends_on=users,
                                           ops=(Op("volume_remove", docker_name, VolumeArgs(vol.name)),)))


def plan(desired: DesiredState, observed: ObservedState, *, options: PlanOptions = PlanOptions()) -> Plan:
    """The ordered steps that take the hosts from ``observed`` to ``desired``. Pure and deterministic.

    Services are planned in dependency order so that each step can name the steps it waits for.
    """
    order = _service_order(desired.services)
    ordered = tuple(sorted(desired.services, key=lambda s: (order.get(s.name, 0), s.name)))
    planner = _Planner(dataclasses.replace(desired, services=ordered), observed, options)
    made = planner.run()
    sources = {s.name: s.source for s in desired.services if s.source}
    if not sources:
        return made
    return dataclasses.replace(made, steps=tuple(
        dataclasses.replace(step, source=sources[step.name]) if step.kind == "service" and step.name in sources
        and step.action != "remove" else step for step in made.steps))
