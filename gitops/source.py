"""Where the manifests come from: a git repository fetched into a cache, read as immutable checkouts.

* URLs are checked before git ever runs: only https://, ssh://, scp-style user@host:path, file://
  and local paths; ``ext::`` and other transports, and anything starting with '-', are refused.
* Refs are checked like ``git check-ref-format`` (or must be a commit id).
* Fetches are shallow where possible, killed after a timeout, and killed when the cache grows past a
  size bound. Git never prompts (no terminal, no askpass) and ssh runs in batch mode.
* Credentials in URLs (``https://user:token@host``) are handed to git by a credential helper that
  reads them from the git process's environment: the cache's config holds the URL without them, and
  nothing else on disk ever sees them. Everything shown goes through :func:`redact`.
* Git reads no system or global config: a filter, hook or ``url.insteadOf`` there cannot act on a
  repository's content. Only the settings below apply (no hooks, no submodules, no other protocols).
* Each pass reads ``checkouts/<commit>/`` (only the ``--path`` folder), written to a temporary folder
  and renamed into place, so a half-finished fetch or checkout is never read. Before anything is
  written, the tree is measured (``git ls-tree -l``): more files or bytes than the bounds, or a
  symlink to an absolute path, make the revision invalid. ``git archive`` writes the files with every
  attribute-driven conversion off (filters, ``export-subst``, ``ident``, line endings, encodings), so
  a file is exactly its blob.
* Every folder and file in the cache is private (0700/0600): git runs with umask 077.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast
from urllib.parse import unquote, urlsplit, urlunsplit

from gitops.core.ports import Checkout
from gitops.errors import GitopsError
from gitops.state import make_private, private_dir

SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
SCP_RE = re.compile(r"^(?P<user>[A-Za-z0-9._~-]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>[^:\s][^\s]*)$")

MAX_CHECKOUT_BYTES = 128 * 1024 * 1024  # the files of one checkout (the --path folder), from the tree's sizes
MAX_CHECKOUT_FILES = 20_000  # files and symlinks in one checkout
MAX_SYMLINK_TARGET = 4096  # bytes: PATH_MAX


class SourceError(GitopsError):
    """The source could not be read. ``temporary`` errors (network, timeout) are retried by the loop.

    ``revision`` is set when the error is a property of that commit (too large, an absolute symlink,
    --path missing): the loop records the revision as invalid, with the backoff failed revisions get."""

    def __init__(self, message: str, *, temporary: bool = True, revision: str = "") -> None:
        super().__init__(message, temporary=temporary and not revision)
        self.revision = revision


# userinfo of a URL with a scheme: everything up to the LAST '@' before the path (a password may hold '@')
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s]*@")
# scp-style user[:password]@host:path, at the start of a word
# (an image digest, name@sha256:..., is not a URL)
_SCP_USERINFO = re.compile(r"(?:(?<=^)|(?<=[\s'\"(<\[=,]))[^\s/'\"]+@(?!sha\d+:)(?=[A-Za-z0-9][A-Za-z0-9.-]*:)")


def redact(text: str) -> str:
    """Remove credentials (and user names) from any URL inside ``text``."""
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    return _SCP_USERINFO.sub("***@", text)


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


@dataclass(frozen=True)
class Credentials:
    """A URL split into what may be stored (``url``) and what may not (``username``, ``password``)."""

    url: str
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @property
    def present(self) -> bool:
        return bool(self.username or self.password)


def split_credentials(url: str) -> Credentials:
    """``https://user:token@host/x`` -> ``https://host/x`` plus the (percent-decoded) user and token. An ssh
    URL keeps its user (ssh needs it) and loses any password (ssh never takes one from a URL)."""
    if "://" not in url:
        return Credentials(url)
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return Credentials(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    if parts.scheme.lower() == "ssh":
        return Credentials(urlunsplit(parts._replace(netloc=f"{user}@{hostport}")))
    username, password = unquote(user), unquote(password)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in username + password):
        raise SourceError(f"the credentials in repository URL {redact(url)!r} contain control characters",
                          temporary=False)
    return Credentials(urlunsplit(parts._replace(netloc=hostport)), username, password)


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


# Command-line config (GIT_CONFIG_COUNT): it outranks the cache's own config, and git reads no other.
SAFE_CONFIG = (
    ("protocol.allow", "never"),
    ("protocol.https.allow", "always"),
    ("protocol.ssh.allow", "always"),
    ("protocol.file.allow", "always"),
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("credential.helper", ""),  # an empty value drops every helper named before it
)

# Answers git's credential request from the git process's own environment, never from a file.
_HELPER = ('!f() { test "$1" = get && printf "username=%s\\npassword=%s\\n" '
           '"$GITOPS_GIT_USERNAME" "$GITOPS_GIT_PASSWORD"; }; f')

# $GIT_DIR/info/attributes outranks every .gitattributes in the tree: no conversion when checking out.
NO_CONVERSIONS = ("* -filter -ident -export-subst -export-ignore -text -eol -crlf -working-tree-encoding "
                  "-diff -merge\n")


def _git_env(config: tuple[tuple[str, str], ...] = (), extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_CONFIG", "GIT_DIR", "GIT_WORK_TREE"))}
    env.update({
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/true",
        "SSH_ASKPASS": "/bin/true",
        "GIT_SSH_COMMAND": env.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=10"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_LFS_SKIP_SMUDGE": "1",
    })
    settings = (*SAFE_CONFIG, *config)
    env["GIT_CONFIG_COUNT"] = str(len(settings))
    for i, (key, value) in enumerate(settings):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    env.update(extra or {})
    return env


def _dir_size(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


class _GitFailed(Exception):
    def __init__(self, status: int, stderr: str, *, timed_out: bool = False) -> None:
        super().__init__(stderr)
        self.status, self.stderr, self.timed_out = status, stderr, timed_out

    @property
    def detail(self) -> str:
        lines = self.stderr.strip().splitlines()
        return redact(lines[-1]) if lines else f"git exited with {self.status}"


@dataclass
class _Tree:
    files: int = 0
    size: int = 0
    complete: bool = True
    symlinks: list[tuple[str, str, int]] = field(default_factory=list)  # path, blob, size


class GitSource:
    """One repository URL and ref, fetched into ``cache_dir``."""

    def __init__(self, url: str, ref: str = "main", *, subdir: str = "", cache_dir: Path,
                 timeout: float = 60.0, max_bytes: int = 512 * 1024 * 1024, keep_checkouts: int = 5,
                 max_checkout_bytes: int = MAX_CHECKOUT_BYTES, max_checkout_files: int = MAX_CHECKOUT_FILES) -> None:
        check_url(url)
        self._credentials = split_credentials(url)
        self.url = self._credentials.url  # what git stores and what is keyed: never the credentials
        self._display_url = redact(url)  # https://***@host/...: shows that credentials are in use
        self.ref = check_ref(ref)
        self.subdir = check_subdir(subdir)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_checkout_bytes = max_checkout_bytes
        self.max_checkout_files = max_checkout_files
        self.keep_checkouts = keep_checkouts
        self.cache_dir = Path(cache_dir)
        self.dir = self.cache_dir / hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.mirror = self.dir / "mirror.git"
        self.checkouts = self.dir / "checkouts"
        self._lock = threading.Lock()
        private_dir(self.cache_dir)
        _forget_stored_credentials(self.cache_dir)
        make_private(self.cache_dir)

    @property
    def display_url(self) -> str:
        return self._display_url

    # -- running git ------------------------------------------------------------------------------------------
    def _git(self, *args: str, timeout: float | None = None, env: dict[str, str] | None = None,
             size_limit: int = 0) -> bytes:
        """Run git on the cache (umask 077, its own process group, killed at ``timeout``); stdout."""
        proc = subprocess.Popen(["git", f"--git-dir={self.mirror}", *args], cwd=self.mirror, env=env or _git_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                umask=0o077, start_new_session=True)
        watcher = _SizeWatch(self.mirror, size_limit, proc.pid) if size_limit else None
        try:
            if watcher:
                watcher.start()
            try:
                out, err = proc.communicate(timeout=timeout or self.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                out, err = proc.communicate()
                raise _GitFailed(-9, err.decode(errors="replace"), timed_out=True) from None
        finally:
            if watcher:
                watcher.stop()
            _kill_group(proc.pid)  # helpers (remote-https, index-pack) never outlive the command
        if watcher and watcher.exceeded:
            raise SourceError(f"fetch of {self.display_url} stopped: the repository is larger than "
                              f"{self.max_bytes // (1024 * 1024)} MiB")
        if proc.returncode != 0:
            raise _GitFailed(proc.returncode, err.decode(errors="replace"))
        return out

    def _ensure_mirror(self) -> None:
        if not (self.mirror / "HEAD").exists():
            private_dir(self.mirror)
            self._git("init", "--quiet", "--bare")
        info = private_dir(self.mirror / "info")
        attributes = info / "attributes"
        if not attributes.exists() or attributes.read_text() != NO_CONVERSIONS:
            fd = os.open(attributes, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(NO_CONVERSIONS)

    def _fetch_env(self) -> dict[str, str]:
        creds = self._credentials
        if not creds.present:
            return _git_env()
        parts = urlsplit(self.url)
        scope = f"{parts.scheme}://{parts.netloc}"  # the helper answers for this host only, not a redirect
        return _git_env(((f"credential.{scope}.helper", _HELPER),),
                        {"GITOPS_GIT_USERNAME": creds.username, "GITOPS_GIT_PASSWORD": creds.password})

    # -- fetch ----------------------------------------------------------------------------------------------
    def fetch(self, ref: str | None = None) -> Checkout:
        """Fetch the ref (by default the tracked one) and return an immutable checkout of its commit."""
        ref = check_ref(ref) if ref is not None else self.ref
        with self._lock:
            self._ensure_mirror()
            target = "refs/gitops/target"
            by_sha = bool(SHA_RE.match(ref))
            refspec = ref if by_sha else f"+{ref}:{target}"
            depth = [] if by_sha and len(ref) < 40 else ["--depth=1"]
            try:
                self._git("fetch", "--no-tags", "--no-recurse-submodules", *depth, "--", self.url, refspec,
                          env=self._fetch_env(), size_limit=self.max_bytes)
            except _GitFailed as exc:
                detail = f"no answer within {self.timeout:g}s" if exc.timed_out else exc.detail
                raise SourceError(f"cannot fetch {ref} from {self.display_url}: {detail}") from None
            commit = self._resolve("FETCH_HEAD" if by_sha else target)
            if commit is None:
                raise SourceError(f"{ref} not found in {self.display_url}", temporary=False)
            return self._checkout(commit)

    def _resolve(self, name: str) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", "--end-of-options", name + "^{commit}",
                             timeout=30).decode().strip()
        except _GitFailed:
            return None

    def has_commit(self, commit: str) -> bool:
        return (self.mirror / "HEAD").exists() and self._resolve(commit) is not None

    def fetch_commit(self, commit_or_ref: str) -> Checkout:
        """A checkout of another ref or commit (for rollback and plan --base), fetching it when needed."""
        check_ref(commit_or_ref)
        if SHA_RE.match(commit_or_ref):
            full = self._resolve(commit_or_ref) if (self.mirror / "HEAD").exists() else None
            if full is not None:
                return self.checkout(full)
        return self.fetch(commit_or_ref)

    # -- checkout -------------------------------------------------------------------------------------------
    def checkout(self, commit: str) -> Checkout:
        """The --path folder of ``commit`` (already fetched), written once and never changed."""
        with self._lock:
            self._ensure_mirror()
            return self._checkout(commit)

    def _checkout(self, commit: str) -> Checkout:
        if not SHA_RE.match(commit):
            raise SourceError(f"not a commit id: {commit!r}", temporary=False)
        name = commit if not self.subdir else f"{commit}-{hashlib.sha256(self.subdir.encode()).hexdigest()[:12]}"
        final = self.checkouts / name
        if not final.exists():
            tree = f"{commit}:{self.subdir}" if self.subdir else f"{commit}^{{tree}}"
            self._check_tree(commit, tree)
            private_dir(self.checkouts)
            tmp = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=self.checkouts))
            try:
                self._write_tree(commit, tree, tmp)
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._prune_checkouts(keep=final)
        return Checkout(commit, final, final)

    def _check_tree(self, commit: str, tree: str) -> None:
        """Refuse, before anything is written, a tree that is too large or holds an absolute symlink."""
        short = commit[:12]
        try:
            kind = self._git("cat-file", "-t", "--end-of-options", tree, timeout=30).decode().strip()
        except _GitFailed:
            kind = ""
        if kind != "tree":
            where = f"--path {self.subdir!r} is not a folder" if self.subdir else "it has no tree"
            raise SourceError(f"{where} at {short}", revision=commit)
        measured = self._measure(tree)
        if (not measured.complete or measured.files > self.max_checkout_files
                or measured.size > self.max_checkout_bytes):
            what = (f"{measured.files} files, {_mib(measured.size)}" if measured.complete
                    else f"more than {self.max_checkout_files} files")
            raise SourceError(f"revision {short} is too large to check out: {what} (the limits are "
                              f"{self.max_checkout_files} files and {_mib(self.max_checkout_bytes)}); keep large "
                              "files out of the repository, or point --path at a smaller folder", revision=commit)
        for path, blob, size in measured.symlinks:
            shown = f"{self.subdir}/{path}" if self.subdir else path
            if size > MAX_SYMLINK_TARGET:
                raise SourceError(f"revision {short}: {shown!r} is a symlink whose target is longer than "
                                  f"{MAX_SYMLINK_TARGET} bytes", revision=commit)
            if self._read_blob(blob, path).startswith(b"/"):
                raise SourceError(f"revision {short}: {shown!r} is a symlink to an absolute path; only relative "
                                  "symlinks are checked out (the loader refuses any that leave the checkout)",
                                  revision=commit)

    def _measure(self, tree: str) -> _Tree:
        """Count files and add up their sizes from ``git ls-tree -r -l``, stopping past the file bound."""
        measured = _Tree()
        proc = subprocess.Popen(["git", f"--git-dir={self.mirror}", "ls-tree", "-r", "-l", "-z", "--end-of-options",
                                 tree], cwd=self.mirror, env=_git_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, umask=0o077, start_new_session=True)
        try:
            assert proc.stdout is not None
            for record in _records(proc.stdout):
                meta, _, path = record.partition(b"\t")
                mode, kind, blob, size = meta.split()
                if kind != b"blob":
                    continue  # a submodule (gitlink) is never fetched nor written
                measured.files += 1
                measured.size += int(size)
                if mode == b"120000":
                    measured.symlinks.append((path.decode(errors="replace"), blob.decode(), int(size)))
                if measured.files > self.max_checkout_files:
                    measured.complete = False
                    break
        finally:
            _kill_group(proc.pid)
            proc.wait()
        return measured

    def _read_blob(self, blob: str, path: str) -> bytes:
        try:
            return self._git("cat-file", "blob", blob, timeout=30)
        except _GitFailed as exc:
            raise SourceError(f"cannot read symlink {path!r}: {exc.detail}") from None

    def _write_tree(self, commit: str, tree: str, dest: Path) -> None:
        """``git archive`` of the tree, streamed into ``dest`` (private modes), never past the measured size."""
        proc = subprocess.Popen(["git", f"--git-dir={self.mirror}", "archive", "--format=tar", "--end-of-options",
                                 tree], cwd=self.mirror, env=_git_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, umask=0o077, start_new_session=True)
        timer = threading.Timer(self.timeout, _kill_group, (proc.pid,))
        timer.start()
        # tar headers and padding: at most 1.5 KiB a file on top of the contents
        limit = self.max_checkout_bytes + 2048 * (self.max_checkout_files + 16)
        try:
            assert proc.stdout is not None
            stream = _Bounded(proc.stdout, limit)
            with tarfile.open(fileobj=cast(IO[bytes], stream), mode="r|") as tar:
                tar.extractall(dest, filter=_private_member)
            while stream.read(65536):  # the end-of-archive padding: let git finish writing
                pass
            proc.wait(self.timeout)
        except tarfile.FilterError as exc:
            raise SourceError(f"revision {commit[:12]} cannot be checked out safely: {exc}", revision=commit) from None
        except _TooLarge:
            raise SourceError(f"revision {commit[:12]} is too large to check out: git archive wrote more than "
                              f"{_mib(limit)}", revision=commit) from None
        except (OSError, tarfile.TarError, subprocess.TimeoutExpired) as exc:
            raise SourceError(f"cannot check out {commit[:12]}: {redact(str(exc))}") from None
        finally:
            timer.cancel()
            if proc.poll() is None:
                _kill_group(proc.pid)
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            proc.wait()
        if proc.returncode != 0:
            raise SourceError(f"cannot check out {commit[:12]}: {_GitFailed(proc.returncode, stderr).detail}")

    def _prune_checkouts(self, *, keep: Path) -> None:
        entries = sorted((p for p in self.checkouts.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[self.keep_checkouts:]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)


def _records(stream: IO[bytes]) -> Iterator[bytes]:
    """NUL-terminated records from a stream, read in blocks."""
    pending = b""
    while block := stream.read(65536):
        pending += block
        *done, pending = pending.split(b"\x00")
        yield from done
    if pending:
        yield pending


def _private_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's ``data`` filter (no absolute names, nothing outside ``dest``, no devices), with private
    modes. A symlink's target was checked by _check_tree (relative); the loader refuses any that leave."""
    checked = tarfile.tar_filter(member, dest) if member.issym() else tarfile.data_filter(member, dest)
    if checked.issym():
        mode = None
    elif checked.isdir():
        mode = 0o700
    else:
        mode = 0o700 if member.mode & 0o100 else 0o600
    return checked.replace(mode=mode, deep=False)  # type: ignore[arg-type]  # None: leave the mode alone


