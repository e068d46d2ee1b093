"""The ``gitops`` command line. Exit codes are a contract scripts and CI depend on (see README)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import click

from gitops import log
from gitops.loading import LoadOutcome, load_repo
from gitops.manifests import ManifestError

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


if __name__ == "__main__":  # pragma: no cover
    main()
