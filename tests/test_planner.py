"""The planner as data: desired manifests + a synthetic observed state -> expected steps (pure, no Docker).

Every scenario also checks the second pass: after the plan is carried out, the next plan is empty.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from gitops.core.model import (
    DesiredState,
    ObservedContainer,
    ObservedState,
    canonical_json,
    container_name,
    ephemeral_key,
)
from gitops.core.plan import Finding, Plan, RemoveArgs
from gitops.core.planner import PlanError, PlanOptions, plan
from gitops.manifests.load import load_repo
from gitops.testing import converged, empty, unreachable, with_containers
from tests.conftest import PROJECT, service

NET = "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: %s}\n"
VOL = "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: %s}\n"
HOSTS = ("apiVersion: gitops/v1\nkind: Host\nmetadata: {name: h1}\nspec: {url: 'unix:///run/h1.sock'}\n---\n"
         "apiVersion: gitops/v1\nkind: Host\nmetadata: {name: h2}\nspec: {url: 'unix:///run/h2.sock'}\n")

SHOP = {
    "infra.yaml": NET % "backend" + "---\n" + VOL % "data",
    "db.yaml": service("db", "mounts: [{type: volume, source: data, target: /d}]\nnetworks: [backend]\n"
                       "healthcheck: {exec: ['true'], interval: 200ms}"),
    "api.yaml": service("api", "networks: [backend]\ndependsOn: [{service: db, condition: healthy}]"),
    "web.yaml": service("web", "replicas: 2\ndependsOn: [api]\nenv: {LOG_LEVEL: info, TOKEN: {secretFile: token}}"),
    "token": "t0ken-canary\n",
}


@pytest.fixture
def desired_of(repo):
    key = ephemeral_key()  # one installation: every load of a test digests secrets with the same key

    def load(files: dict[str, str], *, revision: str = "rev1") -> DesiredState:
        outcome = load_repo(repo(files), revision=revision, key=key)
        assert outcome.errors == [], outcome.errors
        assert outcome.desired is not None
        return outcome.desired

    return load


def summary(p: Plan) -> list[tuple[str, str]]:
    return [(s.id, s.action) for s in p.steps if s.action != "noop"]


def assert_second_pass_empty(desired: DesiredState) -> None:
    again = plan(desired, converged(desired))
    assert not again.has_changes, summary(again)


def test_create_from_nothing_in_dependency_waves(desired_of) -> None:
    desired = desired_of(SHOP)
    p = plan(desired, empty(desired))
    assert summary(p) == [
        ("network/backend@local", "create"), ("volume/data@local", "create"),
        ("service/db/0@local", "create"), ("service/api/0@local", "create"),
        ("service/web/0@local", "create"), ("service/web/1@local", "create"),
    ]
    steps = {s.id: s for s in p.steps}
    assert steps["service/db/0@local"].depends_on == ("network/backend@local", "volume/data@local")
    assert steps["service/api/0@local"].depends_on == ("network/backend@local", "service/db/0@local")
    assert steps["service/web/1@local"].depends_on == ("service/api/0@local",)
    assert [o.kind for o in steps["service/db/0@local"].ops] == ["pull", "create", "start", "wait_healthy"]
    assert_second_pass_empty(desired)


def test_nothing_to_do_when_converged(desired_of) -> None:
    desired = desired_of(SHOP)
    p = plan(desired, converged(desired))
    assert not p.has_changes and p.summary() == {"create": 0, "update": 0, "remove": 0, "noop": 6}


def test_image_change_is_a_start_first_update_with_field_changes(desired_of) -> None:
    before = desired_of(SHOP)
    after = desired_of({**SHOP, "web.yaml": SHOP["web.yaml"].replace("local/web:1", "local/web:2")
                        .replace("LOG_LEVEL: info", "LOG_LEVEL: debug")})
    p = plan(after, converged(before))
    assert summary(p) == [("service/web/0@local", "update"), ("service/web/1@local", "update")]
    step = p.steps[-1]
    assert [c.describe() for c in step.changes] == ["env.LOG_LEVEL: info -> debug", "image: local/web:1 -> local/web:2"]
    assert step.reason == "start-first rolling update (env.LOG_LEVEL, image changed)"
    old = container_name("test", "web", 1, before.service("web").spec_hash)
    new = container_name("test", "web", 1, after.service("web").spec_hash)
    assert [(o.kind, o.container) for o in step.ops] == [
        ("pull", "local/web:2"), ("create", new), ("start", new), ("wait_healthy", new), ("stop", old), ("remove", old)]
    assert step.ops[-1].args == RemoveArgs(step.ops[-1].args.id, after="service")  # the old container goes only once the service is healthy
    assert_second_pass_empty(after)


def test_secret_change_is_masked_everywhere(desired_of) -> None:
    before = desired_of(SHOP)
    after = desired_of({**SHOP, "token": "rotated-canary\n"})
    p = plan(after, converged(before))
    changes = [c for s in p.steps for c in s.changes]
    assert [c.describe() for c in changes] == ["env.TOKEN: (secret changed)"] * 2
    from gitops.core.plan import render_markdown, render_text
    for text in (p.to_json(), render_text(p), render_markdown(p), repr(p)):
        assert "canary" not in text


def test_stop_first_with_fixed_port_stops_the_old_container_first(desired_of) -> None:
    files = {"s.yaml": service("web", "ports: [{container: 8080, host: 18080}]")}
    before = desired_of(files)
    after = desired_of({"s.yaml": files["s.yaml"].replace("web:1", "web:2")})
    step = plan(after, converged(before)).changes[0]
    assert step.reason.startswith("stop-first rolling update")
    assert [o.kind for o in step.ops] == ["pull", "stop", "create", "start", "wait_healthy", "remove"]


def test_rollout_settings_do_not_touch_containers(desired_of) -> None:
    before = desired_of({"s.yaml": service("web", "replicas: 2")})
    after = desired_of({"s.yaml": service("web", "replicas: 2\nupdate: {parallelism: 2, minHealthyTime: 3s}")})
    assert not plan(after, converged(before)).has_changes


def test_scale_down_and_up(desired_of) -> None:
    three = desired_of({"s.yaml": service("web", "replicas: 3")})
    one = desired_of({"s.yaml": service("web", "replicas: 1")})
    down = plan(one, converged(three))
    assert [(s.id.split("/remove/")[0], s.action, s.reason) for s in down.changes] == [
        ("service/web/1@local", "remove", "scaled down to 1 replicas"),
        ("service/web/2@local", "remove", "scaled down to 1 replicas")]
    up = plan(three, converged(one))
    assert summary(up) == [("service/web/1@local", "create"), ("service/web/2@local", "create")]


def test_placement_move_creates_before_it_removes(desired_of) -> None:
    on_h1 = desired_of({"h.yaml": HOSTS, "s.yaml": service("web", "placement: {hosts: [h1]}")})
    on_h2 = desired_of({"h.yaml": HOSTS, "s.yaml": service("web", "placement: {hosts: [h2]}")})
    p = plan(on_h2, converged(on_h1))
    create, remove = p.changes
    assert (create.id, create.action) == ("service/web/0@h2", "create")
    assert remove.action == "remove" and remove.host == "h1" and remove.reason == "slot 0 now runs on h2"
    assert remove.depends_on == (create.id,)


def test_replicas_spread_over_hosts(desired_of) -> None:
    desired = desired_of({"h.yaml": HOSTS, "s.yaml": service("web", "replicas: 3")})
    assert [(s.host, s.slot) for s in plan(desired, empty(desired)).changes] == [("h1", 0), ("h2", 1), ("h1", 2)]


def test_interrupted_update_keeps_the_new_container_and_removes_the_old(desired_of) -> None:
    before = desired_of({"s.yaml": service("web")})
    after = desired_of({"s.yaml": service("web", image="local/web:2")})
    # A pass died after starting the new container and before removing the old one.
    obs = with_containers(converged(after), "local", _container(before, "web", 0, state="exited"))
    p = plan(after, obs)
    assert [(s.action, s.reason) for s in p.changes] == [("remove", "leftover of an interrupted update")]
    assert_second_pass_empty(after)


def test_interrupted_stop_first_update_starts_over(desired_of) -> None:
    """Old stopped, new not created yet: the next pass creates the new one and removes the old."""
    before = desired_of({"s.yaml": service("web")})
    after = desired_of({"s.yaml": service("web", image="local/web:2")})
    obs = converged(before, tweak=lambda c: dataclasses.replace(c, state="exited"))
    step = plan(after, obs).changes[0]
    assert step.action == "update"
    assert [o.kind for o in step.ops] == ["pull", "create", "start", "wait_healthy", "remove"]


def test_drift_stopped_container_is_started_or_reported(desired_of) -> None:
    desired = desired_of({"s.yaml": service("web")})
    stopped = converged(desired, tweak=lambda c: dataclasses.replace(c, state="exited"))
    step = plan(desired, stopped).changes[0]
    assert (step.action, step.reason, [o.kind for o in step.ops]) == (
        "update", "container is exited; starting it", ["start", "wait_healthy"])
    no_heal = desired_of({"s.yaml": service("web", "selfHeal: false")})
    stopped = converged(no_heal, tweak=lambda c: dataclasses.replace(c, state="exited"))
    p = plan(no_heal, stopped)
    assert not p.has_changes
    assert p.warnings == ("web[0] on local is exited (drift; selfHeal is off, so it is only reported)",)


def test_removed_container_is_recreated(desired_of) -> None:
    desired = desired_of({"s.yaml": service("web", "replicas: 2")})
    p = plan(desired, converged(desired, tweak=lambda c: None if c.slot == 1 else c))
    assert summary(p) == [("service/web/1@local", "create")]


def test_prune_off_keeps_and_warns_prune_on_removes_in_reverse_dependency_order(desired_of) -> None:
    full = desired_of(SHOP)
    only_db = desired_of({k: v for k, v in SHOP.items() if k not in ("api.yaml", "web.yaml")})
    kept = plan(only_db, converged(full))
    assert not kept.has_changes
    assert kept.warnings == ("not declared any more but kept, because prune is off: api, web",)
    pruning = desired_of({**{k: v for k, v in SHOP.items() if k not in ("api.yaml", "web.yaml")},
                          "project.yaml": PROJECT + "spec: {prune: true}\n"})
    p = plan(pruning, converged(full))
    removals = {s.id: s for s in p.changes}
    assert all(s.action == "remove" for s in removals.values()) and len(removals) == 3
    api_step = next(s for s in removals.values() if s.name == "api")
    web_steps = sorted(s.id for s in removals.values() if s.name == "web")
    assert api_step.depends_on == tuple(web_steps)  # web depends on api: web goes first


def test_empty_desired_state_never_prunes_everything(desired_of) -> None:
    full = desired_of({**SHOP, "project.yaml": PROJECT + "spec: {prune: true}\n"})
    nothing = desired_of({"project.yaml": PROJECT + "spec: {prune: true}\n"})
    with pytest.raises(PlanError, match="declare no service.*--allow-empty"):
        plan(nothing, converged(full))
    allowed = plan(nothing, converged(full), options=PlanOptions(allow_empty=True))
    assert len(allowed.changes) == 4


def test_unreachable_host_gets_no_steps_and_is_reported(desired_of) -> None:
    desired = desired_of({"h.yaml": HOSTS, "s.yaml": service("web", "replicas: 2")})
    p = plan(desired, unreachable(empty(desired), "h2", "connection refused"))
    assert summary(p) == [("service/web/0@h1", "create")]
    assert p.unreachable == (("h2", "connection refused"),)


def test_volume_removal_only_when_the_manifest_says_so(desired_of) -> None:
    desired = desired_of({**SHOP, "infra.yaml": NET % "backend" + "---\n" + VOL % "data" + "---\n" + VOL % "old"
                          + "spec: {remove: true}\n"})
    obs = converged(desired)
    from gitops.core.model import HostObservation, ObservedObject
    host = obs.hosts[0]
    obs = ObservedState((HostObservation(host.host, True, "", host.containers, host.networks,
                                         host.volumes + (ObservedObject("local", "volume", "old", "test_old"),)),))
    assert summary(plan(desired, obs)) == [("volume/old@local/remove", "remove")]
    assert not plan(desired, converged(desired)).has_changes  # a volume that is not there is not removed


def test_plan_is_deterministic(desired_of) -> None:
    desired = desired_of(SHOP)
    outputs = {plan(desired, empty(desired)).to_json() for _ in range(3)}
    assert len(outputs) == 1
    p = plan(desired, empty(desired))
    assert Plan.from_dict(__import__("json").loads(p.to_json())) == p


def _container(desired: DesiredState, service_name: str, slot: int, **changes: object) -> ObservedContainer:
    svc = desired.service(service_name)
    name = container_name(desired.project.name, svc.name, slot, svc.spec_hash)
    base = ObservedContainer("local", f"id-{name}", name, svc.name, slot, svc.spec_hash, "", "running", "none",
                             svc.image, canonical_json(svc.container_config()))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_container_replaced_by_hand_with_another_image_is_put_back(desired_of) -> None:
    desired = desired_of({"s.yaml": service("web")})
    replaced = converged(desired, tweak=lambda c: dataclasses.replace(c, image="someone/else:latest", id="x"))
    step = plan(desired, replaced).changes[0]
    assert step.action == "update" and step.reason.startswith("container is not the declared one")
    assert [c.describe() for c in step.changes] == ["image: someone/else:latest -> local/web:1"]
    # an image listed by ID (its tag moved) is not drift
    by_id = converged(desired, tweak=lambda c: dataclasses.replace(c, image="sha256:" + "a" * 64))
    assert not plan(desired, by_id).has_changes


def test_container_copied_by_hand_with_other_settings_is_put_back_or_reported(desired_of) -> None:
    desired = desired_of({"s.yaml": service("web")})
    copied = converged(desired, tweak=lambda c: dataclasses.replace(c, hand_changes=("env.DEBUG", "ports")))
    step = plan(desired, copied).changes[0]
    assert step.action == "update"
    assert step.reason == "container is not the declared one (replaced by hand; env.DEBUG, ports differ); replacing it"
    assert [c.describe() for c in step.changes] == ["env.DEBUG: by-hand -> declared", "ports: by-hand -> declared"]
    # it holds the declared container's name, so it goes before the declared one is created
    assert [o.kind for o in step.ops] == ["pull", "stop", "remove", "create", "start", "wait_healthy"]
    no_heal = desired_of({"s.yaml": service("web", "selfHeal: false")})
    copied = converged(no_heal, tweak=lambda c: dataclasses.replace(c, hand_changes=("env.DEBUG",)))
    p = plan(no_heal, copied)
    assert not p.has_changes
    assert p.warnings == ("web[0] on local: container is not the declared one (replaced by hand; env.DEBUG differ) "
                          "(drift; selfHeal is off, so it is only reported)",)


def test_crash_looping_containers_are_held_back(desired_of) -> None:
    desired = desired_of({"s.yaml": service("web")})
    dead = converged(desired, tweak=lambda c: dataclasses.replace(c, state="exited"))
    name = dead.hosts[0].containers[0].name
    p = plan(desired, dead, options=PlanOptions(hold=((name, "started again 2 times; next try in 9s"),)))
    assert not p.has_changes
    assert p.steps[0].reason == "crash-looping: started again 2 times; next try in 9s"
    assert p.warnings == ("web[0] on local keeps crashing: started again 2 times; next try in 9s",)


def test_each_kind_of_drift_is_a_finding_on_its_step_not_only_text(desired_of) -> None:
    """Code reads Step.finding (the reconciler counts repairs and crash loops by it); the reason is for people."""
    desired = desired_of({"s.yaml": service("web")})
    no_heal = desired_of({"s.yaml": service("web", "selfHeal: false")})
    exited = lambda c: dataclasses.replace(c, state="exited")  # noqa: E731
    copied = lambda c: dataclasses.replace(c, hand_changes=("env.DEBUG",))  # noqa: E731
    dead = converged(desired, tweak=exited)
    hold = PlanOptions(hold=((dead.hosts[0].containers[0].name, "started again 2 times; next try in 9s"),))
    cases = {
        "stopped": plan(desired, dead),
        "crash-looping": plan(desired, dead, options=hold),
        "replaced-by-hand": plan(desired, converged(desired, tweak=copied)),
        "self-heal-off (stopped)": plan(no_heal, converged(no_heal, tweak=exited)),
        "self-heal-off (copied)": plan(no_heal, converged(no_heal, tweak=copied)),
        "a rollout": plan(desired_of({"s.yaml": service("web", image="local/web:2")}), converged(desired)),
        "up to date": plan(desired, converged(desired)),
    }
    found = {name: [s.finding for s in p.steps] for name, p in cases.items()}
    assert found == {
        "stopped": [Finding.STOPPED], "crash-looping": [Finding.CRASH_LOOPING],
        "replaced-by-hand": [Finding.REPLACED_BY_HAND], "self-heal-off (stopped)": [Finding.SELF_HEAL_OFF],
        "self-heal-off (copied)": [Finding.SELF_HEAL_OFF], "a rollout": [None], "up to date": [None],
    }
    data = json.loads(cases["stopped"].to_json())
    assert data["steps"][0]["finding"] == "stopped"
    assert Plan.from_dict(data).steps[0].finding is Finding.STOPPED


def test_a_changed_network_manifest_is_reported_not_recreated(desired_of) -> None:
    net = "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: backend}\nspec: {subnet: 10.70.0.0/24}\n"
    before = desired_of({"n.yaml": net, "s.yaml": service("web", "networks: [backend]")})
    observed = converged(before)
    assert not plan(before, observed).warnings
    after = desired_of({"n.yaml": net.replace("10.70.", "10.71."), "s.yaml": service("web", "networks: [backend]")})
    p = plan(after, observed)
    assert not p.has_changes  # the container's own spec did not change
    assert p.warnings == (f"network backend on local differs from its manifest; gitops does not recreate a network "
                          f"containers use: remove the containers attached to it and the network (docker network rm "
                          f"{after.project.name}_backend), and the next pass recreates them as declared",)
