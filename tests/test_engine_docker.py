"""The engine on the real Docker Engine: create, rolling updates, rollback, waves, prune, decoys."""

from __future__ import annotations

import socket
import textwrap
import time
from datetime import datetime

import pytest

from tests.conftest import service
from tests.dockerutil import project_containers
from tests.sampling import Prober, RunningPerService, fetch

pytestmark = pytest.mark.docker

# A health check that passes on v1 and fails on v2: the image itself decides.
V1_ONLY = "healthcheck: {exec: ['sh', '-c', 'grep -q v1 /www/index.html'], interval: 200ms, timeout: 1s, retries: 2}"
WGET_OK = "healthcheck: {exec: ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/'], interval: 200ms, retries: 3}"
FAST = "init: true\nstopGracePeriod: 2s\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def running(client, project: str, svc: str | None = None) -> list:
    return project_containers(client, project, *([f"io.gitops.service={svc}"] if svc else []))


def web(body: str = "", image: str = "local/web:1", name: str = "web") -> dict[str, str]:
    return {f"{name}.yaml": service(name, FAST + "ports: [{container: 8080, hostIp: 127.0.0.1}]\n" + body, image=image)}


def test_create_from_scratch_then_a_second_pass_changes_nothing(deploy, docker_client, project_name) -> None:
    """Networks, volumes and services come up labelled; the next plan is empty and applying it calls
    nothing that mutates Docker (no container, network or volume events at all)."""
    files = {
        "infra.yaml": "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: net}\n---\n"
                      "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: data}\n",
        "db.yaml": service("db", FAST + "networks: [{name: net, aliases: [database]}]\n"
                           "mounts: [{type: volume, source: data, target: /data}]\n" + WGET_OK
                           + "\ncommand: ['httpd', '-f', '-p', '8080', '-h', '/www']", image="local/web:1"),
        "api.yaml": service("api", FAST + "networks: [net]\ndependsOn: [{service: db, condition: healthy}]\n"
                            "env: {DB: 'http://database:8080/'}"),
    }
    first = deploy(files)
    assert first.result is not None and first.result.ok, first.result
    containers = running(docker_client, project_name)
    assert sorted(c.labels["io.gitops.service"] for c in containers) == ["api", "db"]
    for c in containers:
        assert c.labels["io.gitops.managed"] == "true" and c.labels["io.gitops.revision"] == "test"
        assert len(c.labels["io.gitops.spec-hash"]) == 64
    api = next(c for c in containers if c.labels["io.gitops.service"] == "api")
    # the alias resolves over the project's network: api reaches db by name
    assert api.exec_run(["wget", "-q", "-O", "-", "http://database:8080/"]).output.decode().strip() == "web v1"
    assert docker_client.networks.get(f"{project_name}_net").attrs["Labels"]["io.gitops.project"] == project_name
    assert docker_client.volumes.get(f"{project_name}_data").attrs["Labels"]["io.gitops.project"] == project_name

    # Fractional bounds: docker-py cuts a datetime to the whole second, which let in the exec above. Exec
    # actions carry their command on Engine 20.10 ("exec_create: wget ..."): matched by prefix.
    since = f"{time.time():.6f}"
    second = deploy(files)
    until = f"{time.time():.6f}"
    assert second.result is not None and second.result.ok
    assert not second.plan.has_changes
    events = list(docker_client.events(since=since, until=until, decode=True,
                                       filters={"label": f"io.gitops.project={project_name}"}))
    mutating = [e for e in events if not str(e.get("Action", "")).startswith(("exec_", "health_status"))]
    assert mutating == []


def test_start_first_update_never_drops_a_request(deploy, docker_client, project_name) -> None:
    """Two replicas rolled one at a time while a probe requests the service every 50 ms: no failure."""
    body = "replicas: 2\n" + WGET_OK + "\nupdate: {order: start-first, parallelism: 1, minHealthyTime: 300ms}"
    assert deploy(web(body)).result.ok
    with Prober(docker_client, project_name, "web") as probe:
        time.sleep(0.3)
        result = deploy(web(body, image="local/web:2")).result
        time.sleep(0.3)
    assert result is not None and result.ok, result
    assert probe.failures == [] and probe.ok > 20
    assert probe.bodies == {"web v1", "web v2"}
    now = running(docker_client, project_name, "web")
    assert len(now) == 2 and {c.image.tags[0] for c in now} == {"local/web:2"}
    # the old containers are gone, not merely stopped
    assert len(docker_client.containers.list(all=True, filters={"label": f"io.gitops.project={project_name}"})) == 2


