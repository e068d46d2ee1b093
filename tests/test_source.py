"""The git source on real repositories: safety checks before git runs, fetches, checkouts, faults."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from gitops.source import GitSource, SourceError, check_ref, check_url, redact, revision_of
from tests.gitutil import Remote


@pytest.mark.parametrize("url", [
    "ext::sh -c touch% /tmp/pwned", "ext::ssh -o ProxyCommand=evil x", "fd::3", "-uhelp", "--upload-pack=evil",
    "http://example.com/repo.git", "ftp://example.com/x", "git://example.com/x", "https://-oProxyCommand=x/y",
    "https:///nohost", "", "transport::rest", "repo\nname",
])
def test_dangerous_urls_are_refused_before_git_runs(url: str, tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    with pytest.raises(SourceError) as info:
        GitSource(url, cache_dir=tmp_path)
    assert info.value.temporary is False
    assert not canary.exists()


@pytest.mark.parametrize("url", ["https://github.com/org/repo.git", "ssh://git@host:22/org/repo.git",
                                 "git@github.com:org/repo.git", "file:///srv/repo.git", "/srv/repo.git", "./repo"])
def test_allowed_urls(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize("ref", ["main", "release/1.2", "v1.0.0", "feature/x-y_z", "0123abc", "a" * 40])
def test_valid_refs(ref: str) -> None:
    assert check_ref(ref) == ref


@pytest.mark.parametrize("ref", ["-main", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "/a", "a/",
                                 "a.lock", ".hidden", "a/.b", "a@{1}", "@", "a//b", "a.", "--upload-pack=x", "\x07"])
def test_invalid_refs(ref: str) -> None:
    with pytest.raises(SourceError):
        check_ref(ref)


def test_credentials_are_redacted() -> None:
    assert redact("fetch https://user:ghp_SECRET@github.com/o/r.git failed") == "fetch https://***@github.com/o/r.git failed"
    assert redact("ssh://git:pw@host/x and https://tok@h/y") == "ssh://***@host/x and https://***@h/y"


def test_fetch_checkout_and_force_push(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    first = remote.commit({"a.yaml": "v: 1\n"})
    source = GitSource(str(remote.bare), "main", cache_dir=tmp_path / "cache")
    checkout = source.fetch()
    assert checkout.commit == first and (checkout.path / "a.yaml").read_text() == "v: 1\n"
    second = remote.commit({"a.yaml": "v: 2\n"})
    assert source.fetch().commit == second
    # a force-push back in time: the new HEAD is used, and the old checkout is untouched
    remote.reset_hard(first)
    third = remote.commit({"a.yaml": "v: 3\n"}, "rewritten")
    latest = source.fetch()
    assert latest.commit == third and (latest.path / "a.yaml").read_text() == "v: 3\n"
    assert (checkout.path / "a.yaml").read_text() == "v: 1\n"
    # the commit the force-push threw away is still in the cache, so a rollback to it works
    assert (source.fetch_commit(second).path / "a.yaml").read_text() == "v: 2\n"


def test_subfolder_and_tags(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    commit = remote.commit({"deploy/prod/a.yaml": "x: 1\n", "other.txt": "y"})
    from tests.gitutil import git

    git("tag", "v1", cwd=remote.work)
    git("push", "-q", "origin", "v1", cwd=remote.work)
    source = GitSource(f"file://{remote.bare}", "v1", subdir="deploy/prod", cache_dir=tmp_path / "c")
    checkout = source.fetch()
    assert checkout.commit == commit and sorted(p.name for p in checkout.path.iterdir()) == ["a.yaml"]
    with pytest.raises(SourceError, match="must be a folder inside"):
        GitSource(str(remote.bare), subdir="../../etc", cache_dir=tmp_path / "c")


def test_missing_branch_and_missing_repo(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.commit({"a.yaml": "x: 1\n"})
    with pytest.raises(SourceError, match="cannot fetch nope"):
        GitSource(str(remote.bare), "nope", cache_dir=tmp_path / "c").fetch()
    with pytest.raises(SourceError) as info:
        GitSource(str(tmp_path / "gone.git"), cache_dir=tmp_path / "c").fetch()
    assert info.value.temporary


def test_a_hanging_remote_times_out(tmp_path: Path) -> None:
    """A port that accepts and never answers: the fetch is killed after its timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    port = server.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        source = GitSource(f"https://user:TOKEN-CANARY@127.0.0.1:{port}/repo.git", cache_dir=tmp_path, timeout=2)
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            source.fetch()
        assert time.monotonic() - started < 10
        assert "TOKEN-CANARY" not in str(info.value) and info.value.temporary
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def test_credentials_never_in_errors(tmp_path: Path) -> None:
    source = GitSource("https://deploy:SECRET-TOKEN-42@127.0.0.1:9/org/repo.git", cache_dir=tmp_path, timeout=5)
    with pytest.raises(SourceError) as info:
        source.fetch()
    assert "SECRET-TOKEN-42" not in str(info.value) and "***@127.0.0.1" in str(info.value)
    assert "SECRET-TOKEN-42" not in source.display_url


