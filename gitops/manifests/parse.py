"""Safe loading of manifest files from an untrusted repository checkout.

The YAML is read as an event stream (libyaml through ruamel.yaml.clib, or ruamel.yaml's pure parser
for what libyaml refuses; neither is recursive) and the tree is built here, iteratively, so that every
hazard is refused *before* anything large is built:

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
import errno
import io
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml import events as ev
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scanner import Scanner

try:  # libyaml, which ruamel.yaml.clib bundles: the same events, ~15x faster than the pure-Python scanner
    from ruamel.yaml.cyaml import CParser  # noqa: F401 - imported to know it is there

    _PURE = False
except ImportError:  # no wheel for this platform: the pure parser, with the flow-depth scanner below
    _PURE = True

from gitops.errors import GitopsError

JsonPath = tuple[str | int, ...]


def format_path(path: Iterable[str | int]) -> str:
    """('spec', 'ports', 0, 'host') -> 'spec.ports[0].host', as errors name a field."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out

MANIFEST_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Limits:
    """Bounds on untrusted input; each breach is a clean per-file error."""

    max_file_bytes: int = 1024 * 1024
    max_files: int = 5000
    max_depth: int = 64
    max_nodes: int = 100_000  # per file (all its documents together), after alias expansion
    max_repo_nodes: int = 250_000  # all manifest files of the repository together, after alias expansion
    max_referenced_file_bytes: int = 256 * 1024  # env files and secret files
    max_delivered_file_bytes: int = 1024 * 1024  # a file delivered into containers (Service files)
    max_delivered_files: int = 256  # files below one folder delivered into containers
    max_delivered_bytes: int = 8 * 1024 * 1024  # all files delivered into one service's containers


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


Position = tuple[int, int]
Edge = tuple[int, str | int]  # (number of the containing mapping or list, key or index)


class Positions:
    """Line and column of every node and key of one document.

    Stored per edge (container number, key or index) rather than per full path, so the memory a node
    costs does not grow with how deeply it is nested; the node budget bounds the number of entries.
    A value copied from an alias or a merge key has the position of the alias (its inside has none).
    """

    __slots__ = ("root", "values", "keys")

    def __init__(self) -> None:
        self.root: Position | None = None
        self.values: dict[Edge, tuple[int, int, int]] = {}  # -> line, col, number of the child container
        self.keys: dict[Edge, Position] = {}

    def find(self, path: JsonPath, *, key: bool) -> Position | None:
        if self.root is None:
            return None
        best, container = self.root, 0
        for i, part in enumerate(path):
            if key and i == len(path) - 1 and (container, part) in self.keys:
                return self.keys[(container, part)]
            entry = self.values.get((container, part))
            if entry is None:
                break
            best, container = (entry[0], entry[1]), entry[2]
            if container < 0:  # a leaf, or a copy made by an alias: nothing deeper is recorded
                break
        return best


@dataclass(frozen=True)
class Document:
    """One YAML document of a manifest file, with the position of every node in it."""

    file: str  # path relative to the repository root, '/' separated
    index: int  # 0-based position of the document in its file
    line: int  # where the document starts (1-based)
    data: dict[str, Any]
    positions: Positions = field(default_factory=Positions, repr=False, compare=False)

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
        return self.positions.find(path, key=key) or (self.line, 1)

    def error(self, path: JsonPath, message: str, *, key: bool = False) -> ManifestError:
        line, col = self.where(path, key=key)
        return ManifestError(self.file, line, col, message)

    @property
    def origin(self) -> str:
        """FILE:LINE where the document names what it declares, as a plan shows it."""
        return f"{self.file}:{self.where(('metadata', 'name'))[0]}"


@dataclass
class LoadResult:
    documents: list[Document]
    errors: list[ManifestError]
    complete: bool = True  # False: a budget stopped the reading early, so documents may be missing
    files: list[str] = field(default_factory=list)  # every manifest file found, read or not


