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


def start_times(client, container_id: str, since: str) -> list[float]:
    """When Docker started the container, from its event stream (exact times, from the engine's clock).

    ``since`` keeps its fraction (docker-py cuts a datetime or int to the whole second, which lets in events
    from before the test); ``until`` is now, so the stream ends."""
    events = client.events(since=since, until=f"{time.time():.6f}", decode=True,
                           filters={"container": container_id, "event": "start"})
    return sorted(e["timeNano"] / 1e9 for e in events if e.get("Action") == "start")


def test_a_crashing_container_is_backed_off_and_retried_when_the_backoff_ends(tmp_path, docker_client,
                                                                              project_name) -> None:
    """It dies 0.3 s after each start. gitops starts it again, then holds it back 5 s, then 10 s; the daemon
    wakes up for each retry by itself (the poll interval is an hour, and a stopped container sends no events)."""
    body = FAST + "restart: 'no'\ncommand: ['sh', '-c', 'sleep 0.3; exit 3']\n"
    folder = write(tmp_path / "m", project_name, body)
    since = f"{time.time():.6f}"
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        victim = mine(docker_client, project_name)[0]
        d.wait_for(lambda: len(start_times(docker_client, victim.id, since)) >= 3, 40,
                   "the start after the first backoff (create, heal, retry)")
        starts = start_times(docker_client, victim.id, since)
        gaps = [round(b - a, 2) for a, b in zip(starts, starts[1:], strict=False)]
        print("starts after create, in seconds:", gaps)
        assert gaps[1] >= 5.0, gaps  # held back for the backoff, not restarted in a hot loop
        retries = [e for e in d.log_events("pass.starting") if "crash-loop retry" in e["trigger"]]
        assert retries, "the retry came from the daemon's own timer"
        d.wait_for(lambda: d.metric("gitops_crashlooping_instances") >= 1, 20, "crash-looping in metrics")
        d.wait_for(lambda: d.last_pass()["outcome"] in ("no_changes", "converged"), 20, "a pass that held it")
        assert "keeps crashing" in (d.get("/status")[1].decode() + d.log.read_text())
        assert [e["outcome"] for e in d.log_events("pass.finished") if e["outcome"] not in ("no_changes", "converged")] \
            == [], "a crash loop never fails a pass"


def test_a_container_stopped_by_hand_is_repaired_not_held_as_crash_looping(tmp_path, docker_client,
                                                                          project_name) -> None:
    """`docker stop` (exit 143) right after gitops started the container again is drift, repaired at once:
    not a crash to back off from."""
    folder = write(tmp_path / "m", project_name, FAST)
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        victim = mine(docker_client, project_name)[0]

        def running() -> bool:
            return docker_client.containers.get(victim.id).status == "running"

        for attempt in ("first", "second"):
            victim.stop(timeout=1)
            assert docker_client.containers.get(victim.id).attrs["State"]["ExitCode"] == 143
            d.wait_for(running, 20, f"the {attempt} stop repaired")
        log = d.log.read_text()
        assert "keeps crashing" not in log and "crash-looping" not in log


SICK_ONCE = ("command: ['sh', '-c', 'if [ -f /tmp/sick ]; then if [ -f /tmp/once ]; then rm /tmp/sick; "
             "else touch /tmp/once; fi; fi; exec sleep 100000']\n"
             "healthcheck: {exec: ['sh', '-c', '! test -f /tmp/sick'], interval: 200ms, retries: 2}\n")


def test_a_failed_drift_repair_does_not_mark_the_commit_failed(tmp_path, docker_client, project_name) -> None:
    """The container is made unhealthy and stopped by hand; started again it fails its health gate once
    (/tmp/sick survives the restart). That is the container's trouble, not the commit's: the next time it is
    stopped it is repaired at once, never skipped as a revision that 'failed before'."""
    folder = write(tmp_path / "m", project_name, FAST + SICK_ONCE)
    with DaemonProcess(tmp_path, "--local", str(folder), "--interval", "1h", "--no-webhooks", secret=None) as d:
        victim = mine(docker_client, project_name)[0]
        assert victim.exec_run(["touch", "/tmp/sick"]).exit_code == 0
        victim.stop(timeout=1)
        d.wait_for(lambda: d.last_pass()["outcome"] == "failed", 30, "the repair to fail its health gate")
        assert "health check failed" in d.last_pass()["error"]
        victim.stop(timeout=1)
        d.wait_for(lambda: docker_client.containers.get(victim.id).attrs["State"].get("Health", {})
                   .get("Status") == "healthy" and d.last_pass()["outcome"] == "converged", 30, "the repair")
        outcomes = [e["outcome"] for e in d.log_events("pass.finished")]
        assert "skipped" not in outcomes and "failed before" not in d.log.read_text(), outcomes


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
