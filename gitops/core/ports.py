"""What the engine needs from the edges: a Docker host, a source of commits and a store of records.

The engine is written against these Protocols, not against docker-py, git or sqlite: gitops.hosts.docker
implements ``Host`` for a real Docker Engine, gitops.testing.FakeHost for tests that need none, and
gitops.source and gitops.state implement the other two. Pure: types only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gitops.core.model import HostObservation, NetworkSpec, ObservedContainer, ServiceSpec, VolumeSpec


@dataclass(frozen=True)
class Created:
    """What ``Host.create_container`` made: the container's id, and whether it already existed.

    ``adopted`` is True when the name was taken by this project's own container of the same spec (left by
    an interrupted pass) and that container was taken over instead of creating another. Only containers
    gitops really created are trusted without an inspect later (a hand-made copy may carry our labels).
    """

    id: str
    adopted: bool = False


@dataclass(frozen=True)
class LeaseState:
    acquired: bool
    holder: str
    expires_at: float


@dataclass(frozen=True)
class Checkout:
    """One commit of the source, written to a folder of its own that nothing changes afterwards."""

    commit: str
    root: Path  # the folder written for this commit: the --path folder of its tree
    path: Path  # where the manifests are (the same folder)


class Host(Protocol):
    """One Docker host, as the engine uses it. Every call may raise gitops.errors.HostError; calls about one
    container raise gitops.errors.NotFound when it does not exist, except stop and remove (gone is done)."""

    name: str

    def observe(self, project: str, *, want_networks: Iterable[str] = (),
                want_volumes: Iterable[str] = ()) -> HostObservation: ...
    def ensure_image(self, image: str, policy: str) -> None: ...
    def create_container(self, project: str, svc: ServiceSpec, slot: int, revision: str,
                         networks: dict[str, str] | None = None) -> Created: ...
    def start(self, ref: str) -> None: ...
    def stop(self, ref: str, *, timeout: float) -> None: ...
    def remove(self, ref: str) -> None: ...
    def inspect(self, ref: str) -> dict[str, Any]: ...
    def logs(self, ref: str, *, tail: int = 20) -> str: ...
    def probe_address(self) -> str: ...
    def create_network(self, project: str, net: NetworkSpec) -> None: ...
    def create_volume(self, project: str, vol: VolumeSpec) -> None: ...
    def remove_volume(self, project: str, vol_name: str) -> None: ...
    def settings_drift(self, project: str, svc: ServiceSpec, container: ObservedContainer,
                       image_env: dict[str, list[str]]) -> tuple[str, ...]: ...
    def container_events(self, project: str, stop: threading.Event) -> Iterable[dict[str, Any]]: ...
    def lease_acquire(self, project: str, holder: str, ttl: float, now: float, *,
                      holder_gone: Callable[[str], bool] = ...) -> LeaseState: ...
    def lease_renew(self, project: str, holder: str, ttl: float, now: float) -> None: ...
    def lease_release(self, project: str, holder: str) -> None: ...
    def close(self) -> None: ...


class Source(Protocol):
    """Where commits come from: a git remote (gitops.source.GitSource) or a local folder."""

    display_url: str
    ref: str

    def fetch(self) -> Checkout: ...
    def fetch_commit(self, commit_or_ref: str) -> Checkout: ...


class ApplyRecords(Protocol):
    """The part of the state store the apply path writes (gitops.state.StateStore implements it)."""

    def begin_pass(self, trigger: str, *, now: float | None = None) -> int: ...
    def finish_pass(self, pass_id: int, *, revision: str, outcome: str, summary: dict[str, Any] | None = None,
                    services: dict[str, str] | None = None, error: str = "",
                    details: dict[str, dict[str, str]] | None = None, pins: dict[str, str] | None = None,
                    images: dict[str, str] | None = None, now: float | None = None) -> None: ...
    def record_good(self, services: dict[str, str], revision: str, *, now: float | None = None) -> None: ...
    def trusted_containers(self) -> dict[str, str]: ...
    def trust_containers(self, ids: dict[str, str], *, present: dict[str, set[str]] | None = None,
                         now: float | None = None) -> None: ...


class DigestResolver(Protocol):
    """Looks a tag up on its registry (gitops.hosts.registry.RegistryClient). Raises a GitopsError whose
    ``temporary`` says whether asking again later may help."""

    def resolve(self, image: str) -> str: ...
