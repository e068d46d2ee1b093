"""Files encrypted with SOPS (age recipients) or with age itself, decrypted in memory.

A file is recognised by its content, not its name: age's binary or armored header, or a SOPS document (YAML or
JSON with a ``sops`` mapping that has a ``mac``; a dotenv file with ``sops_mac=``). The SOPS envelope is the
sops project's format: a data key per age recipient (an age file, decrypted with pyrage), values as
``ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]`` whose additional data is the value's key path joined with
``:`` and ended by ``:``, and a MAC (the upper-case hex SHA-512 of every plaintext leaf in order, itself encrypted
with ``lastmodified`` as additional data) checked before any value is returned. Compatibility is checked against
files the sops tool wrote (tests/test_sops.py, tests/sops/). Nothing decrypted is written anywhere by this module.

Comments. sops encrypts YAML and dotenv comments too (``#ENC[AES256_GCM,...,type:comment]``, the text after ``#``
sealed with the key path of the mapping or list that holds the comment as additional data, ``:`` at the top), but
leaves them out of the MAC, and when one does not decrypt it keeps it as it is, with a warning, and decrypts the
file anyway (sops.go, Tree.Decrypt). gitops never needs a comment, so it does not decrypt them: the YAML parser
drops them and the dotenv reader skips them, which gives the MAC sops computes, and a tampered comment changes
nothing, as in sops. Only the metadata ``unencrypted_comment_regex`` / ``encrypted_comment_regex`` make comments
decide which values are encrypted; gitops does not read where comments stand, so it refuses such files. The
writer (`gitops secrets encrypt`) seals a YAML or dotenv file's comments as sops does (see _encrypt_yaml).
"""

from __future__ import annotations

import base64
import binascii
import decimal
import hashlib
import hmac
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pyrage
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyrage import x25519
from ruamel.yaml import YAML
from ruamel.yaml import events as ev

from gitops.errors import GitopsError

_ENC = re.compile(r"^ENC\[AES256_GCM,data:([A-Za-z0-9+/=]*),iv:([A-Za-z0-9+/=]+),tag:([A-Za-z0-9+/=]+),type:(\w+)\]$")
_AGE_BINARY = b"age-encryption.org/v1\n"
_AGE_ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
_OTHER_KEY_SERVICES = ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault")


class SopsError(GitopsError):
    """An encrypted file that cannot be used: no key for it, tampered, or a form gitops does not read."""


class Decrypted(str):
    """Text that was decrypted from the repository: whatever is made of it is a secret (masked, digested)."""


class DecryptedBytes(bytes):
    """Bytes that were decrypted from the repository (a file delivered into containers)."""


def is_encrypted(data: bytes) -> bool:
    head = data.lstrip()[:64]
    # Any SOPS value counts, metadata or not: a file cut before its metadata must be refused, not used as text
    return (data.startswith(_AGE_BINARY) or head.startswith(_AGE_ARMOR) or b"sops_mac=ENC[" in data
            or b"ENC[AES256_GCM," in data)


def decrypt(data: bytes, identities: Sequence[Any], *, document: Any = None) -> bytes | None:
    """The plaintext of an encrypted file, or None when ``data`` is not encrypted. ``document`` is the file parsed
    as YAML or JSON, when it is one (the caller's safe loader). Raises SopsError with the reason."""
    if data.startswith(_AGE_BINARY) or data.lstrip().startswith(_AGE_ARMOR):
        return _age(data, identities, "the file")
    if isinstance(document, dict) and isinstance(document.get("sops"), dict) and "mac" in document["sops"]:
        return _tree(document, identities)
    if b"\nsops_mac=ENC[" in b"\n" + data:
        return _dotenv(data.decode("utf-8", "replace"), identities)
    return None


def _age(data: bytes, identities: Sequence[Any], what: str) -> bytes:
    if not identities:
        raise SopsError(f"{what} is encrypted with age and there is no age identity to decrypt it: give gitops the "
                        "key file (gitops --age-key-file FILE COMMAND ..., or SOPS_AGE_KEY_FILE)")
    try:
        return bytes(pyrage.decrypt(data, list(identities)))
    except pyrage.DecryptError as exc:
        raise SopsError(f"{what} cannot be decrypted with the age identities given (none of them is a recipient, "
                        "or the file is damaged)") from exc


