"""The data the reconciler reasons about: desired state from manifests, observed state from hosts.

Frozen dataclasses only; no I/O. The spec hash of a service is the sha256 of its canonical form, in
which secret values are replaced by a digest keyed with the installation's secret key (SecretKey,
kept in the state directory by gitops.secret_key), so a changed secret changes the hash while the
value itself never reaches a label, a plan or a log, and nobody without the key can test a guess.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

LABEL_PREFIX = "io.gitops."
LABEL_MANAGED = LABEL_PREFIX + "managed"
LABEL_PROJECT = LABEL_PREFIX + "project"
LABEL_SERVICE = LABEL_PREFIX + "service"
LABEL_SLOT = LABEL_PREFIX + "slot"
LABEL_SPEC_HASH = LABEL_PREFIX + "spec-hash"
LABEL_REVISION = LABEL_PREFIX + "revision"
LABEL_SPEC = LABEL_PREFIX + "spec"  # canonical spec (secrets masked), for field-level diffs
LABEL_KIND = LABEL_PREFIX + "kind"  # container | network | volume
LABEL_NAME = LABEL_PREFIX + "name"  # network / volume manifest name
LABEL_KEY_ID = LABEL_PREFIX + "key-id"  # SecretKey.id its secret digests were made with (containers with secrets)

LOCAL_HOST = "local"

Condition = Literal["started", "healthy"]
UpdateOrder = Literal["start-first", "stop-first"]
FailureAction = Literal["rollback", "pause"]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


SECRET_KEY_BYTES = 32


def secret_digest(key: bytes, name: str, value: str) -> str:
    """Stand-in for a secret value in hashes and labels: changes with the value, reveals nothing useful.

    HMAC-SHA256 under the installation's random key, so the labels, `status` and spec hashes anyone
    may read cannot confirm a guessed value; the name is in the message so that equal values of two
    variables look different. Env names hold no NUL, so name and value cannot run into each other.
    """
    return "secret:" + hmac.new(key, name.encode() + b"\0" + value.encode(), hashlib.sha256).hexdigest()[:16]


def legacy_secret_digest(name: str, value: str) -> str:
    """The digest gitops made before it had a per-installation key: keyed by the variable's name.

    Anyone can compute it, so it is never written anywhere any more; the planner only uses it to tell
    whether a secret of a container made before the upgrade changed.
    """
    return "secret:" + hmac.new(name.encode(), value.encode(), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class SecretKey:
    """The installation's random key for secret digests. Its bytes never appear in a repr or a log."""

    raw: bytes = field(repr=False)
    # The age identities that decrypt SOPS/age files of the repository (pyrage objects; secret_key.age_identities).
    age: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.raw) != SECRET_KEY_BYTES:
            raise ValueError(f"a secret key is {SECRET_KEY_BYTES} bytes, not {len(self.raw)}")

    @property
    def id(self) -> str:
        """Names the key without revealing it (an HMAC of a fixed string under it), for a container label."""
        return hmac.new(self.raw, b"gitops secret key id", hashlib.sha256).hexdigest()[:16]

    def digest(self, name: str, value: str) -> str:
        return secret_digest(self.raw, name, value)

    def digest_bytes(self, name: str, data: bytes) -> str:
        """The digest of a secret file's content (binary safe), named like secret_digest's."""
        return "secret:" + hmac.new(self.raw, name.encode() + b"\0" + data, hashlib.sha256).hexdigest()[:16]


def ephemeral_key() -> SecretKey:
    """A key that lives only in this process: for what never compares with hosts (validate, plan --base)."""
    return SecretKey(secrets.token_bytes(SECRET_KEY_BYTES))


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str = field(repr=False)  # never in a repr: tracebacks and debug logs would show secrets
    secret: bool = False
    digest: str = ""  # secrets: SecretKey.digest(name, value), made when the manifests are loaded

    def __post_init__(self) -> None:
        if self.secret and not self.digest:
            # Never fall back to a digest anyone could compute: a secret needs the installation's key.
            raise ValueError(f"secret env {self.name} needs a digest made with the installation's key")

    def canonical(self) -> str:
        return self.digest if self.secret else self.value