class _TooLarge(Exception):
    pass


class _Bounded:
    """A read-only stream that fails past ``limit`` bytes."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream, self.limit, self.read_bytes = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.read_bytes += len(data)
        if self.read_bytes > self.limit:
            raise _TooLarge
        return data


def _forget_stored_credentials(cache_dir: Path) -> None:
    """Older versions kept the remote URL, token included, in each cache's git config: drop those caches
    (they are only caches; the next fetch fills a new one, keyed by the URL without its credentials)."""
    for config in cache_dir.glob("*/mirror.git/config"):
        with contextlib.suppress(OSError):
            if re.search(rb"url\s*=\s*[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s]*@", config.read_bytes()):
                shutil.rmtree(config.parent.parent, ignore_errors=True)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


class _SizeWatch:
    """Kills the running fetch (its whole process group) when the cache grows past ``limit`` bytes."""

    def __init__(self, path: Path, limit: int, pid: int) -> None:
        self.path, self.limit, self.pid = path, limit, pid
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
                _kill_group(self.pid)
                return


def revision_of(path: Path) -> str:
    """The commit a local folder is at; '' outside git. '-dirty' is added when a tracked file in the folder
    changed or a manifest (a .yaml/.yml file outside hidden folders) is not committed yet."""
    try:
        import git  # GitPython takes ~0.1 s to import: `validate` and `plan` of a folder pay it only here
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


def checkout_at(path: Path, ref: str, *, cache_dir: Path) -> Checkout:
    """The folder ``path`` of a local git repository as it is at ``ref`` (`gitops plan --base REF`)."""
    import git  # see revision_of

    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise SourceError(f"--base needs PATH to be inside a git repository ({path})", temporary=False) from exc
    top = Path(repo.working_tree_dir or ".").resolve()
    subdir = str(Path(path).resolve().relative_to(top))
    return GitSource(str(top), ref, subdir="" if subdir == "." else subdir, cache_dir=cache_dir).fetch()
