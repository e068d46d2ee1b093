"""A Docker Swarm cluster, reached through one of its managers (a Host with ``mode: swarm``): the services of a
project as gitops makes them (gitops.core.swarm builds their spec), their secrets and configs, and the follow-up
Swarm itself does not give: waiting until a rollout converged, and telling a rollback or a pause from success.

Swarm reports a rollout in ``UpdateStatus`` (``updating`` -> ``completed``, or ``paused`` /
``rollback_started`` -> ``rollback_completed``) and each task's state; a task with a health check stays
``starting`` until it is healthy. ``converge`` follows both until every desired task runs on the new spec, and
calls it a failure, with the failing tasks' errors and the service's last log lines, when Swarm paused, rolled
back, or the deadline passed (then it asks Swarm to roll back itself, if Swarm did not).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gitops.core.images import parse_image
from gitops.core.model import (
    LABEL_DEPENDS_ON,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_PROJECT,
    LABEL_REVISION,
    LABEL_SERVICE,
    LABEL_SPEC,
    LABEL_SPEC_HASH,
    HostObservation,
    NetworkSpec,
    ObservedObject,
    ObservedSwarmService,
    ServiceSpec,
    VolumeSpec,
)
from gitops.core.swarm import LABEL_SWARM_HASH, file_labels, omit_empty, swarm_files, swarm_hash
from gitops.errors import HostError, NotFound
from gitops.hosts.docker import DockerHost, host_text

LOG_LIMIT = 64 * 1024  # bytes of a service's last log lines read as evidence
POLL = 0.5  # seconds between looks at a rollout; Swarm itself updates task states about as often
EnvValue = Callable[[str, str, str], str]  # (service, variable, value) -> what stands for it in the hash


@dataclass(frozen=True)
class Convergence:
    """How a rollout ended: ``converged``, ``rolled_back`` (by Swarm or by gitops), ``paused`` or ``failed``."""

    status: str
    message: str = ""
    task_errors: tuple[str, ...] = ()
    logs: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "converged"


def _plain(service: str, name: str, value: str) -> str:
    return value


class SwarmCluster(DockerHost):
    """A Swarm manager's Engine API. The calls about containers are the Docker host's; these are the services'.

    ``env_value`` says what stands for a variable's value in the hand-change hash (see core.swarm.swarm_hash):
    the engine sets it from the desired state, so that secret values are compared by their keyed digests."""

    env_value: EnvValue = staticmethod(_plain)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._networks_seen: list[dict[str, Any]] | None = None  # one network list per observation
        self._view_lock = threading.Lock()  # one look at the rollouts in progress, shared (_rollout_view)
        self._following: set[str] = set()
        self._view_services: dict[str, dict[str, Any]] = {}
        self._view_tasks: list[dict[str, Any]] = []
        self._view_at = 0.0

    def observe(self, project: str, *, want_networks: Iterable[str] = (),
                want_volumes: Iterable[str] = ()) -> HostObservation:
        """The project's Swarm services (one list call), their tasks (one more), networks, secrets and configs.
        Never raises: an unreachable manager, or an engine that is no Swarm manager, is reported as such."""
        try:
            services = self.observe_services(project, self.env_value)
            networks = [ObservedObject(self.name, "network", (n.get("Labels") or {}).get(LABEL_NAME, ""), n["Name"],
                                       (n.get("Labels") or {}).get(LABEL_SPEC_HASH, ""))
                        for n in self._network_list() if (n.get("Labels") or {}).get(LABEL_PROJECT) == project]
            files = self._list_files(project)
        except HostError as exc:
            return HostObservation(self.name, False, str(exc).removeprefix(f"{self.name}: "), swarm=True)
        return HostObservation(self.name, True, "", (), tuple(networks), (), True, services, tuple(files))

    def observe_services(self, project: str, env_value: EnvValue = _plain) -> tuple[ObservedSwarmService, ...]:
        """The project's services, in one list call, and their tasks in one more. ``env_value(service, name,
        value)`` gives what stands for a variable in the hand-change hash: the keyed digest for a secret one."""
        self._networks_seen = None  # listed again for each observation
        try:
            listed = self._call("list services", self.client.services,
                                filters=_owned_by(project))
        except HostError as exc:
            if "not a swarm manager" in str(exc).lower() or "swarm mode" in str(exc).lower():
                raise HostError(self.name, "this engine is not a Swarm manager (the Host says mode: swarm): run "
                                "`docker swarm init` there, or point the Host at a manager") from exc
            raise
        tasks: list[dict[str, Any]] = []
        if listed:
            tasks = list(self._call("list tasks", self.client.tasks,
                                    filters={"service": [item["ID"] for item in listed]}))
        by_service: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            by_service.setdefault(str(task.get("ServiceID", "")), []).append(task)
        names = {str(n["Id"]): str(n["Name"]) for n in self._network_list()} if listed else {}
        return tuple(sorted((self._observed_service(item, env_value, by_service.get(item["ID"], []), names)
                             for item in listed), key=lambda o: (o.service, o.name)))

    def _network_list(self) -> list[dict[str, Any]]:
        """Every network of the cluster, once per observation: Swarm reads a service's networks back by id."""
        if self._networks_seen is None:
            self._networks_seen = list(self._call("list networks", self.client.networks))
        return self._networks_seen

    def _observed_service(self, item: dict[str, Any], env_value: EnvValue, tasks: list[dict[str, Any]],
                          network_names: dict[str, str]) -> ObservedSwarmService:
        spec = item.get("Spec") or {}
        labels = spec.get("Labels") or {}
        service = labels.get(LABEL_SERVICE, "")
        actual = swarm_hash(_as_sent(spec, network_names), lambda name, value: env_value(service, name, value))
        status = item.get("UpdateStatus") or {}
        mode = (spec.get("Mode") or {}).get("Replicated") or {}
        template = spec.get("TaskTemplate") or {}
        running = [t for t in tasks if _runs(t, template)]
        errors = sorted((t for t in tasks if (t.get("Status") or {}).get("Err") and not _runs(t, template)),
                        key=lambda t: str((t.get("Status") or {}).get("Timestamp", "")), reverse=True)
        return ObservedSwarmService(
            host=self.name, id=item["ID"], name=spec.get("Name", ""), service=service,
            version=int((item.get("Version") or {}).get("Index", 0)), spec_hash=labels.get(LABEL_SPEC_HASH, ""),
            swarm_hash=labels.get(LABEL_SWARM_HASH, ""), revision=labels.get(LABEL_REVISION, ""),
            spec_json=labels.get(LABEL_SPEC, ""),
            hand_changed=bool(labels.get(LABEL_SWARM_HASH)) and actual != labels.get(LABEL_SWARM_HASH),
            update_state=str(status.get("State", "")), update_message=host_text(str(status.get("Message", ""))),
            replicas=int(mode.get("Replicas", 0)), running=len(running),
            task_error=host_text(str(errors[0]["Status"]["Err"])) if errors else "",
            depends_on=tuple(d for d in labels.get(LABEL_DEPENDS_ON, "").split(",") if d))

    def _list_files(self, project: str) -> list[ObservedObject]:
        out = []
        for kind, fn in (("secret", self.client.secrets), ("config", self.client.configs)):
            for item in self._call(f"list {kind}s", fn, filters={"label": f"{LABEL_PROJECT}={project}"}):
                labels = (item.get("Spec") or {}).get("Labels") or {}
                if labels.get(LABEL_MANAGED) == "true" and labels.get(LABEL_KIND) == f"swarm-{kind}":
                    out.append(ObservedObject(self.name, kind, labels.get(LABEL_SERVICE, ""),  # type: ignore[arg-type]
                                              (item.get("Spec") or {}).get("Name", ""), id=str(item.get("ID", ""))))
        return sorted(out, key=lambda o: (o.kind, o.docker_name))

    # -- what Swarm does itself: images are pulled by the nodes, volumes made by the tasks that mount them ------
    def ensure_image(self, image: str, policy: str) -> None:
        return None

    def create_volume(self, project: str, vol: VolumeSpec) -> None:
        return None

    def _network_driver(self, net: NetworkSpec) -> tuple[str, bool]:
        # A network that spans the cluster's nodes is an overlay; attachable so that `docker run --network`
        # (a one-off task, a debugging container) can join it as on a plain host.
        return ("overlay" if net.driver == "bridge" else net.driver), True

    def registry_auth(self, image: str) -> dict[str, str] | None:
        """The credentials the nodes pull ``image`` with (sent as X-Registry-Auth with the spec), if any."""
        if self.registries is None:
            return None
        try:
            ref = parse_image(image)
        except ValueError as exc:
            raise HostError(self.name, f"image {image}: {exc}") from exc
        creds = self.registries.credentials_for(ref.registry)
        return dict(creds.auth_config()) if creds else None

    def inspect_service(self, service_id: str) -> dict[str, Any]:
        return dict(self._call("inspect service", self.client.inspect_service, service_id))

    # -- secrets and configs, named by their content ---------------------------------------------------------
    def ensure_files(self, project: str, svc: ServiceSpec) -> dict[str, str]:
        """Create the secrets and configs ``svc`` mounts that do not exist yet; name -> id of each.

        A name is known in advance (a config's comes from its content), so an object found under it is only
        used when it is certainly ours: a config whose data is the content, a secret that a service of the
        project mounts already. Any other one with the project's labels is removed and made again from the
        content; one without them is refused."""
        ids: dict[str, str] = {}
        used = self._files_in_use(project) if any(f.secret for f in svc.files) else set()
        for item in swarm_files(project, svc):
            secret = item.kind == "secret"
            fn_list, fn_create, fn_remove = (
                (self.client.secrets, self.client.create_secret, self.client.remove_secret) if secret
                else (self.client.configs, self.client.create_config, self.client.remove_config))
            found = [f for f in self._call(f"list {item.kind}s", fn_list, filters={"name": item.name})
                     if (f.get("Spec") or {}).get("Name") == item.name]
            if found:
                spec = found[0].get("Spec") or {}
                labels = spec.get("Labels") or {}
                if labels.get(LABEL_PROJECT) != project or labels.get(LABEL_MANAGED) != "true":
                    raise HostError(self.name, f"a {item.kind} named {item.name} exists and is not managed by "
                                    f"project {project}; gitops never adopts it")
                ours = (item.name in used) if secret else (
                    base64.b64decode(str(spec.get("Data") or "")) == item.file.content)
                if ours:
                    ids[item.name] = str(found[0]["ID"])
                    continue
                self._call(f"remove {item.kind} {item.name} (not made from this content)", fn_remove,
                           str(found[0]["ID"]))
            made = self._call(f"create {item.kind} {item.name}", fn_create, item.name, item.file.content,
                              labels=file_labels(project, svc, item))
            ids[item.name] = str(made["ID"])
        return ids

    def _files_in_use(self, project: str) -> set[str]:
        """The secrets and configs the project's services mount, in their spec or their previous spec (what a
        rollback returns to)."""
        used: set[str] = set()
        listed = self._call("list services", self.client.services,
                            filters=_owned_by(project))
        for item in listed:
            for spec in (item.get("Spec") or {}, item.get("PreviousSpec") or {}):
                container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
                used |= {str(r.get("SecretName")) for r in container.get("Secrets") or []}
                used |= {str(r.get("ConfigName")) for r in container.get("Configs") or []}
        return used

    def remove_unused_files(self, project: str) -> list[str]:
        """Remove the project's secrets and configs no service of the project mounts any more (Swarm cannot change
        them in place, so each change leaves the old one behind). The executor calls it once every unit of an
        apply is done, so no service is about to mount one. Returns the names removed."""
        used = self._files_in_use(project)
        removed = []
        for found in self._list_files(project):
            if found.docker_name in used:
                continue
            fn = self.client.remove_secret if found.kind == "secret" else self.client.remove_config
            try:
                self._call(f"remove {found.kind} {found.docker_name}", fn, found.id)
                removed.append(found.docker_name)
            except HostError:
                continue  # gone already, or still in use by a task that is stopping: the next pass removes it
        return removed

    def _with_ids(self, project: str, svc: ServiceSpec | None, spec: dict[str, Any]) -> dict[str, Any]:
        if svc is None or not svc.files:
            return spec
        ids = self.ensure_files(project, svc)
        container = dict(spec["TaskTemplate"]["ContainerSpec"])
        for key, kind in (("Secrets", "Secret"), ("Configs", "Config")):
            if key in container:
                container[key] = [{**ref, f"{kind}ID": ids[ref[f"{kind}Name"]]} for ref in container[key]]
        return {**spec, "TaskTemplate": {**spec["TaskTemplate"], "ContainerSpec": container}}

    def create_service(self, spec: dict[str, Any], *, auth: dict[str, str] | None = None, project: str = "",
                       svc: ServiceSpec | None = None) -> str:
        """Create the service; its id. ``auth``: registry credentials the nodes pull with (X-Registry-Auth).
        With ``svc``, the secrets and configs it mounts are created first."""
        spec = self._with_ids(project, svc, spec)
        headers = {"X-Registry-Auth": docker_auth_header(auth)} if auth else {}
        answer = self._call(f"create service {spec['Name']}", self._post, "/services/create", spec, headers=headers)
        return str(answer["ID"])

    def update_service(self, service_id: str, version: int, spec: dict[str, Any], *,
                       auth: dict[str, str] | None = None, project: str = "", svc: ServiceSpec | None = None) -> None:
        spec = self._with_ids(project, svc, spec)
        headers = {"X-Registry-Auth": docker_auth_header(auth)} if auth else {}
        self._call(f"update service {spec['Name']}", self._post, f"/services/{service_id}/update", spec,
                   params={"version": version}, headers=headers)

    def rollback_service(self, service_id: str) -> None:
        """Ask Swarm to put back the previous spec (`docker service rollback`), with the RollbackConfig."""
        info = self._call("inspect service", self.client.inspect_service, service_id)
        self._call(f"roll back service {info['Spec'].get('Name', service_id)}", self._post,
                   f"/services/{service_id}/update", info["Spec"],
                   params={"version": info["Version"]["Index"], "rollback": "previous"})

    def remove_service(self, service_id: str) -> None:
        try:
            self._call("remove service", self.client.remove_service, service_id)
        except NotFound:
            return  # gone is done

    def _post(self, path: str, data: dict[str, Any], *, params: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> Any:
        # docker-py's create_service/update_service take the spec piece by piece and drop what they do not know;
        # gitops builds the whole ServiceSpec (gitops.core.swarm), so it is sent as the Engine API documents it.
        client = self.client
        response = client._post_json(client._url(path), data=data, params=params or {}, headers=headers or {})
        return client._result(response, json=True)

    # -- following a rollout ---------------------------------------------------------------------------------
    def converge(self, service_id: str, *, deadline: float, cancel: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic, roll_back: bool = True) -> Convergence:
        """Wait until every desired task of the service runs (healthy, on its current spec), or it failed.
        ``roll_back``: when the deadline passes during an update, ask Swarm to roll back (failureAction:
        rollback); else leave it as it is (pause), and report the failure either way."""
        with self._view_lock:
            self._following.add(service_id)
        try:
            return self._converge(service_id, deadline, cancel, clock, roll_back)
        finally:
            with self._view_lock:
                self._following.discard(service_id)

    def _converge(self, service_id: str, deadline: float, cancel: threading.Event | None,
                  clock: Callable[[], float], roll_back: bool) -> Convergence:
        rolled_back_by_us = False
        since = time.monotonic()  # a look taken before this (before the update was sent) says nothing of it
        while True:
            info, tasks = self._rollout_view(service_id, since)
            state = str((info.get("UpdateStatus") or {}).get("State", ""))
            message = host_text(str((info.get("UpdateStatus") or {}).get("Message", "")))
            if state == "rollback_completed":
                return self._failure(service_id, "rolled_back", f"Swarm rolled the update back: {message}"
                                     if not rolled_back_by_us else f"rolled back by gitops: {message}")
            if state in ("paused", "rollback_paused"):
                return self._failure(service_id, "paused", f"Swarm paused the update: {message}")
            if state in ("", "completed") and not rolled_back_by_us and self._all_running(info, tasks):
                return Convergence("converged")
            timed_out = clock() >= deadline or (cancel is not None and cancel.is_set())
            if timed_out and not rolled_back_by_us:
                if state in ("updating", "completed") and roll_back:
                    self.rollback_service(service_id)  # Swarm did not: gitops does, and waits for it to finish
                    rolled_back_by_us = True
                    deadline = clock() + 60
                else:
                    return self._failure(service_id, "failed", "the tasks did not all run healthy in time")
            elif timed_out:
                return self._failure(service_id, "failed", "the rollback did not finish in time")
            if cancel is not None:
                cancel.wait(POLL)
            else:
                time.sleep(POLL)

    def _tasks(self, service_id: str) -> list[dict[str, Any]]:
        return list(self._call("list tasks", self.client.tasks, filters={"service": service_id}))

    def _rollout_view(self, service_id: str, since: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The service and its tasks, as one look shared by every rollout this connection follows: a deploy of
        many services asks the manager two questions per poll, not two per service (which, 20 at a time, slows
        the manager that is placing the very tasks being waited for)."""
        with self._view_lock:
            stale = time.monotonic() - self._view_at >= POLL * 0.8 or self._view_at < since
            if stale or service_id not in self._view_services:
                ids = sorted(self._following | {service_id})
                self._view_at = time.monotonic()  # before asking: what happens meanwhile is not in this look
                listed = self._call("list services", self.client.services, filters={"id": ids})
                self._view_services = {str(s["ID"]): s for s in listed if str(s["ID"]) in ids}
                self._view_tasks = list(self._call("list tasks", self.client.tasks, filters={"service": ids}))
            info = self._view_services.get(service_id)
            tasks = [t for t in self._view_tasks if t.get("ServiceID") == service_id]
        if info is None:
            raise HostError(self.name, f"service {host_text(service_id)} is gone while its rollout was followed")
        return info, tasks

    def _all_running(self, info: dict[str, Any], tasks: list[dict[str, Any]]) -> bool:
        wanted = int((((info.get("Spec") or {}).get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0))
        template = (info.get("Spec") or {}).get("TaskTemplate") or {}
        return len([t for t in tasks if _runs(t, template)]) == wanted

    def _failure(self, service_id: str, status: str, message: str) -> Convergence:
        errors = []
        for task in self._tasks(service_id):
            err = (task.get("Status") or {}).get("Err") or ""
            if err:
                errors.append(host_text(f"task {task.get('Slot', '?')}: {err}"))
        return Convergence(status, message, tuple(dict.fromkeys(errors))[:5], self.service_logs(service_id))

    def service_logs(self, service_id: str, *, tail: int = 20) -> str:
        try:
            raw = self.client.service_logs(service_id, stdout=True, stderr=True, tail=tail, follow=False)
            if isinstance(raw, bytes):
                data = raw[-LOG_LIMIT:]
            else:
                chunks, size = [], 0
                for chunk in raw:  # tail counts lines per task: a task that writes huge lines is cut here
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > LOG_LIMIT:
                        break
                data = b"".join(chunks)[-LOG_LIMIT:]
        except Exception:  # noqa: BLE001 - logs are evidence, not a reason to fail
            return ""
        return host_text(data.decode("utf-8", "replace"), limit=4000)


def _owned_by(project: str) -> dict[str, list[str]]:
    """The list filter for what gitops made for ``project`` (its services)."""
    return {"label": [f"{LABEL_PROJECT}={project}", f"{LABEL_MANAGED}=true"]}


def _task_spec(spec: dict[str, Any]) -> str:
    """A task template as compared between a task and its service (a task carries a copy of the template it was
    made from): the whole of it, so that a change of placement, networks or restart policy is waited for too, with
    what Swarm fills in on either side left out."""
    template = {k: v for k, v in spec.items() if k not in ("ForceUpdate", "Runtime")}
    container = {k: v for k, v in (template.get("ContainerSpec") or {}).items() if k != "Isolation"}
    for key, id_key in (("Secrets", "SecretID"), ("Configs", "ConfigID")):
        if key in container:
            container[key] = [{k: v for k, v in ref.items() if k != id_key} for ref in container[key]]
    template["ContainerSpec"] = container
    return json.dumps(omit_empty(template), sort_keys=True)


def _runs(task: dict[str, Any], template: dict[str, Any]) -> bool:
    """A task that runs (healthy, when it has a health check) on the service's current task template."""
    return (task.get("DesiredState") == "running" and (task.get("Status") or {}).get("State") == "running"
            and _task_spec(task.get("Spec") or {}) == _task_spec(template))


def _as_sent(spec: dict[str, Any], network_names: dict[str, str] | None = None) -> dict[str, Any]:
    """A spec read back, with what Swarm adds itself removed and network ids named again, so that it hashes as
    gitops sent it."""
    task = dict(spec.get("TaskTemplate") or {})
    if task.get("Networks"):
        names = network_names or {}
        task["Networks"] = [{**n, "Target": names.get(str(n.get("Target")), n.get("Target"))}
                            for n in task["Networks"]]
    task.pop("ForceUpdate", None)
    task.pop("Runtime", None)
    container = dict(task.get("ContainerSpec") or {})
    container.pop("Isolation", None)
    for key, id_key in (("Secrets", "SecretID"), ("Configs", "ConfigID")):
        if key in container:
            container[key] = [{k: v for k, v in ref.items() if k != id_key} for ref in container[key]]
    task["ContainerSpec"] = container
    out = {k: v for k, v in spec.items() if k in ("Name", "Labels", "Mode", "UpdateConfig", "RollbackConfig",
                                                   "EndpointSpec")}
    out["TaskTemplate"] = task
    return out


def docker_auth_header(auth: dict[str, str]) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()
