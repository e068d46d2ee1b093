"""A compose stack on a real Docker Engine, through the same engine as manifests: ports, named volumes, networks
with the service name and aliases, repository files and secrets inside the containers, healthchecks and
depends_on conditions, replicas rolled start-first under a 50 ms probe, and a failing health check rolled back."""

from __future__ import annotations

import shutil
import socket
import textwrap
import time
from pathlib import Path

import pytest

from tests.daemonutil import DaemonProcess
from tests.dockerutil import project_containers
from tests.hostile import run_gitops
from tests.sampling import Prober, fetch

pytestmark = pytest.mark.docker

STACK = textwrap.dedent("""\
    services:
      db:
        image: local/web:1
        command: httpd -f -p 5432 -h /www
        container_name: postgres
        init: true
        stop_grace_period: 1s
        volumes: [data:/data]
        networks:
          back: {aliases: [database]}
        healthcheck:
          test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:5432/"]
          interval: 200ms
          retries: 3
      web:
        image: local/web:${WEB_TAG}
        init: true
        stop_grace_period: 1s
        ports: ["127.0.0.1::8080"]
        networks: [back]
        depends_on:
          db: {condition: service_healthy}
        volumes: ["./site/extra.html:/www/extra.html:ro"]
        secrets: [token]
        environment: {GREETING: "${GREETING:-hello}"}
        healthcheck:
          test: CHECK
          interval: 200ms
          timeout: 1s
          retries: 2
        deploy:
          replicas: 2
          update_config: {parallelism: 1, order: start-first, monitor: 300ms}
          x-unused: ignored by gitops
    networks:
      back: {}
    volumes:
      data: {}
    secrets:
      token: {file: ./token.txt}
    """)
ANY_VERSION = '["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]'
V1_ONLY = '["CMD-SHELL", "grep -q v1 /www/index.html"]'


def files(tag: int, check: str = ANY_VERSION, extra: str = "extra v1") -> dict[str, str]:
    return {"compose.yaml": STACK.replace("CHECK", check), ".env": f"WEB_TAG={tag}\n", "site/extra.html": extra + "\n",
            "token.txt": "s3cret-token\n"}


def containers(client, project: str, service: str) -> list:  # type: ignore[no-untyped-def]
    return project_containers(client, project, f"io.gitops.service={service}")


def run(container, *command: str) -> str:  # type: ignore[no-untyped-def]
    code, out = container.exec_run(list(command))
    assert code == 0, out
    return str(out.decode()).strip()


def test_a_compose_stack_runs_as_its_file_says(deploy, docker_client, project_name) -> None:
    first = deploy(files(1))
    assert first.result is not None and first.result.ok, (first.result.problems(), first.result.services)
    db, = containers(docker_client, project_name, "db")
    webs = containers(docker_client, project_name, "web")
    assert len(webs) == 2
    # depends_on service_healthy: web started once db was healthy
    db_started = db.attrs["State"]["StartedAt"]
    assert all(w.attrs["State"]["StartedAt"] > db_started for w in webs)
    # the service name and the aliases resolve on the stack's network, both ways
    assert run(webs[0], "wget", "-q", "-O-", "http://db:5432/") == "web v1"
    assert run(webs[0], "wget", "-q", "-O-", "http://database:5432/") == "web v1"
    assert run(webs[1], "wget", "-q", "-O-", "http://postgres:5432/") == "web v1"  # container_name: an alias
    assert run(db, "wget", "-q", "-O-", "http://web:8080/extra.html") == "extra v1"  # a repository file
    assert run(webs[0], "cat", "/run/secrets/token") == "s3cret-token"
    assert run(webs[0], "stat", "-c", "%a", "/run/secrets/token") == "444"
    assert run(webs[0], "sh", "-c", "echo $GREETING") == "hello"
    # a published port on loopback, a named volume and network named as compose names them
    for w in webs:
        (binding,) = w.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
        assert binding["HostIp"] == "127.0.0.1" and int(binding["HostPort"]) > 0
    assert docker_client.volumes.get(f"{project_name}_data").attrs["Labels"]["io.gitops.project"] == project_name
    assert docker_client.networks.get(f"{project_name}_back").attrs["Labels"]["io.gitops.project"] == project_name
    assert any(m["Name"] == f"{project_name}_data" for m in db.attrs["Mounts"])
    # nothing to do the second time
    assert not deploy.plan(files(1)).plan.has_changes


def test_a_changed_tag_in_dot_env_rolls_start_first_without_a_failed_request(deploy, docker_client,
                                                                               project_name) -> None:
    assert deploy(files(1)).result.ok
    with Prober(docker_client, project_name, "web") as probe:
        time.sleep(0.3)
        second = deploy(files(2))
        time.sleep(0.3)
    assert second.result is not None and second.result.ok, second.result
    assert [c.path for s in second.plan.changes for c in s.changes if s.name == "web"][:1] == ["image"]
    assert probe.failures == [] and probe.ok > 20 and probe.bodies == {"web v1", "web v2"}
    assert {c.image.tags[0] for c in containers(docker_client, project_name, "web")} == {"local/web:2"}


def test_a_changed_repository_file_rolls_the_service_and_the_plan_names_it(deploy, docker_client,
                                                                             project_name) -> None:
    assert deploy(files(1)).result.ok
    planned = deploy.plan(files(1, extra="extra v2"))
    assert [(s.name, [c.path for c in s.changes]) for s in planned.plan.changes] == [
        ("web", ["files./www/extra.html"]), ("web", ["files./www/extra.html"])]
    assert deploy(files(1, extra="extra v2")).result.ok
    for web in containers(docker_client, project_name, "web"):
        assert run(web, "cat", "/www/extra.html") == "extra v2"


