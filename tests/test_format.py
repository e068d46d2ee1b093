"""The manifest format v1: every kind and field accepted and modelled; typical mistakes, exact texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.core.model import EnvVar, HealthCheck, Mount, NetworkAttachment, Port, ephemeral_key
from gitops.manifests.load import load_repo
from tests.conftest import service

FULL = """\
apiVersion: gitops/v1
kind: Project
metadata:
  name: full
  labels: {team: core}
spec:
  prune: true
  selfHeal: false
  policy:
    allow: [cap-add]
    allowCapabilities: [NET_ADMIN]
    allowHostPaths: [/srv/static]
  defaults:
    pullPolicy: always
    restart: on-failure
    labels: {owner: ops}
    resources: {memory: 128Mi}
    update: {parallelism: 2, failureAction: pause}
    stopGracePeriod: 20s
    networks: [front]
---
apiVersion: gitops/v1
kind: Host
metadata: {name: alpha}
spec:
  url: tcp://127.0.0.1:2376
  tls: {ca: certs/ca.pem, cert: certs/cert.pem, key: certs/key.pem, verify: true}
  labels: {zone: a, role: web}
---
apiVersion: gitops/v1
kind: Host
metadata: {name: beta}
spec:
  url: ssh://deploy@127.0.0.1
  labels: {zone: b, role: web}
---
apiVersion: gitops/v1
kind: Host
metadata: {name: gamma}
spec:
  url: unix:///run/gamma/docker.sock
---
apiVersion: gitops/v1
kind: Network
metadata: {name: front}
spec: {driver: bridge, internal: false, attachable: true, subnet: 10.77.0.0/24, labels: {a: b}}
---
apiVersion: gitops/v1
kind: Network
metadata: {name: back}
spec: {internal: true}
---
apiVersion: gitops/v1
kind: Volume
metadata: {name: data}
spec: {driver: local, options: {type: tmpfs, device: tmpfs, o: "size=10m"}, labels: {keep: "yes"}}
---
apiVersion: gitops/v1
kind: Volume
metadata: {name: old}
spec: {remove: true}
---
apiVersion: gitops/v1
kind: Service
metadata: {name: db}
spec:
  image: local/busybox:1
  healthcheck: {tcp: {port: 5432}, interval: 1s}
  ports: [{container: 5432, host: 15432, hostIp: 127.0.0.1}]
  placement: {hosts: [gamma]}
---
apiVersion: gitops/v1
kind: Service
metadata:
  name: api
  labels: {tier: app}
spec:
  image: local/web:2
  pullPolicy: never
  command: ["httpd", "-f", "-p", "8080"]
  entrypoint: "exec $0 $@"
  env:
    PLAIN: hello
    NUMBER: 5
    FLAG: true
    TOKEN: {secretFile: secrets/token}
  envFile: [config/a.env]
  workingDir: /www
  user: "65534"
  hostname: api-box
  ports:
    - {container: 8080, host: 18080, protocol: tcp, hostIp: 127.0.0.1}
    - {container: 53, protocol: udp}
  mounts:
    - {type: volume, source: data, target: /data, readOnly: true}
    - {type: bind, source: /srv/static, target: /static}
    - {type: tmpfs, target: /tmp, size: 16Mi}
  networks:
    - back
    - {name: front, aliases: [api, api-v2]}
  labels: {com.example.app: shop}
  resources: {cpus: 0.5, memory: 256Mi, memoryReservation: 64Mi}
  restart: always
  stopSignal: SIGINT
  stopGracePeriod: 1m30s
  replicas: 2
  placement: {selector: {role: web}}
  healthcheck:
    http: {port: 8080, path: /healthz, status: 200}
    interval: 200ms
    timeout: 1s
    retries: 5
    startPeriod: 2s
  update:
    parallelism: 2
    order: stop-first
    minHealthyTime: 1s
    healthyDeadline: 45s
    failureAction: rollback
  dependsOn:
    - db
    - {service: db, condition: healthy}
  selfHeal: true
  capAdd: [NET_ADMIN, CHOWN]
  capDrop: [ALL]
  securityOpt: ["no-new-privileges:true"]
  readOnlyRootfs: true
  init: true