def test_old_containers_stopping_slowly_overlap_across_services(deploy, docker_client, project_name) -> None:
    """17 one-replica start-first services whose old containers use their whole 10 s grace period
    (busybox httpd as PID 1, without init, ignores SIGTERM). The stops overlap: the update takes about
    one grace period. A worker per service, 8 of them, held through each stop, needs at least
    ceil(17 / 8) = 3 grace periods (30 s). Meanwhile no service runs more than replicas + parallelism
    containers (invariant I2), and one of them, probed every 50 ms, answers every request."""
    n, grace = 17, 10
    body = (f"stopGracePeriod: {grace}s\nupdate: {{order: start-first}}\n"
            "ports: [{container: 8080, hostIp: 127.0.0.1}]\n")

    def files(env: str) -> dict[str, str]:
        return {f"s{i:02d}.yaml": service(f"s{i:02d}", body + f"env: {{ROUND: '{env}'}}") for i in range(n)}

    assert deploy(files("1")).result.ok
    with Prober(docker_client, project_name, "s00") as probe, RunningPerService(docker_client, project_name) as count:
        started = time.monotonic()
        second = deploy(files("2"))
        took = time.monotonic() - started
    print(f"\n{n} services, {grace} s grace: update took {took:.1f} s, most running per service {max(count.max.values())}")
    assert second.result is not None and second.result.ok, second.result
    assert len(second.plan.changes) == n
    assert grace <= took < 2.4 * grace, f"the update took {took:.1f} s"  # each old container got its grace, all at once
    assert count.max == dict.fromkeys((f"s{i:02d}" for i in range(n)), 2)
    assert probe.failures == [] and probe.ok > 20
    everything = docker_client.containers.list(all=True, filters={"label": f"io.gitops.project={project_name}"})
    assert len(everything) == n and all("ROUND=2" in c.attrs["Config"]["Env"] for c in everything)


def test_stop_first_with_a_fixed_host_port(deploy, docker_client, project_name) -> None:
    port = free_port()
    body = f"ports: [{{container: 8080, host: {port}, hostIp: 127.0.0.1}}]\n" + WGET_OK
    files = {"web.yaml": service("web", FAST + body)}
    assert deploy(files).result.ok
    assert fetch(port).strip() == "web v1"
    second = deploy({"web.yaml": service("web", FAST + body, image="local/web:2")})
    assert second.plan.changes[0].reason.startswith("stop-first")
    assert second.result is not None and second.result.ok
    assert fetch(port).strip() == "web v2"
    assert len(docker_client.containers.list(all=True, filters={"label": f"io.gitops.project={project_name}"})) == 1


def test_failing_health_check_rolls_back_and_reports_why(deploy, docker_client, project_name) -> None:
    """v2 fails its health check: every replica goes back to v1, which kept serving throughout, and
    the outcome is a failure that carries the health-check output."""
    body = "replicas: 2\n" + V1_ONLY + "\nupdate: {parallelism: 1, healthyDeadline: 20s}"
    assert deploy(web(body)).result.ok
    with Prober(docker_client, project_name, "web") as probe:
        second = deploy(web(body, image="local/web:2"))
    result = second.result
    assert result is not None and not result.ok
    outcome = result.services["web"]
    assert outcome.status == "rolled_back"
    assert "health check failed" in outcome.message and "rolled back to the previous version" in outcome.message
    assert outcome.health_output.startswith("exit 1")
    assert probe.failures == [] and "web v1" in probe.bodies
    after = docker_client.containers.list(all=True, filters={"label": f"io.gitops.project={project_name}"})
    assert len(after) == 2 and all(c.status == "running" and c.image.tags == ["local/web:1"] for c in after)
    ports = [p["PublicPort"] for c in docker_client.api.containers(filters={"label": f"io.gitops.project={project_name}"})
             for p in c["Ports"] if p.get("PublicPort")]
    assert sorted(fetch(port).strip() for port in ports) == ["web v1", "web v1"]
    # and the rollback converged: the v1 plan has nothing to do
    assert not deploy.plan(web(body)).plan.has_changes


