"""The pure core imports neither docker nor git, and has no clock or network (DESIGN.md)."""

from __future__ import annotations

import subprocess
import sys

CORE = ["gitops.model", "gitops.manifests", "gitops.schema", "gitops.validate", "gitops.policy",
        "gitops.desired", "gitops.units", "gitops.loading", "gitops.planner", "gitops.plan", "gitops.testing", "gitops.settings_drift"]


def test_core_modules_load_neither_docker_nor_git() -> None:
    code = (
        "import sys\n"
        f"for m in {CORE!r}: __import__(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('docker', 'git', 'requests', 'socket', 'urllib3', 'httpx'))\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = [m for m in proc.stdout.strip().split(",") if m]
    assert [m for m in loaded if m.split(".")[0] in ("docker", "git")] == []


def test_core_sources_do_not_read_the_clock() -> None:
    """No time.time/datetime.now in the pure core: same inputs, same outputs."""
    import importlib
    import inspect

    for name in ["gitops.model", "gitops.schema", "gitops.validate", "gitops.policy", "gitops.desired", "gitops.units",
                 "gitops.planner", "gitops.plan", "gitops.testing", "gitops.settings_drift"]:
        source = inspect.getsource(importlib.import_module(name))
        for forbidden in ("time.time(", "datetime.now(", "import docker", "import git", "import socket"):
            assert forbidden not in source, (name, forbidden)