def _data_key(metadata: dict[str, Any], identities: Sequence[Any]) -> bytes:
    entries = metadata.get("age") or []
    if not entries:
        used = [name for name in _OTHER_KEY_SERVICES if metadata.get(name)]
        raise SopsError("encrypted for " + (", ".join(used) or "no key service") + ", not age: gitops decrypts age "
                        "recipients only; add an age recipient (sops updatekeys)")
    if not identities:
        raise SopsError("encrypted with SOPS for age recipients, and there is no age identity to decrypt it: give "
                        "gitops the key file (gitops --age-key-file FILE COMMAND ..., or SOPS_AGE_KEY_FILE)")
    for entry in entries:
        enc = entry.get("enc") if isinstance(entry, dict) else None
        if not isinstance(enc, str):
            continue
        try:
            key = bytes(pyrage.decrypt(enc.encode(), list(identities)))
        except pyrage.DecryptError:
            continue
        if len(key) != 32:
            raise SopsError("the SOPS data key is not 32 bytes: the file is damaged")
        return key
    recipients = ", ".join(str(e.get("recipient", "?")) for e in entries if isinstance(e, dict))
    raise SopsError(f"no age identity given matches a recipient of the file ({recipients})")


def _open(key: bytes, value: str, aad: str) -> tuple[bytes, str]:
    found = _ENC.match(value)
    if found is None:
        raise SopsError("a value that should be encrypted is not in SOPS' ENC[AES256_GCM,...] form: the file was "
                        "edited after it was encrypted")
    try:
        data, iv, tag = (base64.b64decode(found[i], validate=True) for i in (1, 2, 3))
        plain = AESGCM(key).decrypt(iv, data + tag, aad.encode())
    except (binascii.Error, ValueError, InvalidTag) as exc:
        raise SopsError("a value does not decrypt: the file was changed after it was encrypted, or a value was "
                        "moved to another key") from exc
    return plain, found[4]


class _Rules:
    """Which leaves SOPS encrypted: by the suffix or regex the metadata names (one of them, as sops allows)."""

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.unencrypted_suffix = str(metadata.get("unencrypted_suffix") or "")
        self.encrypted_suffix = str(metadata.get("encrypted_suffix") or "")
        try:
            self.unencrypted_regex = re.compile(str(metadata["unencrypted_regex"])) \
                if metadata.get("unencrypted_regex") else None
            self.encrypted_regex = re.compile(str(metadata["encrypted_regex"])) \
                if metadata.get("encrypted_regex") else None
        except re.error as exc:
            raise SopsError(f"the SOPS metadata has a regex Python cannot read: {exc}") from exc
        self.mac_only_encrypted = metadata.get("mac_only_encrypted") in (True, "true", "True")
        by_comments = [name for name in ("unencrypted_comment_regex", "encrypted_comment_regex") if metadata.get(name)]
        if by_comments:
            raise SopsError(f"the file was encrypted with {by_comments[0]}: then its comments decide which values "
                            "are encrypted, and gitops does not read where comments stand; encrypt it without that "
                            "option (an unencrypted_suffix or a regex on key names works)")

    def encrypted(self, path: Sequence[str]) -> bool:
        if self.encrypted_suffix:
            return any(p.endswith(self.encrypted_suffix) for p in path)
        if self.encrypted_regex is not None:
            return any(self.encrypted_regex.search(p) for p in path)
        if self.unencrypted_regex is not None:
            return not any(self.unencrypted_regex.search(p) for p in path)
        return not (self.unencrypted_suffix and any(p.endswith(self.unencrypted_suffix) for p in path))


