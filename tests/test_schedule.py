"""Units and their order (gitops.engine.schedule): pure, from a plan and the desired state."""

from __future__ import annotations

import pytest

from gitops.core.model import DesiredState, ephemeral_key
from gitops.core.observed import empty
from gitops.core.planner import plan
from gitops.engine.schedule import Level, Unit, UnitKind, Verdict, readiness, schedule
from gitops.manifests.load import load_repo
from tests.conftest import service


@pytest.fixture
def desired_of(repo):
    def load(files: dict[str, str]) -> DesiredState:
        outcome = load_repo(repo(files), revision="rev1", key=ephemeral_key())
        assert outcome.desired is not None, outcome.errors
        return outcome.desired
    return load


NETWORK = "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: backend}\nspec: {}\n"


def test_units_group_a_service_across_slots_and_need_what_depends_on_says(desired_of) -> None:
    """One unit per service (all replicas), one per network; `condition: started` needs STARTED, the rest HEALTHY."""
    desired = desired_of({
        "n.yaml": NETWORK,
        "db.yaml": service("db", "replicas: 2\nnetworks: [backend]"),
        "api.yaml": service("api", "networks: [backend]\ndependsOn: [{service: db, condition: started}]\n"
                                 "healthcheck: {exec: ['true'], interval: 200ms}"),
        "web.yaml": service("web", "dependsOn: [{service: api, condition: healthy}]"),
    })
    sched = schedule(plan(desired, empty(desired)), desired)
    by_name = {str(u): u for u in sched.units}
    assert sorted(by_name) == ["network/backend@local", "service api", "service db", "service web"]
    assert len(by_name["service db"].steps) == 2
    needs = {str(u): {str(d): level for d, level in n.items()} for u, n in sched.needs.items()}
    assert needs == {
        "network/backend@local": {},
        "service db": {"network/backend@local": Level.HEALTHY},
        "service api": {"network/backend@local": Level.HEALTHY, "service db": Level.STARTED},
        "service web": {"service api": Level.HEALTHY},
    }


def test_readiness_waits_goes_and_skips_on_a_failure_before_the_needed_level() -> None:
    """A unit goes once its dependencies reached the level; a dependency that failed before it is a skip."""
    db = Unit(UnitKind.SERVICE, "db")
    net = Unit(UnitKind.INFRA, "network/backend@local")
    needs = {db: Level.STARTED, net: Level.HEALTHY}
    reached: dict[Level, set[Unit]] = {Level.STARTED: set(), Level.HEALTHY: set()}
    assert readiness(needs, reached, {}) == (Verdict.WAIT, [])
    reached[Level.STARTED].add(db)
    assert readiness(needs, reached, {}) == (Verdict.WAIT, [])
    assert readiness(needs, reached, {net: True}) == (Verdict.GO, [])
    # db failed later (its rollout), but it had started: what a `started` dependent needed was there
    assert readiness(needs, reached, {net: True, db: False}) == (Verdict.GO, [])
    assert readiness(needs, {Level.STARTED: set(), Level.HEALTHY: set()}, {net: False, db: False}) == (
        Verdict.SKIP, ["db", "network/backend@local"])
