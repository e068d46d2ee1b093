"""example-repo for tests and benchmarks, without touching the checkout.

example-repo keeps its one secret (secrets/db-password.sops) encrypted with SOPS for an age key nobody has:
the key it was encrypted to was never committed. So a test copies the example, makes a new age key beside the
copy (never inside it: a key does not belong in a repository), and encrypts a known password to that key in
the copy, as scripts/example-key.sh does in the checkout on a first run. The test then gives gitops the key
(--age-key-file or SOPS_AGE_KEY_FILE) and may look for the password where it must, or must not, appear.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519

from gitops.manifests.sops import encrypt, is_encrypted

EXAMPLE = Path(__file__).resolve().parent.parent / "example-repo"
SECRET = "secrets/db-password.sops"  # the file services/db.yaml names as DB_PASSWORD's secretFile
LASTMODIFIED = "2026-12-01T00:00:00Z"


@dataclass(frozen=True)
class ExampleCopy:
    root: Path  # the copy of example-repo
    key_file: Path  # its age key file (age-keygen's format, 0600), outside the copy
    password: str  # DB_PASSWORD, as the db container must get it

    @property
    def env(self) -> dict[str, str]:
        """os.environ with SOPS_AGE_KEY_FILE naming the copy's key, for a gitops process."""
        return {**os.environ, "SOPS_AGE_KEY_FILE": str(self.key_file)}


def write_age_key(path: Path) -> str:
    """A new age key file at ``path`` (made 0600), as `gitops secrets keygen --output` writes it; its recipient."""
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"# created: {LASTMODIFIED}\n# public key: {recipient}\n{identity}\n")
    return recipient


def example_copy(dest: Path, *, ignore: Callable[[str, list[str]], set[str]] | None = None) -> ExampleCopy:
    """example-repo copied to ``dest`` (which must not exist), its secret encrypted again for a new key."""
    committed = (EXAMPLE / SECRET).read_bytes()
    assert is_encrypted(committed), f"example-repo/{SECRET} must be committed encrypted, never in plaintext"
    shutil.copytree(EXAMPLE, dest, ignore=ignore)
    key_file = dest.parent / f"{dest.name}.age-key.txt"
    recipient = write_age_key(key_file)
    password = f"example-{secrets.token_hex(12)}"
    sealed = encrypt(f"{password}\n".encode(), Path(SECRET).name, [recipient], now=LASTMODIFIED)
    (dest / SECRET).write_bytes(sealed)
    return ExampleCopy(dest, key_file, password)