@dataclass(frozen=True)
class Port:
    container: int
    host: int | None = None
    protocol: str = "tcp"
    host_ip: str = ""


@dataclass(frozen=True)
class Mount:
    type: Literal["volume", "bind", "tmpfs"]
    target: str
    source: str = ""
    read_only: bool = False
    size: int | None = None  # tmpfs bytes
    external: str = ""  # the Docker name of an external volume (not managed by gitops); "" for managed ones


@dataclass(frozen=True)
class RepoFile:
    """A file of the repository delivered into every container of a service, at ``target``.

    The reconciler's disk is not the host's, so the content travels with the create request (copied into
    the container before it starts) and is part of the spec: a changed file rolls the service through its
    health gates like any other change, and the plan names it. Secret files are masked like secret env.
    """

    target: str  # absolute path inside the container
    source: str  # the file in the repository, relative to its root (for the plan and errors)
    content: bytes = field(repr=False)
    mode: int = 0o444
    secret: bool = False
    digest: str = ""  # secret files: SecretKey.digest_bytes(target, content); else "sha256:<hex16>"

    def canonical(self) -> str:
        if self.secret:
            return f"{self.digest} mode {self.mode:04o}"
        return f"{self.digest} mode {self.mode:04o} from {self.source}"


def image_name(image: str) -> str:
    """``image`` without its tag and digest: ``registry:5000/app:1.4@sha256:..`` -> ``registry:5000/app``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def pinned_image(image: str, digest: str) -> str:
    return f"{image_name(image)}@{digest}"


def spec_image(spec_json: str) -> tuple[str, str]:
    """(image as declared, digest) a container was made from, read from its spec label (LABEL_SPEC); the digest
    is "" for an image run by its tag, both are "" for a label that does not parse."""
    try:
        image = json.loads(spec_json).get("image") if spec_json else None
    except (ValueError, AttributeError, RecursionError):
        return "", ""
    if not isinstance(image, str):
        return "", ""
    declared, at, digest = image.rpartition("@")
    return (declared, digest) if at and digest.startswith("sha256:") else (image, "")


def content_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


@dataclass(frozen=True)
class NetworkAttachment:
    name: str
    aliases: tuple[str, ...] = ()
    external: str = ""  # the Docker name of an external network (not managed by gitops); "" for managed ones


@dataclass(frozen=True)
class HealthCheck:
    kind: Literal["exec", "http", "tcp"]
    command: tuple[str, ...] = ()  # exec: ('CMD', ...) or ('CMD-SHELL', 'script')
    port: int = 0  # http/tcp: container port, probed through its published host port
    path: str = "/"
    status: int | None = None  # http: expected status; None means any 2xx/3xx
    interval: float = 5.0
    timeout: float = 3.0
    retries: int = 3
    start_period: float = 0.0

    def deadline(self) -> float:
        """Longest time Docker can take to call a container unhealthy: start period + retries x interval.

        Each try may also run for up to ``timeout``, so that is added per retry too.
        """
        return self.start_period + self.retries * (self.interval + self.timeout)


@dataclass(frozen=True)
class UpdatePolicy:
    parallelism: int = 1
    order: UpdateOrder = "start-first"
    min_healthy_time: float = 0.0
    healthy_deadline: float = 60.0
    failure_action: FailureAction = "rollback"


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: Condition = "started"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str
    pull_policy: Literal["missing", "always", "never"] = "missing"
    # "digest": the tag is looked up on its registry before each plan, and containers run that exact image
    resolve: Literal["tag", "digest"] = "tag"
    digest: str = ""  # "sha256:<hex>": the image's digest on its registry, when resolved (gitops.engine.images)
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[EnvVar, ...] = ()
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    ports: tuple[Port, ...] = ()
    mounts: tuple[Mount, ...] = ()
    networks: tuple[NetworkAttachment, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    cpus: float | None = None
    memory: int | None = None
    memory_reservation: int | None = None
    restart: str = "unless-stopped"
    stop_signal: str = ""
    stop_grace_period: float = 10.0
    replicas: int = 1
    hosts: tuple[str, ...] = ()  # placement, resolved to host names
    # On a Swarm cluster: node labels a task's node must have, and node labels to spread tasks over
    node_selector: tuple[tuple[str, str], ...] = ()
    spread: tuple[str, ...] = ()
    healthcheck: HealthCheck | None = None
    update: UpdatePolicy = field(default_factory=UpdatePolicy)
    depends_on: tuple[Dependency, ...] = ()
    self_heal: bool = True
    privileged: bool = False
    network_mode: str = ""
    pid: str = ""
    ipc: str = ""
    uts: str = ""
    userns: str = ""
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    read_only_rootfs: bool = False
    init: bool = False
    files: tuple[RepoFile, ...] = ()
    secret_key_id: str = ""  # SecretKey.id of the key its secret digests were made with; "" without secrets
    source: str = ""  # FILE:LINE where it is declared (a manifest or a compose file), for plans; not in the spec

    def container_config(self) -> dict[str, Any]:
        """What a container of this service is made of: the fields whose change means a new container.

        Rollout settings (replicas, placement, update policy, dependencies, self-heal) are left out:
        changing them must not recreate containers. Secret values are masked.
        """
        hc = self.healthcheck
        config: dict[str, Any] = {
            "image": self.image + "@" + self.digest if self.digest else self.image,
            "command": list(self.command) if self.command is not None else None,
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
            "env": {e.name: e.canonical() for e in self.env},
            "workingDir": self.working_dir,
            "user": self.user,
            "hostname": self.hostname,
            "ports": [[p.container, p.host, p.protocol, p.host_ip] for p in self.ports],
            "mounts": [[m.type, m.source, m.target, m.read_only, m.size] + ([m.external] if m.external else [])
                       for m in self.mounts],
            "networks": {n.name: sorted(n.aliases) if not n.external else {"aliases": sorted(n.aliases),
                                                                            "external": n.external}
                         for n in self.networks},
            "labels": dict(self.labels),
            "cpus": self.cpus,
            "memory": self.memory,
            "memoryReservation": self.memory_reservation,
            "restart": self.restart,
            "stopSignal": self.stop_signal,
            "stopGracePeriod": self.stop_grace_period,
            "healthcheck": None if hc is None else {
                "kind": hc.kind, "command": list(hc.command), "port": hc.port, "path": hc.path,
                "status": hc.status, "interval": hc.interval, "timeout": hc.timeout,
                "retries": hc.retries, "startPeriod": hc.start_period,
            },
            "privileged": self.privileged,
            "networkMode": self.network_mode,
            "pid": self.pid, "ipc": self.ipc, "uts": self.uts, "userns": self.userns,
            "capAdd": sorted(self.cap_add), "capDrop": sorted(self.cap_drop),
            "devices": list(self.devices), "securityOpt": list(self.security_opt),
            "readOnlyRootfs": self.read_only_rootfs,
            "init": self.init,
        }
        if self.files:  # only when there are any: a service without files keeps the hash it had before
            config["files"] = {f.target: f.canonical() for f in self.files}
        return config

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.container_config()).encode()).hexdigest()

    @property
    def run_image(self) -> str:
        """What its containers are created from: ``name@sha256:...`` once the digest is resolved, else the image
        as written (Docker takes a name with a digest and no tag; the tag stays in the spec and the plan)."""
        return pinned_image(self.image, self.digest) if self.digest else self.image

    @property
    def secret_names(self) -> frozenset[str]:
        return frozenset(e.name for e in self.env if e.secret) | frozenset(f.target for f in self.files if f.secret)


@dataclass(frozen=True)
class TlsConfig:
    ca: str = ""  # absolute paths on the reconciler, resolved inside the checkout at load time
    cert: str = ""
    key: str = ""
    verify: bool = True


@dataclass(frozen=True)
class HostSpec:
    name: str
    url: str
    tls: TlsConfig | None = None
    insecure: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    # "swarm": the URL is a manager of a Docker Swarm cluster, and services placed here become Swarm services
    mode: Literal["engine", "swarm"] = "engine"
    endpoint_mode: Literal["vip", "dnsrr"] = "vip"  # swarm only: how tasks are reached on their networks
    publish_mode: Literal["ingress", "host"] = "ingress"  # swarm only: the routing mesh, or each task's node

    @property
    def swarm(self) -> bool:
        return self.mode == "swarm"


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    driver: str = "bridge"
    internal: bool = False
    attachable: bool = False
    subnet: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    external: str = ""  # the Docker name of an existing network gitops never creates, changes or removes

    def config(self) -> dict[str, Any]:
        return {"driver": self.driver, "internal": self.internal, "attachable": self.attachable,
                "subnet": self.subnet, "labels": dict(self.labels)}

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.config()).encode()).hexdigest()


@dataclass(frozen=True)
class VolumeSpec:
    name: str
    driver: str = "local"
    options: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    remove: bool = False
    external: str = ""  # the Docker name of an existing volume gitops never creates or removes


@dataclass(frozen=True)
class PolicyException:
    """A setting a policy rule refuses, used because the Project allows that rule.

    Plans list these at the top, where no value of the repository can hide them.
    """

    kind: str  # Service | Volume
    name: str
    rule: str  # the policy rule id, e.g. 'privileged'
    detail: str  # what the setting is, e.g. 'bind mount of /srv/app'
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class RegistrySpec:
    """Credentials for one image registry, declared in the repository (a Registry manifest). The password
    comes from an encrypted file; it goes to the registry's API and to each host's pull, nowhere else."""

    name: str
    server: str  # "host[:port]" as image names spell it; "docker.io" for Docker Hub
    username: str
    password: str = field(repr=False)
    source: str = ""  # FILE:LINE of the manifest, for errors


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    prune: bool = False
    self_heal: bool = True
    allow: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Instance:
    """One container the desired state asks for: replica ``slot`` of ``service`` on ``host``."""

    service: str
    host: str
    slot: int


@dataclass(frozen=True)
class DesiredState:
    project: ProjectSpec
    hosts: tuple[HostSpec, ...]
    networks: tuple[NetworkSpec, ...]
    volumes: tuple[VolumeSpec, ...]
    services: tuple[ServiceSpec, ...]
    revision: str = ""
    exceptions: tuple[PolicyException, ...] = ()  # settings the Project's policy.allow let through
    registries: tuple[RegistrySpec, ...] = ()  # credentials declared in the repository

    def secret_values(self) -> tuple[str, ...]:
        """Every secret value it holds (secret env, secret files, registry passwords): what notifications and
        other outputs that quote containers (logs, health output) mask."""
        values = [e.value for s in self.services for e in s.env if e.secret]
        values += [f.content.decode("utf-8", "replace") for s in self.services for f in s.files if f.secret]
        values += [r.password for r in self.registries]
        return tuple(dict.fromkeys(v for v in values if v))

    def service(self, name: str) -> ServiceSpec:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    def instances(self, service: ServiceSpec) -> list[Instance]:
        """Replicas spread evenly over the service's hosts, in host order: slot i on hosts[i % n]."""
        if not service.hosts:
            return []
        return [Instance(service.name, service.hosts[i % len(service.hosts)], i)
                for i in range(service.replicas)]


