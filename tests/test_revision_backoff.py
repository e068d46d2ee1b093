"""Failed-revision backoff and crash-loop retries, on a real state store (no Docker, no git)."""

from __future__ import annotations

from pathlib import Path

from gitops.core.model import HostObservation, ObservedContainer, ObservedState
from gitops.engine.reconciler import LocalSource, Reconciler
from gitops.state import StateStore


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def reconciler(tmp_path: Path, clock: Clock) -> Reconciler:
    (tmp_path / "m").mkdir(exist_ok=True)
    return Reconciler(LocalSource(tmp_path / "m"), StateStore(tmp_path / "state"), backoff_base=60.0, clock=clock)


def test_a_revision_that_converged_before_starts_its_backoff_at_60s(tmp_path: Path) -> None:
    """Its first failure after converging is its first failure: retried 60 s later, not 120 s."""
    clock = Clock(1000.0)
    r = reconciler(tmp_path, clock)
    r.state.mark_good("a" * 40, now=900.0)
    r.state.mark_failed("a" * 40, "health check failed", now=1000.0)
    skipped = r._skip_failed("a" * 40, force=False)
    assert skipped is not None and "60s after its last attempt" in skipped.message
    clock.now = 1060.0
    assert r._skip_failed("a" * 40, force=False) is None


def test_backoff_doubles_from_the_first_failure(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    r = reconciler(tmp_path, clock)
    for _ in range(3):
        r.state.mark_failed("b" * 40, "health check failed", now=1000.0)
    skipped = r._skip_failed("b" * 40, force=False)
    assert skipped is not None and "240s after its last attempt" in skipped.message


class Host:
    """An inspect answer for one stopped container (the only fake: the reconciler's heal logic is tested)."""

    def __init__(self, exit_code: int, oom: bool = False) -> None:
        self.state = {"Status": "exited", "ExitCode": exit_code, "OOMKilled": oom}

    def inspect(self, ref: str) -> dict:
        return {"State": self.state}

    def probe_address(self) -> str:
        return "127.0.0.1"


def stopped() -> ObservedState:
    c = ObservedContainer("local", "cid", "p-web-0-abc", "web", 0, "abc", "r", "exited", "none", "img")
    return ObservedState((HostObservation("local", True, "", (c,)),))


def test_a_container_that_dies_again_is_held_and_the_retry_time_is_known(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    r = reconciler(tmp_path, clock)
    r.heal.starts["cid"] = [998.0]
    options = r._options(stopped(), {"local": Host(3)})
    assert options.hold == (("p-web-0-abc", "started again 1 times, it died each time; next try in 3s"),)
    assert r.heal.retry_at == 1003.0


def test_docker_stop_by_hand_is_not_a_crash(tmp_path: Path) -> None:
    """Exit 143 or 137 that gitops did not cause: put back at once, and its start no longer counts."""
    clock = Clock(1000.0)
    r = reconciler(tmp_path, clock)
    for code in (143, 137):
        r.heal.starts["cid"] = [998.0]
        assert r._options(stopped(), {"local": Host(code)}).hold == () and r.heal.starts["cid"] == []
        assert r.heal.retry_at is None
    r.heal.starts["cid"] = [998.0]
    assert r._options(stopped(), {"local": Host(137, oom=True)}).hold != ()  # out of memory is a crash


def test_a_stop_gitops_made_after_its_start_is_not_taken_for_a_hand_stop(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    r = reconciler(tmp_path, clock)
    r.heal.starts["cid"] = [998.0]
    clock.now = 999.0
    r.heal.note_own_action(["p-web-0-abc", "cid"], "stop")  # e.g. a start undone after its health gate failed
    clock.now = 1000.0
    assert r._options(stopped(), {"local": Host(143)}).hold != ()
