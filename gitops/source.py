"""Where the manifests come from: a git repository fetched into a cache, read as immutable checkouts.

* URLs are checked before git ever runs: only https://, ssh://, scp-style user@host:path, file://
  and local paths; ``ext::`` and other transports, and anything starting with '-', are refused.
* Refs are checked like ``git check-ref-format`` (or must be a commit id).
* Fetches are shallow where possible, killed after a timeout, and killed when the cache grows past a
  size bound. Git never prompts (no terminal, no askpass) and ssh runs in batch mode.
* Each pass reads ``checkouts/<commit>/``, written to a temporary folder and renamed into place, so
  a half-finished fetch or checkout is never read.
* Credentials in URLs (``https://user:token@host``) never reach logs, errors, plans or the store:
  everything shown goes through :func:`redact`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
SCP_RE = re.compile(r"^(?P<user>[A-Za-z0-9._~-]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^:\s][^\s]*)$")


class SourceError(Exception):
    """The source could not be read. ``temporary`` errors (network, timeout) are retried by the loop."""

    def __init__(self, message: str, *, temporary: bool = True) -> None:
        super().__init__(message)
        self.temporary = temporary


def redact(text: str) -> str:
    """Remove credentials from any URL inside ``text``."""
    return re.sub(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@", r"\g<scheme>***@", text)


def check_url(url: str) -> str:
    """Return the URL if it is an allowed repository location, else raise SourceError (permanent)."""
    if not url or url.startswith("-"):
        raise SourceError(f"repository URL {redact(url)!r} is not allowed: it must not be empty or start with '-'",
                          temporary=False)
    if "::" in url.split("/")[0] or url.startswith(("ext::", "fd::")):
        raise SourceError(f"repository URL {redact(url)!r} uses a transport helper (like ext::), which could run "
                          "commands; use https://, ssh://, git@host:path or a local path", temporary=False)
    if any(ch in url for ch in ("\n", "\r", "\x00")):
        raise SourceError("repository URL contains control characters", temporary=False)
    if "://" in url:
        scheme = url.split("://", 1)[0].lower()
        if scheme not in ("https", "ssh", "file"):
            raise SourceError(f"repository URL scheme {scheme}:// is not allowed; use https://, ssh://, file:// "
                              "or git@host:path", temporary=False)
        parts = urlsplit(url)
        if scheme != "file" and not parts.hostname:
            raise SourceError(f"repository URL {redact(url)!r} has no host", temporary=False)
        if parts.hostname and parts.hostname.startswith("-"):
            raise SourceError("repository host must not start with '-'", temporary=False)
        return url
    if SCP_RE.match(url):
        return url
    if url.startswith(("/", "./", "../")) or os.path.isdir(url):
        return url
    raise SourceError(f"repository URL {redact(url)!r} is not a URL git can use safely; use https://, ssh://, "
                      "git@host:path, file:// or an absolute path", temporary=False)


_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def check_ref(ref: str) -> str:
    """A branch, tag or commit id, validated like ``git check-ref-format --allow-onelevel``."""
    if SHA_RE.match(ref):
        return ref
    problems = (
        not ref or ref.startswith("-") or ref.startswith("/") or ref.endswith("/") or ref.endswith(".")
        or ".." in ref or "@{" in ref or "//" in ref or ref == "@" or _BAD_REF.search(ref) is not None
        or any(part.startswith(".") or part.endswith(".lock") for part in ref.split("/"))
    )
    if problems:
        raise SourceError(f"ref {ref!r} is not a valid branch, tag or commit", temporary=False)
    return ref


def check_subdir(path: str) -> str:
    if not path:
        return ""
    norm = os.path.normpath(path)
    if os.path.isabs(path) or norm == ".." or norm.startswith("../") or "\x00" in path:
        raise SourceError(f"--path {path!r} must be a folder inside the repository", temporary=False)
    return "" if norm == "." else norm


@dataclass(frozen=True)
class Checkout:
    commit: str
    root: Path  # the whole tree at that commit
    path: Path  # root / subdir: where the manifests are


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/true",
        "SSH_ASKPASS": "/bin/true",
        "GIT_SSH_COMMAND": env.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=10"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_PROTOCOL_FROM_USER": "0",
    })
    return env


def _dir_size(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


class GitSource:
    """One repository URL and ref, fetched into ``cache_dir``."""

    def __init__(self, url: str, ref: str = "main", *, subdir: str = "", cache_dir: Path,
                 timeout: float = 60.0, max_bytes: int = 512 * 1024 * 1024, keep_checkouts: int = 5) -> None:
        self.url = check_url(url)
        self.ref = check_ref(ref)
        self.subdir = check_subdir(subdir)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.keep_checkouts = keep_checkouts
        key = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.dir = Path(cache_dir) / key
        self.mirror = self.dir / "mirror.git"
        self.checkouts = self.dir / "checkouts"
        self._lock = threading.Lock()

    @property
    def display_url(self) -> str:
        return redact(self.url)

    def _repo(self) -> Any:
        import git

        if not (self.mirror / "HEAD").exists():
            self.mirror.mkdir(parents=True, exist_ok=True)
            repo = git.Repo.init(self.mirror, bare=True)
            with repo.config_writer() as cfg:
                cfg.set_value("protocol", "allow", "never")
                for proto in ("https", "ssh", "file"):
                    cfg.set_value(f'protocol "{proto}"', "allow", "always")
                cfg.set_value("core", "hooksPath", "/dev/null")
            repo.create_remote("origin", self.url)
        repo = git.Repo(self.mirror)
        repo.git.update_environment(**_git_env())
        return repo

    def fetch(self, ref: str | None = None) -> Checkout:
        """Fetch the ref (by default the tracked one) and return an immutable checkout of its commit."""
        import git

        ref = check_ref(ref) if ref is not None else self.ref
        with self._lock:
            repo = self._repo()
            target = "refs/gitops/target"
            refspec = f"+{ref}:{target}" if not SHA_RE.match(ref) else ref
            watcher = _SizeWatch(self.mirror, self.max_bytes)
            watcher.start()
            try:
                depth = [] if SHA_RE.match(ref) and len(ref) < 40 else ["--depth=1"]
                repo.git.fetch("origin", refspec, *depth, "--no-tags", kill_after_timeout=self.timeout)
            except git.GitCommandError as exc:
                if watcher.exceeded:
                    raise SourceError(f"fetch of {self.display_url} stopped: the repository is larger than "
                                      f"{self.max_bytes // (1024 * 1024)} MiB") from None
                detail = redact((exc.stderr or str(exc)).strip().splitlines()[-1] if (exc.stderr or "").strip()
                                else f"git exited with {exc.status}")
                if exc.status == -9:  # killed at the timeout
                    detail = f"no answer within {self.timeout:g}s"
                raise SourceError(f"cannot fetch {ref} from {self.display_url}: {detail}") from None
            finally:
                watcher.stop()
            try:
                commit = repo.rev_parse("FETCH_HEAD" if SHA_RE.match(ref) else target).hexsha
            except (git.BadName, ValueError) as exc:
                raise SourceError(f"{ref} not found in {self.display_url}", temporary=False) from exc
            return self.checkout(commit)

    def checkout(self, commit: str) -> Checkout:
        """The tree of ``commit`` (already fetched), written once and never changed."""
        if not SHA_RE.match(commit):
            raise SourceError(f"not a commit id: {commit!r}", temporary=False)
        final = self.checkouts / commit
        if not final.exists():
            self.checkouts.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=self.checkouts))
            try:
                repo = self._repo()
                # archive, not checkout: no hooks, no filters from the repo's own config, no index to race on
                import tarfile

                with tempfile.TemporaryFile() as archive:
                    repo.archive(archive, commit, format="tar")
                    archive.seek(0)
                    with tarfile.open(fileobj=archive) as tar:
                        tar.extractall(tmp, filter="data")
                os.replace(tmp, final)
            except Exception as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                if isinstance(exc, SourceError):
                    raise
                raise SourceError(f"cannot check out {commit[:12]}: {redact(str(exc))}") from None
            self._prune_checkouts(keep=final)
        path = final / self.subdir if self.subdir else final
        if not path.is_dir():
            raise SourceError(f"--path {self.subdir!r} is not a folder at {commit[:12]}", temporary=False)
        return Checkout(commit, final, path)

    def has_commit(self, commit: str) -> bool:
        import git

        try:
            self._repo().rev_parse(commit + "^{commit}")
            return True
        except (git.BadName, ValueError, git.GitCommandError):
            return False

    def fetch_commit(self, commit_or_ref: str) -> Checkout:
        """A checkout of another ref or commit (for rollback and plan --base), fetching it when needed."""
        check_ref(commit_or_ref)
        if SHA_RE.match(commit_or_ref) and self.has_commit(commit_or_ref):
            full = self._repo().rev_parse(commit_or_ref).hexsha
            return self.checkout(full)
        return self.fetch(commit_or_ref)

    def _prune_checkouts(self, *, keep: Path) -> None:
        entries = sorted((p for p in self.checkouts.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[self.keep_checkouts:]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)


class _SizeWatch:
    """Kills the running fetch (by making it fail) when the cache grows past ``limit`` bytes."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path, self.limit = path, limit
        self.exceeded = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="gitops-fetch-size")
        self._base = _dir_size(path)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            if _dir_size(self.path) - self._base > self.limit:
                self.exceeded = True
                _kill_git_children(self.path)
                return


