"""SECURITY.md 16: a secret's digest is keyed with a random per-installation key, kept 0600 in the state dir.

Keyed with anything guessable (it used to be the variable's name), a short secret falls to brute
force from what container labels, `status --format json` or GET /status show. These tests take the
attacker's view (only public data), check the key file, check that the key itself never leaves it,
and check that the upgrade recreates only containers with secrets, saying why.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.core.model import (
    LABEL_KEY_ID,
    DesiredState,
    ObservedContainer,
    SecretKey,
    canonical_json,
    container_name,
    ephemeral_key,
    legacy_secret_digest,
    observed_to_dict,
)
from gitops.core.planner import REKEY_REASON, plan
from gitops.manifests.load import load_repo
from gitops.secret_key import KEY_FILE, SecretKeyError, installation_key
from gitops.testing import converged
from tests.conftest import service

SHORT_SECRET = "7391"  # a 4-digit PIN: 10,000 guesses
SERVICES = {
    "web.yaml": service("web", "env:\n  PIN: {secretFile: pin}\n  MODE: prod"),
    "plain.yaml": service("plain", "env: {MODE: prod}"),
    "pin": SHORT_SECRET + "\n",
}


def load(root: Path, key: SecretKey, revision: str = "r1") -> DesiredState:
    outcome = load_repo(root, revision=revision, key=key)
    assert outcome.errors == [] and outcome.desired is not None, outcome.errors
    return outcome.desired


def public_view(desired: DesiredState) -> dict:
    """What anyone reading `status --format json` or the container labels learns about ``web``."""
    snapshot = observed_to_dict(converged(desired))
    return next(c for h in snapshot["hosts"] for c in h["containers"] if c["service"] == "web")


# --- (a) brute force from public data -------------------------------------------------------------------

def _candidates(name: str, guess: str, public: dict) -> list[str]:
    """Every digest an attacker can compute from a guess and what status shows (no key)."""
    keys = [name.encode(), b"", b"gitops", b"test", public["service"].encode(), public["key_id"].encode(),
            public["spec_hash"].encode(), public["name"].encode()]
    out = ["secret:" + hmac.new(k, guess.encode(), hashlib.sha256).hexdigest()[:16] for k in keys]
    out += ["secret:" + hmac.new(k, f"{name}\0{guess}".encode(), hashlib.sha256).hexdigest()[:16] for k in keys]
    out += ["secret:" + hashlib.sha256(m.encode()).hexdigest()[:16]
            for m in (guess, name + guess, f"{name}\0{guess}", f"{name}={guess}")]
    return out


def test_a_short_secret_cannot_be_brute_forced_from_status_or_labels(repo) -> None:
    desired = load(repo(SERVICES), ephemeral_key())
    public = public_view(desired)
    label_digest = json.loads(public["spec_json"])["env"]["PIN"]
    assert label_digest.startswith("secret:")
    # The old scheme, HMAC keyed by the variable's name, found the PIN in 10,000 tries; now no guess matches.
    assert label_digest != legacy_secret_digest("PIN", SHORT_SECRET)
    hits = [g for g in (f"{n:04d}" for n in range(10_000)) if label_digest in _candidates("PIN", g, public)]
    assert hits == []


def test_spec_hashes_and_names_do_not_confirm_a_guess(repo) -> None:
    """Two installations (two keys): same secret, different digest, spec hash and container name; the same key
    gives the same ones, so a secret that did not change does not look changed."""
    root = repo(SERVICES)
    one, two = load(root, ephemeral_key()), load(root, ephemeral_key())
    web1, web2 = one.service("web"), two.service("web")
    assert web1.container_config()["env"]["PIN"] != web2.container_config()["env"]["PIN"]
    assert web1.spec_hash != web2.spec_hash
    assert container_name("p", "web", 0, web1.spec_hash) != container_name("p", "web", 0, web2.spec_hash)
    # a service without secrets does not depend on the key: the upgrade leaves it alone
    assert one.service("plain").spec_hash == two.service("plain").spec_hash
    key = ephemeral_key()
    assert load(root, key).service("web").spec_hash == load(root, key).service("web").spec_hash
    # and with the attacker's guess computed the old way, nothing in the spec hash input matches
    guessed = dict(web1.container_config(), env={"MODE": "prod", "PIN": legacy_secret_digest("PIN", SHORT_SECRET)})
    assert hashlib.sha256(canonical_json(guessed).encode()).hexdigest() != web1.spec_hash


def test_the_digest_is_hmac_sha256_of_name_and_value_under_the_key() -> None:
    key = SecretKey(bytes(range(32)))
    expected = hmac.new(bytes(range(32)), b"PIN\x007391", hashlib.sha256).hexdigest()[:16]
    assert key.digest("PIN", "7391") == "secret:" + expected
    assert key.digest("PIN", "7391") != key.digest("PIN2", "7391")  # equal values of two variables differ
    # the key id reveals nothing about the key: an HMAC of a fixed string under it
    assert key.id == hmac.new(bytes(range(32)), b"gitops secret key id", hashlib.sha256).hexdigest()[:16]
    assert bytes(range(32)).hex() not in repr(key) and "raw" not in repr(key)
    with pytest.raises(ValueError, match="a secret key is 32 bytes, not 5"):
        SecretKey(b"short")


# --- (b) the key file ---------------------------------------------------------------------------------

def test_key_file_is_0600_in_a_0700_folder_and_created_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = installation_key(state)
    path = state / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert path.read_bytes() == first.raw and len(first.raw) == 32
    assert installation_key(state) == first  # read back, not made again
    assert [p.name for p in state.iterdir()] == [KEY_FILE]  # no temporary file left behind


def test_an_existing_state_folder_is_tightened_to_0700(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)  # as StateStore made it before the key existed (umask 022)
    installation_key(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_a_key_file_readable_by_others_is_tightened_to_0600(tmp_path: Path) -> None:
    state = tmp_path / "state"
    key = installation_key(state)
    os.chmod(state / KEY_FILE, 0o644)
    assert installation_key(state) == key
    assert stat.S_IMODE((state / KEY_FILE).stat().st_mode) == 0o600


def test_a_damaged_key_file_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    installation_key(state)
    (state / KEY_FILE).write_bytes(b"x" * 7)
    with pytest.raises(SecretKeyError) as err:
        installation_key(state)
    assert str(err.value) == (
        f"{state / KEY_FILE}: not a gitops secret key (7 bytes, expected 32); restore it from a backup, or remove "
        "it to make a new one (containers with secrets are then recreated once)")


def test_a_shared_sticky_folder_is_left_shared_and_a_key_planted_there_is_refused(tmp_path: Path) -> None:
    """A sticky folder (/tmp, a fresh tmpfs) is not chmodded; the key file in it is private, and one made
    by another user (who would know it) is refused."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    installation_key(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / KEY_FILE).stat().st_mode) == 0o600
    if os.geteuid() != 0:
        pytest.skip("planting a file owned by another user needs root")
    os.chown(shared / KEY_FILE, 65534, 65534)
    with pytest.raises(SecretKeyError) as err:
        installation_key(shared)
    assert str(err.value) == (f"{shared / KEY_FILE}: belongs to another user (uid 65534), who may know the key; "
                              "remove it to make a new one")


