"""A private registry end to end, on a real TLS registry with a password (tests/registryutil.py) and the real
engine: the daemon pulls with the Registry manifest's encrypted credentials, sees a tag move and rolls the new
digest out; `gitops rollback` runs the exact digest from before; a wrong password fails cleanly; the password
appears in no output, record or container (SECURITY.md 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PROJECT, service
from tests.daemonutil import DaemonProcess
from tests.gitutil import Remote
from tests.hostile import run_gitops
from tests.sopsutil import new_identity, sops_binary

pytestmark = pytest.mark.docker
APP = "init: true\nstopGracePeriod: 1s\npullPolicy: always\nhealthcheck: {exec: ['true'], interval: 200ms}"


def _registry_manifest(address: str, username: str) -> str:
    return (f"apiVersion: gitops/v1\nkind: Registry\nmetadata: {{name: private}}\n"
            f"spec:\n  server: '{address}'\n  username: {username}\n"
            f"  password: {{secretFile: secrets/registry.sops}}\n")


@pytest.fixture
def age_key_file(tmp_path: Path, monkeypatch) -> str:
    identity, recipient = new_identity()
    key_file = tmp_path / "age-key.txt"
    key_file.write_text(identity + "\n")
    key_file.chmod(0o600)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    return recipient


def _served(docker_client, project: str) -> list[tuple[str, str]]:
    """(image the container was created from, the page it serves) of each running container of ``project``."""
    import docker.errors

    out = []
    try:  # docker-py inspects each listed container: one removed meanwhile (a rollout step) is a 404
        for c in docker_client.containers.list(filters={"label": f"io.gitops.project={project}"}):
            page = c.exec_run(["cat", "/www/index.html"]).output.decode().strip()
            out.append((c.attrs["Config"]["Image"], page))
    except docker.errors.APIError:  # removed or stopped between the list and the exec: a rollout in progress
        return [("(changing)", "")]
    return sorted(out)


def _nowhere(secret: str, *texts: str, folders: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert secret not in text
    for folder in folders:
        assert not [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_a_moved_tag_is_rolled_out_by_the_daemon_and_rolled_back_to_the_exact_digest(
        docker_client, registry, project_name, age_key_file, tmp_path: Path) -> None:
    repo = f"gitops-test/{project_name}"
    first = registry.push("local/web:1", repo, "1.4")
    image = registry.image(repo, "1.4")
    remote = Remote(tmp_path / "git")
    head = remote.commit({
        "project.yaml": PROJECT.replace("name: test", f"name: {project_name}"),
        "registry.yaml": _registry_manifest(registry.address, registry.username),
        "secrets/registry.sops": sops_binary(registry.password, age_key_file),
        "app.yaml": service("app", APP, image=image)})
    url = str(remote.bare)

    with DaemonProcess(tmp_path, "--repo", url, "--interval", "1s", "--no-webhooks", secret=None) as d:
        d.wait_for(lambda: _served(docker_client, project_name) == [(f"{registry.image(repo)}@{first}", "web v1")],
                   90, "app pulled with the Registry's credentials and running the tag's digest")
        second = registry.push("local/web:2", repo, "1.4")  # the same tag, another image
        d.wait_for(lambda: _served(docker_client, project_name) == [(f"{registry.image(repo)}@{second}", "web v2")],
                   90, "the moved tag rolled out")
        d.wait_for(lambda: d.status()["services"][0]["image_digest"] == second
                   and d.last_pass().get("outcome") in ("converged", "no_changes"), 60, "/status shows the digest")
        status_answer = d.get("/status")[1].decode()
        metrics = d.get("/metrics")[1].decode()
    log = d.log.read_text()
    moved = [e for e in (json.loads(line) for line in log.splitlines() if line.startswith("{"))
             if e.get("event") == "apply.change" and "image changed" in e.get("reason", "")]
    assert moved, "the moved tag was applied as an image change"

    history = run_gitops("history", "--format", "json", "--state-dir", str(d.state), tmp=tmp_path)
    ran = [r["images"].get("app") for r in json.loads(history.stdout) if r["services"].get("app") == "converged"]
    assert ran[:2] == [second, first]

    rollback = run_gitops("rollback", "app", "--repo", url, "--state-dir", str(d.state), tmp=tmp_path, timeout=120)
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr

    assert f"at image {first} until a commit changes it" in rollback.stdout
    assert _served(docker_client, project_name) == [(f"{registry.image(repo)}@{first}", "web v1")]

    status = run_gitops("status", "--repo", url, "--state-dir", str(d.state), "--format", "json", tmp=tmp_path,
                        timeout=120)
    assert status.returncode == 0, status.stderr
    (app_status,) = json.loads(status.stdout)["services"]
    assert json.loads(status.stdout)["pending_changes"] == 0  # the pin holds the old digest, as a pass enforces
    assert (app_status["image_digest"], app_status["pinned_to"]) == (first, head)
    assert app_status["running_image_digests"] == [first]
    plan = run_gitops("plan", "--repo", url, "--state-dir", str(d.state), "--format", "json", tmp=tmp_path,
                      timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert [st for st in json.loads(plan.stdout)["steps"] if st["action"] != "noop"] == []  # as a pass keeps it
    assert json.loads(plan.stdout)["warnings"] == [f"app is held at {head[:12]} by gitops rollback until a commit "
                                                   "changes it"]

    app = docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})[0]
    _nowhere(registry.password, log, status_answer, metrics, history.stdout, rollback.stdout, rollback.stderr,
             status.stdout, plan.stdout, json.dumps(app.attrs), folders=(d.state,))


def test_a_plan_shows_the_moved_tag_with_both_digests(docker_client, registry, project_name, age_key_file,
                                                       tmp_path: Path) -> None:
    repo = f"gitops-test/{project_name}"
    first = registry.push("local/web:1", repo, "2")
    remote = Remote(tmp_path / "git")
    remote.commit({
        "project.yaml": PROJECT.replace("name: test", f"name: {project_name}"),
        "registry.yaml": _registry_manifest(registry.address, registry.username),
        "secrets/registry.sops": sops_binary(registry.password, age_key_file),
        "app.yaml": service("app", APP, image=registry.image(repo, "2"))})
    state = ["--state-dir", str(tmp_path / "state")]
    synced = run_gitops("sync", "--repo", str(remote.bare), *state, tmp=tmp_path, timeout=120)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    second = registry.push("local/web:2", repo, "2")
    plan = run_gitops("plan", "--repo", str(remote.bare), *state, "--format", "json", tmp=tmp_path, timeout=120)
    (step,) = json.loads(plan.stdout)["steps"]
    assert step["changes"] == [{"path": "image", "old": f"{registry.image(repo, '2')}@{first}",
                                "new": f"{registry.image(repo, '2')}@{second}", "secret": False}]
    text = run_gitops("plan", "--repo", str(remote.bare), *state, tmp=tmp_path, timeout=120).stdout
    assert f"image {registry.image(repo, '2')} ({first[:19]}.. -> {second[:19]}..)" in text
    base = run_gitops("plan", "--repo", str(remote.bare), "--base", "main", *state, "--format", "json",
                      tmp=tmp_path, timeout=120)
    assert base.returncode == 0, base.stderr
    assert json.loads(base.stdout)["warnings"] == []  # the registry answered: both sides resolved
    assert [s for s in json.loads(base.stdout)["steps"] if s["action"] != "noop"] == []  # a ref against itself
    _nowhere(registry.password, plan.stdout, text, base.stdout, synced.stdout, synced.stderr)


@pytest.mark.parametrize("resolve", ["digest", "tag"])
def test_a_wrong_password_fails_cleanly_naming_the_registry_and_whose_credentials(
        docker_client, registry, project_name, age_key_file, tmp_path: Path, resolve: str) -> None:
    repo = f"gitops-test/{project_name}"
    registry.push("local/web:1", repo, "1")
    wrong = f"wrong-{registry.password[::-1]}"
    remote = Remote(tmp_path / "git")
    remote.commit({
        "project.yaml": PROJECT.replace("name: test", f"name: {project_name}"),
        "registry.yaml": _registry_manifest(registry.address, registry.username),
        "secrets/registry.sops": sops_binary(wrong, age_key_file),
        "app.yaml": service("app", f"init: true\nresolve: {resolve}", image=registry.image(repo, "1"))})
    synced = run_gitops("sync", "--repo", str(remote.bare), "--state-dir", str(tmp_path / "state"), tmp=tmp_path,
                        timeout=120)
    out = synced.stdout + synced.stderr
    assert synced.returncode == 1, out
    assert registry.address in out and "Registry 'private' (registry.yaml:1)" in out
    if resolve == "tag":  # no lookup: the pull on the host is what the registry refuses
        assert f"local: pull {registry.image(repo, '1')} from registry {registry.address} with the credentials" in out
    assert docker_client.containers.list(all=True, filters={"label": f"io.gitops.project={project_name}"}) == []
    _nowhere(wrong, out, folders=(tmp_path / "state",))
    _nowhere(registry.password, out)
