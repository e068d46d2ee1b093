"""`gitops convert`: the manifests printed for a compose stack plan exactly as the stack does (the round trip)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from gitops.core.model import ephemeral_key
from gitops.manifests.load import load_repo
from tests.conftest import write_files
from tests.hostile import run_gitops
from tests.test_compose import EVERY_FIELD, HOST, WELL_KNOWN

STACKS = {
    "every field": (EVERY_FIELD, {".env": "PROM_TAG=v2.53.0\n", "prom.env": "A=1\n", "token.txt": "s3cret\n",
                                  "rules.yml": "groups: []\n", "conf/prometheus.yml": "global: {}\n",
                                  "host.yaml": HOST}),
    **{name: (textwrap.dedent(compose), extra) for name, (compose, extra, _) in WELL_KNOWN.items()},
}


@pytest.mark.parametrize("name", STACKS)
def test_converted_manifests_plan_exactly_as_the_compose_file(tmp_path: Path, name: str) -> None:
    compose, extra = STACKS[name]
    original = write_files(tmp_path / "compose", {"compose.yaml": compose, **extra})
    converted = run_gitops("convert", str(original), tmp=tmp_path)
    assert converted.returncode == 0, converted.stderr
    moved = tmp_path / "moved"
    shutil.copytree(original, moved)
    (moved / "compose.yaml").unlink()
    (moved / "gitops.yaml").write_text(converted.stdout)
    key = ephemeral_key()
    before, after = (load_repo(root, revision="r1", key=key) for root in (original, moved))
    assert after.desired is not None, [str(e) for e in after.errors]
    assert before.desired is not None
    assert [(s.name, s.spec_hash) for s in after.desired.services] == [
        (s.name, s.spec_hash) for s in before.desired.services]
    assert (after.desired.networks, after.desired.volumes, after.desired.project) == (
        before.desired.networks, before.desired.volumes, before.desired.project)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"hosts": [{"host": "local", "reachable": True, "containers": [], "networks": [],
                                            "volumes": []}]}))
    plans = [run_gitops("plan", str(root), "--observed", str(empty), "--format", "json", tmp=tmp_path).stdout
             for root in (original, moved)]
    steps = [json.loads(text)["steps"] for text in plans]
    assert [s.pop("source") for s in steps[0] if s["kind"] == "service"][0].startswith("compose.yaml:")
    assert [s.pop("source") for s in steps[1] if s["kind"] == "service"][0].startswith("gitops.yaml:")
    assert steps[0] == steps[1] != []  # the same plan, but for where each service is written


def test_convert_without_compose_files_or_with_errors_says_so(tmp_path: Path) -> None:
    plain = write_files(tmp_path / "plain", {"project.yaml": "apiVersion: gitops/v1\nkind: Project\n"
                                                             "metadata: {name: p}\n"})
    refused = run_gitops("convert", str(plain), tmp=tmp_path)
    assert (refused.returncode, refused.stderr.strip()) == (
        1, f"Error: {plain}: no compose files (compose.yaml, docker-compose.yml, ...) to convert")
    broken = write_files(tmp_path / "broken", {"compose.yaml": "name: s\nservices:\n  web: {build: .}\n"})
    failed = run_gitops("convert", str(broken), tmp=tmp_path)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith(f"{broken}/compose.yaml:3:9: services.web.build: gitops deploys images")