def _leaves(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf in document order with its key path (list items share their list's path, as in sops)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, path)
    else:
        yield path, value


# sops starts the MAC of a file encrypted with mac_only_encrypted with these bytes (sops.go,
# MACOnlyEncryptedInitialization), so that it never equals the MAC of the same tree without the option.
_MAC_ONLY_ENCRYPTED_INIT = bytes.fromhex("8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69")


def _go_float(value: float) -> str:
    """A float as Go's strconv.FormatFloat(value, 'f', -1, 64) writes it (how sops hashes and encrypts floats):
    the shortest digits that read back the same, never an exponent, no ``.0`` on whole numbers."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(decimal.Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _plain_bytes(value: Any) -> bytes:
    """A leaf as sops hashes (and encrypts) it: sops.ToBytes."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, float):
        return _go_float(value).encode()
    return str(value).encode()


def _typed(plain: bytes, kind: str) -> Any:
    text = plain.decode("utf-8", "surrogateescape")
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text == "True"
    if kind == "bytes":
        return plain
    if kind == "str":
        return text
    raise SopsError(f"a value has the type {kind!r}, which gitops does not read (a value, not a comment, "
                    "sealed as type 'comment' or 'time' is not one sops writes today): encrypt the file again")


def _decrypt_leaves(tree: dict[str, Any], metadata: dict[str, Any], key: bytes) -> dict[str, Any]:
    rules = _Rules(metadata)
    digest = hashlib.sha512()
    if rules.mac_only_encrypted:
        digest.update(_MAC_ONLY_ENCRYPTED_INIT)

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path) for v in value]
        if rules.encrypted(path):
            if value == "" or value is None:  # sops leaves empty values as they are
                digest.update(b"")
                return value
            plain, kind = _open(key, str(value), ":".join(path) + ":")
            digest.update(plain)
            return _typed(plain, kind)
        if not rules.mac_only_encrypted:
            digest.update(_plain_bytes(value))
        return value

    plain_tree = walk(tree, ())
    _check_mac(metadata, key, digest.hexdigest().upper())
    return plain_tree


def _check_mac(metadata: dict[str, Any], key: bytes, computed: str) -> None:
    mac, last = metadata.get("mac"), metadata.get("lastmodified")
    if not isinstance(mac, str) or not isinstance(last, str):
        raise SopsError("the SOPS metadata has no mac or lastmodified: the file is damaged")
    stored, _ = _open(key, mac, last)
    if not hmac.compare_digest(stored.decode("ascii", "replace").upper(), computed):
        raise SopsError("the MAC does not match: the file was changed after it was encrypted (tampered, or edited "
                        "without sops)")


def _tree(document: dict[str, Any], identities: Sequence[Any]) -> bytes:
    metadata = document["sops"]
    key = _data_key(metadata, identities)
    tree = {k: v for k, v in document.items() if k != "sops"}
    plain = _decrypt_leaves(tree, metadata, key)
    if set(plain) == {"data"} and isinstance(plain["data"], (str, bytes)):  # sops' binary form: the file itself
        data = plain["data"]
        return data if isinstance(data, bytes) else data.encode()
    return (json.dumps(plain, ensure_ascii=False, indent=2, default=_json_bytes) + "\n").encode()


def _json_bytes(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)


