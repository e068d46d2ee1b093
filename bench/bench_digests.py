"""What digest pinning costs a pass: `gitops plan` (a whole process, live hosts, nothing to change) on 20
services whose images come from a private TLS registry with a password, with `resolve: digest` (every tag
looked up on the registry before the plan) against the same services with `resolve: tag`, in one run.

    .venv/bin/python bench/bench_digests.py [--runs 7] [--services 20] [--images 20]

The registry is Debian's docker-registry on the docker0 gateway with TLS (a CA made here, trusted through
/etc/docker/certs.d as dockerd trusts it) and htpasswd (tests/registryutil.py); the credentials are a
Registry manifest whose password is a SOPS file. `--images` distinct tags are spread over the services (a
pass looks each tag up once). Both variants are deployed first, so each timed plan finds nothing to do.
Reports the median, min and max of --runs runs after one warm-up, and the ratio digest/tag. Everything the
run creates on the local engine and the registry's folder are removed at the end.
"""

from __future__ import annotations

import argparse
import os
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

from tests.conftest import purge_project  # noqa: E402
from tests.registryutil import TestRegistry  # noqa: E402
from tests.sopsutil import new_identity, sops_binary  # noqa: E402

GITOPS = str(Path(sys.executable).parent / "gitops")


def write_repo(folder: Path, project: str, registry: TestRegistry, images: list[str], services: int,
               resolve: str, recipient: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "project.yaml").write_text(f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project}}}\n")
    (folder / "registry.yaml").write_text(
        f"apiVersion: gitops/v1\nkind: Registry\nmetadata: {{name: private}}\nspec:\n  server: '{registry.address}'\n"
        f"  username: {registry.username}\n  password: {{secretFile: registry.sops}}\n")
    (folder / "registry.sops").write_text(sops_binary(registry.password, recipient))
    for i in range(services):
        (folder / f"s{i}.yaml").write_text(
            f"apiVersion: gitops/v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n"
            f"  image: {images[i % len(images)]}\n  resolve: {resolve}\n  init: true\n  stopGracePeriod: 1s\n")
    return folder


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr[-2000:]}")
    if "0 to create, 0 to update, 0 to remove" not in proc.stdout:
        raise SystemExit(f"expected a plan with nothing to do, got: {proc.stdout[:500]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--images", type=int, default=20)
    opts = parser.parse_args()
    client = docker.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="bench-digests-"))
    identity, recipient = new_identity()
    key_file = tmp / "age.txt"
    key_file.write_text(identity + "\n")
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(key_file), "PYTHONPYCACHEPREFIX": str(tmp / "pyc")}
    projects: list[str] = []
    with TestRegistry(client, tmp / "registry") as registry:
        images = []
        for i in range(opts.images):
            registry.push("local/web:1" if i % 2 == 0 else "local/web:2", f"bench/app{i}", "1")
            images.append(registry.image(f"bench/app{i}", "1"))
        results = {}
        for resolve in ("tag", "digest"):
            project = f"bd{uuid.uuid4().hex[:8]}"
            projects.append(project)
            repo = write_repo(tmp / resolve, project, registry, images, opts.services, resolve, recipient)
            state = ["--state-dir", str(tmp / f"state-{resolve}")]
            subprocess.run([GITOPS, "apply", str(repo), "--yes", *state], check=True, capture_output=True, env=env,
                           timeout=600)
            args = [GITOPS, "plan", str(repo), *state]
            timed(args, env)  # warm-up: .pyc files, docker and registry connections
            results[resolve] = [timed(args, env) for _ in range(opts.runs)]
        for project in projects:
            purge_project(client, project)
        registry.forget_pulled()  # the tags and digests the applies pulled
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    print(f"gitops plan, no changes, {opts.services} services, {opts.images} private images over TLS with a "
          f"password; median (min-max) of {opts.runs}, load average {os.getloadavg()[0]:.1f}")
    for resolve, times in results.items():
        print(f"  resolve: {resolve:<6}  {statistics.median(times):.3f} s  ({min(times):.3f}-{max(times):.3f})")
    ratio = statistics.median(results["digest"]) / statistics.median(results["tag"])
    print(f"  digest / tag: {ratio:.2f}x")


if __name__ == "__main__":
    main()
