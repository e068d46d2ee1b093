"""The only module that talks to Docker: one DockerHost per Host manifest.

Observation is one labelled list call per host (networks and volumes are read from that list, and
listed separately only when a needed one is not seen there). Every object gitops creates carries
the project's labels, and nothing without them is ever changed: a name already taken by an
unmanaged object is an error, never an adoption (SECURITY.md item 14).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import re
import tarfile
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
import requests.exceptions
from docker.types import Mount as DockerMount

from gitops.core.images import ImageRef, parse_image
from gitops.core.model import (
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_PROJECT,
    LABEL_SPEC_HASH,
    HostObservation,
    HostSpec,
    NetworkSpec,
    ObservedContainer,
    ObservedObject,
    RepoFile,
    ServiceSpec,
    VolumeSpec,
    container_labels,
    container_name,
    network_docker_name,
    object_name,
    observed_container,
    volume_docker_name,
)
from gitops.core.ports import Created, LeaseState
from gitops.errors import Conflict, HostError, HostUnreachable, NameConflict, NotFound
from gitops.failpoints import failpoint
from gitops.hosts.registry import RegistryClient
from gitops.hosts.settings_drift import differences

API_VERSION = "auto"  # negotiate: Debian's engine 20.10 speaks 1.41, newer engines more
MIN_API_VERSION = "1.41"
NS = 1_000_000_000


_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def _health_from_status(status: str) -> str:
    match = _HEALTH_IN_STATUS.search(status or "")
    if not match:
        return "none"
    return {"healthy": "healthy", "unhealthy": "unhealthy"}.get(match.group(1), "starting")


HOST_TEXT_LIMIT = 300  # characters of a host's own words kept in a message


def host_text(text: str, limit: int = HOST_TEXT_LIMIT) -> str:
    """Text a host returned, made safe for a message: control and format characters escaped (no
    terminal escapes, no new lines that start a CI workflow command), cut to ``limit`` characters.

    A Host manifest can point gitops at any server, so what comes back is as untrusted as the repo.
    """
    out: list[str] = []
    size = 0
    for i, char in enumerate(text):
        piece = char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        if size + len(piece) > limit:
            return "".join(out) + f"... ({len(text) - i} more characters)"
        out.append(piece)
        size += len(piece)
    return "".join(out)


def _explain(exc: Exception) -> str:
    """A one-line reason: the API's explanation, or the innermost cause of a connection error (cut and
    escaped: it is the host's text)."""
    return host_text(_reason(exc))


def _reason(exc: Exception) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    text = str(exc)
    cause = text.split("(Caused by", 1)[-1]
    match = re.search(r"\[SSL[^\]]*\] ([^'\"]+)|(\[Errno -?\d+\] [^'\"]+)|Error\(\d+, '([^']+)'\)", cause)
    if not match:
        return text or type(exc).__name__
    inner = next((g for g in match.groups() if g), "")
    inner = inner.strip(" )'\"")
    return inner + ")" * (inner.count("(") - inner.count(")"))


# --- the apply lease: one applier per project at a time --------------------------------------------------

LEASE_IMAGE = "gitops/lease:1"
LABEL_LEASE_HOLDER = "io.gitops.lease-holder"


def lease_name(project: str) -> str:
    return f"gitops-lease-{project}"


