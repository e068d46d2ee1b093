"""Health timers agree with Docker's: gitops never gives up before Docker could decide (pure)."""

from __future__ import annotations

from gitops.core.model import HealthCheck, ServiceSpec, UpdatePolicy
from gitops.engine.health import HealthFailure, effective_deadline, wait_healthy


def svc(hc: HealthCheck | None, **update: float) -> ServiceSpec:
    return ServiceSpec("web", "img", healthcheck=hc, update=UpdatePolicy(**update))  # type: ignore[arg-type]


def test_deadline_covers_start_period_and_every_retry() -> None:
    hc = HealthCheck("exec", ("CMD", "true"), interval=5, timeout=3, retries=4, start_period=10)
    assert hc.deadline() == 10 + 4 * (5 + 3)
    # a healthyDeadline shorter than Docker's own decision time is stretched to it, plus minHealthyTime
    assert effective_deadline(svc(hc, healthy_deadline=20, min_healthy_time=2)) == 44
    assert effective_deadline(svc(hc, healthy_deadline=120)) == 120
    assert effective_deadline(svc(None, healthy_deadline=30)) == 30


class FakeHost:
    """Replays a sequence of container states (the only fake: health.py's logic is what is tested)."""

    def __init__(self, states: list[dict]) -> None:
        self.states = states
        self.calls = 0

    def inspect(self, ref: str) -> dict:
        state = self.states[min(self.calls, len(self.states) - 1)]
        self.calls += 1
        return {"State": state}

    def probe_address(self) -> str:
        return "127.0.0.1"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.1
        return self.now


def test_min_healthy_time_resets_when_health_drops() -> None:
    hc = HealthCheck("exec", ("CMD", "true"), interval=0.1, timeout=0.1, retries=3)
    running = {"Status": "running"}
    seq = [dict(running, Health={"Status": s}) for s in ["starting", "healthy", "starting"] + ["healthy"] * 30]
    host = FakeHost(seq)
    waited = wait_healthy(host, "x", svc(hc, min_healthy_time=1.0, healthy_deadline=30), clock=Clock())
    assert waited >= 1.0 and host.calls > 10


def _failure(state: dict) -> HealthFailure:
    try:
        wait_healthy(FakeHost([state]), "x", svc(None, min_healthy_time=1.0), clock=Clock())
    except HealthFailure as exc:
        return exc
    raise AssertionError("an exited container passed the health gate")


def test_exited_container_fails_at_once_with_its_exit_code() -> None:
    failure = _failure({"Status": "exited", "ExitCode": 3})
    assert str(failure) == "container exited (exit code 3)" and not failure.temporary


def test_a_container_stopped_from_outside_is_not_the_specs_fault() -> None:
    """SIGTERM or SIGKILL from outside (its engine shutting down, a docker stop) is not held against the
    commit; being killed for running out of memory is."""
    stopped = _failure({"Status": "exited", "ExitCode": 143})
    assert str(stopped) == "container exited (exit code 143, stopped from outside gitops)" and stopped.temporary
    assert _failure({"Status": "exited", "ExitCode": 137}).temporary
    oom = _failure({"Status": "exited", "ExitCode": 137, "OOMKilled": True})
    assert str(oom) == "container exited (exit code 137, killed: out of memory)" and not oom.temporary


def test_unhealthy_reports_the_last_check_output() -> None:
    hc = HealthCheck("exec", ("CMD", "false"), interval=0.1, timeout=0.1, retries=1)
    log = [{"ExitCode": 1, "Output": "db not reachable\n"}]
    host = FakeHost([{"Status": "running", "Health": {"Status": "unhealthy", "Log": log}}])
    try:
        wait_healthy(host, "x", svc(hc), clock=Clock())
    except HealthFailure as exc:
        assert str(exc) == "health check failed" and exc.detail == "exit 1: db not reachable"
    else:
        raise AssertionError("unhealthy passed")


def _run(started: str, log: list[dict], status: str) -> dict:
    return {"Status": "running", "StartedAt": started, "Health": {"Status": status, "Log": log}}


# What Docker 20.10 reported for a container made unhealthy, stopped by hand, then started again (times in
# the engine's clock): the Health block is the previous run's until the first check of the new run ends.
OLD_RUN = [{"Start": "2026-11-23T21:56:03.040171553Z", "End": "2026-11-23T21:56:03.113006214Z", "ExitCode": 1,
            "Output": "sick\n"},
           {"Start": "2026-11-23T21:56:03.316009054Z", "End": "2026-11-23T21:56:03.37468079Z", "ExitCode": 1,
            "Output": "sick\n"}]
RESTARTED = "2026-11-23T21:56:03.865390126Z"
NEW_CHECK = {"Start": "2026-11-23T21:56:04.07Z", "End": "2026-11-23T21:56:04.1Z", "ExitCode": 0, "Output": ""}


def test_a_health_status_from_before_the_last_start_is_ignored() -> None:
    """Right after `start`, an `unhealthy` left over from the previous run does not fail the gate: it waits
    for the first check of this run, which passes."""
    hc = HealthCheck("exec", ("CMD", "true"), interval=0.2, timeout=0.2, retries=2)
    states = [_run(RESTARTED, OLD_RUN, "unhealthy")] * 3 + [_run(RESTARTED, OLD_RUN + [NEW_CHECK], "healthy")]
    host = FakeHost(states)
    assert wait_healthy(host, "x", svc(hc, healthy_deadline=30), clock=Clock()) > 0 and host.calls == 4


def test_a_healthy_status_from_before_the_last_start_does_not_pass_the_gate() -> None:
    """A stale `healthy` is not proof either: the gate fails on the first check of this run that fails."""
    hc = HealthCheck("exec", ("CMD", "true"), interval=0.2, timeout=0.2, retries=1)
    old_ok = [dict(entry, ExitCode=0, Output="") for entry in OLD_RUN]
    failed = dict(NEW_CHECK, ExitCode=1, Output="not ready\n")
    host = FakeHost([_run(RESTARTED, old_ok, "healthy")] * 2 + [_run(RESTARTED, old_ok + [failed], "unhealthy")])
    try:
        wait_healthy(host, "x", svc(hc, healthy_deadline=30), clock=Clock())
    except HealthFailure as exc:
        assert (str(exc), exc.detail, host.calls) == ("health check failed", "exit 1: not ready", 3)
    else:
        raise AssertionError("a healthy status from the previous run passed the gate")
