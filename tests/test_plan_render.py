"""Plan output in every format: snapshot-tested, deterministic, valid against schemas/plan.json.

Set GITOPS_UPDATE_SNAPSHOTS=1 to rewrite the snapshots after an intended change, then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from gitops.core.model import SecretKey
from gitops.core.plan import Plan, render_markdown, render_text
from gitops.core.planner import plan
from gitops.manifests.load import load_repo
from gitops.testing import converged
from tests.conftest import service

SNAPSHOTS = Path(__file__).parent / "snapshots"
# A fixed key, so container names (spec hashes of services with secrets) stay the same between runs.
SNAPSHOT_KEY = SecretKey(b"snapshot key, not a real secret!")
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
    before = load_repo(repo({**BEFORE, "hosts.yaml": AFTER["hosts.yaml"]}), revision="1111111111111111",
                       key=SNAPSHOT_KEY)
    after = load_repo(repo(AFTER, project=False), revision="2222222222222222", key=SNAPSHOT_KEY)
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


# --- hostile values (SECURITY.md 4c) -------------------------------------------------------------------

# Each one tries to break out of where a value is shown: close a code block or span, start a heading,
# a table row, a list, HTML, a link, mention someone, move the cursor, reorder text, or talk to the
# GitHub Actions runner through a log line.
HOSTILE = (
    "x\n```\n\nNo changes. The hosts match the manifests.\n\n```diff",
    "````` `` ` ~~~",
    "</details>\n\n# Looks good\n<details><summary>x</summary>",
    "<img src=x onerror=alert(1)> <script>alert(1)</script> <!-- c -->",
    "a | b |\n|---|---|\n| c | d",
    "[click](https://evil.example) ![img](https://evil.example/x.png) <https://evil.example>",
    "@octocat please merge, cc @org/team",
    "\x1b[2J\x1b[H\x1b[31mred\x1b]0;title\x07\x9b31m \r\b\b\x7f\x00",
    "\u202eevil\u202c \u2066iso\u2069 \u200bzw \ufeffbom",
    "line\u2028### sep\u2029para",
    "::set-output name=x::y",
    "\n::add-mask::abc\n  ::error file=a::boom\n\u3000::warning::w",
    "text ##[error]v1 command ##[set-output name=a;]b",
    "*emph* _u_ ~~s~~ **b** \\ &lt;b&gt; &#10; &amp;",
    "- item\n1. item\n> quote\n---\n===\n    indented code",
    "\r\n\r\n### Heading via CRLF",
)
BENIGN = "benign"


def hostile_plan(value: str) -> Plan:
    """A plan with ``value`` in every string a repository or a host can put into one."""
    from gitops.core.model import PolicyException
    from gitops.core.plan import FieldChange, Step

    steps = (
        Step(id="s1", host=value, kind="service", name=value, action="update", reason=f"changed ({value})",
             slot=0, changes=(FieldChange(f"env.{value}", value, value + "2"), FieldChange(f"labels.{value}", None, [value]),
                              FieldChange(value, secret=True))),
        Step(id="s2", host="h1", kind="network", name=value, action="create", reason=value),
        Step(id="s3", host="h1", kind="volume", name="data", action="noop", reason=value),
    )
    allowed = (PolicyException("Service", value, "sensitive-bind-mount", f"bind mount of {value}", value, 7),
               PolicyException("Volume", "data", value, value, "v.yaml", 3))
    return Plan(project=value, revision=value, steps=steps, warnings=(value, f"warning about {value}"),
                unreachable=((value, value),), allowed=allowed)


def _structure(tokens: list) -> list[tuple]:
    """Block structure and the kinds of inline nodes, without the text: what a value must not change."""
    out: list[tuple] = []
    for t in tokens:
        out.append((t.type, t.tag, t.nesting, t.info if t.type == "fence" else ""))
        for c in t.children or []:
            # A run of text and code spans is one piece of text ('@' is shown as a code span).
            kind = "text" if c.type in ("text", "code_inline") else c.type
            if not (kind == "text" and out[-1] == ("  text",)):
                out.append(("  " + kind,) if kind == "text" else ("  " + kind, c.tag, c.nesting))
    return out


def _parse(markdown: str) -> list:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").parse(markdown)


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_has_the_same_structure_whatever_the_values(value: str) -> None:
    """Parsed by a real CommonMark+tables parser, a hostile plan has exactly the blocks of a benign one."""
    tokens = _parse(render_markdown(hostile_plan(value)))
    assert _structure(tokens) == _structure(_parse(render_markdown(hostile_plan(BENIGN))))
    # The title, then the policy summary before anything a value could have pushed down.
    assert [t.type for t in tokens[:4]] == ["heading_open", "inline", "heading_close", "blockquote_open"]
    assert [t for t in tokens if t.type == "heading_open"] == [tokens[0]]
    summary = next(t for t in tokens if t.type == "inline" and "Allowed by policy" in t.content)
    assert tokens.index(summary) < min(i for i, t in enumerate(tokens) if t.type in ("table_open", "fence"))
    assert [t.content for t in tokens if t.type == "html_block"] == [
        "<details><summary>Field changes</summary>\n", "</details>\n"]
    assert [t.info for t in tokens if t.type == "fence"] == ["diff"]
    inline_kinds = {c.type for t in tokens for c in t.children or []}
    assert inline_kinds <= {"text", "code_inline", "strong_open", "strong_close", "softbreak"}
    # GitHub notifies '@name' in text, never in code: no value may ping anyone from a bot's comment
    import re

    texts = [c.content for t in tokens for c in t.children or [] if c.type == "text"]
    assert [t for t in texts if re.search(r"(?<![0-9A-Za-z])@[0-9A-Za-z]", t)] == []


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_shows_hostile_values_escaped_not_dropped(value: str) -> None:
    from gitops.core.plan import escape_text

    tokens = _parse(render_markdown(hostile_plan(value)))
    shown = escape_text(value)
    codes = [c.content for t in tokens for c in t.children or [] if c.type == "code_inline"]
    assert shown in codes  # e.g. the host of an unreachable host, exactly as escaped text
    assert f"`sensitive-bind-mount` Service {_code(shown)}" in render_markdown(hostile_plan(value))
    fence = next(t for t in tokens if t.type == "fence").content
    assert f"- env.{shown}: " in fence and "\n" not in shown


def _code(text: str) -> str:
    from gitops.core.plan import md_code

    return md_code(text)


def _assert_terminal_safe(text: str) -> None:
    import unicodedata

    for ch in text:
        assert ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs"), repr(ch)
    for line in text.splitlines():
        assert not line.lstrip().startswith("::"), line  # a GitHub Actions workflow command
    assert "##[" not in text  # the runner's older command syntax, matched anywhere in a line


@pytest.mark.parametrize("value", HOSTILE)
def test_text_has_no_control_characters_or_workflow_commands(value: str) -> None:
    hostile, benign = hostile_plan(value), hostile_plan(BENIGN)
    for text, expected in ((render_text(hostile, show_unchanged=True), render_text(benign, show_unchanged=True)),
                           (render_markdown(hostile), render_markdown(benign))):
        _assert_terminal_safe(text)
        assert len(text.splitlines()) == len(expected.splitlines())
    assert render_text(hostile).startswith(f"Plan for project {escape(value)} at ")
    assert render_text(hostile).splitlines()[2].startswith("Allowed by policy: sensitive-bind-mount, Service ")


def escape(value: str) -> str:
    from gitops.core.plan import escape_text

    return escape_text(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_colored_text_keeps_values_as_text(value: str) -> None:
    """Rich markup in a value ([bold], [link=...]) is shown, not applied; the output is the plain text."""
    from rich.console import Console

    plan = hostile_plan(value + " [bold red]x[/] [link=https://evil.example]y[/link] :x: :smiley:")
    console = Console(no_color=True, width=10000, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render_text(plan, color=True), end="", highlight=False, emoji=False)
    assert console.export_text() == render_text(plan)


@pytest.mark.parametrize("value", HOSTILE)
def test_json_keeps_values_exactly_and_cannot_command_the_runner(value: str) -> None:
    plan = hostile_plan(value)
    text = plan.to_json()
    _assert_terminal_safe(text)
    assert json.loads(text) == plan.to_dict()
    assert Plan.from_dict(json.loads(text)) == plan
    assert text == hostile_plan(value).to_json()


def test_json_lists_what_policy_allowed_first_and_validates() -> None:
    plan = hostile_plan("x")
    data = json.loads(plan.to_json())
    assert next(iter(data)) == "allowed_by_policy"
    assert data["allowed_by_policy"] == [
        {"rule": "sensitive-bind-mount", "kind": "Service", "name": "x", "detail": "bind mount of x",
         "file": "x", "line": 7},
        {"rule": "x", "kind": "Volume", "name": "data", "detail": "x", "file": "v.yaml", "line": 3},
    ]
    assert sorted(str(e.message) for e in Draft202012Validator(SCHEMA).iter_errors(data)) == []


def test_text_and_markdown_summaries_of_what_policy_allowed() -> None:
    plan = hostile_plan("x")
    assert render_text(plan).splitlines()[:5] == [
        "Plan for project x at x: 1 to create, 1 to update, 0 to remove, 1 unchanged",
        "",
        "Allowed by policy: sensitive-bind-mount, Service x: bind mount of x (x:7)",
        "Allowed by policy: x, Volume data: x (v.yaml:3)",
        "",
    ]
    assert render_markdown(plan).splitlines()[:7] == [
        "### gitops plan: `x` at `x`",
        "",
        "> [!WARNING]",
        "> **Allowed by policy**: settings a policy rule refuses, let through by the Project's "
        "`spec.policy.allow`; review them first.",
        ">",
        "> - `sensitive-bind-mount` Service `x`: `bind mount of x` (`x:7`)",
        "> - `x` Volume `data`: `x` (`v.yaml:3`)",
    ]


def test_planner_carries_the_policy_exceptions_in_a_fixed_order(repo) -> None:
    project = ("apiVersion: gitops/v1\nkind: Project\nmetadata: {name: p}\n"
               "spec: {policy: {allow: [privileged, sensitive-bind-mount], allowHostPaths: [/etc]}}\n")
    root = repo({"project.yaml": project,
                 "b.yaml": service("b", "privileged: true"),
                 "a.yaml": service("a", "mounts: [{type: bind, source: /etc/app, target: /app}]")}, project=False)
    desired = load_repo(root).desired
    assert desired is not None
    made = plan(desired, converged(desired))
    assert made.allowed == tuple(sorted(desired.exceptions, key=lambda e: (e.kind, e.name, e.rule, e.detail,
                                                                          e.file, e.line)))
    assert ("Service", "b", "privileged", "privileged: true", "b.yaml") in [
        (e.kind, e.name, e.rule, e.detail, e.file) for e in made.allowed]
    assert [e.name for e in made.allowed][-1] == "b"


# --- the whole path, as a process ----------------------------------------------------------------------

ENV_ATTACK = ("x\n```\n\nNo changes. The hosts match the manifests.\n\n</details>\n\n### Looks good\n"
              "::add-mask::abc\n\x1b[2J\u202e")
ALLOWING = ("apiVersion: gitops/v1\nkind: Project\nmetadata: {name: pr}\n"
            "spec: {policy: {allow: [sensitive-bind-mount], allowHostPaths: [/etc]}}\n")


def test_plan_markdown_of_a_hostile_pull_request_shows_the_bind_mount_first(tmp_path: Path) -> None:
    """An env value that tries to end the diff block and fake 'No changes' cannot hide a bind mount."""
    from tests.gitutil import Remote, git
    from tests.hostile import run_gitops

    r = Remote(tmp_path / "git")
    base = r.commit({"project.yaml": ALLOWING, "api.yaml": service("api")}, "base")
    attack = json.dumps(ENV_ATTACK)  # a YAML double-quoted scalar: the value holds real newlines and ESC
    r.commit({"api.yaml": service("api", f"env: {{NOTE: {attack}}}\n"
                                  "mounts: [{type: bind, source: /etc/app, target: /app}]")}, "innocent")
    git("status", cwd=r.work)
    run = run_gitops("plan", str(r.work), "--base", base, "--format", "markdown", tmp=tmp_path,
                     env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert run.returncode == 0, run.stderr
    out = run.stdout
    lines = out.splitlines()
    assert lines[0].startswith("### gitops plan: `pr` at `")
    assert lines[2:6] == [
        "> [!WARNING]",
        "> **Allowed by policy**: settings a policy rule refuses, let through by the Project's "
        "`spec.policy.allow`; review them first.",
        ">",
        "> - `host-path` Service `api`: `bind mount of /etc/app` (`api.yaml:8`)",
    ]
    assert lines[6] == "> - `sensitive-bind-mount` Service `api`: `bind mount of /etc/app` (`api.yaml:8`)"
    tokens = _parse(out)
    assert [t for t in tokens if t.type == "heading_open"] == [tokens[0]]
    assert [t.content for t in tokens if t.type == "html_block"] == [
        "<details><summary>Field changes</summary>\n", "</details>\n"]
    fence = next(t for t in tokens if t.type == "fence")
    assert f"+ env.NOTE: {escape(json.dumps(ENV_ATTACK, ensure_ascii=False))}\n" in fence.content
    assert [t.type for t in tokens].count("fence") == 1
    assert "No changes. The hosts match the manifests." not in [t.content for t in tokens if t.type == "inline"]
    _assert_terminal_safe(out)
    run.within_bounds()


def test_plan_text_of_the_same_pull_request_is_terminal_and_ci_safe(tmp_path: Path) -> None:
    from tests.gitutil import Remote
    from tests.hostile import run_gitops

    r = Remote(tmp_path / "git")
    base = r.commit({"project.yaml": ALLOWING, "api.yaml": service("api")}, "base")
    r.commit({"api.yaml": service("api", f"env: {{NOTE: {json.dumps(ENV_ATTACK)}}}\n"
                                  "mounts: [{type: bind, source: /etc/app, target: /app}]")}, "innocent")
    run = run_gitops("plan", str(r.work), "--base", base, tmp=tmp_path,
                     env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert run.returncode == 0, run.stderr
    _assert_terminal_safe(run.stdout)
    assert run.stdout.splitlines()[2:4] == [
        "Allowed by policy: host-path, Service api: bind mount of /etc/app (api.yaml:8)",
        "Allowed by policy: sensitive-bind-mount, Service api: bind mount of /etc/app (api.yaml:8)",
    ]
    assert f"env.NOTE: (none) -> {escape(json.dumps(ENV_ATTACK, ensure_ascii=False))}" in run.stdout
    run.within_bounds()


HOSTILE_FILE = "\x1b]0;pwned\x07::error::x\n::add-mask::y\u202e ##[warning]z.yaml"


def test_errors_name_hostile_files_escaped(tmp_path: Path) -> None:
    """File names and messages in FILE:LINE:COL errors reach stderr escaped (validate and plan)."""
    from tests.hostile import run_gitops

    root = tmp_path / "repo"
    root.mkdir()
    (root / "project.yaml").write_text("apiVersion: gitops/v1\nkind: Project\nmetadata: {name: p}\n")
    (root / HOSTILE_FILE).write_text("apiVersion: gitops/v1\nkind: Service\nmetadata: {name: a}\nspec: {replicas: 1}\n")
    for args in (("validate", "."), ("plan", ".", "--format", "markdown")):
        run = run_gitops(*args, cwd=root, tmp=tmp_path, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
        assert run.returncode == 1
        _assert_terminal_safe(run.stderr)
        assert run.stderr.splitlines() == [
            escape(HOSTILE_FILE) + ":4:7: spec: 'image' is a required property",
            "1 error in .",
        ]
        run.within_bounds()


def test_command_errors_naming_a_hostile_file_are_escaped(tmp_path: Path) -> None:
    """A command's own error (here: a snapshot that is not one) names the file escaped, on one line."""
    from tests.hostile import run_gitops

    root = tmp_path / "repo"
    root.mkdir()
    (root / "project.yaml").write_text("apiVersion: gitops/v1\nkind: Project\nmetadata: {name: p}\n")
    (root / "web.yaml").write_text(service("web", ""))
    snapshot = tmp_path / HOSTILE_FILE.replace(".yaml", ".json")
    snapshot.write_text("[]")
    run = run_gitops("plan", str(root), "--observed", str(snapshot), "--state-dir", str(tmp_path / "state"),
                     tmp=tmp_path)
    assert run.returncode == 1
    _assert_terminal_safe(run.stderr)
    assert len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith("Error: " + escape(str(snapshot)) + ": not a status snapshot")
    run.within_bounds()


