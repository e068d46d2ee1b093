"""A gitops Service as a Docker Swarm service: the ServiceSpec the Engine API takes (``POST /services/create``,
``POST /services/{id}/update``), built from a ServiceSpec. Pure: no docker, no clock.

A Host with ``mode: swarm`` is a cluster: the planner compares this spec's hash with the one each Swarm service
carries, and gitops.hosts.swarm sends it and follows the rollout.

What Swarm does differently from gitops' own rollouts, and what this module does about it:
- Swarm's automatic rollback only fires when a task fails within ``Monitor``; a health check that needs
  longer (start period + retries x (interval + timeout)) would pass the update before it could fail. The
  monitor is raised to that window, and a note says so (the plan shows it).
- gitops' ``minHealthyTime`` is the time a new task must stay healthy: it is the floor of the monitor.
- Repository files (``files``, compose ``secrets:``) become Swarm secrets (secret files) and configs (plain ones),
  named by a digest of their target and content: Swarm cannot change either in place, so a new content is a new
  object, the service moves to it in a rolling update, and the old one is removed once no service uses it.
- Health checks run inside each task (``exec``); gitops' ``http``/``tcp`` probes go through a container's
  published host port, which a Swarm task does not have, so they are refused here.
- Replicas, placement and the update policy are part of the Swarm spec (changing them updates the service in
  place, as Swarm does), not of the container config.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gitops.core.model import (
    LABEL_DEPENDS_ON,
    LABEL_FILE_TARGET,
    LABEL_KEY_ID,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_PROJECT,
    LABEL_REVISION,
    LABEL_SERVICE,
    LABEL_SPEC,
    LABEL_SPEC_HASH,
    HealthCheck,
    HostSpec,
    RepoFile,
    ServiceSpec,
    VolumeSpec,
    canonical_json,
    object_name,
)

NS = 1_000_000_000  # the Engine API counts durations in nanoseconds
RESTART = {"no": "none", "on-failure": "on-failure", "always": "any", "unless-stopped": "any"}
SECRET_LIMIT = 500 * 1024  # Swarm refuses a secret larger than this
LABEL_SWARM_HASH = "io.gitops.swarm-spec-hash"  # the hash of the whole Swarm spec as gitops sent it


class SwarmSpecError(ValueError):
    """A setting a Swarm service cannot have (the message says which and what to do instead)."""


@dataclass(frozen=True)
class Placement:
    """Where Swarm may run the tasks: node label constraints (``node.labels.zone==b``) and spread preferences."""

    constraints: tuple[str, ...] = ()
    spread: tuple[str, ...] = ()  # node label names: tasks spread evenly over their values


def check_swarm_service(svc: ServiceSpec) -> None:
    """Raises SwarmSpecError naming every setting a Swarm service cannot have (what validate reports)."""
    problems = []
    for check in (lambda: _refuse_engine_only(svc),
                  lambda: _healthcheck(svc.healthcheck, svc.name) if svc.healthcheck is not None else None):
        try:
            check()
        except SwarmSpecError as exc:
            problems.append(str(exc).removeprefix(f"{svc.name}: "))
    if problems:
        raise SwarmSpecError(f"{svc.name}: " + "; ".join(problems))


def swarm_service_name(project: str, service: str) -> str:
    """The Swarm service's name, as `docker stack deploy` names a stack's services."""
    return f"{project}_{service}"


def swarm_placement(svc: ServiceSpec) -> Placement:
    return Placement(tuple(f"node.labels.{k}=={v}" for k, v in svc.node_selector), svc.spread)


@dataclass(frozen=True)
class SwarmFile:
    """A repository file as a Swarm secret (secret files) or config (plain ones), named by its content."""

    kind: str  # "secret" | "config"
    name: str  # content-addressed: a changed file is another object
    target: str
    mode: int
    file: RepoFile


def swarm_files(project: str, svc: ServiceSpec) -> tuple[SwarmFile, ...]:
    """The secrets and configs ``svc`` mounts. A secret's name carries its keyed digest (never a plain hash of the
    value: names are listed by anyone who can list secrets); a config's, a hash of its target and content."""
    out = []
    for f in svc.files:
        if f.secret:
            tag = f.digest.partition(":")[2][:12]
        else:
            tag = hashlib.sha256(f.target.encode() + b"\0" + f.content).hexdigest()[:12]
        out.append(SwarmFile("secret" if f.secret else "config", f"{project}_{svc.name}_{tag}", f.target, f.mode, f))
    return tuple(out)