"""


@pytest.fixture
def full_repo(repo) -> Path:
    return repo({
        "all.yaml": FULL,
        "secrets/token": "s3cr3t-canary\n",
        "config/a.env": "# comment\nFROM_FILE=1\nPLAIN=overridden-by-env\n",
        "certs/ca.pem": "ca", "certs/cert.pem": "cert", "certs/key.pem": "key",
    }, project=False)


def test_every_kind_and_field_is_accepted_and_modelled(full_repo: Path) -> None:
    """A manifest using every field validates, and each field reaches the model."""
    outcome = load_repo(full_repo)
    assert outcome.errors == []
    d = outcome.desired
    assert d is not None
    assert (d.project.name, d.project.prune, d.project.self_heal) == ("full", True, False)
    assert d.project.allow == {"cap-add"}
    assert [h.name for h in d.hosts] == ["alpha", "beta", "gamma"]
    alpha = d.hosts[0]
    assert alpha.tls is not None and alpha.tls.ca.endswith("certs/ca.pem") and alpha.tls.verify
    assert dict(alpha.labels) == {"zone": "a", "role": "web"}
    front = next(n for n in d.networks if n.name == "front")
    assert (front.attachable, front.subnet, front.internal) == (True, "10.77.0.0/24", False)
    assert next(n for n in d.networks if n.name == "back").internal
    assert [(v.name, v.remove) for v in d.volumes] == [("data", False), ("old", True)]
    api = d.service("api")
    assert api.image == "local/web:2" and api.pull_policy == "never"
    assert api.command == ("httpd", "-f", "-p", "8080")
    assert api.entrypoint == ("/bin/sh", "-c", "exec $0 $@")
    env = {e.name: e for e in api.env}
    assert env["PLAIN"].value == "hello" and env["NUMBER"].value == "5" and env["FLAG"].value == "true"
    assert env["FROM_FILE"].value == "1"
    assert env["TOKEN"] == EnvVar("TOKEN", "s3cr3t-canary", secret=True, digest=env["TOKEN"].digest)
    assert env["TOKEN"].digest.startswith("secret:") and api.secret_key_id
    assert (api.working_dir, api.user, api.hostname) == ("/www", "65534", "api-box")
    assert api.ports == (Port(8080, 18080, "tcp", "127.0.0.1"), Port(53, None, "udp", ""))
    assert api.mounts == (Mount("volume", "/data", "data", True), Mount("bind", "/static", "/srv/static"),
                          Mount("tmpfs", "/tmp", "", False, 16 * 1024 * 1024))
    assert api.networks == (NetworkAttachment("back"), NetworkAttachment("front", ("api", "api-v2")))
    assert dict(api.labels) == {"com.example.app": "shop", "owner": "ops"}  # mappings merge with defaults
    assert (api.cpus, api.memory, api.memory_reservation) == (0.5, 256 * 2**20, 64 * 2**20)
    assert (api.restart, api.stop_signal, api.stop_grace_period) == ("always", "SIGINT", 90.0)
    assert api.replicas == 2 and api.hosts == ("alpha", "beta")
    assert api.healthcheck == HealthCheck("http", port=8080, path="/healthz", status=200, interval=0.2,
                                          timeout=1.0, retries=5, start_period=2.0)
    assert (api.update.parallelism, api.update.order, api.update.min_healthy_time,
            api.update.healthy_deadline, api.update.failure_action) == (2, "stop-first", 1.0, 45.0, "rollback")
    assert [(x.service, x.condition) for x in api.depends_on] == [("db", "started"), ("db", "healthy")]
    assert api.self_heal and api.cap_add == ("NET_ADMIN", "CHOWN") and api.cap_drop == ("ALL",)
    assert api.security_opt == ("no-new-privileges:true",) and api.read_only_rootfs and api.init
    db = d.service("db")
    # Project defaults fill what the service leaves out
    assert (db.pull_policy, db.restart, db.memory, db.stop_grace_period) == ("always", "on-failure", 128 * 2**20, 20.0)
    assert (db.update.parallelism, db.update.failure_action) == (2, "pause")
    assert db.networks == (NetworkAttachment("front"),) and dict(db.labels) == {"owner": "ops"}
    assert db.self_heal is False  # from the Project
    assert db.update.order == "stop-first"  # implied by the fixed host port
    assert [(i.host, i.slot) for i in d.instances(api)] == [("alpha", 0), ("beta", 1)]


def test_secret_values_stay_out_of_hash_input_and_repr(full_repo: Path) -> None:
    """The canonical config (hashed, labelled) holds a digest of the secret, never the value."""
    d = load_repo(full_repo).desired
    assert d is not None
    api = d.service("api")
    assert "s3cr3t-canary" not in repr(api)
    config = repr(api.container_config())
    assert "s3cr3t-canary" not in config and "secret:" in config


def test_changing_a_secret_changes_the_spec_hash(full_repo: Path) -> None:
    key = ephemeral_key()  # one installation: the same key for both loads
    before = load_repo(full_repo, key=key).desired.service("api").spec_hash  # type: ignore[union-attr]
    assert load_repo(full_repo, key=key).desired.service("api").spec_hash == before  # type: ignore[union-attr]
    (full_repo / "secrets" / "token").write_text("rotated\n")
    after = load_repo(full_repo, key=key).desired.service("api").spec_hash  # type: ignore[union-attr]
    assert before != after


def test_rollout_settings_do_not_change_the_spec_hash(repo) -> None:
    """Replicas, placement, update policy and dependencies are not container config."""
    a = load_repo(repo({"s.yaml": service("web", "replicas: 1")})).desired.service("web").spec_hash
    b = load_repo(repo({"s.yaml": service("web", "replicas: 3\nupdate: {parallelism: 3}")})).desired.service("web").spec_hash
    c = load_repo(repo({"s.yaml": service("web", "replicas: 3\nenv: {A: '1'}")})).desired.service("web").spec_hash
    assert a == b != c


def errors(root: Path) -> list[str]:
    return [str(e) for e in load_repo(root).errors]


@pytest.mark.parametrize("body, expected", [
    # wrong type
    ("replicas: two", "s.yaml:7:13: spec.replicas: expected integer, got string 'two'"),
    # unknown field with a suggestion
    ("helthcheck: {exec: [true]}", "s.yaml:7:3: spec.helthcheck: unknown field 'helthcheck'; did you mean 'healthcheck'?"),
    ("update: {ordr: stop-first}", "s.yaml:7:12: spec.update.ordr: unknown field 'ordr'; did you mean 'order'?"),
    # enum, with the issue's own example
    ("update:\n  order: fast", "s.yaml:8:12: spec.update.order: 'fast' is not one of ['start-first', 'stop-first']"),
    ("pullPolicy: sometimes", "s.yaml:7:15: spec.pullPolicy: 'sometimes' is not one of ['missing', 'always', 'never']"),
    # durations and sizes that do not parse
    ("healthcheck: {exec: [x], interval: 5 seconds}",
     "s.yaml:7:38: spec.healthcheck.interval: '5 seconds' is not valid: A duration such as 200ms, 5s, 1m30s, 2h."),
    ("resources: {memory: 12 MB}",
     "s.yaml:7:23: spec.resources.memory: '12 MB' is not valid: Bytes as an integer, or a size such as 512Ki, 256Mi, 1G, 1.5Gi."),
    ("ports: [{container: 70000}]", "s.yaml:7:23: spec.ports[0].container: 70000 is greater than the maximum of 65535"),
    ("healthcheck: {exec: [x], tcp: {port: 1}}", "s.yaml:7:16: spec.healthcheck: set exactly one of exec, http, tcp"),
    ("env: {1BAD: x}", "s.yaml:7:8: spec.env: '1BAD' is not valid: Variable names are letters, digits and '_', not starting with a digit."),
])
def test_typical_mistakes_have_exact_messages(repo, body: str, expected: str) -> None:
    assert errors(repo({"s.yaml": service("api", body)})) == [expected]


def test_missing_required_and_bad_envelope(repo) -> None:
    root = repo({
        "a.yaml": "apiVersion: gitops/v1\nkind: Service\nmetadata: {name: a}\nspec: {replicas: 1}\n",
        "b.yaml": "apiVersion: gitops/v2\nkind: Service\n",
        "c.yaml": "apiVersion: gitops/v1\nkind: Servce\n",
        "d.yaml": "kind: Service\n",
        "e.yaml": "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: Bad_Name}\n",
    })
    assert errors(root) == [
        "a.yaml:4:7: spec: 'image' is a required property",
        "b.yaml:1:13: apiVersion: 'gitops/v2' is not supported; use 'gitops/v1'",
        "c.yaml:2:7: kind: 'Servce' is not one of ['Project', 'Host', 'Service', 'Network', 'Volume', 'Registry']; did you mean 'Service'?",
        "d.yaml:1:1: not a gitops manifest: apiVersion is missing (expected 'gitops/v1')",
        "e.yaml:3:18: metadata.name: 'Bad_Name' is not valid: Lower-case letters, digits, '-', '_' and '.', "
        "starting and ending with a letter or digit, at most 63 characters.",
    ]


def test_all_errors_of_a_repository_in_one_run(repo) -> None:
    """Errors from several files and stages are all reported, sorted by file and line."""
    root = repo({
        "a.yaml": service("a", "replicas: x"),
        "b.yaml": service("b", "dependsOn: [nope]"),
        "c.yaml": "a: [\n",
    })
    found = errors(root)
    assert [e.split(":")[0] for e in found] == ["a.yaml", "b.yaml", "c.yaml"]
    assert "service 'nope' is not defined" in found[1]
