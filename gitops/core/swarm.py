"""A gitops Service as a Docker Swarm service: the ServiceSpec the Engine API takes (``POST /services/create``,
``POST /services/{id}/update``), built from a ServiceSpec. Pure: no docker, no clock.

This is the mapping issue 13 needs before a Swarm cluster can be a Host (``mode: swarm``); the driver that
sends it and follows the rollout is not written yet, so nothing calls this module outside its tests.

What Swarm does differently from gitops' own rollouts, and what this module does about it:
- Swarm's automatic rollback only fires when a task fails within ``Monitor``; a health check that needs
  longer (start period + retries x (interval + timeout)) would pass the update before it could fail. The
  monitor is raised to that window, and a note says so (the plan shows it).
- gitops' ``minHealthyTime`` is the time a new task must stay healthy: it is the floor of the monitor.
- Health checks run inside each task (``exec``); gitops' ``http``/``tcp`` probes go through a container's
  published host port, which a Swarm task does not have, so they are refused here.
- Replicas, placement and the update policy are part of the Swarm spec (changing them updates the service in
  place, as Swarm does), not of the container config.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gitops.core.model import (
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PROJECT,
    LABEL_REVISION,
    LABEL_SERVICE,
    LABEL_SPEC,
    LABEL_SPEC_HASH,
    HealthCheck,
    ServiceSpec,
    canonical_json,
)

NS = 1_000_000_000  # the Engine API counts durations in nanoseconds
RESTART = {"no": "none", "on-failure": "on-failure", "always": "any", "unless-stopped": "any"}
LABEL_SWARM_HASH = "io.gitops.swarm-spec-hash"  # the hash of the whole Swarm spec as gitops sent it


class SwarmSpecError(ValueError):
    """A setting a Swarm service cannot have (the message says which and what to do instead)."""


@dataclass(frozen=True)
class Placement:
    """Where Swarm may run the tasks: node label constraints (``node.labels.zone==b``) and spread preferences."""

    constraints: tuple[str, ...] = ()
    spread: tuple[str, ...] = ()  # node label names: tasks spread evenly over their values


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
    if svc.files:
        problems.append("files (deliver them as Swarm configs or secrets)")
    if any(p.host_ip for p in svc.ports):
        problems.append("ports with hostIp (the routing mesh publishes on every node)")
    if problems:
        raise SwarmSpecError(f"{svc.name}: not possible on a Swarm service: {', '.join(problems)}")


def _mount(m: Any, docker_volume: str) -> dict[str, Any]:
    if m.type == "tmpfs":
        out: dict[str, Any] = {"Type": "tmpfs", "Target": m.target}
        if m.size:
            out["TmpfsOptions"] = {"SizeBytes": m.size}
        return out
    out = {"Type": m.type, "Source": docker_volume if m.type == "volume" else m.source, "Target": m.target}
    if m.read_only:
        out["ReadOnly"] = True
    return out


def _update_config(svc: ServiceSpec, monitor: float, *, rollback: bool = False) -> dict[str, Any]:
    return {"Parallelism": svc.update.parallelism, "Delay": 0,
            "FailureAction": "pause" if rollback else svc.update.failure_action,
            "Monitor": _ns(monitor), "MaxFailureRatio": 0, "Order": svc.update.order}


def swarm_service_spec(project: str, svc: ServiceSpec, revision: str, *, name: str,
                       networks: dict[str, str] | None = None, volumes: dict[str, str] | None = None,
                       placement: Placement = Placement()) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The Swarm ServiceSpec for ``svc``, and notes for the plan (a raised monitor).

    ``networks``: manifest network name -> Docker network name (overlay networks the project made, or
    external ones); ``volumes``: manifest volume name -> Docker volume name. Raises SwarmSpecError for a
    setting a Swarm service cannot have.
    """
    _refuse_engine_only(svc)
    networks = networks or {}
    volumes = volumes or {}
    monitor, note = monitor_seconds(svc)
    container: dict[str, Any] = {
        "Image": svc.run_image,
        "Env": [f"{e.name}={e.value}" for e in svc.env],
        "Labels": {LABEL_MANAGED: "true", LABEL_PROJECT: project, LABEL_SERVICE: svc.name},
        "StopGracePeriod": _ns(svc.stop_grace_period),
        "Init": svc.init,
        "ReadOnly": svc.read_only_rootfs,
        "Mounts": [_mount(m, volumes.get(m.source, m.external or m.source)) for m in svc.mounts],
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
                   "failureAction": svc.update.failure_action, "monitor": monitor}}
    spec: dict[str, Any] = {
        "Name": name,
        "Labels": {
            LABEL_MANAGED: "true", LABEL_PROJECT: project, LABEL_KIND: "swarm-service", LABEL_SERVICE: svc.name,
            LABEL_REVISION: revision, LABEL_SPEC_HASH: svc.spec_hash, LABEL_SPEC: canonical_json(canonical),
            **dict(svc.labels),
        },
        "TaskTemplate": task,
        "Mode": {"Replicated": {"Replicas": svc.replicas}},
        "UpdateConfig": _update_config(svc, monitor),
        "RollbackConfig": _update_config(svc, monitor, rollback=True),
        "EndpointSpec": {"Mode": "vip", "Ports": [
            {"Protocol": p.protocol, "TargetPort": p.container, "PublishMode": "ingress",
             **({"PublishedPort": p.host} if p.host else {})} for p in svc.ports]},
    }
    spec["Labels"].update({LABEL_MANAGED: "true", LABEL_PROJECT: project, LABEL_SERVICE: svc.name})  # gitops' win
    secrets = {e.name: e.digest for e in svc.env if e.secret}
    spec["Labels"][LABEL_SWARM_HASH] = swarm_hash(spec, lambda name, value: secrets.get(name, value))
    return spec, (note,) if note else ()


def swarm_hash(spec: dict[str, Any], env_value: Callable[[str, str], str]) -> str:
    """The hash of a Swarm spec as gitops sends it (its own hash label left out): a service whose spec, read
    back, hashes otherwise was changed by hand (`docker service update`).

    ``env_value(name, value)`` gives what stands for each variable: a secret's keyed digest (SecretKey), so
    that the label, which anyone who can list services reads, cannot confirm a guessed secret."""
    labels = {k: v for k, v in spec.get("Labels", {}).items() if k != LABEL_SWARM_HASH}
    task = dict(spec.get("TaskTemplate") or {})
    container = dict(task.get("ContainerSpec") or {})
    env = []
    for item in container.get("Env") or []:
        name, _, value = str(item).partition("=")
        env.append(f"{name}={env_value(name, value)}")
    container["Env"] = env
    task["ContainerSpec"] = container
    hashed = {**spec, "Labels": labels, "TaskTemplate": task}
    return hashlib.sha256(canonical_json(_pruned(hashed)).encode()).hexdigest()


def _pruned(value: Any) -> Any:
    """``value`` without empty, zero and false members: the Engine leaves those out when it answers (omitempty),
    so a spec read back must hash as the one sent."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, 0, False, "", [], {})}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value
