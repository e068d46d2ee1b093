"""Prometheus metrics of the daemon (prometheus-client), served at GET /metrics."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gitops.core.plan import Plan
from gitops.engine.reconciler import PassResult


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        buckets = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
        self.pass_duration = Histogram("gitops_pass_duration_seconds", "Duration of reconcile passes.",
                                       registry=self.registry, buckets=buckets)
        self.passes = Counter("gitops_passes_total", "Reconcile passes by outcome.", ["outcome"],
                              registry=self.registry)
        self.last_success = Gauge("gitops_last_successful_sync_timestamp_seconds",
                                  "Unix time of the last pass that converged or found nothing to do.",
                                  registry=self.registry)
        self.fetch_errors = Counter("gitops_fetch_errors_total", "Failed fetches of the git source.",
                                    registry=self.registry)
        self.drifted = Gauge("gitops_drifted_instances", "Instances found drifted (stopped or removed by hand) in "
                             "the last pass.", registry=self.registry)
        self.crash_looping = Gauge("gitops_crashlooping_instances", "Containers restarting in a loop (by Docker's "
                                   "restart policy, or held back by gitops' own backoff) in the last pass.",
                                   registry=self.registry)
        self.webhooks = Counter("gitops_webhook_requests_total", "Webhook requests by provider and status code.",
                                ["provider", "code"], registry=self.registry)
        self.last_apply = Gauge("gitops_last_apply_started_timestamp_seconds",
                                   "Unix time the last apply (a pass with changes) started.", registry=self.registry)

    # PassHooks
    def pass_finished(self, result: PassResult) -> None:
        self.pass_duration.observe(result.duration)
        self.passes.labels(result.outcome).inc()
        self.drifted.set(result.drifted)
        self.crash_looping.set(result.crash_looping)
        if result.ok:
            self.last_success.set(time.time())

    def fetch_failed(self) -> None:
        self.fetch_errors.inc()

    def apply_started(self, revision: str, plan: Plan) -> None:
        self.last_apply.set(time.time())

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
