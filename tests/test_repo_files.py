"""Service files: repository files delivered into containers, as the loader and the planner see them."""

from __future__ import annotations

import os
from pathlib import Path

from gitops.core.model import DesiredState, ephemeral_key
from gitops.core.observed import converged
from gitops.core.planner import plan
from gitops.manifests.load import load_repo
from gitops.manifests.parse import Limits
from tests.conftest import service
from tests.hostile import run_gitops

KEY = ephemeral_key()
FILES = ("files:\n"
         "  - {source: conf/app.conf, target: /etc/app/app.conf}\n"
         "  - {source: dashboards, target: /var/lib/dashboards, mode: '0440'}\n"
         "  - {source: conf/token, target: /run/secrets/token, secret: true}\n")


def load(root: Path, **kw) -> DesiredState:
    outcome = load_repo(root, revision="r1", key=KEY, **kw)
    assert outcome.desired is not None, outcome.errors
    return outcome.desired


def errors(root: Path, **kw) -> list[str]:
    return [str(e) for e in load_repo(root, revision="r1", key=KEY, **kw).errors]


def write(repo, body: str = FILES, **extra: str) -> Path:
    return repo({"web.yaml": service("web", body), "conf/app.conf": "port = 8080\n", "conf/token": "s3cret\n",
                 "dashboards/a.json": "{}\n", "dashboards/sub/b.json": "[]\n", **extra})


def test_files_and_folders_are_loaded_with_their_content_targets_and_modes(repo) -> None:
    """A folder becomes one file per file below it; modes are octal strings; the source is repository-relative."""
    svc = load(write(repo)).service("web")
    assert [(f.target, f.source, f.content, oct(f.mode), f.secret) for f in svc.files] == [
        ("/etc/app/app.conf", "conf/app.conf", b"port = 8080\n", "0o444", False),
        ("/run/secrets/token", "conf/token", b"s3cret\n", "0o444", True),
        ("/var/lib/dashboards/a.json", "dashboards/a.json", b"{}\n", "0o440", False),
        ("/var/lib/dashboards/sub/b.json", "dashboards/sub/b.json", b"[]\n", "0o440", False),
    ]
    assert svc.secret_key_id == KEY.id  # a secret file is digested with the installation's key


def test_a_changed_file_rolls_the_service_and_the_plan_names_it_but_never_a_secret(repo) -> None:
    """The content is part of the spec: the plan shows which target changed and from which file."""
    before = load(write(repo))
    after = load(write(repo, **{"conf/app.conf": "port = 9090\n", "conf/token": "other\n"}))
    assert before.service("web").spec_hash != after.service("web").spec_hash
    step = plan(after, converged(before)).changes[0]
    assert step.action == "update"
    shown = [c.describe() for c in step.changes]
    assert len(shown) == 2
    assert shown[0].startswith('files./etc/app/app.conf: "sha256:') and shown[0].endswith(' mode 0444 from conf/app.conf"')
    assert shown[1] == "files./run/secrets/token: (secret changed)"
    assert "s3cret" not in step.reason + "".join(shown) and "other" not in "".join(shown)
    assert not plan(after, converged(after)).has_changes


def test_a_service_without_files_keeps_the_spec_hash_it_had_before(repo) -> None:
    """Upgrading gitops must not recreate every container: no files, no new key in the spec."""
    svc = load(repo({"web.yaml": service("web")})).service("web")
    assert "files" not in svc.container_config()


def test_bad_sources_and_targets_are_refused_where_they_are_written(repo, tmp_path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret\n")
    sources = write(repo, "files:\n"
                          "  - {source: ../outside.txt, target: /a}\n"
                          "  - {source: link, target: /b}\n"
                          "  - {source: missing.conf, target: /c}\n")
    os.symlink(outside, sources / "link")
    assert errors(sources) == [
        "web.yaml:8:16: spec.files[0].source: '../outside.txt' resolves outside the repository",
        "web.yaml:9:16: spec.files[1].source: 'link' resolves outside the repository",
        "web.yaml:10:16: spec.files[2].source: 'missing.conf' is not a file or folder in the repository",
    ]
    root = write(repo, "files:\n"
                       "  - {source: conf/app.conf, target: /etc/../etc/passwd}\n"
                       "  - {source: conf/app.conf, target: /proc/self/x}\n"
                       "  - {source: conf/app.conf, target: /d/}\n")
    assert errors(root) == [
        "web.yaml:8:39: spec.files[0].target: '/etc/../etc/passwd' is not a clean absolute path: write it without "
        "'.', '..', '//' or a trailing '/' (e.g. /etc/app/app.conf)",
        "web.yaml:9:39: spec.files[1].target: /proc is made by the kernel when the container starts; files cannot "
        "be delivered there",
        "web.yaml:10:39: spec.files[2].target: '/d/' is not a clean absolute path: write it without '.', '..', '//' "
        "or a trailing '/' (e.g. /etc/app/app.conf)",
    ]
    schema = write(repo, "files:\n  - {source: conf/app.conf, target: /e, mode: '0999'}\n"
                         "  - {source: conf/app.conf, target: relative}\n")
    assert errors(schema) == [
        'web.yaml:8:49: spec.files[0].mode: \'0999\' is not valid: Octal permission bits, as a string: "0444" (the '
        'default) or "0400".',
        "web.yaml:9:39: spec.files[1].target: 'relative' is not valid: Absolute path in the container: the file, or "
        "the folder that receives a folder.",
    ]


def test_sizes_counts_and_read_only_root_file_systems_are_bounded(repo) -> None:
    small = Limits(max_delivered_file_bytes=8, max_delivered_files=1, max_delivered_bytes=10)
    root = write(repo)
    found = errors(root, limits=small)
    assert "web.yaml:8:16: spec.files[0].source: 'conf/app.conf' is 12 bytes, more than the 8 allowed" in found
    assert "web.yaml:9:16: spec.files[1].source: 'dashboards' holds more than 1 files" in found
    twice = write(repo, "files:\n  - {source: conf/app.conf, target: /a}\n  - {source: conf/app.conf, target: /a}\n")
    assert errors(twice) == ["web.yaml:9:39: spec.files[1].target: /a is already the target of spec.files[0]"]
    ro = write(repo, "readOnlyRootfs: true\nfiles: [{source: conf/app.conf, target: /a}]\n")
    assert errors(ro) == ["web.yaml:8:10: spec.files: cannot be delivered into a container with readOnlyRootfs: "
                          "Docker refuses to copy into a read-only root file system; drop readOnlyRootfs or the files"]


def test_a_huge_folder_is_refused_quickly_and_in_bounded_memory(repo, tmp_path) -> None:
    """A folder of 5,000 files, or one 50 MB file, stops at the bound: measured as a whole `gitops validate`."""
    root = write(repo, "files: [{source: many, target: /many}, {source: big.bin, target: /big}]\n")
    (root / "many").mkdir()
    for i in range(5000):
        (root / "many" / f"{i}.txt").write_text("x")
    with (root / "big.bin").open("wb") as f:
        f.truncate(50 * 1024 * 1024)
    done = run_gitops("validate", str(root), tmp=tmp_path)
    assert done.returncode == 1
    assert "spec.files[0].source: 'many' holds more than 256 files" in done.stderr
    assert "spec.files[1].source: 'big.bin' is 52428800 bytes, more than the 1048576 allowed" in done.stderr
    done.within_bounds()
