"""Drive a whole pass (load, observe, plan, apply) in-process, for integration tests and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gitops.core.model import DesiredState, ephemeral_key
from gitops.core.plan import Plan
from gitops.core.planner import PlanOptions, plan
from gitops.engine.apply import ApplyStatus, apply_plan
from gitops.engine.executor import ApplyResult
from gitops.engine.images import pin_and_observe, registry_client
from gitops.engine.observe import observe_all, open_hosts
from gitops.manifests.load import load_repo
from gitops.secret_key import with_age


@dataclass
class Pass:
    desired: DesiredState
    plan: Plan
    result: ApplyResult | None


class Deployer:
    def __init__(self, write_repo: Callable[..., Path], project: str) -> None:
        self.write_repo = write_repo
        self.project = project
        self.root: Path | None = None
        self.key = ephemeral_key()  # one key for every load, as one installation has

    def project_doc(self, spec: str = "") -> str:
        return f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {self.project}}}\n{spec}"

    def load(self, files: dict[str, str], *, prune: bool = False) -> DesiredState:
        files = {"project.yaml": self.project_doc("spec: {prune: true}\n" if prune else ""), **files}
        self.root = self.write_repo(files, project=False)
        # with the age identities of SOPS_AGE_KEY_FILE when the test set it, as a command would read them
        outcome = load_repo(self.root, revision="test", key=with_age(self.key))
        if outcome.desired is None:
            raise AssertionError("manifests do not load: " + "; ".join(map(str, outcome.errors)))
        return outcome.desired

    def plan(self, files: dict[str, str], *, prune: bool = False, allow_empty: bool = False) -> Pass:
        desired = self.load(files, prune=prune)
        with open_hosts(desired) as hosts:
            desired, observed, warnings = pin_and_observe(desired, registry_client(desired),
                                                          lambda d: observe_all(d, hosts))
        return Pass(desired, plan(desired, observed, options=PlanOptions(allow_empty=allow_empty, warnings=warnings)),
                    None)

    def __call__(self, files: dict[str, str], *, prune: bool = False, allow_empty: bool = False) -> Pass:
        """Load, plan and apply through the one apply path (gitops.engine.apply), as the loop does. No store:
        nothing is trusted, so every container is inspected and a false "changed by hand" would show."""
        desired = self.load(files, prune=prune)
        with open_hosts(desired) as hosts:
            # tags resolved to digests first, as every pass and command does (gitops.engine.images)
            desired, observed, warnings = pin_and_observe(desired, registry_client(desired),
                                                          lambda d: observe_all(d, hosts))
            options = PlanOptions(allow_empty=allow_empty, warnings=warnings)
            the_plan = plan(desired, observed, options=options)
            if not the_plan.has_changes:
                return Pass(desired, the_plan, ApplyResult())
            done = apply_plan(desired, hosts, the_plan, approved=False,
                              replan=lambda now: plan(desired, now, options=options))
        assert done.status in (ApplyStatus.APPLIED, ApplyStatus.ALREADY_APPLIED), done.message
        return Pass(desired, done.plan, done.result or ApplyResult())