def test_processes_started_together_end_with_the_same_key(tmp_path: Path) -> None:
    """Eight processes wait for one go signal, then all create-or-read the key at once: one key wins."""
    state, go = tmp_path / "state", tmp_path / "go"
    code = ("import os, sys\nfrom pathlib import Path\nfrom gitops.secret_key import installation_key\n"
            "go = Path(sys.argv[2]); print('ready', flush=True)\n"
            "while not go.exists(): pass\n"
            "print(installation_key(Path(sys.argv[1])).id, flush=True)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(state), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        ids.append(out.strip())
    assert len(set(ids)) == 1 and ids[0] == SecretKey((state / KEY_FILE).read_bytes()).id
    assert sorted(p.name for p in state.iterdir()) == [KEY_FILE]


# --- (d) the upgrade: containers made under another key ------------------------------------------------

def _as_made_before_the_upgrade(desired: DesiredState):
    """What the hosts showed before per-installation keys: digests keyed by the variable's name, no key id."""
    def old(c: ObservedContainer) -> ObservedContainer:
        svc = desired.service(c.service)
        if not svc.secret_names:
            return c
        config = svc.container_config()
        config["env"] = {e.name: legacy_secret_digest(e.name, e.value) if e.secret else e.value for e in svc.env}
        spec_json = canonical_json(config)
        spec_hash = hashlib.sha256(spec_json.encode()).hexdigest()
        return dataclasses.replace(c, spec_json=spec_json, spec_hash=spec_hash, key_id="",
                                   name=container_name("test", c.service, c.slot, spec_hash))
    return old


def test_upgrade_recreates_only_containers_with_secrets_and_says_why(repo) -> None:
    desired = load(repo(SERVICES), ephemeral_key())
    observed = converged(desired, tweak=_as_made_before_the_upgrade(desired))
    p = plan(desired, observed)
    assert [(s.id, s.action) for s in p.steps] == [("service/plain/0@local", "noop"),
                                                   ("service/web/0@local", "update")]
    step = p.changes[0]
    assert step.reason == f"start-first rolling update: {REKEY_REASON}"
    assert REKEY_REASON == ("secret digests were made with another key (upgrade or another installation); "
                            "recreated to carry digests under this installation's key")
    assert step.changes == ()  # the PIN did not change (the old digest says so): no "(secret changed)"
    assert p.warnings == ("1 container with secrets was made under another key (a gitops upgrade, or a snapshot "
                          "of another installation): it is recreated to carry digests under this installation's "
                          "key",)
    # after the apply the next plan is empty
    assert not plan(desired, converged(desired)).has_changes


def test_upgrade_with_a_changed_secret_still_says_secret_changed(repo) -> None:
    root = repo(SERVICES)
    key = ephemeral_key()
    before = load(root, key)
    (root / "pin").write_text("0000\n")
    after = load(root, key, "r2")
    p = plan(after, converged(before, tweak=_as_made_before_the_upgrade(before)))
    step = p.changes[0]
    assert [c.describe() for c in step.changes] == ["env.PIN: (secret changed)"]
    assert step.reason == f"start-first rolling update (env.PIN changed); {REKEY_REASON}"


def test_containers_of_another_installation_show_the_rekey_reason_not_a_secret_change(repo) -> None:
    """A snapshot or hosts under another key: whether the value changed cannot be known, so no field is claimed."""
    root = repo(SERVICES)
    theirs = load(root, ephemeral_key())
    ours = load(root, ephemeral_key())
    p = plan(ours, converged(theirs))
    assert [(s.id, s.action, s.reason) for s in p.changes] == [
        ("service/web/0@local", "update", f"start-first rolling update: {REKEY_REASON}")]
    assert p.changes[0].changes == ()


def test_a_secret_added_to_a_service_is_a_secret_change_not_a_rekey(repo) -> None:
    root = repo({"web.yaml": service("web", "env: {MODE: prod}")})
    key = ephemeral_key()
    before = load(root, key)
    (root / "web.yaml").write_text(SERVICES["web.yaml"])
    (root / "pin").write_text("1\n")
    step = plan(load(root, key), converged(before)).changes[0]
    assert step.reason == "start-first rolling update (env.PIN changed)"
    assert [c.describe() for c in step.changes] == ["env.PIN: (secret changed)"]


def test_the_container_label_carries_the_key_id_only_with_secrets(repo) -> None:
    from gitops.core.model import HostSpec
    from gitops.hosts.docker import DockerHost

    key = ephemeral_key()
    desired = load(repo(SERVICES), key)
    host = DockerHost(HostSpec("local", ""))
    web, _ = host.container_request("test", desired.service("web"), 0, "r1")
    plain, _ = host.container_request("test", desired.service("plain"), 0, "r1")
    assert web["labels"][LABEL_KEY_ID] == key.id and LABEL_KEY_ID not in plain["labels"]


# --- (c) the key never leaves its file -----------------------------------------------------------------

def gitops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gitops", *args], capture_output=True, text=True, timeout=120,
                          env=env, stdin=subprocess.DEVNULL)