class _Refused(Exception):
    """Stops building one document; carries the located error."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


class NodeBudget:
    """How many YAML nodes may still be built; an alias costs the size of what it expands to.

    One budget is shared by every document of a file, another by every file of a repository: a
    budget per document let many small alias bombs in one file add up to gigabytes.
    """

    def __init__(self, limit: int, message: str) -> None:
        self.limit = limit
        self.message = message
        self.used = 0

    @property
    def exhausted(self) -> bool:
        return self.used > self.limit

    def charge(self, n: int, line: int, col: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise _Refused(line, col, self.message)


def file_budget(limits: Limits) -> NodeBudget:
    return NodeBudget(limits.max_nodes, f"too many YAML nodes: more than {limits.max_nodes} in this file "
                      "(an alias counts as the nodes it expands to); split the file or use fewer aliases")


def repo_budget(limits: Limits) -> NodeBudget:
    return NodeBudget(limits.max_repo_nodes, f"too many YAML nodes: more than {limits.max_repo_nodes} in all "
                      "manifest files together (an alias counts as the nodes it expands to); no further "
                      "files were read")


_RESOLVER = VersionedResolver(version=(1, 2))
_TAG = "tag:yaml.org,2002:"
_INT64 = 2 ** 63
_MAX_INT_CHARS = 64  # enough for any 64-bit integer, even in binary; longer ones are refused unparsed


def _clip(text: str, size: int = 24) -> str:
    return text if len(text) <= size else text[:size - 3] + "..."


def _resolve_int(text: str, line: int, col: int) -> int:
    clean = text.replace("_", "")
    sign = -1 if clean.startswith("-") else 1
    digits = clean.lstrip("+-")
    base = 10
    if digits.startswith(("0x", "0o", "0b")):
        base = {"x": 16, "o": 8, "b": 2}[digits[1]]
        digits = digits[2:]
    # Refuse by length before int(): str -> int is quadratic and raises past 4,300 decimal digits.
    value = sign * int(digits, base) if len(digits.lstrip("0")) <= _MAX_INT_CHARS else _INT64
    if not -_INT64 <= value < _INT64:
        raise _Refused(line, col, f"integer {_clip(text)} is out of range: numbers must fit in 64 bits "
                       f"({-_INT64} to {_INT64 - 1}); quote it if it is text")
    return value


def _resolve_float(text: str, line: int, col: int) -> float:
    lowered = text.lower().replace("_", "")
    value = float("nan") if lowered.endswith(".nan") else float(lowered.replace(".inf", "inf"))
    if not math.isfinite(value):  # .nan, .inf, and literals too large for a float such as 1e400
        raise _Refused(line, col, f"{_clip(text)} is not a finite number: NaN and infinities are not "
                       "allowed; write a number (or quote it if it is text)")
    return value


def _resolve_scalar(event: ev.ScalarEvent, line: int, col: int) -> Any:
    """YAML 1.2 core schema for plain scalars; quoted and block scalars are strings."""
    text = event.value
    if event.style or not event.implicit[0]:  # plain: style None (pure parser) or '' (libyaml)
        return text
    tag = _RESOLVER.resolve(ScalarNode, text, (True, False))
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "bool":
        return text.lower() == "true"
    if tag == _TAG + "int":
        return _resolve_int(text, line, col)
    if tag == _TAG + "float":
        return _resolve_float(text, line, col)
    return text


class _Frame:
    __slots__ = ("container", "number", "line", "col", "anchor", "key", "merges", "explicit", "nodes")

    def __init__(self, container: Any, number: int, line: int, col: int, anchor: str | None) -> None:
        self.container = container
        self.number = number  # identifies the container in Positions
        self.line, self.col = line, col
        self.anchor = anchor
        self.key: Any = _NO_KEY
        self.merges: list[Any] = []
        self.explicit: set[str] = set()
        self.nodes = 1


_NO_KEY = object()
_MERGE = object()


class _DocumentBuilder:
    """Builds plain dict/list/scalar trees from parser events, enforcing the limits as it goes."""

    def __init__(self, limits: Limits, budgets: tuple[NodeBudget, ...]) -> None:
        self.limits = limits
        self.budgets = budgets
        self.anchors: dict[str, tuple[Any, int]] = {}  # name -> (value, node count)
        self.open_anchors: set[str] = set()
        self.stack: list[_Frame] = []
        self.containers = 0
        self.root: Any = None
        self.positions = Positions()

    # -- helpers -----------------------------------------------------------------------------------
    def _count(self, n: int, line: int, col: int) -> None:
        for budget in self.budgets:
            budget.charge(n, line, col)

    def _child_edge(self) -> Edge | None:
        """Edge of the next value to be placed; None for the root of the document."""
        if not self.stack:
            return None
        top = self.stack[-1]
        if isinstance(top.container, list):
            return (top.number, len(top.container))
        return (top.number, "<<" if top.key is _MERGE else top.key)

    def _mark(self, line: int, col: int, child: int = -1, *, keep: bool = False) -> None:
        edge = self._child_edge()
        if edge is None:
            self.positions.root = (line, col)
        elif keep:
            self.positions.values.setdefault(edge, (line, col, child))
        else:
            self.positions.values[edge] = (line, col, child)

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
        if text == "<<" and not event.style and event.implicit[0]:
            top.key = _MERGE
            return
        if text in top.container or text in top.explicit:
            first = self.positions.keys.get((top.number, text), (0, 0))
            raise _Refused(line, col, f"duplicate key '{text}' (first defined at line {first[0]})")
        top.explicit.add(text)
        top.key = text
        self.positions.keys[(top.number, text)] = (line, col)

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
                        self.positions.values.setdefault((frame.number, k), (line, col, -1))
                        self.positions.keys.setdefault((frame.number, k), (line, col))

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
            self._mark(line, col, keep=True)
            self._place(copy.deepcopy(value), size, line, col)
            return

        if isinstance(event, ev.ScalarEvent):
            self._count(1, line, col)
            value = _resolve_scalar(event, line, col)
            self._mark(line, col)
            if event.anchor:
                self.anchors[event.anchor] = (value, 1)
            self._place(value, 1, line, col)
            return

        if isinstance(event, (ev.MappingStartEvent, ev.SequenceStartEvent)):
            self._count(1, line, col)
            if len(self.stack) >= self.limits.max_depth:
                raise _Refused(line, col, f"nesting deeper than {self.limits.max_depth} levels")
            number = self.containers
            self.containers += 1
            self._mark(line, col, number)
            container: Any = {} if isinstance(event, ev.MappingStartEvent) else []
            if event.anchor:
                self.open_anchors.add(event.anchor)
            self.stack.append(_Frame(container, number, line, col, event.anchor))
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


class _UnsupportedVersion(Exception):
    """A %YAML directive other than 1.1 or 1.2 (ruamel.yaml would fail an assert on it)."""


class _FlowDepthScanner(Scanner):
    """Refuses flow nesting past the depth limit as soon as it is scanned.

    ruamel.yaml's scanner does work proportional to the flow depth for every token and reads ahead
    through unclosed brackets, so 5,000 '[' took seconds before the builder saw the 65th level.
    """

    max_depth = DEFAULT_LIMITS.max_depth

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:  # noqa: N803 - ruamel's name
        if len(self.flow_context) >= self.max_depth:
            mark = self.reader.get_mark()
            raise _Refused(mark.line + 1, mark.column + 1, f"nesting deeper than {self.max_depth} levels")
        super().fetch_flow_collection_start(TokenClass, to_push)


class _YAML(YAML):
    """The parser sets ``version`` from a %YAML directive; refuse the versions ruamel.yaml asserts on."""

    @property
    def version(self) -> tuple[int, int] | None:
        return self._version

    @version.setter
    def version(self, value: Any) -> None:
        parsed = None if value is None else tuple(int(part) for part in value)  # the parser gives (1, 2)
        if parsed not in (None, (1, 1), (1, 2)):
            raise _UnsupportedVersion(".".join(str(part) for part in value))
        self._version = parsed


_DIRECTIVE = re.compile(r"^%YAML[ \t]+(\S+)", re.MULTILINE)


def _version_error(text: str, file: str, version: str) -> ManifestError:
    line = next((text.count("\n", 0, m.start()) + 1 for m in _DIRECTIVE.finditer(text)
                 if m.group(1) == version), 0)
    return ManifestError(file, line, 1 if line else 0, f"'%YAML {_clip(version)}' is not supported: gitops "
                         "reads YAML 1.2; remove the directive or write '%YAML 1.2'")


def _parse(text: str, file: str, limits: Limits, repo: NodeBudget | None, *, pure: bool) -> LoadResult | None:
    """The documents of one file with one parser; None when libyaml (``pure`` False) found the YAML invalid."""
    documents: list[Document] = []
    errors: list[ManifestError] = []
    # Either parser is fed lazily: the builder refuses the 65th level of nesting as its event arrives, before
    # libyaml's scanner (whose work per token grows with the flow depth) could be made to go deeper.
    yaml = _YAML(typ="safe", pure=pure)
    if pure:
        yaml.Scanner = type("_Scanner", (_FlowDepthScanner,), {"max_depth": limits.max_depth})
    budgets = (file_budget(limits),) + ((repo,) if repo is not None else ())
    builder: _DocumentBuilder | None = None
    doc_line = 1
    index = 0
    try:
        for event in yaml.parse(io.StringIO(text)):
            if isinstance(event, ev.DocumentStartEvent):
                version = getattr(event, "version", None)
                if version not in (None, (1, 1), (1, 2)):  # libyaml accepts any 1.x
                    raise _UnsupportedVersion(".".join(str(part) for part in version))
                builder = _DocumentBuilder(limits, budgets)
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
                    documents.append(Document(file, index, doc_line, root, builder.positions))
                index += 1
                builder = None
                continue
            if builder is not None:
                builder.feed(event)
    except _Refused as refused:
        errors.append(ManifestError(file, refused.line, refused.col, refused.message))
    except _UnsupportedVersion as exc:
        errors.append(_version_error(text, file, str(exc)))
    except YAMLError as exc:
        if not pure:
            return None  # the pure parser gives the answer, in YAML 1.2 and in its words
        if not isinstance(exc, MarkedYAMLError):
            errors.append(ManifestError(file, 0, 0, f"invalid YAML: {exc}"))
            return LoadResult(documents, errors)
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part) or "invalid YAML"
        errors.append(ManifestError(file, line, col, f"invalid YAML: {message}"))
    except RecursionError:
        errors.append(ManifestError(file, 0, 0, "invalid YAML: nested too deeply"))
    return LoadResult(documents, errors)


# libyaml reads YAML 1.1, where these three are line breaks; in YAML 1.2 they are characters of a value.
_BREAKS_IN_1_1_ONLY = re.compile("[\x85\u2028\u2029]")


def parse_documents(text: str, file: str, *, limits: Limits = DEFAULT_LIMITS,
                    repo: NodeBudget | None = None) -> LoadResult:
    """Parse every YAML document of one file. Pure: no file system access.

    The file's node budget is shared by all its documents; ``repo``, when given, is the budget of the
    whole repository and is charged too.

    libyaml (YAML 1.1) parses first when it is installed; whatever it refuses (``[a:/b]``, which YAML 1.2
    allows, or a real mistake) is parsed again by ruamel.yaml's pure YAML 1.2 parser, whose answer counts.
    Both feed the same builder, which resolves every scalar with the YAML 1.2 core schema.
    """
    if not _PURE and not _BREAKS_IN_1_1_ONLY.search(text):
        used = repo.used if repo is not None else 0
        fast = _parse(text, file, limits, repo, pure=False)
        if fast is not None:
            return fast
        if repo is not None:
            repo.used = used  # the nodes built before libyaml gave up are built again
    result = _parse(text, file, limits, repo, pure=True)
    assert result is not None
    return result


# ---------------------------------------------------------------------------------------------------
# The repository on disk


class RepoPathError(GitopsError, ValueError):
    """A path named by a manifest that cannot be used (outside the checkout, missing, too big)."""


def _shown(relative: str) -> str:
    """A path as an error quotes it: a repository can name a path of any length."""
    return repr(_clip(relative, 200))


def _in_git_folder(parts: tuple[str, ...]) -> bool:
    # Case-insensitive: on macOS and Windows '.GIT/config' opens .git/config.
    return any(part.lower() == ".git" for part in parts)


def _git_refused(relative: str) -> RepoPathError:
    return RepoPathError(f"{_shown(relative)} is inside a .git folder, which holds git's configuration and "
                         "credentials; it can never be read by a manifest")


def _resolve(path: Path, relative: str) -> Path:
    """``path.resolve()``, with the ways it fails on what a repository holds as RepoPathError."""
    try:
        return path.resolve()
    except RuntimeError as exc:  # Python 3.11 raises RuntimeError("Symlink loop from ...")
        raise RepoPathError(f"{_shown(relative)} is a symlink loop") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RepoPathError(f"{_shown(relative)} is a symlink loop") from exc
        raise RepoPathError(f"{_shown(relative)} cannot be resolved: {exc.strerror}") from exc
    except ValueError as exc:  # e.g. a lone surrogate from a "\ud800" escape cannot be a file name
        raise RepoPathError(f"{_shown(relative)} is not a valid path") from exc


def resolve_inside(root: Path, relative: str, *, base: str = "", folder_ok: bool = False) -> Path:
    """Resolve ``relative`` (relative to the folder of ``base``, a repo file) inside ``root``.

    Symlinks are followed; the final target must still lie inside the checkout, so a link to
    /etc/passwd or ../../secret is refused while a link to another file of the repo works. Nothing
    inside a .git folder is ever returned (as written, or after following symlinks): it holds the
    remote's credentials in CI.
    """
    if not relative or "\x00" in relative:
        raise RepoPathError("empty or invalid path")
    if os.path.isabs(relative):
        raise RepoPathError(f"{_shown(relative)} is absolute; name a file inside the repository instead")
    if _in_git_folder(Path(relative).parts):
        raise _git_refused(relative)
    real_root = root.resolve()
    start = (real_root / base).parent if base else real_root
    candidate = _resolve(start / relative, relative)
    if candidate != real_root and real_root not in candidate.parents:
        raise RepoPathError(f"{_shown(relative)} resolves outside the repository")
    if _in_git_folder(candidate.relative_to(real_root).parts):
        raise _git_refused(relative)
    try:
        is_file = candidate.is_file() or (folder_ok and candidate.is_dir())
    except (OSError, ValueError):  # e.g. a name longer than the file system allows
        is_file = False
    if not is_file:
        what = "file or folder" if folder_ok else "file"
        raise RepoPathError(f"{_shown(relative)} is not a {what} in the repository")
    return candidate


def read_repo_bytes(root: Path, relative: str, *, base: str = "", limits: Limits = DEFAULT_LIMITS) -> bytes:
    """A file a manifest names (env file, secret file), inside the checkout and within the size bound."""
    return _read_bounded(resolve_inside(root, relative, base=base), relative, limits.max_referenced_file_bytes)


def read_repo_file(root: Path, relative: str, *, base: str = "", limits: Limits = DEFAULT_LIMITS) -> str:
    raw = read_repo_bytes(root, relative, base=base, limits=limits)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RepoPathError(f"{_shown(relative)} is not UTF-8 text") from exc


def read_repo_tree(root: Path, relative: str, *, base: str = "",
                   limits: Limits = DEFAULT_LIMITS) -> list[tuple[str, bytes]]:
    """The bytes of a file of the repository, or of every file below a folder of it, to deliver into
    containers: ``[("", data)]`` for a file, ``[(path below the folder, data), ...]`` sorted for a folder.

    Every file, symlinks followed, must lie inside the checkout (and outside .git); hidden files are
    delivered too (a folder is copied as it is). Bounded by Limits.max_delivered_file_bytes per file and
    Limits.max_delivered_files per folder.
    """
    top = resolve_inside(root, relative, base=base, folder_ok=True)
    real_root = root.resolve()
    if top.is_file():
        return [("", _read_bounded(top, relative, limits.max_delivered_file_bytes))]
    out: list[tuple[str, bytes]] = []
    for folder, dirs, names in os.walk(top, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(names):
            below = Path(folder, name).relative_to(top).as_posix()
            shown = f"{relative.rstrip('/')}/{below}"
            if len(out) >= limits.max_delivered_files:
                raise RepoPathError(f"{_shown(relative)} holds more than {limits.max_delivered_files} files")
            path = resolve_inside(real_root, Path(folder, name).relative_to(real_root).as_posix())
            out.append((below, _read_bounded(path, shown, limits.max_delivered_file_bytes)))
    return out


def _read_bounded(path: Path, shown: str, allowed: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > allowed:
            raise RepoPathError(f"{_shown(shown)} is {size} bytes, more than the {allowed} allowed")
        with path.open("rb") as handle:
            raw = handle.read(allowed + 1)  # the file may have grown since stat
    except OSError as exc:
        raise RepoPathError(f"{_shown(shown)} cannot be read: {exc.strerror}") from exc
    if len(raw) > allowed:
        raise RepoPathError(f"{_shown(shown)} is more than the {allowed} bytes allowed")
    return raw


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
        if len(raw) > limits.max_file_bytes:  # it grew since stat
            return None, ManifestError(relative, 0, 0, f"file is more than the {limits.max_file_bytes} bytes "
                                       "allowed for one manifest file")
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
    """Every manifest document below ``root``, with every error found (not only the first).

    All files share one node budget (Limits.max_repo_nodes): once it is spent, no further file is read.
    """
    result = LoadResult([], [])
    if not root.is_dir():
        result.errors.append(ManifestError(str(root), 0, 0, "not a folder"))
        return result
    budget = repo_budget(limits)
    for relative, text, error in iter_manifest_texts(root, limits=limits):
        result.files.append(relative)
        if error is not None:
            result.errors.append(error)
            continue
        assert text is not None
        parsed = parse_documents(text, relative, limits=limits, repo=budget)
        result.documents.extend(parsed.documents)
        result.errors.extend(parsed.errors)
        if budget.exhausted:
            result.complete = False
            break
    return result