def _dotenv(text: str, identities: Sequence[Any]) -> bytes:
    """A dotenv SOPS file, read as sops' dotenv store reads it: ``\\n`` in a value is a newline (and is written
    back as ``\\n``), a line that starts with ``#`` is a comment."""
    values: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    age: dict[int, dict[str, str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):  # a comment, encrypted or not: outside the MAC, and never needed
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise SopsError("a line of the dotenv SOPS file is not NAME=VALUE")
        value = value.replace("\\n", "\n")
        slot = re.fullmatch(r"sops_age__list_(\d+)__map_(enc|recipient)", name)
        if slot:
            age.setdefault(int(slot[1]), {})[slot[2]] = value
        elif name.startswith("sops_"):
            metadata[name.removeprefix("sops_")] = value
        elif name in values:
            raise SopsError(f"the dotenv SOPS file sets {name!r} twice")
        else:
            values[name] = value
    metadata["age"] = [age[i] for i in sorted(age)]
    key = _data_key(metadata, identities)
    plain = _decrypt_leaves(values, metadata, key)
    return "".join(f"{name}={_dotenv_value(value)}\n" for name, value in plain.items()).encode()


def _dotenv_value(value: Any) -> str:
    """A value as sops' dotenv store writes it: a newline as ``\\n``."""
    return str(value).replace("\n", "\\n")


# -- writing, for `gitops secrets encrypt` (users without the sops binary) ------------------------------------------
def encrypt(data: bytes, name: str, recipients: Sequence[str], *, now: str, document: Any = None) -> bytes:
    """``data`` encrypted as sops does for these age recipients: by the file name's extension, a YAML or JSON
    document (``document``, parsed by the caller), a dotenv file, or any other file in sops' binary form. ``now``
    is the RFC 3339 time recorded as lastmodified (the MAC's additional data)."""
    try:
        parsed = [x25519.Recipient.from_str(r) for r in recipients]
    except pyrage.RecipientError as exc:
        raise SopsError("a recipient is not an age public key (age1...)") from exc
    if not parsed:
        raise SopsError("give at least one age recipient (--age age1...)")
    key = os.urandom(32)
    digest = hashlib.sha512()
    rules = _Rules({"unencrypted_suffix": "_unencrypted"})  # what sops does by default, as the reader reads it
    enc = [{"recipient": r, "enc": bytes(pyrage.encrypt(key, [p], armored=True)).decode()}
           for r, p in zip(recipients, parsed, strict=True)]

    def seal(plain: bytes, aad: str, kind: str) -> str:
        iv = os.urandom(32)
        sealed = AESGCM(key).encrypt(iv, plain, aad.encode())
        parts = (sealed[:-16], iv, sealed[-16:])
        data_b64, iv_b64, tag_b64 = (base64.b64encode(p).decode() for p in parts)
        return f"ENC[AES256_GCM,data:{data_b64},iv:{iv_b64},tag:{tag_b64},type:{kind}]"

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path) for v in value]
        plain = _plain_bytes(value)
        digest.update(plain)
        if not rules.encrypted(path) or value == "" or value is None:
            return value
        kind = {bool: "bool", int: "int", float: "float"}.get(type(value), "str")
        return seal(plain, ":".join(path) + ":", kind)

    metadata: dict[str, Any] = {"age": enc, "lastmodified": now, "unencrypted_suffix": "_unencrypted",
                                "version": "3.9.0"}
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix == "env":  # as sops' dotenv store: a comment is sealed with the top's path ":", outside the MAC
        values: dict[str, str] = {}
        order: list[tuple[str | None, str]] = []  # (name, value) or (None, comment text after "#")
        for line in data.decode("utf-8").splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                order.append((None, line[1:]))
                continue
            key_name, sep, value = line.partition("=")
            if not sep:
                raise SopsError("a line of the dotenv file is not NAME=VALUE")
            if key_name in values:
                raise SopsError(f"the dotenv file sets {key_name!r} twice")
            values[key_name] = value.replace("\\n", "\n")
            order.append((key_name, ""))
        sealed_values = walk(values, ())
        metadata["mac"] = seal(digest.hexdigest().upper().encode(), now, "str")
        lines = [f"{k}={_dotenv_value(sealed_values[k])}" if k is not None
                 else "#" + (seal(text.encode(), ":", "comment") if text else "") for k, text in order]
        for i, entry in enumerate(enc):
            lines += [f"sops_age__list_{i}__map_enc={entry['enc']}".replace("\n", "\\n"),
                      f"sops_age__list_{i}__map_recipient={entry['recipient']}"]
        lines += [f"sops_lastmodified={now}", f"sops_mac={metadata['mac']}", "sops_unencrypted_suffix=_unencrypted",
                  "sops_version=3.9.0"]
        return ("\n".join(lines) + "\n").encode()
    if suffix in ("yaml", "yml", "json") and isinstance(document, dict) and "sops" in document:
        raise SopsError("the document has a top-level key 'sops', where SOPS keeps its metadata")
    if suffix in ("yaml", "yml") and isinstance(document, dict):
        return _encrypt_yaml(data.decode("utf-8"), walk(document, ()), metadata, rules, digest, seal)
    if suffix == "json" and isinstance(document, dict):
        tree = walk(document, ())
    else:
        try:
            tree = walk({"data": data.decode("utf-8")}, ())
        except UnicodeDecodeError as exc:
            raise SopsError("the file is not UTF-8 text; encrypt it with age instead (gitops reads *.age files)") \
                from exc
    metadata["mac"] = seal(digest.hexdigest().upper().encode(), now, "str")
    return (json.dumps({**tree, "sops": metadata}, indent=2, ensure_ascii=False) + "\n").encode()


