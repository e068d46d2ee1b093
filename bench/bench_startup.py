"""Start-up benchmark: whole `gitops` processes beside `docker-compose up -d`, timed in the same run.

    .venv/bin/python bench/bench_startup.py [--runs 10]

Each command is run --runs times as a fresh process (stdout and stderr to pipes, no terminal) after one
untimed warm-up run, which also writes the .pyc files (PYTHONPYCACHEPREFIX, a temporary folder);
the median, min and max wall-clock times are reported, hyperfine-style:
  python -c pass                       the interpreter alone (the floor for any Python CLI)
  gitops --help
  gitops validate REPO
  gitops apply REPO --yes --state-dir TMP     no-op: after one real apply, nothing to do
  docker-compose up -d                 no-op: after one real `up -d`, on an equivalent compose file
REPO is a copy of example-repo under a fresh project name (so nothing another user runs is touched),
its secret encrypted again for a fresh age key given with SOPS_AGE_KEY_FILE (tests/examplerepo.py; the
timed validate and apply decrypt it), committed to a fresh git repository.
Everything the run creates on the local engine is removed at the end. Targets: --help and validate
under 0.3 s, the no-op apply under docker-compose's no-op `up -d`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.examplerepo import example_copy  # noqa: E402

BIN = Path(sys.executable).parent
GITOPS = str(BIN / "gitops")

# The example repository as a compose file (format 2.4: scale, healthcheck conditions, init, cpus).
COMPOSE = """\
version: "2.4"
networks:
  backend: {driver: bridge}
volumes:
  db-data: {driver: local}
services:
  db:
    image: local/busybox:1
    command: ["sh", "-c", "echo ready > /data/ready && exec httpd -f -p 5432 -h /data"]
    environment: {DB_USER: shop, DB_PASSWORD: example}
    volumes: ["db-data:/data"]
    networks: {backend: {aliases: [database]}}
    mem_limit: 64m
    init: true
    restart: unless-stopped
    stop_grace_period: 5s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:5432/ready"]
      interval: 500ms
      timeout: 2s
      retries: 3
      start_period: 1s
  api:
    image: local/web:1
    environment: {DB_HOST: database, LOG_LEVEL: info, CACHE_TTL: "30", FEATURE_SEARCH: "on"}
    networks: {backend: {aliases: [api]}}
    depends_on: {db: {condition: service_healthy}}
    cpus: 0.5
    mem_limit: 64m
    init: true
    restart: unless-stopped
    stop_grace_period: 5s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
      interval: 500ms
      retries: 3
  web:
    image: local/web:1
    scale: 2
    ports: ["127.0.0.1::8080"]
    networks: [backend]
    depends_on: [api]
    init: true
    restart: unless-stopped
    stop_grace_period: 5s
    stop_signal: SIGTERM
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 500ms
      timeout: 2s
      retries: 3
"""


# Compiled bytecode as an installed copy has it: the warm-up run writes .pyc files (into a private
# folder, so the work tree is left as it is) even where PYTHONDONTWRITEBYTECODE is set.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def run(cmd: list[str], *, cwd: Path | None = None, check: bool = True) -> float:
    """Wall-clock seconds of one whole process."""
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    took = time.perf_counter() - started
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return took


def timed(cmd: list[str], runs: int, *, cwd: Path | None = None) -> list[float]:
    run(cmd, cwd=cwd)  # warm-up: page cache and .pyc files, as a user's second run has them
    return [run(cmd, cwd=cwd) for _ in range(runs)]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def copy_example(dest: Path, project: str) -> Path:
    repo = dest / "repo"
    example = example_copy(repo, ignore=shutil.ignore_patterns(".github"))
    ENV["SOPS_AGE_KEY_FILE"] = str(example.key_file)
    project_file = repo / "project.yaml"
    project_file.write_text(project_file.read_text().replace("name: shop", f"name: {project}", 1))
    # A git checkout, as manifests usually are: apply then reads the revision (GitPython and git run).
    git = ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "example"]):
        subprocess.run([*git, *step], check=True, capture_output=True)
    return repo


def remove_project(project: str) -> None:
    """Everything labelled with the bench's project (containers, the lease, networks, volumes)."""
    label = f"label=io.gitops.project={project}"
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    for kind in ("network", "volume"):
        names = subprocess.run(["docker", kind, "ls", "-q", "--filter", label],
                               capture_output=True, text=True).stdout.split()
        if names:
            subprocess.run(["docker", kind, "rm", *names], capture_output=True)


def row(name: str, times: list[float], compose: float | None) -> str:
    median = statistics.median(times)
    ratio = f"{median / compose:.2f}x" if compose else ""
    return (f"| {name} | {median:.3f} s | {min(times):.3f} s | {max(times):.3f} s | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    compose_bin = shutil.which("docker-compose")
    tag = uuid.uuid4().hex[:8]
    project, compose_project = f"startup{tag}", f"startupc{tag}"
    print(f"load average at start: {load()}")
    with tempfile.TemporaryDirectory(prefix="gitops-startup-") as tmp:
        work = Path(tmp)
        ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        repo = copy_example(work, project)
        state = work / "state"
        apply_cmd = [GITOPS, "apply", str(repo), "--yes", "--state-dir", str(state)]
        results: dict[str, list[float]] = {}
        try:
            results["python -c pass (interpreter only)"] = timed([sys.executable, "-c", "pass"], args.runs)
            results["gitops --help"] = timed([GITOPS, "--help"], args.runs)
            results["gitops validate REPO"] = timed([GITOPS, "validate", str(repo)], args.runs)
            print(f"real apply (untimed): {run(apply_cmd):.2f} s")
            results["gitops apply REPO --yes (no-op)"] = timed(apply_cmd, args.runs)
            if compose_bin:
                (work / "docker-compose.yml").write_text(COMPOSE)
                up = [compose_bin, "-p", compose_project, "up", "-d"]
                print(f"real docker-compose up -d (untimed): {run(up, cwd=work):.2f} s")
                results["docker-compose up -d (no-op)"] = timed(up, args.runs, cwd=work)
        finally:
            remove_project(project)
            if compose_bin:
                subprocess.run([compose_bin, "-p", compose_project, "down", "-v", "-t", "1"], cwd=work,
                               capture_output=True)
    compose = statistics.median(results["docker-compose up -d (no-op)"]) if compose_bin else None
    print(f"\n{args.runs} runs each, after one warm-up run; load average at end: {load()}")
    print("| command | median | min | max | vs docker-compose no-op |")
    print("|---|---|---|---|---|")
    for name, times in results.items():
        print(row(name, times, compose))
    if not compose_bin:
        print("docker-compose not found (Debian: apt-get install docker-compose): no ratios")


if __name__ == "__main__":
    main()
