"""From a folder of manifests to a DesiredState, or to every error that stands in the way.

The stages, each reporting all its errors before the next runs:
  safe YAML (manifests) -> JSON Schema (schema) -> semantic checks and policy (validate)
  -> model, reading env/secret/TLS files inside the checkout (desired)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.core.model import DesiredState, SecretKey, ephemeral_key
from gitops.manifests.build import build_desired
from gitops.manifests.checks import allowed_policy_exceptions, check_documents
from gitops.manifests.compose import with_compose, without_delivered
from gitops.manifests.parse import (
    DEFAULT_LIMITS,
    Document,
    Limits,
    ManifestError,
    RepoPathError,
    load_documents,
    parse_documents,
    read_repo_bytes,
    read_repo_tree,
    resolve_inside,
)
from gitops.manifests.schema import validate_compose, validate_documents
from gitops.manifests.sops import Decrypted, DecryptedBytes, SopsError, decrypt, is_encrypted


@dataclass
class LoadOutcome:
    root: Path
    desired: DesiredState | None
    errors: list[ManifestError] = field(default_factory=list)
    documents: int = 0

    @property
    def ok(self) -> bool:
        return self.desired is not None and not self.errors


def read_secret_aware(root: Path, relative: str, *, base: str = "", limits: Limits = DEFAULT_LIMITS,
                      identities: Sequence[Any] = ()) -> str:
    """A text file a manifest names; when it is encrypted (SOPS or age, found by its content), its plaintext,
    decrypted in memory and marked Decrypted so that what is made of it is treated as a secret."""
    data = read_repo_bytes(root, relative, base=base, limits=limits)
    plain = _decrypted(data, relative, limits, identities)
    try:
        return Decrypted(plain.decode("utf-8")) if plain is not None else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RepoPathError(f"{relative!r} is not UTF-8 text" + (" once decrypted" if plain is not None else "")) \
            from exc


def _decrypted(data: bytes, relative: str, limits: Limits, identities: Sequence[Any]) -> bytes | None:
    if not is_encrypted(data):
        return None
    document = None
    try:
        parsed = parse_documents(data.decode("utf-8"), relative, limits=limits).documents
        document = parsed[0].data if len(parsed) == 1 else None
    except UnicodeDecodeError:
        pass  # binary: an age file, or not encrypted after all
    try:
        plain = decrypt(data, identities, document=document)
    except SopsError as exc:
        raise RepoPathError(f"{relative!r} cannot be decrypted: {exc}") from exc
    if plain is None:  # it has SOPS' marks, but not a form sops writes: never deploy the ciphertext as a value
        raise RepoPathError(f"{relative!r} holds SOPS-encrypted values but is not a SOPS file gitops can read (a "
                            "merge conflict or a cut file?): check it with `gitops secrets check`, and encrypt it "
                            "again from its source")
    return plain


def read_documents(root: Path, *, limits: Limits = DEFAULT_LIMITS, identities: Sequence[Any] = ()
                   ) -> tuple[list[Document], list[ManifestError], list[Document]]:
    """Every gitops/v1 document of the repository (compose stacks translated), every error found up to the
    semantic checks and policy, and the documents valid against their schema."""
    loaded = load_documents(root, limits=limits)

    def read_text(relative: str) -> str | None:
        if not os.path.lexists(root / relative):
            return None
        return read_secret_aware(root, relative, limits=limits, identities=identities)

    documents, compose_errors, project_explained, delivered = with_compose(loaded.documents, loaded.files,
                                                                           read_text, validate_compose)
    documents = without_delivered(documents, delivered)
    valid, schema_errors = validate_documents(documents)
    errors = loaded.errors + compose_errors + schema_errors
    valid_ids = {id(d) for d in valid}
    broken = [d for d in documents if id(d) not in valid_ids]
    if loaded.complete:  # else documents are missing: "no Project", "unknown host" would be noise
        errors += check_documents(valid, broken=broken, project_explained=project_explained)
    return documents, errors, valid


def load_repo(root: Path, *, revision: str = "", limits: Limits = DEFAULT_LIMITS,
              key: SecretKey | None = None) -> LoadOutcome:
    """Load, validate and model the manifests below ``root``. ``desired`` is None when any error is found.

    ``key`` digests secret values (secret_key.installation_key): pass it whenever the result is compared
    with containers on hosts. Without it a throwaway key is made, which is only right when nothing made
    under another load is compared (validate; plan --base passes one key to both of its loads).
    """
    root = Path(root)
    key = key or ephemeral_key()
    documents, errors, valid = read_documents(root, limits=limits, identities=key.age)
    outcome = LoadOutcome(root, None, errors, len(documents))
    if errors:
        outcome.errors = sorted(set(errors))
        return outcome

    def read(base: str, relative: str) -> str:
        return read_secret_aware(root, relative, base=base, limits=limits, identities=key.age)

    def resolve(base: str, relative: str) -> str:
        return str(resolve_inside(root, relative, base=base))

    def read_tree(base: str, relative: str) -> list[tuple[str, bytes]]:
        files = read_repo_tree(root, relative, base=base, limits=limits)
        out: list[tuple[str, bytes]] = []
        for below, data in files:
            plain = _decrypted(data, f"{relative}/{below}" if below else relative, limits, key.age)
            out.append((below, DecryptedBytes(plain) if plain is not None else data))
        return out

    desired, build_errors = build_desired(valid, read_file=read, resolve_path=resolve, key=key,
                                          read_tree=read_tree, max_delivered_bytes=limits.max_delivered_bytes)
    if build_errors:
        outcome.errors = build_errors
        return outcome
    outcome.desired = dataclasses.replace(desired, revision=revision,
                                          exceptions=tuple(allowed_policy_exceptions(valid)))
    return outcome