def test_failure_action_pause_stops_and_reports(deploy, docker_client, project_name) -> None:
    body = "replicas: 2\n" + V1_ONLY + "\nupdate: {parallelism: 1, failureAction: pause, healthyDeadline: 20s}"
    assert deploy(web(body)).result.ok
    result = deploy(web(body, image="local/web:2")).result
    assert result is not None and result.services["web"].status == "paused"
    images = sorted(c.image.tags[0] for c in running(docker_client, project_name, "web"))
    assert images == ["local/web:1", "local/web:1"]  # the failing replica was put back; nothing else started


def test_dependents_are_skipped_unrelated_services_converge(deploy, docker_client, project_name) -> None:
    """base starts but fails its health gate; ghost never starts (its image is missing)."""
    files = {
        **web(V1_ONLY, image="local/web:2", name="base"),
        "child.yaml": service("child", FAST + "dependsOn: [{service: base, condition: healthy}]"),
        "loose.yaml": service("loose", FAST + "dependsOn: [base]"),  # condition: started
        "ghost.yaml": service("ghost", FAST + "pullPolicy: never", image="local/missing:1"),
        "ghostchild.yaml": service("ghostchild", FAST + "dependsOn: [{service: ghost, condition: started}]"),
        "other.yaml": service("other", FAST),
    }
    result = deploy(files).result
    assert result is not None and not result.ok
    assert result.services["base"].status == "failed"
    assert result.services["ghost"].status == "failed"
    assert result.services["child"].status == "skipped"
    assert result.services["child"].message == "skipped: base failed"
    assert result.services["ghostchild"].status == "skipped"
    assert result.services["ghostchild"].message == "skipped: ghost failed"
    # base did start, and loose only asked for that
    assert result.services["loose"].status == "converged"
    assert [c.labels["io.gitops.service"] for c in running(docker_client, project_name, "loose")] == ["loose"]
    assert [c.labels["io.gitops.service"] for c in running(docker_client, project_name, "other")] == ["other"]
    assert running(docker_client, project_name, "child") == []
    assert running(docker_client, project_name, "ghostchild") == []


def test_dependency_waves_are_honoured(deploy, docker_client, project_name) -> None:
    """api waits for db to be healthy (db needs ~2 s); worker and web only wait for a start."""
    slow = "command: ['sh', '-c', 'sleep 2; touch /tmp/ready; exec httpd -f -p 8080 -h /www']\n" \
           "healthcheck: {exec: ['test', '-f', '/tmp/ready'], interval: 200ms, retries: 10}"
    files = {
        "db.yaml": service("db", FAST + slow),
        "api.yaml": service("api", FAST + "dependsOn: [{service: db, condition: healthy}]"),
        "worker.yaml": service("worker", FAST + "dependsOn: [{service: db, condition: started}]"),
        "web.yaml": service("web", FAST + "dependsOn: [api]"),
    }
    assert deploy(files).result.ok

    def started(svc: str) -> float:
        c = running(docker_client, project_name, svc)[0]
        return datetime.fromisoformat(c.attrs["State"]["StartedAt"][:26]).timestamp()

    assert started("api") >= started("db") + 2.0
    assert started("db") <= started("worker") < started("db") + 2.0  # before db could be healthy
    assert started("web") >= started("api")


def test_prune_removes_undeclared_services_and_keeps_volumes(deploy, docker_client, project_name) -> None:
    vol = "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: data}\n"
    files = {"v.yaml": vol, "a.yaml": service("a", FAST), "b.yaml": service("b", FAST + "mounts: [{type: volume, source: data, target: /d}]")}
    assert deploy(files, prune=True).result.ok
    kept = deploy({"v.yaml": vol, "a.yaml": files["a.yaml"]})  # prune off: b is only reported
    assert kept.plan.warnings == ("not declared any more but kept, because prune is off: b",)
    assert len(running(docker_client, project_name, "b")) == 1
    pruned = deploy({"v.yaml": vol, "a.yaml": files["a.yaml"]}, prune=True)
    assert pruned.result is not None and pruned.result.ok
    assert running(docker_client, project_name, "b") == [] and len(running(docker_client, project_name, "a")) == 1
    assert docker_client.volumes.get(f"{project_name}_data")  # never removed without remove: true


