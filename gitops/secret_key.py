"""The installation's secret key: 32 random bytes in ``<state dir>/secret-key``, mode 0600, folder 0700.

Secret digests (model.secret_digest) are keyed with it, so the labels, `status` and spec hashes that
anyone may read cannot confirm a guessed secret. It is made on first use and then only read; it is
never printed or logged (SecretKey hides its bytes). Losing it costs one recreation of the
containers that have secrets (their digests cannot be compared any more); copying it to another
installation lets that one compare digests too.

Creation is atomic and race-free: the bytes are written to a private temporary file and linked to
the final name, which fails if another process got there first; both then read the same file, and
nobody ever reads a half-written key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import stat
from pathlib import Path
from typing import Any

import pyrage
from pyrage import x25519

from gitops.core.model import SECRET_KEY_BYTES, SecretKey
from gitops.errors import GitopsError

KEY_FILE = "secret-key"


class SecretKeyError(GitopsError):
    """The key cannot be made or read; the message says what to do."""


AGE_KEY_FILE_ENV = "SOPS_AGE_KEY_FILE"  # the age key file, as sops names it; set by --age-key-file


AGE_KEY_ENV = "SOPS_AGE_KEY"  # the identities themselves, as sops reads them (a CI secret, say)


def age_identities() -> tuple[Any, ...]:
    """The age identities of the key file SOPS_AGE_KEY_FILE names, and of SOPS_AGE_KEY (the key file's text
    itself, as sops reads it); none when neither is set. Read from the machine the reconciler runs on, never
    from the repository."""
    path = os.environ.get(AGE_KEY_FILE_ENV, "")
    inline = os.environ.get(AGE_KEY_ENV, "")
    found: tuple[Any, ...] = _identities(inline, AGE_KEY_ENV) if inline.strip() else ()
    if not path:
        return found
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretKeyError(f"{path}: cannot read the age key file ({AGE_KEY_FILE_ENV} or --age-key-file): "
                             f"{getattr(exc, 'strerror', None) or exc}") from exc
    return found + _identities(text, path)


def _identities(text: str, path: str) -> tuple[Any, ...]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                out.append(x25519.Identity.from_str(line))
            except pyrage.IdentityError as exc:  # never echo the line: it may be a key
                raise SecretKeyError(f"{path}: line {number} is not an age identity (AGE-SECRET-KEY-1...)") from exc
    if not out:
        raise SecretKeyError(f"{path}: no age identity (AGE-SECRET-KEY-1...) in the age key file")
    return tuple(out)


def with_age(key: SecretKey) -> SecretKey:
    """``key`` with the age identities of this machine, for loading a repository with encrypted files."""
    return dataclasses.replace(key, age=age_identities())


def installation_key(state_dir: Path) -> SecretKey:
    """The key of the installation whose state lives in ``state_dir``, made on first use, with the age identities
    of this machine."""
    return with_age(_installation_key(state_dir))


def _installation_key(state_dir: Path) -> SecretKey:
    directory = Path(state_dir)
    _private_folder(directory)
    path = directory / KEY_FILE
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SecretKeyError(f"{path}: cannot read the secret key: {exc.strerror or exc}") from exc
    _create(directory, path)
    try:
        return _read(path)
    except OSError as exc:
        raise SecretKeyError(f"{path}: cannot read the secret key: {exc.strerror or exc}") from exc


def _private_folder(directory: Path) -> None:
    """The state folder exists, is ours, and is 0700 (it holds the key, the store and the git cache)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        raise SecretKeyError(f"{directory}: cannot make the state folder: {exc.strerror or exc}") from exc
    if info.st_mode & stat.S_ISVTX:
        # Shared by design (/tmp, a fresh tmpfs): tightening it would break everyone else. Nobody else can
        # remove or replace our file there, and _read refuses a key file someone else made.
        return
    if info.st_uid != os.geteuid():
        raise SecretKeyError(f"{directory}: the state folder belongs to another user (uid {info.st_uid}); give a "
                             "--state-dir of your own")
    if stat.S_IMODE(info.st_mode) & 0o077:
        # Made by an earlier gitops (or a umask) with group/other access: only this user needs it.
        os.chmod(directory, 0o700)


def _read(path: Path) -> SecretKey:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretKeyError(f"{path}: not a regular file; remove it to make a new key")
        if info.st_uid != os.geteuid():  # planted by someone who then knows the key
            raise SecretKeyError(f"{path}: belongs to another user (uid {info.st_uid}), who may know the key; "
                                 "remove it to make a new one")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, 0o600)  # copied in with a loose mode: nobody else may read it
        raw = os.read(fd, SECRET_KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) != SECRET_KEY_BYTES:
        raise SecretKeyError(f"{path}: not a gitops secret key ({len(raw)} bytes, expected {SECRET_KEY_BYTES}); "
                             "restore it from a backup, or remove it to make a new one (containers with secrets "
                             "are then recreated once)")
    return SecretKey(raw)


def _create(directory: Path, path: Path) -> None:
    temporary = directory / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, secrets.token_bytes(SECRET_KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: its key is the key
            os.link(temporary, path)
        _sync_folder(directory)
    except OSError as exc:
        raise SecretKeyError(f"{path}: cannot create the secret key: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _sync_folder(directory: Path) -> None:
    """The new name survives a crash (the key must not change under containers already made with it)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
