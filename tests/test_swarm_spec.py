"""A gitops Service as a Swarm ServiceSpec (gitops.core.swarm): the mapping, the raised monitor, the settings a
Swarm task cannot have, and a hand-change hash that cannot confirm a guessed secret."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from gitops.core.model import Port, ephemeral_key
from gitops.core.swarm import (
    LABEL_SWARM_HASH,
    Placement,
    SwarmSpecError,
    monitor_seconds,
    swarm_hash,
    swarm_service_spec,
)
from gitops.manifests.load import load_repo
from tests.conftest import service

CHECK = "healthcheck: {exec: [wget, -q, -O, /dev/null, 'http://127.0.0.1:8080/'], interval: 2s, timeout: 1s, retries: 3, startPeriod: 4s}"


@pytest.fixture
def spec_of(repo):
    key = ephemeral_key()

    def load(body: str, **kw: str):
        loaded = load_repo(repo({"web.yaml": service("web", body, **kw)}), key=key)
        assert loaded.desired is not None, [str(e) for e in loaded.errors]
        return loaded.desired.service("web")

    return load


def test_the_mapping_of_every_field_swarm_takes(spec_of, tmp_path) -> None:
    svc = spec_of(f"""
replicas: 3
command: [httpd, -f, -p, '8080']
entrypoint: [/bin/sh, -c]
env: {{MODE: prod}}
workingDir: /www
user: '1000'
ports: [{{container: 8080}}]
resources: {{cpus: 0.5, memory: 64Mi}}
stopGracePeriod: 3s
init: true
update: {{parallelism: 2, order: start-first, minHealthyTime: 2s}}
{CHECK}
labels: {{team: shop}}
""")
    svc = dataclasses.replace(svc, ports=(Port(8080, 18080),))  # one published port for every replica: the mesh
    spec, notes = swarm_service_spec("shop", svc, "r1", name="shop_web", networks={},
                                     placement=Placement(("node.labels.zone==b",), ("zone",)))
    container = spec["TaskTemplate"]["ContainerSpec"]
    assert (container["Image"], container["Command"], container["Args"]) == (
        "local/web:1", ["/bin/sh", "-c"], ["httpd", "-f", "-p", "8080"])
    assert (container["Env"], container["Dir"], container["User"], container["Init"]) == (
        ["MODE=prod"], "/www", "1000", True)
    assert container["StopGracePeriod"] == 3_000_000_000
    assert container["Healthcheck"] == {"Test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"],
                                        "Interval": 2_000_000_000, "Timeout": 1_000_000_000, "Retries": 3,
                                        "StartPeriod": 4_000_000_000}
    assert spec["TaskTemplate"]["Resources"] == {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 * 2**20}}
    assert spec["TaskTemplate"]["Placement"] == {
        "Constraints": ["node.labels.zone==b"], "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]}
    assert spec["Mode"] == {"Replicated": {"Replicas": 3}}
    assert spec["EndpointSpec"]["Ports"] == [{"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "ingress",
                                              "PublishedPort": 18080}]
    # the monitor outlasts the health check's window: 4 + 3 x (2 + 1) = 13 s, not minHealthyTime's 2 s
    assert spec["UpdateConfig"] == {"Parallelism": 2, "Delay": 0, "FailureAction": "rollback",
                                    "Monitor": 13_000_000_000, "MaxFailureRatio": 0, "Order": "start-first"}
    assert spec["RollbackConfig"]["FailureAction"] == "pause"
    assert notes == ("web: the update monitor is raised from 5s to 13s, the health check's window (start period + "
                     "retries x (interval + timeout)), so that Swarm sees a task fail its health check before it "
                     "calls the update done",)
    assert spec["Labels"]["team"] == "shop" and spec["Labels"]["io.gitops.project"] == "shop"


def test_no_raise_without_a_health_check_and_min_healthy_time_is_the_floor(spec_of) -> None:
    assert monitor_seconds(spec_of("update: {minHealthyTime: 8s}")) == (8.0, "")
    assert monitor_seconds(spec_of("")) == (5.0, "")


def test_a_privileged_service_is_refused(spec_of) -> None:
    with pytest.raises(SwarmSpecError) as caught:
        swarm_service_spec("shop", dataclasses.replace(spec_of(""), privileged=True), "r1", name="shop_web")
    assert str(caught.value) == "web: not possible on a Swarm service: privileged (Swarm services cannot be privileged)"


@pytest.mark.parametrize("body, expected", [
    ("ports: [{container: 80, host: 8080, hostIp: 127.0.0.1}]",
     "web: not possible on a Swarm service: ports with hostIp (the routing mesh publishes on every node)"),
    ("ports: [{container: 80, host: 8080}]\nhealthcheck: {http: {port: 80}}",
     "web: a http health check is probed through a container's published host port, which a Swarm task does "
     "not have: use an exec check (it runs inside each task)"),
])
def test_settings_a_swarm_task_cannot_have_are_named_with_the_way_out(spec_of, body: str, expected: str) -> None:
    with pytest.raises(SwarmSpecError) as caught:
        swarm_service_spec("shop", spec_of(body), "r1", name="shop_web")
    assert str(caught.value) == expected


def test_the_hand_change_hash_sees_any_change_but_holds_no_plain_secret(spec_of, tmp_path) -> None:
    (tmp_path / "pw").write_text("hunter2\n")
    svc = spec_of("env: {MODE: prod}")
    secret_env = dataclasses.replace(svc.env[0], name="DB_PASSWORD", value="hunter2", secret=True,
                                     digest=ephemeral_key().digest("DB_PASSWORD", "hunter2"))
    svc = dataclasses.replace(svc, env=(*svc.env, secret_env))
    spec, _ = swarm_service_spec("shop", svc, "r1", name="shop_web")
    label = spec["Labels"][LABEL_SWARM_HASH]
    assert "DB_PASSWORD=hunter2" in spec["TaskTemplate"]["ContainerSpec"]["Env"]  # the task needs the value
    plain = hashlib.sha256(str(spec).encode()).hexdigest()
    assert label != plain
    # read back unchanged, with the digest standing for the secret: the same hash
    digests = {"DB_PASSWORD": secret_env.digest}
    assert swarm_hash(spec, lambda n, v: digests.get(n, v)) == label
    # changed by hand: another hash
    changed = {**spec, "TaskTemplate": {**spec["TaskTemplate"], "ContainerSpec": {
        **spec["TaskTemplate"]["ContainerSpec"], "Env": ["MODE=debug", "DB_PASSWORD=hunter2"]}}}
    assert swarm_hash(changed, lambda n, v: digests.get(n, v)) != label
    # the label cannot confirm a guess without the installation's key
    guessed = swarm_hash(spec, lambda n, v: v)
    assert guessed != label