# --- observed ----------------------------------------------------------------------------------------

Health = Literal["healthy", "unhealthy", "starting", "none"]


@dataclass(frozen=True)
class ObservedContainer:
    host: str
    id: str
    name: str
    service: str
    slot: int
    spec_hash: str
    revision: str
    state: str  # created | running | exited | restarting | paused | dead | removing
    health: Health
    image: str
    spec_json: str = ""  # the canonical spec label, for field-level diffs
    depends_on: tuple[str, ...] = ()  # from its label, to order the removal of undeclared services
    networks: tuple[str, ...] = ()  # docker names of the networks it is attached to
    volumes: tuple[str, ...] = ()  # docker names of the named volumes it mounts
    hand_changes: tuple[str, ...] = ()  # settings found changed by hand (settings_drift), e.g. "env.DEBUG"
    network_hashes: str = ""  # LABEL_NETWORK_HASHES as created
    key_id: str = ""  # LABEL_KEY_ID: the key its secret digests were made with ("" before keys, or no secrets)

    @property
    def running(self) -> bool:
        return self.state in ("running", "restarting")


@dataclass(frozen=True)
class ObservedObject:
    """A managed network or volume."""

    host: str
    kind: Literal["network", "volume", "secret", "config"]  # secret/config: a Swarm one a service mounts
    name: str  # manifest name; for a Swarm secret or config, the service it was made for
    docker_name: str
    spec_hash: str = ""
    id: str = ""  # Swarm secrets and configs: their id


