"""The Swarm driver (gitops.hosts.swarm) on a real two-node cluster (scripts/swarm-cluster.sh): a service made
from gitops.core.swarm's spec reads back as sent (so a hand change is seen), placement by node label, a rollout
followed to convergence, and a failing health check rolled back and reported as such, never as converged."""

from __future__ import annotations

import contextlib
import time
import uuid

import docker.errors
import pytest

from gitops.core.model import HostSpec, ephemeral_key
from gitops.core.swarm import Placement, swarm_service_spec
from gitops.hosts.swarm import SwarmCluster
from gitops.manifests.load import load_repo
from tests.conftest import service

pytestmark = [pytest.mark.docker, pytest.mark.swarm]
CHECK = "healthcheck: {exec: [sh, -c, 'test -f /www/index.html'], interval: 300ms, timeout: 1s, retries: 2}"
FAILING = "healthcheck: {exec: [sh, -c, 'echo db refused; exit 1'], interval: 300ms, timeout: 1s, retries: 2}"


@pytest.fixture
def cluster(swarm_cluster):
    host = SwarmCluster(HostSpec("cluster", swarm_cluster["manager_host"]))
    made: list[str] = []
    yield host, made, swarm_cluster
    for service_id in made:
        with contextlib.suppress(Exception):  # already gone
            host.remove_service(service_id)
    host.close()


def _spec(repo, body: str, *, image: str = "local/web:1"):
    desired = load_repo(repo({"web.yaml": service("web", "init: true\nstopGracePeriod: 1s\n" + body, image=image)}),
                        key=ephemeral_key()).desired
    assert desired is not None
    return desired.service("web")


def _nodes_of(client, service_id: str) -> list[str]:
    return sorted(t["NodeID"] for t in client.api.tasks(filters={"service": service_id, "desired-state": "running"})
                  if t["Status"]["State"] == "running")


def test_a_service_is_placed_by_node_label_and_reads_back_as_sent(cluster, repo) -> None:
    host, made, facts = cluster
    name = f"g{uuid.uuid4().hex[:8]}_web"
    svc = _spec(repo, "replicas: 2\n" + CHECK)
    spec, _ = swarm_service_spec("proj", svc, "r1", name=name, placement=Placement(("node.labels.zone==b",)))
    service_id = host.create_service(spec)
    made.append(service_id)
    done = host.converge(service_id, deadline=time.monotonic() + 60)
    assert done.ok, done
    assert _nodes_of(facts["manager"], service_id) == [facts["worker_node_id"]] * 2
    (seen,) = host.observe_services("proj", lambda s, n, v: v)
    assert (seen.service, seen.replicas, seen.hand_changed) == ("web", 2, False)

    # changed by hand (`docker service update --env-add`): the spec read back no longer hashes as sent
    info = facts["manager"].api.inspect_service(service_id)
    task = info["Spec"]["TaskTemplate"]
    task["ContainerSpec"]["Env"] = [*task["ContainerSpec"].get("Env", []), "DEBUG=1"]
    facts["manager"].api.update_service(service_id, info["Version"]["Index"], task_template=task,
                                        name=info["Spec"]["Name"], labels=info["Spec"]["Labels"],
                                        mode=info["Spec"]["Mode"], fetch_current_spec=True)
    (changed,) = host.observe_services("proj", lambda s, n, v: v)
    assert changed.hand_changed


def test_a_rollout_converges_and_a_failing_health_check_is_rolled_back_not_converged(cluster, repo) -> None:
    host, made, facts = cluster
    name = f"g{uuid.uuid4().hex[:8]}_web"
    first, _ = swarm_service_spec("proj", _spec(repo, "replicas: 2\n" + CHECK), "r1", name=name)
    service_id = host.create_service(first)
    made.append(service_id)
    assert host.converge(service_id, deadline=time.monotonic() + 60).ok

    (seen,) = host.observe_services("proj", lambda s, n, v: v)
    second, _ = swarm_service_spec("proj", _spec(repo, "replicas: 2\n" + CHECK, image="local/web:2"), "r2",
                                   name=name)
    host.update_service(service_id, seen.version, second)
    updated = host.converge(service_id, deadline=time.monotonic() + 90)
    assert updated.ok, updated
    images = {t["Spec"]["ContainerSpec"]["Image"] for t in facts["manager"].api.tasks(
        filters={"service": service_id, "desired-state": "running"})}
    assert images == {"local/web:2"}

    (seen,) = host.observe_services("proj", lambda s, n, v: v)
    broken, notes = swarm_service_spec("proj", _spec(repo, "replicas: 2\n" + FAILING, image="local/web:1"), "r3",
                                       name=name)
    assert notes == ()  # the window (0 + 2 x 1.3 s) is under the 5 s monitor
    host.update_service(service_id, seen.version, broken)
    failed = host.converge(service_id, deadline=time.monotonic() + 120)
    assert failed.status == "rolled_back", failed
    assert not failed.ok
    (after,) = host.observe_services("proj", lambda s, n, v: v)
    assert after.update_state == "rollback_completed"
    images = {t["Spec"]["ContainerSpec"]["Image"] for t in facts["manager"].api.tasks(
        filters={"service": service_id, "desired-state": "running"})}
    assert images == {"local/web:2"}  # what ran before the broken update


def test_a_rollout_that_outlives_its_deadline_is_rolled_back_by_gitops(cluster, repo) -> None:
    host, made, facts = cluster
    name = f"g{uuid.uuid4().hex[:8]}_web"
    first, _ = swarm_service_spec("proj", _spec(repo, CHECK), "r1", name=name)
    service_id = host.create_service(first)
    made.append(service_id)
    assert host.converge(service_id, deadline=time.monotonic() + 60).ok
    (seen,) = host.observe_services("proj", lambda s, n, v: v)
    slow = "healthcheck: {exec: [sh, -c, 'exit 1'], interval: 1s, timeout: 1s, retries: 30}"
    broken, notes = swarm_service_spec("proj", _spec(repo, slow, image="local/web:2"), "r2", name=name)
    assert notes and "raised from 5s to 60s" in notes[0]  # 30 x (1 + 1) s: Swarm would never see it fail sooner
    host.update_service(service_id, seen.version, broken)
    done = host.converge(service_id, deadline=time.monotonic() + 5)  # gitops' own deadline ends first
    assert done.status == "rolled_back" and done.message.startswith("rolled back by gitops"), done
    with pytest.raises(docker.errors.NotFound):
        facts["manager"].api.inspect_service("no-such-service")
