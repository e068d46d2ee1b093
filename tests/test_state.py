"""The state store (SQLite): what it records, failed-revision backoff, pins, and crash leftovers."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

from gitops.engine.heal import backoff_seconds
from gitops.state import MAX_DETAIL_CHARS, MAX_LOG_CHARS, MAX_LOG_LINES, StateStore


def test_passes_round_trip_newest_first(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    a = store.begin_pass("startup", now=100.0)
    store.finish_pass(a, revision="r1", outcome="converged", summary={"create": 2}, services={"web": "converged"},
                      now=101.5)
    b = store.begin_pass("webhook:github", now=200.0)
    store.finish_pass(b, revision="r2", outcome="invalid", error="x.yaml:1:1: bad", now=200.1)
    newest, oldest = store.passes()
    assert (newest.revision, newest.outcome, newest.error) == ("r2", "invalid", "x.yaml:1:1: bad")
    assert (oldest.summary, oldest.services, oldest.duration) == ({"create": 2}, {"web": "converged"}, 1.5)
    assert [p.revision for p in store.passes(service="web")] == ["r1"]
    assert store.check() == "ok"


def test_failed_revisions_count_attempts_and_clear_when_good(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.mark_failed("r1", "health check failed", now=10.0)
    store.mark_failed("r1", "health check failed again", now=20.0)
    failed = store.failed("r1")
    assert failed is not None and (failed.attempts, failed.last_attempt, failed.error) == (2, 20.0,
                                                                                            "health check failed again")
    store.mark_good("r1")
    assert store.failed("r1") is None


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_seconds(n, base=60, cap=3600) for n in (1, 2, 3, 7, 20)] == [60, 120, 240, 3600, 3600]


def test_last_good_pins_and_source(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.record_good({"web": "h1", "db": "h2"}, "r1", now=5.0)
    store.record_good({"web": "h3"}, "r2", now=6.0)
    assert store.last_good() == {"web": ("r2", "h3", 6.0), "db": ("r1", "h2", 5.0)}
    store.pin("shop", "web", "r1", "h3")
    assert store.pins("shop") == {"web": ("r1", "h3")}
    assert store.unpin("shop", "web") and not store.unpin("shop", "web")
    store.record_fetch(url="https://***@h/r.git", ref="main", commit="abc", now=7.0)
    store.record_fetch(url="https://***@h/r.git", ref="main", error="cannot fetch: timeout", now=8.0)
    src = store.source()
    assert (src["commit"], src["error"], src["available"]) == ("abc", "cannot fetch: timeout", False)
    store.record_fetch(url="https://***@h/r.git", ref="main", commit="def", now=9.0)
    assert store.source()["available"] is True


def test_a_pass_whose_process_died_reads_as_interrupted(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with sqlite3.connect(tmp_path / "state.db") as db:  # a pass left 'running' by a process that is gone
        db.execute("INSERT INTO passes (started_at, trigger, pid) VALUES (1.0, 'startup', 2147483646)")
    store.begin_pass("next")
    interrupted = [p for p in store.passes() if p.trigger == "startup"][0]
    assert interrupted.outcome == "interrupted" and "stopped during this pass" in interrupted.error
    assert store.passes()[0].outcome == "running"  # our own pass is left alone


def test_the_store_survives_being_reopened(tmp_path: Path) -> None:
    first = StateStore(tmp_path)
    first.finish_pass(first.begin_pass("a"), revision="r", outcome="converged")
    first.close()
    again = StateStore(tmp_path)
    assert [p.outcome for p in again.passes()] == ["converged"] and again.check() == "ok"


def test_trusted_containers_are_remembered_and_forgotten_when_gone(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.trust_containers({"a1": "h1", "a2": "h1", "b1": "h2"})
    assert store.trusted_containers() == {"a1": "h1", "a2": "h1", "b1": "h2"}
    # h1 now shows a1 and a new c1; h2 was not reachable, so what it had is kept
    store.trust_containers({"c1": "h1"}, present={"h1": {"a1", "c1"}})
    assert store.trusted_containers() == {"a1": "h1", "c1": "h1", "b1": "h2"}
    reopened = StateStore(tmp_path)
    assert reopened.trusted_containers() == {"a1": "h1", "c1": "h1", "b1": "h2"}


def _modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[path.name] = stat.S_IMODE(path.lstat().st_mode)
    return out


def test_the_state_directory_and_database_are_private(tmp_path: Path) -> None:
    state_dir = tmp_path / "new" / "state"
    store = StateStore(state_dir)
    store.finish_pass(store.begin_pass("a"), revision="r", outcome="converged")  # the WAL and SHM files exist now
    modes = _modes(state_dir)
    assert {"state.db", "state.db-wal", "state.db-shm"} <= set(modes)
    assert modes == {name: 0o700 if name == "." else 0o600 for name in modes}
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700  # a parent it had to make, too
    store.close()


def test_loose_modes_left_by_an_older_version_are_tightened(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    (state_dir / "git" / "x").mkdir(parents=True)
    with sqlite3.connect(state_dir / "state.db") as db:  # as an older version left it
        db.execute("CREATE TABLE t (x)")
    (state_dir / "git" / "x" / "config").write_text("[core]\n")
    (state_dir / "git" / "x" / "pack").write_text("")
    (state_dir / "git" / "x" / "link").symlink_to("/etc/hostname")  # never followed: /etc/hostname keeps its mode
    for path in (state_dir, state_dir / "git", state_dir / "git" / "x"):
        path.chmod(0o755)
    for name in ("state.db", "git/x/config"):
        (state_dir / name).chmod(0o644)
    (state_dir / "git" / "x" / "pack").chmod(0o444)
    hostname_mode = Path("/etc/hostname").stat().st_mode
    StateStore(state_dir).close()
    modes = {k: v for k, v in _modes(state_dir).items() if k != "link"}
    assert modes["."] == modes["git"] == modes["x"] == 0o700
    assert (modes["state.db"], modes["config"], modes["pack"]) == (0o600, 0o600, 0o400)
    assert Path("/etc/hostname").stat().st_mode == hostname_mode


OLD_PASSES = """CREATE TABLE passes (id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, finished_at REAL,
    trigger TEXT NOT NULL, revision TEXT NOT NULL DEFAULT '', outcome TEXT NOT NULL DEFAULT 'running',
    summary TEXT NOT NULL DEFAULT '{}', services TEXT NOT NULL DEFAULT '{}', error TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0)"""


def test_a_database_from_before_failure_details_is_migrated(tmp_path: Path) -> None:
    """A state.db written before passes had a details column opens, keeps its passes and records details."""
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute(OLD_PASSES)
        db.execute("INSERT INTO passes (started_at, finished_at, trigger, revision, outcome) "
                   "VALUES (1.0, 2.0, 'startup', 'r0', 'converged')")
    store = StateStore(tmp_path)
    (old,) = store.passes()
    assert (old.revision, old.details) == ("r0", {})
    store.finish_pass(store.begin_pass("poll"), revision="r1", outcome="failed", services={"web": "rolled_back"},
                      details={"web": {"message": "health check failed", "health_output": "exit 1: no",
                                       "logs": "a\nb"}})
    assert store.passes()[0].details == {"web": {"message": "health check failed", "health_output": "exit 1: no",
                                                 "logs": "a\nb"}}
    assert store.passes()[0].to_dict()["details"]["web"]["logs"] == "a\nb"
    assert store.check() == "ok"
    StateStore(tmp_path).close()  # opening a migrated store again changes nothing


def test_failure_details_are_cut_to_a_bounded_size(tmp_path: Path) -> None:
    """Health-check output and log lines come from containers: the record keeps their end, bounded."""
    store = StateStore(tmp_path)
    logs = "\n".join(f"line {i} " + "x" * 300 for i in range(100))
    store.finish_pass(store.begin_pass("poll"), revision="r", outcome="failed",
                      details={"web": {"message": "m" * 10_000, "health_output": "h" * 10_000 + "END",
                                       "logs": logs}})
    web = store.passes()[0].details["web"]
    assert len(web["message"]) == MAX_DETAIL_CHARS and len(web["health_output"]) == MAX_DETAIL_CHARS
    assert web["health_output"].endswith("END")  # the end of the output says why it failed
    assert web["logs"].splitlines()[-1].startswith("line 99 ") and len(web["logs"]) <= MAX_LOG_CHARS
    assert len(web["logs"].splitlines()) <= MAX_LOG_LINES


def test_pins_are_kept_per_project_and_old_ones_are_kept_for_any(tmp_path: Path) -> None:
    """One state directory may serve several projects (the CLI's default one does): a rollback of one project's
    web must neither hold nor be released by another project's web."""
    import sqlite3

    store = StateStore(tmp_path)
    store.pin("shop", "web", "r1", "h1", digest="sha256:" + "a" * 64)
    assert store.pins("blog") == {} and store.pin_digests("blog") == {}
    assert not store.unpin("blog", "web")  # another project's pass cannot release it
    assert store.pins("shop") == {"web": ("r1", "h1")} and store.pin_digests("shop") == {"web": "sha256:" + "a" * 64}
    store.close()
    # a pin written by a version that kept one project per state directory: moved, and held for any project
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("INSERT INTO pins (service, revision, head_spec_hash, pinned_at) VALUES ('api', 'r0', 'h0', 1)")
    db.commit()
    db.close()
    store = StateStore(tmp_path)
    assert store.pins("blog") == {"api": ("r0", "h0")}
    assert store.pins("shop") == {"api": ("r0", "h0"), "web": ("r1", "h1")}
    store.pin("shop", "api", "r2", "h2")  # the project's own pin replaces the old one
    assert store.pins("blog") == {} and store.pins("shop")["api"] == ("r2", "h2")
