"""The two-node Swarm of scripts/swarm-cluster.sh is real and does what issue 13's tests need.

docker-py only (not gitops): placement on the worker by node label with an image loaded into it (no
registry), published ports, an overlay network across the nodes, and a worker that goes away and comes
back. Every service and network made here carries the label ``io.gitops.test=<test id>`` and is removed
afterwards, with its tasks' containers gone from both nodes. Waits are on conditions, with deadlines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

LABEL = "io.gitops.test"
IMAGE = "local/web:1"  # httpd on :8080 answering "web v1", loaded into the worker by the script
TASK_DEADLINE = 30.0
NODE_DEADLINE = 40.0  # a Down node takes about 3 dispatcher heartbeats (2 s each on a swarm the script made)


def wait_until(check: Callable[[], Any], what: str, deadline: float = TASK_DEADLINE) -> Any:
    """Call ``check`` until it returns something truthy (returned) or ``deadline`` seconds pass (fails)."""
    end = time.monotonic() + deadline
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - an engine mid-restart answers with any of several errors
            last_error = exc
        if time.monotonic() > end:
            pytest.fail(f"gave up after {deadline:.0f} s waiting for {what}" +
                        (f" (last error: {last_error})" if last_error else ""))
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a test URL on this machine
        return response.read().decode().strip()


def running_tasks(service) -> list[dict]:
    """The service's tasks that should run and do, each with its NodeID."""
    return [t for t in service.tasks(filters={"desired-state": "running"}) if t["Status"]["State"] == "running"]


def service_containers(client, service_id: str) -> list:
    return client.containers.list(all=True, filters={"label": f"com.docker.swarm.service.id={service_id}"})


def node_state(client, node_id: str) -> str:
    return client.nodes.get(node_id).attrs["Status"]["State"]


@pytest.fixture
def swarm(swarm_cluster, request):
    """``swarm_cluster`` plus ``service(**kw)`` and ``network(**kw)`` makers whose objects are removed afterwards."""
    manager, worker = swarm_cluster["manager"], swarm_cluster["worker"]
    test_id = f"{request.node.name[:30]}-{uuid.uuid4().hex[:6]}"
    services, networks = [], []

    def service(**kw):
        kw.setdefault("name", f"t{uuid.uuid4().hex[:10]}")
        kw.setdefault("stop_grace_period", 500_000_000)  # httpd as PID 1 ignores SIGTERM: 0.5 s, not 10 s
        kw["labels"] = {**kw.get("labels", {}), LABEL: test_id}
        made = manager.services.create(kw.pop("image", IMAGE), **kw)
        services.append(made)
        return made

    def network(**kw):
        made = manager.networks.create(f"t{uuid.uuid4().hex[:10]}", driver="overlay", attachable=True,
                                       labels={LABEL: test_id}, **kw)
        networks.append(made)
        return made

    yield {**swarm_cluster, "service": service, "network": network}

    import docker.errors

    from tests.swarmutil import start_cluster

    if node_state(manager, swarm_cluster["worker_node_id"]) != "ready":
        start_cluster()  # a test that stopped the worker failed before bringing it back
    for made in services:
        with contextlib.suppress(docker.errors.NotFound):
            made.remove()
    for made in services:
        wait_until(lambda made=made: not service_containers(manager, made.id) and not service_containers(worker, made.id),
                   f"the containers of service {made.name} to be gone from both nodes")
    for made in networks:
        wait_until(lambda made=made: made.remove() is None, f"network {made.name} to be removed")


def test_both_nodes_ready_active_and_labelled(swarm_cluster):
    manager = swarm_cluster["manager"]
    nodes = {node.id: node.attrs for node in manager.nodes.list()}
    mine, theirs = nodes[swarm_cluster["manager_node_id"]], nodes[swarm_cluster["worker_node_id"]]
    for node in (mine, theirs):
        assert (node["Status"]["State"], node["Spec"]["Availability"]) == ("ready", "active")
    assert mine["Spec"]["Role"] == "manager" and mine["ManagerStatus"]["Leader"] is True
    assert theirs["Spec"]["Role"] == "worker"
    assert theirs["Spec"]["Labels"] == {"gitops.test/role": "worker", "zone": "b"}
    assert {k: mine["Spec"]["Labels"][k] for k in ("gitops.test/role", "zone")} == {"gitops.test/role": "manager",
                                                                                    "zone": "a"}
    assert theirs["Description"]["Hostname"] == swarm_cluster["worker_hostname"] == "gitops-w1"
    assert theirs["Status"]["Addr"] == swarm_cluster["worker_addr"]
    assert mine["ManagerStatus"]["Addr"] == swarm_cluster["join_addr"]
    # the worker's own engine agrees: an active swarm member with that node id, not a manager
    info = swarm_cluster["worker"].info()["Swarm"]
    assert (info["LocalNodeState"], info["NodeID"], info["ControlAvailable"]) == (
        "active", swarm_cluster["worker_node_id"], False)


