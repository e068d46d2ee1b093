"""A Docker Swarm cluster, reached through one of its managers: the services of a project, as gitops makes them
(gitops.core.swarm builds their spec), and the follow-up Swarm itself does not give: waiting until a rollout
converged, and telling a rollback or a pause from success.

Part of issue 13; the planner and the executor do not use it yet (a Host with ``mode: swarm`` is still refused),
so only its tests on a real two-node cluster (tests/test_swarm_driver.py) call it.

Swarm reports a rollout in ``UpdateStatus`` (``updating`` -> ``completed``, or ``paused`` /
``rollback_started`` -> ``rollback_completed``) and each task's state; a task with a health check stays
``starting`` until it is healthy. ``converge`` follows both until every desired task runs on the new spec, and
calls it a failure, with the failing tasks' errors and the service's last log lines, when Swarm paused, rolled
back, or the deadline passed (then it asks Swarm to roll back itself, if Swarm did not).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gitops.core.model import LABEL_MANAGED, LABEL_PROJECT, LABEL_REVISION, LABEL_SERVICE, LABEL_SPEC, LABEL_SPEC_HASH
from gitops.core.swarm import LABEL_SWARM_HASH, swarm_hash
from gitops.hosts.docker import DockerHost, host_text

POLL = 0.5  # seconds between looks at a rollout; Swarm itself updates task states about as often


@dataclass(frozen=True)
class ObservedSwarmService:
    """A project's Swarm service as one list call shows it."""

    id: str
    name: str  # the Swarm service's name
    service: str  # the gitops service
    version: int  # Swarm's object version, which an update must name
    spec_hash: str  # LABEL_SPEC_HASH as gitops wrote it
    revision: str
    spec_json: str  # LABEL_SPEC: the canonical spec, for field-level diffs
    hand_changed: bool  # the spec read back hashes otherwise than gitops sent it (docker service update)
    update_state: str  # "" (never updated) | updating | paused | completed | rollback_started | ...
    update_message: str
    replicas: int


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


class SwarmCluster(DockerHost):
    """A Swarm manager's Engine API. The calls about containers are the Docker host's; these are the services'."""

    def observe_services(self, project: str, env_value: Callable[[str, str, str], str]
                         ) -> tuple[ObservedSwarmService, ...]:
        """The project's services, in one list call. ``env_value(service, name, value)`` gives what stands for a
        variable in the hand-change hash: the keyed digest for a secret one (see gitops.core.swarm.swarm_hash)."""
        listed = self._call("list services", self.client.services,
                            filters={"label": [f"{LABEL_PROJECT}={project}", f"{LABEL_MANAGED}=true"]})
        return tuple(self._observed_service(item, env_value) for item in listed)

    def _observed_service(self, item: dict[str, Any], env_value: Callable[[str, str, str], str]
                          ) -> ObservedSwarmService:
        spec = item.get("Spec") or {}
        labels = spec.get("Labels") or {}
        service = labels.get(LABEL_SERVICE, "")
        sent = {**spec, "Labels": labels}
        actual = swarm_hash(_as_sent(sent), lambda name, value: env_value(service, name, value))
        status = item.get("UpdateStatus") or {}
        mode = (spec.get("Mode") or {}).get("Replicated") or {}
        return ObservedSwarmService(
            id=item["ID"], name=spec.get("Name", ""), service=service,
            version=int((item.get("Version") or {}).get("Index", 0)), spec_hash=labels.get(LABEL_SPEC_HASH, ""),
            revision=labels.get(LABEL_REVISION, ""), spec_json=labels.get(LABEL_SPEC, ""),
            hand_changed=bool(labels.get(LABEL_SWARM_HASH)) and actual != labels.get(LABEL_SWARM_HASH),
            update_state=str(status.get("State", "")), update_message=host_text(str(status.get("Message", ""))),
            replicas=int(mode.get("Replicas", 0)))

    def create_service(self, spec: dict[str, Any], *, auth: dict[str, str] | None = None) -> str:
        """Create the service; its id. ``auth``: registry credentials the nodes pull with (X-Registry-Auth)."""
        headers = {"X-Registry-Auth": docker_auth_header(auth)} if auth else {}
        answer = self._call(f"create service {spec['Name']}", self._post, "/services/create", spec, headers=headers)
        return str(answer["ID"])

    def update_service(self, service_id: str, version: int, spec: dict[str, Any], *,
                       auth: dict[str, str] | None = None) -> None:
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
        self._call("remove service", self.client.remove_service, service_id)

    def _post(self, path: str, data: dict[str, Any], *, params: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> Any:
        # docker-py's create_service/update_service take the spec piece by piece and drop what they do not know;
        # gitops builds the whole ServiceSpec (gitops.core.swarm), so it is sent as the Engine API documents it.
        client = self.client
        response = client._post_json(client._url(path), data=data, params=params or {}, headers=headers or {})
        return client._result(response, json=True)

    # -- following a rollout ---------------------------------------------------------------------------------
    def converge(self, service_id: str, *, deadline: float, cancel: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic) -> Convergence:
        """Wait until every desired task of the service runs (healthy, on its current spec), or it failed."""
        rolled_back_by_us = False
        while True:
            info = self._call("inspect service", self.client.inspect_service, service_id)
            state = str((info.get("UpdateStatus") or {}).get("State", ""))
            message = host_text(str((info.get("UpdateStatus") or {}).get("Message", "")))
            if state == "rollback_completed":
                return self._failure(service_id, "rolled_back", f"Swarm rolled the update back: {message}"
                                     if not rolled_back_by_us else f"rolled back by gitops: {message}")
            if state in ("paused", "rollback_paused"):
                return self._failure(service_id, "paused", f"Swarm paused the update: {message}")
            if state in ("", "completed") and not rolled_back_by_us and self._all_running(service_id, info):
                return Convergence("converged")
            timed_out = clock() >= deadline or (cancel is not None and cancel.is_set())
            if timed_out and not rolled_back_by_us:
                if state in ("updating", "completed"):
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

    def _all_running(self, service_id: str, info: dict[str, Any]) -> bool:
        wanted = int((((info.get("Spec") or {}).get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0))
        image = ((info.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec", {}).get("Image")
        running = [t for t in self._tasks(service_id)
                   if (t.get("DesiredState") == "running" and (t.get("Status") or {}).get("State") == "running"
                       and ((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Image") == image)]
        return len(running) >= wanted

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
            data = b"".join(raw) if not isinstance(raw, bytes) else raw
        except Exception:  # noqa: BLE001 - logs are evidence, not a reason to fail
            return ""
        return host_text(data.decode("utf-8", "replace"), limit=4000)


def _as_sent(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec read back, with what Swarm adds itself removed, so that it hashes as gitops sent it."""
    task = dict(spec.get("TaskTemplate") or {})
    task.pop("ForceUpdate", None)
    task.pop("Runtime", None)
    container = dict(task.get("ContainerSpec") or {})
    container.pop("Isolation", None)
    task["ContainerSpec"] = container
    out = {k: v for k, v in spec.items() if k in ("Name", "Labels", "Mode", "UpdateConfig", "RollbackConfig",
                                                   "EndpointSpec")}
    out["TaskTemplate"] = task
    return out


def docker_auth_header(auth: dict[str, str]) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()