def key_forms(raw: bytes) -> list[str]:
    return [raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]


def test_plan_against_another_installations_snapshot_says_why_and_never_shows_either_key(repo, tmp_path) -> None:
    root = repo(SERVICES)
    theirs = installation_key(tmp_path / "their-state")
    snapshot = tmp_path / "status.json"
    snapshot.write_text(json.dumps({"observed": observed_to_dict(converged(load(root, theirs)))}))
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    state = tmp_path / "state"
    outputs = [gitops("plan", str(root), "--observed", str(snapshot), "--state-dir", str(state), "--format", fmt,
                      env=env) for fmt in ("text", "json", "markdown")]
    outputs.append(gitops("validate", str(root), env=env))
    assert [o.returncode for o in outputs] == [0, 0, 0, 0], [o.stderr for o in outputs]
    assert not (tmp_path / "xdg-state").exists()  # validate needs no key and makes none
    assert f"start-first rolling update: {REKEY_REASON}" in outputs[0].stdout
    assert "made under another key" in outputs[0].stdout
    assert "(secret changed)" not in outputs[0].stdout
    ours = (state / KEY_FILE).read_bytes()
    assert ours != theirs.raw
    texts = [o.stdout + o.stderr for o in outputs] + [
        p.read_bytes().decode("latin-1") for p in state.rglob("*") if p.is_file() and p.name != KEY_FILE]
    for raw in (ours, theirs.raw):
        for form in key_forms(raw):
            assert not any(form in t for t in texts), form