def test_status_repeats_the_facts_and_start_is_idempotent(swarm_cluster):
    from tests.swarmutil import parse_facts, run_script

    status = run_script("status", timeout=30)
    assert status.returncode == 0, status.stderr
    again = run_script("start", timeout=60)
    assert again.returncode == 0, again.stderr
    expected = {k: v for k, v in swarm_cluster.items() if isinstance(v, str)}
    assert parse_facts(status.stdout) == parse_facts(again.stdout) == expected
    assert "init" not in again.stderr and "joining" not in again.stderr and "starting" not in again.stderr


def test_placement_by_node_label_runs_the_task_on_the_worker(swarm):
    made = swarm["service"](constraints=["node.labels.zone==b"])
    tasks = wait_until(lambda: running_tasks(made), f"a running task of {made.name}")
    assert [t["NodeID"] for t in tasks] == [swarm["worker_node_id"]]
    # the container is on the worker's engine, from the image loaded into it, and not on the manager
    (container,) = service_containers(swarm["worker"], made.id)
    assert container.image.tags == [IMAGE]
    assert service_containers(swarm["manager"], made.id) == []
    assert container.exec_run(["cat", "/www/index.html"]).output.decode().strip() == "web v1"


def test_port_published_in_host_mode_answers_on_the_worker_address(swarm):
    port = free_port()
    made = swarm["service"](constraints=["node.labels.zone==b"],
                            endpoint_spec=_endpoint({port: (8080, "tcp", "host")}))
    wait_until(lambda: running_tasks(made), f"a running task of {made.name}")
    url = f"http://{swarm['worker_addr']}:{port}/"
    assert wait_until(lambda: http_get(url), f"{url} to answer") == "web v1"


def test_routing_mesh_answers_on_the_manager_while_the_task_runs_on_the_worker(swarm):
    if swarm["ipvs"] != "yes":
        pytest.skip("this kernel has no IPVS (CONFIG_IP_VS not set): Swarm's routing mesh and service VIPs "
                    "cannot work here; ports published in host mode and overlays with dnsrr do")
    port = free_port()
    made = swarm["service"](constraints=["node.labels.zone==b"], endpoint_spec=_endpoint({port: 8080}))
    tasks = wait_until(lambda: running_tasks(made), f"a running task of {made.name}")
    assert [t["NodeID"] for t in tasks] == [swarm["worker_node_id"]]
    for host in ("127.0.0.1", swarm["manager_addr"]):
        assert wait_until(lambda host=host: http_get(f"http://{host}:{port}/"), f"the mesh on {host}:{port}") == "web v1"


