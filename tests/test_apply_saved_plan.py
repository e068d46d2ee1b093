"""`gitops apply --plan FILE` with saved plans an attacker edited (SECURITY.md item 17 and 14).

A saved plan is valid JSON anyone with write access to a CI artifact can change, fingerprints
included. apply re-plans from the current manifests and the current hosts, and applies only when the
file holds exactly that plan; it then executes the plan it made itself. Each hostile file is refused
by its exact message, exit 1, in under 1 s and 200 MB, with nothing changed on Docker: the decoys
and the project's own container inspect byte-identical afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service
from tests.hostile import run_gitops

pytestmark = pytest.mark.docker

FAST = "init: true\nstopGracePeriod: 2s\n"
TAIL = "; nothing was applied (run gitops plan again)"
MISMATCH = "Error: the saved plan does not match what gitops plans now for these manifests and hosts: "


@pytest.fixture
def write(repo, project_name):
    def make(files: dict[str, str]) -> Path:
        return repo({"project.yaml": f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project_name}}}\n",
                     **files}, project=False)
    return make


@pytest.fixture
def decoys(docker_client, project_name):
    """Two running containers gitops must never touch: one with no labels (named like the project's),
    one labelled as another project's copy of the same service."""
    made = [
        docker_client.containers.run("local/busybox:1", ["sleep", "300"], detach=True, name=f"{project_name}-decoy"),
        docker_client.containers.run("local/busybox:1", ["sleep", "300"], detach=True,
                                     labels={"io.gitops.managed": "true", "io.gitops.project": project_name + "x",
                                             "io.gitops.service": "web", "io.gitops.slot": "0"}),
    ]
    yield made
    for c in made:
        c.remove(force=True)


def _step(plan: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in plan["steps"] if s["id"] == step_id)


def _op(plan: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(o for o in _step(plan, "service/web/0@local")["ops"] if o["kind"] == kind)


def test_hostile_saved_plans_are_refused_and_change_nothing(write, decoys, docker_client, project_name,
                                                            tmp_path) -> None:
    unlabelled, other_project = decoys
    root = write({"web.yaml": service("web", FAST)})
    state = ["--state-dir", str(tmp_path / "state")]
    assert run_gitops("apply", str(root), "--yes", *state, tmp=tmp_path).returncode == 0
    (old,) = docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})
    (root / "web.yaml").write_text(service("web", FAST, image="local/web:2"))
    saved = tmp_path / "plan.json"
    made = run_gitops("plan", str(root), "--out", str(saved), *state, tmp=tmp_path)
    assert made.returncode == 0, made.stderr
    honest = json.loads(saved.read_text())
    new_name = _op(honest, "create")["container"]
    ops = [o["kind"] for o in _step(honest, "service/web/0@local")["ops"]]
    assert ops == ["pull", "create", "start", "wait_healthy", "stop", "remove"]

    def append_op(p: dict[str, Any], op: dict[str, Any]) -> None:
        _step(p, "service/web/0@local")["ops"].append(op)

    def remove_step(p: dict[str, Any], victim: Any) -> None:
        p["steps"].append({**_step(p, "service/web/0@local"), "id": "service/web/0@local/remove/x",
                           "action": "remove", "reason": "leftover", "changes": [], "depends_on": [],
                           "ops": [{"kind": "stop", "container": victim.name, "args": {"id": victim.id}, "undo": None},
                                   {"kind": "remove", "container": victim.name, "args": {"id": victim.id},
                                    "undo": None}]})
        p["summary"]["remove"] += 1

    def evil_create(p: dict[str, Any]) -> None:
        # the args a create op has: another spec hash would label a container as a spec it does not run
        _op(p, "create")["args"].update(spec_hash="0" * 12)

    def drop_health_gate(p: dict[str, Any]) -> None:
        _step(p, "service/web/0@local")["ops"].remove(_op(p, "wait_healthy"))

    old_name = _op(honest, "stop")["container"]
    cases: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
        "an op that stops an unmanaged container": (
            lambda p: append_op(p, {"kind": "stop", "container": unlabelled.name, "args": {"id": unlabelled.id},
                                    "undo": "start"}),
            f"{MISMATCH}step service/web/0@local: op 7 (stop {unlabelled.name}) is not in the plan{TAIL}"),
        "a step that removes another project's container": (
            lambda p: remove_step(p, other_project),
            f"{MISMATCH}step service/web/0@local/remove/x is not in the plan{TAIL}"),
        "the old container's stop pointed at a decoy": (
            lambda p: _op(p, "stop")["args"].update(id=unlabelled.id),
            f"{MISMATCH}step service/web/0@local: op 5 (stop {old_name}) has other arguments{TAIL}"),
        "an extra op": (
            lambda p: append_op(p, dict(_op(p, "remove"))),
            f"{MISMATCH}step service/web/0@local: op 7 (remove {old_name}) is not in the plan{TAIL}"),
        "another spec hash in the create args": (
            evil_create, f"{MISMATCH}step service/web/0@local: op 2 (create {new_name}) has other arguments{TAIL}"),
        "the health gate taken out": (
            drop_health_gate,
            f"{MISMATCH}step service/web/0@local: op 4 is stop {old_name}, not wait_healthy {new_name}{TAIL}"),
        "a changed revision": (
            lambda p: p.update(revision="0" * 40),
            "Error: the saved plan is stale: it was made at revision 000000000000, the manifests are at "
            "revision ?; run gitops plan again"),
        "another project's name": (
            lambda p: p.update(project=project_name + "x"),
            f"Error: the saved plan is for project {project_name}x, not {project_name}; nothing was applied"),
    }
    watched = [unlabelled, other_project, old]
    before = [docker_client.api.inspect_container(c.id) for c in watched]
    for name, (edit, message) in cases.items():
        hostile = json.loads(json.dumps(honest))
        edit(hostile)
        path = tmp_path / "hostile.json"
        path.write_text(json.dumps(hostile))
        refused = run_gitops("apply", str(root), "--plan", str(path), "--yes", *state, tmp=tmp_path)
        assert (refused.returncode, refused.stderr.strip().splitlines()[-1]) == (1, message), (name, refused.stderr)
        refused.within_bounds()
        after = [docker_client.api.inspect_container(c.id) for c in watched]
        assert after == before, name
        # no lease was taken, nothing created: the project still has its one old container
        everything = docker_client.containers.list(all=True, filters={"name": project_name})
        assert sorted(c.id for c in everything) == sorted([old.id, unlabelled.id]), name

    # the honest file still applies, and gitops' own plan is what ran
    applied = run_gitops("apply", str(root), "--plan", str(saved), "--yes", *state, tmp=tmp_path)
    assert applied.returncode == 0, applied.stderr
    (now,) = docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})
    assert now.name == new_name and now.image.tags == ["local/web:2"]
    assert [docker_client.api.inspect_container(c.id) for c in decoys] == before[:2]


