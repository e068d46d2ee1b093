"""The locally built images the example and the tests rely on exist and behave (real engine)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("tag, expected", [("local/web:1", b"web v1\n"), ("local/web:2", b"web v2\n")])
def test_web_images_serve_their_version(docker_client, tag: str, expected: bytes) -> None:
    out = docker_client.containers.run(tag, ["cat", "/www/index.html"], remove=True,
                                       labels={"io.gitops.test": "images"})
    assert out == expected


def test_busybox_base_has_the_tools(docker_client) -> None:
    out = docker_client.containers.run("local/busybox:1", ["sh", "-c", "for t in httpd wget nc sleep; do command -v $t; done | wc -l"],
                                       remove=True, labels={"io.gitops.test": "images"})
    assert out.strip() == b"4"