def _encrypt_yaml(text: str, tree: dict[str, Any], metadata: dict[str, Any], rules: _Rules, digest: Any,
                  seal: Any) -> bytes:
    """A YAML document written back as YAML, its values sealed (``tree``) and its comments sealed as sops does."""
    comments = _yaml_comments(text)
    placed = 0

    def seal_comment(comment: str, loc: _Loc) -> str:
        nonlocal placed
        placed += 1
        path = tuple(part for part in loc if isinstance(part, str))  # list items share their list's path
        if not comment or not rules.encrypted(path):  # sops leaves an empty comment as it is
            return comment
        return str(seal(comment.encode(), ":".join(path) + ":", "comment"))

    lines = _emit_yaml(tree, comments, seal_comment)
    if placed != sum(len(texts) for texts in (*comments.before.values(), *comments.end.values())):
        raise SopsError("a comment of the file could not be placed again; remove it, or encrypt the file with sops")
    metadata["mac"] = seal(digest.hexdigest().upper().encode(), metadata["lastmodified"], "str")
    lines += ["sops:", "    age:"]
    for entry in metadata["age"]:
        lines += [f"        - recipient: {entry['recipient']}", "          enc: |"]
        lines += ["            " + line for line in entry["enc"].rstrip("\n").splitlines()]
    lines += [f"    lastmodified: {json.dumps(metadata['lastmodified'])}", f"    mac: {metadata['mac']}",
              f"    unencrypted_suffix: {metadata['unencrypted_suffix']}", f"    version: {metadata['version']}"]
    return ("\n".join(lines) + "\n").encode()


# -- YAML with comments, for the writer: sops encrypts comments too --------------------------------------------------
# sops seals a comment (the text after "#") as type "comment" with the key path of the mapping or list that holds it
# (":" at the top) as additional data, outside the MAC. gitops writes each comment as a head comment, on its own
# line at the indentation of the entry it stands before, or after the last entry of its collection, which is where
# go-yaml (sops' parser) puts a comment back into the same collection: sops' own emitter writes them so.
_Loc = tuple[Any, ...]  # a collection's place from the top: its keys and list indexes


class _Comments:
    """The comments of a YAML text, by where they stand: before an entry of a collection, or at its end."""

    def __init__(self) -> None:
        self.before: dict[tuple[_Loc, int], list[str]] = {}
        self.end: dict[_Loc, list[str]] = {}