def test_plan_base_compares_two_revisions_under_one_throwaway_key(tmp_path) -> None:
    """Between two refs the secret did not change: no re-key, no "(secret changed)", and no key file made."""
    from tests.gitutil import Remote

    r = Remote(tmp_path / "git")
    base = r.commit({"project.yaml": "apiVersion: gitops/v1\nkind: Project\nmetadata: {name: pr}\n", **SERVICES},
                    "base")
    r.commit({"web.yaml": SERVICES["web.yaml"].replace("local/web:1", "local/web:2")}, "head")
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    state = tmp_path / "state"
    proc = gitops("plan", "--repo", str(r.bare), "--base", base, "--state-dir", str(state), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "~ web[0] on local update: start-first rolling update (image changed)" in proc.stdout
    assert REKEY_REASON not in proc.stdout and "(secret changed)" not in proc.stdout
    assert not (state / KEY_FILE).exists()


# --- (d) on Docker: containers made before the upgrade, then another key ----------------------------------

def _legacy(svc):
    """The spec as a gitops before per-installation keys made it: name-keyed digests and no key-id label."""
    from gitops.core.model import EnvVar

    env = tuple(EnvVar(e.name, e.value, True, legacy_secret_digest(e.name, e.value)) if e.secret else e
                for e in svc.env)
    return dataclasses.replace(svc, env=env, secret_key_id="")


@pytest.mark.docker
def test_upgrade_on_docker_recreates_only_the_containers_with_secrets(deploy, docker_client, project_name) -> None:
    from gitops.engine.executor import Executor
    from gitops.engine.observe import observe_all, open_hosts

    files = {"web.yaml": service("web", "init: true\nstopGracePeriod: 1s\nenv:\n  PIN: {secretFile: pin}"),
             "plain.yaml": service("plain", "init: true\nstopGracePeriod: 1s"), "pin": SHORT_SECRET + "\n"}
    desired = deploy.load(files)
    before = dataclasses.replace(desired, services=tuple(_legacy(s) for s in desired.services))
    with open_hosts(before) as hosts:
        made = Executor(before, hosts).apply(plan(before, observe_all(before, hosts)))
    assert made.ok, made
    old = {c.labels["io.gitops.service"]: c for c in docker_client.containers.list(
        filters={"label": f"io.gitops.project={project_name}"})}
    assert LABEL_KEY_ID not in old["web"].labels

    upgraded = deploy.plan(files)
    assert [(s.id, s.action, s.reason, s.changes) for s in upgraded.plan.changes] == [
        ("service/web/0@local", "update", f"start-first rolling update: {REKEY_REASON}", ())]
    applied = deploy(files)
    assert applied.result is not None and applied.result.ok
    now = {c.labels["io.gitops.service"]: c for c in docker_client.containers.list(
        filters={"label": f"io.gitops.project={project_name}"})}
    assert now["plain"].id == old["plain"].id  # not recreated
    assert now["web"].id != old["web"].id and now["web"].labels[LABEL_KEY_ID] == deploy.key.id
    assert not deploy.plan(files).plan.has_changes
