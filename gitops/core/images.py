"""Image references as Docker reads them: ``nginx``, ``ghcr.io/a/b:1.2``, ``host:5000/app@sha256:...``.

Pure: no I/O. The grammar is Docker's (distribution's reference package): the first path component
is a registry only when it contains "." or ":" or is "localhost"; otherwise the image is on Docker
Hub ("docker.io"), where a single-component name lives under "library/". A reference with neither
tag nor digest means tag "latest"; ``name:tag@sha256:...`` keeps both (Docker pulls by the digest).
Repository names must be lowercase, as Docker requires; the registry part is kept as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
# Spellings of Docker Hub found in docker configs and old references, all meaning DOCKER_HUB.
_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API})
DEFAULT_TAG = "latest"
NAME_MAX = 255  # distribution's limit on "registry/repository"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = re.compile(rf"{_HOST}(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_ANY_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_IMAGE_ID = re.compile(r"[0-9a-f]{64}")


def is_digest(text: object) -> bool:
    """True for a content digest as registries serve them: ``sha256:`` and 64 lowercase hex digits."""
    return isinstance(text, str) and _SHA256.fullmatch(text) is not None


@dataclass(frozen=True)
class ImageRef:
    """One parsed image reference, normalised the way Docker does (see ``parse_image``)."""

    registry: str  # "docker.io" for Docker Hub, else "host[:port]" as written
    repository: str  # "library/nginx" for Hub official images
    tag: str  # "" when only a digest is given
    digest: str  # "sha256:<64 hex>" or ""

    @property
    def api_host(self) -> str:
        """Where the registry's HTTP API answers: Docker Hub's API is not on docker.io itself."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """The name as Docker shows it: "nginx", "user/app" on Docker Hub, "ghcr.io/a/b" elsewhere."""
        if self.registry != DOCKER_HUB:
            return f"{self.registry}/{self.repository}"
        rest = self.repository.removeprefix("library/")
        if rest != self.repository and "/" not in rest:
            return rest
        return self.repository

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_image(text: str) -> ImageRef:
    """Parse an image reference the way ``docker pull`` does; ``ValueError`` says what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"image reference must be a string, not {type(text).__name__}")
    shown = text if len(text) <= 300 else text[:300] + "..."
    if not text:
        raise ValueError("image reference is empty")
    if any(ch.isspace() for ch in text) or not text.isprintable():
        raise ValueError(f"invalid image reference {shown!r}: it contains whitespace or control characters")
    if "://" in text:
        raise ValueError(f"invalid image reference {shown!r}: give host/repository, without a URL scheme")
    if _IMAGE_ID.fullmatch(text):
        raise ValueError(f"invalid image reference {shown!r}: a 64-character hexadecimal string is an image ID, "
                         f"not a name (write sha256:... after '@' to name an image by digest)")

    name, at, digest = text.partition("@")
    if at:
        if not _ANY_DIGEST.fullmatch(digest):
            raise ValueError(f"invalid image reference {shown!r}: {digest!r} after '@' is not a digest "
                             f"(expected sha256:<64 hex digits>)")
        if not is_digest(digest):
            raise ValueError(f"invalid image reference {shown!r}: only sha256 digests of 64 lowercase hex digits "
                             f"are supported, got {digest!r}")

    tag = ""
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise ValueError(f"invalid image reference {shown!r}: tag {tag!r} is not valid (letters, digits, "
                             f"'_', '.', '-'; at most 128; not starting with '.' or '-')")
    if not name:
        raise ValueError(f"invalid image reference {shown!r}: the name is missing")

    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
        if not _DOMAIN.fullmatch(registry):
            raise ValueError(f"invalid image reference {shown!r}: {registry!r} is not a valid registry "
                             f"host[:port]")
    else:
        registry, repository = DOCKER_HUB, name
    if registry == "index.docker.io":  # the legacy spelling; Docker rewrites only this one
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"

    if not _REPOSITORY.fullmatch(repository):
        if _REPOSITORY.fullmatch(repository.lower()):
            raise ValueError(f"invalid image reference {shown!r}: repository name must be lowercase")
        raise ValueError(f"invalid image reference {shown!r}: repository {repository!r} is not valid (lowercase "
                         f"letters and digits, separated by '.', '_', '__', '-' or '/')")
    if len(registry) + 1 + len(repository) > NAME_MAX:
        raise ValueError(f"invalid image reference {shown!r}: the name is longer than {NAME_MAX} characters")

    if not tag and not digest:
        tag = DEFAULT_TAG
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)


def pinned(ref: ImageRef | str, digest: str) -> str:
    """What a container is created from once the tag is resolved: ``<name>@sha256:...`` (tag dropped)."""
    if isinstance(ref, str):
        ref = parse_image(ref)
    if not is_digest(digest):
        raise ValueError(f"cannot pin {ref}: {digest!r} is not a sha256 digest")
    if ref.digest and ref.digest != digest:
        raise ValueError(f"cannot pin {ref} to {digest}: the reference already names another digest")
    return f"{ref.name}@{digest}"


def normalize_registry(text: str) -> str:
    """The key a registry is known by: "docker.io" for any spelling of Docker Hub, else "host[:port]".

    Accepts what docker configs and people write: ``https://index.docker.io/v1/``, ``registry-1.docker.io``,
    ``https://ghcr.io``, ``host:5000/``. Hostnames compare case-insensitively, so the key is lowercase.
    """
    value = text.strip()
    for scheme in ("https://", "http://"):
        if value.lower().startswith(scheme):
            value = value[len(scheme):]
            break
    value = value.split("/", 1)[0].lower()
    if not value or not _DOMAIN.fullmatch(value):
        raise ValueError(f"{text!r} is not a registry host[:port] (for Docker Hub write docker.io)")
    return DOCKER_HUB if value in _HUB_ALIASES else value
