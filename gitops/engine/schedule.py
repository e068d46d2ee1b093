"""How a plan's steps are grouped into units of work and in which order those may start. Pure.

A unit is one network or volume step, every step of one declared service (all its instances on all
hosts), or every step removing one undeclared service (prune). A unit may start when each unit it
depends on has reached what it needs of it (``Level``): a service that depends on another with
``condition: started`` needs every instance of it running; ``condition: healthy`` (and any network,
volume or prune unit) needs it past its health gates, or finished. A unit one of whose dependencies
failed before reaching that is skipped.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from gitops.core.model import DesiredState
from gitops.core.plan import Plan, Step


class UnitKind(enum.Enum):
    SERVICE = "service"  # the steps of one declared service
    PRUNE = "prune"  # the removals of one service no longer declared
    INFRA = "infra"  # one network or volume step


class Level(enum.Enum):
    """How far a unit has come, as its dependents see it."""

    STARTED = "started"  # every new instance is running
    HEALTHY = "healthy"  # every new instance has passed its health gate (old ones may still be stopping)


class Verdict(enum.Enum):
    GO = "go"
    WAIT = "wait"
    SKIP = "skip"


@dataclass(frozen=True)
class Unit:
    kind: UnitKind
    name: str  # the service's name, or the step's id for a network or volume
    steps: tuple[Step, ...] = field(default=(), compare=False, hash=False)

    def __str__(self) -> str:
        return self.name if self.kind is UnitKind.INFRA else f"{self.kind.value} {self.name}"

    @property
    def shown(self) -> str:
        """How a failed dependency is named in a skip message."""
        return self.name if self.kind is UnitKind.SERVICE else str(self)


@dataclass(frozen=True)
class Schedule:
    units: tuple[Unit, ...]
    needs: Mapping[Unit, Mapping[Unit, Level]]  # unit -> each unit it depends on -> the level it needs


def schedule(plan: Plan, desired: DesiredState) -> Schedule:
    """The units of ``plan``'s changes and what each needs of the others."""
    declared = {s.name: s for s in desired.services}
    grouped: dict[Unit, list[Step]] = {}
    unit_of: dict[str, Unit] = {}
    for step in plan.changes:
        if step.kind == "service":
            key = Unit(UnitKind.SERVICE if step.name in declared else UnitKind.PRUNE, step.name)
        else:
            key = Unit(UnitKind.INFRA, step.id)
        grouped.setdefault(key, []).append(step)
        unit_of[step.id] = key
    units = {key: Unit(key.kind, key.name, tuple(steps)) for key, steps in grouped.items()}
    needs: dict[Unit, dict[Unit, Level]] = {}
    for key, unit in units.items():
        deps = {unit_of[d] for s in unit.steps for d in s.depends_on if d in unit_of and unit_of[d] != key}
        svc = declared.get(unit.name) if unit.kind is UnitKind.SERVICE else None
        needs[unit] = {}
        for dep in deps:
            conditions = {d.condition for d in svc.depends_on if d.service == dep.name
                          and dep.kind is UnitKind.SERVICE} if svc is not None else set()
            needs[unit][units[dep]] = Level.STARTED if conditions == {"started"} else Level.HEALTHY
    return Schedule(tuple(units.values()), needs)


def readiness(needs: Mapping[Unit, Level], reached: Mapping[Level, set[Unit]],
              final: Mapping[Unit, bool]) -> tuple[Verdict, list[str]]:
    """Whether a unit may start now, given what its dependencies reached and which finished (True: ok).
    Returns the verdict and, for SKIP, the dependencies that failed."""
    met = [d for d, level in needs.items() if final.get(d) is True or d in reached[level]]
    failed = sorted(d.shown for d, level in needs.items() if final.get(d) is False and d not in reached[level])
    if failed:
        return Verdict.SKIP, failed
    return (Verdict.GO if len(met) == len(needs) else Verdict.WAIT), []
