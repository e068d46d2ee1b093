"""The ``gitops`` command line. Exit codes are a contract scripts and CI depend on (see README).

Start-up time: each command imports what it uses inside its body, so `gitops --help` loads no Docker
client, schema validator or logging renderer, `validate` no Docker client, and only commands that reach
hosts pay for docker-py. Type hints need no import at run time (``TYPE_CHECKING``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gitops import log  # light: structlog is imported when the first logger is made

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from gitops.core.model import DesiredState, ObservedState, SecretKey, ServiceSpec
    from gitops.core.plan import Plan
    from gitops.core.ports import DigestResolver, Host
    from gitops.engine.apply import ApplyOutcome
    from gitops.engine.reconciler import PassResult, Reconciler
    from gitops.manifests.load import LoadOutcome
    from gitops.manifests.parse import ManifestError
    from gitops.source import Checkout, GitSource
    from gitops.state import StateStore

EXIT_OK = 0
EXIT_INVALID = 1  # also: any error for plan/apply
EXIT_USAGE = 2  # click's own code for usage errors
EXIT_CHANGES = 2  # plan --detailed-exitcode: there are changes


class CliError(click.ClickException):
    """A command's error for the person at the terminal. Its text often carries values from a repository
    or a host (paths, git and Docker errors), so it is escaped like every other line: one line, no
    terminal escapes, nothing a CI runner would take for a workflow command."""

    def format_message(self) -> str:
        from gitops.core.plan import terminal_line  # deferred with the rest: start-up time

        return terminal_line(self.message)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", default="auto", show_default=True, type=click.Choice(["auto", "console", "json"]),
              help="auto: readable on a terminal, JSON lines otherwise.")
@click.option("--age-key-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="SOPS_AGE_KEY_FILE", help="age identities that decrypt SOPS and age files of the repository "
              "(default: $SOPS_AGE_KEY_FILE; $SOPS_AGE_KEY may hold the identities themselves). Kept on this "
              "machine, never in the repository. Give it before the command: gitops --age-key-file F daemon ...")
@click.version_option(package_name="gitops")
def main(log_level: str, log_format: str, age_key_file: Path | None) -> None:
    """Declarative GitOps reconciler for Docker hosts."""
    log.configure(level=log_level, json=None if log_format == "auto" else log_format == "json")
    if age_key_file is not None:  # read where keys are made (secret_key.age_identities), by every command
        os.environ["SOPS_AGE_KEY_FILE"] = str(age_key_file)


def _set_age_key_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        os.environ["SOPS_AGE_KEY_FILE"] = str(value)


# The same as the global option, after the command's name too (`gitops daemon --age-key-file F`).
age_key_option = click.option("--age-key-file", type=click.Path(dir_okay=False, path_type=Path), expose_value=False,
                              callback=_set_age_key_file, is_eager=True,
                              help="age identities that decrypt encrypted files of the repository (as gitops "
                                   "--age-key-file; default $SOPS_AGE_KEY_FILE).")

path_argument = click.argument("path", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))


def shown(error: ManifestError, root: Path) -> str:
    """The error with its file named as the user would open it from where they ran the command.

    One line, escaped: file names and messages come from the repository (terminal_line).
    """
    from gitops.core.plan import terminal_line

    if str(root) in ("", ".") or error.file == ".":
        return terminal_line(str(error))
    return terminal_line(str(dataclasses.replace(error, file=os.path.join(str(root), error.file))))


def print_errors(outcome: LoadOutcome) -> None:
    from gitops.core.plan import terminal_line

    for error in outcome.errors:
        click.echo(shown(error, outcome.root), err=True)
    count = len(outcome.errors)
    click.echo(terminal_line(f"{count} error{'s' if count != 1 else ''} in {outcome.root}"), err=True)


@main.command()
@age_key_option
@path_argument
@click.option("--format", "fmt", default="text", show_default=True, type=click.Choice(["text", "json"]))
def validate(path: Path, fmt: str) -> None:
    """Check the manifests below PATH: YAML safety, schema, references, policy.

    Exit 0 when valid, 1 when not (one error per line on stderr as FILE:LINE:COL: message).
    """
    from gitops.core.plan import ci_safe_json
    from gitops.manifests.load import load_repo

    outcome = load_repo(path, key=_throwaway_key())
    if fmt == "json":
        click.echo(ci_safe_json(json.dumps({"valid": outcome.ok, "documents": outcome.documents,
                                            "errors": [e.to_dict() for e in outcome.errors]}, indent=2)))
    elif outcome.ok:
        assert outcome.desired is not None
        d = outcome.desired
        click.echo(f"{path}: valid ({outcome.documents} documents: {len(d.services)} services, "
                   f"{len(d.networks)} networks, {len(d.volumes)} volumes, "
                   f"{len([h for h in d.hosts if h.url])} hosts)")
    else:
        print_errors(outcome)
    sys.exit(EXIT_OK if outcome.ok else EXIT_INVALID)


@main.command()
@age_key_option
@path_argument
def convert(path: Path) -> None:
    """Print the gitops/v1 manifests that the compose files below PATH become.

    The values are the ones interpolated from the .env files, secrets included as they are in the repository:
    review the output before committing it. Exit 1, with the errors, when the repository does not validate.
    """
    from gitops.manifests.compose.convert import manifests_yaml
    from gitops.manifests.load import LoadOutcome, read_documents

    documents, errors, _ = read_documents(path, identities=_throwaway_key().age)
    if errors:
        print_errors(LoadOutcome(path, None, sorted(set(errors)), len(documents)))
        sys.exit(EXIT_INVALID)
    text = manifests_yaml(documents)
    if text.count("\n---\n") == 0:
        raise CliError(f"{path}: no compose files (compose.yaml, docker-compose.yml, ...) to convert")
    click.echo(text, nl=False)


def _load_or_exit(path: Path, *, key: SecretKey) -> DesiredState:
    from gitops.manifests.load import load_repo
    from gitops.source import revision_of

    outcome = load_repo(path, revision=revision_of(path), key=key)
    if not outcome.ok:
        print_errors(outcome)
        sys.exit(EXIT_INVALID)
    assert outcome.desired is not None
    return outcome.desired


def _observe(desired: DesiredState, hosts: Mapping[str, Host], state_dir: Path | None) -> ObservedState:
    """Observe the hosts; containers the state store does not know as declared are inspected once."""
    from gitops.engine.observe import observe_all, observe_with_store
    from gitops.state import StateError, StateStore

    try:
        store = StateStore(_state_dir(state_dir))
    except StateError:
        return observe_all(desired, hosts)
    try:
        return observe_with_store(desired, hosts, store)
    finally:
        store.close()


def _make_plan(desired: DesiredState, hosts: Mapping[str, Host], allow_empty: bool,
               state_dir: Path | None, fetch_commit: Callable[[str], Checkout]) -> tuple[DesiredState, Plan]:
    """The plan against the live hosts, as a pass makes it (services held by `gitops rollback` stay held, tags
    resolved); and the desired state it plans."""
    from gitops.core.planner import PlanError, PlanOptions
    from gitops.core.planner import plan as make_plan

    desired, held = _held_by_rollback(desired, state_dir, fetch_commit)
    desired, observed, warnings = _pin_and_observe(desired, lambda d: _observe(d, hosts, state_dir))
    warnings = (*held, *warnings)
    try:
        return desired, make_plan(desired, observed, options=PlanOptions(allow_empty=allow_empty, warnings=warnings))
    except PlanError as exc:
        raise CliError(str(exc)) from exc


def _held_by_rollback(desired: DesiredState, state_dir: Path | None, fetch_commit: Callable[[str], Checkout]
                      ) -> tuple[DesiredState, tuple[str, ...]]:
    """``desired`` with the services `gitops rollback` holds at an older revision kept there, as every pass keeps
    them (so plan and apply do not undo a rollback the daemon would put back), and a warning for each."""
    from gitops.engine.reconciler import service_at, with_pins
    from gitops.source import SourceError
    from gitops.state import StateError, StateStore

    try:
        store = StateStore(_state_dir(state_dir))
    except StateError:
        return desired, ()
    try:
        project = desired.project.name
        pins = {name: pin for name, pin in store.pins(project).items() if name in {s.name for s in desired.services}}
        if not pins:
            return desired, ()
        key = _key(state_dir)

        def spec_at(service: str, revision: str) -> ServiceSpec | None:
            try:
                return service_at(fetch_commit(revision), service, key=key)
            except (SourceError, click.ClickException):
                return None  # as a pass does: the service keeps HEAD's spec when the pinned one cannot be read

        held = with_pins(desired, pins, spec_at, store.pin_digests(project))
    finally:
        store.close()
    notes = tuple(f"{name} is held at {pins[name][0][:12]} by gitops rollback until a commit changes it"
                  for name in sorted(pins) if held.service(name).spec_hash != desired.service(name).spec_hash)
    return held, notes


def _pin_and_observe(desired: DesiredState, observe: Callable[[DesiredState], ObservedState], *,
                     resolver: DigestResolver | None = None, unresolved_ok: bool = False
                     ) -> tuple[DesiredState, ObservedState, tuple[str, ...]]:
    """Tags resolved to digests (resolve: digest), then observed, as a pass does (gitops.engine.images)."""
    from gitops.engine.images import DigestUnavailable, pin_and_observe, registry_client

    try:
        return pin_and_observe(desired, resolver or registry_client(desired), observe, unresolved_ok=unresolved_ok)
    except DigestUnavailable as exc:
        raise CliError(str(exc)) from exc


def _stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def _print_plan_text(plan: Plan, *, show_unchanged: bool = False) -> None:
    from gitops.core.plan import render_text

    if _stdout_is_tty():
        from rich.console import Console

        # emoji=False: a value such as ":x:" is shown as typed, not as a picture
        Console().print(render_text(plan, color=True, show_unchanged=show_unchanged), end="", highlight=False,
                        emoji=False)
    else:
        click.echo(render_text(plan, show_unchanged=show_unchanged), nl=False)


def source_options(fn: Any) -> Any:
    """--repo/--ref/--path/--state-dir/--fetch-timeout, shared by the commands that read a git source."""
    fn = click.option("--fetch-timeout", default=60.0, show_default=True, type=float,
                      help="Seconds a git fetch may take.")(fn)
    fn = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                      help="Where the state store and git cache live [default: $XDG_STATE_HOME/gitops].")(fn)
    fn = click.option("--path", "subdir", default="", help="Folder of the manifests inside the repository.")(fn)
    fn = click.option("--ref", default="main", show_default=True, help="Branch, tag or commit to deploy.")(fn)
    fn = click.option("--repo", "repo_url",
                      help="Git repository URL (https://, ssh://, git@host:path, file://, path).")(fn)
    return fn


def _state_dir(state_dir: Path | None) -> Path:
    from gitops.state import default_state_dir

    return (state_dir or default_state_dir()).absolute()  # git runs in other folders: a relative path breaks


@main.group()
def secrets() -> None:
    """Encrypted files of the repository (SOPS with age recipients)."""


@secrets.command("encrypt")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--age", "recipients", multiple=True, required=True, help="An age recipient (age1...); repeatable.")
@click.option("--in-place", "-i", is_flag=True, help="Replace FILE with its encrypted form (else print it).")
def secrets_encrypt(file: Path, recipients: tuple[str, ...], in_place: bool) -> None:
    """Encrypt FILE as sops does, for users without the sops binary: YAML and JSON (by extension) value by value
    (YAML comments encrypted too), .env line by line, anything else in sops' binary form. Keys named
    *_unencrypted stay readable. `sops -d` and gitops decrypt the result. FILE `-` reads standard input (binary
    form), so that a secret never has to be written to disk unencrypted."""
    import datetime

    from gitops.manifests.parse import parse_documents
    from gitops.manifests.sops import SopsError, encrypt, is_encrypted

    from_stdin = str(file) == "-"
    if from_stdin and in_place:
        raise click.UsageError("--in-place needs a FILE, not standard input")
    data = sys.stdin.buffer.read() if from_stdin else file.read_bytes()
    if is_encrypted(data):
        raise CliError(f"{file}: already encrypted")
    document = None
    if file.suffix.lower() in (".yaml", ".yml", ".json"):
        parsed = parse_documents(data.decode("utf-8", "replace"), file.name)
        if parsed.errors or len(parsed.documents) != 1:
            problem = str(parsed.errors[0]) if parsed.errors else "expected exactly one YAML document"
            raise CliError(f"{file}: {problem}")
        document = parsed.documents[0].data
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        sealed = encrypt(data, "" if from_stdin else file.name, recipients, now=now, document=document)
    except SopsError as exc:
        raise CliError(f"{file}: {exc}") from exc
    if in_place:
        file.write_bytes(sealed)
    else:
        click.echo(sealed.decode(), nl=False)


@secrets.command("keygen")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the key file here: made with mode 0600, never over an existing file. Without it the key "
              "file is printed and the recipient goes to stderr, as age-keygen does.")
def secrets_keygen(output: Path | None) -> None:
    """Make a new age key (X25519) in age-keygen's format and print its public recipient (age1...). The recipient
    is all that people who encrypt need (gitops secrets encrypt --age, sops --age); the key file belongs on the
    machine that decrypts (--age-key-file, SOPS_AGE_KEY_FILE), never in the repository."""
    import datetime

    from pyrage import x25519

    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = datetime.datetime.now().astimezone().replace(microsecond=0).isoformat()
    created = created.removesuffix("+00:00") + "Z" if created.endswith("+00:00") else created  # as Go's RFC 3339
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    if output is None:
        click.echo(text, nl=False)
        click.echo(f"Public key: {recipient}", err=True)
        return
    try:  # 0600 from the first byte on: the file is never readable by anyone else, not even for a moment
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError as exc:
        raise CliError(f"{output}: already exists; a key file is never overwritten (move it away first: it may "
                       "be the only key that decrypts some files)") from exc
    except OSError as exc:
        raise CliError(f"{output}: cannot create the key file: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        output.unlink(missing_ok=True)
        raise CliError(f"{output}: cannot write the key file: {exc.strerror or exc}") from exc
    click.echo(recipient)


@secrets.command("check")
@age_key_option
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def secrets_check(files: tuple[Path, ...]) -> None:
    """Check that each FILE is encrypted (SOPS or age) and decrypts with this machine's age identities
    (--age-key-file), MAC included, as a deploy would read it. Nothing decrypted is shown; exit 1 when a file
    is not encrypted or cannot be decrypted, with the reason."""
    from gitops.manifests.parse import parse_documents
    from gitops.manifests.sops import SopsError, decrypt, is_encrypted
    from gitops.secret_key import SecretKeyError, age_identities

    try:
        identities = age_identities()
    except SecretKeyError as exc:
        raise CliError(str(exc)) from exc
    failed = 0
    for file in files:
        data = file.read_bytes()
        if not is_encrypted(data):
            click.echo(f"{file}: not encrypted", err=True)
            failed += 1
            continue
        document = None
        try:
            parsed = parse_documents(data.decode("utf-8"), file.name).documents
            document = parsed[0].data if len(parsed) == 1 else None
        except UnicodeDecodeError:
            pass  # binary: an age file
        try:
            plain = decrypt(data, identities, document=document)
        except SopsError as exc:
            click.echo(f"{file}: cannot be decrypted: {exc}", err=True)
            failed += 1
            continue
        if plain is None:
            click.echo(f"{file}: not a SOPS or age file gitops reads", err=True)
            failed += 1
            continue
        del plain
        click.echo(f"{file}: decrypts with the age key given")
    if failed:
        raise SystemExit(EXIT_INVALID)


def _throwaway_key() -> SecretKey:
    """A key for what never compares with hosts (validate, convert, plan --base), with this machine's age
    identities so that encrypted files of the repository can be read."""
    from gitops.core.model import ephemeral_key
    from gitops.secret_key import SecretKeyError, with_age

    try:
        return with_age(ephemeral_key())
    except SecretKeyError as exc:
        raise CliError(str(exc)) from exc


def _key(state_dir: Path | None) -> SecretKey:
    """The installation's key for secret digests: every command that compares with containers on hosts."""
    from gitops.secret_key import SecretKeyError, installation_key

    try:
        return installation_key(_state_dir(state_dir))
    except SecretKeyError as exc:
        raise CliError(str(exc)) from exc


