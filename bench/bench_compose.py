"""Compose loading benchmark: whole `gitops` processes on a 200-service compose stack, beside the same stack
written as gitops/v1 manifests (`gitops convert`), and `docker-compose config` as the peer, in one run.

    .venv/bin/python bench/bench_compose.py [--services 200] [--runs 7]

The stack is what real files hold, per service: an image, a command, an environment with interpolated
values from .env, a published port, a named volume, a repository file bound in, a healthcheck, depends_on
with a health condition, labels and a deploy block; services share networks. Timed, as fresh processes after
one untimed warm-up (median, min, max):
  gitops validate COMPOSE_DIR        load, interpolate, map, schema, checks and policy
  gitops plan COMPOSE_DIR --observed EMPTY    the above, plus the plan against empty hosts (no Docker)
  the same two on the converted manifests     the baseline: what compose adds is the ratio
  docker-compose config -q           compose's own parse and validation of the same file (when installed)
Target: the compose plan under 1 s.
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
from pathlib import Path

BIN = Path(sys.executable).parent
GITOPS = str(BIN / "gitops")


def stack(services: int) -> str:
    lines = ["name: benchstack", "services:"]
    for i in range(services):
        dep = f"\n    depends_on:\n      s{i - 1:03d}: {{condition: service_healthy}}" if i % 10 else ""
        lines.append(f"""\
  s{i:03d}:
    image: local/web:${{TAG}}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    environment:
      LOG_LEVEL: ${{LOG_LEVEL:-info}}
      SERVICE_INDEX: "{i}"
      DB_URL: postgres://db-{i % 7}:5432/app
    ports: ["127.0.0.1::8080"]
    volumes: ["data{i % 20}:/data", "./conf/app.conf:/etc/app.conf:ro"]
    networks: [net{i % 5}]
    labels: {{team: t{i % 4}, tier: web}}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 5s
      retries: 3{dep}
    deploy:
      replicas: {1 + i % 3}
      resources: {{limits: {{cpus: "0.25", memory: 64M}}}}
      update_config: {{parallelism: 1, order: stop-first, monitor: 1s}}""")
    lines.append("networks:")
    lines += [f"  net{n}: {{}}" for n in range(5)]
    lines.append("volumes:")
    lines += [f"  data{v}: {{}}" for v in range(20)]
    return "\n".join(lines) + "\n"


def run(cmd: list[str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return took


def timed(cmd: list[str], runs: int, cwd: Path | None = None) -> list[float]:
    run(cmd, cwd)
    return [run(cmd, cwd) for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        compose = work / "compose"
        (compose / "conf").mkdir(parents=True)
        (compose / "compose.yaml").write_text(stack(args.services))
        (compose / ".env").write_text("TAG=1\n")
        (compose / "conf" / "app.conf").write_text("listen 8080\n")
        manifests = work / "manifests"
        shutil.copytree(compose, manifests)
        converted = subprocess.run([GITOPS, "convert", str(compose)], capture_output=True, text=True, check=True)
        (manifests / "compose.yaml").unlink()
        (manifests / "gitops.yaml").write_text(converted.stdout)
        empty = work / "empty.json"
        empty.write_text(json.dumps({"hosts": [{"host": "local", "reachable": True, "containers": [],
                                                "networks": [], "volumes": []}]}))
        results: dict[str, list[float]] = {
            "python -c pass": timed([sys.executable, "-c", "pass"], args.runs),
            "gitops validate (compose)": timed([GITOPS, "validate", str(compose)], args.runs),
            "gitops validate (manifests)": timed([GITOPS, "validate", str(manifests)], args.runs),
            "gitops plan (compose)": timed([GITOPS, "plan", str(compose), "--observed", str(empty)], args.runs),
            "gitops plan (manifests)": timed([GITOPS, "plan", str(manifests), "--observed", str(empty)], args.runs),
        }
        compose_bin = shutil.which("docker-compose")
        if compose_bin:
            # docker-compose 1.29 (Debian's) reads the Compose Specification but not its top-level name: (the
            # project name is given with -p instead); everything else is the same file.
            peer = work / "peer"
            shutil.copytree(compose, peer)
            text = (peer / "compose.yaml").read_text()
            (peer / "compose.yaml").write_text(text.replace("name: benchstack\n", "", 1))
            results["docker-compose config -q"] = timed(
                [compose_bin, "-p", "benchstack", "-f", "compose.yaml", "config", "-q"], args.runs, cwd=peer)
    replicas = sum(1 + i % 3 for i in range(args.services))
    print(f"{args.services} compose services ({replicas} containers), {args.runs} runs each; load average "
          f"{' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")
    median = {name: statistics.median(times) for name, times in results.items()}
    print("| command | median | min | max | vs the same on manifests |")
    print("|---|---|---|---|---|")
    for name, times in results.items():
        base = name.replace("(compose)", "(manifests)")
        ratio = f"{median[name] / median[base]:.2f}x" if "(compose)" in name else ""
        print(f"| {name} | {median[name]:.3f} s | {min(times):.3f} s | {max(times):.3f} s | {ratio} |")
    if "docker-compose config -q" in median:
        print(f"gitops plan (compose) / docker-compose config: "
              f"{median['gitops plan (compose)'] / median['docker-compose config -q']:.2f}x")
    verdict = "met" if median["gitops plan (compose)"] < 1.0 else "NOT met"
    print(f"target (compose plan under 1 s): {verdict}")


if __name__ == "__main__":
    main()
