"""The security policy (SECURITY.md item 4): which settings a repository may use, decided by allowlists.

A Docker socket is root on its host and manifests come from pull requests anyone may open, so every
setting that could reach the host is refused unless it is on a known-safe list or the Project allows
the rule that refuses it. Denylists are never complete, so this module only ever names what is safe.

FIELD_POLICY records a decision for every field of every schema (tests/test_policy.py walks the
JSON Schemas and fails for a field without one). Pure: no docker, git, network or clock.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitops.manifests.parse import format_path

POLICY_RULES: dict[str, str] = {
    "privileged": "a privileged container is root on the host",
    "host-network": "sharing the host's network namespace bypasses network isolation",
    "container-network": "joining another container's network namespace (one gitops may not manage) "
                         "bypasses network isolation",
    "host-pid": "sharing the host's PID namespace lets the container see and signal host processes",
    "host-ipc": "sharing the host's IPC namespace exposes host shared memory",
    "host-uts": "sharing the host's UTS namespace lets the container change the host name",
    "host-userns": "leaving the user namespace maps container root to host root",
    "cap-add": "this capability is outside the allowlist",
    "devices": "passing host devices gives direct hardware access",
    "seccomp-profile": "only Docker's default seccomp profile is allowed: another one, unconfined or "
                       "given inline, can open every system call",
    "apparmor-profile": "only Docker's default AppArmor profile is allowed: another one can lift the "
                        "mandatory access control",
    "selinux-label": "SELinux label options (label=disable, label=type:spc_t, ...) can turn off or "
                     "replace the container's confinement",
    "security-opt": "only no-new-privileges is allowed in securityOpt",
    "host-path": "bind mounts are only allowed below the host paths the Project lists",
    "bind-below-writable": "Docker follows symlinks on the host: a container that can write a parent "
                           "folder can point this path anywhere, '/' included",
    "sensitive-bind-mount": "bind-mounting this host path exposes or lets the container change the host",
    "docker-socket-mount": "the Docker or containerd socket is root on the host",
    "volume-options": "local volume options are passed to mount(2) on the host: only tmpfs (size, mode, "
                      "uid, gid) and nfs/cifs with a server address are known to be safe",
    "volume-driver": "a volume plugin takes options only it understands, and may mount host paths",
    "network-driver": "only the bridge and overlay drivers are known to be safe; others attach containers to host "
                      "interfaces or run a plugin",
    "external-network": "a network gitops does not manage may join the container to other applications' "
                        "traffic",
    "external-volume": "a volume gitops does not manage may hold another application's data",
}

# 'host-path' is allowed per folder in spec.policy.allowHostPaths, never as a whole.
ALLOWABLE_RULES = tuple(rule for rule in POLICY_RULES if rule != "host-path")

# Docker's default capability set: adding one back after a capDrop is harmless.
CAPABILITY_ALLOWLIST = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})

# A second layer under allowHostPaths: even inside an allowed prefix (say '/'), these need their rule.
_SENSITIVE_TREES = ("/etc", "/proc", "/sys", "/root", "/boot", "/dev", "/usr", "/bin", "/sbin", "/lib",
                    "/lib32", "/lib64", "/libx32", "/run", "/var/lib/docker", "/var/lib/containerd",
                    "/var/spool/cron")
_SOCKET_NAMES = ("docker.sock", "containerd.sock", "dockershim.sock", "cri-dockerd.sock", "podman.sock")
_SOCKET_DIRS = ("/run/docker", "/run/containerd", "/run/podman", "/run/user")  # /run/user/UID: rootless
_SOCKET_PATHS = ("/run/docker.sock", "/run/containerd/containerd.sock")


def normalize_host_path(path: str) -> str:
    """Canonical form of an absolute host path: '//var/run/' -> '/run', '/a/./b/../c' -> '/a/c'.

    Lexical only: symlinks on the host are not resolved (the host is not here to ask). That is why
    a source with '..' is refused outright (validate.py): on the host '/srv/app/link/..' is the
    parent of wherever 'link' points, not '/srv/app'.
    """
    squashed = "/" + "/".join(part for part in path.split("/") if part)
    norm = posixpath.normpath(squashed)
    if norm == "/var/run" or norm.startswith("/var/run/"):
        norm = "/run" + norm[len("/var/run"):]
    return norm


def is_below(path: str, prefix: str, *, strictly: bool = False) -> bool:
    """Whether normalised ``path`` is ``prefix`` or inside it, by whole components."""
    if path == prefix:
        return not strictly
    return path.startswith(prefix.rstrip("/") + "/")


def classify_bind_source(path: str) -> list[str]:
    """The second-layer rules a bind mount of ``path`` breaks, whatever allowHostPaths says.

    One path can break two rules: '/' is a sensitive tree and also holds the Docker socket, so
    allowing one rule must not let the other through.
    """
    norm = normalize_host_path(path)
    rules = []
    holds_socket = (
        posixpath.basename(norm) in _SOCKET_NAMES
        or any(is_below(norm, d) for d in _SOCKET_DIRS)
        # a parent of a socket (/, /run, /var/run) hands out the socket too
        or any(is_below(sock, norm) for sock in _SOCKET_PATHS)
    )
    if holds_socket:
        rules.append("docker-socket-mount")
    if any(is_below(norm, tree) or is_below(tree, norm) for tree in _SENSITIVE_TREES):
        rules.append("sensitive-bind-mount")
    return rules


@dataclass(frozen=True)
class Policy:
    """What the Project allows: rule ids, host path prefixes (normalised), extra capabilities."""

    allow: frozenset[str] = frozenset()
    host_paths: tuple[str, ...] = ()
    capabilities: frozenset[str] = frozenset()

    @classmethod
    def of(cls, project_spec: Mapping[str, Any]) -> Policy:
        policy = project_spec.get("policy") or {}
        return cls(frozenset(policy.get("allow") or ()),
                   tuple(normalize_host_path(p) for p in policy.get("allowHostPaths") or ()),
                   frozenset(policy.get("allowCapabilities") or ()))

    def allows(self, v: PolicyViolation) -> bool:
        if v.rule == "host-path":
            return any(is_below(v.host_path, prefix) for prefix in self.host_paths)
        return v.rule in self.allow


@dataclass(frozen=True)
class PolicyViolation:
    rule: str
    path: tuple[str | int, ...]
    detail: str  # what the setting is, e.g. 'bind mount of /srv/app': plans list it when allowed
    host_path: str = ""  # normalised bind source, for host-path and bind-below-writable
    hint: str = ""  # a second way to resolve it, added to the message


# --- securityOpt -----------------------------------------------------------------------------------------

_BOOLS = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"})


def security_opt_rule(opt: str) -> str | None:
    """The rule refusing one securityOpt entry, or None when it is on the allowlist.

    Split the way the Docker daemon splits it (at the first '=', else at the first ':'), so the
    key seen here is the key Docker acts on.
    """
    if opt == "no-new-privileges":
        return None
    if opt == "disable":  # the daemon reads a bare 'disable' as label=disable
        return "selinux-label"
    sep = "=" if "=" in opt else ":"
    key, found, value = opt.partition(sep)
    if key == "no-new-privileges" and found and value in _BOOLS:
        return None
    return {"seccomp": "seccomp-profile", "apparmor": "apparmor-profile", "label": "selinux-label"}.get(
        key, "security-opt")


# --- services ------------------------------------------------------------------------------------------


def policy_violations(spec: Mapping[str, Any], *, extra_caps: Iterable[str] = ()) -> list[PolicyViolation]:
    """Every setting of a (merged) service spec that a rule refuses unless the Project allows it.

    Bind mounts always yield 'host-path' (Policy.allows decides by allowHostPaths), plus the
    second-layer rules of classify_bind_source.
    """
    out: list[PolicyViolation] = []
    if spec.get("privileged") is True:
        out.append(PolicyViolation("privileged", ("spec", "privileged"), "privileged: true"))
    mode = spec.get("networkMode")
    if mode == "host":
        out.append(PolicyViolation("host-network", ("spec", "networkMode"), "networkMode: host"))
    elif isinstance(mode, str) and mode not in ("bridge", "none", ""):
        out.append(PolicyViolation("container-network", ("spec", "networkMode"), f"networkMode: {mode}"))
    for field_name, rule in (("pid", "host-pid"), ("ipc", "host-ipc"), ("uts", "host-uts"),
                             ("userns", "host-userns")):
        if spec.get(field_name) == "host":
            out.append(PolicyViolation(rule, ("spec", field_name), f"{field_name}: host"))
    allowed_caps = CAPABILITY_ALLOWLIST | set(extra_caps)
    for i, cap in enumerate(spec.get("capAdd") or []):
        if cap.removeprefix("CAP_") not in allowed_caps:
            out.append(PolicyViolation("cap-add", ("spec", "capAdd", i), f"capAdd {cap}"))
    for i, dev in enumerate(spec.get("devices") or []):
        out.append(PolicyViolation("devices", ("spec", "devices", i), f"device {dev}"))
    for i, opt in enumerate(spec.get("securityOpt") or []):
        opt_rule = security_opt_rule(opt)
        if opt_rule:
            out.append(PolicyViolation(opt_rule, ("spec", "securityOpt", i), f"securityOpt {opt}"))
    for i, mount in enumerate(spec.get("mounts") or []):
        source = mount.get("source")
        if mount.get("type") != "bind" or not isinstance(source, str) or not source.startswith("/"):
            continue  # a relative or missing source is a validation error of its own
        norm = normalize_host_path(source)
        where = ("spec", "mounts", i, "source")
        out.append(PolicyViolation("host-path", where, f"bind mount of {source}", norm))
        for rule in classify_bind_source(source):
            out.append(PolicyViolation(rule, where, f"bind mount of {source}", norm))
    return out


def writable_host_paths(services: Mapping[str, Mapping[str, Any]],
                        volumes: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(normalised host path, who) for every host path a container of the project may write."""
    out = []
    for name, spec in services.items():
        for mount in spec.get("mounts") or []:
            source = mount.get("source")
            if mount.get("type") == "bind" and isinstance(source, str) and source.startswith("/") \
                    and not mount.get("readOnly"):
                out.append((normalize_host_path(source), f"service '{name}'"))
    for name, spec in volumes.items():
        device = (spec.get("options") or {}).get("device")
        if isinstance(device, str) and device.startswith("/"):  # a bind volume: mounted writable somewhere
            out.append((normalize_host_path(device), f"volume '{name}'"))
    return out


