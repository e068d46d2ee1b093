"""Loop benchmark: latency from a signed webhook for a new commit to the apply starting, and the
daemon's idle CPU and memory. Real git (a local bare repo and a push), real HTTP, the real engine.

    .venv/bin/python bench/bench_loop.py [--rounds 5] [--idle 10]

Targets (issue 4): webhook -> apply start < 1 s; idle RSS < 80 MB; no busy polling (idle CPU ~ 0).
The same latency is also measured for a plain `gitops sync` started by hand at the same moment,
as the baseline a webhook cannot beat (process start, fetch, load, observe, plan).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import service  # noqa: E402
from tests.daemonutil import DaemonProcess  # noqa: E402
from tests.gitutil import Remote  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    args = parser.parse_args()
    project = f"bl{uuid.uuid4().hex[:6]}"
    client = docker.from_env(version="auto")
    latencies, sync_latencies = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            remote = Remote(tmp / "git")
            base = "init: true\nstopGracePeriod: 1s\n"
            remote.commit({"project.yaml": f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project}}}\n",
                           "web.yaml": service("web", base)})
            with DaemonProcess(tmp, "--repo", str(remote.bare), "--interval", "1h") as d:
                for i in range(args.rounds):
                    before = d.metric("gitops_last_apply_started_timestamp_seconds")
                    remote.commit({"web.yaml": service("web", base + f"env: {{ROUND: '{i}'}}")})
                    sent = time.time()
                    assert d.github_push() == 202
                    d.wait_for(lambda before=before: d.metric("gitops_last_apply_started_timestamp_seconds") > before,
                               30, "apply")
                    latencies.append(d.metric("gitops_last_apply_started_timestamp_seconds") - sent)
                    d.wait_for(lambda: d.last_pass().get("finished_at") and d.last_pass()["outcome"] == "converged",
                               60, "convergence")
                assert d.proc is not None
                pid = d.proc.pid
                time.sleep(1)
                cpu0, t0 = cpu_seconds(pid), time.monotonic()
                time.sleep(args.idle)
                idle_cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
                rss = rss_mb(pid)
            state = tmp / "sync-state"
            for i in range(args.rounds):
                remote.commit({"web.yaml": service("web", base + f"env: {{SYNC: '{i}'}}")})
                started = time.time()
                proc = subprocess.Popen([sys.executable, "-m", "gitops", "--log-format", "json", "sync", "--repo",
                                         str(remote.bare), "--state-dir", str(state)], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
                out, _ = proc.communicate(timeout=120)
                first_step = next((json.loads(line)["timestamp"] for line in out.splitlines()
                                   if line.startswith("{") and '"apply.started"' in line), None)
                if first_step:
                    stamp = datetime.fromisoformat(first_step.replace("Z", "+00:00")).timestamp()
                    sync_latencies.append(stamp - started)
    finally:
        for c in client.containers.list(all=True, filters={"label": f"io.gitops.project={project}"}):
            c.remove(force=True)
    median = statistics.median(latencies)
    print(f"webhook -> apply start: median {median * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
          f"over {len(latencies)} pushes (target < 1000 ms)")
    if sync_latencies:
        print(f"baseline: `gitops sync` started by hand at the push -> apply start: median "
              f"{statistics.median(sync_latencies) * 1000:.0f} ms; webhook/sync ratio "
              f"{median / statistics.median(sync_latencies):.2f}")
    print(f"daemon idle: {idle_cpu:.2f}% of one core over {args.idle:.0f} s, RSS {rss:.1f} MB (target < 80 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