def test_unmanaged_decoys_are_left_byte_identical(deploy, docker_client, project_name) -> None:
    """Containers without the project's labels, even with copied names and labels, are never touched;
    a name collision is an error, not an adoption."""
    from gitops.core.model import container_name

    decoys = [
        docker_client.containers.run("local/busybox:1", ["sleep", "300"], detach=True, name=f"{project_name}-decoy",
                                     labels={"io.gitops.test": "decoy"}),
        docker_client.containers.run("local/busybox:1", ["sleep", "300"], detach=True,
                                     labels={"io.gitops.managed": "true", "io.gitops.project": project_name + "x",
                                             "io.gitops.service": "web", "io.gitops.slot": "0"}),
        docker_client.containers.run("local/busybox:1", ["sleep", "300"], detach=True,
                                     labels={"io.gitops.service": "web", "io.gitops.slot": "0"}),
    ]
    try:
        before = [d.client.api.inspect_container(d.id) for d in decoys]
        files = web()
        desired = deploy.load(files)
        taken = container_name(project_name, "web", 0, desired.service("web").spec_hash)
        squatter = docker_client.containers.run("local/busybox:1", ["sleep", "300"], detach=True, name=taken,
                                                labels={"io.gitops.test": "decoy"})
        decoys.append(squatter)
        before.append(docker_client.api.inspect_container(squatter.id))
        collided = deploy(files, prune=True)
        assert collided.result is not None and not collided.result.ok
        assert "is not managed by project" in collided.result.steps["service/web/0@local"].message
        squatter.remove(force=True)
        decoys.pop()
        before.pop()
        assert deploy(files, prune=True).result.ok
        assert deploy(web(image="local/web:2"), prune=True).result.ok
        assert deploy({"other.yaml": service("other", FAST)}, prune=True).result.ok  # prunes web
        after = [docker_client.api.inspect_container(d.id) for d in decoys]
        assert after == before
    finally:
        for d in decoys:
            d.remove(force=True)


def test_pull_policy_never_with_a_missing_image_fails_cleanly(deploy, project_name) -> None:
    result = deploy({"s.yaml": service("s", "pullPolicy: never", image="local/does-not-exist:1")}).result
    assert result is not None and not result.ok
    assert result.steps["service/s/0@local"].message == (
        "local: image local/does-not-exist:1 is not on the host and pullPolicy is never")


def test_http_probe_through_the_published_port(deploy, docker_client, project_name) -> None:
    port = free_port()
    body = (f"ports: [{{container: 8080, host: {port}, hostIp: 127.0.0.1}}]\n"
            "healthcheck: {http: {port: 8080, path: /healthz}, interval: 200ms, retries: 3}")
    assert deploy({"web.yaml": service("web", FAST + body)}).result.ok
    bad = body.replace("/healthz", "/missing") + "\nupdate: {healthyDeadline: 10s}"
    result = deploy({"web.yaml": service("web", FAST + bad)}).result
    assert result is not None and result.services["web"].status == "rolled_back"
    assert "GET /missing answered 404" in result.services["web"].health_output
    assert fetch(port).strip() == "web v1"