def _kill_git_children(path: Path) -> None:
    """Kill git processes working in ``path`` (the fetch and its index-pack)."""
    import signal

    target = str(path)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cwd.startswith(target) and b"git" in cmdline.split(b"\x00")[0]:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


def revision_of(path: Path) -> str:
    """The commit a local folder is at; '' outside git. '-dirty' is added when a tracked file in the folder
    changed or a manifest (a .yaml/.yml file outside hidden folders) is not committed yet."""
    try:
        import git
    except ImportError:  # pragma: no cover - gitpython is a dependency
        return ""
    try:
        repo = git.Repo(path, search_parent_directories=True)
        sha = repo.head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return ""
    try:
        rel = str(Path(path).resolve().relative_to(Path(repo.working_tree_dir or ".").resolve()))
        inside = None if rel == "." else rel
        dirty = repo.is_dirty(untracked_files=False, path=inside)
        # An untracked file counts only when it is a manifest the loader reads: a plan.md written next
        # to the manifests (as a CI job does) does not make the revision dirty.
        dirty = dirty or any(_is_manifest(f) for f in repo.git.ls_files("--others", "--exclude-standard",
                                                                           "--", inside or ".").splitlines())
    except (ValueError, git.GitCommandError):
        dirty = False
    return sha + ("-dirty" if dirty else "")


def _is_manifest(rel: str) -> bool:
    parts = Path(rel).parts
    return rel.endswith((".yaml", ".yml")) and not any(p.startswith(".") for p in parts)