def _git_source(repo_url: str, ref: str, subdir: str, state_dir: Path | None, timeout: float) -> GitSource:
    from gitops.source import GitSource, SourceError

    try:
        return GitSource(repo_url, ref, subdir=subdir, cache_dir=_state_dir(state_dir) / "git", timeout=timeout)
    except SourceError as exc:
        raise CliError(str(exc)) from exc


def _desired_from_checkout(checkout: Checkout, *, key: SecretKey) -> DesiredState:
    from gitops.core.plan import terminal_line
    from gitops.manifests.load import load_repo

    outcome = load_repo(checkout.path, revision=checkout.commit, key=key)
    if not outcome.ok:
        for error in outcome.errors:
            click.echo(terminal_line(str(error)), err=True)
        raise CliError(f"{len(outcome.errors)} errors at {checkout.commit[:12]}")
    assert outcome.desired is not None
    return outcome.desired


@main.command("plan")
@age_key_option
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@source_options
@click.option("--observed", "observed_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Plan against a snapshot (saved `gitops status --format json`) instead of the live hosts.")
@click.option("--base", "base_ref", help="Plan the change from this ref to --ref (or PATH), with no host at all.")
@click.option("--format", "fmt", default="text", show_default=True, type=click.Choice(["text", "json", "markdown"]))
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there is nothing to do, 2 when there are changes.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the plan as JSON, for `gitops apply --plan FILE`.")
@click.option("--allow-empty", is_flag=True, help="Allow a plan that prunes every service of the project.")
@click.option("--show-unchanged", is_flag=True, help="List unchanged instances too (text format).")
def plan_command(path: Path | None, repo_url: str | None, ref: str, subdir: str, state_dir: Path | None,
                 fetch_timeout: float, observed_file: Path | None, base_ref: str | None, fmt: str,
                 detailed_exitcode: bool, out: Path | None, allow_empty: bool, show_unchanged: bool) -> None:
    """Show what apply would change on the hosts, without changing anything.

    The manifests come from PATH (default: the current folder) or from --repo at --ref. They are
    compared with the live hosts, or with a snapshot (--observed FILE), or with another ref of the
    same repository (--base REF: no host and no Docker socket needed).

    Services with `resolve: digest` (the default with `pullPolicy: always`) have their tags looked up on
    their registries first, in every mode, --base and --observed included. When a registry does not answer,
    a warning names it: against live hosts its services keep the digest they run; with --base or --observed
    they are planned by their tag. Encrypted files need the age key: gitops --age-key-file FILE plan ...

    Exit 0 on success (with --detailed-exitcode: 0 no changes, 2 changes), 1 on any error.
    """
    from gitops.core.observed import converged
    from gitops.core.plan import render_markdown
    from gitops.core.planner import PlanError, PlanOptions
    from gitops.core.planner import plan as make_plan
    from gitops.source import SourceError

    if repo_url and path:
        raise click.UsageError("give either PATH or --repo, not both")
    source = _git_source(repo_url, ref, subdir, state_dir, fetch_timeout) if repo_url else None
    # --base compares two loads made here with one key; against hosts or a snapshot the digests on the
    # containers were made with the installation's key (a snapshot of another installation: see planner).
    key = _throwaway_key() if base_ref else _key(state_dir)
    try:
        desired = (_desired_from_checkout(source.fetch(), key=key) if source
                   else _load_or_exit(path or Path("."), key=key))
        base = None
        if base_ref:
            if source:
                base_checkout = source.fetch_commit(base_ref)
            else:
                base_checkout = _local_ref_checkout(path or Path("."), base_ref, state_dir)
            base = _desired_from_checkout(base_checkout, key=key)
        snapshot = _read_snapshot(observed_file) if observed_file and not base_ref else None
    except SourceError as exc:
        raise CliError(str(exc)) from exc
    if base is not None or snapshot is not None:
        from gitops.engine.images import registry_client

        resolver = registry_client(desired)  # one client, so both sides of --base see a tag the same way
        warnings: tuple[str, ...] = ()
        if base is not None:  # no hosts: a registry that does not answer leaves the tag unresolved, said so
            base, _, _ = _pin_and_observe(base, converged, resolver=resolver, unresolved_ok=True)
            observed = converged(base)
            desired, _, warnings = _pin_and_observe(desired, lambda _: observed, resolver=resolver,
                                                    unresolved_ok=True)
        else:
            assert snapshot is not None
            desired, observed, warnings = _pin_and_observe(desired, lambda _: snapshot, resolver=resolver,
                                                           unresolved_ok=True)
        try:
            plan = make_plan(desired, observed, options=PlanOptions(allow_empty=allow_empty, warnings=warnings))
        except PlanError as exc:
            raise CliError(str(exc)) from exc
    else:
        from gitops.engine.observe import open_hosts  # docker-py: only when the live hosts are asked

        root = path or Path(".")
        fetch_commit = source.fetch_commit if source else (
            lambda revision: _local_ref_checkout(root, revision, state_dir))
        with open_hosts(desired) as hosts:
            desired, plan = _make_plan(desired, hosts, allow_empty, state_dir, fetch_commit)
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
@age_key_option
@path_argument
@click.option("--yes", "-y", is_flag=True, help="Apply without asking (required when not on a terminal).")
@click.option("--plan", "plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Apply this saved plan (from `plan --out`), refusing if anything moved since.")
@click.option("--allow-empty", is_flag=True, help="Allow a plan that prunes every service of the project.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Docker calls in flight at once, across services and hosts (waits hold none).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Record the apply in this state store, for history and status [default: $XDG_STATE_HOME/gitops].")
def apply(path: Path, yes: bool, plan_file: Path | None, allow_empty: bool, concurrency: int,
          state_dir: Path | None) -> None:
    """Change the hosts to match the manifests below PATH.

    Shows the plan and asks first unless --yes. Exit 0 when every step succeeded, 1 otherwise.
    """
    from gitops.core import saved_plan
    from gitops.engine.observe import open_hosts

    desired = _load_or_exit(path, key=_key(state_dir))
    with open_hosts(desired) as hosts:
        desired, plan = _make_plan(desired, hosts, allow_empty, state_dir,
                                   lambda revision: _local_ref_checkout(path, revision, state_dir))
        if plan_file is not None:
            # The file only approves: it must hold exactly the plan made here, which is what runs.
            refused = saved_plan.refusal(_read_saved_plan(plan_file), plan)
            if refused is not None:
                raise CliError(refused)
        _print_plan_text(plan)
        if not plan.has_changes:
            sys.exit(EXIT_INVALID if plan.unreachable else EXIT_OK)
        if not yes:
            if not sys.stdin.isatty():
                raise CliError("not on a terminal, so nobody can confirm: pass --yes to apply")
            if not click.confirm("Apply these changes?", default=False):
                click.echo("Nothing changed.")
                sys.exit(EXIT_INVALID)
        from gitops.cli.progress import print_outcome, run_with_progress
        from gitops.engine.apply import ApplyHooks, ApplyStatus, apply_plan
        from gitops.errors import HostError

        records = _open_store(state_dir)
        try:
            pass_id = _begin_record(records)
            try:
                done = apply_plan(desired, hosts, plan, approved=True, records=records,
                                  replan=lambda now: plan, concurrency=concurrency,
                                  hooks=ApplyHooks(run=run_with_progress))
            except HostError as exc:
                raise CliError(f"cannot take the apply lease: {exc}") from exc
            if done.status is ApplyStatus.LEASE_BUSY:
                raise CliError(f"another reconciler ({done.holder}) is applying to these hosts; try again "
                               "when it is done")
            if done.status is not ApplyStatus.APPLIED:
                raise CliError("the containers on the hosts changed while the plan was shown; nothing was applied: "
                               "run gitops apply again")
            assert done.result is not None
            result = done.result
            print_outcome(result)
            _record_apply(records, pass_id, desired, done)
        finally:
            if records is not None:
                records.close()
    sys.exit(EXIT_OK if result.ok else EXIT_INVALID)


