"""Which settings of a running container differ from what gitops would create for its spec.

A container replaced by hand (``docker run`` with the labels copied, a changed ``-e`` or ``-p``)
carries the spec hash of the manifest it claims, so its labels cannot tell. This compares Docker's
inspect JSON with the create request gitops builds for that spec (docker_host.container_request)
and names the differing settings the way the manifests name them (``env.DEBUG``, ``ports``,
``mounts``, ``memory``...). Values are never returned: env values may be secrets.

Only what gitops sets is compared, plus the settings that widen what a container may do
(privileged, capabilities, devices, host namespaces, extra env, mounts, published ports): a
hand-made container may not add those silently. Pure: dicts in, names out.
"""

from __future__ import annotations

from typing import Any

from gitops.core.model import LABEL_NETWORK_HASHES

# Docker HostConfig keys -> manifest names, compared when gitops sets them or when they widen access.
_HOST_FIELDS = {
    "Memory": "memory", "MemoryReservation": "memoryReservation", "NanoCpus": "cpus",
    "Privileged": "privileged", "ReadonlyRootfs": "readOnlyRootfs", "Init": "init",
    "CapAdd": "capAdd", "CapDrop": "capDrop", "Devices": "devices", "SecurityOpt": "securityOpt",
    "PidMode": "pid", "IpcMode": "ipc", "UTSMode": "uts", "UsernsMode": "userns",
}
# Set on the host by Docker itself when the request leaves them out: only compared when gitops sets them.
_DAEMON_DEFAULTS = {"IpcMode", "Init"}


def _empty(value: Any) -> bool:
    return value in (None, "", [], {}, 0, False)


def _env(entries: list[str] | None) -> dict[str, str]:
    out = {}
    for entry in entries or []:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


def _port_bindings(bindings: dict[str, Any] | None) -> set[tuple[str, str, str]]:
    out = set()
    for port, hosts in (bindings or {}).items():
        for b in hosts or [{}]:
            out.add((port, (b or {}).get("HostIp") or "", (b or {}).get("HostPort") or ""))
    return out


def _mounts(host_config: dict[str, Any]) -> set[tuple[str, str, str, bool]]:
    """(type, source, target, read-only) from --mount, -v and --tmpfs alike."""
    out = set()
    for m in host_config.get("Mounts") or []:
        out.add((m.get("Type", ""), m.get("Source") or "", m.get("Target", ""), bool(m.get("ReadOnly"))))
    for bind in host_config.get("Binds") or []:
        parts = bind.split(":")
        source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
        kind = "bind" if source.startswith("/") else "volume"
        out.add((kind, source, target, len(parts) > 2 and "ro" in parts[2].split(",")))
    for target in host_config.get("Tmpfs") or {}:
        out.add(("tmpfs", "", target, False))
    return out


def differences(request: dict[str, Any], extra_networks: list[str], info: dict[str, Any],
                image_env: list[str]) -> tuple[str, ...]:
    """Names of the settings where the inspected container ``info`` differs from the create ``request``."""
    config = info.get("Config") or {}
    host = info.get("HostConfig") or {}
    want_host = request.get("host_config") or {}
    found: list[str] = []

    if config.get("Image") != request["image"]:
        found.append("image")
    for key, name in (("command", "Cmd"), ("entrypoint", "Entrypoint")):
        if request.get(key) is not None and list(config.get(name) or []) != request[key]:
            found.append(key)
    for key, name in (("working_dir", "WorkingDir"), ("user", "User"), ("hostname", "Hostname"),
                      ("stop_signal", "StopSignal")):
        if request.get(key) and config.get(name) != request[key]:
            found.append({"working_dir": "workingDir", "stop_signal": "stopSignal"}.get(key, key))

    # env: every declared value as declared; nothing else but what the image itself sets
    want_env, have_env, from_image = _env(request.get("environment")), _env(config.get("Env")), _env(image_env)
    for key in sorted(set(want_env) | set(have_env)):
        if key in want_env:
            if have_env.get(key) != want_env[key]:
                found.append(f"env.{key}")
        elif key not in from_image or from_image[key] != have_env[key]:
            found.append(f"env.{key}")

    labels = config.get("Labels") or {}
    if any(labels.get(k) != v for k, v in (request.get("labels") or {}).items() if k != LABEL_NETWORK_HASHES):
        found.append("labels")
    want_hc = request.get("healthcheck")
    if want_hc and list((config.get("Healthcheck") or {}).get("Test") or []) != want_hc["test"]:
        found.append("healthcheck")

    if _port_bindings(want_host.get("PortBindings")) != _port_bindings(host.get("PortBindings")):
        found.append("ports")
    if _mounts(want_host) != _mounts(host):
        found.append("mounts")
    restart = (want_host.get("RestartPolicy") or {}).get("Name") or "no"
    if ((host.get("RestartPolicy") or {}).get("Name") or "no") != restart:
        found.append("restart")
    for key, name in _HOST_FIELDS.items():
        want, have = want_host.get(key), host.get(key)
        if key in _DAEMON_DEFAULTS and _empty(want):
            continue
        if not (_empty(want) and _empty(have)) and want != have:
            found.append(name)

    mode = want_host.get("NetworkMode") or "default"
    if mode not in ("default", "bridge"):
        if host.get("NetworkMode") != mode:
            found.append("networkMode")
    else:
        attached = set((info.get("NetworkSettings") or {}).get("Networks") or {})
        first = list((request.get("networking_config") or {}).get("EndpointsConfig") or {})
        if attached != (set(first + extra_networks) or {"bridge"}):
            found.append("networks")
    return tuple(found)
