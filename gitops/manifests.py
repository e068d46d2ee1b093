"""Safe loading of manifest files from an untrusted repository checkout.

The YAML is read as an event stream (ruamel.yaml's parser, which is not recursive) and the tree is
built here, iteratively, so that every hazard is refused *before* anything large is built:

* explicit tags of any kind (``!!python/object``, ``!!str``, ``!custom``) are errors;
* aliases are expanded with a node budget counted before copying, so an alias bomb fails at once,
  and an alias to a node that is still open (a cycle) is an error;
* nesting deeper than ``max_depth``, files larger than ``max_file_bytes``, more than ``max_files``
  manifest files, and duplicate keys are errors;
* ``<<`` merge keys are applied, so later checks (schema, policy) see the merged structure;
* a file reached through a symlink must resolve inside the checkout.

Every node keeps its line and column, so later stages report ``FILE:LINE:COL: message``.
Scalars resolve by the YAML 1.2 core schema (``no`` stays a string; ``0x1F`` is an int).

This module reads files but never imports docker or git, and never executes anything from the repo.
"""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml import events as ev
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver

JsonPath = tuple[str | int, ...]

MANIFEST_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Limits:
    """Bounds on untrusted input; each breach is a clean per-file error."""

    max_file_bytes: int = 1024 * 1024
    max_files: int = 5000
    max_depth: int = 64
    max_nodes: int = 100_000  # per file, after alias expansion
    max_referenced_file_bytes: int = 256 * 1024  # env files and secret files


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, order=True)
class ManifestError:
    """One problem in the repository, located as precisely as is known."""

    file: str
    line: int = 0  # 1-based; 0 when the problem is about the whole file
    col: int = 0
    message: str = ""

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}: {self.message}"
        return f"{self.file}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.col, "message": self.message}


@dataclass(frozen=True)
class Document:
    """One YAML document of a manifest file, with the position of every node in it."""

    file: str  # path relative to the repository root, '/' separated
    index: int  # 0-based position of the document in its file
    line: int  # where the document starts (1-based)
    data: dict[str, Any]
    positions: Mapping[JsonPath, tuple[int, int]] = field(repr=False, compare=False)
    key_positions: Mapping[JsonPath, tuple[int, int]] = field(repr=False, compare=False)

    @property
    def kind(self) -> str:
        kind = self.data.get("kind")
        return kind if isinstance(kind, str) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else ""

    def where(self, path: JsonPath, *, key: bool = False) -> tuple[int, int]:
        """Line and column of the node at ``path`` (or of its key), else of its nearest ancestor."""
        if key and path in self.key_positions:
            return self.key_positions[path]
        probe = path
        while probe:
            if probe in self.positions:
                return self.positions[probe]
            probe = probe[:-1]
        return self.positions.get((), (self.line, 1))

    def error(self, path: JsonPath, message: str, *, key: bool = False) -> ManifestError:
        line, col = self.where(path, key=key)
        return ManifestError(self.file, line, col, message)


@dataclass
class LoadResult:
    documents: list[Document]
    errors: list[ManifestError]