def test_size_bound_stops_a_huge_fetch(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    import os

    (remote.work / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    remote.commit({"a.yaml": "x: 1\n"})
    source = GitSource(str(remote.bare), cache_dir=tmp_path / "c", max_bytes=1024 * 1024)
    with pytest.raises(SourceError, match="larger than 1 MiB"):
        source.fetch()


def test_checkouts_are_immutable_and_complete(tmp_path: Path) -> None:
    """A checkout appears whole (written aside, then renamed) and is reused, never rewritten."""
    remote = Remote(tmp_path)
    commit = remote.commit({"a.yaml": "x: 1\n", "sub/b.yaml": "y: 2\n"})
    source = GitSource(str(remote.bare), cache_dir=tmp_path / "c")
    first = source.fetch()
    mtime = (first.path / "a.yaml").stat().st_mtime_ns
    again = source.fetch()
    assert again.root == first.root and (again.path / "a.yaml").stat().st_mtime_ns == mtime
    assert [p.name for p in first.root.parent.iterdir() if p.name.startswith(".")] == []
    assert first.root.name == commit


def test_a_local_folder_is_dirty_only_when_its_manifests_changed(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "r")
    sha = remote.commit({"app/web.yaml": "a: 1\n", "app/notes.md": "x\n"})
    folder = remote.work / "app"
    assert revision_of(folder) == sha
    (folder / "plan.md").write_text("a plan written next to the manifests\n")  # as a CI job does
    (remote.work / ".github").mkdir()
    (remote.work / ".github" / "ci.yml").write_text("on: push\n")  # hidden folders are not loaded
    assert revision_of(folder) == sha
    (folder / "new.yaml").write_text("b: 2\n")  # untracked, but the loader reads it
    assert revision_of(folder) == f"{sha}-dirty"
    (folder / "new.yaml").unlink()
    (folder / "notes.md").write_text("changed\n")  # a tracked file changed
    assert revision_of(folder) == f"{sha}-dirty"
    assert revision_of(tmp_path) == ""  # not in git


def test_a_relative_state_dir_works_with_a_repository(tmp_path: Path) -> None:
    """git runs in the cache's folders: a relative --state-dir must not become relative to them."""
    from tests.conftest import PROJECT, service
    from tests.gitutil import Remote
    from tests.hostile import run_gitops

    remote = Remote(tmp_path / "git")
    remote.commit({"project.yaml": PROJECT, "web.yaml": service("web")})
    done = run_gitops("plan", "--repo", str(remote.bare), "--state-dir", "rel-state", "--observed",
                      str(_empty_snapshot(tmp_path)), cwd=tmp_path, tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rel-state" / "git").is_dir()


def _empty_snapshot(tmp_path: Path) -> Path:
    import json

    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"hosts": [{"host": "local", "reachable": True, "containers": [], "networks": [],
                                           "volumes": []}]}))
    return path
