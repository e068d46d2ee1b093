"""The git source as an attacker sees it: credentials, file modes, huge or hostile trees, and what git
could be made to run or fetch. Every case runs real git against real repositories (SECURITY.md 2, 4b,
5, 7, 15)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import textwrap
import zlib
from pathlib import Path

import pytest

from gitops.engine.reconciler import Reconciler
from gitops.source import GitSource, SourceError, check_ref, redact
from gitops.state import StateStore
from tests.githttp import GitHttpServer
from tests.gitutil import ENV, Remote, git
from tests.hostile import measure, run_gitops

CANARY = "CANARY-t0ken-p@ss"  # an '@' inside the password, as forge tokens may have
CANARY_IN_URL = "CANARY-t0ken-p%40ss"
PROJECT = "apiVersion: gitops/v1\nkind: Project\nmetadata:\n  name: credtest\n"


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under ``root`` (git config, packs, FETCH_HEAD, logs, the database...) holding ``needle``."""
    found = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink() and needle in path.read_bytes():
                found.append(str(path.relative_to(root)))
    return found


def loose_modes(root: Path) -> list[str]:
    """Every file or folder under ``root`` (and root itself) that is not private to its owner."""
    loose = []
    for folder, dirs, names in os.walk(root):
        for name in [*dirs, *names, *([""] if Path(folder) == root else [])]:
            path = Path(folder, name)
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
                loose.append(f"{path.relative_to(root)} {oct(stat.S_IMODE(mode))}")
    return loose


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A repository behind HTTPS + Basic auth (user deploy, password CANARY) on loopback."""
    remote = Remote(tmp_path / "repos")
    commit = remote.commit({"project.yaml": PROJECT})
    (tmp_path / "certs").mkdir()
    with GitHttpServer(tmp_path / "repos", user="deploy", password=CANARY, certs=tmp_path / "certs") as server:
        monkeypatch.setenv("GIT_SSL_CAINFO", str(server.cert))
        yield server, remote, commit


# -- item 6: tokens -------------------------------------------------------------------------------------------

def test_a_token_in_the_url_fetches_and_is_stored_nowhere(served, tmp_path: Path) -> None:
    server, _remote, commit = served
    state_dir = tmp_path / "state"
    url = server.url("remote.git", userinfo=f"deploy:{CANARY_IN_URL}")
    source = GitSource(url, cache_dir=state_dir / "git", timeout=30)
    checkout = source.fetch()
    assert checkout.commit == commit and (checkout.path / "project.yaml").read_text() == PROJECT
    assert server.authorized > 0
    store = StateStore(state_dir)
    store.record_fetch(url=source.display_url, ref="main", commit=commit)
    store.close()
    assert source.display_url == f"https://***@127.0.0.1:{server.port}/remote.git"
    for needle in (CANARY, CANARY_IN_URL, "t0ken"):
        assert files_holding(state_dir, needle.encode()) == []
    assert loose_modes(state_dir) == []


def test_a_raw_at_sign_in_the_password_still_fetches(served, tmp_path: Path) -> None:
    server, _remote, commit = served
    source = GitSource(server.url("remote.git", userinfo=f"deploy:{CANARY}"), cache_dir=tmp_path / "s" / "git")
    assert source.fetch().commit == commit
    assert source.display_url == f"https://***@127.0.0.1:{server.port}/remote.git"
    assert files_holding(tmp_path / "s", b"t0ken") == []


def test_the_cli_never_shows_or_stores_the_token(served, tmp_path: Path) -> None:
    server, _remote, _commit = served
    state_dir = tmp_path / "state"
    empty = tmp_path / "observed.json"
    empty.write_text(json.dumps({"observed": {"hosts": []}}))
    url = server.url("remote.git", userinfo=f"deploy:{CANARY_IN_URL}")
    ok = run_gitops("plan", "--repo", url, "--state-dir", str(state_dir), "--observed", str(empty),
                    "--allow-empty", tmp=tmp_path, env={"GIT_SSL_CAINFO": str(server.cert)})
    assert ok.returncode == 0, ok.stderr
    wrong = server.url("remote.git", userinfo="deploy:CANARY-wrong-t0ken")
    refused = run_gitops("plan", "--repo", wrong, "--state-dir", str(state_dir), "--observed", str(empty),
                         tmp=tmp_path, env={"GIT_SSL_CAINFO": str(server.cert)})
    assert refused.returncode == 1
    assert f"cannot fetch main from https://***@127.0.0.1:{server.port}/remote.git" in refused.stderr
    for run in (ok, refused):
        assert "t0ken" not in run.stdout + run.stderr
    assert files_holding(state_dir, b"t0ken") == [] and loose_modes(state_dir) == []


def test_status_shows_the_source_without_its_token(served, tmp_path: Path, docker_client) -> None:
    server, _remote, commit = served
    state_dir = tmp_path / "state"
    url = server.url("remote.git", userinfo=f"deploy:{CANARY_IN_URL}")
    shown = run_gitops("status", "--repo", url, "--state-dir", str(state_dir), "--format", "json",
                       tmp=tmp_path, env={"GIT_SSL_CAINFO": str(server.cert)})
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["source"]["url"] == f"https://***@127.0.0.1:{server.port}/remote.git"
    assert "t0ken" not in shown.stdout + shown.stderr
    assert files_holding(state_dir, b"t0ken") == [] and loose_modes(state_dir) == []


def test_a_cache_left_by_an_older_version_is_cleaned(served, tmp_path: Path) -> None:
    """Older versions wrote the token into the cache's git config, world-readable: both are repaired."""
    import hashlib

    server, _remote, commit = served
    state_dir = tmp_path / "state"
    url = server.url("remote.git", userinfo=f"deploy:{CANARY_IN_URL}")
    old = state_dir / "git" / hashlib.sha256(url.encode()).hexdigest()[:16] / "mirror.git"
    git("init", "-q", "--bare", str(old), cwd=tmp_path)
    git("remote", "add", "origin", url, cwd=old)
    for path in (state_dir, state_dir / "git", old, old / "config"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (state_dir / "state.db").touch(mode=0o644)
    source = GitSource(url, cache_dir=state_dir / "git")
    StateStore(state_dir).close()
    assert source.fetch().commit == commit
    assert files_holding(state_dir, b"t0ken") == [] and loose_modes(state_dir) == []


@pytest.mark.parametrize(("text", "shown"), [
    ("https://u:p@ss@host/x", "https://***@host/x"),
    ("fetch https://user:ghp_SECRET@github.com/o/r.git failed", "fetch https://***@github.com/o/r.git failed"),
    ("deploy@host:org/repo.git", "***@host:org/repo.git"),
    ("from git@github.com:org/repo.git: denied", "from ***@github.com:org/repo.git: denied"),
    ("ssh://git:pw@host/x and https://tok@h/y", "ssh://***@host/x and https://***@h/y"),
    ("https://host/plain.git", "https://host/plain.git"),
    ("image nginx@sha256:0a1b is pinned", "image nginx@sha256:0a1b is pinned"),
])
def test_every_form_of_credentials_is_redacted(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_a_ref_with_a_newline_or_escape_is_refused() -> None:
    for ref in ("main\nevil", "main\x1b[2J", "main\r"):
        with pytest.raises(SourceError):
            check_ref(ref)


# -- item 9: checkout size ------------------------------------------------------------------------------------

def zero_blob(repo: Path, size: int) -> str:
    """Write a blob of ``size`` zero bytes straight into the object store (no file of that size on disk)."""
    header = f"blob {size}\x00".encode()
    import hashlib

    digest = hashlib.sha1(header)
    packer = zlib.compressobj(1)
    chunks = [packer.compress(header)]
    block = bytes(1 << 20)
    for _ in range(size >> 20):
        digest.update(block)
        chunks.append(packer.compress(block))
    chunks.append(packer.flush())
    sha = digest.hexdigest()
    path = repo / ".git" / "objects" / sha[:2] / sha[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(chunks))
    return sha


def commit_blobs(remote: Remote, blobs: dict[str, tuple[str, str]]) -> str:
    """Add files to the index by blob id and mode (no work-tree file), commit and push."""
    for rel, (mode, sha) in blobs.items():
        git("update-index", "--add", "--cacheinfo", f"{mode},{sha},{rel}", cwd=remote.work)
    git("commit", "-q", "-m", "blobs", cwd=remote.work)
    git("push", "-q", "--force", "origin", remote.branch, cwd=remote.work)
    return git("rev-parse", "HEAD", cwd=remote.work)


def written(source: GitSource) -> list[str]:
    return sorted(p.name for p in source.checkouts.iterdir()) if source.checkouts.exists() else []


def test_a_checkout_larger_than_its_bound_is_refused_before_writing(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "r")
    remote.commit({"project.yaml": PROJECT})
    big = zero_blob(remote.work, 40 << 20)  # four identical 40 MiB files: one small blob, 160 MiB checked out
    commit = commit_blobs(remote, {f"data/copy{i}.bin": ("100644", big) for i in range(4)})
    source = GitSource(str(remote.bare), cache_dir=tmp_path / "cache")
    expected = (f"revision {commit[:12]} is too large to check out: 5 files, 160.0 MiB (the limits are 20000 files "
                "and 128.0 MiB); keep large files out of the repository, or point --path at a smaller folder")
    with pytest.raises(SourceError) as info:
        source.fetch()
    assert str(info.value) == expected
    assert (info.value.temporary, info.value.revision) == (False, commit)
    assert written(source) == []
    measured = measure(f"""
        from gitops.source import GitSource, SourceError
        try:
            GitSource({str(remote.bare)!r}, cache_dir={str(tmp_path / "cache")!r}).checkout({commit!r})
        except SourceError as exc:
            print(exc)
    """, tmp=tmp_path)
    assert measured.stdout.strip() == expected
    measured.within_bounds()
    assert written(source) == []


def test_too_many_files_are_refused(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "r")
    remote.commit({"project.yaml": PROJECT})
    empty = git("hash-object", "-w", "--stdin", cwd=remote.work)
    commit = commit_blobs(remote, {f"many/f{i}": ("100644", empty) for i in range(30)})
    source = GitSource(str(remote.bare), cache_dir=tmp_path / "cache", max_checkout_files=20)
    with pytest.raises(SourceError) as info:
        source.fetch()
    assert str(info.value) == (f"revision {commit[:12]} is too large to check out: more than 20 files (the limits "
                               "are 20 files and 128.0 MiB); keep large files out of the repository, or point "
                               "--path at a smaller folder")
    assert written(source) == []


def run_twice(source: GitSource, state_dir: Path) -> tuple[Reconciler, list]:
    reconciler = Reconciler(source, StateStore(state_dir), backoff_base=3600)
    return reconciler, [reconciler.run_pass("poll"), reconciler.run_pass("poll")]


def test_an_oversized_revision_is_recorded_invalid_and_skipped_on_the_next_poll(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "r")
    remote.commit({"project.yaml": PROJECT})
    big = zero_blob(remote.work, 1 << 20)
    commit = commit_blobs(remote, {"a.bin": ("100644", big), "b.bin": ("100644", big)})
    source = GitSource(str(remote.bare), cache_dir=tmp_path / "state" / "git", max_checkout_bytes=1 << 20)
    reconciler, (first, second) = run_twice(source, tmp_path / "state")
    assert first.outcome == "invalid" and first.revision == commit
    assert first.message.startswith(f"revision {commit[:12]} is invalid, nothing was changed: revision "
                                     f"{commit[:12]} is too large to check out: 3 files, 2.0 MiB")
    failed = reconciler.state.failed(commit)
    assert failed is not None and failed.attempts == 1 and "too large to check out" in failed.error
    assert second.outcome == "skipped" and "failed before" in second.message
    assert reconciler.state.source()["available"] is True  # the source itself is fine


# -- item 13: symlinks ------------------------------------------------------------------------------------------

def symlink_blob(remote: Remote, target: str) -> str:
    """A blob holding ``target`` (what a symlink points at, or any text), written without filters."""
    return subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=remote.work, env=ENV, input=target,
                          capture_output=True, text=True, check=True).stdout.strip()


def test_an_absolute_symlink_under_path_is_an_invalid_revision(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "r")
    remote.commit({"prod/project.yaml": PROJECT})
    commit = commit_blobs(remote, {"prod/passwd": ("120000", symlink_blob(remote, "/etc/passwd"))})
    source = GitSource(str(remote.bare), subdir="prod", cache_dir=tmp_path / "state" / "git")
    reconciler, (first, second) = run_twice(source, tmp_path / "state")
    assert first.outcome == "invalid"
    assert first.message == (f"revision {commit[:12]} is invalid, nothing was changed: revision {commit[:12]}: "
                             "'prod/passwd' is a symlink to an absolute path; only relative symlinks are checked "
                             "out (the loader refuses any that leave the checkout)")
    failed = reconciler.state.failed(commit)
    assert failed is not None and failed.attempts == 1
    assert second.outcome == "skipped"


def test_a_symlink_outside_path_does_not_block_it(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "r")
    remote.commit({"prod/project.yaml": PROJECT, "docs/readme.md": "x\n"})
    commit = commit_blobs(remote, {"docs/abs": ("120000", symlink_blob(remote, "/etc/passwd")),
                                   "escape": ("120000", symlink_blob(remote, "../../../../etc"))})
    checkout = GitSource(str(remote.bare), subdir="prod", cache_dir=tmp_path / "c").fetch()
    assert checkout.commit == commit and sorted(p.name for p in checkout.path.iterdir()) == ["project.yaml"]


def test_a_relative_symlink_leaving_the_checkout_is_refused_by_the_loader(tmp_path: Path) -> None:
    from gitops.manifests.load import load_repo

    remote = Remote(tmp_path / "r")
    remote.commit({"prod/project.yaml": PROJECT, "secret.yaml": "token: x\n"})
    commit_blobs(remote, {"prod/evil.yaml": ("120000", symlink_blob(remote, "../../../../../../etc/hostname")),
                          "prod/up.yaml": ("120000", symlink_blob(remote, "../secret.yaml"))})
    checkout = GitSource(str(remote.bare), subdir="prod", cache_dir=tmp_path / "c").fetch()
    errors = [str(e) for e in load_repo(checkout.path).errors]
    assert len(errors) == 2 and all("symlink refused" in e for e in errors), errors
    assert {e.split(":")[0] for e in errors} == {"evil.yaml", "up.yaml"}


# -- item 11: an unexpected error in a pass ----------------------------------------------------------------------

def test_an_unexpected_error_while_loading_is_recorded_against_the_revision(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    remote = Remote(tmp_path / "r")
    commit = remote.commit({"project.yaml": PROJECT})

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("loader bug")

    monkeypatch.setattr("gitops.engine.reconciler.load_repo", explode)
    source = GitSource(str(remote.bare), cache_dir=tmp_path / "state" / "git")
    reconciler, (first, second) = run_twice(source, tmp_path / "state")
    assert first.outcome == "failed" and first.revision == commit
    assert first.message == (f"revision {commit[:12]} failed: unexpected error while loading it: RuntimeError: "
                             "loader bug (a bug in gitops; not retried until a new commit, the backoff, or "
                             "sync --force)")
    failed = reconciler.state.failed(commit)
    assert failed is not None and failed.error == "unexpected error while loading it: RuntimeError: loader bug"
    assert second.outcome == "skipped" and "loader bug" in second.message
    history = reconciler.state.passes()
    assert [p.outcome for p in history] == ["skipped", "failed"]


# -- what git could be made to run or fetch from the repository --------------------------------------------------

def test_repository_attributes_filters_and_submodules_do_nothing(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """.gitattributes cannot make the checkout run a filter (even one the user's global git config
    defines, like git-lfs), expand placeholders or convert text; submodules are not fetched."""
    pwned = tmp_path / "pwned"
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(textwrap.dedent(f"""\
        [filter "lfs"]
            smudge = touch {pwned}
            required = true
        [core]
            hooksPath = {tmp_path}/hooks
    """))
    monkeypatch.setenv("HOME", str(home))
    remote = Remote(tmp_path / "r")
    sub = Remote(tmp_path / "sub")
    sub_commit = sub.commit({"x": "y\n"})
    body = "id $Id$ fmt $Format:%H$\nline\n"
    remote.commit({"ignored": "still here\n", ".gitmodules": f'[submodule "m"]\n\tpath = m\n\turl = {sub.bare}\n'})
    attributes = "* filter=lfs ident export-subst eol=crlf working-tree-encoding=UTF-16\nignored export-ignore\n"
    commit = commit_blobs(remote, {"m": ("160000", sub_commit), "a.yaml": ("100644", symlink_blob(remote, body)),
                                   ".gitattributes": ("100644", symlink_blob(remote, attributes))})
    checkout = GitSource(str(remote.bare), cache_dir=tmp_path / "c").fetch()
    assert checkout.commit == commit
    assert (checkout.path / "a.yaml").read_bytes() == body.encode()
    assert (checkout.path / "ignored").read_text() == "still here\n"
    assert not (checkout.path / "m").exists() or list((checkout.path / "m").iterdir()) == []
    assert not pwned.exists()
