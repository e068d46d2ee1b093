"""The status document: `gitops status --format json` and the daemon's GET /status.

Per service: desired vs running revision, replicas running and healthy, last outcome and why, pin;
per host: reachable or not; the source: last fetch, commit, error. It also carries the observed
containers, so a saved status is a snapshot that `gitops plan --observed FILE` can plan against.
Pure: built from model objects and state records.
"""

from __future__ import annotations

from typing import Any

from gitops.model import DesiredState, ObservedState, observed_to_dict
from gitops.source import redact
from gitops.state import PassRecord

STATUS_FORMAT = 1


def build_status(desired: DesiredState | None, observed: ObservedState | None, *, source: dict[str, Any],
                 last_pass: PassRecord | None, pins: dict[str, tuple[str, str]],
                 last_good: dict[str, tuple[str, str, float]], warnings: tuple[str, ...] = (),
                 pending_changes: int | None = None) -> dict[str, Any]:
    services = []
    containers = [c for h in (observed.hosts if observed else ()) for c in h.containers]
    for svc in (desired.services if desired else ()):
        mine = [c for c in containers if c.service == svc.name]
        good = last_good.get(svc.name)
        outcome = (last_pass.services.get(svc.name) if last_pass else None) or ("converged" if good and
                                                                               good[1] == svc.spec_hash else "")
        services.append({
            "name": svc.name,
            "desired_revision": desired.revision if desired else "",
            "desired_spec_hash": svc.spec_hash,
            "running_revisions": sorted({c.revision for c in mine if c.running}),
            "replicas": {"desired": svc.replicas, "running": sum(1 for c in mine if c.running),
                         "healthy": sum(1 for c in mine if c.running and c.health in ("healthy", "none")),
                         "up_to_date": sum(1 for c in mine if c.running and c.spec_hash == svc.spec_hash
                                           and not c.hand_changes),
                         "changed_by_hand": sum(1 for c in mine if c.hand_changes),
                         "restarting": sum(1 for c in mine if c.state == "restarting"),
                         "stopped": sum(1 for c in mine if not c.running)},
            "last_outcome": outcome,
            "reason": (last_pass.error if last_pass and outcome not in ("", "converged") else ""),
            "last_good_revision": good[0] if good else "",
            "pinned_to": pins[svc.name][0] if svc.name in pins else "",
        })
    hosts = [{"name": h.host, "reachable": h.reachable, "error": h.error} for h in (observed.hosts if observed else ())]
    return {
        "format": STATUS_FORMAT,
        "project": desired.project.name if desired else "",
        "revision": desired.revision if desired else "",
        "source": {k: (redact(v) if isinstance(v, str) else v) for k, v in source.items()},
        "last_pass": last_pass.to_dict() if last_pass else None,
        "hosts": hosts,
        "services": services,
        "warnings": list(warnings),
        "pending_changes": pending_changes,
        "observed": observed_to_dict(observed) if observed else None,
    }