def _open_store(state_dir: Path | None) -> StateStore | None:
    """The state store, or None (with a warning) when it cannot be opened: an apply is still possible,
    only not recorded, and containers are inspected instead of trusted from the store."""
    from gitops.state import StateError, StateStore

    try:
        return StateStore(_state_dir(state_dir))
    except StateError as exc:
        click.echo(f"warning: the apply will not be recorded: {exc}", err=True)
        return None


def _begin_record(records: StateStore | None) -> int | None:
    from gitops.state import StateError

    if records is None:
        return None
    try:
        return records.begin_pass("apply")
    except StateError as exc:
        click.echo(f"warning: the apply will not be recorded: {exc}", err=True)
        return None


def _record_apply(records: StateStore | None, pass_id: int | None, desired: DesiredState,
                  done: ApplyOutcome) -> None:
    """Put a manual apply in the history like a pass; a store that cannot be written only warns."""
    from gitops.engine.apply import record_pass
    from gitops.state import StateError

    for problem in done.unrecorded:
        click.echo(f"warning: {problem}", err=True)
    if records is None or pass_id is None or done.result is None:
        return
    try:
        record_pass(records, pass_id, revision=desired.revision, outcome="converged" if done.result.ok else "failed",
                    message=done.message, plan=done.plan, applied=done.result, desired=desired)
    except StateError as exc:
        click.echo(f"warning: the apply was not recorded: {exc}", err=True)


