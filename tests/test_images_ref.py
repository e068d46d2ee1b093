"""Image references parse as Docker reads them (gitops.core.images; pure, no engine)."""

from __future__ import annotations

import pytest

from gitops.core.images import ImageRef, is_digest, normalize_registry, parse_image, pinned

D = "sha256:" + "0123456789abcdef" * 4
D2 = "sha256:" + "f" * 64


@pytest.mark.parametrize("text, registry, repository, tag, digest", [
    # Docker Hub: official images under library/, default tag latest
    ("nginx", "docker.io", "library/nginx", "latest", ""),
    ("nginx:1.25", "docker.io", "library/nginx", "1.25", ""),
    ("nginx:latest", "docker.io", "library/nginx", "latest", ""),
    ("library/nginx", "docker.io", "library/nginx", "latest", ""),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest", ""),
    ("docker.io/library/nginx:1", "docker.io", "library/nginx", "1", ""),
    ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", ""),
    ("user/app", "docker.io", "user/app", "latest", ""),
    ("user/app:v2", "docker.io", "user/app", "v2", ""),
    ("docker.io/user/app/sub", "docker.io", "user/app/sub", "latest", ""),
    # registry only when the first component has "." or ":" or is localhost
    ("ghcr.io/owner/app:1.2.3", "ghcr.io", "owner/app", "1.2.3", ""),
    ("registry.example.com/shop/api:1.4.2", "registry.example.com", "shop/api", "1.4.2", ""),
    ("host:5000/app", "host:5000", "app", "latest", ""),
    ("10.0.0.1:5000/team/app:t", "10.0.0.1:5000", "team/app", "t", ""),
    ("localhost/app", "localhost", "app", "latest", ""),
    ("localhost:5000/app:dev", "localhost:5000", "app", "dev", ""),
    ("[::1]:5000/app:1", "[::1]:5000", "app", "1", ""),
    ("[fe80::1]/app", "[fe80::1]", "app", "latest", ""),
    ("My.Registry.io/app", "My.Registry.io", "app", "latest", ""),  # the host part keeps its case, as in Docker
    ("localhost", "docker.io", "library/localhost", "latest", ""),  # no slash: a Hub name, not a registry
    ("foo:5000", "docker.io", "library/foo", "5000", ""),  # no slash: 5000 is a tag
    ("registry-1.docker.io/nginx", "registry-1.docker.io", "nginx", "latest", ""),  # Docker rewrites only index.docker.io
    # digests
    (f"nginx@{D}", "docker.io", "library/nginx", "", D),
    (f"nginx:1.25@{D}", "docker.io", "library/nginx", "1.25", D),
    (f"host:5000/app@{D}", "host:5000", "app", "", D),
    (f"host:5000/app:t@{D}", "host:5000", "app", "t", D),
    # separators Docker allows inside components
    ("a_b/c__d/e-f/g---h/i.j", "docker.io", "a_b/c__d/e-f/g---h/i.j", "latest", ""),
    ("app:V1_x.y-Z", "docker.io", "library/app", "V1_x.y-Z", ""),
    ("app:" + "t" * 128, "docker.io", "library/app", "t" * 128, ""),
])
def test_parse(text, registry, repository, tag, digest) -> None:
    assert parse_image(text) == ImageRef(registry, repository, tag, digest)


@pytest.mark.parametrize("text, message", [
    ("", "image reference is empty"),
    ("Nginx", "repository name must be lowercase"),
    ("user/App:1", "repository name must be lowercase"),
    ("ghcr.io/Owner/app", "repository name must be lowercase"),
    ("nginx:", "tag '' is not valid"),
    ("nginx:.x", "tag '.x' is not valid"),
    ("nginx:-x", "tag '-x' is not valid"),
    ("nginx:a/b", "'nginx:a' is not a valid registry"),
    ("app:" + "t" * 129, "is not valid"),
    ("nginx@sha256:abc", "is not a digest"),
    ("nginx@", "is not a digest"),
    ("nginx@" + "a" * 64, "is not a digest"),
    ("nginx@sha512:" + "a" * 128, "only sha256 digests"),
    ("nginx@sha256:" + "A" * 64, "only sha256 digests"),
    ("nginx@sha256:" + "a" * 63, "only sha256 digests"),
    (f"nginx@{D}@{D}", "is not a digest"),
    ("a" * 64, "is an image ID"),
    ("https://ghcr.io/a/b", "without a URL scheme"),
    ("nginx latest", "whitespace"),
    (" nginx", "whitespace"),
    ("nginx\n", "whitespace"),
    ("ngi\x00nx", "control characters"),
    ("/nginx", "repository"),
    ("nginx/", "repository"),
    ("a//b", "repository"),
    ("-a/b", "repository"),
    ("a-/b", "repository"),
    ("a..b", "repository"),
    ("a___b", "repository"),
    ("ghcr.io/", "repository"),
    ("ghcr.io:port/app", "'ghcr.io:port' is not a valid registry"),
    ("-bad.io/app", "'-bad.io' is not a valid registry"),
    ("bad..io/app", "is not a valid registry"),
    (":tag", "the name is missing"),
    ("@" + D, "the name is missing"),
    ("h.io/" + "a" * 251, "longer than 255 characters"),
])
def test_refused(text, message) -> None:
    with pytest.raises(ValueError) as info:
        parse_image(text)
    assert message in str(info.value)


