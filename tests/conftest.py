"""Shared fixtures. Docker tests fail (never skip) when CI=true and the engine is missing."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.registryutil import registry  # noqa: F401 - the session fixture: a TLS registry with a password
from tests.swarmutil import swarm_cluster  # noqa: F401 - a two-node Swarm, per test module

PROJECT = """\
apiVersion: gitops/v1
kind: Project
metadata:
  name: test
"""


def write_files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Callable[..., Path]:
    """Write manifest files into a new folder per call; a Project document is added unless given."""
    count = [0]

    def make(files: dict[str, str], *, project: bool = True) -> Path:
        count[0] += 1
        root = tmp_path / ("repo" if count[0] == 1 else f"repo{count[0]}")
        root.mkdir()
        if project:
            files = {"project.yaml": PROJECT, **files}
        return write_files(root, files)

    return make


def service(name: str, body: str = "", *, image: str = "local/web:1") -> str:
    """A Service document; ``body`` is extra YAML under spec (indented by two spaces)."""
    extra = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ") + "\n" if body.strip() else ""
    return (f"apiVersion: gitops/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n"
            f"  image: {image}\n{extra}")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def docker_client():
    """A client for the local engine. In CI a missing engine fails the test; elsewhere it skips."""
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the engine means the same here
        if in_ci():
            pytest.fail(f"Docker Engine not reachable in CI: {exc}")
        pytest.skip(f"Docker Engine not reachable: {exc}")
    yield client
    client.close()


# --- engine fixtures: real Docker, unique project names, everything removed afterwards --------------------

@pytest.fixture
def project_name(docker_client) -> str:
    """A unique project; every container, network and volume labelled with it is removed after the test."""
    import uuid

    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    purge_project(docker_client, name)


def purge_project(client, name: str) -> None:
    """By id from the list calls: docker-py's high-level lists inspect each item, and one that goes away meanwhile
    (a Swarm task's container, an overlay network being removed) would fail the list."""
    import contextlib

    import docker.errors

    label = f"io.gitops.project={name}"
    api = client.api
    for c in api.containers(all=True, filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(c["Id"], force=True)
    for n in api.networks(filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            try:
                api.remove_network(n["Id"])
            except docker.errors.APIError as exc:
                if "not found" not in str(exc):
                    raise
    for v in (api.volumes(filters={"label": label}) or {}).get("Volumes") or []:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_volume(v["Name"], force=True)


@pytest.fixture
def deploy(repo, project_name):
    """Write manifests (project named ``project_name``), then plan and apply them on the real engine."""
    from tests.deployer import Deployer

    return Deployer(repo, project_name)


@pytest.fixture(scope="session")
def second_engine(docker_client):
    """A second Docker Engine (scripts/second-engine.sh): its unix URL, TLS tcp URL and certs folder."""
    import subprocess

    script = Path(__file__).resolve().parent.parent / "scripts" / "second-engine.sh"
    proc = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"second engine did not start: {proc.stderr[-2000:]}")
    unix_url, tcp_url, certs = proc.stdout.split()
    import docker

    client = docker.DockerClient(base_url=unix_url, version="auto")
    yield {"unix": unix_url, "tcp": tcp_url, "certs": Path(certs), "client": client}
    client.close()
    subprocess.run(["bash", str(script), "stop"], capture_output=True, timeout=60)


@pytest.fixture(autouse=True)
def _state_home(tmp_path: Path, monkeypatch) -> None:
    """gitops' default state directory ($XDG_STATE_HOME/gitops) points into the test's own folder."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
