"""Service files on the real engine: delivered before the container starts, and a change rolls the service."""

from __future__ import annotations

import pytest

from tests.conftest import service

pytestmark = pytest.mark.docker

FAST = "init: true\nstopGracePeriod: 2s\n"
FILES = ("files:\n"
         "  - {source: conf/app.conf, target: /etc/app/app.conf}\n"
         "  - {source: site, target: /www/extra, mode: '0440'}\n"
         "  - {source: conf/token, target: /run/secrets/token, mode: '0400', secret: true}\n"
         # the image's own httpd serves /www: a check that passes only once the file is there before start
         "healthcheck: {exec: ['sh', '-c', 'grep -q 8080 /etc/app/app.conf'], interval: 200ms, retries: 3}\n")


def files(port: str = "8080") -> dict[str, str]:
    return {"web.yaml": service("web", FAST + FILES), "conf/app.conf": f"listen {port}\n", "conf/token": "s3cret\n",
            "site/a.html": "page a\n", "site/deep/b.html": "page b\n"}


def sh(container, command: str) -> str:
    done = container.exec_run(["sh", "-c", command])
    assert done.exit_code == 0, done.output
    return done.output.decode()


def test_files_arrive_before_start_with_owner_and_mode_and_a_change_rolls(deploy, docker_client,
                                                                          project_name) -> None:
    first = deploy(files())
    assert first.result is not None and first.result.ok, first.result
    (c,) = docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})
    assert sh(c, "cat /etc/app/app.conf /run/secrets/token /www/extra/a.html /www/extra/deep/b.html") == (
        "listen 8080\ns3cret\npage a\npage b\n")
    assert sh(c, "stat -c '%a %u %g %n' /etc/app/app.conf /run/secrets/token /www/extra/deep/b.html /etc/app") == (
        "444 0 0 /etc/app/app.conf\n400 0 0 /run/secrets/token\n440 0 0 /www/extra/deep/b.html\n755 0 0 /etc/app\n")
    assert "s3cret" not in str(c.labels)  # secret files are digested in the labels, never copied there
    assert not deploy.plan(files()).plan.has_changes  # delivered files are not taken for drift

    changed = deploy(files("9090") | {"web.yaml": service("web", FAST + FILES.replace("8080", "9090"))})
    assert changed.result is not None and changed.result.ok, changed.result
    (step,) = changed.plan.changes
    assert [ch.path for ch in step.changes] == ["files./etc/app/app.conf", "healthcheck.command"]
    (now,) = docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})
    assert now.id != c.id and sh(now, "cat /etc/app/app.conf") == "listen 9090\n"