def file_labels(project: str, svc: ServiceSpec, item: SwarmFile) -> dict[str, str]:
    return {LABEL_MANAGED: "true", LABEL_PROJECT: project, LABEL_KIND: f"swarm-{item.kind}",
            LABEL_SERVICE: svc.name, LABEL_FILE_TARGET: item.target}


def health_window(hc: HealthCheck) -> float:
    """The longest a task can take to be called unhealthy by Docker: start period + retries x (interval + timeout)."""
    return hc.deadline()


def monitor_seconds(svc: ServiceSpec) -> tuple[float, str]:
    """The update's Monitor, and a note when it was raised: Swarm watches each new task this long for a failure,
    so it must outlast the health check's window, and gitops' minHealthyTime."""
    wanted = max(svc.update.min_healthy_time, 5.0)  # Swarm's own default monitor is 5 s
    if svc.healthcheck is None:
        return wanted, ""
    window = health_window(svc.healthcheck)
    if window <= wanted:
        return wanted, ""
    return window, (f"{svc.name}: the update monitor is raised from {wanted:g}s to {window:g}s, the health "
                    f"check's window (start period + retries x (interval + timeout)), so that Swarm sees a task "
                    f"fail its health check before it calls the update done")


def _ns(seconds: float) -> int:
    return int(round(seconds * NS))


def _healthcheck(hc: HealthCheck, service: str) -> dict[str, Any]:
    if hc.kind != "exec":
        raise SwarmSpecError(f"{service}: a {hc.kind} health check is probed through a container's published host "
                             f"port, which a Swarm task does not have: use an exec check (it runs inside each task)")
    return {"Test": list(hc.command), "Interval": _ns(hc.interval), "Timeout": _ns(hc.timeout),
            "Retries": hc.retries, "StartPeriod": _ns(hc.start_period)}


def _refuse_engine_only(svc: ServiceSpec) -> None:
    """Settings a Swarm task cannot take, named with the way out."""
    problems = []
    if svc.privileged:
        problems.append("privileged (Swarm services cannot be privileged)")
    if svc.network_mode:
        problems.append(f"networkMode {svc.network_mode} (tasks join overlay networks)")
    for name, value in (("pid", svc.pid), ("ipc", svc.ipc), ("uts", svc.uts), ("userns", svc.userns)):
        if value:
            problems.append(f"{name}: {value}")
    if svc.devices:
        problems.append("devices")
    if svc.security_opt:
        problems.append("securityOpt")
    if any(p.host_ip for p in svc.ports):
        problems.append("ports with hostIp (the routing mesh publishes on every node)")
    big = [f.target for f in svc.files if f.secret and len(f.content) > SECRET_LIMIT]
    if big:
        problems.append(f"secret files over Swarm's {SECRET_LIMIT // 1024} KiB per secret: {', '.join(big)}")
    if problems:
        raise SwarmSpecError(f"{svc.name}: not possible on a Swarm service: {', '.join(problems)}")


def _mount(m: Any, docker_volume: str, project: str, declared: VolumeSpec | None) -> dict[str, Any]:
    if m.type == "tmpfs":
        out: dict[str, Any] = {"Type": "tmpfs", "Target": m.target}
        if m.size:
            out["TmpfsOptions"] = {"SizeBytes": m.size}
        return out
    out = {"Type": m.type, "Source": docker_volume if m.type == "volume" else m.source, "Target": m.target}
    if m.read_only:
        out["ReadOnly"] = True
    if m.type == "volume" and declared is not None and not declared.external:
        # each node makes the volume when a task first mounts it there: with the Volume's driver, options and
        # labels (an NFS volume is the same share on every node), and the project's ownership labels
        options: dict[str, Any] = {"Labels": {**dict(declared.labels), LABEL_MANAGED: "true", LABEL_PROJECT: project,
                                              LABEL_KIND: "volume", LABEL_NAME: declared.name}}
        if declared.driver != "local" or declared.options:
            options["DriverConfig"] = {"Name": declared.driver, "Options": dict(declared.options)}
        out["VolumeOptions"] = options
    return out