class _LeaseOps:
    """Lease primitives on one host, mixed into DockerHost.

    The lease is a container named ``gitops-lease-<project>`` that is created but never started: Docker
    refuses a second container with the same name (409), atomically, on every engine. Its holder is a
    label; its expiry is the one integer Docker lets us change on an existing container, the restart
    policy's retry count (Unix seconds). A holder renews by moving that number forward; anyone may
    remove a lease whose expiry has passed (by the id it inspected, so a fresh lease is never removed).
    """

    name: str
    client: docker.APIClient
    _call: Callable[..., Any]

    def _lease_image(self) -> None:
        try:
            self._call("inspect lease image", self.client.inspect_image, LEASE_IMAGE)
        except NotFound:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                info = tarfile.TarInfo("lease")
                tar.addfile(info, io.BytesIO(b""))
            repo, _, tag = LEASE_IMAGE.partition(":")
            self._call("import lease image", self.client.import_image_from_data,
                       buf.getvalue(), repository=repo, tag=tag)

    def lease_acquire(self, project: str, holder: str, ttl: float, now: float, *,
                      holder_gone: Callable[[str], bool] = lambda holder: False) -> LeaseState:
        self._lease_image()
        name = lease_name(project)
        expiry = int(now + ttl)
        for _ in range(2):
            try:
                self._call(f"create lease {name}", self.client.create_container,
                           LEASE_IMAGE, command=["/lease"], name=name,
                           labels={LABEL_PROJECT: project, LABEL_KIND: "lease", LABEL_LEASE_HOLDER: holder},
                           host_config=self.client.create_host_config(
                               restart_policy={"Name": "on-failure", "MaximumRetryCount": expiry}))
                return LeaseState(True, holder, expiry)
            except Conflict:
                pass  # the lease exists: whose is it, and until when?
            try:
                info = self._call(f"inspect lease {name}", self.client.inspect_container, name)
            except NotFound:
                continue  # released meanwhile: try again
            labels = (info.get("Config") or {}).get("Labels") or {}
            if labels.get(LABEL_PROJECT) != project or labels.get(LABEL_KIND) != "lease":
                raise NameConflict(self.name, f"a container named {name} exists and is not a gitops lease")
            current = labels.get(LABEL_LEASE_HOLDER, "")
            until = float(((info.get("HostConfig") or {}).get("RestartPolicy") or {}).get("MaximumRetryCount") or 0)
            if current == holder:
                self.lease_renew(project, holder, ttl, now)
                return LeaseState(True, holder, expiry)
            if until > now and not holder_gone(current):
                return LeaseState(False, current, until)
            with contextlib.suppress(NotFound):  # expired: take it over, by the id we saw
                self._call(f"remove expired lease {name}", self.client.remove_container,
                           info["Id"], force=True)
        info = self._call(f"inspect lease {name}", self.client.inspect_container, name)
        labels = (info.get("Config") or {}).get("Labels") or {}
        until = float(((info.get("HostConfig") or {}).get("RestartPolicy") or {}).get("MaximumRetryCount") or 0)
        return LeaseState(False, labels.get(LABEL_LEASE_HOLDER, ""), until)

    def lease_renew(self, project: str, holder: str, ttl: float, now: float) -> None:
        self._call("renew lease", self.client.update_container, lease_name(project),
                   restart_policy={"Name": "on-failure", "MaximumRetryCount": int(now + ttl)})

    def lease_release(self, project: str, holder: str) -> None:
        name = lease_name(project)
        try:
            info = self._call(f"inspect lease {name}", self.client.inspect_container, name)
        except NotFound:
            return
        if ((info.get("Config") or {}).get("Labels") or {}).get(LABEL_LEASE_HOLDER) == holder:
            with contextlib.suppress(NotFound):
                self._call(f"release lease {name}", self.client.remove_container,
                           info["Id"], force=True)


