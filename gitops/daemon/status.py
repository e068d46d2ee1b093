"""The status document: `gitops status --format json` and the daemon's GET /status, built by one function.

Per service: desired vs running revision, replicas running and healthy, last outcome and why (with the
health-check output and last log lines of a failure), pin; per host: reachable or not; the source: last
fetch, commit, error. It also carries the observed containers, so a saved status is a snapshot that
`gitops plan --observed FILE` can plan against.

:func:`status_document` is the one entry point, for the CLI and the daemon alike: the same desired state
(pins applied), the same observation and the same state store give the same document, field for field.
Changes pending are always planned afresh from those two, never taken from a plan applied earlier.
"""

from __future__ import annotations

from typing import Any

from gitops.core.model import DesiredState, ObservedState, observed_to_dict, spec_image
from gitops.core.plan import Plan
from gitops.core.planner import PlanError, PlanOptions, plan
from gitops.core.swarm import swarm_service_name
from gitops.source import redact
from gitops.state import PassRecord, StateStore

STATUS_FORMAT = 1


def status_document(store: StateStore, desired: DesiredState | None, observed: ObservedState | None, *,
                    warnings: tuple[str, ...] = ()) -> dict[str, Any]:
    """The status document from ``desired`` (with pins applied), ``observed`` and the state store's records.
    ``warnings``: found before planning (a registry that did not answer), shown with the pending plan's."""
    recent = store.passes(limit=SERVICE_OUTCOME_PASSES)
    pins = store.pins(desired.project.name) if desired is not None else {}
    return build_status(desired, observed, source=store.source(), last_pass=recent[0] if recent else None,
                        pins=pins, last_good=store.last_good(), pending=pending_plan(desired, observed, warnings),
                        service_passes=last_pass_per_service(recent))


# How far back a service's last outcome is looked for: passes that skip a failed commit (backed off) name no
# service, and must not make the page forget why it failed.
SERVICE_OUTCOME_PASSES = 500


def last_pass_per_service(records: list[PassRecord]) -> dict[str, PassRecord]:
    """Per service, the newest pass that did something to it (records newest first)."""
    out: dict[str, PassRecord] = {}
    for record in records:
        for name in record.services:
            out.setdefault(name, record)
    return out


def pending_plan(desired: DesiredState | None, observed: ObservedState | None,
                 warnings: tuple[str, ...] = ()) -> Plan | None:
    """What a pass would change now; None when there is nothing to compare or the planner refuses."""
    if desired is None or observed is None:
        return None
    try:
        return plan(desired, observed, options=PlanOptions(allow_empty=True, warnings=warnings))
    except PlanError:
        return None


def build_status(desired: DesiredState | None, observed: ObservedState | None, *, source: dict[str, Any],
                 last_pass: PassRecord | None, pins: dict[str, tuple[str, str]],
                 last_good: dict[str, tuple[str, str, float]], pending: Plan | None,
                 service_passes: dict[str, PassRecord] | None = None) -> dict[str, Any]:
    """Pure: the document from model objects and state records. ``service_passes``: per service the newest pass
    that acted on it (its last outcome and why); without it, the last pass."""
    services = []
    containers = [c for h in (observed.hosts if observed else ()) for c in h.containers]
    for svc in (desired.services if desired else ()):
        mine = [c for c in containers if c.service == svc.name]
        good = last_good.get(svc.name)
        record = (service_passes or {}).get(svc.name, last_pass)
        outcome = (record.services.get(svc.name) if record else None) or ("converged" if good and
                                                                         good[1] == svc.spec_hash else "")
        failed = bool(record) and outcome not in ("", "converged")
        found = (record.details.get(svc.name) if record and failed else None) or {}
        entry: dict[str, Any] = {
            "name": svc.name,
            "desired_revision": desired.revision if desired else "",
            "desired_spec_hash": svc.spec_hash,
            "image": svc.image,
            "image_digest": svc.digest,  # the tag's digest on its registry now (resolve: digest), else ""
            "running_image_digests": sorted({d for d in (spec_image(c.spec_json)[1] for c in mine if c.running) if d}),
            "running_revisions": sorted({c.revision for c in mine if c.running}),
            "replicas": {"desired": svc.replicas, "running": sum(1 for c in mine if c.running),
                         "healthy": sum(1 for c in mine if c.running and c.health in ("healthy", "none")),
                         "up_to_date": sum(1 for c in mine if c.running and c.spec_hash == svc.spec_hash
                                           and not c.hand_changes),
                         "changed_by_hand": sum(1 for c in mine if c.hand_changes),
                         "restarting": sum(1 for c in mine if c.state == "restarting"),
                         "stopped": sum(1 for c in mine if not c.running)},
            "last_outcome": outcome,
            "reason": (found.get("message") or (record.error if record else "")) if failed else "",
            "last_outcome_revision": record.revision if record and outcome and record.services.get(svc.name)
            else "",
            "health_output": found.get("health_output", ""),
            "logs": found.get("logs", ""),
            "last_good_revision": good[0] if good else "",
            "pinned_to": pins[svc.name][0] if svc.name in pins else "",
        }
        # the Swarm service gitops made for it: on its cluster, by its name (another with the same labels is not it)
        tasks = [s for h in (observed.hosts if observed else ()) for s in h.services
                 if s.service == svc.name and svc.hosts[:1] == (s.host,)
                 and s.name == swarm_service_name(desired.project.name if desired else "", svc.name)]
        if tasks:  # a Swarm service: Swarm runs its tasks, counted from the one list call of tasks
            found_service = tasks[0]
            current = found_service.spec_hash == svc.spec_hash and not found_service.hand_changed
            entry["running_image_digests"] = [d for d in [spec_image(found_service.spec_json)[1]] if d]
            entry["running_revisions"] = [found_service.revision] if found_service.running else []
            entry["replicas"] = {"desired": svc.replicas, "running": found_service.running,
                                 "healthy": found_service.running,
                                 "up_to_date": found_service.running if current else 0,
                                 "changed_by_hand": int(found_service.hand_changed), "restarting": 0,
                                 "stopped": max(0, found_service.replicas - found_service.running)}
            entry["swarm"] = {"cluster": found_service.host, "service": found_service.name,
                              "update_state": found_service.update_state,
                              "update_message": found_service.update_message,
                              "task_error": found_service.task_error}
        services.append(entry)
    hosts = [{"name": h.host, "reachable": h.reachable, "error": h.error} for h in (observed.hosts if observed else ())]
    return {
        "format": STATUS_FORMAT,
        "project": desired.project.name if desired else "",
        "revision": desired.revision if desired else "",
        "source": {k: (redact(v) if isinstance(v, str) else v) for k, v in source.items()},
        "last_pass": last_pass.to_dict() if last_pass else None,
        "hosts": hosts,
        "services": services,
        "warnings": list(pending.warnings) if pending else [],
        "pending_changes": len(pending.changes) if pending else None,
        "observed": observed_to_dict(observed) if observed else None,
    }