def test_overlay_network_joins_a_task_on_each_node_by_service_name(swarm):
    net = swarm["network"]()
    # dnsrr: the service name resolves to the tasks' addresses (a VIP would need IPVS, which this kernel lacks)
    on_worker = swarm["service"](constraints=["node.labels.zone==b"], networks=[net.id],
                                 endpoint_spec=_endpoint(None, mode="dnsrr"))
    on_manager = swarm["service"](constraints=["node.labels.zone==a"], networks=[net.id],
                                  endpoint_spec=_endpoint(None, mode="dnsrr"))
    for made, node in ((on_worker, "worker"), (on_manager, "manager")):
        tasks = wait_until(lambda made=made: running_tasks(made), f"a running task of {made.name}")
        assert [t["NodeID"] for t in tasks] == [swarm[f"{node}_node_id"]]
    (worker_side,) = service_containers(swarm["worker"], on_worker.id)
    (manager_side,) = service_containers(swarm["manager"], on_manager.id)

    def fetch(container, name: str) -> str:
        # busybox's `wget -T` segfaults: bound it with `timeout` instead
        result = container.exec_run(["timeout", "3", "wget", "-qO-", f"http://{name}:8080/"])
        return result.output.decode().strip() if result.exit_code == 0 else ""

    assert wait_until(lambda: fetch(manager_side, on_worker.name), "the manager's task to reach the worker's") == "web v1"
    assert wait_until(lambda: fetch(worker_side, on_manager.name), "the worker's task to reach the manager's") == "web v1"
    # and the overlay is attachable: a plain container on the manager reaches the worker's task too
    probe = swarm["manager"].containers.run("local/busybox:1", ["timeout", "5", "wget", "-qO-",
                                                                f"http://{on_worker.name}:8080/"],
                                            network=net.name, remove=True, labels={LABEL: "probe"})
    assert probe.decode().strip() == "web v1"


def _spread_service(swarm):
    """Two replicas spread over the zones: one task per node; replacements start 0.1 s after a failure."""
    from docker.types import RestartPolicy, ServiceMode

    wait_until(lambda: node_state(swarm["manager"], swarm["worker_node_id"]) == "ready", "the worker to be Ready",
               NODE_DEADLINE)
    made = swarm["service"](mode=ServiceMode("replicated", replicas=2),
                            preferences=[("spread", "node.labels.zone")],
                            restart_policy=RestartPolicy(condition="any", delay=100_000_000))
    tasks = wait_until(lambda: len(running_tasks(made)) == 2 and running_tasks(made), "two running tasks")
    nodes = {n.id: (n.attrs["Description"]["Hostname"], n.attrs["Status"]["State"]) for n in swarm["manager"].nodes.list()}
    assert sorted(t["NodeID"] for t in tasks) == sorted([swarm["manager_node_id"], swarm["worker_node_id"]]), nodes
    return made


def _all_on_manager(swarm, made) -> bool:
    tasks = running_tasks(made)
    return len(tasks) == 2 and {t["NodeID"] for t in tasks} == {swarm["manager_node_id"]}


def test_worker_engine_stopped_tasks_move_to_the_manager_and_it_comes_back(swarm):
    from tests.swarmutil import start_cluster

    manager, node = swarm["manager"], swarm["worker_node_id"]
    made = _spread_service(swarm)
    with open(swarm["worker_pidfile"]) as pidfile:
        os.kill(int(pidfile.read()), signal.SIGTERM)
    wait_until(lambda: node_state(manager, node) == "down", "the manager to mark the worker Down", NODE_DEADLINE)
    wait_until(lambda: _all_on_manager(swarm, made), "both tasks running on the manager")
    # the script's start brings the worker's engine back; it rejoins as the same node and is Ready
    facts = start_cluster()
    assert facts["worker_node_id"] == node
    assert node_state(manager, node) == "ready"
    assert swarm["worker"].info()["Swarm"]["LocalNodeState"] == "active"
    # Swarm does not move tasks back by itself: both stay on the manager
    assert _all_on_manager(swarm, made)


def test_worker_cut_off_tasks_move_to_the_manager_and_it_comes_back(swarm):
    manager, node, veth = swarm["manager"], swarm["worker_node_id"], swarm["veth_host"]
    made = _spread_service(swarm)
    (stranded,) = service_containers(swarm["worker"], made.id)
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)
    try:
        wait_until(lambda: node_state(manager, node) == "down", "the manager to mark the worker Down", NODE_DEADLINE)
        wait_until(lambda: _all_on_manager(swarm, made), "both tasks running on the manager")
        stranded.reload()
        assert stranded.status == "running"  # cut off, not dead: its task still runs on the worker
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    wait_until(lambda: node_state(manager, node) == "ready", "the worker to be Ready again", NODE_DEADLINE)
    # back in touch, the worker stops the task the manager replaced
    wait_until(lambda: not any(c.status == "running" for c in service_containers(swarm["worker"], made.id)),
               "the worker to stop its replaced task")
    assert _all_on_manager(swarm, made)


def _endpoint(ports, mode: str | None = None):
    from docker.types import EndpointSpec

    return EndpointSpec(mode=mode, ports=ports)