class DockerHost(_LeaseOps):
    """A Docker Engine named by a Host manifest (or the local engine). Thread-safe for concurrent calls."""

    def __init__(self, spec: HostSpec, *, timeout: float = 60, pool_size: int = 16,
                 registries: RegistryClient | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.registries = registries  # whose credentials each pull sends (declared ones, then the docker config)
        self.timeout = timeout
        self.pool_size = pool_size
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._images: dict[str, bool] = {}
        self._image_locks: dict[str, threading.Lock] = {}

    # -- connection -----------------------------------------------------------------------------------
    @property
    def client(self) -> docker.APIClient:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> docker.APIClient:
        url = self.spec.url
        try:
            if not url:
                kwargs = docker.utils.kwargs_from_env()
                return docker.APIClient(version=API_VERSION, timeout=self.timeout, max_pool_size=self.pool_size,
                                        **kwargs)
            tls: Any = False
            if url.startswith("tcp://") and self.spec.tls is not None:
                t = self.spec.tls
                tls = docker.tls.TLSConfig(
                    client_cert=(t.cert, t.key) if t.cert else None,
                    ca_cert=t.ca or None,
                    verify=(t.ca or True) if t.verify else False,
                )
                url = "https://" + url[len("tcp://"):]
            # With TLS, build the client without asking the server anything yet (a concrete version
            # means no request), so trust_env can be switched off before the first request.
            client = docker.APIClient(base_url=url, version=MIN_API_VERSION if tls else API_VERSION,
                                      timeout=self.timeout, tls=tls, max_pool_size=self.pool_size,
                                      use_ssh_client=url.startswith("ssh://"))
            if tls:
                # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own CA: the host's
                # manifest names the CA to trust, so the environment must not decide that.
                client.trust_env = False
                client._version = client._retrieve_server_version()
            return client
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            where = self.spec.url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
            raise HostUnreachable(self.name, f"cannot connect to {where}: {_explain(exc)}") from exc

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except docker.errors.APIError as exc:
            status = exc.status_code or 0
            if status == 404:
                raise NotFound(self.name, f"{what}: {_explain(exc)}") from exc
            if status == 409:
                raise Conflict(self.name, f"{what}: {_explain(exc)}") from exc
            raise HostError(self.name, f"{what}: {_explain(exc)}", temporary=status >= 500) from exc
        except (requests.exceptions.RequestException, OSError) as exc:
            raise HostUnreachable(self.name, f"{what}: {_explain(exc)}") from exc

    def probe_address(self) -> str:
        """Where the reconciler reaches this host's published ports for http/tcp health probes."""
        url = urlsplit(self.spec.url) if self.spec.url else None
        if url and url.scheme in ("tcp", "ssh") and url.hostname:
            return url.hostname
        return "127.0.0.1"

    # -- observe --------------------------------------------------------------------------------------
    def observe(self, project: str, *, want_networks: Iterable[str] = (),
                want_volumes: Iterable[str] = ()) -> HostObservation:
        """Everything of ``project`` on this host. Never raises: an unreachable host is reported as such."""
        try:
            listed = self._call("list containers", self.client.containers, all=True,
                                filters={"label": [f"{LABEL_PROJECT}={project}", f"{LABEL_MANAGED}=true"]})
            containers = [c for c in (self._observed(item) for item in listed) if c is not None]
            seen_networks = {n for c in containers for n in c.networks}
            seen_volumes = {v for c in containers for v in c.volumes}
            networks = [ObservedObject(self.name, "network", n, n) for n in sorted(seen_networks)]
            volumes = [ObservedObject(self.name, "volume", v, v) for v in sorted(seen_volumes)]
            if set(want_networks) - seen_networks:
                networks = self._list_networks(project)
            if set(want_volumes) - seen_volumes:
                volumes = self._list_volumes(project)
        except HostError as exc:
            return HostObservation(self.name, False, str(exc).removeprefix(f"{self.name}: "))
        return HostObservation(self.name, True, "", tuple(containers), tuple(networks), tuple(volumes))

    def _observed(self, item: dict[str, Any]) -> ObservedContainer | None:
        return observed_container(
            self.name, item["Id"], (item.get("Names") or ["/"])[0].lstrip("/"), item.get("Labels") or {},
            state=item.get("State", ""), health=_health_from_status(item.get("Status", "")),  # type: ignore[arg-type]
            image=item.get("Image", ""),
            networks=tuple(((item.get("NetworkSettings") or {}).get("Networks") or {}).keys()),
            volumes=tuple(m["Name"] for m in item.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")))

    def _list_networks(self, project: str) -> list[ObservedObject]:
        items = self._call("list networks", self.client.networks, filters={"label": f"{LABEL_PROJECT}={project}"})
        return sorted((ObservedObject(self.name, "network", (n.get("Labels") or {}).get(LABEL_NAME, ""), n["Name"],
                                      (n.get("Labels") or {}).get(LABEL_SPEC_HASH, "")) for n in items),
                      key=lambda o: o.docker_name)

    def _list_volumes(self, project: str) -> list[ObservedObject]:
        found = self._call("list volumes", self.client.volumes, filters={"label": f"{LABEL_PROJECT}={project}"})
        items = (found or {}).get("Volumes") or []
        return sorted((ObservedObject(self.name, "volume", (v.get("Labels") or {}).get(LABEL_NAME, ""), v["Name"])
                       for v in items), key=lambda o: o.docker_name)

    def container_events(self, project: str, stop: threading.Event) -> Iterable[dict[str, Any]]:
        """Lifecycle events (start, die, stop, kill, destroy, oom) of the project's containers, until ``stop``.

        Raises HostError when the stream cannot be opened or breaks; the caller reconnects.
        """
        client = self._connect()  # its own connection: the stream blocks it
        try:
            stream = self._call("watch events", client.events, decode=True, filters={
                "type": ["container"], "label": [f"{LABEL_PROJECT}={project}", f"{LABEL_MANAGED}=true"],
                "event": ["start", "die", "stop", "kill", "destroy", "oom"]})
            try:
                for event in stream:
                    if stop.is_set():
                        return
                    yield event
            except (requests.exceptions.RequestException, OSError) as exc:
                raise HostUnreachable(self.name, f"event stream broke: {_explain(exc)}") from exc
            finally:
                stream.close()
        finally:
            client.close()

    # -- images ---------------------------------------------------------------------------------------
    def ensure_image(self, image: str, policy: str) -> None:
        """Pull by policy: missing (only when absent), always, never (absent is an error).

        Services sharing an image on a host share one check (and one pull) per run.
        """
        with self._lock:
            lock = self._image_locks.setdefault(image, threading.Lock())
        with lock:
            self._ensure_image(image, policy)

    def _ensure_image(self, image: str, policy: str) -> None:
        if self._images.get(image):
            return
        failpoint("during_pull")
        try:
            ref = parse_image(image)
        except ValueError as exc:
            raise HostError(self.name, f"image {image}: {exc}") from exc
        if ref.digest:
            policy = "missing" if policy == "always" else policy  # a digest names one image for ever: no need
        present = True
        if policy != "always":
            try:
                self._call("inspect image", self.client.inspect_image, image)
            except NotFound:
                present = False
        if policy == "never" and not present:
            raise HostError(self.name, f"image {image} is not on the host and pullPolicy is never")
        if policy == "always" or not present:
            self._pull(image, ref)
        self._images[image] = True

    def _pull(self, image: str, ref: ImageRef) -> None:
        """Pull with the registry's credentials (never shown: errors say whose they were)."""
        creds = self.registries.credentials_for(ref.registry) if self.registries is not None else None
        whose = (f"registry {ref.registry} with the credentials of {creds.origin}" if creds else
                 f"registry {ref.registry} without credentials (declare a Registry manifest, or log in on the "
                 f"reconciler's machine, if it needs them)")
        what = f"pull {image} from {whose}"
        try:
            stream = self._call(what, self.client.pull, ref.name, tag=ref.digest or ref.tag, stream=True,
                                decode=True, auth_config=creds.auth_config() if creds else None)
            for message in stream:  # the engine reports some failures inside a 200 answer
                if isinstance(message, dict) and message.get("error"):
                    raise HostError(self.name, f"{what}: {host_text(str(message['error']))}")
        except NotFound as exc:  # no such image in the registry: not a container gone, so not NotFound
            raise HostError(self.name, str(exc).removeprefix(f"{self.name}: ")) from exc
        except (requests.exceptions.RequestException, OSError) as exc:
            raise HostUnreachable(self.name, f"{what}: {_explain(exc)}") from exc

    # -- containers -----------------------------------------------------------------------------------
    def ownership_labels(self, project: str) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_PROJECT: project}

    def container_request(self, project: str, svc: ServiceSpec, slot: int, revision: str,
                          networks: dict[str, str] | None = None) -> tuple[dict[str, Any], list[tuple[str, list[str]]]]:
        """The create_container arguments for one instance, and the further networks (name, aliases) to join.

        One place for both creating a container and checking one against its spec (settings_drift).
        """
        name = container_name(project, svc.name, slot, svc.spec_hash)
        labels = container_labels(project, svc, slot, revision, networks)
        mounts = []
        for m in svc.mounts:
            source = volume_docker_name(project, m) if m.type == "volume" else (m.source or None)
            mounts.append(DockerMount(m.target, source, type=m.type, read_only=m.read_only,
                                      tmpfs_size=m.size if m.type == "tmpfs" else None))
        client = self.client
        host_config = client.create_host_config(
            mounts=mounts or None,
            restart_policy={"Name": svc.restart} if svc.restart != "no" else None,
            nano_cpus=int(svc.cpus * NS) if svc.cpus else None,
            mem_limit=svc.memory, mem_reservation=svc.memory_reservation,
            privileged=svc.privileged, network_mode=svc.network_mode or None,
            pid_mode=svc.pid or None, ipc_mode=svc.ipc or None, uts_mode=svc.uts or None,
            userns_mode=svc.userns or None, cap_add=list(svc.cap_add) or None, cap_drop=list(svc.cap_drop) or None,
            devices=list(svc.devices) or None, security_opt=list(svc.security_opt) or None,
            read_only=svc.read_only_rootfs or None,
            init=svc.init or None,
        )
        if svc.ports:
            bindings: dict[str, list[dict[str, str]]] = {}
            for p in svc.ports:
                bindings.setdefault(f"{p.container}/{p.protocol}", []).append(
                    {"HostIp": p.host_ip, "HostPort": str(p.host) if p.host else ""})
            host_config["PortBindings"] = bindings
        networking = None
        first, rest = (svc.networks[0], svc.networks[1:]) if svc.networks else (None, ())
        if first is not None:
            endpoint = client.create_endpoint_config(aliases=list(first.aliases) or None)
            networking = client.create_networking_config({network_docker_name(project, first): endpoint})
        healthcheck = None
        hc = svc.healthcheck
        if hc is not None and hc.kind == "exec":
            healthcheck = {"test": list(hc.command), "interval": int(hc.interval * NS), "timeout": int(hc.timeout * NS),
                           "retries": hc.retries, "start_period": int(hc.start_period * NS)}
        request = dict(
            image=svc.run_image, command=list(svc.command) if svc.command is not None else None,
            entrypoint=list(svc.entrypoint) if svc.entrypoint is not None else None,
            environment=[f"{e.name}={e.value}" for e in svc.env] or None,
            working_dir=svc.working_dir or None, user=svc.user or None, hostname=svc.hostname or None,
            ports=[(p.container, p.protocol) for p in svc.ports] or None,
            name=name, labels=labels, host_config=host_config, networking_config=networking,
            healthcheck=healthcheck, stop_signal=svc.stop_signal or None,
            stop_timeout=int(round(svc.stop_grace_period)), detach=True,
        )
        return request, [(network_docker_name(project, n), list(n.aliases)) for n in rest]

    def create_container(self, project: str, svc: ServiceSpec, slot: int, revision: str,
                         networks: dict[str, str] | None = None) -> Created:
        """Create one instance; ``networks`` (name -> spec hash of the Network manifests) is recorded in a label."""
        request, rest = self.container_request(project, svc, slot, revision, networks)
        name = request["name"]
        try:
            created = self._call(f"create container {name}", self.client.create_container, **request)
        except Conflict:
            adopted = self._adopt_own(name, project, svc.spec_hash, svc.run_image)
            self._put_files(adopted.id, name, svc)  # it may have been made by a pass that died before this
            return adopted
        container_id: str = created["Id"]
        for net_name, aliases in rest:
            self._call(f"connect {name} to {net_name}", self.client.connect_container_to_network, container_id,
                       net_name, aliases=aliases or None)
        self._put_files(container_id, name, svc)
        return Created(container_id)

    def _put_files(self, container_id: str, name: str, svc: ServiceSpec) -> None:
        """Copy the service's repository files into the container, before it starts (docker cp's API call:
        works on every engine and over every transport, and needs nothing on the host's disk)."""
        if not svc.files:
            return
        self._call(f"copy {len(svc.files)} files into {name}", self.client.put_archive, container_id, "/",
                   files_archive(svc.files))

    def settings_drift(self, project: str, svc: ServiceSpec, container: ObservedContainer,
                       image_env: dict[str, list[str]]) -> tuple[str, ...]:
        """The settings in which ``container`` differs from what gitops creates for ``svc`` (one inspect).

        ``image_env`` caches each image's own environment across calls. A container gone meanwhile has
        no differences: the next observation no longer lists it.
        """
        request, rest = self.container_request(project, svc, container.slot, container.revision)
        try:
            info = self._call(f"inspect {container.name}", self.client.inspect_container, container.id)
        except NotFound:
            return ()
        image_id = str(info.get("Image", ""))
        if image_id not in image_env:
            try:
                image = self._call(f"inspect image {image_id}", self.client.inspect_image, image_id)
                image_env[image_id] = list((image.get("Config") or {}).get("Env") or [])
            except NotFound:
                image_env[image_id] = []
        return differences(request, [n for n, _ in rest], info, image_env[image_id])

    def _adopt_own(self, name: str, project: str, spec_hash: str, image: str) -> Created:
        """A container with our deterministic name exists: ours from an interrupted pass, or someone else's."""
        info = self._call(f"inspect {name}", self.client.inspect_container, name)
        labels = (info.get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL_PROJECT) == project and labels.get(LABEL_SPEC_HASH) == spec_hash:
            if (info.get("Config") or {}).get("Image") not in (image, None):
                raise HostError(self.name, f"container {name} carries this spec's labels but runs "
                                f"{host_text(str(info['Config']['Image']))}, not {image}; the next pass replaces it",
                                temporary=True)
            return Created(str(info["Id"]), adopted=True)
        raise NameConflict(self.name, f"a container named {name} exists and is not managed by project {project}; "
                           "gitops never adopts or replaces it: rename or remove it by hand")

    def start(self, ref: str) -> None:
        self._call(f"start {ref}", self.client.start, ref)

    def stop(self, ref: str, *, timeout: float) -> None:
        with contextlib.suppress(NotFound):
            self._call(f"stop {ref}", self.client.stop, ref, timeout=int(round(timeout)))

    def remove(self, ref: str) -> None:
        with contextlib.suppress(NotFound):
            self._call(f"remove {ref}", self.client.remove_container, ref, force=True, v=False)

    def inspect(self, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(f"inspect {ref}", self.client.inspect_container, ref)
        return result

    def logs(self, ref: str, *, tail: int = 20) -> str:
        try:
            raw = self._call(f"logs {ref}", self.client.logs, ref, tail=tail, stdout=True, stderr=True)
        except HostError:
            return ""
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    # -- networks and volumes ---------------------------------------------------------------------------
    def create_network(self, project: str, net: NetworkSpec) -> None:
        name = object_name(project, net.name)
        labels = {**dict(net.labels), **self.ownership_labels(project), LABEL_KIND: "network", LABEL_NAME: net.name,
                  LABEL_SPEC_HASH: net.spec_hash}
        ipam = None
        if net.subnet:
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=net.subnet)])
        existing = self._call("list networks", self.client.networks, names=[name])
        for item in existing:
            if item.get("Name") == name:
                if (item.get("Labels") or {}).get(LABEL_PROJECT) == project:
                    return
                raise NameConflict(self.name, f"a network named {name} exists and is not managed by project "
                                   f"{project}; gitops never adopts it")
        driver, attachable = self._network_driver(net)
        self._call(f"create network {name}", self.client.create_network, name, driver=driver,
                   internal=net.internal, attachable=attachable, ipam=ipam, labels=labels,
                   check_duplicate=True)

    def _network_driver(self, net: NetworkSpec) -> tuple[str, bool]:
        return net.driver, net.attachable

    def create_volume(self, project: str, vol: VolumeSpec) -> None:
        name = object_name(project, vol.name)
        try:
            info = self._call(f"inspect volume {name}", self.client.inspect_volume, name)
        except NotFound:
            info = None
        if info is not None:
            if (info.get("Labels") or {}).get(LABEL_PROJECT) == project:
                return
            raise NameConflict(self.name, f"a volume named {name} exists and is not managed by project {project}; "
                               "gitops never adopts it")
        labels = {**dict(vol.labels), **self.ownership_labels(project), LABEL_KIND: "volume", LABEL_NAME: vol.name}
        self._call(f"create volume {name}", self.client.create_volume, name, driver=vol.driver,
                   driver_opts=dict(vol.options) or None, labels=labels)

    def remove_volume(self, project: str, vol_name: str) -> None:
        name = object_name(project, vol_name)
        try:
            info = self._call(f"inspect volume {name}", self.client.inspect_volume, name)
        except NotFound:
            return
        if (info.get("Labels") or {}).get(LABEL_PROJECT) != project:
            raise NameConflict(self.name, f"volume {name} is not managed by project {project}; not removed")
        self._call(f"remove volume {name}", self.client.remove_volume, name)


def files_archive(files: Iterable[RepoFile]) -> bytes:
    """A tar of ``files`` at their targets (relative to /), owned by root with their mode. Folders that do not
    exist yet are made by Docker (0755, root); ones that exist keep their owner and mode."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in files:
            info = tarfile.TarInfo(f.target.lstrip("/"))
            info.size, info.mode, info.uid, info.gid, info.uname, info.gname = len(f.content), f.mode, 0, 0, "", ""
            tar.addfile(info, io.BytesIO(f.content))
    return buf.getvalue()


def published_port(info: dict[str, Any], container_port: int, protocol: str = "tcp") -> tuple[str, int] | None:
    """(host ip, host port) that ``container_port`` is published on, from inspect data."""
    ports = ((info.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{container_port}/{protocol}") or []
    for binding in ports:
        ip = binding.get("HostIp") or "127.0.0.1"
        try:
            if ipaddress.ip_address(ip).is_unspecified:
                ip = "127.0.0.1"
        except ValueError:
            pass
        if binding.get("HostPort"):
            return ip, int(binding["HostPort"])
    return None
