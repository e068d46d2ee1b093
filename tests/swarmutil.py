"""A real two-node Docker Swarm for tests: scripts/swarm-cluster.sh as a session fixture.

The local engine becomes a Swarm manager (advertising the host end of a veth) and a second dockerd in the
network namespace ``gitops-w1`` joins it as a worker; see the comments at the top of the script for what
works on these machines (no IPVS here: no routing mesh and no service VIPs, overlays with dnsrr do work).

Use the session fixture ``swarm_cluster`` (import it into conftest.py). It yields a dict: the facts the
script printed (``manager_addr``, ``manager_node_id``, ``worker_addr``, ``worker_node_id``,
``worker_hostname``, ``worker_host``, ``worker_pidfile``, ``netns``, ``veth_host``, ``ipvs`` ...), plus
``manager`` and ``worker`` (docker-py clients of the two engines). ``start_cluster()`` runs the script's
``start`` again, e.g. to bring back a worker a test stopped; it waits until the worker is Ready.
At the end of the session the script's ``stop`` puts the machine back as it was.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "swarm-cluster.sh"
START_TIMEOUT = 120.0  # the script gives itself 60 s; more only when it has packages to install


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def run_script(command: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``swarm-cluster.sh COMMAND``; a timeout comes back as a failed run with the reason in stderr."""
    try:
        return subprocess.run(["bash", str(SCRIPT), command], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return subprocess.CompletedProcess(exc.cmd, 124, "", f"{stderr}\nswarm-cluster.sh {command}: no answer "
                                                              f"within {timeout:.0f} s")


def parse_facts(text: str) -> dict[str, str]:
    """The script's stdout, one ``key=value`` a line, as a dict (lines without ``=`` are ignored)."""
    facts = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            facts[key.strip()] = value.strip()
    return facts


def start_cluster() -> dict[str, str]:
    """``swarm-cluster.sh start``: its facts; raises RuntimeError with the tail of its stderr on failure."""
    proc = run_script("start")
    facts = parse_facts(proc.stdout)
    if proc.returncode != 0 or "worker_node_id" not in facts:
        raise RuntimeError(f"swarm-cluster.sh start exited {proc.returncode}: {proc.stderr[-2000:]}")
    return facts


@pytest.fixture(scope="module")
def swarm_cluster(docker_client) -> Any:
    """The facts of a running two-node Swarm plus ``manager`` and ``worker`` docker-py clients. Per test module:
    the local engine leaves the swarm after it, so the other tests run on a plain engine as CI does.

    In CI (CI=true) a cluster that does not start fails the test; elsewhere the test is skipped with the
    script's stderr tail.
    """
    import docker

    try:
        facts = start_cluster()
    except RuntimeError as exc:
        run_script("stop", timeout=60)  # whatever half of it was made
        if _in_ci():
            pytest.fail(f"Swarm test cluster did not start: {exc}")
        pytest.skip(f"Swarm test cluster did not start: {exc}")
    manager = docker.DockerClient(base_url=facts["manager_host"], version="auto", timeout=30)
    worker = docker.DockerClient(base_url=facts["worker_host"], version="auto", timeout=30)
    try:
        yield {**facts, "manager": manager, "worker": worker}
    finally:
        manager.close()
        worker.close()
        proc = run_script("stop", timeout=60)
        if proc.returncode != 0:
            pytest.fail(f"swarm-cluster.sh stop exited {proc.returncode}: {proc.stderr[-2000:]}")