def shared_path_violations(services: Mapping[str, Mapping[str, Any]],
                           volumes: Mapping[str, Mapping[str, Any]]) -> dict[str, list[PolicyViolation]]:
    """Bind sources strictly below a host path that some container of the project can write.

    Docker resolves a bind source on the host, following symlinks: service A binds /srv/share
    writable and creates share/root -> /; service B binding /srv/share/root then gets the host's
    root. Placement is ignored (a path on one host is the same path on another).
    """
    writable = writable_host_paths(services, volumes)
    out: dict[str, list[PolicyViolation]] = {}
    for name, spec in services.items():
        for i, mount in enumerate(spec.get("mounts") or []):
            source = mount.get("source")
            if mount.get("type") != "bind" or not isinstance(source, str) or not source.startswith("/"):
                continue
            norm = normalize_host_path(source)
            for parent, who in sorted(writable):
                if is_below(norm, parent, strictly=True):
                    out.setdefault(name, []).append(PolicyViolation(
                        "bind-below-writable", ("spec", "mounts", i, "source"),
                        f"bind mount of {source} (below {parent}, which {who} can write)", norm,
                        hint=f"or mount {parent} read-only everywhere"))
                    break
    return out


# --- volumes and networks ----------------------------------------------------------------------------------

_FLAGS = frozenset({"ro", "rw", "noexec", "nosuid", "nodev", "noatime", "nodiratime", "relatime"})
_NUMBER = re.compile(r"^[0-9]{1,20}$")
_TMPFS_VALUES = {"size": re.compile(r"^[0-9]{1,20}[kKmMgG%]?$"), "nr_inodes": re.compile(r"^[0-9]{1,20}[kKmMgG]?$"),
                 "mode": re.compile(r"^[0-7]{1,4}$"), "uid": _NUMBER, "gid": _NUMBER}
