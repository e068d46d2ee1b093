"""Turns validated manifest documents into the DesiredState model.

Pure apart from ``read_file``, a callable the caller passes in to read env files, secret files and
TLS files from the checkout (see manifests.read_repo_file, which keeps every path inside it). Secret
values are digested here with the installation's key, which the caller passes in too: the model
never reads it from disk.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

from gitops.core.images import normalize_registry
from gitops.core.model import (
    LOCAL_HOST,
    Dependency,
    DesiredState,
    EnvVar,
    HealthCheck,
    HostSpec,
    Mount,
    NetworkAttachment,
    NetworkSpec,
    Port,
    ProjectSpec,
    RegistrySpec,
    RepoFile,
    SecretKey,
    ServiceSpec,
    TlsConfig,
    UpdatePolicy,
    VolumeSpec,
    content_digest,
)
from gitops.core.quantities import parse_duration, parse_size
from gitops.core.swarm import SwarmSpecError, check_swarm_service
from gitops.manifests.checks import depends_on, labels_of, merged_service_spec, place, spec_of, update_order
from gitops.manifests.parse import Document, ManifestError, RepoPathError, format_path
from gitops.manifests.sops import Decrypted, DecryptedBytes

ReadFile = Callable[[str, str], str]  # (manifest file, relative path) -> text; raises RepoPathError
# (manifest file, relative path) -> [(path below a folder or "", bytes)]; raises RepoPathError
ReadTree = Callable[[str, str], list[tuple[str, bytes]]]
ResolvePath = Callable[[str, str], str]  # (manifest file, relative path) -> absolute path


def _command(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return ("/bin/sh", "-c", value)
    return tuple(str(v) for v in value)


def _pairs(mapping: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in (mapping or {}).items()))


def _scalar_env(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_env_file(text: str) -> list[tuple[int, str, str]]:
    """KEY=VALUE lines as docker's --env-file reads them: # comments and blank lines skipped,
    no quote processing. Returns (line, key, value); raises ValueError on a malformed line."""
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not (key[0].isalpha() or key[0] == "_") or not all(
                c.isalnum() or c == "_" for c in key):
            raise ValueError(f"line {number}: expected KEY=VALUE")
        out.append((number, key, value))
    return out


class _Builder:
    def __init__(self, docs: Sequence[Document], read_file: ReadFile, resolve_path: ResolvePath,
                 key: SecretKey, read_tree: ReadTree | None, max_delivered_bytes: int) -> None:
        self.docs = docs
        self.read_file = read_file
        self.read_tree = read_tree
        self.max_delivered_bytes = max_delivered_bytes
        self.resolve_path = resolve_path
        self.key = key
        self.errors: list[ManifestError] = []
        self.external_networks: dict[str, str] = {}  # manifest name -> Docker name, for external: true
        self.external_volumes: dict[str, str] = {}

    def of_kind(self, kind: str) -> list[Document]:
        return sorted((d for d in self.docs if d.kind == kind), key=lambda d: d.name)

    def env(self, doc: Document, spec: dict[str, Any]) -> tuple[EnvVar, ...]:
        values: dict[str, EnvVar] = {}
        files = spec.get("envFile") or []
        for i, rel in enumerate([files] if isinstance(files, str) else files):
            path = ("spec", "envFile") if isinstance(files, str) else ("spec", "envFile", i)
            try:
                text = self.read_file(doc.file, rel)
                for _, key, value in parse_env_file(text):
                    if isinstance(text, Decrypted):  # an encrypted env file: every value is a secret
                        values[key] = EnvVar(key, value, secret=True, digest=self.key.digest(key, value))
                    else:
                        values[key] = EnvVar(key, value)
            except (RepoPathError, ValueError) as exc:
                self.errors.append(doc.error(path, f"{_dotted(path)}: {exc}"))
        for key, value in (spec.get("env") or {}).items():  # explicit env wins over env files
            if isinstance(value, dict):
                try:
                    secret = self.read_file(doc.file, value["secretFile"]).rstrip("\r\n")
                except RepoPathError as exc:
                    self.errors.append(doc.error(("spec", "env", key, "secretFile"),
                                                 f"spec.env.{key}.secretFile: {exc}"))
                    continue
                values[key] = EnvVar(key, secret, secret=True, digest=self.key.digest(key, secret))
            else:
                values[key] = EnvVar(key, _scalar_env(value))
        return tuple(values[k] for k in sorted(values))

    def files(self, doc: Document, spec: dict[str, Any]) -> tuple[RepoFile, ...]:
        """Service files: each source file, or every file below a source folder, with its content."""
        out: dict[str, RepoFile] = {}
        total = 0
        for i, item in enumerate(spec.get("files") or []):
            if self.read_tree is None:
                self.errors.append(doc.error(("spec", "files", i), f"spec.files[{i}]: files cannot be read here"))
                continue
            try:
                tree = self.read_tree(doc.file, item["source"])
            except RepoPathError as exc:
                self.errors.append(doc.error(("spec", "files", i, "source"), f"spec.files[{i}].source: {exc}"))
                continue
            source = posixpath.normpath(posixpath.join(posixpath.dirname(doc.file), item["source"]))
            mode = int(item.get("mode", "0444"), 8)
            for below, data in tree:
                secret = bool(item.get("secret", False)) or isinstance(data, DecryptedBytes)
                target = f"{item['target']}/{below}" if below else item["target"]
                if target in out:
                    self.errors.append(doc.error(("spec", "files", i, "target"), f"spec.files[{i}]: {target} would "
                                                 f"be delivered twice (also from {out[target].source})"))
                    continue
                total += len(data)
                digest = self.key.digest_bytes(target, data) if secret else content_digest(data)
                out[target] = RepoFile(target, f"{source}/{below}" if below else source, data, mode, secret, digest)
        if total > self.max_delivered_bytes:
            self.errors.append(doc.error(("spec", "files"), f"spec.files: {total} bytes in all, more than the "
                                         f"{self.max_delivered_bytes} a service may have delivered"))
        return tuple(out[t] for t in sorted(out))

    def healthcheck(self, spec: dict[str, Any]) -> HealthCheck | None:
        hc = spec.get("healthcheck")
        if not hc:
            return None
        interval = parse_duration(hc.get("interval", "5s"))
        timeout = parse_duration(hc.get("timeout", "3s"))
        retries = int(hc.get("retries", 3))
        start_period = parse_duration(hc.get("startPeriod", "0s"))
        if "exec" in hc:
            cmd = hc["exec"]
            command = ("CMD-SHELL", cmd) if isinstance(cmd, str) else ("CMD", *cmd)
            return HealthCheck("exec", command=tuple(command), interval=interval, timeout=timeout,
                               retries=retries, start_period=start_period)
        kind: Literal["http", "tcp"] = "http" if "http" in hc else "tcp"
        probe = hc[kind]
        return HealthCheck(kind, port=probe["port"], path=probe.get("path", "/"), status=probe.get("status"),
                           interval=interval, timeout=timeout, retries=retries, start_period=start_period)

    def service(self, doc: Document, defaults: dict[str, Any], hosts: list[Document],
                project_self_heal: bool) -> ServiceSpec:
        spec = merged_service_spec(doc, defaults)
        update = spec.get("update") or {}
        res = spec.get("resources") or {}
        networks = []
        for net in spec.get("networks") or []:
            if isinstance(net, str):
                networks.append(NetworkAttachment(net, external=self.external_networks.get(net, "")))
            else:
                networks.append(NetworkAttachment(net["name"], tuple(net.get("aliases") or ()),
                                                  self.external_networks.get(net["name"], "")))
        env = self.env(doc, spec)
        files = self.files(doc, spec)
        return ServiceSpec(
            name=doc.name,
            image=spec["image"],
            pull_policy=spec.get("pullPolicy", "missing"),
            resolve=_resolve(spec),
            command=_command(spec.get("command")),
            entrypoint=_command(spec.get("entrypoint")),
            env=env,
            working_dir=spec.get("workingDir", ""),
            user=spec.get("user", ""),
            hostname=spec.get("hostname", ""),
            ports=tuple(Port(p["container"], p.get("host"), p.get("protocol", "tcp"), p.get("hostIp", ""))
                        for p in spec.get("ports") or []),
            mounts=tuple(Mount(m["type"], m["target"], m.get("source", ""), m.get("readOnly", False),
                               parse_size(m["size"]) if "size" in m else None,
                               self.external_volumes.get(m.get("source", ""), "") if m["type"] == "volume" else "")
                         for m in spec.get("mounts") or []),
            networks=tuple(networks),
            labels=_pairs(spec.get("labels")),
            cpus=res.get("cpus"),
            memory=parse_size(res["memory"]) if "memory" in res else None,
            memory_reservation=parse_size(res["memoryReservation"]) if "memoryReservation" in res else None,
            restart=spec.get("restart", "unless-stopped"),
            stop_signal=spec.get("stopSignal", ""),
            stop_grace_period=parse_duration(spec.get("stopGracePeriod", "10s")),
            replicas=spec.get("replicas", 1),
            hosts=tuple(place(spec, hosts)),
            node_selector=_pairs((spec.get("placement") or {}).get("nodeSelector")),
            spread=tuple((spec.get("placement") or {}).get("spread") or ()),
            healthcheck=self.healthcheck(spec),
            update=UpdatePolicy(
                parallelism=update.get("parallelism", 1),
                order=update_order(spec),  # type: ignore[arg-type]
                min_healthy_time=parse_duration(update.get("minHealthyTime", "0s")),
                healthy_deadline=parse_duration(update.get("healthyDeadline", "1m")),
                failure_action=update.get("failureAction", "rollback"),
            ),
            depends_on=tuple(Dependency(s, c) for s, c in depends_on(spec)),  # type: ignore[arg-type]
            self_heal=spec.get("selfHeal", project_self_heal),
            privileged=spec.get("privileged", False),
            network_mode=spec.get("networkMode", ""),
            pid=spec.get("pid", ""), ipc=spec.get("ipc", ""), uts=spec.get("uts", ""),
            userns=spec.get("userns", ""),
            cap_add=tuple(spec.get("capAdd") or ()), cap_drop=tuple(spec.get("capDrop") or ()),
            devices=tuple(spec.get("devices") or ()), security_opt=tuple(spec.get("securityOpt") or ()),
            read_only_rootfs=spec.get("readOnlyRootfs", False),
            init=spec.get("init", False),
            files=files,
            secret_key_id=self.key.id if any(e.secret for e in env) or any(f.secret for f in files) else "",
            source=doc.origin,
        )

    def host(self, doc: Document) -> HostSpec:
        spec = spec_of(doc)
        tls = None
        if spec.get("tls"):
            raw = spec["tls"]
            paths = {}
            for key in ("ca", "cert", "key"):
                if key in raw:
                    try:
                        paths[key] = self.resolve_path(doc.file, raw[key])
                    except RepoPathError as exc:
                        self.errors.append(doc.error(("spec", "tls", key), f"spec.tls.{key}: {exc}"))
            tls = TlsConfig(verify=raw.get("verify", True), **paths)
        swarm = spec.get("swarm") or {}
        return HostSpec(doc.name, spec["url"], tls, spec.get("insecure", False), _pairs(spec.get("labels")),
                        mode=spec.get("mode", "engine"), endpoint_mode=swarm.get("endpointMode", "vip"),
                        publish_mode=swarm.get("publishMode", "ingress"))

    def build(self) -> DesiredState:
        projects = self.of_kind("Project")
        pspec = spec_of(projects[0]) if projects else {}
        project = ProjectSpec(
            name=projects[0].name if projects else "",
            prune=pspec.get("prune", False),
            self_heal=pspec.get("selfHeal", True),
            allow=frozenset((pspec.get("policy") or {}).get("allow") or ()),
        )
        host_docs = self.of_kind("Host")
        hosts = tuple(self.host(d) for d in host_docs) or (HostSpec(LOCAL_HOST, ""),)
        networks = tuple(NetworkSpec(d.name, spec_of(d).get("driver", "bridge"), spec_of(d).get("internal", False),
                                     spec_of(d).get("attachable", False), spec_of(d).get("subnet", ""),
                                     _pairs(labels_of(d)), external=_external(d))
                         for d in self.of_kind("Network"))
        volumes = tuple(VolumeSpec(d.name, spec_of(d).get("driver", "local"), _pairs(spec_of(d).get("options")),
                                   _pairs(labels_of(d)), spec_of(d).get("remove", False), external=_external(d))
                        for d in self.of_kind("Volume"))
        self.external_networks = {n.name: n.external for n in networks if n.external}
        self.external_volumes = {v.name: v.external for v in volumes if v.external}
        defaults = pspec.get("defaults") or {}
        services = tuple(self.service(d, defaults, host_docs, project.self_heal) for d in self.of_kind("Service"))
        clusters = {h.name for h in hosts if h.swarm}
        for doc, svc in zip(self.of_kind("Service"), services, strict=True):
            if len(svc.hosts) == 1 and svc.hosts[0] in clusters:
                try:
                    check_swarm_service(svc)
                except SwarmSpecError as exc:
                    self.errors.append(doc.error(("spec",), f"spec: {str(exc).removeprefix(svc.name + ': ')}"))
                removed = sorted({m.source for m in svc.mounts if m.type == "volume"} & {v.name for v in volumes
                                                                                         if v.remove})
                for name in removed:
                    self.errors.append(doc.error(("spec", "mounts"), f"spec.mounts: Volume {name} says remove: true, "
                                                 f"but {svc.hosts[0]} is a Swarm cluster, where each node that ran a "
                                                 "task has its own copy, which gitops cannot reach; remove it on "
                                                 "each node (docker volume rm), and drop remove: true"))
        return DesiredState(project, hosts, networks, volumes, services, registries=self.registries())

    def registries(self) -> tuple[RegistrySpec, ...]:
        """Registry manifests: one per server, the password from an encrypted file (never a plain one)."""
        out: dict[str, RegistrySpec] = {}
        for doc in self.of_kind("Registry"):
            spec = spec_of(doc)
            server = normalize_registry(spec["server"])  # the schema's pattern makes it one
            where = ("spec", "password", "secretFile")
            if server in out:
                self.errors.append(doc.error(("spec", "server"), f"spec.server: {server} already has credentials "
                                             f"in Registry '{out[server].name}' ({out[server].source}); keep one"))
                continue
            try:
                password = self.read_file(doc.file, spec["password"]["secretFile"])
            except RepoPathError as exc:
                self.errors.append(doc.error(where, f"spec.password.secretFile: {exc}"))
                continue
            if not isinstance(password, Decrypted):
                self.errors.append(doc.error(where, "spec.password.secretFile: the file is not encrypted; a registry "
                                             "password is never kept in plain text in git: encrypt it with "
                                             "`gitops secrets encrypt FILE --age RECIPIENT -i` (or sops)"))
                continue
            password = password.rstrip("\r\n")
            if not password:
                self.errors.append(doc.error(where, "spec.password.secretFile: the password is empty"))
                continue
            out[server] = RegistrySpec(doc.name, server, spec["username"], password, f"{doc.file}:{doc.line}")
        return tuple(out.values())


def _resolve(spec: dict[str, Any]) -> Literal["tag", "digest"]:
    """Whether the tag is looked up on its registry: as asked, else with pullPolicy always; never for an image
    already named by its digest."""
    if "@" in spec["image"]:
        return "tag"
    asked = spec.get("resolve")
    if asked in ("tag", "digest"):
        return cast(Literal["tag", "digest"], asked)
    return "digest" if spec.get("pullPolicy") == "always" else "tag"


def _dotted(path: tuple[str | int, ...]) -> str:
    return format_path(path)


def _external(doc: Document) -> str:
    """The Docker name of an external network or volume (spec.dockerName, else its name); "" when managed."""
    spec = spec_of(doc)
    return str(spec.get("dockerName") or doc.name) if spec.get("external") else ""


def build_desired(docs: Sequence[Document], *, read_file: ReadFile, resolve_path: ResolvePath,
                  key: SecretKey, read_tree: ReadTree | None = None,
                  max_delivered_bytes: int = 8 * 1024 * 1024) -> tuple[DesiredState, list[ManifestError]]:
    builder = _Builder(docs, read_file, resolve_path, key, read_tree, max_delivered_bytes)
    state = builder.build()
    return state, sorted(set(builder.errors))
