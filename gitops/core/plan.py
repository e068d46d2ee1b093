"""Plan, Step and Op: what `gitops plan` shows is exactly what `gitops apply` executes.

No timestamps or other ambient data: the same desired and observed state give byte-identical
output in every format, so plans can be snapshot-tested and saved for `apply --plan FILE`.
Pure: no docker, git, network or clock.
"""

from __future__ import annotations

import enum
import json
import re
import unicodedata
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Literal

from gitops.core.model import PolicyException

Action = Literal["create", "update", "remove", "noop"]
OpKind = Literal[
    "pull", "adopt", "create", "start", "wait_healthy", "stop", "remove",
    "network_create", "volume_create", "volume_remove",
    "service_create", "service_update", "wait_converged", "service_remove",  # Swarm services
]

PLAN_FORMAT = 1


# -- what each kind of op needs: in JSON, an op's "args" object (fields at their default are left out) --
@dataclass(frozen=True)
class PullArgs:
    policy: str  # the service's pullPolicy


@dataclass(frozen=True)
class CreateArgs:
    service: str
    slot: int
    spec_hash: str


@dataclass(frozen=True)
class ContainerRef:
    """adopt, start, stop, wait_healthy: the container's id when it was observed (else its name is used)."""

    id: str = ""


@dataclass(frozen=True)
class RemoveArgs:
    id: str = ""
    after: Literal["", "service"] = ""  # "service": only once the whole service is healthy


@dataclass(frozen=True)
class NetworkArgs:
    name: str
    spec_hash: str


@dataclass(frozen=True)
class VolumeArgs:
    name: str


@dataclass(frozen=True)
class SwarmArgs:
    """A Swarm service's ops: the gitops service, and the Swarm service's id and version when it exists (an
    update names the version it was planned against: Swarm refuses it if the service changed since)."""

    service: str
    id: str = ""
    version: int = 0


OpArgs = PullArgs | CreateArgs | ContainerRef | RemoveArgs | NetworkArgs | VolumeArgs | SwarmArgs
ARGS_OF: dict[str, type[OpArgs]] = {
    "pull": PullArgs, "create": CreateArgs, "adopt": ContainerRef, "start": ContainerRef, "stop": ContainerRef,
    "wait_healthy": ContainerRef, "remove": RemoveArgs, "network_create": NetworkArgs, "volume_create": VolumeArgs,
    "volume_remove": VolumeArgs, "service_create": SwarmArgs, "service_update": SwarmArgs,
    "wait_converged": SwarmArgs, "service_remove": SwarmArgs,
}


@dataclass(frozen=True)
class Op:
    """One Docker-level action. ``container`` is a container, network or volume name on ``host``."""

    kind: OpKind
    container: str
    args: OpArgs = field(default_factory=ContainerRef)
    undo: OpKind | None = None  # what reverts it, when something can

    def __post_init__(self) -> None:
        if not isinstance(self.args, ARGS_OF[self.kind]):
            raise TypeError(f"a {self.kind} op takes {ARGS_OF[self.kind].__name__}, not {type(self.args).__name__}")

    @property
    def ref(self) -> str:
        """The container this op acts on: its id when the plan knows it, else its name."""
        known = self.args.id if isinstance(self.args, (ContainerRef, RemoveArgs)) else ""
        return known or self.container


def args_to_dict(args: OpArgs) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in fields(args)
            if f.default is MISSING or getattr(args, f.name) != f.default}


