"""Running gitops on hostile input as a user would: a whole process, timed, with its peak memory.

The hostile-input suite (SECURITY.md 4b) asserts that every refused case is refused by its rule id
or exact message, in under a second and under 200 MB. Both bounds are about the work the hostile
input causes, so they are measured on the process that does it: ``run_gitops`` starts
``python -m gitops ARGS`` and reads its peak RSS from ``wait4``; ``measure`` runs one Python call
in a fresh interpreter the same way, for inputs that no CLI command reaches directly.

The time bound is checked on the work itself, not on interpreter start-up (about 0.3-0.6 s on a
loaded 2-core machine, and no part of what the input costs): the child reports how long the work
took, measured around the call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_SECONDS = 1.0
MAX_RSS_MB = 200.0


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # the work, measured inside the child (start-up excluded)
    wall_seconds: float  # the whole process, start-up included
    max_rss_mb: float

    def within_bounds(self) -> None:
        """Assert the SECURITY.md bounds, with a message that says what was measured."""
        assert self.seconds < MAX_SECONDS, f"took {self.seconds:.2f} s (bound {MAX_SECONDS} s)\n{self.stderr[-2000:]}"
        assert self.max_rss_mb < MAX_RSS_MB, f"peak RSS {self.max_rss_mb:.0f} MB (bound {MAX_RSS_MB} MB)"


_TIMED_MAIN = textwrap.dedent("""
    import sys, time, json, os
    from gitops.cli.commands import main
    started = time.perf_counter()
    code = 0
    try:
        main.main(args=sys.argv[1:], prog_name="gitops", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        elapsed = time.perf_counter() - started
        with open(os.environ["GITOPS_TEST_TIMING"], "w") as handle:
            json.dump({"seconds": elapsed}, handle)
    sys.exit(code)
""")


def _spawn(argv: list[str], *, cwd: Path | None, env: dict[str, str] | None, timeout: float,
           timing_file: Path) -> Measured:
    full_env = {**os.environ, **(env or {}), "GITOPS_TEST_TIMING": str(timing_file)}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    # Read the pipes on threads (communicate) but reap ourselves: wait4 gives the rusage.
    import threading

    chunks: dict[str, str] = {}

    def drain(name: str, stream: Any) -> None:
        chunks[name] = stream.read()

    readers = [threading.Thread(target=drain, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for reader in readers:
        reader.start()
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            for reader in readers:
                reader.join()
            raise AssertionError(f"still running after {timeout} s: {chunks.get('err', '')[-2000:]}")
        time.sleep(0.01)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    for reader in readers:
        reader.join()
    seconds = json.loads(timing_file.read_text())["seconds"] if timing_file.exists() else wall
    return Measured(proc.returncode, chunks.get("out", ""), chunks.get("err", ""), seconds, wall,
                    usage.ru_maxrss / 1024)


def run_gitops(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               tmp: Path, timeout: float = 60) -> Measured:
    """``gitops ARGS`` as a whole process; ``tmp`` is a folder for the timing file."""
    timing = tmp / f"timing-{time.monotonic_ns()}.json"
    return _spawn([sys.executable, "-c", _TIMED_MAIN, *args], cwd=cwd, env=env, timeout=timeout, timing_file=timing)


def measure(code: str, *, tmp: Path, timeout: float = 60) -> Measured:
    """Run ``code`` (a Python snippet; it may print a result) in a fresh interpreter, timed around the
    snippet itself, with the process's peak RSS."""
    timing = tmp / f"timing-{time.monotonic_ns()}.json"
    wrapper = (
        "import sys, time, json, os\n"
        "started = time.perf_counter()\n"
        "try:\n" + textwrap.indent(textwrap.dedent(code), "    ") + "\n"
        "finally:\n"
        "    json.dump({'seconds': time.perf_counter() - started}, open(os.environ['GITOPS_TEST_TIMING'], 'w'))\n"
    )
    return _spawn([sys.executable, "-c", wrapper], cwd=None, env=None, timeout=timeout, timing_file=timing)