def test_every_setting_gitops_makes_is_found_as_declared_when_inspected(deploy, docker_client, project_name,
                                                                          tmp_path) -> None:
    """The check for containers copied by hand inspects what gitops did not make. Run against containers
    gitops made, with every kind of setting, it must find nothing (a false finding would replace them
    on every pass), and it must find the one setting then changed by hand."""
    from gitops.engine.observe import observe_all, open_hosts
    from gitops.hosts.docker import DockerHost

    (tmp_path / "site").mkdir()
    files = {
        # a bind mount needs its host folder allowed (README, Security policy)
        "project.yaml": deploy.project_doc(f"spec:\n  policy:\n    allowHostPaths: ['{tmp_path / 'site'}']\n"),
        "infra.yaml": "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: front}\n---\n"
                      "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: back}\n---\n"
                      "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: data}\n",
        "web.yaml": service("web", FAST + textwrap.dedent(f"""
            command: ['httpd', '-f', '-p', '8080', '-h', '/www']
            env: {{LOG: info, EMPTY: '', N: 3}}
            workingDir: /www
            user: '0:0'
            hostname: webhost
            ports: [{{container: 8080, hostIp: 127.0.0.1}}, {{container: 9090, host: {free_port()}, protocol: udp}}]
            mounts:
              - {{type: volume, source: data, target: /data}}
              - {{type: bind, source: {tmp_path / 'site'}, target: /site, readOnly: true}}
              - {{type: tmpfs, target: /scratch, size: 16Mi}}
            networks: [{{name: front, aliases: [www]}}, back]
            resources: {{cpus: 0.5, memory: 64Mi, memoryReservation: 32Mi}}
            restart: on-failure
            stopSignal: SIGTERM
            readOnlyRootfs: true
            capDrop: [NET_RAW]
            labels: {{team: shop}}
            {WGET_OK}
        """)),
    }
    assert deploy(files).result.ok
    desired = deploy.load(files)
    with open_hosts(desired) as hosts:
        verified: dict[str, str] = {}
        observed = observe_all(desired, hosts, trusted={}, verified=verified)  # trusts nothing: inspects all
        web = observed.hosts[0].containers[0]
        assert web.hand_changes == () and verified == {web.id: "local"}
        assert observe_all(desired, hosts, trusted=verified).hosts[0].containers[0].hand_changes == ()
        # the same container, but copied by hand with one more capability
        host: DockerHost = hosts["local"]
        request, rest = host.container_request(project_name, desired.service("web"), web.slot, web.revision)
        request["host_config"]["CapAdd"] = ["NET_ADMIN"]
        docker_client.api.remove_container(web.id, force=True)
        copy = docker_client.api.create_container(**request)["Id"]
        for name, aliases in rest:
            docker_client.api.connect_container_to_network(copy, name, aliases=aliases)
        docker_client.api.start(copy)
        copied = observe_all(desired, hosts, trusted=verified).hosts[0].containers[0]
        assert (copied.id, copied.hand_changes) == (copy, ("capAdd",))
    assert deploy.plan(files).plan.changes[0].reason.startswith("container is not the declared one (replaced by "
                                                                "hand; capAdd differ)")


def test_a_changed_network_is_reported_and_recreated_as_the_readme_says(deploy, docker_client, project_name) -> None:
    def files(subnet: str) -> dict[str, str]:
        return {"net.yaml": f"apiVersion: gitops/v1\nkind: Network\nmetadata: {{name: net}}\nspec: {{subnet: {subnet}}}\n",
                "web.yaml": service("web", FAST + "networks: [net]")}

    assert deploy(files("10.213.7.0/24")).result.ok
    changed = deploy.plan(files("10.213.8.0/24")).plan
    assert not changed.has_changes
    assert [w.split(";")[0] for w in changed.warnings] == ["network net on local differs from its manifest"]
    # what the warning says to do: remove the attached containers and the network; a pass recreates both
    for c in running(docker_client, project_name, "web"):
        c.remove(force=True)
    docker_client.networks.get(f"{project_name}_net").remove()
    assert deploy(files("10.213.8.0/24")).result.ok
    network = docker_client.networks.get(f"{project_name}_net")
    assert network.attrs["IPAM"]["Config"][0]["Subnet"] == "10.213.8.0/24"
    assert not deploy.plan(files("10.213.8.0/24")).plan.warnings


