"""One root for gitops' errors, one word for "retrying may help", and Docker's answers mapped by status
code (404, 409) to classes on a real engine, never by matching their text."""

from __future__ import annotations

import pytest

from gitops.core.model import LABEL_MANAGED, LABEL_PROJECT, HostSpec, container_name, ephemeral_key
from gitops.core.observed import SnapshotError
from gitops.core.planner import PlanError
from gitops.engine.health import HealthFailure
from gitops.errors import Conflict, GitopsError, HostError, HostUnreachable, NameConflict, NotFound
from gitops.hosts.docker import DockerHost
from gitops.manifests.load import load_repo
from gitops.manifests.parse import RepoPathError
from gitops.secret_key import SecretKeyError
from gitops.source import SourceError
from gitops.state import StateError
from tests.conftest import service


@pytest.mark.parametrize("cls", [HostError, HostUnreachable, NotFound, Conflict, NameConflict, SourceError,
                                 StateError, SecretKeyError, HealthFailure, PlanError, SnapshotError,
                                 RepoPathError])
def test_every_error_of_gitops_has_one_root(cls: type[Exception]) -> None:
    assert issubclass(cls, GitopsError)


def test_temporary_says_whether_retrying_may_help() -> None:
    assert HostUnreachable("h", "connection refused").temporary
    assert not NotFound("h", "no such container").temporary
    assert not NameConflict("h", "taken").temporary
    assert HostError("h", "500", temporary=True).temporary
    assert StateError("disk full").temporary
    assert SourceError("timeout").temporary
    assert not SourceError("too large", revision="abc").temporary  # a property of the commit: permanent
    assert not PlanError("refused").temporary
    assert HealthFailure("exit 143", temporary=True).temporary and not HealthFailure("unhealthy").temporary
    assert str(HostUnreachable("h1", "timed out")) == "h1: timed out"


def test_value_errors_stay_value_errors() -> None:
    """SnapshotError and RepoPathError were ValueErrors before they were GitopsErrors: callers catching
    ValueError still catch them."""
    assert issubclass(SnapshotError, ValueError) and issubclass(RepoPathError, ValueError)


@pytest.mark.docker
def test_docker_404_and_409_are_classes_and_a_taken_name_is_adopted_or_refused(
        docker_client, repo, project_name) -> None:
    outcome = load_repo(repo({"web.yaml": service("web")}), revision="r1", key=ephemeral_key())
    assert outcome.desired is not None, outcome.errors
    svc = outcome.desired.service("web")
    host = DockerHost(HostSpec("local", ""))
    try:
        with pytest.raises(NotFound) as missing:
            host.inspect("gitops-test-no-such-container")
        assert str(missing.value).startswith("local: inspect gitops-test-no-such-container: ")
        host.stop("gitops-test-no-such-container", timeout=1)  # gone is done
        host.remove("gitops-test-no-such-container")

        made = host.create_container(project_name, svc, 0, "r1")
        assert not made.adopted
        again = host.create_container(project_name, svc, 0, "r1")  # a pass that died after its create
        assert (again.id, again.adopted) == (made.id, True)

        with pytest.raises(Conflict):  # a name docker refuses twice, asked directly
            host._call("create", host.client.create_container, "local/web:1", name=container_name(project_name, "web", 0, svc.spec_hash))

        stranger = docker_client.containers.create("local/web:1", name=container_name(project_name, "web", 1,
                                                                                         svc.spec_hash),
                                                   labels={LABEL_MANAGED: "true", LABEL_PROJECT: "someone-else"})
        with pytest.raises(NameConflict) as taken:
            host.create_container(project_name, svc, 1, "r1")
        assert "is not managed by project" in str(taken.value) and not taken.value.temporary
        stranger.remove(force=True)
    finally:
        host.close()

