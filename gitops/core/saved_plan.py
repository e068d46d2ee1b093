"""`apply --plan FILE`: a saved plan is an approval, never a program.

The file is input like a manifest: anyone who can change a CI artifact can edit it, fingerprints
included (they are plain hashes of public data). So apply makes its own plan from the current
manifests and the current hosts, and goes ahead only when the file holds exactly that plan, step by
step and op by op; what runs is the plan apply made, not the file (SECURITY.md item 17).
Pure: no docker, git, network or clock.
"""

from __future__ import annotations

import json
from typing import Any

from gitops.core.plan import Plan, escape_text, short_revision

STALE_MANIFESTS = ("the saved plan is stale: the manifests changed since it was made (revision {was} -> {now}); "
                   "run gitops plan again")
STALE_HOSTS = ("the saved plan is stale: the containers on the hosts changed since it was made; "
               "run gitops plan again")
STALE_REVISION = ("the saved plan is stale: it was made at revision {was}, the manifests are at revision {now}; "
                  "run gitops plan again")
OTHER_PROJECT = "the saved plan is for project {saved}, not {now}; nothing was applied"
ACTIONS = ("create", "update", "remove", "noop")
MISMATCH = ("the saved plan does not match what gitops plans now for these manifests and hosts: {detail}; "
            "nothing was applied (run gitops plan again)")


def parse(text: str) -> Plan:
    """A plan file's text as a Plan. Raises ValueError with a one-line reason."""
    try:
        data = json.loads(text)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    try:
        plan = Plan.from_dict(data)
    except KeyError as exc:
        raise ValueError(f"{_shown(str(exc))} is missing") from exc
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"a field has the wrong type ({_shown(str(exc))})") from exc
    for step in plan.steps:
        if step.action not in ACTIONS:
            raise ValueError(f"step {_shown(step.id)}: unknown action {_shown(step.action)}")
    return plan


def refusal(saved: Plan, fresh: Plan) -> str | None:
    """Why ``saved`` must not be applied when the planner now produces ``fresh``; None when they are the same."""
    if saved.project != fresh.project:
        return OTHER_PROJECT.format(saved=_shown(saved.project), now=_shown(fresh.project))
    if saved.desired_fingerprint != fresh.desired_fingerprint:
        return STALE_MANIFESTS.format(was=_rev(saved.revision), now=_rev(fresh.revision))
    if saved.observed_fingerprint != fresh.observed_fingerprint:
        return STALE_HOSTS
    if saved.revision != fresh.revision:
        return STALE_REVISION.format(was=_rev(saved.revision), now=_rev(fresh.revision))
    # Compared as JSON, as written and read back: what the file can say, in the form it says it.
    mine, theirs = json.loads(fresh.to_json()), json.loads(saved.to_json())
    detail = _steps_differ(theirs["steps"], mine["steps"])
    if detail is None:
        differing = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        detail = f"its {', '.join(differing)} differ" if differing else None
    return None if detail is None else MISMATCH.format(detail=detail)


def _steps_differ(theirs: list[dict[str, Any]], mine: list[dict[str, Any]]) -> str | None:
    planned = {s["id"]: s for s in mine}
    for step in theirs:
        if step["id"] not in planned:
            return f"step {_shown(step['id'])} is not in the plan"
        detail = _step_differs(step, planned[step["id"]])
        if detail is not None:
            return f"step {_shown(step['id'])}: {detail}"
    listed = {s["id"] for s in theirs}
    for step in mine:
        if step["id"] not in listed:
            return f"step {_shown(step['id'])} is missing"
    if [s["id"] for s in theirs] != [s["id"] for s in mine]:
        return "its steps are in another order"
    return None


def _step_differs(theirs: dict[str, Any], mine: dict[str, Any]) -> str | None:
    for key in sorted(mine.keys() | theirs.keys()):
        if key != "ops" and theirs.get(key) != mine.get(key):
            return f"its {_shown(key)} differs"
    ops, planned = theirs.get("ops") or [], mine.get("ops") or []
    for n, (op, want) in enumerate(zip(ops, planned, strict=False), start=1):
        if (op.get("kind"), op.get("container")) != (want.get("kind"), want.get("container")):
            return f"op {n} is {_op(op)}, not {_op(want)}"
        if op.get("args") != want.get("args"):
            return f"op {n} ({_op(op)}) has other arguments"
        if op != want:
            fields = sorted(k for k in op.keys() | want.keys() if op.get(k) != want.get(k))
            return f"op {n} ({_op(op)}) differs in {_shown(', '.join(map(str, fields)))}"
    if len(ops) > len(planned):
        return f"op {len(planned) + 1} ({_op(ops[len(planned)])}) is not in the plan"
    if len(ops) < len(planned):
        return f"op {len(ops) + 1} ({_op(planned[len(ops)])}) is missing"
    return None


def _op(op: dict[str, Any]) -> str:
    return f"{_shown(op.get('kind'))} {_shown(op.get('container'))}"


def _shown(value: Any) -> str:
    """A value from the file, as one short line (it may hold anything: escapes, new lines, megabytes)."""
    text = escape_text(value if isinstance(value, str) else json.dumps(value))
    return text if len(text) <= 200 else text[:200] + "..."


def _rev(revision: str) -> str:
    return _shown(short_revision(revision)) or "?"
