"""Compose files as input: discovery, interpolation and mapping onto gitops/v1 documents.

``with_compose`` takes every document the loader read and returns the gitops/v1 documents to validate: the
manifests as they were, and the compose stacks translated (see stack.py for which files, mapping.py for
what each field becomes). Everything after it (schema, checks, policy, build, plan) is the same for both.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable

from gitops.manifests.compose.stack import COMPOSE_FILE_NAMES, ReadText, find_stacks, is_compose_name, stack_documents
from gitops.manifests.parse import Document, ManifestError

__all__ = ["COMPOSE_FILE_NAMES", "is_compose_name", "with_compose", "without_delivered"]


def with_compose(documents: list[Document], files: list[str], read_text: ReadText,
                 check_schema: Callable[[Document], list[ManifestError]]
                 ) -> tuple[list[Document], list[ManifestError], bool, set[str]]:
    """The documents to validate, the compose errors, whether the compose stacks took care of the Project
    (made one from their name:, or reported that they have none), and the repository paths the compose files
    deliver into containers (read from the files as written, so even a stack with errors counts)."""
    files = sorted(set(files))
    projects = [d for d in documents if d.kind == "Project" and not is_compose_name(d.file)]
    stacks, errors = find_stacks(files, projects)
    compose_files = {f for s in stacks for f in s.files} | {f for f in files if is_compose_name(f)}
    if not compose_files:
        return documents, errors, False, set()
    parsed: dict[str, list[Document]] = {}
    manifests: list[Document] = []
    for doc in documents:
        if doc.file in compose_files:
            parsed.setdefault(doc.file, []).append(doc)
        else:
            manifests.append(doc)
    project_name = projects[0].name if projects else None
    made, found = stack_documents(stacks, parsed, read_text, check_schema, project_name)
    delivered = {path for f in compose_files for doc in parsed.get(f, []) for path in _binds(doc)}
    # a compose file that could not be read binds who knows what: its YAML error is the one worth reading
    delivered |= {posixpath.dirname(f) or "." for f in compose_files if f not in parsed}
    return manifests + made, errors + found, bool(stacks), delivered


def _binds(doc: Document) -> set[str]:
    """Repository paths a compose file binds or names as configs/secrets files, relative to the repository."""
    found: list[str] = []
    services = doc.data.get("services")
    for svc in services.values() if isinstance(services, dict) else ():
        for item in (svc.get("volumes") if isinstance(svc, dict) else None) or ():
            source = item.split(":", 1)[0] if isinstance(item, str) else item.get("source") if isinstance(
                item, dict) else None
            if isinstance(source, str) and source.startswith("."):
                found.append(source)
    for section in ("configs", "secrets"):
        entries = doc.data.get(section)
        for entry in entries.values() if isinstance(entries, dict) else ():
            if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                found.append(entry["file"])
    folder = posixpath.dirname(doc.file)
    return {posixpath.normpath(posixpath.join(folder, f)) for f in found if "$" not in f}


def without_delivered(documents: list[Document], also: Iterable[str] = ()) -> list[Document]:
    """The documents minus those in files delivered into containers (a Service's files, or a compose bind of a
    repository folder), unless they say they are gitops manifests (apiVersion gitops/...): a prometheus.yml or a
    grafana provisioning file configures a service, it is not a manifest to complain about."""
    delivered: set[str] = set(also)
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
