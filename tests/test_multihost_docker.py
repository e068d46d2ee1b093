"""Several Docker hosts: a second engine on this machine, reached over unix:// and TLS-verified tcp://."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import purge_project, service

pytestmark = pytest.mark.docker

FAST = "init: true\nstopGracePeriod: 2s\n"


@pytest.fixture
def two_hosts(second_engine, project_name):
    """Host manifests for the local engine (h1) and the second engine over TLS (h2); cleans h2 too."""
    tls = ("apiVersion: gitops/v1\nkind: Host\nmetadata: {name: h1}\nspec:\n  url: unix:///var/run/docker.sock\n"
           "  labels: {zone: a}\n---\n"
           f"apiVersion: gitops/v1\nkind: Host\nmetadata: {{name: h2}}\nspec:\n  url: {second_engine['tcp']}\n"
           "  tls: {ca: certs/ca.pem, cert: certs/cert.pem, key: certs/key.pem}\n  labels: {zone: b}\n")
    yield tls
    purge_project(second_engine["client"], project_name)


def with_certs(deploy, second_engine, files: dict[str, str]) -> dict[str, str]:
    certs = second_engine["certs"]
    return {**files, **{f"certs/{n}": (certs / n).read_text() for n in ("ca.pem", "cert.pem", "key.pem")}}


def names(client, project: str) -> list[str]:
    return sorted(c.name for c in client.containers.list(all=True, filters={"label": f"io.gitops.project={project}"}))


def test_two_hosts_spread_and_update(deploy, docker_client, second_engine, two_hosts, project_name) -> None:
    files = with_certs(deploy, second_engine, {"hosts.yaml": two_hosts, "web.yaml": service("web", FAST + "replicas: 2")})
    first = deploy(files)
    assert first.result is not None and first.result.ok, first.result
    local, remote = names(docker_client, project_name), names(second_engine["client"], project_name)
    assert len(local) == 1 and local[0].startswith(f"{project_name}-web-0-")
    assert len(remote) == 1 and remote[0].startswith(f"{project_name}-web-1-")
    files["web.yaml"] = service("web", FAST + "replicas: 2", image="local/web:2")
    second = deploy(files)
    assert second.result is not None and second.result.ok
    assert [s.host for s in second.plan.changes] == ["h1", "h2"]
    for client in (docker_client, second_engine["client"]):
        images = [c.image.tags[0] for c in client.containers.list(filters={"label": f"io.gitops.project={project_name}"})]
        assert images == ["local/web:2"]
    assert not deploy.plan(files).plan.has_changes


def test_selector_placement(deploy, docker_client, second_engine, two_hosts, project_name) -> None:
    files = with_certs(deploy, second_engine, {"hosts.yaml": two_hosts,
                                               "web.yaml": service("web", FAST + "placement: {selector: {zone: b}}")})
    assert deploy(files).result.ok
    assert names(docker_client, project_name) == [] and len(names(second_engine["client"], project_name)) == 1


def test_rollback_spans_hosts(deploy, docker_client, second_engine, two_hosts, project_name) -> None:
    """v2 is healthy on h1 but not on h2: the replica already updated on h1 goes back to v1 too."""
    vol = "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: flag}\n"
    check = ("healthcheck: {exec: ['sh', '-c', 'grep -q v1 /www/index.html || test -f /flag/ok'], interval: 200ms, "
             "retries: 2}\nmounts: [{type: volume, source: flag, target: /flag}]\nreplicas: 2\n"
             "update: {parallelism: 1, healthyDeadline: 20s}\n")
    files = with_certs(deploy, second_engine, {"hosts.yaml": two_hosts, "v.yaml": vol, "web.yaml": service("web", FAST + check)})
    assert deploy(files).result.ok
    # mark h1 only as a place where v2 may be healthy
    docker_client.containers.run("local/busybox:1", ["touch", "/flag/ok"], remove=True,
                                 volumes={f"{project_name}_flag": {"bind": "/flag"}})
    files["web.yaml"] = service("web", FAST + check, image="local/web:2")
    result = deploy(files).result
    assert result is not None and not result.ok
    assert result.services["web"].status == "rolled_back"
    assert result.steps["service/web/0@h1"].status == "rolled_back"
    assert result.steps["service/web/1@h2"].status == "failed"
    for client in (docker_client, second_engine["client"]):
        found = client.containers.list(all=True, filters={"label": f"io.gitops.project={project_name}"})
        assert [(c.status, c.image.tags[0]) for c in found] == [("running", "local/web:1")]


def test_an_unreachable_host_fails_alone(deploy, docker_client, project_name, tmp_path) -> None:
    hosts = ("apiVersion: gitops/v1\nkind: Host\nmetadata: {name: h1}\nspec: {url: 'unix:///var/run/docker.sock'}\n---\n"
             f"apiVersion: gitops/v1\nkind: Host\nmetadata: {{name: gone}}\nspec: {{url: 'unix://{tmp_path}/none.sock'}}\n")
    result = deploy({"hosts.yaml": hosts, "web.yaml": service("web", FAST + "replicas: 2")})
    assert result.plan.unreachable and result.plan.unreachable[0][0] == "gone"
    assert "none.sock" in result.plan.unreachable[0][1] or "No such file" in result.plan.unreachable[0][1]
    assert result.result is not None and not result.result.ok
    assert result.result.errors[0].startswith("host gone is unreachable")
    assert result.result.steps["service/web/1@h1"].status == "done"  # hosts sort: gone gets slot 0, h1 slot 1
    assert len(names(docker_client, project_name)) == 1


def test_tls_verification_is_on(deploy, second_engine, two_hosts, project_name, tmp_path) -> None:
    """A wrong CA makes the TLS host unreachable instead of trusting it."""
    other = tmp_path / "ca"
    other.mkdir()
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=evil",
                    "-keyout", str(other / "k.pem"), "-out", str(other / "ca.pem")], check=True, capture_output=True)
    files = with_certs(deploy, second_engine, {"hosts.yaml": two_hosts, "web.yaml": service("web", FAST + "placement: {hosts: [h2]}")})
    files["certs/ca.pem"] = (other / "ca.pem").read_text()
    planned = deploy.plan(files)
    assert [h for h, _ in planned.plan.unreachable] == ["h2"]
    assert "certificate" in planned.plan.unreachable[0][1].lower() or "ssl" in planned.plan.unreachable[0][1].lower()
    shutil.rmtree(other)


def test_every_host_pulls_from_a_private_registry_with_the_declared_credentials(
        deploy, docker_client, second_engine, two_hosts, project_name, registry, tmp_path, monkeypatch) -> None:
    """The Registry manifest's credentials go with each host's pull (the second engine has never logged in),
    and both run the exact digest the tag named."""
    from tests.sopsutil import new_identity, sops_binary

    identity, recipient = new_identity()
    (tmp_path / "age.txt").write_text(identity + "\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "age.txt"))
    repo = f"gitops-test/{project_name}"
    digest = registry.push("local/web:1", repo, "1")
    files = with_certs(deploy, second_engine, {
        "hosts.yaml": two_hosts,
        "registry.yaml": (f"apiVersion: gitops/v1\nkind: Registry\nmetadata: {{name: private}}\nspec:\n"
                          f"  server: '{registry.address}'\n  username: {registry.username}\n"
                          "  password: {secretFile: registry.sops}\n"),
        "registry.sops": sops_binary(registry.password, recipient),
        "web.yaml": service("web", FAST + "replicas: 2\nresolve: digest", image=registry.image(repo, "1"))})
    done = deploy(files)
    assert done.result is not None and done.result.ok, done.result
    for client in (docker_client, second_engine["client"]):
        (web,) = client.containers.list(filters={"label": f"io.gitops.project={project_name}"})
        assert web.attrs["Config"]["Image"] == f"{registry.image(repo)}@{digest}"
    assert not deploy.plan(files).plan.has_changes
