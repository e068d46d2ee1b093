"""Engine benchmark: gitops against the raw docker-py lower bound (and docker-compose when installed),
measured in the same run on the local engine, reported as ratios.

    .venv/bin/python bench/bench_engine.py [--services 20] [--rounds 3]

Scenarios, each for N one-replica services (image local/web, init on, no health check so every
variant does the same Docker work):
  create   from nothing            raw: thread pool of create+start
  update   image 1 -> 2            raw: thread pool of create+start new, stop and remove old
  noop     nothing changed         full pass (load, observe, plan, record) and the list and inspect
                                   calls it made per host (containers gitops made are never inspected)
  slow     an env change, start-first, of services whose old containers use their whole stop grace
           period (init off: busybox httpd as PID 1 ignores SIGTERM, as servers that drain for
           seconds do); grace 3 s everywhere (stopGracePeriod 3s, compose stop_grace_period 3s)
                                   raw: thread pool of create+start new, force-remove old (no grace at all)
Every gitops figure is a whole pass as `gitops sync` runs it: lease, state store and re-observation included.
  plan     2,000 services x 50 hosts, synthetic observed state, pure planner only
Targets: create <= 1.2x raw and faster than compose; noop <= 0.3 s with one list call per host;
update (fast stops) <= 1.1x raw; slow <= compose and <= grace + 1.2x raw; plan < 1 s.
The median of --rounds runs is reported (compose runs once).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gitops.core.model import (  # noqa: E402
    DesiredState,
    HostSpec,
    ProjectSpec,
    ServiceSpec,
    UpdatePolicy,
)
from gitops.core.planner import plan  # noqa: E402
from gitops.engine.reconciler import LocalSource, Reconciler  # noqa: E402
from gitops.state import StateStore  # noqa: E402
from gitops.testing import converged  # noqa: E402

WORKERS = 8
SLOW_GRACE = 3  # seconds: the stop grace period of the slow-stop scenario, the same for every variant


def write_repo(root: Path, project: str, n: int, image: str, *, init: bool = True, grace: int = 2,
               env: str = "") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.yaml").write_text(f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project}}}\n")
    extra = ("  init: true\n" if init else "") + (f"  env: {{ROUND: '{env}'}}\n" if env else "")
    docs = [f"apiVersion: gitops/v1\nkind: Service\nmetadata: {{name: s{i:02d}}}\nspec:\n  image: {image}\n"
            f"  pullPolicy: never\n  stopGracePeriod: {grace}s\n  update: {{order: start-first}}\n{extra}"
            for i in range(n)]
    (root / "services.yaml").write_text("---\n".join(docs))


def gitops_pass(root: Path, state: Path) -> tuple[float, bool]:
    """One real pass, as `gitops sync` and the daemon run it: load, observe, plan, lease, apply, record."""
    started = time.perf_counter()
    store = StateStore(state)
    try:
        result = Reconciler(LocalSource(root), store, concurrency=WORKERS).run_pass("bench")
    finally:
        store.close()
    return time.perf_counter() - started, result.ok


def purge(client: docker.DockerClient, label: str) -> None:
    for c in client.containers.list(all=True, filters={"label": label}):
        c.remove(force=True)


def raw_create(api: docker.APIClient, label: str, n: int, image: str, suffix: str, *,
               init: bool = True) -> tuple[float, list[str]]:
    def one(i: int) -> str:
        c = api.create_container(image, name=f"{label}-{i}-{suffix}", labels={"bench": label},
                                 host_config=api.create_host_config(init=init or None), stop_timeout=SLOW_GRACE)
        api.start(c["Id"])
        return str(c["Id"])

    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        ids = list(pool.map(one, range(n)))
    return time.perf_counter() - started, ids


def raw_update(api: docker.APIClient, label: str, n: int, old: list[str]) -> float:
    def one(i: int) -> None:
        c = api.create_container("local/web:2", name=f"{label}-{i}-b", labels={"bench": label},
                                 host_config=api.create_host_config(init=True))
        api.start(c["Id"])
        api.stop(old[i], timeout=2)
        api.remove_container(old[i], force=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - started


def raw_replace(api: docker.APIClient, label: str, n: int, old: list[str]) -> float:
    """The lower bound of an update that does not wait for old containers at all: start new, force-remove old."""
    def one(i: int) -> None:
        c = api.create_container("local/web:1", name=f"{label}-{i}-b", labels={"bench": label},
                                 environment=["ROUND=2"], stop_timeout=SLOW_GRACE)
        api.start(c["Id"])
        api.remove_container(old[i], force=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - started


def compose_slow(n: int, workdir: Path) -> float | None:
    """docker-compose up -d for an env change of N services whose old containers use their grace period."""
    exe = shutil.which("docker-compose")
    if not exe:
        return None
    project = f"bs{uuid.uuid4().hex[:6]}"

    def write(env: str) -> None:
        lines = ["version: '2.4'", "services:"]
        for i in range(n):
            lines += [f"  s{i:02d}:", "    image: local/web:1", f"    stop_grace_period: {SLOW_GRACE}s",
                      f"    environment: {{ROUND: '{env}'}}"]
        (workdir / "docker-compose.yml").write_text("\n".join(lines) + "\n")

    try:
        write("1")
        subprocess.run([exe, "-p", project, "up", "-d"], cwd=workdir, check=True, capture_output=True)
        write("2")
        started = time.perf_counter()
        subprocess.run([exe, "-p", project, "up", "-d"], cwd=workdir, check=True, capture_output=True)
        return time.perf_counter() - started
    finally:
        subprocess.run([exe, "-p", project, "down", "-t", "0"], cwd=workdir, capture_output=True)


def compose_times(n: int, workdir: Path) -> dict[str, float] | None:
    exe = shutil.which("docker-compose")
    if not exe:
        return None
    project = f"bc{uuid.uuid4().hex[:6]}"

    def write(image: str) -> None:
        lines = ["version: '2.4'", "services:"]
        for i in range(n):
            lines += [f"  s{i:02d}:", f"    image: {image}", "    init: true", "    stop_grace_period: 2s"]
        (workdir / "docker-compose.yml").write_text("\n".join(lines) + "\n")

    def up() -> float:
        started = time.perf_counter()
        subprocess.run([exe, "-p", project, "up", "-d"], cwd=workdir, check=True, capture_output=True)
        return time.perf_counter() - started

    try:
        write("local/web:1")
        create = up()
        noop = up()
        write("local/web:2")
        update = up()
    finally:
        subprocess.run([exe, "-p", project, "down", "-t", "1"], cwd=workdir, capture_output=True)
    return {"create": create, "update": update, "noop": noop}


class CallCounter:
    """Counts docker API list (and inspect) calls made through APIClient during a block."""

    NAMES = ("containers", "networks", "volumes", "inspect_container")

    def __init__(self) -> None:
        self.calls: dict[str, int] = dict.fromkeys(self.NAMES, 0)
        self._saved: dict[str, object] = {}

    def __enter__(self) -> CallCounter:
        for name in self.NAMES:
            original = getattr(docker.APIClient, name)
            self._saved[name] = original

            def wrapper(*args, _original=original, _name=name, **kwargs):  # type: ignore[no-untyped-def]
                self.calls[_name] = self.calls.get(_name, 0) + 1
                return _original(*args, **kwargs)

            setattr(docker.APIClient, name, wrapper)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._saved.items():
            setattr(docker.APIClient, name, original)


def slow_round(client: docker.DockerClient, n: int, rows: dict[str, list[float]]) -> None:
    """The slow-stop scenario once: raw (create, then replace by force-removal) and gitops (create, env change)."""
    label = f"bench{uuid.uuid4().hex[:6]}"
    try:
        t, ids = raw_create(client.api, label, n, "local/web:1", "a", init=False)
        rows["raw_slow_create"].append(t)
        rows["raw_slow"].append(raw_replace(client.api, label, n, ids))
    finally:
        purge(client, f"bench={label}")
    project = f"bg{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        root, state = Path(tmp) / "repo", Path(tmp) / "state"
        try:
            write_repo(root, project, n, "local/web:1", init=False, grace=SLOW_GRACE, env="1")
            assert gitops_pass(root, state)[1], "gitops create (slow scenario) failed"
            write_repo(root, project, n, "local/web:1", init=False, grace=SLOW_GRACE, env="2")
            t, ok = gitops_pass(root, state)
            assert ok, "gitops update (slow scenario) failed"
            rows["gitops_slow"].append(t)
        finally:
            purge(client, f"io.gitops.project={project}")


def synthetic(services: int, hosts: int) -> DesiredState:
    host_specs = tuple(HostSpec(f"h{i:02d}", f"unix:///run/h{i}.sock") for i in range(hosts))
    svcs = tuple(
        ServiceSpec(name=f"s{i:04d}", image=f"registry.example/app{i % 7}:1", replicas=1 + i % 3,
                    hosts=tuple(h.name for h in host_specs[i % hosts:i % hosts + 2]), update=UpdatePolicy())
        for i in range(services))
    return DesiredState(ProjectSpec("bench"), host_specs, (), (), svcs, "r1")


def bench_plan(rounds: int) -> dict[str, float]:
    before = synthetic(2000, 50)
    observed = converged(before)
    # a realistic change: a tenth of the services get a new image
    after_services = tuple(
        ServiceSpec(**{**s.__dict__, "image": s.image.replace(":1", ":2")}) if i % 10 == 0 else s
        for i, s in enumerate(before.services))
    after = DesiredState(before.project, before.hosts, (), (), after_services, "r2")
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        p = plan(after, observed)
        times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times), "steps": len(p.steps), "changes": len(p.changes),
            "instances": sum(s.replicas for s in after.services)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    n = args.services
    client = docker.from_env(version="auto")
    api = client.api
    rows: dict[str, list[float]] = {k: [] for k in ("raw_create", "gitops_create", "raw_update", "gitops_update",
                                                     "gitops_noop", "raw_slow_create", "raw_slow", "gitops_slow")}
    list_calls: dict[str, int] = {}
    for r in range(args.rounds):
        label = f"bench{uuid.uuid4().hex[:6]}"
        try:
            t, ids = raw_create(api, label, n, "local/web:1", "a")
            rows["raw_create"].append(t)
            rows["raw_update"].append(raw_update(api, label, n, ids))
        finally:
            purge(client, f"bench={label}")
        project = f"bg{uuid.uuid4().hex[:6]}"
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "repo"
            try:
                write_repo(root, project, n, "local/web:1")
                state = Path(tmp) / "state"
                t, ok = gitops_pass(root, state)
                assert ok, "gitops create failed"
                rows["gitops_create"].append(t)
                with CallCounter() as counter:
                    t, ok = gitops_pass(root, state)
                rows["gitops_noop"].append(t)
                list_calls = counter.calls
                write_repo(root, project, n, "local/web:2")
                t, ok = gitops_pass(root, state)
                assert ok, "gitops update failed"
                rows["gitops_update"].append(t)
            finally:
                purge(client, f"io.gitops.project={project}")
        slow_round(client, n, rows)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rows.items()}
    with tempfile.TemporaryDirectory() as tmp:
        compose = compose_times(n, Path(tmp))
    with tempfile.TemporaryDirectory() as tmp:
        compose_slow_update = compose_slow(n, Path(tmp))
    planning = bench_plan(args.rounds)
    result = {
        "services": n, "rounds": args.rounds, "median_seconds": med, "compose_seconds": compose,
        "slow_grace_seconds": SLOW_GRACE, "compose_slow_update_seconds": compose_slow_update,
        "noop_list_calls_per_host": list_calls, "plan_2000x50": planning,
        "ratios": {
            "create_vs_raw": med["gitops_create"] / med["raw_create"],
            "update_vs_raw": med["gitops_update"] / med["raw_update"],
            "create_vs_compose": med["gitops_create"] / compose["create"] if compose else None,
            "update_vs_compose": med["gitops_update"] / compose["update"] if compose else None,
            "slow_vs_compose": med["gitops_slow"] / compose_slow_update if compose_slow_update else None,
            # the target: one grace period plus 1.2x the Docker work of the update done without any grace
            "slow_vs_grace_plus_1.2x_raw": med["gitops_slow"] / (SLOW_GRACE + 1.2 * med["raw_slow"]),
            "slow_minus_grace_vs_raw_create": (med["gitops_slow"] - SLOW_GRACE) / med["raw_slow_create"],
        },
    }
    ratios = result["ratios"]
    print(f"\nN = {n} services, median of {args.rounds} rounds (seconds)")
    for what in ("create", "update"):
        line = (f"  {what}  raw {med['raw_' + what]:.2f}  gitops {med['gitops_' + what]:.2f}"
                f"  -> {ratios[what + '_vs_raw']:.2f}x raw")
        if compose:
            line += f", {ratios[what + '_vs_compose']:.2f}x compose ({compose[what]:.2f})"
        print(line)
    print(f"  slow    raw {med['raw_slow']:.2f} (create alone {med['raw_slow_create']:.2f}, no grace)  gitops "
          f"{med['gitops_slow']:.2f}  -> {ratios['slow_vs_grace_plus_1.2x_raw']:.2f}x ({SLOW_GRACE} s grace + 1.2x raw)"
          + (f", {ratios['slow_vs_compose']:.2f}x compose ({compose_slow_update:.2f})" if compose_slow_update else "")
          + f"; gitops - grace = {ratios['slow_minus_grace_vs_raw_create']:.2f}x raw create alone")
    print(f"  no-op   gitops {med['gitops_noop']:.3f}" + (f"  compose {compose['noop']:.2f}" if compose else "")
          + f"   calls: {list_calls}")
    print(f"  plan    {planning['seconds']:.3f}s for {planning['instances']} instances of 2000 services on 50 hosts "
          f"({planning['changes']} changes)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