def _yaml_comments(text: str) -> _Comments:
    """Where each comment of ``text`` (one YAML document) stands. A comment after a value on its line goes before
    that entry; a comment on its own line goes before the next entry when it is not indented deeper than that
    entry, else at the end of the deepest collection, around the entry before it, whose entries it is indented
    as far as."""
    entries: list[tuple[int, int, _Loc, int, list[tuple[_Loc, int]]]] = []  # line, column, loc, index, ancestors
    inside: set[int] = set()  # lines within a multi-line scalar: a "#" there is content
    ends: dict[int, int] = {}  # per line, the column where the last node on it ends
    stack: list[dict[str, Any]] = []  # open collections: loc, column, kind, count, expecting a key

    def entry(line: int, column: int) -> None:
        top = stack[-1]
        chain = [(frame["loc"], frame["col"]) for frame in stack]
        entries.append((line, column, top["loc"], top["count"], chain))

    def child_loc() -> _Loc:
        top = stack[-1]
        return (*top["loc"], top["last_key"] if top["kind"] == "map" else top["count"])

    for event in YAML(typ="safe", pure=True).parse(text):
        start, end = event.start_mark, event.end_mark
        if isinstance(event, (ev.ScalarEvent, ev.MappingStartEvent, ev.SequenceStartEvent, ev.AliasEvent)):
            if stack and stack[-1]["kind"] == "seq":
                entry(start.line, stack[-1]["col"])
            elif stack and stack[-1]["key"]:
                entry(start.line, start.column)
            loc = child_loc() if stack else ()
            if isinstance(event, ev.ScalarEvent):
                inside.update(range(start.line + 1, end.line + (1 if end.column else 0)))
                ends[end.line] = max(ends.get(end.line, 0), end.column)
            if stack and stack[-1]["kind"] == "map" and stack[-1]["key"]:
                stack[-1]["last_key"] = str(event.value) if isinstance(event, ev.ScalarEvent) else None
                stack[-1]["key"] = False
                continue
            if stack:
                stack[-1]["count"] += 1
                if stack[-1]["kind"] == "map":
                    stack[-1]["key"] = True
            if isinstance(event, (ev.MappingStartEvent, ev.SequenceStartEvent)):
                kind = "map" if isinstance(event, ev.MappingStartEvent) else "seq"
                stack.append({"loc": loc, "col": start.column, "kind": kind, "count": 0, "key": kind == "map",
                              "last_key": None})
        elif isinstance(event, (ev.MappingEndEvent, ev.SequenceEndEvent)):
            stack.pop()
            ends[end.line] = max(ends.get(end.line, 0), end.column)
    comments = _Comments()
    if not entries:
        return comments
    for number, line in enumerate(text.splitlines()):
        if number in inside:
            continue
        at = _comment_column(line, ends.get(number, 0))
        if at is None:
            continue
        body = line[at + 1:].rstrip()
        on_line = [e for e in entries if e[0] == number]
        if on_line:  # after a value: before the innermost entry that starts on this line
            place = max(on_line, key=lambda e: e[1])
            comments.before.setdefault((place[2], place[3]), []).append(body)
            continue
        following = [e for e in entries if e[0] > number]
        preceding = [e for e in entries if e[0] < number]
        if following:
            first_line = following[0][0]
            candidates = [e for e in following if e[0] == first_line]
            fitting = [e for e in candidates if e[1] <= at]
            target = max(fitting, key=lambda e: e[1]) if fitting else min(candidates, key=lambda e: e[1])
            if at <= target[1] or not preceding:
                comments.before.setdefault((target[2], target[3]), []).append(body)
                continue
        chain = preceding[-1][4] if preceding else [((), 0)]
        fitting_locs = [loc for loc, column in chain if column <= at] or [chain[0][0]]
        comments.end.setdefault(fitting_locs[-1], []).append(body)
    return comments


def _comment_column(line: str, after: int) -> int | None:
    """Where a comment starts on ``line``, looking from column ``after`` on (where its last node ends)."""
    for index in range(after, len(line)):
        if line[index] == "#" and (index == 0 or line[index - 1] in " \t"):
            return index
        if line[index] not in " \t":
            return None
    return None


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf"}


def _yaml_key(key: Any) -> str:
    text = str(key)
    return text if _PLAIN_KEY.match(text) and text.lower() not in _YAML_WORDS else json.dumps(text, ensure_ascii=False)


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        return (".inf" if value > 0 else "-.inf") if math.isinf(value) else repr(value)
    text = str(value)
    return text if _ENC.match(text) else json.dumps(text, ensure_ascii=False)


def _emit_yaml(tree: Any, comments: _Comments, seal_comment: Any) -> list[str]:
    """``tree`` as block YAML indented by 4 as sops writes it, each comment sealed by ``seal_comment(text, loc)``."""
    out: list[str] = []

    def put_comments(texts: list[str], indent: int, loc: _Loc) -> None:
        out.extend(" " * indent + "#" + seal_comment(text, loc) for text in texts)

    def collection(value: Any, indent: int, loc: _Loc, first_prefix: str = "") -> None:
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        for index, (key, item) in enumerate(items):
            put_comments(comments.before.get((loc, index), []), indent, loc)
            head = " " * indent + (f"{_yaml_key(key)}:" if isinstance(value, dict) else "-")
            child = (*loc, str(key) if isinstance(value, dict) else index)
            if isinstance(item, (dict, list)) and item:
                out.append(head)
                collection(item, indent + 4, child)
            elif isinstance(item, dict):
                out.append(head + " {}")
            elif isinstance(item, list):
                out.append(head + " []")
            else:
                out.append(f"{head} {_yaml_scalar(item)}")
        put_comments(comments.end.get(loc, []), indent, loc)

    collection(tree, 0, ())
    return out