@dataclass(frozen=True)
class ObservedSwarmService:
    """A project's service on a Swarm cluster, as one list call (and one of tasks) shows it."""

    host: str  # the cluster (a Host with mode: swarm)
    id: str
    name: str  # the Swarm service's name
    service: str  # the gitops service
    version: int  # Swarm's object version, which an update must name
    spec_hash: str  # LABEL_SPEC_HASH: the container settings' hash
    swarm_hash: str  # LABEL_SWARM_HASH as gitops wrote it: the whole Swarm spec's
    revision: str
    spec_json: str = ""  # LABEL_SPEC: the canonical spec, for field-level diffs
    hand_changed: bool = False  # the spec read back hashes otherwise than gitops sent it (docker service update)
    update_state: str = ""  # "" (never updated) | updating | paused | completed | rollback_started | ...
    update_message: str = ""
    replicas: int = 0  # desired
    running: int = 0  # tasks running on the service's current spec
    task_error: str = ""  # the newest error of a task that is not running
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostObservation:
    host: str
    reachable: bool
    error: str = ""
    containers: tuple[ObservedContainer, ...] = ()
    networks: tuple[ObservedObject, ...] = ()
    volumes: tuple[ObservedObject, ...] = ()
    swarm: bool = False  # a Swarm cluster: its services, secrets and configs instead of containers
    services: tuple[ObservedSwarmService, ...] = ()
    files: tuple[ObservedObject, ...] = ()  # the project's Swarm secrets and configs


