"""Compose fields gitops does not map, each refused with the way out (checked before the schema, so that a
real compose file gets these messages, not "unknown field"). Nothing a compose file says is dropped silently."""

from __future__ import annotations

from typing import Any

from gitops.manifests.parse import JsonPath

_GENERIC = "gitops cannot represent it yet, and dropping it would deploy something else than the file says; remove it"

SERVICE: dict[str, str] = {
    "build": "gitops deploys images, it does not build them: build the image in CI, push it, and reference it by tag "
             "in image:",
    "links": "links are legacy: services on one network reach each other by service name already; remove links",
    "external_links": "remove it and put the services on one network",
    "extends": "extends is not supported: write the fields out, or use a second compose file listed in the "
               "Project's spec.compose (files are merged in order)",
    "scale": "use deploy.replicas",
    "sysctls": "sysctls are not supported yet; " + _GENERIC,
    "logging": "logging drivers are not supported yet (the host's default driver is used); " + _GENERIC,
    "extra_hosts": "extra_hosts is not supported yet; " + _GENERIC,
    "dns": _GENERIC, "dns_search": _GENERIC, "dns_opt": _GENERIC, "ulimits": _GENERIC, "shm_size": _GENERIC,
    "tty": _GENERIC, "stdin_open": _GENERIC, "platform": _GENERIC, "mac_address": _GENERIC, "domainname": _GENERIC,
    "cgroup_parent": _GENERIC, "cgroup": _GENERIC, "isolation": _GENERIC, "runtime": _GENERIC,
    "userns_mode": _GENERIC, "uts": _GENERIC, "group_add": _GENERIC, "oom_kill_disable": _GENERIC,
    "oom_score_adj": _GENERIC, "pids_limit": _GENERIC, "storage_opt": _GENERIC, "volumes_from": _GENERIC,
    "blkio_config": _GENERIC, "cpu_count": _GENERIC, "cpu_percent": _GENERIC, "cpu_shares": _GENERIC,
    "cpu_period": _GENERIC, "cpu_quota": _GENERIC, "cpu_rt_runtime": _GENERIC, "cpu_rt_period": _GENERIC,
    "cpuset": _GENERIC, "memswap_limit": _GENERIC, "mem_swappiness": _GENERIC, "device_cgroup_rules": _GENERIC,
    "credential_spec": _GENERIC, "annotations": _GENERIC, "attach": _GENERIC, "develop": _GENERIC,
    "gpus": _GENERIC, "post_start": _GENERIC, "pre_stop": _GENERIC, "label_file": _GENERIC,
    "use_api_socket": _GENERIC, "models": _GENERIC, "provider": _GENERIC,
}
DEPLOY: dict[str, str] = {
    "mode": "only replicated services map onto gitops (mode: global needs Swarm); remove mode",
    "labels": "Swarm service labels do not exist on plain hosts; use the service's labels:",
    "endpoint_mode": _GENERIC,
    "restart_policy": "use the service's restart: (no, always, on-failure, unless-stopped)",
    "rollback_config": "gitops rolls a failed update back by itself, with the update's order and parallelism; "
                       "remove rollback_config",
}
UPDATE: dict[str, str] = {
    "delay": "gitops moves to the next batch once the previous one has been healthy for minHealthyTime; use "
             "monitor (it becomes minHealthyTime) and remove delay",
    "max_failure_ratio": "any failed replica stops the update (failure_action); remove max_failure_ratio",
    "failure_action": "",  # 'continue' only: checked below
}
PLACEMENT: dict[str, str] = {"preferences": _GENERIC, "max_replicas_per_node": _GENERIC}
RESOURCES: dict[str, str] = {"pids": _GENERIC, "devices": _GENERIC}
RESERVATIONS: dict[str, str] = {"cpus": "a CPU reservation has no meaning on a plain Docker host; remove it",
                                "devices": _GENERIC, "generic_resources": _GENERIC}
HEALTHCHECK: dict[str, str] = {"start_interval": _GENERIC}
TOP: dict[str, str] = {"include": "include is not supported: list the files in the Project's spec.compose "
                                  "(merged in order)"}


def refusals(data: dict[str, Any]) -> list[tuple[JsonPath, str]]:
    """(path, message) for every refused field of one compose file."""
    out: list[tuple[JsonPath, str]] = []

    def check(table: dict[str, str], value: Any, path: JsonPath) -> None:
        if isinstance(value, dict):
            for key in value:
                if key in table and table[key]:
                    out.append(((*path, key), f"{_dotted((*path, key))}: {table[key]}"))

    check(TOP, data, ())
    services = data.get("services")
    for name, svc in (services.items() if isinstance(services, dict) else ()):
        if not isinstance(svc, dict):
            continue
        base: JsonPath = ("services", name)
        check(SERVICE, svc, base)
        check(HEALTHCHECK, svc.get("healthcheck"), (*base, "healthcheck"))
        deploy = svc.get("deploy")
        if not isinstance(deploy, dict):
            continue
        check({k: v for k, v in DEPLOY.items() if k != "mode" or deploy.get("mode") != "replicated"}, deploy,
              (*base, "deploy"))
        update = deploy.get("update_config")
        check(UPDATE, update, (*base, "deploy", "update_config"))
        if isinstance(update, dict) and update.get("failure_action") == "continue":
            out.append(((*base, "deploy", "update_config", "failure_action"),
                        f"{_dotted((*base, 'deploy', 'update_config', 'failure_action'))}: continue is not supported: "
                        "a failed replica rolls the service back (rollback) or stops the update (pause)"))
        check(PLACEMENT, deploy.get("placement"), (*base, "deploy", "placement"))
        resources = deploy.get("resources")
        if isinstance(resources, dict):
            check(RESOURCES, resources.get("limits"), (*base, "deploy", "resources", "limits"))
            check(RESERVATIONS, resources.get("reservations"), (*base, "deploy", "resources", "reservations"))
    return out


def _dotted(path: JsonPath) -> str:
    return ".".join(str(p) for p in path)
