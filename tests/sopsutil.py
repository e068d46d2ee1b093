"""A SOPS writer for tests: it makes files in sops' format for an age recipient. What it writes is only trusted
because tests/test_sops.py reads a file the sops tool wrote with the same code that reads these."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import pyrage
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyrage import x25519

LASTMODIFIED = "2026-12-01T00:00:00Z"


def new_identity() -> tuple[str, str]:
    """(identity, recipient) strings of a fresh age key."""
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def _seal(key: bytes, plain: bytes, aad: str, kind: str) -> str:
    iv = os.urandom(32)
    sealed = AESGCM(key).encrypt(iv, plain, aad.encode())
    data, tag = sealed[:-16], sealed[-16:]
    return (f"ENC[AES256_GCM,data:{base64.b64encode(data).decode()},iv:{base64.b64encode(iv).decode()},"
            f"tag:{base64.b64encode(tag).decode()},type:{kind}]")


def _metadata(key: bytes, recipient: str, digest: str) -> dict[str, Any]:
    enc = pyrage.encrypt(key, [x25519.Recipient.from_str(recipient)], armored=True).decode()
    return {"age": [{"recipient": recipient, "enc": enc}], "lastmodified": LASTMODIFIED,
            "mac": _seal(key, digest.encode(), LASTMODIFIED, "str"), "unencrypted_suffix": "_unencrypted",
            "version": "3.9.0"}


def sops_json(values: dict[str, str], recipient: str) -> str:
    """A flat JSON document of string values, encrypted as `sops -e file.json` does."""
    key, digest = os.urandom(32), hashlib.sha512()
    out: dict[str, Any] = {}
    for name, value in values.items():
        digest.update(value.encode())
        out[name] = value if name.endswith("_unencrypted") else _seal(key, value.encode(), f"{name}:", "str")
    out["sops"] = _metadata(key, recipient, digest.hexdigest().upper())
    return json.dumps(out, indent=2)


def sops_dotenv(values: dict[str, str], recipient: str) -> str:
    """KEY=VALUE lines encrypted as `sops -e app.env` does."""
    key, digest = os.urandom(32), hashlib.sha512()
    lines = []
    for name, value in values.items():
        digest.update(value.encode())
        lines.append(f"{name}={_seal(key, value.encode(), f'{name}:', 'str')}")
    meta = _metadata(key, recipient, digest.hexdigest().upper())
    lines.append("sops_age__list_0__map_enc=" + meta["age"][0]["enc"].replace("\n", "\\n"))
    lines.append(f"sops_age__list_0__map_recipient={recipient}")
    lines += [f"sops_lastmodified={LASTMODIFIED}", f"sops_mac={meta['mac']}", "sops_unencrypted_suffix=_unencrypted",
              "sops_version=3.9.0"]
    return "\n".join(lines) + "\n"


def sops_binary(content: str, recipient: str) -> str:
    """A file encrypted as `sops -e --input-type binary` does: {"data": ..., "sops": ...}."""
    return sops_json({"data": content}, recipient)


def age_file(content: bytes, recipient: str) -> bytes:
    return bytes(pyrage.encrypt(content, [x25519.Recipient.from_str(recipient)]))
