"""Drift (issue 5 item 4): containers stopped, removed or replaced by hand are put back within seconds,
driven by Docker events (the poll interval here is an hour); selfHeal: false only reports; a container
that keeps crashing is backed off, not restarted in a hot loop, and shows in status and metrics."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import service
from tests.daemonutil import DaemonProcess
from tests.dockerutil import project_containers

pytestmark = pytest.mark.docker

FAST = "init: true\nstopGracePeriod: 1s\n"


def write(folder: Path, project: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "project.yaml").write_text(f"apiVersion: gitops/v1\nkind: Project\nmetadata: {{name: {project}}}\n")
    (folder / "web.yaml").write_text(service("web", body))
    return folder


def mine(client, project: str, *, all: bool = True) -> list:
    """The project's managed containers (not its lease)."""
    return project_containers(client, project, "io.gitops.managed=true", all=all)


def test_stopped_removed_and_replaced_containers_are_put_back(tmp_path, docker_client, project_name) -> None:
    folder = write(tmp_path / "m", project_name, FAST + "replicas: 2")
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        first, second = sorted(mine(docker_client, project_name), key=lambda c: c.name)
        # stopped by hand
        started = time.monotonic()
        first.stop(timeout=1)
        d.wait_for(lambda: docker_client.containers.get(first.id).status == "running", 20, "the stopped one back")
        assert time.monotonic() - started < 10
        # removed by hand
        second.remove(force=True)
        d.wait_for(lambda: len([c for c in mine(docker_client, project_name) if c.status == "running"]) == 2, 20,
                   "the removed one recreated")
        # replaced by hand: same name and labels, another image
        victim = sorted(mine(docker_client, project_name), key=lambda c: c.name)[0]
        labels, name = victim.labels, victim.name
        victim.remove(force=True)
        impostor = docker_client.containers.run("local/web:2", detach=True, name=name, labels=labels)
        d.wait_for(lambda: sorted(c.image.tags[0] for c in mine(docker_client, project_name)
                                  if c.status == "running") == ["local/web:1", "local/web:1"], 30,
                   "the impostor replaced by the declared container")
        assert impostor.id not in [c.id for c in mine(docker_client, project_name)]
        assert d.metric("gitops_passes_total") >= 3


def test_self_heal_off_only_reports(tmp_path, docker_client, project_name) -> None:
    folder = write(tmp_path / "m", project_name, FAST + "selfHeal: false")
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        victim = mine(docker_client, project_name)[0]
        passes = d.metric("gitops_passes_total")
        victim.stop(timeout=1)
        d.wait_for(lambda: d.metric("gitops_passes_total") > passes, 20, "a pass after the event")
        d.wait_for(lambda: d.metric("gitops_drifted_instances") == 1, 10, "the drift reported")
        assert docker_client.containers.get(victim.id).status == "exited"
        assert d.status()["services"][0]["replicas"]["stopped"] == 1


def test_a_crashing_container_is_backed_off(tmp_path, docker_client, project_name) -> None:
    """It dies 0.3 s after each start. Over 8 s a hot loop would start it 10+ times; the backoff allows ~3."""
    body = FAST + "restart: 'no'\ncommand: ['sh', '-c', 'sleep 0.3; exit 3']\n"
    folder = write(tmp_path / "m", project_name, body)
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        victim = mine(docker_client, project_name)[0]
        time.sleep(8)
        since = int(time.time()) - 9
        events = list(docker_client.events(since=since, until=int(time.time()), decode=True,
                                           filters={"container": victim.id, "event": "start"}))
        assert 1 <= len(events) <= 4, len(events)
        d.wait_for(lambda: d.metric("gitops_crashlooping_instances") >= 1, 20, "crash-looping in metrics")
        last = d.last_pass()
        assert last["outcome"] in ("no_changes", "converged")
        assert "keeps crashing" in (d.get("/status")[1].decode() + d.log.read_text())


