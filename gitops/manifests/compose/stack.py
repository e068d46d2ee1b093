"""Compose stacks in a repository: which files, their variables, one merged stack per list of files, and the
gitops/v1 documents it becomes.

* Without ``spec.compose`` in the Project manifest, every file named compose.yaml, compose.yml,
  docker-compose.yaml or docker-compose.yml is a stack of its own, with the ``.env`` file beside it.
* With it, the Project lists the stacks: ``{files: [base.yaml, prod.yaml], envFiles: [...], profiles: [...]}``,
  paths relative to the Project manifest; files are merged in order as ``docker compose -f a -f b`` does.
  A compose-named file that no stack lists is an error (it would otherwise be ignored without a word).

Variables come from the stack's env files (or the ``.env`` beside its first file) and never from the
reconciler's own environment: a plan must not depend on the machine that makes it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitops.manifests.compose.document import ComposeDocument, Origin, compose_error
from gitops.manifests.compose.interpolate import DotenvError, InterpolationError, interpolate, parse_dotenv
from gitops.manifests.compose.mapping import API, Mapper
from gitops.manifests.compose.refusals import refusals
from gitops.manifests.parse import Document, JsonPath, ManifestError, RepoPathError, format_path
from gitops.manifests.sops import Decrypted

COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
# merged after the file of the same folder, as `docker compose up` does without -f
OVERRIDE_FILE_NAMES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml",
                       "docker-compose.override.yml")
ReadText = Callable[[str], "str | None"]  # repository path -> text, None when no such file; RepoPathError
SchemaCheck = Callable[[Document], list[ManifestError]]


def is_compose_name(relative: str) -> bool:
    return posixpath.basename(relative) in COMPOSE_FILE_NAMES + OVERRIDE_FILE_NAMES


@dataclass
class Stack:
    files: list[str]  # relative to the repository root, merged in order
    env_files: list[str] = field(default_factory=list)  # relative to the root; none: the .env beside files[0]
    profiles: list[str] = field(default_factory=list)
    declared_at: tuple[Document, JsonPath] | None = None  # the Project's spec.compose[i], when listed there


def find_stacks(manifest_files: list[str], projects: list[Document]) -> tuple[list[Stack], list[ManifestError]]:
    """The stacks of the repository and the errors in declaring them (the Project schema checks shapes later)."""
    declared = [(p, p.data.get("spec", {}).get("compose")) for p in projects if isinstance(p.data.get("spec"), dict)]
    declared = [(p, entries) for p, entries in declared if entries is not None]
    if not declared:
        return _found_by_name(manifest_files)
    project, entries = declared[0]
    stacks: list[Stack] = []
    errors: list[ManifestError] = []
    folder = posixpath.dirname(project.file)
    if not isinstance(entries, list):
        return [], []  # the schema reports it
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), list):
            continue
        paths: list[str] = []
        for key in ("files", "envFiles"):
            found = []
            for j, rel in enumerate(entry.get(key) or []):
                if not isinstance(rel, str):
                    continue
                joined = posixpath.normpath(posixpath.join(folder, rel))
                if joined.startswith("../") or joined == ".." or rel.startswith("/"):
                    errors.append(project.error(("spec", "compose", i, key, j), f"spec.compose[{i}].{key}[{j}]: "
                                                f"{rel!r} is outside the repository"))
                    continue
                if key == "files" and joined not in manifest_files:
                    errors.append(project.error(("spec", "compose", i, key, j), f"spec.compose[{i}].files[{j}]: "
                                                f"no compose file {rel!r} (a .yaml or .yml file in the repository)"))
                    continue
                found.append(joined)
            if key == "files":
                paths = found
            else:
                env_files = found
        profiles = [p for p in entry.get("profiles") or [] if isinstance(p, str)]
        if paths:
            stacks.append(Stack(paths, env_files, profiles, (project, ("spec", "compose", i))))
    listed = {f for s in stacks for f in s.files}
    for f in manifest_files:
        if is_compose_name(f) and f not in listed:
            errors.append(ManifestError(f, 0, 0, f"a compose file that the Project's spec.compose does not list "
                                        f"({project.file}); list it there, or rename it if it is not for gitops"))
    return stacks, errors


def _found_by_name(manifest_files: list[str]) -> tuple[list[Stack], list[ManifestError]]:
    """A stack per compose-named file, with the override file of its folder merged after it."""
    stacks, errors = [], []
    for f in manifest_files:
        if posixpath.basename(f) in COMPOSE_FILE_NAMES:
            folder = posixpath.dirname(f)
            overrides = [o for o in manifest_files if posixpath.dirname(o) == folder
                         and posixpath.basename(o) in OVERRIDE_FILE_NAMES]
            stacks.append(Stack([f, *overrides[:1]]))
    bases = {posixpath.dirname(s.files[0]) for s in stacks}
    for f in manifest_files:
        if posixpath.basename(f) in OVERRIDE_FILE_NAMES and posixpath.dirname(f) not in bases:
            errors.append(ManifestError(f, 0, 0, "an override file without a compose.yaml beside it to override; "
                                        "list the files in the Project's spec.compose"))
    return stacks, errors


def stack_documents(stacks: list[Stack], parsed: Mapping[str, list[Document]], read_text: ReadText,
                    check_schema: SchemaCheck, project_name: str | None) -> tuple[list[Document], list[ManifestError]]:
    """The gitops/v1 documents of every stack; a Project document too when the repository has none."""
    docs: list[Document] = []
    errors: list[ManifestError] = []
    names: list[tuple[str, str]] = []  # (project name from compose, file)
    for stack in stacks:
        made, found, named = _one_stack(stack, parsed, read_text, check_schema)
        docs += made
        errors += found
        if named:
            names.append(named)
    docs = _shared_once(docs, errors)
    unread = any(f not in parsed for stack in stacks for f in stack.files)  # its YAML error says enough
    if project_name is None and stacks and not (unread and not names):
        chosen = {n for n, _ in names}
        if not names:
            first = stacks[0].files[0]
            errors.append(ManifestError(first, 1, 1, "the project has no name: add name: to the compose file, or a "
                                        "Project manifest (a checkout's folder name is not stable enough to name "
                                        "what gitops owns)"))
        elif len(chosen) > 1:
            where = ", ".join(f"{f}: {n}" for n, f in names)
            errors.append(ManifestError(names[1][1], 1, 1, f"the compose files name different projects ({where}); "
                                        "give them one name, or add a Project manifest"))
        else:
            project, file = names[0]
            docs.insert(0, ComposeDocument(file, 0, 1, {"apiVersion": API, "kind": "Project",
                                                        "metadata": {"name": project}, "spec": {}},
                                           sources={(): (("name",), False)}, origins={}))
    return docs, errors


def _shared_once(docs: list[Document], errors: list[ManifestError]) -> list[Document]:
    """Stacks in one project share networks and volumes of one name (each stack's ``default`` network, a data
    volume): declared the same, they are one; declared differently, the checks report the name twice."""
    seen: dict[tuple[str, str], Document] = {}
    out = []
    for doc in docs:
        if doc.kind in ("Network", "Volume"):
            first = seen.get((doc.kind, doc.name))
            if first is not None and first.data == doc.data:
                continue
            seen.setdefault((doc.kind, doc.name), doc)
        out.append(doc)
    return out


def _one_stack(stack: Stack, parsed: Mapping[str, list[Document]], read_text: ReadText,
               check_schema: SchemaCheck) -> tuple[list[Document], list[ManifestError], tuple[str, str] | None]:
    errors: list[ManifestError] = []
    named = _project_name(stack, parsed)
    variables, problems = _variables(stack, read_text)
    if problems:
        return [], problems, named
    merged: dict[str, Any] = {}
    origins: dict[JsonPath, Origin] = {}
    for file in stack.files:
        found = parsed.get(file, [])
        if len(found) != 1:
            if len(found) > 1:
                errors.append(ManifestError(file, found[1].line, 1, "a compose file holds one YAML document"))
            continue  # an empty or unreadable file: its error is reported by the loader
        doc = found[0]
        origin: Origin = (file, doc.positions)
        data = _without_extensions(_interpolated(doc.data, variables, origin, (), errors), ())
        refused = refusals(data)
        errors += [compose_error(origin, path, message, key=True) for path, message in refused]
        for path, _ in refused:  # said once, with the way out: the schema need not call them unknown too
            _drop(data, path)
        shaped = check_schema(Document(file, 0, doc.line, data, doc.positions))
        errors += shaped
        if not refused and not shaped:
            _merge_file(merged, data, origin, origins)
    if errors:
        return [], errors, named
    selected = set(stack.profiles)
    everything = merged.get("services") or {}
    services = {name: svc for name, svc in everything.items()
                if not svc.get("profiles") or selected & set(svc["profiles"])}
    for name, svc in services.items():
        for dep in svc.get("depends_on") or ():
            if dep in everything and dep not in services:
                errors.append(compose_error(origins[("services", name)], ("services", name, "depends_on", dep),
                                            f"services.{name}.depends_on: {dep} is only in profiles "
                                            f"{', '.join(everything[dep]['profiles'])}, which are not selected; "
                                            "select one in the Project's spec.compose profiles"))
    if errors:
        return [], errors, named
    top = merged.get("x-gitops") or {}
    if not isinstance(top, dict):
        return [], [compose_error(origins[()], ("x-gitops",), "x-gitops: expected a mapping of settings")], None
    mapper = Mapper(stack.files[0], origins, merged, top, read_text, variables)
    networks_used: set[str] = set()
    volumes_used: set[str] = set()
    docs: list[Document] = []
    for name in sorted(services):
        made = mapper.service(name, services[name], networks_used, volumes_used)
        if made is not None:
            docs.append(made)
    docs += mapper.networks(networks_used)
    docs += mapper.volumes(volumes_used)
    return docs, mapper.errors, named


def _project_name(stack: Stack, parsed: Mapping[str, list[Document]]) -> tuple[str, str] | None:
    """The last ``name:`` of the stack's files (a later file overrides, as in compose), with its file."""
    found = None
    for file in stack.files:
        for doc in parsed.get(file, [])[:1]:
            name = doc.data.get("name")
            if isinstance(name, str) and name:
                found = (name, file)
    return found


