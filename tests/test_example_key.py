"""example-repo keeps no plaintext secret: its one secret is a SOPS (age) file, for a key that is not in the
repository, and scripts/example-key.sh (the key step of the README's first command) makes the example's own
key on a first run and encrypts a new password to it. Run here in a copy of the checkout, never in it."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pyrage import x25519

from gitops.manifests.parse import parse_documents
from gitops.manifests.sops import decrypt, is_encrypted
from tests.examplerepo import EXAMPLE, SECRET

ROOT = Path(__file__).resolve().parent.parent
KEY = ".gitops-example/age-key.txt"
SAYS = (f"example: example-repo/{SECRET} encrypted again, with a new random password, for a new age key in {KEY} "
        "(kept out of git): this is what you do in your own repository\n")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What the key step uses of a fresh clone: the script, example-repo as committed, and gitops in .venv."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "example-key.sh", root / "scripts")
    shutil.copytree(EXAMPLE, root / "example-repo")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "gitops").symlink_to(Path(sys.executable).parent / "gitops")
    return root


def key_step(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SOPS_AGE_KEY_FILE"}
    done = subprocess.run(["bash", str(root / "scripts" / "example-key.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def password_and_recipients(root: Path) -> tuple[str, list[str]]:
    """The example's password, decrypted with the checkout's key, and the recipients its file names."""
    lines = (root / KEY).read_text().splitlines()
    identities = [x25519.Identity.from_str(line) for line in lines if line.startswith("AGE-SECRET-KEY-1")]
    data = (root / "example-repo" / SECRET).read_bytes()
    (document,) = parse_documents(data.decode(), "db-password.sops").documents
    plain = decrypt(data, identities, document=document.data)
    assert plain is not None
    return plain.decode().rstrip("\n"), [entry["recipient"] for entry in document.data["sops"]["age"]]


def files_below(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and ".venv" not in p.relative_to(folder).parts]


def test_a_fresh_clone_gets_its_own_key_and_the_secret_is_encrypted_again(checkout: Path) -> None:
    committed = (checkout / "example-repo" / SECRET).read_bytes()
    first = key_step(checkout)
    assert first.stdout == SAYS
    key = checkout / KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    created, public, secret = key.read_text().splitlines()
    assert re.fullmatch(r"# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", created)
    assert public.startswith("# public key: age1") and secret.startswith("AGE-SECRET-KEY-1")
    assert str(x25519.Identity.from_str(secret).to_public()) == public.removeprefix("# public key: ")

    rewritten = (checkout / "example-repo" / SECRET).read_bytes()
    assert rewritten != committed and is_encrypted(rewritten)
    password, recipients = password_and_recipients(checkout)
    assert recipients == [public.removeprefix("# public key: ")]
    assert len(password) >= 32
    # no plaintext anywhere in the checkout, and nothing left over beside the secret
    assert not [p for p in files_below(checkout) if password.encode() in p.read_bytes()]
    assert sorted(p.name for p in (checkout / "example-repo" / "secrets").iterdir()) == ["db-password.sops"]
    assert sorted(p.name for p in key.parent.iterdir()) == ["age-key.txt"]

    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files_below(checkout)}
    second = key_step(checkout)
    assert second.stdout == "" and second.stderr == ""
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files_below(checkout)} == before


def test_a_key_that_cannot_decrypt_the_committed_secret_is_replaced(checkout: Path) -> None:
    """`git checkout example-repo` after a first run brings back the file nobody has the key to."""
    committed = (checkout / "example-repo" / SECRET).read_bytes()
    key_step(checkout)
    old_key = (checkout / KEY).read_text()
    (checkout / "example-repo" / SECRET).write_bytes(committed)
    again = key_step(checkout)
    assert again.stdout == SAYS
    assert (checkout / KEY).read_text() != old_key
    password, _ = password_and_recipients(checkout)
    assert password and (checkout / "example-repo" / SECRET).read_bytes() != committed


def test_the_checkout_keeps_no_plaintext_secret_and_no_key() -> None:
    """Every secretFile, envFile and file the example names under secrets/ is encrypted, and no age key in the
    repository is the one its secret was encrypted to."""
    referenced = set()
    for manifest in (EXAMPLE / "services").glob("*.yaml"):
        for document in parse_documents(manifest.read_text(), manifest.name).documents:
            text = json.dumps(document.data)
            referenced |= {(manifest.parent / m).resolve() for m in re.findall(r'"secretFile": "([^"]+)"', text)}
    assert referenced == {(EXAMPLE / SECRET).resolve()}
    assert all(is_encrypted(p.read_bytes()) for p in (EXAMPLE / "secrets").rglob("*") if p.is_file())
    (document,) = parse_documents((EXAMPLE / SECRET).read_text(), "s").documents
    recipients = {entry["recipient"] for entry in document.data["sops"]["age"]}
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    found = set()
    for name in filter(None, tracked.decode().split("\0")):
        path = ROOT / name
        if path.is_file():
            found |= set(re.findall(r"AGE-SECRET-KEY-1[0-9A-Z]{58}", path.read_text(errors="replace")))
    assert found  # the published test keys of tests/sops are there: the search does find keys
    assert not {str(x25519.Identity.from_str(k).to_public()) for k in found} & recipients
    assert ".gitops-example/" in (ROOT / ".gitignore").read_text().splitlines()  # where the script keeps the key
