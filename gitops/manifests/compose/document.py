"""A gitops/v1 document made from a compose file, whose errors point into the compose file(s).

Every check after the compose front end (the gitops schema, the semantic checks, policy, building the
model) locates its errors with ``Document.error(path)``, a path in the gitops document. Here that path is
translated back to the compose field it was made from (``spec.ports[0]`` -> ``services.web.ports[0]``),
in the file that field came from (a stack may merge several files), and the message names the compose path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gitops.manifests.parse import Document, JsonPath, ManifestError, Positions, format_path

Origin = tuple[str, Positions]  # the compose file a part came from, and its positions


@dataclass(frozen=True)
class ComposeDocument(Document):
    # gitops path prefix -> (compose path it came from, whether the rest of the path runs in parallel)
    sources: dict[JsonPath, tuple[JsonPath, bool]] = field(default_factory=dict, repr=False, compare=False)
    # compose path prefix -> the file (and positions) that defined it last
    origins: dict[JsonPath, Origin] = field(default_factory=dict, repr=False, compare=False)

    def compose_path(self, path: JsonPath) -> JsonPath:
        for size in range(len(path), -1, -1):
            found = self.sources.get(tuple(path[:size]))
            if found is not None:
                target, parallel = found
                return target + tuple(path[size:]) if parallel else target
        return ()

    def locate(self, path: JsonPath, *, key: bool = False) -> tuple[str, int, int]:
        target = self.compose_path(path)
        key = key or tuple(path) == ("metadata", "name")  # the name of a compose service is its key
        for size in range(len(target), -1, -1):
            origin = self.origins.get(tuple(target[:size]))
            if origin is not None:
                file, positions = origin
                line, col = positions.find(target, key=key) or (self.line, 1)
                return file, line, col
        return self.file, self.line, 1

    @property
    def origin(self) -> str:
        file, line, _ = self.locate(("metadata", "name"))
        return f"{file}:{line}"

    def where(self, path: JsonPath, *, key: bool = False) -> tuple[int, int]:
        return self.locate(path, key=key)[1:]

    def error(self, path: JsonPath, message: str, *, key: bool = False) -> ManifestError:
        file, line, col = self.locate(path, key=key)
        shown = format_path(path)
        if shown and message.startswith(shown):  # name the field as the compose file spells it
            message = format_path(self.compose_path(path)) + message[len(shown):]
        return ManifestError(file, line, col, message)


def compose_error(origin: Origin, path: JsonPath, message: str, *, key: bool = False) -> ManifestError:
    """An error about a compose file itself (before mapping): at ``path`` in it, the message as given."""
    file, positions = origin
    line, col = positions.find(path, key=key) or (1, 1)
    return ManifestError(file, line, col, message)
