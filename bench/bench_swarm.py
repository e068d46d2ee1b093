"""gitops on Swarm against `docker stack deploy` plus waiting for convergence, in one run: a 20-service deploy,
then an update of every service to a new image, on the two-node test cluster (scripts/swarm-cluster.sh).

    .venv/bin/python bench/bench_swarm.py [--runs 3] [--services 20] [--replicas 2]

Both sides get the same services: `local/web`, each replica spread over the nodes' zone label, on one overlay
network (dnsrr: no IPVS here), an exec health check (2 s interval, 3 s timeout, 2 retries), a start-first update
one task at a time with a 10 s monitor (the health check's window: gitops raises the monitor to it, and the stack
file says the same), and a process that ignores SIGTERM, so every old task takes its whole 2 s stop
grace period. What is timed is what a user waits for:
- gitops: `gitops apply -y` (a whole process), which returns once every service converged, or failed;
- docker: `docker stack deploy` (a whole process, which returns before anything runs), then a loop that asks the
  manager every 0.2 s until every service's tasks run on the new spec and its update is complete, the way a
  deploy script has to.
The outcome is checked after each: every task running, on the intended image. Reported: the median of --runs
runs of each, and the ratio gitops / docker. Each run uses a new project and stack, removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from tests.swarmutil import run_script, start_cluster  # noqa: E402

GITOPS = str(Path(sys.executable).parent / "gitops")
ENTRY = "trap '' TERM; exec httpd -f -p 8080 -h /www"  # ignores SIGTERM: each stop takes the whole grace period
CHECK = ["CMD", "wget", "-qO", "/dev/null", "http://127.0.0.1:8080/healthz"]


def gitops_repo(folder: Path, project: str, services: int, replicas: int, image: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "project.yaml").write_text(
        f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project}}}\n---\n"
        "apiVersion: gitops/v1\nkind: Host\nmetadata: {name: cluster}\nspec:\n  url: unix:///var/run/docker.sock\n"
        "  mode: swarm\n  swarm: {endpointMode: dnsrr, publishMode: host}\n---\n"
        "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: backend}\nspec: {}\n")
    for i in range(services):
        (folder / f"s{i}.yaml").write_text(
            f"apiVersion: gitops/v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n  image: {image}\n"
            f"  entrypoint: {json.dumps(['sh', '-c', ENTRY])}\n  replicas: {replicas}\n  stopGracePeriod: 2s\n"
            "  networks: [backend]\n  placement: {spread: [zone]}\n"
            f"  healthcheck: {{exec: {json.dumps(CHECK[1:])}, interval: 2s, timeout: 3s, retries: 2}}\n"
            "  update: {order: start-first, parallelism: 1}\n")
    return folder


def stack_file(path: Path, services: int, replicas: int, image: str) -> Path:
    lines = ["version: '3.8'", "networks:", "  backend: {driver: overlay, attachable: true}", "services:"]
    for i in range(services):
        lines += [f"  s{i}:", f"    image: {image}", f"    entrypoint: {json.dumps(['sh', '-c', ENTRY])}",
                  "    stop_grace_period: 2s", "    networks: [backend]",
                  f"    healthcheck: {{test: {json.dumps(CHECK)}, interval: 2s, timeout: 3s, retries: 2}}",
                  "    deploy:", f"      replicas: {replicas}", "      endpoint_mode: dnsrr",
                  "      placement: {preferences: [{spread: node.labels.zone}]}",
                  "      update_config: {parallelism: 1, order: start-first, monitor: 10s, failure_action: rollback}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return took


def converged(api: docker.APIClient, label: str, services: int, replicas: int, image: str) -> bool:
    """Every service of the stack or project runs ``replicas`` tasks on its current spec, with ``image``, and no
    update is in progress: what both sides must reach (and what the outcome check asserts)."""
    listed = api.services(filters={"label": label})
    if len(listed) != services:
        return False
    tasks = api.tasks(filters={"service": [s["ID"] for s in listed], "desired-state": "running"})
    for item in listed:
        if (item.get("UpdateStatus") or {}).get("State", "completed") not in ("completed",):
            return False
        mine = [t for t in tasks if t["ServiceID"] == item["ID"] and t["Status"]["State"] == "running"
                and t["Spec"]["ContainerSpec"]["Image"].split("@")[0] == image]
        if len(mine) != replicas:
            return False
    return True


def wait_converged(api: docker.APIClient, label: str, services: int, replicas: int, image: str) -> None:
    deadline = time.monotonic() + 600
    while not converged(api, label, services, replicas, image):
        if time.monotonic() > deadline:
            raise SystemExit(f"{label}: did not converge on {image} in 600 s")
        time.sleep(0.2)


def remove(api: docker.APIClient, label: str) -> None:
    for item in api.services(filters={"label": label}):
        api.remove_service(item["ID"])
    deadline = time.monotonic() + 120
    while api.containers(all=True, filters={"label": label}) and time.monotonic() < deadline:
        time.sleep(0.5)
    for net in api.networks(filters={"label": label}):
        with contextlib.suppress(docker.errors.APIError):  # still held by a stopping task: the cluster's stop
            api.remove_network(net["Id"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=2)
    opts = parser.parse_args()
    facts = start_cluster()
    print(f"cluster: manager + worker ({facts['worker_hostname']}), {opts.services} services x {opts.replicas} "
          "replicas, start-first, 2 s grace period used in full", flush=True)
    api = docker.APIClient(version="auto", timeout=120)
    times: dict[str, list[float]] = {k: [] for k in ("gitops deploy", "gitops update", "stack deploy", "stack update")}
    n, r = opts.services, opts.replicas
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(opts.runs):
                project = f"b{uuid.uuid4().hex[:6]}"
                folder = Path(tmp) / project
                label = f"io.gitops.project={project}"
                state = ["--state-dir", str(Path(tmp) / f"state-{project}")]
                gitops_repo(folder, project, n, r, "local/web:1")
                times["gitops deploy"].append(run([GITOPS, "apply", "-y", *state, str(folder)]))
                assert converged(api, label, n, r, "local/web:1"), "gitops said done before converging"
                gitops_repo(folder, project, n, r, "local/web:2")
                times["gitops update"].append(run([GITOPS, "apply", "-y", *state, str(folder)]))
                assert converged(api, label, n, r, "local/web:2"), "gitops said done before converging"
                remove(api, label)

                stack = f"k{uuid.uuid4().hex[:6]}"
                slabel = f"com.docker.stack.namespace={stack}"
                compose = stack_file(Path(tmp) / f"{stack}.yml", n, r, "local/web:1")
                started = time.perf_counter()
                run(["docker", "stack", "deploy", "-c", str(compose), stack])
                wait_converged(api, slabel, n, r, "local/web:1")
                times["stack deploy"].append(time.perf_counter() - started)
                stack_file(compose, n, r, "local/web:2")
                started = time.perf_counter()
                run(["docker", "stack", "deploy", "-c", str(compose), stack])
                wait_converged(api, slabel, n, r, "local/web:2")
                times["stack update"].append(time.perf_counter() - started)
                remove(api, slabel)
                print(f"  run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)
    finally:
        run_script("stop", timeout=120)
    for what in ("deploy", "update"):
        ours, theirs = statistics.median(times[f"gitops {what}"]), statistics.median(times[f"stack {what}"])
        print(f"{what}: gitops apply {ours:.1f} s, docker stack deploy + wait {theirs:.1f} s: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