@dataclass(frozen=True)
class ObservedState:
    hosts: tuple[HostObservation, ...] = ()

    def host(self, name: str) -> HostObservation | None:
        for obs in self.hosts:
            if obs.host == name:
                return obs
        return None


LABEL_FILE_TARGET = LABEL_PREFIX + "file-target"  # a Swarm secret or config: the path it is mounted at
LABEL_DEPENDS_ON = LABEL_PREFIX + "depends-on"  # comma-separated, so prune can order removals
# "name=hash,..." of the Network manifests a container was attached under: a changed network shows in
# the list call without listing networks. Not part of the container's spec hash.
LABEL_NETWORK_HASHES = LABEL_PREFIX + "network-hashes"


def network_hashes_label(svc: ServiceSpec, networks: dict[str, str]) -> str:
    """The LABEL_NETWORK_HASHES value for ``svc``, from network name -> spec hash (managed networks only)."""
    return ",".join(f"{n.name}={networks[n.name][:12]}" for n in sorted(svc.networks, key=lambda n: n.name)
                    if n.name in networks and not n.external)


def container_labels(project: str, svc: ServiceSpec, slot: int, revision: str,
                     networks: dict[str, str] | None = None) -> dict[str, str]:
    """The labels of one instance of ``svc``: the manifest's own, then gitops' (which win). Every host
    driver writes these, and ``observed_container`` reads them back."""
    labels = dict(svc.labels)
    labels.update({
        LABEL_MANAGED: "true", LABEL_PROJECT: project, LABEL_KIND: "container", LABEL_SERVICE: svc.name,
        LABEL_SLOT: str(slot), LABEL_SPEC_HASH: svc.spec_hash, LABEL_REVISION: revision,
        LABEL_SPEC: canonical_json(svc.container_config()),
        LABEL_DEPENDS_ON: ",".join(sorted({d.service for d in svc.depends_on})),
    })
    if networks and svc.networks:
        labels[LABEL_NETWORK_HASHES] = network_hashes_label(svc, networks)
    if svc.secret_key_id:  # which key its secret digests need, so a plan can tell a re-key from a change
        labels[LABEL_KEY_ID] = svc.secret_key_id
    return labels