def _update_config(svc: ServiceSpec, monitor: float, *, rollback: bool = False) -> dict[str, Any]:
    return {"Parallelism": svc.update.parallelism, "Delay": 0,
            "FailureAction": "pause" if rollback else svc.update.failure_action,
            "Monitor": _ns(monitor), "MaxFailureRatio": 0, "Order": svc.update.order}


def swarm_service_spec(project: str, svc: ServiceSpec, revision: str, *, name: str = "",
                       host: HostSpec | None = None, networks: dict[str, str] | None = None,
                       volumes: dict[str, str] | None = None, placement: Placement | None = None,
                       declared_volumes: Iterable[VolumeSpec] = ()) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The Swarm ServiceSpec for ``svc``, and notes for the plan (a raised monitor).

    ``host``: the cluster (its endpoint and publish modes). ``networks``: manifest network name -> Docker
    network name, and ``volumes`` likewise; by default the project's own (``object_name``) or the external
    ones. ``placement``: by default from the service's nodeSelector and spread. ``declared_volumes``: the
    Volume manifests, whose driver, options and labels go with each volume mount. Secrets and configs are named
    by SecretName only: the driver adds the ids Swarm gave them. Raises SwarmSpecError for a setting a Swarm
    service cannot have.
    """
    check_swarm_service(svc)
    name = name or swarm_service_name(project, svc.name)
    networks = networks if networks is not None else {
        n.name: n.external or object_name(project, n.name) for n in svc.networks}
    volumes = volumes if volumes is not None else {
        m.source: m.external or object_name(project, m.source) for m in svc.mounts if m.type == "volume"}
    placement = placement if placement is not None else swarm_placement(svc)
    endpoint_mode = host.endpoint_mode if host is not None else "vip"
    publish_mode = host.publish_mode if host is not None else "ingress"
    monitor, note = monitor_seconds(svc)
    by_name = {v.name: v for v in declared_volumes}
    container: dict[str, Any] = {
        "Image": svc.run_image,
        "Env": [f"{e.name}={e.value}" for e in svc.env],
        "Labels": {LABEL_MANAGED: "true", LABEL_PROJECT: project, LABEL_SERVICE: svc.name},
        "StopGracePeriod": _ns(svc.stop_grace_period),
        "Init": svc.init,
        "ReadOnly": svc.read_only_rootfs,
        "Mounts": [_mount(m, volumes.get(m.source, m.external or m.source), project, by_name.get(m.source))
                   for m in svc.mounts],
    }
    if svc.entrypoint is not None:
        container["Command"] = list(svc.entrypoint)
    if svc.command is not None:
        container["Args"] = list(svc.command)
    for key, value in (("Dir", svc.working_dir), ("User", svc.user), ("Hostname", svc.hostname),
                       ("StopSignal", svc.stop_signal)):
        if value:
            container[key] = value
    if svc.cap_add:
        container["CapabilityAdd"] = sorted(svc.cap_add)
    if svc.cap_drop:
        container["CapabilityDrop"] = sorted(svc.cap_drop)
    if svc.healthcheck is not None:
        container["Healthcheck"] = _healthcheck(svc.healthcheck, svc.name)
    files = swarm_files(project, svc)
    for kind, key in (("secret", "Secrets"), ("config", "Configs")):
        refs = [{"File": {"Name": f.target, "UID": "0", "GID": "0", "Mode": f.mode}, f"{kind.title()}Name": f.name}
                for f in files if f.kind == kind]
        if refs:
            container[key] = refs
    resources: dict[str, Any] = {}
    limits = {k: v for k, v in (("NanoCPUs", int(svc.cpus * NS) if svc.cpus else None),
                                ("MemoryBytes", svc.memory)) if v}
    if limits:
        resources["Limits"] = limits
    if svc.memory_reservation:
        resources["Reservations"] = {"MemoryBytes": svc.memory_reservation}
    task: dict[str, Any] = {
        "ContainerSpec": container,
        "Resources": resources,
        "RestartPolicy": {"Condition": RESTART.get(svc.restart, "any")},
        "Placement": {"Constraints": list(placement.constraints),
                      "Preferences": [{"Spread": {"SpreadDescriptor": f"node.labels.{label}"}}
                                      for label in placement.spread]},
        "Networks": [{"Target": networks.get(n.name, n.external or n.name), "Aliases": sorted({svc.name, *n.aliases})}
                     for n in svc.networks],
    }
    canonical = {**svc.container_config(), "replicas": svc.replicas, "placement": {
        "constraints": list(placement.constraints), "spread": list(placement.spread)},
        "update": {"parallelism": svc.update.parallelism, "order": svc.update.order,
                   "failureAction": svc.update.failure_action, "monitor": monitor},
        "endpoint": {"mode": endpoint_mode, "publish": publish_mode}}
    spec: dict[str, Any] = {
        "Name": name,
        "Labels": {
            LABEL_MANAGED: "true", LABEL_PROJECT: project, LABEL_KIND: "swarm-service", LABEL_SERVICE: svc.name,
            LABEL_REVISION: revision, LABEL_SPEC_HASH: svc.spec_hash, LABEL_SPEC: canonical_json(canonical),
            LABEL_DEPENDS_ON: ",".join(sorted({d.service for d in svc.depends_on})),
            **({LABEL_KEY_ID: svc.secret_key_id} if svc.secret_key_id else {}),
            **dict(svc.labels),
        },
        "TaskTemplate": task,
        "Mode": {"Replicated": {"Replicas": svc.replicas}},
        "UpdateConfig": _update_config(svc, monitor),
        "RollbackConfig": _update_config(svc, monitor, rollback=True),
        "EndpointSpec": {"Mode": endpoint_mode, "Ports": [
            {"Protocol": p.protocol, "TargetPort": p.container, "PublishMode": publish_mode,
             **({"PublishedPort": p.host} if p.host else {})} for p in svc.ports]},
    }
    spec["Labels"].update({LABEL_MANAGED: "true", LABEL_PROJECT: project, LABEL_SERVICE: svc.name,  # gitops' win
                           LABEL_KIND: "swarm-service", LABEL_REVISION: revision, LABEL_SPEC_HASH: svc.spec_hash,
                           LABEL_SPEC: canonical_json(canonical)})
    secrets = {e.name: e.digest for e in svc.env if e.secret}
    spec["Labels"][LABEL_SWARM_HASH] = swarm_hash(spec, lambda name, value: secrets.get(name, value))
    return spec, (note,) if note else ()


def swarm_hash(spec: dict[str, Any], env_value: Callable[[str, str], str]) -> str:
    """The hash of a Swarm spec as gitops sends it (its own hash label left out): a service whose spec, read
    back, hashes otherwise was changed by hand (`docker service update`).

    ``env_value(name, value)`` gives what stands for each variable: a secret's keyed digest (SecretKey), so
    that the label, which anyone who can list services reads, cannot confirm a guessed secret."""
    # the revision label is left out: a new commit that changes nothing of a service does not update it
    labels = {k: v for k, v in spec.get("Labels", {}).items() if k not in (LABEL_SWARM_HASH, LABEL_REVISION)}
    task = dict(spec.get("TaskTemplate") or {})
    container = dict(task.get("ContainerSpec") or {})
    env = []
    for item in container.get("Env") or []:
        name, _, value = str(item).partition("=")
        env.append(f"{name}={env_value(name, value)}")
    container["Env"] = env
    task["ContainerSpec"] = container
    hashed = {**spec, "Labels": labels, "TaskTemplate": task}
    return hashlib.sha256(canonical_json(omit_empty(hashed)).encode()).hexdigest()


def omit_empty(value: Any) -> Any:
    """``value`` without empty, zero and false members: the Engine leaves those out when it answers (omitempty),
    so a spec read back must hash as the one sent."""
    if isinstance(value, dict):
        out = {k: omit_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, 0, False, "", [], {})}
    if isinstance(value, list):
        return [omit_empty(v) for v in value]
    return value
