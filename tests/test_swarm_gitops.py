"""gitops on a real two-node Swarm cluster (scripts/swarm-cluster.sh), used as people use it: a Host with
``mode: swarm``, then ``gitops apply``, ``plan``, ``status`` and the daemon, whole processes.

Shown here: placement on the worker by node label; a rollout followed to convergence; a failing health check
rolled back by Swarm and reported as rolled back (never converged); a hand change (`docker service update`) put
back by the daemon; secrets and configs by content, old ones removed; prune; the worker stopped, its tasks moved
by Swarm to the manager and gitops calling the service converged without touching it; a start-first update with a
client probing every 50 ms over the overlay network and not one failed request.

No routing mesh here: this kernel has no IPVS (see tests/swarmutil.py), so the Host uses ``endpointMode: dnsrr``
and ``publishMode: host``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from pathlib import Path

import docker.errors
import pytest

from tests.conftest import service
from tests.daemonutil import DaemonProcess
from tests.hostile import run_gitops

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

CHECK = "healthcheck: {exec: [sh, -c, 'test -f /www/index.html'], interval: 300ms, timeout: 1s, retries: 2}"
FAILING = "healthcheck: {exec: [sh, -c, 'echo db refused; exit 1'], interval: 300ms, timeout: 1s, retries: 2}"
DEADLINE = 90.0


def host_doc(name: str = "cluster") -> str:
    return (f"apiVersion: gitops/v1\nkind: Host\nmetadata: {{name: {name}}}\nspec:\n"
            "  url: unix:///var/run/docker.sock\n  mode: swarm\n"
            "  swarm: {endpointMode: dnsrr, publishMode: host}\n")


def project_doc(project: str) -> str:
    return f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project}}}\nspec: {{prune: true}}\n"


NETWORK = "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: backend}\nspec: {}\n"
VOLUME = "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: data}\nspec: {labels: {tier: db}}\n"


def write(folder: Path, files: dict[str, str | None]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = folder / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    return folder


def web(body: str = "", *, image: str = "local/web:1", replicas: int = 2, check: str = CHECK) -> str:
    return service("web", f"replicas: {replicas}\ninit: true\nstopGracePeriod: 1s\nnetworks: [backend]\n"
                          f"placement: {{nodeSelector: {{zone: b}}}}\n{check}\n{body}", image=image)


def gitops(tmp: Path, *args: str, timeout: float = 180) -> tuple[int, str]:
    done = run_gitops(*args, tmp=tmp, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def swarm_project(swarm_cluster, project_name, tmp_path):
    """A project name whose Swarm services, secrets, configs and networks are removed after the test."""
    yield project_name
    client = swarm_cluster["manager"]
    label = f"io.gitops.project={project_name}"
    for item in client.services.list(filters={"label": label}):
        item.remove()
    deadline = time.monotonic() + 60
    while client.containers.list(all=True, filters={"label": label}) and time.monotonic() < deadline:
        time.sleep(0.2)  # the tasks' containers go away after the service (no sleep decides a result here)
    api = client.api
    for listed, remove in ((api.secrets, api.remove_secret), (api.configs, api.remove_config),
                           (api.networks, api.remove_network)):
        for obj in listed(filters={"label": label}):
            with contextlib.suppress(docker.errors.APIError):  # held by a task still stopping: the cluster's stop
                remove(obj.get("ID") or obj.get("Id"))


def tasks_of(client, name: str) -> list[dict]:
    return [t for t in client.api.tasks(filters={"service": name, "desired-state": "running"})
            if t["Status"]["State"] == "running"]


def wait(check, what: str, deadline: float = DEADLINE):  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"waited {deadline:.0f} s for {what}")
        time.sleep(0.2)


def status_of(tmp: Path, folder: Path, state: Path, name: str = "web") -> dict:
    code, out = gitops(tmp, "status", "--format", "json", "--state-dir", str(state), str(folder))
    assert code == 0, out
    return next(s for s in json.loads(out[out.index("{"):])["services"] if s["name"] == name)


def test_apply_places_by_node_label_updates_in_place_and_a_failing_health_check_is_rolled_back(
        swarm_cluster, swarm_project, tmp_path) -> None:
    manager = swarm_cluster["manager"]
    state = tmp_path / "state"
    mount = "mounts: [{type: volume, source: data, target: /data}]"
    folder = write(tmp_path / "repo", {"project.yaml": project_doc(swarm_project), "host.yaml": host_doc(),
                                       "net.yaml": NETWORK, "vol.yaml": VOLUME, "web.yaml": web(mount)})
    code, out = gitops(tmp_path, "plan", "--state-dir", str(state), str(folder))
    assert code == 0 and "web on cluster" in out and "new Swarm service" in out, out

    code, out = gitops(tmp_path, "apply", "-y", "--state-dir", str(state), str(folder))
    assert code == 0, out
    name = f"{swarm_project}_web"
    running = tasks_of(manager, name)
    assert [t["NodeID"] for t in running] == [swarm_cluster["worker_node_id"]] * 2  # zone=b is the worker
    info = manager.api.inspect_service(name)
    assert info["Spec"]["Labels"]["io.gitops.project"] == swarm_project
    net = manager.networks.get(f"{swarm_project}_backend")
    assert net.attrs["Driver"] == "overlay" and net.attrs["Attachable"] is True
    volume = swarm_cluster["worker"].volumes.get(f"{swarm_project}_data")  # made by the node that runs the tasks
    assert volume.attrs["Labels"]["io.gitops.project"] == swarm_project and volume.attrs["Labels"]["tier"] == "db"
    code, out = gitops(tmp_path, "plan", "--state-dir", str(state), str(folder))
    assert code == 0 and "No changes" in out, out  # what was sent reads back as sent
    seen = status_of(tmp_path, folder, state)
    assert seen["replicas"]["running"] == 2 and seen["replicas"]["up_to_date"] == 2, seen
    assert seen["last_outcome"] == "converged" and seen["swarm"]["service"] == name

    # a change is shown field by field, and Swarm updates the service in place (same id)
    write(folder, {"web.yaml": web(f"{mount}\nenv: {{GREETING: hello}}", image="local/web:2")})
    code, out = gitops(tmp_path, "plan", "--state-dir", str(state), str(folder))
    assert "env.GREETING: (none) -> hello" in out and "image: local/web:1 -> local/web:2" in out, out
    code, out = gitops(tmp_path, "apply", "-y", "--state-dir", str(state), str(folder))
    assert code == 0, out
    assert manager.api.inspect_service(name)["ID"] == info["ID"]
    assert {t["Spec"]["ContainerSpec"]["Image"] for t in tasks_of(manager, name)} == {"local/web:2"}
    version = manager.api.inspect_service(name)["Version"]["Index"]

    # a failing health check: Swarm rolls back, and gitops says so (exit 1, rolled_back, the task's error)
    write(folder, {"web.yaml": web(f"{mount}\nenv: {{GREETING: broken}}", image="local/web:1", check=FAILING)})
    code, out = gitops(tmp_path, "apply", "-y", "--state-dir", str(state), str(folder))
    assert code != 0, out
    assert "rolled_back" in out and "Swarm rolled the update back" in out and "unhealthy" in out, out
    after = manager.api.inspect_service(name)
    assert after["UpdateStatus"]["State"] == "rollback_completed"
    assert after["Version"]["Index"] > version
    assert {t["Spec"]["ContainerSpec"]["Image"] for t in tasks_of(manager, name)} == {"local/web:2"}
    seen = status_of(tmp_path, folder, state)
    assert seen["last_outcome"] == "rolled_back" and seen["replicas"]["up_to_date"] == 0, seen
    code, out = gitops(tmp_path, "status", "--state-dir", str(state), str(folder))
    assert f"Swarm service {name} on cluster (update rollback completed)" in out, out
    code, out = gitops(tmp_path, "history", "--state-dir", str(state))
    assert "rolled_back" in out, out

    # a placement change moves every task: apply returns once they all run where they now must, not before
    write(folder, {"web.yaml": web(f"{mount}\nenv: {{GREETING: hello}}", image="local/web:2")
                   .replace("zone: b", "zone: a")})
    code, out = gitops(tmp_path, "apply", "-y", "--state-dir", str(state), str(folder))
    assert code == 0 and "placement.constraints" in out, out
    assert [t["NodeID"] for t in tasks_of(manager, name)] == [swarm_cluster["manager_node_id"]] * 2


def test_secrets_and_configs_by_content_and_prune(swarm_cluster, swarm_project, tmp_path) -> None:
    manager, worker = swarm_cluster["manager"], swarm_cluster["worker"]
    state = tmp_path / "state"
    files = ("files:\n  - {source: token.txt, target: /run/secrets/token, secret: true, mode: '0400'}\n"
             "  - {source: app.conf, target: /etc/app.conf}")
    sidecar = service("sidecar", "command: [sleep, '3600']\ninit: true\nstopGracePeriod: 1s\n"
                                 "placement: {hosts: [cluster]}\ndependsOn: [{service: web, condition: healthy}]",
                      image="local/busybox:1")
    folder = write(tmp_path / "repo", {"project.yaml": project_doc(swarm_project), "host.yaml": host_doc(),
                                       "net.yaml": NETWORK, "web.yaml": web(files, replicas=1),
                                       "sidecar.yaml": sidecar, "token.txt": "token-one-canary\n",
                                       "app.conf": "listen 8080\n"})
    # someone who can make configs on the cluster makes one, with the project's labels, under the name gitops will
    # use (a config's name comes from its content): gitops does not mount it, it makes its own from the content
    predicted = f"{swarm_project}_web_" + hashlib.sha256(b"/etc/app.conf\0listen 8080\n").hexdigest()[:12]
    manager.configs.create(name=predicted, data=b"evil\n", labels={"io.gitops.managed": "true",
                                                                   "io.gitops.project": swarm_project})
    code, out = gitops(tmp_path, "apply", "-y", "--state-dir", str(state), str(folder))
    assert code == 0, out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"step"' in line]
    order = [(e["step"], e["status"]) for e in events if e.get("event") == "step"]
    # dependency waves as for containers: the sidecar's service is created once web converged
    assert order.index(("service/web@cluster", "done")) < order.index(("service/sidecar@cluster", "running")), order
    label = f"io.gitops.project={swarm_project}"
    (first,) = manager.secrets.list(filters={"label": label})
    assert first.name.startswith(f"{swarm_project}_web_")
    (config,) = manager.configs.list(filters={"label": label})

    def inside() -> str:
        (container,) = worker.containers.list(filters={"label": f"com.docker.swarm.service.name={swarm_project}_web"})
        return container.exec_run(["sh", "-c", "cat /run/secrets/token /etc/app.conf"]).output.decode()

    assert inside() == "token-one-canary\nlisten 8080\n"

    # a new content is a new secret (Swarm cannot change one in place); the plan never shows the value
    write(folder, {"token.txt": "token-two-canary\n"})
    code, out = gitops(tmp_path, "plan", "--state-dir", str(state), str(folder))
    assert "files./run/secrets/token: (secret changed)" in out and "canary" not in out, out
    code, out = gitops(tmp_path, "apply", "-y", "--state-dir", str(state), str(folder))
    assert code == 0, out
    wait(lambda: "token-two-canary" in inside(), "the new secret in the task")
    names = {s.name for s in manager.secrets.list(filters={"label": label})}
    assert first.name in names and len(names) == 2  # the old one stays while the previous spec (rollback) needs it
    # once the service moves on again, the secret nothing refers to any more is removed
    write(folder, {"app.conf": "listen 8081\n"})
    code, out = gitops(tmp_path, "apply", "-y", "--state-dir", str(state), str(folder))
    assert code == 0, out
    names = {s.name for s in manager.secrets.list(filters={"label": label})}
    assert first.name not in names and len(names) == 1, names
    configs = {c.id for c in manager.configs.list(filters={"label": label})}
    assert config.id in configs and len(configs) == 2  # the first config is the previous spec's, as above
    for item in manager.secrets.list(filters={"label": label}):
        assert "canary" not in json.dumps(item.attrs)

    # prune: a service no manifest declares any more is removed, and its secrets and configs with it
    write(folder, {"sidecar.yaml": None})
    code, out = gitops(tmp_path, "plan", "--state-dir", str(state), str(folder))
    assert "- sidecar on cluster remove: service no longer declared (prune is on)" in out, out
    code, out = gitops(tmp_path, "apply", "-y", "--state-dir", str(state), str(folder))
    assert code == 0, out
    assert [s.name for s in manager.services.list(filters={"label": label})] == [f"{swarm_project}_web"]
    write(folder, {"web.yaml": None, "token.txt": None, "app.conf": None})
    code, out = gitops(tmp_path, "apply", "-y", "--allow-empty", "--state-dir", str(state), str(folder))
    assert code == 0, out
    assert manager.services.list(filters={"label": label}) == []
    assert manager.secrets.list(filters={"label": label}) == []
    assert manager.configs.list(filters={"label": label}) == []


def test_the_daemon_puts_a_hand_change_back_and_the_worker_stopped_is_swarms_to_repair(
        swarm_cluster, swarm_project, tmp_path) -> None:
    from tests.swarmutil import start_cluster

    manager = swarm_cluster["manager"]
    folder = write(tmp_path / "repo", {"project.yaml": project_doc(swarm_project), "host.yaml": host_doc(),
                                       "net.yaml": NETWORK,
                                       "web.yaml": web().replace("nodeSelector: {zone: b}", "spread: [zone]")})
    name = f"{swarm_project}_web"
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "2s", "--no-webhooks", secret=None) as d:
        def converged() -> dict | None:
            found = next((s for s in d.status()["services"] if s["name"] == "web"), None)
            return found if found and found["replicas"]["up_to_date"] == 2 and found["last_outcome"] == "converged" \
                else None

        d.wait_for(converged, DEADLINE, "the daemon to converge web")
        seen = converged()
        assert seen is not None and seen["swarm"]["service"] == name
        nodes = sorted(t["NodeID"] for t in tasks_of(manager, name))
        assert nodes == sorted([swarm_cluster["manager_node_id"], swarm_cluster["worker_node_id"]])  # spread

        # changed by hand: seen by the next pass's list call and put back
        info = manager.api.inspect_service(name)
        task = info["Spec"]["TaskTemplate"]
        task["ContainerSpec"]["Env"] = [*task["ContainerSpec"].get("Env", []), "DEBUG=1"]
        manager.api.update_service(info["ID"], info["Version"]["Index"], task_template=task,
                                   name=info["Spec"]["Name"], labels=info["Spec"]["Labels"],
                                   mode=info["Spec"]["Mode"], networks=task.get("Networks"),
                                   endpoint_spec=info["Spec"].get("EndpointSpec"), fetch_current_spec=True)

        def put_back() -> bool:
            env = manager.api.inspect_service(name)["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") or []
            return "DEBUG=1" not in env

        d.wait_for(put_back, DEADLINE, "the daemon to put the declared spec back")
        d.wait_for(converged, DEADLINE, "converged again after the repair")
        repaired = [e for e in d.log_events("apply.change") if e.get("step") == "web"
                    and "changed by hand" in e.get("reason", "")]
        assert repaired, "the pass that put it back says why"

        # the worker's engine stops: Swarm moves its task to the manager, and gitops does nothing but report
        version = manager.api.inspect_service(name)["Version"]["Index"]
        passes = d.metric("gitops_passes_total")
        with open(swarm_cluster["worker_pidfile"]) as pidfile:
            os.kill(int(pidfile.read()), signal.SIGTERM)
        try:
            wait(lambda: [t["NodeID"] for t in tasks_of(manager, name)] == [swarm_cluster["manager_node_id"]] * 2,
                 "both tasks running on the manager", 120)
            d.wait_for(lambda: d.metric("gitops_passes_total") >= passes + 2, 30, "two passes since")
            d.wait_for(converged, DEADLINE, "the daemon to report web converged on the manager alone")
            assert manager.api.inspect_service(name)["Version"]["Index"] == version  # gitops sent no update
            assert d.status()["pending_changes"] == 0
        finally:
            start_cluster()


def test_start_first_update_with_a_probe_every_50ms_loses_no_request(swarm_cluster, swarm_project, tmp_path) -> None:
    """The issue asks for the probe through the routing mesh; without IPVS, the client probes the service by name
    over the overlay network (dnsrr: the name resolves to the tasks that are up), from a container on the
    manager, while gitops rolls both tasks on the worker to a new version."""
    manager = swarm_cluster["manager"]
    state = tmp_path / "state"
    body = "update: {order: start-first, minHealthyTime: 1s}"
    folder = write(tmp_path / "repo", {"project.yaml": project_doc(swarm_project), "host.yaml": host_doc(),
                                       "net.yaml": NETWORK, "web.yaml": web(body)})
    code, out = gitops(tmp_path, "apply", "-y", "--state-dir", str(state), str(folder))
    assert code == 0, out
    script = ("while [ ! -f /tmp/stop ]; do "
              "if out=$(timeout 2 wget -qO- http://web:8080/ 2>&1); then echo \"ok $out\"; else echo \"fail $out\"; fi; "
              "usleep 50000; done")
    probe = manager.containers.run("local/busybox:1", ["sh", "-c", script], network=f"{swarm_project}_backend",
                                   detach=True, labels={"io.gitops.project": swarm_project, "io.gitops.test": "probe"})
    try:
        wait(lambda: probe.logs().decode().count("ok web v1") >= 5, "the probe to reach web v1")
        write(folder, {"web.yaml": web(body, image="local/web:2")})
        code, out = gitops(tmp_path, "apply", "-y", "--state-dir", str(state), str(folder))
        assert code == 0, out
        wait(lambda: probe.logs().decode().splitlines()[-3:] == ["ok web v2"] * 3, "the probe to see web v2")
        probe.exec_run(["touch", "/tmp/stop"])
        probe.wait(timeout=30)
        lines = probe.logs().decode().splitlines()
    finally:
        probe.remove(force=True)
    failed = [line for line in lines if not line.startswith("ok ")]
    answers = [line for line in lines if line.startswith("ok ")]
    assert len(lines) > 40, f"the probe ran too little to tell: {len(lines)} requests"
    assert not failed, f"{len(failed)} of {len(lines)} requests failed during the update: {failed[:5]}"
    assert {"ok web v1", "ok web v2"} == set(answers)


def test_validate_refuses_what_a_swarm_service_cannot_have(tmp_path) -> None:
    folder = write(tmp_path / "repo", {
        "project.yaml": project_doc("refused"), "host.yaml": host_doc(),
        "plain.yaml": "apiVersion: gitops/v1\nkind: Host\nmetadata: {name: plain}\nspec: {url: 'unix:///x.sock'}\n",
        "a.yaml": service("a", "placement: {hosts: [cluster]}\n"
                               "healthcheck: {http: {port: 8080}}\n"
                               "ports: [{container: 8080, host: 8080, hostIp: 127.0.0.1}]"),
        "b.yaml": service("b", "placement: {nodeSelector: {zone: b}}"),
        "c.yaml": service("c", "placement: {hosts: [plain], nodeSelector: {zone: b}}"),
    })
    code, out = gitops(tmp_path, "validate", str(folder))
    assert code != 0
    assert "b.yaml" in out and "Swarm cluster, which runs a service alone" in out, out
    assert "c.yaml" in out and "spec.placement.nodeSelector: only applies to a service on a Swarm cluster" in out, out
    # once placement is right, what a Swarm task cannot have (checked on the built service) is named
    write(folder, {"b.yaml": None, "c.yaml": None})
    code, out = gitops(tmp_path, "validate", str(folder))
    assert code != 0
    assert "a.yaml" in out and "hostIp" in out and "not possible on a Swarm service" in out, out
    assert "a http health check is probed through a container's published host port" in out  # both at once