def observed_container(host: str, container_id: str, name: str, labels: dict[str, str], *, state: str,
                       health: Health, image: str, networks: tuple[str, ...] = (),
                       volumes: tuple[str, ...] = ()) -> ObservedContainer | None:
    """A listed container as the planner sees it, from the labels ``container_labels`` wrote; None when
    its slot label is not a number (labelled as ours, but not by us: left alone)."""
    try:
        slot = int(labels.get(LABEL_SLOT, ""))
    except ValueError:
        return None
    return ObservedContainer(
        host=host, id=container_id, name=name, service=labels.get(LABEL_SERVICE, ""), slot=slot,
        spec_hash=labels.get(LABEL_SPEC_HASH, ""), revision=labels.get(LABEL_REVISION, ""), state=state,
        health=health, image=image, spec_json=labels.get(LABEL_SPEC, ""),
        depends_on=tuple(d for d in labels.get(LABEL_DEPENDS_ON, "").split(",") if d),
        networks=tuple(sorted(networks)), volumes=tuple(sorted(volumes)),
        network_hashes=labels.get(LABEL_NETWORK_HASHES, ""), key_id=labels.get(LABEL_KEY_ID, ""))


def container_name(project: str, service: str, slot: int, spec_hash: str) -> str:
    """Deterministic per spec: old and new containers of one slot never share a name."""
    return f"{project}-{service}-{slot}-{spec_hash[:8]}"


def object_name(project: str, name: str) -> str:
    """Docker name of a managed network or volume."""
    return f"{project}_{name}"


def network_docker_name(project: str, attachment: NetworkAttachment) -> str:
    """The Docker network a service joins: its external name, or the project's managed network."""
    return attachment.external or object_name(project, attachment.name)


def volume_docker_name(project: str, mount: Mount) -> str:
    """The Docker volume a volume mount uses: its external name, or the project's managed volume."""
    return mount.external or object_name(project, mount.source)


# --- observed state as data (status --format json is also the snapshot plan --observed reads) ----------


def observed_to_dict(observed: ObservedState) -> dict[str, Any]:
    return {"hosts": [asdict(h) for h in observed.hosts]}


def observed_from_dict(data: dict[str, Any]) -> ObservedState:
    hosts = []
    for h in data.get("hosts", []):
        containers = tuple(ObservedContainer(**{**c, "depends_on": tuple(c.get("depends_on", ())),
                                                "networks": tuple(c.get("networks", ())),
                                                "volumes": tuple(c.get("volumes", ())),
                                                "hand_changes": tuple(c.get("hand_changes", ()))})
                           for c in h.get("containers", []))
        networks = tuple(ObservedObject(**o) for o in h.get("networks", []))
        volumes = tuple(ObservedObject(**o) for o in h.get("volumes", []))
        services = tuple(ObservedSwarmService(**{**o, "depends_on": tuple(o.get("depends_on", ()))})
                         for o in h.get("services", []))
        files = tuple(ObservedObject(**o) for o in h.get("files", []))
        hosts.append(HostObservation(h["host"], h["reachable"], h.get("error", ""), containers, networks, volumes,
                                     bool(h.get("swarm", False)), services, files))
    return ObservedState(tuple(hosts))