_NFS_KEYS = frozenset({"addr", "vers", "nfsvers", "proto", "port", "timeo", "retrans", "rsize", "wsize",
                       "actimeo", "nconnect"})
_NFS_FLAGS = _FLAGS | {"soft", "hard", "nolock", "intr", "tcp", "udp"}
_CIFS_KEYS = frozenset({"addr", "username", "user", "password", "pass", "domain", "vers", "uid", "gid",
                        "file_mode", "dir_mode", "sec", "iocharset", "port"})
_CIFS_FLAGS = _FLAGS | {"soft", "hard", "seal", "nounix", "noperm"}
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:@%+-]{1,256}$")


def _server_address(value: str) -> bool:
    """A literal IP of another machine: a name or a loopback address could be the host's own server."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)


def _network_options_safe(items: list[str], keys: frozenset[str], flags: frozenset[str]) -> bool:
    addrs = [i.partition("=")[2] for i in items if i.startswith("addr=")]
    if len(addrs) != 1 or not _server_address(addrs[0]):
        return False
    for item in items:
        key, eq, value = item.partition("=")
        if not (item in flags or (eq and key in keys and _SAFE_VALUE.match(value))):
            return False
    return True


def local_volume_options_safe(options: Mapping[str, str]) -> bool:
    """Whether local-driver ``options`` are one of the known-safe sets (no options at all included)."""
    if not options:
        return True
    if set(options) - {"type", "device", "o"}:
        return False
    kind, device = options.get("type"), options.get("device")
    items = options["o"].split(",") if "o" in options else []
    if kind == "tmpfs":
        if device not in (None, "tmpfs"):
            return False
        for item in items:
            key, eq, value = item.partition("=")
            pattern = _TMPFS_VALUES.get(key)
            if not (item in _FLAGS or (eq and pattern is not None and pattern.match(value))):
                return False
        return True
    if kind in ("nfs", "nfs4"):
        return (isinstance(device, str) and re.match(r"^[A-Za-z0-9.\[\]:-]*:/[^,]*$", device) is not None
                and _network_options_safe(items, _NFS_KEYS, _NFS_FLAGS))
    if kind == "cifs":
        return (isinstance(device, str) and re.match(r"^//[^/,]+/[^,]+$", device) is not None
                and _network_options_safe(items, _CIFS_KEYS, _CIFS_FLAGS))
    return False


def volume_policy_violations(spec: Mapping[str, Any]) -> list[PolicyViolation]:
    if spec.get("external"):
        shown = f" {spec['dockerName']}" if spec.get("dockerName") else ""
        return [PolicyViolation("external-volume", ("spec", "external"), f"external volume{shown}")]
    driver = spec.get("driver", "local")
    options = spec.get("options") or {}
    if driver != "local":
        return [PolicyViolation("volume-driver", ("spec", "driver"), f"volume driver {driver}")]
    if not local_volume_options_safe(options):
        shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
        return [PolicyViolation("volume-options", ("spec", "options"), f"volume options {shown}")]
    return []


def network_policy_violations(spec: Mapping[str, Any]) -> list[PolicyViolation]:
    if spec.get("external"):
        shown = f" {spec['dockerName']}" if spec.get("dockerName") else ""
        return [PolicyViolation("external-network", ("spec", "external"), f"external network{shown}")]
    driver = spec.get("driver", "bridge")
    if driver not in ("bridge", "overlay"):  # overlay: what a Swarm cluster's managed networks are anyway
        return [PolicyViolation("network-driver", ("spec", "driver"), f"network driver {driver}")]
    return []


def policy_message(v: PolicyViolation) -> str:
    if v.rule == "host-path":
        how = f"add {v.host_path} or a folder above it to spec.policy.allowHostPaths of the Project"
    else:
        how = f"add '{v.rule}' to spec.policy.allow of the Project"
    if v.hint:
        how += f", {v.hint}"
    return (f"{format_path(v.path)}: {v.detail} refused by policy rule '{v.rule}' ({POLICY_RULES[v.rule]}); "
            f"if this is intended, {how}")


# --- a decision for every field of the format ---------------------------------------------------------------

_NOT_SENT = "safe: never sent to Docker (gitops' own bookkeeping)"
_INSIDE = "safe: acts inside the container only"
_LIMIT = "safe: only limits the container"

# Field path (kind, then dotted fields; '[]' an array item, '*' a mapping value) -> the rule ids that
# decide it, or "safe: why". Project.spec.defaults.X takes the decision of Service.spec.X.
FIELD_POLICY: dict[str, tuple[str, ...] | str] = {
    "metadata.name": "safe: names objects, always prefixed with the project name",
    "metadata.labels": _NOT_SENT,
    "metadata.annotations": _NOT_SENT,
    # Project: settings of gitops itself
    "Project.spec": _NOT_SENT,
    "Project.spec.prune": _NOT_SENT,
    "Project.spec.selfHeal": _NOT_SENT,
    "Project.spec.compose": "safe: names files of the repository; each compose service is checked as the Service "
                            "it becomes",
    "Project.spec.compose[].files": "safe: see Project.spec.compose",
    "Project.spec.compose[].envFiles": "safe: variables for the compose files, never sent to Docker as such",
    "Project.spec.compose[].profiles": _NOT_SENT,
    "Project.spec.policy": "safe: the policy itself",
    "Project.spec.policy.allow": "safe: the policy itself",
    "Project.spec.policy.allowHostPaths": "safe: the policy itself",
    "Project.spec.policy.allowCapabilities": "safe: the policy itself",
    "Project.spec.defaults": "safe: each default is checked as the Service field it fills in",
    # Host: how gitops connects (validate._Checker.host: TLS, or insecure: true for plain tcp://)
    "Host.spec": _NOT_SENT,
    "Host.spec.url": "safe: plain tcp:// needs insecure: true (loopback too); checked in validate.py",
    "Host.spec.tls": "safe: files are read inside the checkout only",
    "Host.spec.tls.ca": "safe: a file inside the checkout",
    "Host.spec.tls.cert": "safe: a file inside the checkout",
    "Host.spec.tls.key": "safe: a file inside the checkout",
    "Host.spec.tls.verify": "safe: false needs insecure: true; checked in validate.py",
    "Host.spec.insecure": "safe: an explicit acceptance of plain tcp://",
    "Host.spec.labels": _NOT_SENT,
    "Host.spec.mode": "safe: which API gitops uses on the host (containers or Swarm services)",
    "Host.spec.swarm": _NOT_SENT,
    "Host.spec.swarm.endpointMode": "safe: how a service's tasks are addressed on its own networks",
    "Host.spec.swarm.publishMode": "safe: where declared ports are published; the ports themselves are checked",
    "Registry.spec": _NOT_SENT,
    "Registry.spec.server": "safe: credentials only go to this registry, for images whose name says it",
    "Registry.spec.username": "safe: sent only to the registry named in server",
    "Registry.spec.password": "safe: an encrypted file inside the checkout; sent only to the registry",
    "Registry.spec.password.secretFile": "safe: a file inside the checkout, refused unless encrypted",
    # Network: create_network
    "Network.spec": "safe: a container object; its fields are decided below",
    "Network.spec.driver": ("network-driver",),
    "Network.spec.external": ("external-network",),
    "Network.spec.dockerName": ("external-network",),
    "Network.spec.internal": _LIMIT,
    "Network.spec.attachable": "safe: lets containers join the project's own network",
    "Network.spec.subnet": "safe: addresses of a bridge the network owns",
    "Network.spec.labels": "safe: labels; gitops' own are set after them",
    # Volume: create_volume
    "Volume.spec": "safe: a container object; its fields are decided below",
    "Volume.spec.driver": ("volume-driver",),
    "Volume.spec.external": ("external-volume",),
    "Volume.spec.dockerName": ("external-volume",),
    "Volume.spec.options": ("volume-options",),
    "Volume.spec.labels": "safe: labels; gitops' own are set after them",
    "Volume.spec.remove": "safe: removes only volumes labelled as the project's",
    # Service: create_container and its host config
    "Service.spec": "safe: a container object; its fields are decided below",
    "Service.spec.image": _INSIDE,
    "Service.spec.pullPolicy": "safe: when to pull, not what",
    "Service.spec.resolve": "safe: pins the declared image to its digest; what runs is the same image",
    "Service.spec.command": _INSIDE,
    "Service.spec.entrypoint": _INSIDE,
    "Service.spec.env": _INSIDE,
    "Service.spec.env.*.secretFile": "safe: a file inside the checkout, passed as an environment value",
    "Service.spec.envFile": "safe: files inside the checkout, passed as environment values",
    "Service.spec.workingDir": _INSIDE,
    "Service.spec.user": "safe: a user inside the container's user namespace, without extra capabilities",
    "Service.spec.hostname": "safe: the container's own UTS namespace",
    "Service.spec.ports": "safe: publishes container ports; Docker refuses a host port already in use",
    "Service.spec.ports[].container": _INSIDE,
    "Service.spec.ports[].host": "safe: a free host port, or Docker refuses it",
    "Service.spec.ports[].hostIp": "safe: which host address to publish on",
    "Service.spec.ports[].protocol": "safe: tcp or udp",
    "Service.spec.mounts": "safe: a container object; its fields are decided below",
    "Service.spec.mounts[].type": "safe: volume, bind or tmpfs; bind sources are decided by rule",
    "Service.spec.mounts[].source": ("host-path", "bind-below-writable", "sensitive-bind-mount",
                                     "docker-socket-mount"),
    "Service.spec.mounts[].target": _INSIDE,
    "Service.spec.mounts[].readOnly": _LIMIT,
    "Service.spec.mounts[].size": _LIMIT,
    "Service.spec.networks": "safe: only the project's own networks",
    "Service.spec.networks[].name": "safe: only the project's own networks",
    "Service.spec.networks[].aliases": "safe: names on the project's own networks",
    "Service.spec.labels": "safe: labels; the io.gitops. prefix is reserved",
    "Service.spec.resources": _LIMIT,
    "Service.spec.resources.cpus": _LIMIT,
    "Service.spec.resources.memory": _LIMIT,
    "Service.spec.resources.memoryReservation": _LIMIT,
    "Service.spec.restart": "safe: a restart policy",
    "Service.spec.stopSignal": _INSIDE,
    "Service.spec.stopGracePeriod": "safe: a stop timeout",
    "Service.spec.replicas": "safe: bounded by the schema",
    "Service.spec.placement": _NOT_SENT,
    "Service.spec.placement.hosts": _NOT_SENT,
    "Service.spec.placement.selector": _NOT_SENT,
    "Service.spec.placement.nodeSelector": "safe: Swarm placement constraints on node labels",
    "Service.spec.placement.spread": "safe: Swarm placement preferences on node labels",
    "Service.spec.healthcheck": "safe: exec runs inside the container; http/tcp probe its published port",
    "Service.spec.healthcheck.exec": _INSIDE,
    "Service.spec.healthcheck.http": "safe: gitops probes the container's published port",
    "Service.spec.healthcheck.http.port": "safe: must be a published container port",
    "Service.spec.healthcheck.http.path": "safe: a path on the container's own server",
    "Service.spec.healthcheck.http.status": _NOT_SENT,
    "Service.spec.healthcheck.tcp": "safe: gitops probes the container's published port",
    "Service.spec.healthcheck.tcp.port": "safe: must be a published container port",
    "Service.spec.healthcheck.interval": "safe: a timing",
    "Service.spec.healthcheck.timeout": "safe: a timing",
    "Service.spec.healthcheck.retries": "safe: a count",
    "Service.spec.healthcheck.startPeriod": "safe: a timing",
    "Service.spec.update": _NOT_SENT,
    "Service.spec.update.parallelism": _NOT_SENT,
    "Service.spec.update.order": _NOT_SENT,
    "Service.spec.update.minHealthyTime": _NOT_SENT,
    "Service.spec.update.healthyDeadline": _NOT_SENT,
    "Service.spec.update.failureAction": _NOT_SENT,
    "Service.spec.dependsOn": _NOT_SENT,
    "Service.spec.dependsOn[].service": _NOT_SENT,
    "Service.spec.dependsOn[].condition": _NOT_SENT,
    "Service.spec.selfHeal": _NOT_SENT,
    "Service.spec.privileged": ("privileged",),
    "Service.spec.networkMode": ("host-network", "container-network"),
    "Service.spec.pid": ("host-pid",),
    "Service.spec.ipc": ("host-ipc",),
    "Service.spec.uts": ("host-uts",),
    "Service.spec.userns": ("host-userns",),
    "Service.spec.capAdd": ("cap-add",),
    "Service.spec.capDrop": _LIMIT,
    "Service.spec.devices": ("devices",),
    "Service.spec.securityOpt": ("seccomp-profile", "apparmor-profile", "selinux-label", "security-opt"),
    "Service.spec.readOnlyRootfs": _LIMIT,
    "Service.spec.init": "safe: Docker's own docker-init as PID 1 inside the container",
    "Service.spec.files": "safe: repository files copied into the container's own file system, nothing on the host",
    "Service.spec.files[].source": "safe: a path inside the repository checkout; symlinks out of it are refused",
    "Service.spec.files[].target": _INSIDE,
    "Service.spec.files[].mode": _INSIDE,
    "Service.spec.files[].secret": _NOT_SENT,
}


def field_decision(path: str) -> tuple[str, ...] | str | None:
    """The decision for a field path such as 'Service.spec.mounts[].source' (None: no decision)."""
    if path.startswith("Project.spec.defaults."):
        path = "Service.spec." + path.removeprefix("Project.spec.defaults.")
    kind, _, rest = path.partition(".")
    if rest.startswith("metadata"):
        path = rest
    return FIELD_POLICY.get(path)


def rules_in_table() -> set[str]:
    return {rule for decision in FIELD_POLICY.values() if isinstance(decision, tuple) for rule in decision}


def policy_findings(project_spec: Mapping[str, Any], services: Mapping[str, Mapping[str, Any]],
                    volumes: Mapping[str, Mapping[str, Any]], networks: Mapping[str, Mapping[str, Any]],
                    ) -> list[tuple[str, str, PolicyViolation]]:
    """(kind, name, violation) for every refused-unless-allowed setting of a repository."""
    policy = Policy.of(project_spec)
    out: list[tuple[str, str, PolicyViolation]] = []
    shared = shared_path_violations(services, volumes)
    for name, spec in services.items():
        for v in policy_violations(spec, extra_caps=policy.capabilities) + shared.get(name, []):
            out.append(("Service", name, v))
    for name, spec in volumes.items():
        out.extend(("Volume", name, v) for v in volume_policy_violations(spec))
    for name, spec in networks.items():
        out.extend(("Network", name, v) for v in network_policy_violations(spec))
    return out

