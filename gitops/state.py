"""The embedded state store (SQLite in the state directory).

What it keeps, and why:
* ``passes``: every reconcile pass (trigger, revision, plan summary, outcome, duration, error, and per
  failed service its message, health-check output and last log lines, cut to a bounded size), for
  ``gitops history`` and ``status``;
* ``revisions``: commits that failed (invalid manifests, or a rollout that rolled back), so the loop
  does not apply the same broken commit on every poll; retried after a capped backoff, on a new
  commit, or with ``--force``;
* ``services``: per service the last-known-good revision and spec hash;
* ``pins``: services put back by ``gitops rollback``, held at a revision until a commit changes them;
* ``source``: the last fetch (time, commit, error);
* ``containers``: the IDs of containers gitops created, or inspected and found as their spec says.
  Docker gives a container its ID only when it is created, so a container with copied labels made
  by hand has an ID not in this list: it is inspected once (settings_drift) before it is trusted.

Every write is one transaction; the journal (WAL) keeps the file consistent through a crash or a
full disk. Nothing secret is stored: specs are kept as hashes, URLs are redacted by the caller.

Everything under the state directory is private to its owner (folders 0700, files 0600 or stricter):
the directory, state.db and its WAL/SHM files are created so, and modes an older version left looser
are tightened when the store is opened (:func:`make_private`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops.errors import GitopsError
from gitops.process import pid_alive

SCHEMA = """
CREATE TABLE IF NOT EXISTS passes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL,
    trigger TEXT NOT NULL,
    revision TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT 'running',
    summary TEXT NOT NULL DEFAULT '{}',
    services TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT '',
    pid INTEGER NOT NULL DEFAULT 0,
    details TEXT NOT NULL DEFAULT '{}',
    pins TEXT NOT NULL DEFAULT '{}',
    images TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS revisions (
    revision TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt REAL NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY,
    revision TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pins (
    service TEXT PRIMARY KEY,
    revision TEXT NOT NULL,
    head_spec_hash TEXT NOT NULL,
    pinned_at REAL NOT NULL,
    digest TEXT NOT NULL DEFAULT ''
);
-- pins per project (``pins`` above is the table of versions that kept one project per state directory;
-- its rows move here, under project '', when the store is opened)
CREATE TABLE IF NOT EXISTS project_pins (
    project TEXT NOT NULL,
    service TEXT NOT NULL,
    revision TEXT NOT NULL,
    head_spec_hash TEXT NOT NULL,
    pinned_at REAL NOT NULL,
    digest TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (project, service)
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS source (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT NOT NULL DEFAULT '',
    ref TEXT NOT NULL DEFAULT '',
    commit_id TEXT NOT NULL DEFAULT '',
    fetched_at REAL,
    error TEXT NOT NULL DEFAULT '',
    error_at REAL
);
"""

# Columns added after the first release, with their definitions: added to an older state.db when opened.
MIGRATIONS = {("passes", "details"): "TEXT NOT NULL DEFAULT '{}'", ("passes", "pins"): "TEXT NOT NULL DEFAULT '{}'",
              ("passes", "images"): "TEXT NOT NULL DEFAULT '{}'", ("pins", "digest"): "TEXT NOT NULL DEFAULT ''"}

# Failure evidence comes from containers (health-check output, log lines): the record keeps a bounded part.
MAX_DETAIL_CHARS = 2000  # a message or health-check output; the end of the output is kept (it says why)
MAX_LOG_LINES = 20  # the last log lines of the failing container
MAX_LOG_CHARS = 4000


def bounded_details(details: dict[str, dict[str, str]] | None) -> dict[str, dict[str, str]]:
    """Per service {message, health_output, logs}, each cut to its bound: messages keep their start, output
    and logs their end."""
    out = {}
    for service, found in (details or {}).items():
        logs = "\n".join(str(found.get("logs", "")).splitlines()[-MAX_LOG_LINES:])[-MAX_LOG_CHARS:]
        out[service] = {"message": str(found.get("message", ""))[:MAX_DETAIL_CHARS],
                        "health_output": str(found.get("health_output", ""))[-MAX_DETAIL_CHARS:],
                        "logs": logs}
    return out


class StateError(GitopsError):
    """The store cannot be written (e.g. the disk is full). Temporary: retrying once space is back helps."""

    temporary = True


@dataclass(frozen=True)
class PassRecord:
    id: int
    started_at: float
    finished_at: float | None
    trigger: str
    revision: str
    outcome: str
    summary: dict[str, Any]
    services: dict[str, Any]
    error: str
    details: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> message, health_output, logs
    pins: dict[str, str] = field(default_factory=dict)  # service -> the revision whose spec it had (a pin held)
    images: dict[str, str] = field(default_factory=dict)  # service -> the image digest it ran (resolve: digest)

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "started_at": self.started_at, "finished_at": self.finished_at,
                "duration": self.duration, "trigger": self.trigger, "revision": self.revision,
                "outcome": self.outcome, "summary": self.summary, "services": self.services, "error": self.error,
                "details": self.details, "pins": self.pins, "images": self.images}


@dataclass(frozen=True)
class FailedRevision:
    revision: str
    attempts: int
    last_attempt: float
    error: str


def private_dir(path: Path) -> Path:
    """Create ``path`` (and any missing parent) as 0700; an existing ``path`` loses group/other bits."""
    path = Path(path)
    missing = []
    for level in (path, *path.parents):
        if level.exists():
            break
        missing.append(level)
    for level in reversed(missing):
        with suppress(FileExistsError):  # made meanwhile by another process: its mode is fixed below
            level.mkdir(mode=0o700)
    _tighten(path)
    return path


def _tighten(path: Path) -> None:
    """Drop group/other bits. Symlinks are skipped: chmod would follow one to a file anywhere."""
    with suppress(FileNotFoundError):
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            os.chmod(path, stat.S_IMODE(mode) & 0o700)


_made_private: set[Path] = set()
_made_private_lock = threading.Lock()


def make_private(root: Path) -> None:
    """Tighten every folder and file under ``root`` (once per process per tree): what an older version,
    or a process with a looser umask, left readable to others. Never follows symlinks."""
    root = Path(root).absolute()
    with _made_private_lock:
        if any(done == root or done in root.parents for done in _made_private):
            return
        _made_private.add(root)
    _tighten(root)
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in (*dirs, *files):
            _tighten(Path(folder, name))


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gitops"


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = private_dir(Path(directory))
        self.path = self.directory / "state.db"
        self._lock = threading.Lock()
        try:
            # SQLite gives the WAL and SHM files the database file's mode: create it 0600 first.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
            make_private(self.directory)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._migrate()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StateError(f"state store {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        """Add the columns an older state.db lacks (CREATE TABLE IF NOT EXISTS leaves its tables as they were)."""
        for (table, column), definition in MIGRATIONS.items():
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                try:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
                except sqlite3.OperationalError:
                    # another process opening the same old store added it first
                    if column not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
                        raise
        with self._tx() as db:  # pins made before they were kept per project: held for any project
            db.execute("INSERT OR IGNORE INTO project_pins (project, service, revision, head_spec_hash, pinned_at, "
                       "digest) SELECT '', service, revision, head_spec_hash, pinned_at, digest FROM pins")
            db.execute("DELETE FROM pins")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                with suppress(sqlite3.OperationalError):
                    self._db.execute("ROLLBACK")
                raise StateError(f"state store {self.path}: {exc}") from exc

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def check(self) -> str:
        """SQLite's own integrity check: 'ok' when the file is sound."""
        return str(self._query("PRAGMA integrity_check")[0][0])

    # -- passes -------------------------------------------------------------------------------------------
    def begin_pass(self, trigger: str, *, now: float | None = None) -> int:
        with self._tx() as db:
            # A pass still 'running' whose process is gone was killed mid-way: say so in the history.
            for pass_id, pid in db.execute("SELECT id, pid FROM passes WHERE outcome='running'").fetchall():
                if pid and not pid_alive(pid):
                    db.execute("UPDATE passes SET outcome='interrupted', error=? WHERE id=?",
                               ("the reconciler stopped during this pass (killed or crashed)", pass_id))
            cur = db.execute("INSERT INTO passes (started_at, trigger, pid) VALUES (?, ?, ?)",
                             (now or time.time(), trigger, os.getpid()))
            return int(cur.lastrowid or 0)

    def finish_pass(self, pass_id: int, *, revision: str, outcome: str, summary: dict[str, Any] | None = None,
                    services: dict[str, Any] | None = None, error: str = "",
                    details: dict[str, dict[str, str]] | None = None, pins: dict[str, str] | None = None,
                    images: dict[str, str] | None = None, now: float | None = None) -> None:
        """``details``: per failed service its message, health-check output and log lines (bounded here);
        ``pins``: the services held at an older revision's spec in this pass (service -> that revision);
        ``images``: the digest each service's image was resolved to (service -> sha256:...)."""
        with self._tx() as db:
            db.execute("UPDATE passes SET finished_at=?, revision=?, outcome=?, summary=?, services=?, error=?, "
                       "details=?, pins=?, images=? WHERE id=?",
                       (now or time.time(), revision, outcome, json.dumps(summary or {}), json.dumps(services or {}),
                        error, json.dumps(bounded_details(details)), json.dumps(pins or {}),
                        json.dumps(images or {}), pass_id))

    def passes(self, *, limit: int = 50, service: str | None = None) -> list[PassRecord]:
        rows = self._query("SELECT id, started_at, finished_at, trigger, revision, outcome, summary, services, error, "
                           "details, pins, images FROM passes ORDER BY id DESC LIMIT ?",
                           (limit if service is None else limit * 20,))
        out = []
        for row in rows:
            record = PassRecord(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]),
                                json.loads(row[7]), row[8], json.loads(row[9]), json.loads(row[10]),
                                json.loads(row[11]))
            if service is None or service in record.services:
                out.append(record)
        return out[:limit]

    # -- failed revisions ---------------------------------------------------------------------------------
    def mark_failed(self, revision: str, error: str, *, now: float | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO revisions (revision, status, attempts, last_attempt, error) "
                       "VALUES (?, 'failed', 1, ?, ?) "
                       "ON CONFLICT(revision) DO UPDATE SET status='failed', attempts=attempts+1, "
                       "last_attempt=excluded.last_attempt, error=excluded.error",
                       (revision, now or time.time(), error))

    def mark_good(self, revision: str, *, now: float | None = None) -> None:
        with self._tx() as db:
            # attempts counts failures since the revision last converged: its next failure backs off from the base.
            db.execute("INSERT INTO revisions (revision, status, attempts, last_attempt) VALUES (?, 'ok', 0, ?) "
                       "ON CONFLICT(revision) DO UPDATE SET status='ok', attempts=0, "
                       "last_attempt=excluded.last_attempt, error=''", (revision, now or time.time()))

    def failed(self, revision: str) -> FailedRevision | None:
        rows = self._query("SELECT revision, attempts, last_attempt, error FROM revisions "
                           "WHERE revision=? AND status='failed'", (revision,))
        return FailedRevision(*rows[0]) if rows else None

    # -- last-known-good ----------------------------------------------------------------------------------
    def record_good(self, services: dict[str, str], revision: str, *, now: float | None = None) -> None:
        """``services`` maps service name -> spec hash that is now running healthy."""
        with self._tx() as db:
            for name, spec_hash in services.items():
                db.execute("INSERT INTO services (name, revision, spec_hash, updated_at) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT(name) DO UPDATE SET revision=excluded.revision, spec_hash=excluded.spec_hash, "
                           "updated_at=excluded.updated_at", (name, revision, spec_hash, now or time.time()))

    def last_good(self) -> dict[str, tuple[str, str, float]]:
        rows = self._query("SELECT name, revision, spec_hash, updated_at FROM services")
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    # -- pins ---------------------------------------------------------------------------------------------
    def pin(self, project: str, service: str, revision: str, head_spec_hash: str, *, digest: str = "",
            now: float | None = None) -> None:
        """Hold ``project``'s ``service`` at ``revision``'s spec (and at image ``digest``, when its tag is
        resolved). Pins are kept per project: one state directory may serve several."""
        with self._tx() as db:
            db.execute("DELETE FROM project_pins WHERE project='' AND service=?", (service,))
            db.execute("INSERT INTO project_pins (project, service, revision, head_spec_hash, pinned_at, digest) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(project, service) DO UPDATE SET "
                       "revision=excluded.revision, head_spec_hash=excluded.head_spec_hash, "
                       "pinned_at=excluded.pinned_at, digest=excluded.digest",
                       (project, service, revision, head_spec_hash, now or time.time(), digest))

    def unpin(self, project: str, service: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM project_pins WHERE project IN (?, '') AND service=?",
                              (project, service)).rowcount > 0

    def _pin_rows(self, project: str) -> list[tuple[Any, ...]]:
        # a pin from before pins were per project ('') counts for every project; the project's own one wins
        return self._query("SELECT service, revision, head_spec_hash, digest FROM project_pins "
                           "WHERE project IN (?, '') ORDER BY project = ?, service", (project, project))

    def pins(self, project: str) -> dict[str, tuple[str, str]]:
        """service -> (revision it is held at, HEAD's spec hash when it was pinned), for ``project``."""
        return {r[0]: (r[1], r[2]) for r in self._pin_rows(project)}

    def pin_digests(self, project: str) -> dict[str, str]:
        """service -> the image digest a pin holds it at (services whose tag is resolved to a digest)."""
        return {r[0]: r[3] for r in self._pin_rows(project) if r[3]}

    # -- containers known to be as their spec says ----------------------------------------------------------
    def trusted_containers(self) -> dict[str, str]:
        """id -> host of every container known as declared."""
        return {r[0]: r[1] for r in self._query("SELECT id, host FROM containers")}

    def trust_containers(self, ids: dict[str, str], *, present: dict[str, set[str]] | None = None,
                         now: float | None = None) -> None:
        """Remember ``ids`` (id -> host). With ``present`` (host -> every id seen there), forget the ones
        that are gone from those hosts, so the table only holds what exists."""
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO containers (id, host, seen_at) VALUES (?, ?, ?)",
                           [(cid, host, now or time.time()) for cid, host in ids.items()])
            for host, seen in (present or {}).items():
                rows = db.execute("SELECT id FROM containers WHERE host=?", (host,)).fetchall()
                db.executemany("DELETE FROM containers WHERE id=?", [(r[0],) for r in rows if r[0] not in seen])

    # -- source -------------------------------------------------------------------------------------------
    def record_fetch(self, *, url: str, ref: str, commit: str = "", error: str = "", now: float | None = None) -> None:
        now = now or time.time()
        with self._tx() as db:
            if error:
                db.execute("INSERT INTO source (id, url, ref, error, error_at) VALUES (1, ?, ?, ?, ?) "
                           "ON CONFLICT(id) DO UPDATE SET url=excluded.url, ref=excluded.ref, error=excluded.error, "
                           "error_at=excluded.error_at", (url, ref, error, now))
            else:
                db.execute("INSERT INTO source (id, url, ref, commit_id, fetched_at, error) VALUES (1, ?, ?, ?, ?, '') "
                           "ON CONFLICT(id) DO UPDATE SET url=excluded.url, ref=excluded.ref, "
                           "commit_id=excluded.commit_id, fetched_at=excluded.fetched_at, error=''",
                           (url, ref, commit, now))

    def source(self) -> dict[str, Any]:
        rows = self._query("SELECT url, ref, commit_id, fetched_at, error, error_at FROM source WHERE id=1")
        if not rows:
            return {}
        url, ref, commit, fetched_at, error, error_at = rows[0]
        return {"url": url, "ref": ref, "commit": commit, "fetched_at": fetched_at, "error": error,
                "error_at": error_at, "available": not error}