def _read_snapshot(path: Path) -> ObservedState:
    """The observed state in a saved status; any problem is one line naming the file and what is wrong."""
    from gitops.core.observed import MAX_SNAPSHOT_BYTES, SnapshotError, snapshot_from_json

    def refused(reason: str) -> CliError:
        return CliError(f"{path}: not a status snapshot (gitops status --format json): {reason}")

    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SNAPSHOT_BYTES + 1)  # never more than the bound
    except OSError as exc:
        raise refused(exc.strerror or "cannot be read") from exc
    if len(raw) > MAX_SNAPSHOT_BYTES:
        raise refused(f"more than {MAX_SNAPSHOT_BYTES} bytes")
    try:
        return snapshot_from_json(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise refused("not UTF-8 text") from exc
    except SnapshotError as exc:
        raise refused(str(exc)) from exc


def _local_ref_checkout(path: Path, ref: str, state_dir: Path | None) -> Checkout:
    """--base for a local checkout: the same folder at another ref of its own git repository."""
    from gitops.source import SourceError, checkout_at

    try:
        return checkout_at(path, ref, cache_dir=_state_dir(state_dir) / "git")
    except SourceError as exc:
        raise CliError(str(exc)) from exc


def _read_saved_plan(path: Path) -> Plan:
    from gitops.core import saved_plan

    try:
        return saved_plan.parse(path.read_text())
    except (ValueError, OSError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CliError(f"{path}: not a gitops plan file: {exc}") from exc


def _reconciler(repo_url: str | None, ref: str, subdir: str, state_dir: Path | None, fetch_timeout: float,
                *, local: Path | None = None, allow_empty: bool = False, concurrency: int = 8,
                hooks: Any = None, lease_ttl: str = "5m") -> Reconciler:
    from gitops.engine.reconciler import LocalSource, Reconciler
    from gitops.state import StateError, StateStore

    if local is not None:
        source: Any = LocalSource(local)
    elif repo_url:
        source = _git_source(repo_url, ref, subdir, state_dir, fetch_timeout)
    else:
        raise click.UsageError("give --repo URL (or --local DIR for the daemon)")
    try:
        state = StateStore(_state_dir(state_dir))
    except StateError as exc:
        raise CliError(str(exc)) from exc
    return Reconciler(source, state, key=_key(state_dir), allow_empty=allow_empty, concurrency=concurrency,
                      hooks=hooks, lease_ttl=_duration(lease_ttl, "--lease-ttl"))


def _duration(text: str, option: str) -> float:
    from gitops.core.quantities import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


lease_option = click.option("--lease-ttl", default="5m", show_default=True,
                            help="How long the apply lease outlives a reconciler that died holding it.")


def _print_pass(result: PassResult) -> None:
    from gitops.core.plan import short_revision, terminal_line

    rev = short_revision(result.revision) or "-"
    click.echo(terminal_line(f"{result.outcome}: {result.message} (revision {rev}, {result.duration:.1f}s)"),
               err=not result.ok)
    for error in result.errors[:50]:
        click.echo(terminal_line(f"  {error}"), err=True)


@main.command()
@age_key_option
@source_options
@click.option("--force", is_flag=True, help="Apply even a revision that failed before.")
@click.option("--allow-empty", is_flag=True, help="Allow a plan that prunes every service of the project.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 64))
@lease_option
def sync(repo_url: str | None, ref: str, subdir: str, state_dir: Path | None, fetch_timeout: float, force: bool,
         allow_empty: bool, concurrency: int, lease_ttl: str) -> None:
    """One pass: fetch --repo at --ref, validate, plan, apply, record.

    Exit 0 when the hosts converged (or already matched), 1 otherwise (invalid manifests, a failed or
    rolled-back rollout, the source unavailable, a revision that failed before and is not retried yet).
    """
    from gitops.cli.progress import print_outcome
    from gitops.core.plan import render_text

    reconciler = _reconciler(repo_url, ref, subdir, state_dir, fetch_timeout, allow_empty=allow_empty,
                             concurrency=concurrency, lease_ttl=lease_ttl)
    result = reconciler.run_pass("sync", force=force)
    if result.plan is not None and result.plan.has_changes:
        click.echo(render_text(result.plan), nl=False)
    if result.apply is not None:
        print_outcome(result.apply)
    _print_pass(result)
    sys.exit(EXIT_OK if result.ok else EXIT_INVALID)


@main.command()
@age_key_option
@source_options
@click.option("--local", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Reconcile this working folder on every file change, instead of a git repository.")
@click.option("--interval", default="60s", show_default=True, help="Poll interval (a duration; +-10% jitter).")
@click.option("--listen", default="127.0.0.1:8080", show_default=True,
              help="HOST:PORT for webhooks, the web page, status, metrics.")
@click.option("--webhook-secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding the webhook secret (or set GITOPS_WEBHOOK_SECRET).")
@click.option("--no-webhooks", is_flag=True, help="Serve status and metrics only, without a webhook secret.")
@click.option("--status-token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding a token that the web page, GET /status and /metrics require (or set "
                   "GITOPS_STATUS_TOKEN): Authorization: Bearer TOKEN, or the page's password prompt.")
@click.option("--max-connections", default=128, show_default=True, type=click.IntRange(1, 100000),
              help="Open HTTP connections at most; a new one closes the one still sending the request it began "
                   "longest ago.")
@click.option("--header-timeout", default="10s", show_default=True,
              help="Time a client has to send a request's head (a duration).")
@click.option("--body-timeout", default="30s", show_default=True,
              help="Time a client has, once the head is in, to send the body and read the answer (a duration).")
@click.option("--allow-empty", is_flag=True)
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 64))
@lease_option
@click.option("--notify-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file of apprise URLs (one a line: slack://..., ntfy://..., mailto://...), outside the "
                   "repository: each event of a pass is sent to them.")
@click.option("--notify-webhook", "notify_webhook", metavar="URL",
              help="POST each event as signed JSON to URL (X-Gitops-Signature-256: sha256=HMAC of the body).")
@click.option("--notify-webhook-secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding the secret that signs --notify-webhook deliveries.")
@click.option("--notify-quiet", default="1h", show_default=True,
              help="The same failure on every poll is sent once, then again after this long (a duration).")
@click.option("--commit-status", "status_provider", type=click.Choice(["github", "gitlab", "gitea"]),
              help="Post each commit's outcome as a commit status on this forge (pending, success, failure).")
@click.option("--commit-status-token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding the forge's API token (GitHub: statuses write; GitLab: api; Gitea: repository).")
@click.option("--commit-status-api-url", default="",
              help="The forge's API [default: https://api.github.com, https://gitlab.com/api/v4; Gitea: required, "
                   "e.g. https://gitea.example.com/api/v1].")
@click.option("--commit-status-repo", default="",
              help="owner/name (GitLab: the project path or id) [default: from --repo on github.com/gitlab.com].")
@click.option("--commit-status-per-service", is_flag=True,
              help="Also one status per service (gitops/PROJECT/SERVICE), so one service's success cannot hide "
                   "another's failure.")
@click.option("--external-url", default="", help="The daemon's web page as people reach it, for status links.")
def daemon(repo_url: str | None, ref: str, subdir: str, state_dir: Path | None, fetch_timeout: float,
           local: Path | None, interval: str, listen: str, webhook_secret_file: Path | None, no_webhooks: bool,
           status_token_file: Path | None, max_connections: int, header_timeout: str, body_timeout: str,
           allow_empty: bool, concurrency: int, lease_ttl: str, notify_config: Path | None,
           notify_webhook: str | None, notify_webhook_secret_file: Path | None, notify_quiet: str,
           status_provider: str | None, commit_status_token_file: Path | None, commit_status_api_url: str,
           commit_status_repo: str, commit_status_per_service: bool, external_url: str) -> None:
    """Run the loop: a pass at start, on every poll, webhook and (with --local) file change.

    Stops cleanly on SIGTERM/SIGINT after the pass in hand.
    """
    from gitops.core.quantities import parse_duration
    from gitops.daemon.activity import Activity, FanOut
    from gitops.daemon.loop import Daemon, serve
    from gitops.daemon.metrics import Metrics
    from gitops.daemon.server import ServerLimits

    status_token = _status_token(status_token_file)
    limits = ServerLimits(max_connections=max_connections,
                          header_timeout=_positive_duration(header_timeout, "--header-timeout"),
                          body_timeout=_positive_duration(body_timeout, "--body-timeout"))
    secret = _webhook_secret(webhook_secret_file)
    if not secret and not no_webhooks:
        raise CliError("webhooks need a secret: pass --webhook-secret-file FILE or set "
                                   "GITOPS_WEBHOOK_SECRET (or --no-webhooks to serve only status and metrics)")
    try:
        seconds = parse_duration(interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--interval") from exc
    metrics, activity = Metrics(), Activity()
    hooks = FanOut([metrics, activity])
    reconciler = _reconciler(repo_url, ref, subdir, state_dir, fetch_timeout, local=local, allow_empty=allow_empty,
                             concurrency=concurrency, hooks=hooks, lease_ttl=lease_ttl)
    outcomes = _outcome_listeners(reconciler, notify_config=notify_config, notify_webhook=notify_webhook,
                                  notify_webhook_secret_file=notify_webhook_secret_file, notify_quiet=notify_quiet)
    if status_provider is not None:
        outcomes.append(_commit_statuses(status_provider, commit_status_token_file, commit_status_api_url,
                                         commit_status_repo or "", repo_url or "", commit_status_per_service,
                                         external_url))
    elif commit_status_token_file or commit_status_api_url or commit_status_repo or commit_status_per_service:
        raise click.UsageError("the --commit-status-* options need --commit-status github|gitlab|gitea")
    hooks.listeners += outcomes
    loop = Daemon(reconciler, interval=seconds, metrics=metrics, activity=activity)
    try:
        code = serve(loop, listen=listen, secret=None if no_webhooks else secret, branch=ref, watch=local,
                     status_token=status_token, limits=limits)
    finally:
        for listener in outcomes:  # what is still queued gets a few seconds to go out
            listener.close(5.0)
    sys.exit(code)


def _commit_statuses(provider: str, token_file: Path | None, api_url: str, repo: str, repo_url: str,
                     per_service: bool, external_url: str) -> Any:
    """Commit statuses on the forge (gitops.outcomes.statuses): the repository guessed from --repo when not given."""
    from gitops.outcomes.statuses import CommitStatuses, StatusConfig, guess_from_git_url, read_token

    if token_file is None:
        raise click.UsageError("--commit-status needs --commit-status-token-file FILE")
    if not repo:
        guessed_provider, guessed_api, repo = guess_from_git_url(repo_url)
        if not repo or guessed_provider not in (None, provider):
            raise click.UsageError(f"--commit-status {provider}: give --commit-status-repo OWNER/NAME (it cannot be "
                                   "told from --repo)")
        api_url = api_url or guessed_api
    if provider == "gitea" and not api_url:
        raise click.UsageError("--commit-status gitea needs --commit-status-api-url, e.g. "
                               "https://gitea.example.com/api/v1")
    try:
        token = read_token(token_file)
        config = StatusConfig(provider=provider, api_url=api_url, repo=repo, token=token,  # type: ignore[arg-type]
                              external_url=external_url, per_service=per_service)
        return CommitStatuses(config, "")
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _outcome_listeners(reconciler: Reconciler, *, notify_config: Path | None, notify_webhook: str | None,
                       notify_webhook_secret_file: Path | None, notify_quiet: str) -> list[Any]:
    """The daemon's listeners that tell the world what each pass did: notifications (and commit statuses)."""
    listeners: list[Any] = []
    if notify_webhook_secret_file is not None and not notify_webhook:
        raise click.UsageError("--notify-webhook-secret-file needs --notify-webhook URL")
    if notify_config is not None or notify_webhook:
        from gitops.outcomes.notify import Notifier

        secret = b""
        if notify_webhook:
            if notify_webhook_secret_file is None:
                raise click.UsageError("--notify-webhook needs --notify-webhook-secret-file FILE (deliveries are "
                                       "signed)")
            secret = notify_webhook_secret_file.read_bytes().strip()
            if not secret:
                raise CliError(f"{notify_webhook_secret_file} is empty")

        def secrets() -> tuple[str, ...]:
            desired = reconciler.last_desired
            return desired.secret_values() if desired is not None else ()

        try:
            listeners.append(Notifier("", apprise_config=notify_config, webhook_url=notify_webhook or "",
                                      webhook_secret=secret, quiet=_duration(notify_quiet, "--notify-quiet"),
                                      secrets=secrets))
        except ValueError as exc:
            raise CliError(str(exc)) from exc
    return listeners


def _webhook_secret(path: Path | None) -> bytes:
    if path is not None:
        return path.read_bytes().strip()
    return os.environ.get("GITOPS_WEBHOOK_SECRET", "").strip().encode()


def _positive_duration(text: str, option: str) -> float:
    seconds = _duration(text, option)
    if seconds <= 0:
        raise click.BadParameter(f"'{text}' must be longer than zero, like 10s", param_hint=option)
    return seconds


def _status_token(path: Path | None) -> bytes | None:
    """The token from --status-token-file, else GITOPS_STATUS_TOKEN, else None. Never shown in errors."""
    if path is not None:
        token, where = path.read_bytes().strip(), f"status token file {path}"
        if not token:
            raise CliError(f"{where} is empty")
    else:
        token, where = os.environb.get(b"GITOPS_STATUS_TOKEN", b"").strip(), "GITOPS_STATUS_TOKEN"
        if not token:
            return None
    if not all(0x21 <= byte <= 0x7E for byte in token):
        raise CliError(f"{where}: the token must be printable ASCII without spaces "
                                   "(it is sent as `Authorization: Bearer TOKEN`)")
    return token


@main.command()
@age_key_option
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@source_options
@click.option("--format", "fmt", default="text", show_default=True, type=click.Choice(["text", "json"]))
def status(path: Path | None, repo_url: str | None, ref: str, subdir: str, state_dir: Path | None,
           fetch_timeout: float, fmt: str) -> None:
    """Desired vs running, per service and host, with the last outcome and the source's state.

    The same document as the daemon's GET /status. `--format json` is also a snapshot for
    `gitops plan --observed FILE`. When HEAD is invalid, its errors go to stderr, the document shows
    the newest recorded revision that loads (what the hosts keep running), and the exit code is 1.
    """
    from gitops.core.plan import ci_safe_json, terminal_line
    from gitops.daemon.status import status_document
    from gitops.engine.observe import open_hosts
    from gitops.engine.reconciler import service_at, with_pins
    from gitops.manifests.load import load_repo
    from gitops.source import SourceError, revision_of
    from gitops.state import StateStore

    state = StateStore(_state_dir(state_dir))
    key = _key(state_dir)
    if repo_url:
        source = _git_source(repo_url, ref, subdir, state_dir, fetch_timeout)
        try:
            checkout = source.fetch()
            state.record_fetch(url=source.display_url, ref=ref, commit=checkout.commit)
        except SourceError as exc:
            state.record_fetch(url=source.display_url, ref=ref, error=str(exc))
            raise CliError(f"source unavailable: {exc}") from exc
        fetch_commit: Any = source.fetch_commit
        outcome = load_repo(checkout.path, revision=checkout.commit, key=key)
        head = checkout.commit
    else:
        root = path or Path(".")
        head = revision_of(root) or ""
        outcome = load_repo(root, revision=head, key=key)
        fetch_commit = lambda revision: _local_ref_checkout(root, revision, state_dir)  # noqa: E731

    def spec_at(service: str, revision: str) -> ServiceSpec | None:
        try:
            return service_at(fetch_commit(revision), service, key=key)
        except (SourceError, click.ClickException):
            return None  # as a pass does: the service keeps HEAD's spec when the pinned one cannot be read

    desired = outcome.desired
    if desired is None:
        for error in outcome.errors:
            click.echo(shown(error, outcome.root) if not repo_url else terminal_line(str(error)), err=True)
        desired = _last_loadable(state, head, fetch_commit, key)
    notes: tuple[str, ...] = ()
    if desired is not None:
        project = desired.project.name
        desired = with_pins(desired, state.pins(project), spec_at, state.pin_digests(project))  # as a pass does
        with open_hosts(desired) as hosts:
            # a registry that does not answer must not hide the status: the services are shown by their tag
            desired, observed, notes = _pin_and_observe(desired, lambda d: _observe(d, hosts, state_dir),
                                                        unresolved_ok=True)
    doc = status_document(state, desired, observed if desired is not None else None, warnings=notes)
    if fmt == "json":
        click.echo(ci_safe_json(json.dumps(doc, indent=2, sort_keys=True)))
    else:
        _print_status_text(doc, head_invalid=outcome.desired is None, head=head)
    sys.exit(EXIT_OK if outcome.desired is not None else EXIT_INVALID)


def _last_loadable(state: StateStore, head: str, fetch_commit: Any, key: SecretKey) -> DesiredState | None:
    """The newest recorded revision other than ``head`` that loads: what the hosts keep running while HEAD
    is invalid, and what the daemon's status shows then."""
    from gitops.manifests.load import load_repo
    from gitops.source import SourceError

    tried = 0
    for record in state.passes(limit=50):
        if not record.revision or record.revision == head or record.outcome in ("invalid", "source_unavailable"):
            continue
        tried += 1
        if tried > 5:
            break
        try:
            checkout = fetch_commit(record.revision)
        except (SourceError, click.ClickException):
            continue
        loaded = load_repo(checkout.path, revision=checkout.commit, key=key)
        if loaded.desired is not None:
            return loaded.desired
    return None


def _print_status_text(doc: dict[str, Any], *, head_invalid: bool, head: str) -> None:
    """The status document as text; every value from a repository or a host is escaped (terminal_line)."""
    from gitops.core.plan import short_revision, terminal_line

    def out(text: str) -> None:
        click.echo(terminal_line(text))

    out(f"project {doc['project'] or '-'} at {short_revision(doc['revision']) or '-'}")
    if head_invalid:
        out(f"HEAD {short_revision(head) or '-'} is invalid (errors above); shown: the last revision that loads")
    src = doc["source"]
    if src:
        fetched = (f"source unavailable: {src['error']}" if src.get("error")
                   else f"last fetch {src.get('commit', '')[:12]}")
        out(f"source {src.get('url')} {src.get('ref')}: {fetched}")
    last = doc["last_pass"]
    if last:
        out(f"last pass: {last['outcome']} at {short_revision(last['revision']) or '-'} ({last['trigger']})")
    for h in doc["hosts"]:
        out(f"host {h['name']}: " + ("reachable" if h["reachable"] else f"UNREACHABLE ({h['error']})"))
    for warning in doc["warnings"]:
        out(f"! {warning}")
    if doc["pending_changes"]:
        out(f"{doc['pending_changes']} changes pending (gitops plan shows them)")
    for svc in doc["services"]:
        r = svc["replicas"]
        line = (f"{svc['name']:<20} {r['healthy']}/{r['desired']} healthy, {r['up_to_date']} up to date"
                f"  last: {svc['last_outcome'] or '-'}")
        if r["changed_by_hand"]:
            line += f"  {r['changed_by_hand']} changed by hand"
        if svc["pinned_to"]:
            line += f"  pinned to {svc['pinned_to'][:12]}"
        swarm = svc.get("swarm")
        if swarm:  # a Swarm service: its name on the cluster, and Swarm's own word on its last update
            line += f"  Swarm service {swarm['service']} on {swarm['cluster']}"
            if swarm["update_state"] not in ("", "completed"):
                line += f" (update {swarm['update_state'].replace('_', ' ')})"
        if svc.get("image_digest"):
            running = [d for d in svc.get("running_image_digests", []) if d != svc["image_digest"]]
            line += f"  image {svc['image']} ({svc['image_digest'][:19]}.." + (
                f"; running {', '.join(d[:19] + '..' for d in running)})" if running else ")")
        out(line)
        if swarm and swarm["task_error"] and r["running"] < r["desired"]:
            out(f"  last task error: {swarm['task_error']}")
        _print_evidence(svc.get("reason", ""), svc.get("health_output", ""), svc.get("logs", ""), indent="  ")


def _print_evidence(reason: str, health_output: str, logs: str, *, indent: str) -> None:
    """Why a service failed, as `gitops apply` prints it: one escaped line each."""
    from gitops.core.plan import terminal_line

    if reason:
        click.echo(terminal_line(f"{indent}reason: {reason}"))
    if health_output:
        click.echo(terminal_line(f"{indent}health check output: {health_output}"))
    if logs:
        click.echo(f"{indent}last log lines:")
        for line in logs.splitlines():
            click.echo(terminal_line(f"{indent}  {line}"))


@main.command()
@age_key_option
@click.argument("service", required=False)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("--format", "fmt", default="text", show_default=True, type=click.Choice(["text", "json"]))
def history(service: str | None, state_dir: Path | None, limit: int, fmt: str) -> None:
    """Recorded passes, newest first; with SERVICE only those that changed it.

    Text: one line per pass, then its whole error and, per failed service, its reason, health-check
    output and last log lines, each escaped.
    """
    import datetime as dt

    from gitops.core.plan import ci_safe_json, short_revision, terminal_line
    from gitops.state import StateStore

    records = StateStore(_state_dir(state_dir)).passes(limit=limit, service=service)
    if fmt == "json":
        click.echo(ci_safe_json(json.dumps([r.to_dict() for r in records], indent=2)))
        return
    if not records:
        click.echo("no passes recorded")
    for r in records:
        when = dt.datetime.fromtimestamp(r.started_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        took = f"{r.duration:.1f}s" if r.duration is not None else "running"
        what = r.services.get(service, "") if service else ", ".join(f"{k}={v}" for k, v in sorted(r.services.items()))
        click.echo(terminal_line(f"{when}  {short_revision(r.revision) or '-':<14} {r.outcome:<18} {took:>7}  "
                                 f"{r.trigger}" + (f"  {what}" if what else "")))
        if r.error:
            click.echo(terminal_line(f"    {r.error}"))
        for name, digest in sorted(r.images.items()):  # services whose tag was resolved: what they ran
            if service is None or name == service:
                click.echo(terminal_line(f"    {name} image {digest}"))
        for name, found in sorted(r.details.items()):
            if service is None or name == service:
                click.echo(terminal_line(f"    {name}:"))
                _print_evidence("", found.get("health_output", ""), found.get("logs", ""), indent="      ")


@main.command()
@age_key_option
@click.argument("service")
@source_options
@click.option("--to", "to_ref", help="Revision to go back to [default: the last converged revision whose spec of "
                                     "SERVICE differs from the current one].")
def rollback(service: str, repo_url: str | None, ref: str, subdir: str, state_dir: Path | None, fetch_timeout: float,
             to_ref: str | None) -> None:
    """Put SERVICE back to an earlier revision's spec, now, and pin it there.

    Without --to, the target is the newest revision at which SERVICE converged with a spec other than
    the one it has now; newer revisions with the same spec (commits that changed other files) are
    skipped, and named. The pin holds while the tracked ref still has the spec the service had when it
    was pinned: the daemon does not undo the rollback. The first commit that changes SERVICE releases it.
    """
    from gitops.core.plan import terminal_line
    from gitops.source import SourceError

    reconciler = _reconciler(repo_url, ref, subdir, state_dir, fetch_timeout)
    try:
        target, result = reconciler.rollback(service, to=to_ref)
    except SourceError as exc:
        raise CliError(str(exc)) from exc
    click.echo(terminal_line(target.sentence(service)))
    held = f" at image {target.digest}" if target.digest else ""
    click.echo(terminal_line(f"{service} pinned to {target.revision[:12]}{held} until a commit changes it"))
    _print_pass(result)
    sys.exit(EXIT_OK if result.ok else EXIT_INVALID)

if __name__ == "__main__":  # pragma: no cover
    main()
