"""Named failpoints for crash tests: GITOPS_FAILPOINTS=after_create,before_record kills the process there.

Each name may carry a count, ``name:N``: crash at the N-th time the point is reached (default 1).
Unset (the normal case), a failpoint costs one dictionary lookup. Never set it in production.

Points: during_pull, after_create, after_start, during_health_wait, after_stop_old, before_record.
"""

from __future__ import annotations

import os
import signal
import threading

POINTS = ("during_pull", "after_create", "after_start", "during_health_wait", "after_stop_old", "before_record")

_lock = threading.Lock()
_hits: dict[str, int] = {}


def _armed() -> dict[str, int]:
    spec = os.environ.get("GITOPS_FAILPOINTS", "")
    out = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = item.partition(":")
        out[name] = int(count) if count.isdigit() else 1
    return out


def failpoint(name: str) -> None:
    """Crash the whole process with SIGKILL when ``name`` is armed (and reached often enough)."""
    armed = _armed()
    if name not in armed:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] < armed[name]:
            return
    os.write(2, f"gitops: failpoint {name} reached: SIGKILL\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)
