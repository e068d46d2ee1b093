"""The planner for services on a Swarm cluster (a Host with mode: swarm), from observed states made by hand: no
docker. What the cluster itself does with these plans is in tests/test_swarm_gitops.py."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gitops.core.model import (
    LABEL_SPEC,
    HostObservation,
    ObservedObject,
    ObservedState,
    ObservedSwarmService,
    ephemeral_key,
    observed_from_dict,
    observed_to_dict,
)
from gitops.core.plan import FieldChange, Finding, Plan, SwarmArgs
from gitops.core.planner import observed_fingerprint, plan
from gitops.core.saved_plan import parse
from gitops.core.swarm import LABEL_SWARM_HASH, swarm_service_spec
from gitops.manifests.load import load_repo
from tests.conftest import service

HOST = ("apiVersion: gitops/v1\nkind: Host\nmetadata: {name: cluster}\nspec:\n  url: unix:///var/run/docker.sock\n"
        "  mode: swarm\n")
PROJECT = "apiVersion: gitops/v1\nkind: Project\nmetadata: {name: p}\nspec: {prune: true}\n"
CHECK = "healthcheck: {exec: [sh, -c, 'true'], interval: 10s, timeout: 5s, retries: 3, startPeriod: 5s}"


@pytest.fixture
def desired_of(repo):
    key = ephemeral_key()

    def load(files: dict[str, str]):
        loaded = load_repo(repo({"project.yaml": PROJECT, "host.yaml": HOST, **files}), key=key, revision="r2")
        assert loaded.desired is not None, [str(e) for e in loaded.errors]
        return loaded.desired

    return load


def running(desired, name: str = "web", **changes) -> ObservedSwarmService:
    """The Swarm service gitops would have made for ``name`` of ``desired``, as observed running."""
    svc = desired.service(name)
    spec, _ = swarm_service_spec("p", svc, "r1", host=desired.hosts[0])
    found = ObservedSwarmService(host="cluster", id=f"id-{name}", name=spec["Name"], service=name, version=7,
                                 spec_hash=svc.spec_hash, swarm_hash=spec["Labels"][LABEL_SWARM_HASH], revision="r1",
                                 spec_json=spec["Labels"][LABEL_SPEC], replicas=svc.replicas, running=svc.replicas)
    return dataclasses.replace(found, **changes)


def cluster(*services: ObservedSwarmService, files: tuple[ObservedObject, ...] = ()) -> ObservedState:
    return ObservedState((HostObservation("cluster", True, swarm=True, services=services, files=files),))


def test_a_new_service_is_one_create_step_that_waits_for_convergence_and_says_when_the_monitor_is_raised(
        desired_of) -> None:
    desired = desired_of({"web.yaml": service("web", f"replicas: 3\n{CHECK}")})
    made = plan(desired, cluster())
    (step,) = made.steps
    assert (step.id, step.host, step.action, step.slot) == ("service/web@cluster", "cluster", "create", None)
    assert [op.kind for op in step.ops] == ["service_create", "wait_converged"]
    assert step.ops[0].container == "p_web" and step.ops[0].args == SwarmArgs("web")
    assert any("monitor is raised from 5s to 50s" in w for w in made.warnings), made.warnings  # 5 + 3 x (10 + 5)


def test_up_to_date_is_a_noop_and_a_new_commit_alone_changes_nothing(desired_of) -> None:
    desired = desired_of({"web.yaml": service("web", "replicas: 2")})
    made = plan(desired, cluster(running(desired)))  # made at r1, desired is r2: the revision is not a change
    assert [(s.action, s.reason) for s in made.steps] == [("noop", "up to date")]
    assert made.warnings == ()


def test_tasks_swarm_is_still_placing_are_reported_not_planned(desired_of) -> None:
    desired = desired_of({"web.yaml": service("web", "replicas: 2")})
    made = plan(desired, cluster(running(desired, running=1, task_error="no suitable node")))
    (step,) = made.steps
    assert step.action == "noop" and "1 of 2 tasks running" in step.reason
    assert any("Swarm reschedules them itself" in w and "no suitable node" in w for w in made.warnings)


def test_a_change_is_an_update_in_place_shown_field_by_field(desired_of) -> None:
    before = desired_of({"web.yaml": service("web", "replicas: 2\nenv: {LOG: info}")})
    after = desired_of({"web.yaml": service("web", "replicas: 3\nenv: {LOG: debug, TOKEN: {secretFile: token.txt}}\n"
                                                   "placement: {nodeSelector: {zone: b}, spread: [rack]}"),
                        "token.txt": "s3cr3t"})
    made = plan(after, cluster(running(before)))
    (step,) = made.steps
    assert step.action == "update" and step.reason.startswith("start-first rolling update by Swarm")
    assert [op.kind for op in step.ops] == ["service_update", "wait_converged"]
    assert step.ops[0].args == SwarmArgs("web", "id-web", 7)  # the version it was planned against
    changes = {c.path: c for c in step.changes}
    assert changes["env.LOG"] == FieldChange("env.LOG", "info", "debug")
    assert changes["env.TOKEN"].secret and changes["env.TOKEN"].new is None
    assert changes["replicas"] == FieldChange("replicas", 2, 3)
    assert changes["placement.constraints"].new == ["node.labels.zone==b"]
    assert changes["placement.spread"].new == ["rack"]
    assert "s3cr3t" not in made.to_json()
    assert any("secret env TOKEN is part of the Swarm service's spec" in w for w in made.warnings), made.warnings


def test_a_hand_change_is_put_back_or_only_reported_with_self_heal_off(desired_of) -> None:
    desired = desired_of({"web.yaml": service("web")})
    (step,) = plan(desired, cluster(running(desired, hand_changed=True))).steps
    assert (step.action, step.finding) == ("update", Finding.REPLACED_BY_HAND)
    assert "changed by hand" in step.reason

    off = desired_of({"web.yaml": service("web", "selfHeal: false")})
    made = plan(off, cluster(running(off, hand_changed=True)))
    (step,) = made.steps
    assert (step.action, step.finding) == ("noop", Finding.SELF_HEAL_OFF)
    assert any("selfHeal is off" in w for w in made.warnings)


def test_prune_removes_undeclared_swarm_services_dependents_first(desired_of) -> None:
    old = desired_of({"web.yaml": service("web"), "db.yaml": service("db"),
                      "api.yaml": service("api", "dependsOn: [db]")})
    now = desired_of({"web.yaml": service("web")})
    made = plan(now, cluster(running(old, "web"), running(old, "db", depends_on=()),
                             running(old, "api", depends_on=("db",))))
    removals = {s.name: s for s in made.steps if s.action == "remove"}
    assert set(removals) == {"api", "db"}
    assert removals["db"].depends_on == (removals["api"].id,)
    assert [op.kind for op in removals["api"].ops] == ["service_remove"]
    assert removals["api"].ops[0].args == SwarmArgs("api", "id-api", 7)


def test_a_service_moved_off_the_cluster_is_removed_there_after_it_runs_elsewhere(repo) -> None:
    plain = "apiVersion: gitops/v1\nkind: Host\nmetadata: {name: plain}\nspec: {url: 'unix:///plain.sock'}\n"
    key = ephemeral_key()
    files = {"project.yaml": PROJECT, "host.yaml": HOST, "plain.yaml": plain}
    on_cluster = load_repo(repo({**files, "web.yaml": service("web", "placement: {hosts: [cluster]}")}),
                           key=key).desired
    assert on_cluster is not None
    moved = load_repo(repo({**files, "web.yaml": service("web", "placement: {hosts: [plain]}")}), key=key).desired
    assert moved is not None
    observed = ObservedState((HostObservation("cluster", True, swarm=True, services=(running(on_cluster),)),
                              HostObservation("plain", True)))
    made = plan(moved, observed)
    create = next(s for s in made.steps if s.action == "create")
    removal = next(s for s in made.steps if s.action == "remove")
    assert create.host == "plain" and removal.host == "cluster"
    assert removal.depends_on == (create.id,) and "no longer placed on cluster" in removal.reason


def test_observed_swarm_state_round_trips_as_status_json_for_plan_observed_and_saved_plans(desired_of) -> None:
    desired = desired_of({"web.yaml": service("web")})
    observed = cluster(running(desired, hand_changed=True), files=(
        ObservedObject("cluster", "secret", "web", "p_web_abc", id="s1"),))
    again = observed_from_dict(json.loads(json.dumps(observed_to_dict(observed))))
    assert again == observed
    assert observed_fingerprint(again) == observed_fingerprint(observed)
    assert observed_fingerprint(cluster(running(desired))) != observed_fingerprint(observed)
    made = plan(desired, again)
    assert parse(made.to_json()) == made == Plan.from_dict(json.loads(made.to_json()))


def test_plan_base_compares_two_commits_of_a_swarm_service_without_a_cluster(desired_of) -> None:
    from gitops.core.observed import converged

    base = desired_of({"web.yaml": service("web", "replicas: 2")})
    head = desired_of({"web.yaml": service("web", "replicas: 4")})
    assert [s.action for s in plan(base, converged(base)).steps] == ["noop"]
    (step,) = plan(head, converged(base)).steps
    assert step.action == "update" and [c.describe() for c in step.changes] == ["replicas: 2 -> 4"]


def test_a_swarm_service_keeps_the_digest_its_spec_names_when_the_registry_does_not_answer(desired_of) -> None:
    from gitops.engine.images import running_digests

    desired = desired_of({"web.yaml": service("web")})
    digest = "sha256:" + "ab" * 32
    found = running(desired, spec_json=json.dumps({"image": f"registry.example:5000/app:1@{digest}"}))
    assert running_digests(cluster(found)) == {("web", "registry.example:5000/app:1"): digest}


def test_a_service_moved_onto_the_cluster_has_its_containers_removed_once_the_swarm_service_converged(
        desired_of) -> None:
    from gitops.core.model import ObservedContainer

    desired = desired_of({"web.yaml": service("web")})
    old = ObservedContainer(host="cluster", id="c1", name="p-web-0-abc", service="web", slot=0, spec_hash="x",
                            revision="r1", state="running", health="none", image="local/web:1")
    observed = ObservedState((HostObservation("cluster", True, containers=(old,), swarm=True),))
    made = plan(desired, observed)
    create = next(s for s in made.steps if s.action == "create")
    removal = next(s for s in made.steps if s.action == "remove")
    assert removal.depends_on == (create.id,) and "now runs on Swarm cluster cluster" in removal.reason
    assert [op.kind for op in removal.ops] == ["stop", "remove"]


def test_checks_on_a_cluster_and_what_they_leave_to_swarm(repo) -> None:
    """What holds for containers gitops places (a fixed host port once per host, start-first with it) is Swarm's
    business on a cluster; what Swarm cannot take is refused with the way out."""
    key = ephemeral_key()
    web = service("web", "replicas: 3\nports: [{container: 8080, host: 80}]\nupdate: {order: start-first}")
    net = "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: backend}\nspec: {driver: overlay}\n"
    ok = load_repo(repo({"project.yaml": PROJECT, "host.yaml": HOST, "web.yaml": web, "net.yaml": net}), key=key)
    assert ok.desired is not None, [str(e) for e in ok.errors]

    vol = "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: data}\nspec: {remove: true}\n"
    bad = load_repo(repo({
        "project.yaml": PROJECT, "host.yaml": HOST, "vol.yaml": vol, "big.bin": "x" * (501 * 1024),
        "web.yaml": service("web", "placement: {nodeSelector: {node.labels.zone: b}, spread: [node.labels.rack]}"),
        "db.yaml": service("db", "mounts: [{type: volume, source: data, target: /data}]\n"
                                 "files: [{source: big.bin, target: /run/secrets/big, secret: true}]"),
    }), key=key)
    errors = "\n".join(str(e) for e in bad.errors)
    assert "nodeSelector.node.labels.zone: write the node label's name alone (zone)" in errors, errors
    assert "spread[0]: write the node label's name alone (rack)" in errors, errors
    if "db.yaml" not in errors:  # the built service's checks come once the manifests themselves are right
        bad = load_repo(repo({
            "project.yaml": PROJECT, "host.yaml": HOST, "vol.yaml": vol, "big.bin": "x" * (501 * 1024),
            "db.yaml": service("db", "mounts: [{type: volume, source: data, target: /data}]\n"
                                     "files: [{source: big.bin, target: /run/secrets/big, secret: true}]")}), key=key)
        errors = "\n".join(str(e) for e in bad.errors)
    assert "secret files over Swarm's 500 KiB per secret: /run/secrets/big" in errors, errors
    assert "Volume data says remove: true, but cluster is a Swarm cluster" in errors, errors


def test_a_volume_mount_carries_the_volume_manifests_driver_options_and_labels(repo) -> None:
    nfs = ("apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: data}\nspec:\n  driver: local\n"
           "  options: {type: nfs, o: 'addr=10.0.0.9,rw', device: ':/export/data'}\n")
    loaded = load_repo(repo({"project.yaml": PROJECT, "host.yaml": HOST, "vol.yaml": nfs,
                             "db.yaml": service("db", "mounts: [{type: volume, source: data, target: /data}]")}),
                       key=ephemeral_key())
    desired = loaded.desired
    assert desired is not None, [str(e) for e in loaded.errors]
    spec, _ = swarm_service_spec("p", desired.service("db"), "r1", host=desired.hosts[0],
                                 declared_volumes=desired.volumes)
    (mount,) = spec["TaskTemplate"]["ContainerSpec"]["Mounts"]
    assert mount["Source"] == "p_data"
    assert mount["VolumeOptions"]["DriverConfig"] == {"Name": "local", "Options": {
        "type": "nfs", "o": "addr=10.0.0.9,rw", "device": ":/export/data"}}
    assert mount["VolumeOptions"]["Labels"]["io.gitops.project"] == "p"


def test_what_the_cluster_says_is_input_a_hostile_spec_label_and_a_decoy_service(desired_of) -> None:
    from gitops.daemon.status import build_status

    desired = desired_of({"web.yaml": service("web")})
    deep = running(desired, swarm_hash="other", spec_json="[" * 100_000 + "]" * 100_000)
    (step,) = plan(desired, cluster(deep)).steps
    assert step.action == "update" and step.changes == (FieldChange("spec", None, None, secret=True),)
    wide = running(desired, swarm_hash="other", spec_json=json.dumps({f"k{i}": i for i in range(5000)}))
    (step,) = plan(desired, cluster(wide)).steps
    assert len(step.changes) == 201 and step.changes[-1].path.endswith("more fields)")
    # a service of the cluster carrying the project's labels under another name is not the one status shows
    decoy = dataclasses.replace(running(desired), name="aaa_decoy", id="decoy", update_state="paused",
                                task_error="fake")
    doc = build_status(desired, cluster(decoy, running(desired)), source={}, last_pass=None, pins={}, last_good={},
                       pending=None)
    assert doc["services"][0]["swarm"]["service"] == "p_web"