def test_name_length_limit_counts_registry_and_repository() -> None:
    assert parse_image("h.io/" + "a" * 250).repository == "a" * 250  # 4 + 1 + 250 = 255


def test_error_shows_long_input_shortened() -> None:
    with pytest.raises(ValueError) as info:
        parse_image("X" * 5000)
    assert len(str(info.value)) < 500


def test_not_a_string() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_image(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("text, name, shown", [
    ("nginx", "nginx", "nginx:latest"),
    ("docker.io/library/nginx:1", "nginx", "nginx:1"),
    ("user/app:2", "user/app", "user/app:2"),
    ("library/a/b", "library/a/b", "library/a/b:latest"),  # "library/" stripped only for one component
    ("ghcr.io/a/b", "ghcr.io/a/b", "ghcr.io/a/b:latest"),
    ("host:5000/app:t", "host:5000/app", "host:5000/app:t"),
    (f"nginx:1@{D}", "nginx", f"nginx:1@{D}"),
    (f"host:5000/app@{D}", "host:5000/app", f"host:5000/app@{D}"),
])
def test_name_and_str(text, name, shown) -> None:
    ref = parse_image(text)
    assert ref.name == name
    assert str(ref) == shown
    assert parse_image(str(ref)) == ref  # what is shown parses back to the same reference


@pytest.mark.parametrize("text, api_host", [
    ("nginx", "registry-1.docker.io"),
    ("index.docker.io/user/app", "registry-1.docker.io"),
    ("ghcr.io/a/b", "ghcr.io"),
    ("172.17.0.1:5000/app", "172.17.0.1:5000"),
    ("[::1]:5000/app", "[::1]:5000"),
])
def test_api_host(text, api_host) -> None:
    assert parse_image(text).api_host == api_host


def test_pinned() -> None:
    assert pinned(parse_image("nginx:1.25"), D) == f"nginx@{D}"
    assert pinned("ghcr.io/a/b:1", D) == f"ghcr.io/a/b@{D}"
    assert pinned("host:5000/app:t", D) == f"host:5000/app@{D}"
    assert pinned(f"nginx:1@{D}", D) == f"nginx@{D}"  # already pinned to the same digest
    pinned_ref = parse_image(pinned("user/app:2", D))
    assert (pinned_ref.repository, pinned_ref.tag, pinned_ref.digest) == ("user/app", "", D)


def test_pinned_refuses_what_is_not_a_digest_or_another_digest() -> None:
    with pytest.raises(ValueError, match="is not a sha256 digest"):
        pinned("nginx", "latest")
    with pytest.raises(ValueError, match="already names another digest"):
        pinned(f"nginx@{D}", D2)


@pytest.mark.parametrize("value, expected", [
    (D, True), (D2, True),
    ("sha256:" + "A" * 64, False), ("sha256:" + "a" * 65, False), ("sha256:" + "a" * 63, False),
    ("sha512:" + "a" * 64, False), ("a" * 64, False), ("", False), (None, False), (" " + D, False), (D + "\n", False),
])
def test_is_digest(value, expected) -> None:
    assert is_digest(value) is expected


@pytest.mark.parametrize("text, key", [
    ("docker.io", "docker.io"),
    ("index.docker.io", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
    ("https://index.docker.io/v1/", "docker.io"),
    ("Docker.IO", "docker.io"),
    ("ghcr.io", "ghcr.io"),
    ("https://GHCR.io/", "ghcr.io"),
    ("http://host:5000", "host:5000"),
    ("host:5000/", "host:5000"),
    ("172.17.0.1:5000", "172.17.0.1:5000"),
    ("[::1]:5000", "[::1]:5000"),
])
def test_normalize_registry(text, key) -> None:
    assert normalize_registry(text) == key


@pytest.mark.parametrize("text", ["", "   ", "https://", "host:port", "-bad.io", "a b"])
def test_normalize_registry_refuses(text) -> None:
    with pytest.raises(ValueError, match="is not a registry host"):
        normalize_registry(text)
