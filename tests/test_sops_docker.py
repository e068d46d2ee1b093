"""An encrypted env file through the daemon on a real engine: the container gets the decrypted value, and no
answer, log line, metric, history entry or state file of gitops holds it (SECURITY.md 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PROJECT, service, write_files
from tests.daemonutil import DaemonProcess
from tests.hostile import run_gitops
from tests.sopsutil import new_identity, sops_dotenv

pytestmark = pytest.mark.docker
CANARY = "CANARY-sops-daemon-41c9"


def test_the_daemon_decrypts_for_the_container_and_shows_the_value_nowhere(docker_client, project_name,
                                                                           tmp_path: Path, monkeypatch) -> None:
    identity, recipient = new_identity()
    key_file = tmp_path / "age-key.txt"
    key_file.write_text(identity + "\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    folder = write_files(tmp_path / "repo", {
        "project.yaml": PROJECT.replace("name: test", f"name: {project_name}"),
        "web.yaml": service("web", "init: true\nstopGracePeriod: 1s\nenvFile: app.env"),
        "app.env": sops_dotenv({"DB_PASSWORD": CANARY, "MODE": "prod"}, recipient)})
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        d.wait_for(lambda: d.last_pass().get("outcome") == "converged", 60, "the first pass")
        (web,) = docker_client.containers.list(filters={"label": f"io.gitops.project={project_name}"})
        assert f"DB_PASSWORD={CANARY}" in web.attrs["Config"]["Env"]  # decrypted for the container only
        answers = b"".join(d.get(path)[1] for path in ("/status", "/metrics", "/healthz"))
        assert CANARY.encode() not in answers
        history = run_gitops("history", "--format", "json", "--state-dir", str(d.state), tmp=tmp_path)
        assert history.returncode == 0 and CANARY not in history.stdout + history.stderr
    assert CANARY not in d.log.read_text()
    assert not [p for p in d.state.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    labels = web.attrs["Config"]["Labels"]
    assert not any(CANARY in value for value in labels.values())  # the spec label holds a keyed digest
