"""example-repo's GitHub Actions workflow, run as Actions would run its shell steps: in a full clone of
a pull-request branch, with ${{ github.base_ref }} and ${{ secrets.SOPS_AGE_KEY }} (the example's age key,
see tests/examplerepo.py) filled in, each step's env set, and $GITHUB_OUTPUT, $GITHUB_ENV and $RUNNER_TEMP as
Actions provides them. Only the steps that need GitHub itself (checkout, setup-python, the install from
GitHub, the comment) are left out; the commands the workflow gives gitops are the ones tested here, so they
cannot drift from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.examplerepo import EXAMPLE, example_copy
from tests.gitutil import ENV, git

WORKFLOW = EXAMPLE / ".github" / "workflows" / "gitops-plan.yml"
LEFT_OUT = {"Install gitops"}  # `pip install` from GitHub: here gitops is installed already


def shell_steps() -> list[tuple[str, str, dict[str, str]]]:
    doc = YAML(typ="safe").load(WORKFLOW.read_text())
    steps = doc["jobs"]["plan"]["steps"]
    return [(s["name"], s["run"], s.get("env") or {}) for s in steps if "run" in s and s["name"] not in LEFT_OUT]


@pytest.fixture
def pull_request(tmp_path: Path):
    """origin with example-repo on main (its secret encrypted for a test key, the repository's Actions secret),
    and a full clone checked out on a pull-request branch."""
    origin, seed, clone = tmp_path / "origin.git", tmp_path / "seed", tmp_path / "clone"
    git("init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)
    example = example_copy(seed)
    git("init", "-q", "-b", "main", cwd=seed)
    git("add", "-A", cwd=seed)
    git("commit", "-q", "-m", "example", cwd=seed)
    git("push", "-q", str(origin), "main", cwd=seed)
    git("clone", "-q", str(origin), str(clone), cwd=tmp_path)  # actions/checkout with fetch-depth: 0
    git("checkout", "-q", "-b", "pr", cwd=clone)

    def change(rel: str, old: str, new: str) -> None:
        path = clone / rel
        text = path.read_text()
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new))
        git("commit", "-q", "-am", "pr change", cwd=clone)

    return clone, change, example


def run_workflow(clone: Path, tmp_path: Path, age_key: str) -> tuple[list[tuple[str, int]], dict[str, str]]:
    """Each shell step in order until one fails, as Actions runs them: bash -e, the repo as working dir, the
    step's env, and what a step appends to $GITHUB_ENV set for the steps after it."""
    output, github_env, runner_temp = tmp_path / "github_output", tmp_path / "github_env", tmp_path / "runner_temp"
    output.write_text("")
    runner_temp.mkdir()
    env = {**ENV, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "GITHUB_OUTPUT": str(output),
           "GITHUB_ENV": str(github_env), "RUNNER_TEMP": str(runner_temp), "XDG_STATE_HOME": str(tmp_path / "state")}
    expressions = {"${{ github.base_ref }}": "main", "${{ secrets.SOPS_AGE_KEY }}": age_key}
    results = []
    for name, script, step_env in shell_steps():
        for expression, value in expressions.items():
            script = script.replace(expression, value)
            step_env = {k: v.replace(expression, value) for k, v in step_env.items()}
        assert "${{" not in script + "".join(step_env.values()), \
            f"step {name!r} uses an expression this test does not fill in"
        github_env.write_text("")
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=clone,
                              env={**env, **step_env}, capture_output=True, text=True, timeout=120)
        results.append((name, proc.returncode))
        if proc.returncode != 0:
            break
        env.update(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return results, outputs


def test_the_workflow_runs_the_steps_it_names() -> None:
    assert [name for name, _, _ in shell_steps()] == ["Age key", "Validate", "Plan against the base branch"]


def test_a_pull_request_with_changes_gets_a_markdown_plan(pull_request, tmp_path: Path) -> None:
    clone, change, example = pull_request
    change("services/web.yaml", "replicas: 2", "replicas: 3")
    results, outputs = run_workflow(clone, tmp_path, example.key_file.read_text())
    assert results == [("Age key", 0), ("Validate", 0), ("Plan against the base branch", 0)]
    assert outputs == {"exitcode": "2"}
    head = git("rev-parse", "HEAD", cwd=clone)
    comment = (clone / "plan.md").read_text()
    # the plan.md the step writes into the checkout does not make the revision "-dirty"
    assert comment.splitlines()[0] == f"### gitops plan: `shop` at `{head[:12]}`"
    assert "| + | `web[2]` | `local` | create | new instance (`services/web.yaml:5`) |" in comment
    assert example.password not in comment  # decrypted to plan, never shown


def test_a_pull_request_without_changes_says_so(pull_request, tmp_path: Path) -> None:
    clone, change, example = pull_request
    change("README.md", "\n", "\n\n")
    results, outputs = run_workflow(clone, tmp_path, example.key_file.read_text())
    assert results == [("Age key", 0), ("Validate", 0), ("Plan against the base branch", 0)]
    assert outputs == {"exitcode": "0"}
    assert "No changes" in (clone / "plan.md").read_text()


def test_an_invalid_pull_request_fails_at_validate(pull_request, tmp_path: Path) -> None:
    clone, change, example = pull_request
    change("services/web.yaml", "order: start-first", "order: fast")
    results, outputs = run_workflow(clone, tmp_path, example.key_file.read_text())
    assert results == [("Age key", 0), ("Validate", 1)]
    assert outputs == {}


def test_without_the_age_key_secret_validate_fails(pull_request, tmp_path: Path) -> None:
    """A pull request from a fork gets no secrets: the key file is empty and validate says so."""
    clone, change, _ = pull_request
    change("services/web.yaml", "replicas: 2", "replicas: 3")
    results, outputs = run_workflow(clone, tmp_path, "")
    assert results == [("Age key", 0), ("Validate", 1)]
    assert outputs == {}
