"""A Host over ssh:// (SECURITY.md item 13): sshd on loopback in front of the local engine.

gitops uses the system ssh client (docker-py runs `ssh ... docker system dial-stdio`), so keys, known
hosts and options come from the user's ssh configuration; here a wrapper adds a test config.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import service

pytestmark = pytest.mark.docker


@pytest.fixture
def ssh_url(tmp_path: Path, monkeypatch) -> str:
    d = tmp_path / "ssh"
    d.mkdir()
    for name in ("hostkey", "clientkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "clientkey.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/authorized_keys\n"
        f"PasswordAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nPidFile {d}/sshd.pid\n"
        "UsePAM no\n")
    (d / "ssh_config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {d}/clientkey\n  StrictHostKeyChecking accept-new\n"
        f"  UserKnownHostsFile {d}/known_hosts\n  BatchMode yes\n")
    bindir = d / "bin"
    bindir.mkdir()
    (bindir / "ssh").write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {d}/ssh_config "$@"\n')
    (bindir / "ssh").chmod(0o755)
    Path("/run/sshd").mkdir(exist_ok=True)
    subprocess.run(["/usr/sbin/sshd", "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")], check=True)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    for _ in range(50):
        if (d / "sshd.pid").exists():
            break
        time.sleep(0.1)
    yield f"ssh://root@127.0.0.1:{port}"
    os.kill(int((d / "sshd.pid").read_text()), signal.SIGTERM)


def test_deploy_over_ssh(ssh_url: str, deploy, docker_client, project_name) -> None:
    hosts = f"apiVersion: gitops/v1\nkind: Host\nmetadata: {{name: remote}}\nspec: {{url: '{ssh_url}'}}\n"
    files = {"hosts.yaml": hosts, "web.yaml": service("web", "init: true\nreplicas: 2")}
    first = deploy(files)
    assert first.result is not None and first.result.ok, (first.plan.unreachable, first.result)
    running = docker_client.containers.list(filters={"label": [f"io.gitops.project={project_name}",
                                                               "io.gitops.managed=true"]})
    assert len(running) == 2  # the engine behind sshd is this machine's
    assert not deploy.plan(files).plan.has_changes


def test_an_unknown_ssh_host_is_unreachable_not_a_prompt(deploy, project_name, monkeypatch, tmp_path) -> None:
    """No terminal prompt and no hang: a refused ssh connection is an unreachable host."""
    hosts = "apiVersion: gitops/v1\nkind: Host\nmetadata: {name: remote}\nspec: {url: 'ssh://root@127.0.0.1:9'}\n"
    planned = deploy.plan({"hosts.yaml": hosts, "web.yaml": service("web")})
    assert [h for h, _ in planned.plan.unreachable] == ["remote"]