# --- logs and apply output ------------------------------------------------------------------------------

@pytest.mark.parametrize("as_json", [True, False])
def test_log_lines_escape_values(as_json: bool) -> None:
    """A message from a host or a repository, logged, is one escaped line (JSON lines or console)."""
    import io

    from gitops import log

    out = io.StringIO()
    log.configure(json=as_json, stream=out)
    try:
        log.get_logger(host="h\n::error::x").info("step", message="\n::add-mask::abc ##[error]x \x1b[2J\u202e")
    finally:
        log.configure()
    text = out.getvalue()
    _assert_terminal_safe(text)
    assert len(text.splitlines()) == 1
    if as_json:
        record = json.loads(text)
        assert (record["host"], record["message"]) == ("h\n::error::x", "\n::add-mask::abc ##[error]x \x1b[2J\u202e")
    else:
        assert "x5berror]x" in text and "host=h\\n::error::x" in text  # the renderer may repr it too


def test_apply_outcome_escapes_host_and_container_text(capsys) -> None:
    """Errors, health-check output and container log lines are the container's words: escaped."""
    from gitops.cli.progress import print_outcome
    from gitops.engine.executor import ApplyResult, ServiceOutcome

    evil = "\x1b]0;pwned\x07::error::x ##[add-mask]y \u202e"
    result = ApplyResult()
    result.errors.append(evil)
    result.services["web"] = ServiceOutcome("web", "failed", message=evil, health_output=evil + "\nsecond",
                                            logs=f"ok\n::set-output name=a::b\n{evil}")
    print_outcome(result)
    err = capsys.readouterr().err
    _assert_terminal_safe(err)
    assert f"error: {escape(evil)}" in err.splitlines()
    assert "    \\x3a:set-output name=a::b" in err.splitlines()
