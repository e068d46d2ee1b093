"""The ``gitops`` command line. Exit codes are a contract scripts and CI depend on (see README)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from gitops import log
from gitops.docker_host import DockerHost
from gitops.executor import Executor, connect_hosts, observe_all
from gitops.loading import LoadOutcome, load_repo
from gitops.manifests import ManifestError
from gitops.model import DesiredState
from gitops.plan import Plan, render_markdown, render_text, short_revision
from gitops.planner import PlanError, PlanOptions
from gitops.planner import plan as make_plan
from gitops.progress import print_outcome, run_with_progress
from gitops.source import revision_of

EXIT_OK = 0
EXIT_INVALID = 1  # also: any error for plan/apply
EXIT_USAGE = 2  # click's own code for usage errors
EXIT_CHANGES = 2  # plan --detailed-exitcode: there are changes


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", default="auto", show_default=True, type=click.Choice(["auto", "console", "json"]),
              help="auto: readable on a terminal, JSON lines otherwise.")
@click.version_option(package_name="gitops")
def main(log_level: str, log_format: str) -> None:
    """Declarative GitOps reconciler for Docker hosts."""
    log.configure(level=log_level, json=None if log_format == "auto" else log_format == "json")


path_argument = click.argument("path", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))


def shown(error: ManifestError, root: Path) -> str:
    """The error with its file named as the user would open it from where they ran the command."""
    if str(root) in ("", ".") or error.file == ".":
        return str(error)
    return str(dataclasses.replace(error, file=os.path.join(str(root), error.file)))


def print_errors(outcome: LoadOutcome) -> None:
    for error in outcome.errors:
        click.echo(shown(error, outcome.root), err=True)
    count = len(outcome.errors)
    click.echo(f"{count} error{'s' if count != 1 else ''} in {outcome.root}", err=True)


@main.command()
@path_argument
@click.option("--format", "fmt", default="text", show_default=True, type=click.Choice(["text", "json"]))
def validate(path: Path, fmt: str) -> None:
    """Check the manifests below PATH: YAML safety, schema, references, policy.

    Exit 0 when valid, 1 when not (one error per line on stderr as FILE:LINE:COL: message).
    """
    outcome = load_repo(path)
    if fmt == "json":
        click.echo(json.dumps({"valid": outcome.ok, "documents": outcome.documents,
                               "errors": [e.to_dict() for e in outcome.errors]}, indent=2))
    elif outcome.ok:
        assert outcome.desired is not None
        d = outcome.desired
        click.echo(f"{path}: valid ({outcome.documents} documents: {len(d.services)} services, "
                   f"{len(d.networks)} networks, {len(d.volumes)} volumes, "
                   f"{len([h for h in d.hosts if h.url])} hosts)")
    else:
        print_errors(outcome)
    sys.exit(EXIT_OK if outcome.ok else EXIT_INVALID)


def _load_or_exit(path: Path) -> DesiredState:
    outcome = load_repo(path, revision=revision_of(path))
    if not outcome.ok:
        print_errors(outcome)
        sys.exit(EXIT_INVALID)
    assert outcome.desired is not None
    return outcome.desired


def _make_plan(desired: DesiredState, hosts: dict[str, DockerHost], allow_empty: bool) -> Plan:
    observed = observe_all(desired, hosts)
    try:
        return make_plan(desired, observed, options=PlanOptions(allow_empty=allow_empty))
    except PlanError as exc:
        raise click.ClickException(str(exc)) from exc


def _stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def _print_plan_text(plan: Plan, *, show_unchanged: bool = False) -> None:
    if _stdout_is_tty():
        Console().print(render_text(plan, color=True, show_unchanged=show_unchanged), end="", highlight=False)
    else:
        click.echo(render_text(plan, show_unchanged=show_unchanged), nl=False)


@main.command("plan")
@path_argument
@click.option("--format", "fmt", default="text", show_default=True, type=click.Choice(["text", "json", "markdown"]))
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there is nothing to do, 2 when there are changes.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the plan as JSON, for `gitops apply --plan FILE`.")
@click.option("--allow-empty", is_flag=True, help="Allow a plan that prunes every service of the project.")
@click.option("--show-unchanged", is_flag=True, help="List unchanged instances too (text format).")
def plan_command(path: Path, fmt: str, detailed_exitcode: bool, out: Path | None, allow_empty: bool,
                 show_unchanged: bool) -> None:
    """Show what apply would change on the hosts, without changing anything.

    Exit 0 on success (with --detailed-exitcode: 0 no changes, 2 changes), 1 on any error.
    """
    desired = _load_or_exit(path)
    hosts = connect_hosts(desired)
    try:
        plan = _make_plan(desired, hosts, allow_empty)
    finally:
        for host in hosts.values():
            host.close()
    if out is not None:
        out.write_text(plan.to_json())
    if fmt == "json":
        click.echo(plan.to_json(), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(plan), nl=False)
    else:
        _print_plan_text(plan, show_unchanged=show_unchanged)
    if plan.unreachable:
        sys.exit(EXIT_INVALID)
    sys.exit(EXIT_CHANGES if detailed_exitcode and plan.has_changes else EXIT_OK)


@main.command()
@path_argument
@click.option("--yes", "-y", is_flag=True, help="Apply without asking (required when not on a terminal).")
@click.option("--plan", "plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Apply this saved plan (from `plan --out`), refusing if anything moved since.")
@click.option("--allow-empty", is_flag=True, help="Allow a plan that prunes every service of the project.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Services and hosts worked on at once.")
def apply(path: Path, yes: bool, plan_file: Path | None, allow_empty: bool, concurrency: int) -> None:
    """Change the hosts to match the manifests below PATH.

    Shows the plan and asks first unless --yes. Exit 0 when every step succeeded, 1 otherwise.
    """
    desired = _load_or_exit(path)
    hosts = connect_hosts(desired)
    try:
        plan = _make_plan(desired, hosts, allow_empty)
        if plan_file is not None:
            saved = _read_saved_plan(plan_file)
            if saved.desired_fingerprint != plan.desired_fingerprint:
                was, now = short_revision(saved.revision) or "?", short_revision(plan.revision) or "?"
                raise click.ClickException(f"the saved plan is stale: the manifests changed since it was made "
                                           f"(revision {was} -> {now}); run gitops plan again")
            if saved.observed_fingerprint != plan.observed_fingerprint:
                raise click.ClickException("the saved plan is stale: the containers on the hosts changed since it "
                                           "was made; run gitops plan again")
            plan = saved
        _print_plan_text(plan)
        if not plan.has_changes:
            sys.exit(EXIT_INVALID if plan.unreachable else EXIT_OK)
        if not yes:
            if not sys.stdin.isatty():
                raise click.ClickException("not on a terminal, so nobody can confirm: pass --yes to apply")
            if not click.confirm("Apply these changes?", default=False):
                click.echo("Nothing changed.")
                sys.exit(EXIT_INVALID)
        result = run_with_progress(Executor(desired, hosts, concurrency=concurrency), plan)
    finally:
        for host in hosts.values():
            host.close()
    print_outcome(result)
    sys.exit(EXIT_OK if result.ok else EXIT_INVALID)


def _read_saved_plan(path: Path) -> Plan:
    try:
        return Plan.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(f"{path}: not a gitops plan file: {exc}") from exc


if __name__ == "__main__":  # pragma: no cover
    main()