def _drop(data: dict[str, Any], path: JsonPath) -> None:
    parent: Any = data
    for part in path[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if isinstance(parent, dict):
        parent.pop(path[-1], None)


def _variables(stack: Stack, read_text: ReadText) -> tuple[dict[str, str], list[ManifestError]]:
    variables: dict[str, str] = {}
    files = stack.env_files or [posixpath.join(posixpath.dirname(stack.files[0]), ".env")]
    for rel in files:
        try:
            text = read_text(rel)
        except RepoPathError as exc:
            return {}, [ManifestError(rel, 0, 0, str(exc))]
        if text is None:
            if stack.env_files:
                return {}, [ManifestError(rel, 0, 0, "no such env file in the repository")]
            continue  # no .env beside the compose file: nothing to read
        if isinstance(text, Decrypted):
            return {}, [ManifestError(rel, 0, 0, "an encrypted file cannot give variables to the compose file: "
                                      "what it interpolates (image tags, ports, environment) is shown in plans; "
                                      "keep variables plain, and give the container its secrets with env_file: "
                                      "or secrets: pointing at the encrypted file")]
        try:
            variables.update(parse_dotenv(text, variables))
        except DotenvError as exc:
            return {}, [ManifestError(rel, exc.line, 1, exc.message)]
    return variables, []


def _without_extensions(value: Any, path: JsonPath) -> Any:
    """The file without its x- fields (compose allows them anywhere and ignores them), except x-gitops at the top
    and on a service, which carry gitops' own settings."""
    if isinstance(value, dict):
        kept = len(path) in (0, 2) and (not path or path[0] == "services")
        return {k: _without_extensions(v, (*path, k)) for k, v in value.items()
                if not (isinstance(k, str) and k.startswith("x-")) or (k == "x-gitops" and kept)}
    if isinstance(value, list):
        return [_without_extensions(v, (*path, i)) for i, v in enumerate(value)]
    return value


MAX_INTERPOLATED = 4 * 1024 * 1024  # characters made by interpolation in one file: 10,000 uses of a 256 KiB value
# would otherwise be 2.5 GB of strings from a 1 MiB file


def _interpolated(value: Any, variables: Mapping[str, str], origin: Origin, path: JsonPath,
                  errors: list[ManifestError], made: list[int] | None = None) -> Any:
    made = [0] if made is None else made
    if isinstance(value, str):
        if "$" not in value or made[0] > MAX_INTERPOLATED:
            return value
        try:
            result = interpolate(value, variables)
        except InterpolationError as exc:
            errors.append(compose_error(origin, path, f"{format_path(path)}: {exc.message}"))
            return value
        made[0] += len(result)
        if made[0] > MAX_INTERPOLATED:
            errors.append(compose_error(origin, path, f"{format_path(path)}: interpolation made more than "
                                        f"{MAX_INTERPOLATED} characters in this file; use fewer or shorter variables"))
            return value
        return result
    if isinstance(value, dict):
        return {k: _interpolated(v, variables, origin, (*path, k), errors, made) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolated(v, variables, origin, (*path, i), errors, made) for i, v in enumerate(value)]
    return value


# -- merging files: `docker compose -f a -f b` ----------------------------------------------------------------
_BY_KEY = ("environment", "labels")  # list or mapping, merged by variable / label name
_UNION = ("ports", "expose", "cap_add", "cap_drop", "devices", "security_opt", "dns", "tmpfs", "env_file")
_BY_TARGET = ("volumes",)  # merged by the path in the container
_BY_SOURCE = ("secrets", "configs")
_NAMED = ("depends_on", "networks")  # a list of names or a mapping by name


def _merge_file(merged: dict[str, Any], data: dict[str, Any], origin: Origin,
                origins: dict[JsonPath, Origin]) -> None:
    origins.setdefault((), origin)
    for key, value in data.items():
        if key == "services":
            services = merged.setdefault("services", {})
            for name, svc in value.items():
                svc = svc or {}
                if name not in services:
                    services[name] = dict(svc)
                    origins[("services", name)] = origin
                else:
                    _merge_service(services[name], svc)
                for field_name in svc:
                    origins[("services", name, field_name)] = origin
        elif key in ("networks", "volumes", "secrets", "configs"):
            target = merged.setdefault(key, {})
            for name, item in (value or {}).items():
                target[name] = {**(target.get(name) or {}), **(item or {})}
                origins[(key, name)] = origin
        else:
            merged[key] = value
            origins[(key,)] = origin


def _merge_service(base: dict[str, Any], override: dict[str, Any]) -> None:
    for key, value in override.items():
        old = base.get(key)
        if old is None:
            base[key] = value
        elif key in _BY_KEY:
            base[key] = _listed(old) | _listed(value) if not isinstance(old, dict) or not isinstance(value, dict) \
                else {**old, **value}
        elif key in _UNION:
            old_list = [old] if isinstance(old, str) else list(old)
            base[key] = old_list + [v for v in ([value] if isinstance(value, str) else value) if v not in old_list]
        elif key in _BY_TARGET:
            by_target = {_target(v): v for v in old}
            by_target.update({_target(v): v for v in value})
            base[key] = list(by_target.values())
        elif key in _BY_SOURCE:
            by_source = {v if isinstance(v, str) else v.get("source"): v for v in old}
            by_source.update({v if isinstance(v, str) else v.get("source"): v for v in value})
            base[key] = list(by_source.values())
        elif key in _NAMED:
            base[key] = {**_named(old), **_named(value)}
        elif isinstance(old, dict) and isinstance(value, dict):
            merged = dict(old)
            _merge_service(merged, value)
            base[key] = merged
        else:
            base[key] = value


def _listed(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return dict(raw)
    out: dict[str, Any] = {}
    for item in raw:
        key, sep, value = str(item).partition("=")
        out[key] = value if sep else None
    return out


def _named(raw: Any) -> dict[str, Any]:
    return dict(raw) if isinstance(raw, dict) else {name: None for name in raw}


def _target(volume: Any) -> str:
    if isinstance(volume, dict):
        return str(volume.get("target", ""))
    parts = str(volume).split(":")
    return parts[1] if len(parts) > 1 else parts[0]