class _Refused(Exception):
    """Stops building one document; carries the located error."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


_RESOLVER = VersionedResolver(version=(1, 2))
_TAG = "tag:yaml.org,2002:"


def _resolve_scalar(event: ev.ScalarEvent) -> Any:
    """YAML 1.2 core schema for plain scalars; quoted and block scalars are strings."""
    text = event.value
    if event.style is not None or not event.implicit[0]:
        return text
    tag = _RESOLVER.resolve(ScalarNode, text, (True, False))
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "bool":
        return text.lower() == "true"
    if tag == _TAG + "int":
        clean = text.replace("_", "")
        sign = -1 if clean.startswith("-") else 1
        digits = clean.lstrip("+-")
        if digits.startswith(("0x", "0o", "0b")):
            return sign * int(digits, 0)
        return sign * int(digits, 10)
    if tag == _TAG + "float":
        lowered = text.lower().replace("_", "")
        if lowered.endswith((".inf",)):
            return float("-inf") if lowered.startswith("-") else float("inf")
        if lowered == ".nan":
            return float("nan")
        return float(lowered)
    return text


class _Frame:
    __slots__ = ("container", "path", "line", "col", "anchor", "key", "key_pos", "merges", "explicit",
                 "nodes")

    def __init__(self, container: Any, path: JsonPath, line: int, col: int, anchor: str | None) -> None:
        self.container = container
        self.path = path
        self.line, self.col = line, col
        self.anchor = anchor
        self.key: Any = _NO_KEY
        self.key_pos = (0, 0)
        self.merges: list[Any] = []
        self.explicit: set[str] = set()
        self.nodes = 1


_NO_KEY = object()
_MERGE = object()


class _DocumentBuilder:
    """Builds plain dict/list/scalar trees from parser events, enforcing the limits as it goes."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.anchors: dict[str, tuple[Any, int]] = {}  # name -> (value, node count)
        self.open_anchors: set[str] = set()
        self.stack: list[_Frame] = []
        self.nodes = 0
        self.root: Any = None
        self.positions: dict[JsonPath, tuple[int, int]] = {}
        self.key_positions: dict[JsonPath, tuple[int, int]] = {}

    # -- helpers -----------------------------------------------------------------------------------
    def _count(self, n: int, line: int, col: int) -> None:
        self.nodes += n
        if self.nodes > self.limits.max_nodes:
            raise _Refused(line, col, f"document too large: more than {self.limits.max_nodes} nodes "
                           "(after expanding aliases); split it or remove alias chains")

    def _child_path(self) -> JsonPath | None:
        """Path of the next value to be placed, or None when the next node is a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        if top.key is _NO_KEY:
            return None
        if top.key is _MERGE:
            return (*top.path, "<<")
        return (*top.path, top.key)

    def _place(self, value: Any, size: int, line: int, col: int) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        top.nodes += size
        if isinstance(top.container, list):
            top.container.append(value)
            return
        if top.key is _MERGE:
            top.merges.append((value, line, col))
        else:
            top.container[top.key] = value
        top.key = _NO_KEY

    def _take_key(self, event: ev.Event, line: int, col: int) -> None:
        top = self.stack[-1]
        if not isinstance(event, ev.ScalarEvent):
            raise _Refused(line, col, "mapping keys must be plain strings, not collections or aliases")
        text = event.value
        if text == "<<" and event.style is None and event.implicit[0]:
            top.key = _MERGE
            return
        if text in top.container or text in top.explicit:
            first = self.key_positions.get((*top.path, text), (0, 0))
            raise _Refused(line, col, f"duplicate key '{text}' (first defined at line {first[0]})")
        top.explicit.add(text)
        top.key = text
        self.key_positions[(*top.path, text)] = (line, col)

    def _finish_mapping(self, frame: _Frame) -> None:
        # Explicit keys win over merged ones; earlier merge sources win over later ones (YAML merge).
        for value, line, col in frame.merges:
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if not isinstance(source, dict):
                    raise _Refused(line, col, "'<<' merges only mappings or lists of mappings")
                for k, v in source.items():
                    if k not in frame.container:
                        frame.container[k] = copy.deepcopy(v)
                        self.positions.setdefault((*frame.path, k), (line, col))
                        self.key_positions.setdefault((*frame.path, k), (line, col))

    # -- the event loop ------------------------------------------------------------------------------
    def feed(self, event: ev.Event) -> None:
        mark = event.start_mark
        line, col = mark.line + 1, mark.column + 1
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise _Refused(line, col, f"explicit YAML tag '{tag}' is not allowed; remove it "
                           "(quote the value if you meant a string)")

        if self.stack and isinstance(self.stack[-1].container, dict) and self.stack[-1].key is _NO_KEY \
                and not isinstance(event, ev.MappingEndEvent):
            self._take_key(event, line, col)
            return

        if isinstance(event, ev.AliasEvent):
            name = event.anchor
            if name in self.open_anchors:
                raise _Refused(line, col, f"alias '*{name}' refers to a node that contains it (cycle)")
            if name not in self.anchors:
                raise _Refused(line, col, f"alias '*{name}' has no anchor before it")
            value, size = self.anchors[name]
            self._count(size, line, col)  # refuse before copying: this is what stops alias bombs
            path = self._child_path()
            if path is not None:
                self.positions.setdefault(path, (line, col))
            self._place(copy.deepcopy(value), size, line, col)
            return

        if isinstance(event, ev.ScalarEvent):
            self._count(1, line, col)
            path = self._child_path()
            if path is not None:
                self.positions[path] = (line, col)
            value = _resolve_scalar(event)
            if event.anchor:
                self.anchors[event.anchor] = (value, 1)
            self._place(value, 1, line, col)
            return

        if isinstance(event, (ev.MappingStartEvent, ev.SequenceStartEvent)):
            self._count(1, line, col)
            if len(self.stack) >= self.limits.max_depth:
                raise _Refused(line, col, f"nesting deeper than {self.limits.max_depth} levels")
            path = self._child_path()
            if path is None:  # pragma: no cover - keys are handled above
                raise _Refused(line, col, "unexpected collection")
            self.positions[path] = (line, col)
            container: Any = {} if isinstance(event, ev.MappingStartEvent) else []
            if event.anchor:
                self.open_anchors.add(event.anchor)
            self.stack.append(_Frame(container, path, line, col, event.anchor))
            return

        if isinstance(event, (ev.MappingEndEvent, ev.SequenceEndEvent)):
            frame = self.stack.pop()
            if isinstance(frame.container, dict):
                if frame.key is not _NO_KEY:  # pragma: no cover - the parser never ends mid-pair
                    raise _Refused(line, col, "mapping ended before its value")
                self._finish_mapping(frame)
            if frame.anchor:
                self.open_anchors.discard(frame.anchor)
                self.anchors[frame.anchor] = (frame.container, frame.nodes)
            self._place(frame.container, frame.nodes, frame.line, frame.col)
            return


def parse_documents(text: str, file: str, *, limits: Limits = DEFAULT_LIMITS) -> LoadResult:
    """Parse every YAML document of one file. Pure: no file system access."""
    documents: list[Document] = []
    errors: list[ManifestError] = []
    yaml = YAML(typ="safe", pure=True)
    builder: _DocumentBuilder | None = None
    doc_line = 1
    index = 0
    try:
        for event in yaml.parse(io.StringIO(text)):
            if isinstance(event, ev.DocumentStartEvent):
                builder = _DocumentBuilder(limits)
                doc_line = event.start_mark.line + 1
                continue
            if isinstance(event, ev.DocumentEndEvent):
                assert builder is not None
                root = builder.root
                if root is None:
                    pass  # an empty document (e.g. a trailing '---') is allowed
                elif not isinstance(root, dict):
                    errors.append(ManifestError(file, doc_line, 1,
                                                "a manifest document must be a mapping with apiVersion, "
                                                "kind, metadata and spec"))
                else:
                    documents.append(Document(file, index, doc_line, root, builder.positions,
                                              builder.key_positions))
                index += 1
                builder = None
                continue
            if builder is not None:
                builder.feed(event)
    except _Refused as refused:
        errors.append(ManifestError(file, refused.line, refused.col, refused.message))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part) or "invalid YAML"
        errors.append(ManifestError(file, line, col, f"invalid YAML: {message}"))
    except YAMLError as exc:
        errors.append(ManifestError(file, 0, 0, f"invalid YAML: {exc}"))
    except RecursionError:
        errors.append(ManifestError(file, 0, 0, "invalid YAML: nested too deeply"))
    return LoadResult(documents, errors)


# ---------------------------------------------------------------------------------------------------
# The repository on disk


class RepoPathError(ValueError):
    """A path named by a manifest that cannot be used (outside the checkout, missing, too big)."""


def resolve_inside(root: Path, relative: str, *, base: str = "") -> Path:
    """Resolve ``relative`` (relative to the folder of ``base``, a repo file) inside ``root``.

    Symlinks are followed; the final target must still lie inside the checkout, so a link to
    /etc/passwd or ../../secret is refused while a link to another file of the repo works.
    """
    if not relative or "\x00" in relative:
        raise RepoPathError("empty or invalid path")
    if os.path.isabs(relative):
        raise RepoPathError(f"'{relative}' is absolute; name a file inside the repository instead")
    real_root = root.resolve()
    start = (real_root / base).parent if base else real_root
    candidate = (start / relative).resolve()
    if candidate != real_root and real_root not in candidate.parents:
        raise RepoPathError(f"'{relative}' resolves outside the repository")
    if not candidate.is_file():
        raise RepoPathError(f"'{relative}' is not a file in the repository")
    return candidate


def read_repo_file(root: Path, relative: str, *, base: str = "", limits: Limits = DEFAULT_LIMITS) -> str:
    path = resolve_inside(root, relative, base=base)
    size = path.stat().st_size
    if size > limits.max_referenced_file_bytes:
        raise RepoPathError(f"'{relative}' is {size} bytes, more than the {limits.max_referenced_file_bytes}"
                            " allowed")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RepoPathError(f"'{relative}' is not UTF-8 text") from exc


def discover(root: Path, *, limits: Limits = DEFAULT_LIMITS) -> tuple[list[str], list[ManifestError]]:
    """Manifest files below ``root`` (relative, sorted), skipping hidden folders and files.

    Folder symlinks are not followed (no loops, no escapes); file symlinks are checked later.
    """
    found: list[str] = []
    errors: list[ManifestError] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or not name.endswith(MANIFEST_SUFFIXES):
                continue
            found.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
            if len(found) > limits.max_files:
                errors.append(ManifestError(".", 0, 0, f"more than {limits.max_files} manifest files; "
                                            "point gitops at the folder that holds the manifests"))
                return [], errors
    return sorted(found), errors


def _read_manifest(root: Path, relative: str, limits: Limits) -> tuple[str | None, ManifestError | None]:
    path = root / relative
    try:
        if path.is_symlink():
            resolve_inside(root, relative)
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            return None, ManifestError(relative, 0, 0, f"file is {size} bytes, more than the "
                                       f"{limits.max_file_bytes} allowed for one manifest file")
        with path.open("rb") as handle:
            raw = handle.read(limits.max_file_bytes + 1)
        return raw.decode("utf-8"), None
    except RepoPathError as exc:
        return None, ManifestError(relative, 0, 0, f"symlink refused: {exc}")
    except UnicodeDecodeError:
        return None, ManifestError(relative, 0, 0, "file is not UTF-8 text")
    except OSError as exc:
        return None, ManifestError(relative, 0, 0, f"cannot read file: {exc.strerror}")


def iter_manifest_texts(root: Path, *, limits: Limits = DEFAULT_LIMITS) -> Iterator[tuple[str, str | None,
                                                                                          ManifestError | None]]:
    files, found = discover(root, limits=limits)
    for problem in found:
        yield problem.file, None, problem
    for relative in files:
        text, error = _read_manifest(root, relative, limits)
        yield relative, text, error


def load_documents(root: Path, *, limits: Limits = DEFAULT_LIMITS) -> LoadResult:
    """Every manifest document below ``root``, with every error found (not only the first)."""
    result = LoadResult([], [])
    if not root.is_dir():
        result.errors.append(ManifestError(str(root), 0, 0, "not a folder"))
        return result
    for relative, text, error in iter_manifest_texts(root, limits=limits):
        if error is not None:
            result.errors.append(error)
            continue
        assert text is not None
        parsed = parse_documents(text, relative, limits=limits)
        result.documents.extend(parsed.documents)
        result.errors.extend(parsed.errors)
    return result