def _serves(port: int, body: str, within: float = 20.0) -> bool:
    """Whether the port answers ``body`` before ``within`` seconds have passed (polled every 50 ms)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if fetch(port, timeout=0.5).strip() == body:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def _apply_with(desired, **patch):  # type: ignore[no-untyped-def]
    """Plan and apply ``desired`` on the local engine, with DockerHost methods replaced by ``patch``."""
    from gitops.core.planner import plan
    from gitops.engine.executor import Executor
    from gitops.engine.observe import observe_all, open_hosts

    with open_hosts(desired) as hosts:
        for name, wrap in patch.items():
            for host in hosts.values():
                setattr(host, name, wrap(getattr(host, name)))
        the_plan = plan(desired, observe_all(desired, hosts))
        return the_plan, Executor(desired, hosts).apply(the_plan)


def test_stop_first_update_whose_create_raises_puts_the_old_container_back(deploy, docker_client,
                                                                          project_name) -> None:
    """SECURITY.md I1: `cpus: .nan` once passed validation; building the create request raised a
    ValueError after the old container was stopped, and it stayed stopped. Any exception between the
    stop and the new container's health gate now rolls back. The spec is built here, past validation."""
    import dataclasses

    port = free_port()
    body = (f"ports: [{{container: 8080, host: {port}, hostIp: 127.0.0.1}}]\nupdate: {{order: stop-first}}\n"
            + WGET_OK)
    assert deploy({"web.yaml": service("web", FAST + body)}).result.ok
    old = running(docker_client, project_name, "web")[0]
    desired = deploy.load({"web.yaml": service("web", FAST + body, image="local/web:2")})
    nan = dataclasses.replace(desired.service("web"), cpus=float("nan"))
    desired = dataclasses.replace(desired, services=(nan,))
    the_plan, result = _apply_with(desired)
    assert the_plan.changes[0].reason.startswith("stop-first")
    outcome = result.services["web"]
    assert (outcome.status, outcome.message) == (
        "rolled_back", "web[0] on local: ValueError: cannot convert float NaN to integer; "
                       "rolled back to the previous version on every host")
    assert result.errors == [] and result.steps["service/web/0@local"].status == "failed"
    everything = docker_client.containers.list(all=True, filters={"label": f"io.gitops.project={project_name}"})
    assert [(c.id, c.status) for c in everything] == [(old.id, "running")]
    assert _serves(port, "web v1")


def test_stop_first_update_whose_create_fails_after_the_stop_is_rolled_back(deploy, docker_client,
                                                                            project_name) -> None:
    """The same with the failure injected into DockerHost.create_container (any exception type)."""
    port = free_port()
    body = (f"ports: [{{container: 8080, host: {port}, hostIp: 127.0.0.1}}]\nupdate: {{order: stop-first}}\n"
            + WGET_OK)
    assert deploy({"web.yaml": service("web", FAST + body)}).result.ok
    old = running(docker_client, project_name, "web")[0]

    def broken(create):  # type: ignore[no-untyped-def]
        def create_container(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise KeyError("injected")
        return create_container

    desired = deploy.load({"web.yaml": service("web", FAST + body, image="local/web:2")})
    _, result = _apply_with(desired, create_container=broken)
    outcome = result.services["web"]
    assert (outcome.status, outcome.message) == (
        "rolled_back", "web[0] on local: KeyError: 'injected'; rolled back to the previous version on every host")
    old.reload()
    assert old.status == "running" and _serves(port, "web v1")


def test_start_first_update_failing_after_the_create_removes_the_new_container(deploy, docker_client,
                                                                              project_name) -> None:
    """start-first: the new container was created, then starting it raised something that is no
    HostError. The new container goes, the old one kept serving, the outcome says why."""
    body = "update: {order: start-first}\n" + WGET_OK
    assert deploy(web(body)).result.ok
    old = running(docker_client, project_name, "web")[0]

    def broken(start):  # type: ignore[no-untyped-def]
        def start_container(ref: str) -> None:
            if ref != old.id:
                raise RuntimeError("injected after create")
            start(ref)
        return start_container

    desired = deploy.load(web(body, image="local/web:2"))
    _, result = _apply_with(desired, start=broken)
    outcome = result.services["web"]
    assert (outcome.status, outcome.message) == (
        "rolled_back", "web[0] on local: RuntimeError: injected after create; "
                       "rolled back to the previous version on every host")
    everything = docker_client.containers.list(all=True, filters={"label": f"io.gitops.project={project_name}"})
    assert [(c.id, c.status) for c in everything] == [(old.id, "running")]
