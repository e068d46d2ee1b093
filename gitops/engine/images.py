"""Tags to digests, before each plan: what `resolve: digest` (the default with `pullPolicy: always`) means.

A tag such as ``app:1.4`` or ``:latest`` may point at another image tomorrow. For the services that ask, the
tag is looked up on its registry (gitops.hosts.registry, with the registry's credentials) and the digest it
names now becomes part of the service's spec: the plan shows ``image app:1.4 (sha256:ab12.. -> sha256:cd34..)``
when the tag moved, the rollout goes through the health gates like any change, containers are created from
``name@sha256:..`` and history records the digest, so a rollback runs the exact image, not what the tag means
by then.

When a registry cannot answer, a service keeps the digest its containers run now (the same tag), with a warning
in the plan; a service with no such container cannot be planned, and the pass fails (temporary when the
registry was unreachable, so the next pass tries again). `plan --base`, which has no hosts, plans such a
service by its tag and says that its digest is unknown.

:func:`pin_and_observe` is the one entry point: the daemon's pass, `plan`, `apply` and `status` all call it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from gitops.core.model import DesiredState, ObservedState, ServiceSpec, spec_image
from gitops.core.ports import DigestResolver
from gitops.errors import GitopsError

MAX_LOOKUPS_IN_FLIGHT = 8


class DigestUnavailable(GitopsError):
    """Some service's tag could not be looked up on its registry, and nothing runs that could stand in."""


def needs_digest(desired: DesiredState) -> list[ServiceSpec]:
    return [s for s in desired.services if s.resolve == "digest" and not s.digest]


def running_digests(observed: ObservedState | None) -> dict[tuple[str, str], str]:
    """(service, image as declared) -> the digest its containers (or its Swarm service) were made from, read from
    their spec label."""
    out: dict[tuple[str, str], str] = {}
    for host in observed.hosts if observed else ():
        made = [(c.service, c.spec_json) for c in host.containers] + [(s.service, s.spec_json) for s in host.services]
        for service, spec_json in made:
            declared, digest = spec_image(spec_json)
            if digest:
                out[(service, declared)] = digest
    return out


def resolve_digests(desired: DesiredState, resolver: DigestResolver
                    ) -> tuple[DesiredState, dict[str, GitopsError]]:
    """``desired`` with each service that asks for it pinned to its tag's digest now; and, per service whose
    registry did not answer, why. Services that already carry a digest (held by a pin) are left as they are."""
    todo = needs_digest(desired)
    if not todo:
        return desired, {}
    found = _lookup(sorted({s.image for s in todo}), resolver)
    failures: dict[str, GitopsError] = {}
    pinned: dict[str, ServiceSpec] = {}
    for svc in todo:
        result = found[svc.image]
        if isinstance(result, str):
            pinned[svc.name] = dataclasses.replace(svc, digest=result)
        else:
            failures[svc.name] = result
    services = tuple(pinned.get(s.name, s) for s in desired.services)
    return dataclasses.replace(desired, services=services), failures


def stand_in(desired: DesiredState, failures: Mapping[str, GitopsError], observed: ObservedState | None, *,
             unresolved_ok: bool = False) -> tuple[DesiredState, tuple[str, ...]]:
    """Services whose registry did not answer keep the digest their containers run (same tag), with a warning.

    With none running, DigestUnavailable is raised (temporary when every registry was only unreachable),
    unless ``unresolved_ok`` (a plan with no hosts, `plan --base`): the service is then planned by its tag,
    and the warning says the digest is unknown.
    """
    if not failures:
        return desired, ()
    running = running_digests(observed)
    warnings: list[str] = []
    problems: list[GitopsError] = []
    pinned: dict[str, ServiceSpec] = {}
    for svc in desired.services:
        problem = failures.get(svc.name)
        if problem is None:
            continue
        digest = running.get((svc.name, svc.image))
        if digest:
            pinned[svc.name] = dataclasses.replace(svc, digest=digest)
            warnings.append(f"{svc.name}: {problem}; it keeps the digest its containers run, {_short(digest)}")
        elif unresolved_ok:
            warnings.append(f"{svc.name}: digest not resolved, planned by its tag: {problem}")
        else:
            problems.append(problem)
    if problems:
        unique = list(dict.fromkeys(str(p) for p in problems))
        raise DigestUnavailable("cannot resolve image digests: " + "; ".join(unique),
                                temporary=all(p.temporary for p in problems))
    services = tuple(pinned.get(s.name, s) for s in desired.services)
    return dataclasses.replace(desired, services=services), tuple(dict.fromkeys(warnings))


def pin_and_observe(desired: DesiredState, resolver: DigestResolver,
                    observe: Callable[[DesiredState], ObservedState], *, unresolved_ok: bool = False
                    ) -> tuple[DesiredState, ObservedState, tuple[str, ...]]:
    """The one way every command and the daemon get from manifests to what they plan against: resolve the
    tags, observe the hosts with the resolved specs, then let a service whose registry did not answer keep the
    digest it runs. Returns the desired state to plan, the observation, and warnings for the plan."""
    desired, failures = resolve_digests(desired, resolver)
    observed = observe(desired)
    desired, warnings = stand_in(desired, failures, observed, unresolved_ok=unresolved_ok)
    return desired, observed, warnings


def _short(digest: str) -> str:
    return digest[:19] + ".."


def _lookup(images: Iterable[str], resolver: DigestResolver) -> dict[str, str | GitopsError]:
    images = list(images)

    def one(image: str) -> str | GitopsError:
        try:
            return resolver.resolve(image)
        except GitopsError as exc:
            return exc

    if len(images) <= 1:
        return {image: one(image) for image in images}
    with ThreadPoolExecutor(max_workers=min(MAX_LOOKUPS_IN_FLIGHT, len(images))) as pool:
        return dict(zip(images, pool.map(one, images), strict=True))


def registry_client(desired: DesiredState) -> DigestResolver:
    """The registry client for one pass: the repository's Registry credentials, then the docker config of the
    user gitops runs as (gitops.hosts.registry). Made on the first lookup: most passes need none."""
    return _LazyClient(desired)


class _LazyClient:
    def __init__(self, desired: DesiredState) -> None:
        self.desired = desired
        self._client: DigestResolver | None = None
        self._lock = threading.Lock()

    def resolve(self, image: str) -> str:
        with self._lock:
            if self._client is None:
                from gitops.hosts.registry import client_for  # requests: only when a service asks for a digest

                self._client = client_for(self.desired)
        return self._client.resolve(image)