def args_from_dict(kind: str, data: Any) -> OpArgs:
    """An op's args as a saved plan writes them; ValueError for anything else (the file is input)."""
    cls = ARGS_OF.get(kind)
    if cls is None:
        raise ValueError(f"unknown op kind {kind!r}")
    if not isinstance(data, dict):
        raise ValueError(f"{kind} op: args must be an object")
    known = {f.name for f in fields(cls)}
    if set(data) - known:
        raise ValueError(f"{kind} op: unexpected args {', '.join(sorted(map(str, set(data) - known)))}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ValueError(f"{kind} op: {exc}") from exc


@dataclass(frozen=True)
class FieldChange:
    path: str  # e.g. "image", "env.LOG_LEVEL"
    old: Any = None
    new: Any = None
    secret: bool = False  # values withheld

    def describe(self) -> str:
        if self.secret:
            return f"{self.path}: (secret changed)"
        if self.path == "image" and isinstance(self.old, str) and isinstance(self.new, str):
            old, new = _split_digest(self.old), _split_digest(self.new)
            if old[0] == new[0] and old[1] and new[1]:  # the same tag, moved on its registry
                return f"image {_show(old[0])} ({_short_digest(old[1])} -> {_short_digest(new[1])})"
            return (f"image: {_show(old[0])}{' ' + _short_digest(old[1]) if old[1] else ''} -> "
                    f"{_show(new[0])}{' ' + _short_digest(new[1]) if new[1] else ''}")
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"


def _split_digest(image: str) -> tuple[str, str]:
    """``app:1.4@sha256:..`` -> (``app:1.4``, ``sha256:..``); no digest -> (image, "")."""
    name, at, digest = image.partition("@")
    return (name, digest) if at else (image, "")


def _short_digest(digest: str) -> str:
    """Enough of a digest to tell two apart in a plan (the JSON plan keeps it whole)."""
    algorithm, _, hex_part = digest.partition(":")
    return escape_text(f"{algorithm}:{hex_part[:12]}..") if hex_part else escape_text(digest)


def _show(value: Any) -> str:
    """A value as one line of text: bare when plain, else quoted as JSON (so '' and ' a' stay visible)."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        plain = value and " " not in value and escape_text(value) == value
        return value if plain else escape_text(json.dumps(value, ensure_ascii=False))
    return escape_text(json.dumps(value, sort_keys=True, ensure_ascii=False))


class Finding(enum.Enum):
    """What the planner found a container doing that the manifests did not ask for (drift). The reason
    text says it to people; code reads this."""

    STOPPED = "stopped"  # the declared container is not running: started again (a repair, not a rollout)
    CRASH_LOOPING = "crash-looping"  # it died again after gitops started it: held back until its backoff ends
    REPLACED_BY_HAND = "replaced-by-hand"  # same labels, other settings (a copy made by hand): replaced
    SELF_HEAL_OFF = "self-heal-off"  # stopped or replaced by hand, but selfHeal is off: only reported


@dataclass(frozen=True)
class Step:
    id: str
    host: str
    kind: Literal["service", "network", "volume"]
    name: str  # service, network or volume name
    action: Action
    reason: str  # for people; code reads ``finding``
    slot: int | None = None
    changes: tuple[FieldChange, ...] = ()
    depends_on: tuple[str, ...] = ()
    ops: tuple[Op, ...] = ()
    finding: Finding | None = None
    source: str = ""  # FILE:LINE of the manifest or compose service it comes from ("" for removals)

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
    # Settings a policy rule refuses that the Project allows: shown first in every format, where no
    # value can push them out of sight. The planner sorts them.
    allowed: tuple[PolicyException, ...] = ()

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
            "allowed_by_policy": [_allowed_dict(e) for e in self.allowed],
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
        """Deterministic JSON, ASCII only (every control and bidi character is a \\u escape), CI-safe."""
        return ci_safe_json(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

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
                ops=tuple(Op(o["kind"], o["container"], args_from_dict(o["kind"], o.get("args", {})), o.get("undo"))
                          for o in s.get("ops", [])),
                finding=Finding(s["finding"]) if s.get("finding") else None,
                source=s.get("source", ""),
            ))
        return cls(data["project"], data["revision"], tuple(steps), data.get("desired_fingerprint", ""),
                   data.get("observed_fingerprint", ""), tuple(data.get("warnings", [])),
                   tuple((u["host"], u["error"]) for u in data.get("unreachable", [])),
                   tuple(PolicyException(a["kind"], a["name"], a["rule"], a["detail"], a.get("file", ""),
                                         a.get("line", 0)) for a in data.get("allowed_by_policy", [])))


def _allowed_dict(e: PolicyException) -> dict[str, Any]:
    return {"rule": e.rule, "kind": e.kind, "name": e.name, "detail": e.detail, "file": e.file, "line": e.line}


def _step_dict(step: Step) -> dict[str, Any]:
    out = asdict(step)
    out["changes"] = [{k: v for k, v in asdict(c).items() if not (c.secret and k in ("old", "new"))}
                      for c in step.changes]
    out["depends_on"] = list(step.depends_on)
    out["ops"] = [{**asdict(o), "args": args_to_dict(o.args)} for o in step.ops]
    out["finding"] = step.finding.value if step.finding else None
    return out


# --- escaping -----------------------------------------------------------------------------------------
# Values, names, file names and error messages come from repositories anyone may send a pull request to,
# and from hosts. Printed raw, a value could move a terminal's cursor, reorder text (bidi overrides),
# start a new line that looks like ours, end a markdown code block early, or be taken by the GitHub
# Actions runner for a workflow command. So every such string is shown through these functions.

# Anything outside printable ASCII is looked at (most text never is), and the runner's old command
# syntax '##[', which it obeys anywhere in a line.
_SUSPECT = re.compile(r"[^\x20-\x7e]|##\[")
# Controls (C0, C1, DEL, ESC), format characters (bidi overrides and isolates, zero-width ones, BOM),
# line and paragraph separators, lone surrogates: none of these has a visible shape of its own.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_match(match: re.Match[str]) -> str:
    found = match.group()
    if found == "##[":
        return "##\\x5b"
    if found in _NAMED:
        return _NAMED[found]
    if unicodedata.category(found) not in _INVISIBLE:
        return found  # a letter, a symbol, an emoji: shown as it is
    code = ord(found)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_text(text: str) -> str:
    """``text`` as one line with nothing invisible in it: each control, bidi, zero-width or line-separator
    character becomes a visible escape (``\\n``, ``\\x1b``, ``\\u202e``), and ``##[`` becomes ``##\\x5b``.

    Idempotent: the escapes are printable ASCII.
    """
    return _SUSPECT.sub(_escape_match, text)


def ci_safe_json(text: str) -> str:
    """JSON text (from json.dumps, ASCII) that the GitHub Actions runner cannot take for a command.

    '##[' is the runner's old command syntax, obeyed anywhere in a line; '#' is no JSON token, so it
    only occurs inside strings, where '[' written as \\u005b is the same value. No line of indented
    JSON starts with '::'.
    """
    return text.replace("##[", "##\\u005b")


def ci_safe_line(line: str) -> str:
    """A line the GitHub Actions runner does not take for a workflow command.

    The runner trims leading whitespace and obeys a line that then starts with '::' (``::add-mask::``,
    ``::set-output``, ``::error``, ``::stop-commands``); the first ':' is shown escaped instead.
    """
    stripped = line.lstrip()
    if not stripped.startswith("::"):
        return line
    return line[: len(line) - len(stripped)] + "\\x3a" + stripped[1:]


def terminal_line(text: str) -> str:
    """Untrusted text (an error message, a log line) as one line for a terminal or a CI log."""
    return ci_safe_line(escape_text(text))


# Markdown punctuation that could start inline structure (code spans, emphasis, strikethrough, links,
# images, HTML, entities, table cells, headings, math); backslash-escaped in prose. Values are at no line's
# start in what render_markdown writes, and have no line breaks, so block structure is out of reach.
_MD_PUNCTUATION = re.compile(r"[\\`*_~\[\]<>&|#!$]")  # '$': GitHub's inline math
# '@name' notifies people on GitHub, also from a bot's comment; GitHub does not look into code spans.
_MENTION = re.compile(r"(?<![0-9A-Za-z])@")


def md_text(text: str) -> str:
    """Prose (a sentence that may hold values) for markdown inline content: it renders as its text."""
    return _MENTION.sub("`@`", _MD_PUNCTUATION.sub(lambda m: "\\" + m.group(), escape_text(text)))


def md_code(text: str) -> str:
    """A value as a markdown code span: shown literally, with no HTML, links, emphasis or mentions.

    The fence is one backtick longer than any run of backticks inside, so the value cannot close it.
    In a table cell, pass it through md_cell as well.
    """
    shown = escape_text(text)
    if not shown.strip(" "):
        shown = json.dumps(shown)  # '' or only spaces: quoted, or it would vanish or lose its spaces
    longest = max((len(run) for run in re.findall("`+", shown)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark strips one space from each end when both are there; pad so a leading or trailing
    # backtick does not join the fence, and the value's own spaces survive.
    pad = " " if shown[0] in "` " or shown[-1] in "` " else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def md_cell(inline: str) -> str:
    """Inline markdown for a table cell: a '|' would end the cell, even inside a code span (GFM)."""
    return inline.replace("|", "\\|")


def _md_fence(lines: list[str]) -> str:
    """A backtick fence longer than any run of backticks in ``lines``: no line can close the block."""
    longest = max((len(run) for line in lines for run in re.findall("`+", line)), default=0)
    return "`" * max(3, longest + 1)


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


def _where(e: PolicyException) -> str:
    return f"{e.file}:{e.line}" if e.line else e.file


def allowed_sentence(e: PolicyException) -> str:
    """One policy exception as a line of text (not yet escaped)."""
    where = f" ({_where(e)})" if e.file else ""
    return f"Allowed by policy: {e.rule}, {e.kind} {e.name}: {e.detail}{where}"


def render_text(plan: Plan, *, color: bool = False, show_unchanged: bool = False) -> str:
    """Plain text; with ``color`` it carries rich markup for a terminal.

    Each line is escaped whole (escape_text, ci_safe_line): values cannot add lines, move the cursor
    or command a CI runner. What the Project's policy allowed comes right under the headline.
    """
    lines: list[tuple[str, str]] = [("", headline(plan)), ("", "")]
    if plan.allowed:
        lines += [("bold red", allowed_sentence(e)) for e in plan.allowed]
        lines.append(("", ""))
    for host, error in plan.unreachable:
        lines.append(("red", f"! host {host} is unreachable: {error} (its steps are not planned)"))
    lines += [("yellow", f"! {warning}") for warning in plan.warnings]
    if plan.unreachable or plan.warnings:
        lines.append(("", ""))
    shown = [s for s in plan.steps if show_unchanged or s.action != "noop"]
    if not shown:
        lines.append(("", no_changes_sentence(plan)))
    heads = [f"{SYMBOLS[s.action]} {escape_text(s.label)} on {escape_text(s.host)}" for s in shown]
    width = max((len(head) for head in heads), default=0)
    for step, head in zip(shown, heads, strict=True):
        where = f" [{step.source}]" if step.source and step.action != "noop" else ""
        lines.append((STYLES[step.action], f"{head.ljust(width)} {step.action}: {step.reason}{where}"))
        lines += [("", f"      {change.describe()}") for change in step.changes]
    return "\n".join(_c(color, style, ci_safe_line(escape_text(text))) for style, text in lines) + "\n"


def _c(color: bool, style: str, text: str) -> str:
    if not color:
        return text
    from rich.markup import escape  # rich only when colour is asked for: `plan | cat` never loads it

    return f"[{style}]{escape(text)}[/{style}]" if style else escape(text)


def render_markdown(plan: Plan) -> str:
    """For a pull-request comment: a title, what the policy allowed, a table of changes, field changes.

    Values are code spans (md_code) or escaped prose (md_text) and never start a line, so none can end
    a block, open one, or fake a heading; tests parse the output with a CommonMark parser to prove it.
    """
    s = plan.summary()
    rev = short_revision(plan.revision) or "working tree"
    out = [f"### gitops plan: {md_code(plan.project)} at {md_code(rev)}", ""]
    if plan.allowed:
        out += ["> [!WARNING]",
                "> **Allowed by policy**: settings a policy rule refuses, let through by the Project's "
                "`spec.policy.allow`; review them first.",
                ">"]
        out += [f"> - {md_code(e.rule)} {md_text(e.kind)} {md_code(e.name)}: {md_code(e.detail)}"
                + (f" ({md_code(_where(e))})" if e.file else "") for e in plan.allowed]
        out.append("")
    out.append(f"**{s['create']}** to create, **{s['update']}** to update, **{s['remove']}** to remove, "
               f"{s['noop']} unchanged")
    out.append("")
    for host, error in plan.unreachable:
        out.append(f"> :warning: host {md_code(host)} is unreachable: {md_code(error)}")
    out += [f"> :warning: {md_text(warning)}" for warning in plan.warnings]
    if plan.unreachable or plan.warnings:
        out.append("")
    changes = plan.changes
    if not changes:
        out.append(no_changes_sentence(plan))
        return _md_lines(out)
    out += ["| | what | host | action | why |", "|---|---|---|---|---|"]
    for step in changes:
        out.append(f"| {SYMBOLS[step.action]} | {md_cell(md_code(step.label))} | {md_cell(md_code(step.host))} "
                   f"| {md_text(step.action)} | {md_text(step.reason)}"
                   + (f" ({md_code(step.source)})" if step.source else "") + " |")
    detailed = [st for st in changes if st.changes]
    if detailed:
        diff: list[str] = []
        for step in detailed:
            diff.append(escape_text(f"# {step.label} on {step.host}"))
            for change in step.changes:
                if change.secret:
                    diff.append(escape_text(f"! {change.path}: (secret changed)"))
                else:
                    diff.append(escape_text(f"- {change.path}: ") + _show(change.old))
                    diff.append(escape_text(f"+ {change.path}: ") + _show(change.new))
        fence = _md_fence(diff)
        out += ["", "<details><summary>Field changes</summary>", "", fence + "diff", *diff, fence, "",
                "</details>"]
    return _md_lines(out)


def _md_lines(lines: list[str]) -> str:
    return "\n".join(ci_safe_line(line) for line in lines) + "\n"
