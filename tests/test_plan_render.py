"""Plan output in every format: snapshot-tested, deterministic, valid against schemas/plan.json.

Set GITOPS_UPDATE_SNAPSHOTS=1 to rewrite the snapshots after an intended change, then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from gitops.loading import load_repo
from gitops.plan import Plan, render_markdown, render_text
from gitops.planner import plan
from gitops.testing import converged
from tests.conftest import service

SNAPSHOTS = Path(__file__).parent / "snapshots"
SCHEMA = json.loads((Path(__file__).parent.parent / "schemas" / "plan.json").read_text())

BEFORE = {
    "net.yaml": "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: backend}\n",
    "db.yaml": service("db", "networks: [backend]\nhealthcheck: {exec: ['true'], interval: 200ms}"),
    "api.yaml": service("api", "networks: [backend]\nenv: {LOG_LEVEL: info, TOKEN: {secretFile: token}}\n"
                        "dependsOn: [{service: db, condition: healthy}]"),
    "old.yaml": service("old"),
    "token": "canary-secret\n",
}
AFTER = {
    "project.yaml": "apiVersion: gitops/v1\nkind: Project\nmetadata: {name: test}\nspec: {prune: true}\n",
    "net.yaml": BEFORE["net.yaml"],
    "db.yaml": BEFORE["db.yaml"],
    "api.yaml": BEFORE["api.yaml"].replace("local/web:1", "local/web:2").replace("info", "debug"),
    "web.yaml": service("web", "replicas: 2\nports: [{container: 8080, host: 18080}]\nplacement: {hosts: [h1, h2]}\n"
                        "dependsOn: [api]"),
    "hosts.yaml": ("apiVersion: gitops/v1\nkind: Host\nmetadata: {name: h1}\nspec: {url: 'unix:///run/h1.sock'}\n---\n"
                   "apiVersion: gitops/v1\nkind: Host\nmetadata: {name: h2}\nspec: {url: 'unix:///run/h2.sock'}\n"),
    "token": "rotated-canary\n",
}


@pytest.fixture
def scenario(repo) -> Plan:
    """An update, a create on two hosts, a prune and a secret rotation, on hosts h1 and h2."""
    before = load_repo(repo({**BEFORE, "hosts.yaml": AFTER["hosts.yaml"]}), revision="1111111111111111")
    after = load_repo(repo(AFTER, project=False), revision="2222222222222222")
    assert before.desired and after.desired, (before.errors, after.errors)
    return plan(after.desired, converged(before.desired))


@pytest.mark.parametrize("name, render", [
    ("plan.txt", lambda p: render_text(p)),
    ("plan.json", lambda p: p.to_json()),
    ("plan.md", lambda p: render_markdown(p)),
])
def test_plan_snapshots(scenario: Plan, name: str, render) -> None:
    text = render(scenario)
    assert "canary" not in text
    path = SNAPSHOTS / name
    if os.environ.get("GITOPS_UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; if intended, rerun with GITOPS_UPDATE_SNAPSHOTS=1"


def test_json_plan_matches_its_schema_and_round_trips(scenario: Plan) -> None:
    data = json.loads(scenario.to_json())
    errors = sorted(str(e.message) for e in Draft202012Validator(SCHEMA).iter_errors(data))
    assert errors == []
    assert Plan.from_dict(data) == Plan.from_dict(json.loads(Plan.from_dict(data).to_json()))


def test_colored_text_is_only_markup_around_the_same_text(scenario: Plan) -> None:
    from rich.console import Console

    console = Console(no_color=True, width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render_text(scenario, color=True), end="", highlight=False)
    assert console.export_text() == render_text(scenario)