def test_a_saved_plan_that_is_not_a_plan_is_refused(write, tmp_path) -> None:
    root = write({"web.yaml": service("web", FAST)})
    path = tmp_path / "plan.json"
    step = ('{"format": 1, "project": "p", "revision": "", "steps": [{"id": "s", "host": "h", "kind": "service", '
            '"name": "web", "action": "update", "reason": "", "ops": [%s]}]}')
    for text, why in [("[]", "expected a JSON object"), ('{"format": 1}', "'steps' is missing"),
                      ("[" * 100_000, "nested too deeply"),
                      (step % '{"kind": "start", "container": "c", "args": {"cmd": "rm -rf /"}}',
                       "start op: unexpected args cmd"),
                      (step % ('{"kind": "create", "container": "c", "args": {"service": "web", "slot": 0, '
                               '"spec_hash": "x", "image": "busybox", "mounts": [{"source": "/"}]}}'),
                       "create op: unexpected args image, mounts"),
                      (step % '{"kind": "create", "container": "c", "args": {"slot": 1}}',
                       "create op: CreateArgs.__init__() missing 2 required positional arguments: 'service' and "
                       "'spec_hash'"),
                      (step % '{"kind": "exec", "container": "c", "args": {}}', "unknown op kind 'exec'")]:
        path.write_text(text)
        refused = run_gitops("apply", str(root), "--plan", str(path), "--yes", tmp=tmp_path)
        assert (refused.returncode, refused.stderr.strip()) == (1, f"Error: {path}: not a gitops plan file: {why}")
        refused.within_bounds()
