"""Compose files as input: discovery, interpolation and mapping onto gitops/v1 documents.

``with_compose`` takes every document the loader read and returns the gitops/v1 documents to validate: the
manifests as they were, and the compose stacks translated (see stack.py for which files, mapping.py for
what each field becomes). Everything after it (schema, checks, policy, build, plan) is the same for both.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from gitops.manifests.compose.stack import COMPOSE_FILE_NAMES, ReadText, find_stacks, is_compose_name, stack_documents
from gitops.manifests.parse import Document, ManifestError

__all__ = ["COMPOSE_FILE_NAMES", "is_compose_name", "with_compose", "without_delivered"]


def with_compose(documents: list[Document], files: list[str], read_text: ReadText,
                 check_schema: Callable[[Document], list[ManifestError]]
                 ) -> tuple[list[Document], list[ManifestError], bool]:
    """The documents to validate, the compose errors, and whether the compose stacks took care of the Project
    (made one from their name:, or reported that they have none)."""
    files = sorted(set(files))
    projects = [d for d in documents if d.kind == "Project" and not is_compose_name(d.file)]
    stacks, errors = find_stacks(files, projects)
    compose_files = {f for s in stacks for f in s.files} | {f for f in files if is_compose_name(f)}
    if not compose_files:
        return documents, errors, False
    parsed: dict[str, list[Document]] = {}
    manifests: list[Document] = []
    for doc in documents:
        if doc.file in compose_files:
            parsed.setdefault(doc.file, []).append(doc)
        else:
            manifests.append(doc)
    project_name = projects[0].name if projects else None
    made, found = stack_documents(stacks, parsed, read_text, check_schema, project_name)
    return manifests + made, errors + found, bool(stacks)


def without_delivered(documents: list[Document]) -> list[Document]:
    """The documents minus those in files delivered into containers (a Service's files, or a compose bind of a
    repository folder), unless they say they are gitops manifests (apiVersion gitops/...): a prometheus.yml or a
    grafana provisioning file configures a service, it is not a manifest to complain about."""
    delivered: set[str] = set()
    for doc in documents:
        spec = doc.data.get("spec")
        files = spec.get("files") if doc.kind == "Service" and isinstance(spec, dict) else None
        for item in files if isinstance(files, list) else ():
            source = item.get("source") if isinstance(item, dict) else None
            if isinstance(source, str) and not source.startswith("/"):
                delivered.add(posixpath.normpath(posixpath.join(posixpath.dirname(doc.file), source)))

    def is_delivered(file: str) -> bool:
        return any(path == "." or file == path or file.startswith(path + "/") for path in delivered)

    def is_manifest(doc: Document) -> bool:
        api = doc.data.get("apiVersion")
        return isinstance(api, str) and api.startswith("gitops/")

    return [d for d in documents if is_manifest(d) or not is_delivered(d.file)]
