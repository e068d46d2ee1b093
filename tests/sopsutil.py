"""SOPS files for tests, written by gitops' own writer (`gitops secrets encrypt`): trusted only because
tests/test_sops.py reads a file the sops tool wrote with the same code that reads these."""

from __future__ import annotations

import json

import pyrage
from pyrage import x25519

from gitops.manifests.sops import encrypt

LASTMODIFIED = "2026-12-01T00:00:00Z"


def new_identity() -> tuple[str, str]:
    """(identity, recipient) strings of a fresh age key."""
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def sops_json(values: dict[str, str], recipient: str) -> str:
    """A flat JSON document of string values, encrypted as `sops -e file.json` does."""
    return encrypt(json.dumps(values).encode(), "f.json", [recipient], now=LASTMODIFIED, document=values).decode()


def sops_dotenv(values: dict[str, str], recipient: str) -> str:
    """KEY=VALUE lines encrypted as `sops -e app.env` does."""
    text = "".join(f"{name}={value}\n" for name, value in values.items())
    return encrypt(text.encode(), "f.env", [recipient], now=LASTMODIFIED).decode()


def sops_binary(content: str, recipient: str) -> str:
    """A file encrypted as `sops -e --input-type binary` does: {"data": ..., "sops": ...}."""
    return encrypt(content.encode(), "f.txt", [recipient], now=LASTMODIFIED).decode()


def age_file(content: bytes, recipient: str) -> bytes:
    return bytes(pyrage.encrypt(content, [x25519.Recipient.from_str(recipient)]))
