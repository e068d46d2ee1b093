"""Plan, Step and Op: what `gitops plan` shows is exactly what `gitops apply` executes.

No timestamps or other ambient data: the same desired and observed state give byte-identical
output in every format, so plans can be snapshot-tested and saved for `apply --plan FILE`.
Pure: no docker, git, network or clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Action = Literal["create", "update", "remove", "noop"]
OpKind = Literal[
    "pull", "adopt", "create", "start", "wait_healthy", "stop", "remove",
    "network_create", "volume_create", "volume_remove",
]

PLAN_FORMAT = 1


@dataclass(frozen=True)
class Op:
    """One Docker-level action. ``container`` is a container, network or volume name on ``host``."""

    kind: OpKind
    container: str
    args: dict[str, Any] = field(default_factory=dict)
    undo: OpKind | None = None  # what reverts it, when something can


@dataclass(frozen=True)
class FieldChange:
    path: str  # e.g. "image", "env.LOG_LEVEL"
    old: Any = None
    new: Any = None
    secret: bool = False  # values withheld

    def describe(self) -> str:
        if self.secret:
            return f"{self.path}: (secret changed)"
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Step:
    id: str
    host: str
    kind: Literal["service", "network", "volume"]
    name: str  # service, network or volume name
    action: Action
    reason: str
    slot: int | None = None
    changes: tuple[FieldChange, ...] = ()
    depends_on: tuple[str, ...] = ()
    ops: tuple[Op, ...] = ()

    @property
    def label(self) -> str:
        if self.kind == "service":
            return f"{self.name}[{self.slot}]" if self.slot is not None else self.name
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Plan:
    project: str
    revision: str
    steps: tuple[Step, ...]
    desired_fingerprint: str = ""
    observed_fingerprint: str = ""
    warnings: tuple[str, ...] = ()
    unreachable: tuple[tuple[str, str], ...] = ()  # (host, error)

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.action != "noop"]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "remove": 0, "noop": 0}
        for step in self.steps:
            counts[step.action] += 1
        return counts

    # --- serialisation ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "project": self.project,
            "revision": self.revision,
            "desired_fingerprint": self.desired_fingerprint,
            "observed_fingerprint": self.observed_fingerprint,
            "summary": self.summary(),
            "warnings": list(self.warnings),
            "unreachable": [{"host": h, "error": e} for h, e in self.unreachable],
            "steps": [_step_dict(s) for s in self.steps],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if data.get("format") != PLAN_FORMAT:
            raise ValueError(f"unsupported plan format {data.get('format')!r}; expected {PLAN_FORMAT}")
        steps = []
        for s in data["steps"]:
            steps.append(Step(
                id=s["id"], host=s["host"], kind=s["kind"], name=s["name"], action=s["action"],
                reason=s["reason"], slot=s.get("slot"),
                changes=tuple(FieldChange(c["path"], c.get("old"), c.get("new"), c.get("secret", False))
                              for c in s.get("changes", [])),
                depends_on=tuple(s.get("depends_on", [])),
                ops=tuple(Op(o["kind"], o["container"], dict(o.get("args", {})), o.get("undo"))
                          for o in s.get("ops", [])),
            ))
        return cls(data["project"], data["revision"], tuple(steps), data.get("desired_fingerprint", ""),
                   data.get("observed_fingerprint", ""), tuple(data.get("warnings", [])),
                   tuple((u["host"], u["error"]) for u in data.get("unreachable", [])))


def _step_dict(step: Step) -> dict[str, Any]:
    out = asdict(step)
    out["changes"] = [{k: v for k, v in asdict(c).items() if not (c.secret and k in ("old", "new"))}
                      for c in step.changes]
    out["depends_on"] = list(step.depends_on)
    out["ops"] = [asdict(o) for o in step.ops]
    return out


# --- rendering ----------------------------------------------------------------------------------------

SYMBOLS = {"create": "+", "update": "~", "remove": "-", "noop": " "}
STYLES = {"create": "green", "update": "yellow", "remove": "red", "noop": "dim"}


def short_revision(revision: str) -> str:
    """First 12 characters of the commit, keeping a '-dirty' mark."""
    if not revision:
        return ""
    return revision[:12] + ("-dirty" if revision.endswith("-dirty") else "")


def headline(plan: Plan) -> str:
    s = plan.summary()
    rev = short_revision(plan.revision) or "(no revision)"
    return (f"Plan for project {plan.project} at {rev}: {s['create']} to create, {s['update']} to update, "
            f"{s['remove']} to remove, {s['noop']} unchanged")


def no_changes_sentence(plan: Plan) -> str:
    if plan.unreachable:
        return "No changes planned, but unreachable hosts were not compared (see above)."
    return "No changes. The hosts match the manifests."


def render_text(plan: Plan, *, color: bool = False, show_unchanged: bool = False) -> str:
    """Plain text; with ``color`` it carries rich markup for a terminal."""
    lines = [headline(plan), ""]
    for host, error in plan.unreachable:
        lines.append(_c(color, "red", f"! host {host} is unreachable: {error} (its steps are not planned)"))
    for warning in plan.warnings:
        lines.append(_c(color, "yellow", f"! {warning}"))
    if plan.unreachable or plan.warnings:
        lines.append("")
    shown = [s for s in plan.steps if show_unchanged or s.action != "noop"]
    if not shown:
        lines.append(no_changes_sentence(plan))
    width = max((len(s.label) + len(s.host) for s in shown), default=0) + 6
    for step in shown:
        head = f"{SYMBOLS[step.action]} {step.label} on {step.host}"
        lines.append(_c(color, STYLES[step.action], f"{head.ljust(width)} {step.action}: {step.reason}"))
        for change in step.changes:
            lines.append(f"      {_escape(change.describe(), color)}")
    return "\n".join(lines) + "\n"


def _escape(text: str, color: bool) -> str:
    if not color:
        return text
    from rich.markup import escape

    return escape(text)


def _c(color: bool, style: str, text: str) -> str:
    return f"[{style}]{_escape(text, True)}[/{style}]" if color else text


def render_markdown(plan: Plan) -> str:
    """For a pull-request comment: a headline, a table of changes, field changes in a details block."""
    s = plan.summary()
    out = [f"### gitops plan: `{plan.project}` at `{short_revision(plan.revision) or 'working tree'}`", ""]
    out.append(f"**{s['create']}** to create, **{s['update']}** to update, **{s['remove']}** to remove, "
               f"{s['noop']} unchanged")
    out.append("")
    for host, error in plan.unreachable:
        out.append(f"> :warning: host `{host}` is unreachable: {_md(error)}")
    for warning in plan.warnings:
        out.append(f"> :warning: {_md(warning)}")
    if plan.unreachable or plan.warnings:
        out.append("")
    changes = plan.changes
    if not changes:
        out.append(no_changes_sentence(plan))
        return "\n".join(out) + "\n"
    out += ["| | what | host | action | why |", "|---|---|---|---|---|"]
    for step in changes:
        out.append(f"| {SYMBOLS[step.action]} | `{step.label}` | `{step.host}` | {step.action} | {_md(step.reason)} |")
    detailed = [st for st in changes if st.changes]
    if detailed:
        out += ["", "<details><summary>Field changes</summary>", "", "```diff"]
        for step in detailed:
            out.append(f"# {step.label} on {step.host}")
            for change in step.changes:
                if change.secret:
                    out.append(f"! {change.path}: (secret changed)")
                else:
                    out.append(f"- {change.path}: {_show(change.old)}")
                    out.append(f"+ {change.path}: {_show(change.new)}")
        out += ["```", "", "</details>"]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