def test_a_failing_health_check_is_rolled_back_and_reported(deploy, docker_client, project_name) -> None:
    assert deploy(files(1, check=V1_ONLY)).result.ok
    with Prober(docker_client, project_name, "web") as probe:
        second = deploy(files(2, check=V1_ONLY))
    result = second.result
    assert result is not None and not result.ok
    outcome = result.services["web"]
    assert outcome.status == "rolled_back" and "health check failed" in outcome.message
    assert probe.failures == [] and "web v1" in probe.bodies
    assert {c.image.tags[0] for c in containers(docker_client, project_name, "web")} == {"local/web:1"}


def test_example_compose_applies_and_rolls_as_the_readme_says(docker_client, project_name, tmp_path) -> None:
    """The README's compose example, through the CLI: apply, then WEB_TAG=2 in .env rolls web to v2."""
    root = tmp_path / "example-compose"
    shutil.copytree(Path(__file__).resolve().parent.parent / "example-compose", root)
    (root / "project.yaml").write_text(f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project_name}}}\n")
    state = ("--state-dir", str(tmp_path / "state"))
    first = run_gitops("apply", str(root), "--yes", *state, tmp=tmp_path, timeout=180)
    assert first.returncode == 0, first.stderr
    webs = containers(docker_client, project_name, "web")
    assert len(webs) == 2 and run(webs[0], "cat", "/www/about.html").startswith("<p>A compose stack")
    (root / ".env").write_text("WEB_TAG=2\nLOG_LEVEL=info\n")
    planned = run_gitops("plan", str(root), *state, tmp=tmp_path)
    assert "~ web[0] on local" in planned.stdout and "image: local/web:1 -> local/web:2" in planned.stdout
    second = run_gitops("apply", str(root), "--yes", *state, tmp=tmp_path, timeout=180)
    assert second.returncode == 0, second.stderr
    assert {c.image.tags[0] for c in containers(docker_client, project_name, "web")} == {"local/web:2"}


def test_a_host_colon_container_port_is_published_on_that_host_port(deploy, docker_client, project_name) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    compose = f"services:\n  web:\n    image: local/web:1\n    init: true\n    ports: ['{free}:8080']\n"
    assert deploy({"compose.yaml": compose}).result.ok
    (web,) = containers(docker_client, project_name, "web")
    bindings = web.attrs["NetworkSettings"]["Ports"]["8080/tcp"]  # 0.0.0.0, and :: where IPv6 is on
    assert {b["HostPort"] for b in bindings} == {str(free)} and "0.0.0.0" in {b["HostIp"] for b in bindings}
    assert fetch(free).strip() == "web v1"


def test_external_network_and_volume_are_joined_and_left_alone(deploy, docker_client, project_name) -> None:
    """A network and a volume made outside gitops: the stack uses them by name and never changes them."""
    net = docker_client.networks.create(f"{project_name}-proxy")  # not labelled: gitops does not own it
    vol = docker_client.volumes.create(f"{project_name}-shared")
    try:
        compose = textwrap.dedent(f"""\
            services:
              web:
                image: local/web:1
                init: true
                networks:
                  proxy: {{aliases: [site]}}
                volumes: [shared:/shared]
            networks:
              proxy: {{external: true, name: {project_name}-proxy}}
            volumes:
              shared: {{external: true, name: {project_name}-shared}}
            """)
        files = {"compose.yaml": compose}
        allow = "spec: {policy: {allow: [external-network, external-volume]}}\n"
        deploy.project_doc = lambda spec="": (f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: "
                                              f"{project_name}}}\n{allow}")  # type: ignore[method-assign]
        assert deploy(files).result.ok
        (web,) = containers(docker_client, project_name, "web")
        endpoint = web.attrs["NetworkSettings"]["Networks"][f"{project_name}-proxy"]
        assert "site" in endpoint["Aliases"] and "web" in endpoint["Aliases"]
        assert any(m.get("Name") == f"{project_name}-shared" for m in web.attrs["Mounts"])
        assert not deploy.plan(files).plan.has_changes
        net.reload()
        vol.reload()
        assert "io.gitops.project" not in (net.attrs.get("Labels") or {})
        assert "io.gitops.project" not in (vol.attrs.get("Labels") or {})
    finally:
        for c in containers(docker_client, project_name, "web"):
            c.remove(force=True)
        net.remove()
        vol.remove(force=True)


def test_the_daemon_deploys_a_compose_stack_and_repairs_it(docker_client, project_name, tmp_path) -> None:
    """What a user runs: `gitops daemon --local` on a compose folder; /status shows the stack, a container
    removed by hand is put back, and a changed .env rolls the service, each seen through /status."""
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "compose.yaml").write_text(
        f"name: {project_name}\nservices:\n  web:\n    image: local/web:${{TAG}}\n    init: true\n"
        "    stop_grace_period: 1s\n    healthcheck:\n      test: [CMD, wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/']\n"
        "      interval: 200ms\n      retries: 3\n")
    (folder / ".env").write_text("TAG=1\n")
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        d.wait_for(lambda: d.last_pass().get("outcome") == "converged", 60, "the first pass")
        (svc,) = d.status()["services"]
        assert svc["name"] == "web" and svc["replicas"]["running"] == 1
        (web,) = containers(docker_client, project_name, "web")
        web.remove(force=True)  # drift: the Docker event starts a pass that creates it again
        d.wait_for(lambda: len(containers(docker_client, project_name, "web")) == 1
                   and d.last_pass().get("outcome") == "converged", 60, "the repair")
        (folder / ".env").write_text("TAG=2\n")  # the folder is watched: the change starts a pass
        d.wait_for(lambda: {c.image.tags[0] for c in containers(docker_client, project_name, "web")}
                   == {"local/web:2"} and d.last_pass().get("outcome") == "converged", 60, "the update")