def test_docker_restart_policy_loops_show_as_restarting(tmp_path, docker_client, project_name) -> None:
    """With restart: always, Docker itself restarts (with its own backoff); gitops reports it."""
    body = FAST + "restart: always\ncommand: ['sh', '-c', 'sleep 0.2; exit 1']\n"
    folder = write(tmp_path / "m", project_name, body)
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        d.wait_for(lambda: d.metric("gitops_crashlooping_instances") >= 1, 30, "restarting reported")
        d.wait_for(lambda: d.status()["services"][0]["replicas"]["restarting"] == 1, 30, "restarting in status")


def _copy_by_hand(client, victim, **overrides):
    """Remove ``victim`` and start a copy of it as `docker run` would make one: same name, labels, image,
    command, init, restart policy and healthcheck, and whatever ``overrides`` says on top."""
    info = victim.attrs
    config, host = info["Config"], info["HostConfig"]
    victim.remove(force=True)
    kwargs = dict(detach=True, name=victim.name, labels=config["Labels"], command=config["Cmd"],
                  init=host.get("Init"), restart_policy={"Name": host["RestartPolicy"]["Name"]},
                  environment=[e for e in config["Env"] if not e.startswith("PATH=")],
                  healthcheck={"test": config["Healthcheck"]["Test"]} if config.get("Healthcheck") else None,
                  stop_signal=config.get("StopSignal"))
    kwargs.update(overrides)
    return client.containers.run(config["Image"], **kwargs)


def test_a_copy_made_by_hand_with_other_env_is_replaced(tmp_path, docker_client, project_name) -> None:
    """Same name, labels and image as the declared container: only its environment tells it apart, and
    seeing that takes an inspect of the one container gitops did not make."""
    folder = write(tmp_path / "m", project_name, FAST + "env: {LOG: info}")
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        victim = mine(docker_client, project_name)[0]
        impostor = _copy_by_hand(docker_client, victim, environment=["LOG=info", "DEBUG=1"])
        d.wait_for(lambda: [c.id for c in mine(docker_client, project_name)] not in ([], [impostor.id]), 30,
                   "the copy replaced")
        d.wait_for(lambda: [c.status for c in mine(docker_client, project_name)] == ["running"], 30, "running")
        replacement = mine(docker_client, project_name)[0]
        assert replacement.name == victim.name
        assert "DEBUG=1" not in replacement.attrs["Config"]["Env"] and "LOG=info" in replacement.attrs["Config"]["Env"]
        assert "replaced by hand; env.DEBUG differ" in d.log.read_text()
        # The replacement is gitops' own: later passes trust it, and change nothing.
        d.wait_for(lambda: d.last_pass()["outcome"] == "converged", 20, "the replacing pass to finish")
        (folder / "web.yaml").write_text((folder / "web.yaml").read_text())  # a file event asks for a pass
        d.wait_for(lambda: d.last_pass()["trigger"] == "file change" and d.last_pass()["outcome"] != "running", 20,
                   "one more pass")
        assert d.last_pass()["outcome"] == "no_changes"
        assert mine(docker_client, project_name)[0].id == replacement.id


def test_a_copy_made_by_hand_is_only_reported_without_self_heal(tmp_path, docker_client, project_name) -> None:
    folder = write(tmp_path / "m", project_name, FAST + "selfHeal: false\nenv: {LOG: info}")
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        victim = mine(docker_client, project_name)[0]
        impostor = _copy_by_hand(docker_client, victim, environment=["LOG=debug"])
        d.wait_for(lambda: "replaced by hand; env.LOG differ" in d.log.read_text(), 30, "the copy reported")
        assert [c.id for c in mine(docker_client, project_name)] == [impostor.id]
        replicas = d.status()["services"][0]["replicas"]
        assert (replicas["changed_by_hand"], replicas["up_to_date"]) == (1, 0)
