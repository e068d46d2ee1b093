"""Semantic checks after the schema, and the security policy (SECURITY.md item 4), rule by rule."""

from __future__ import annotations

import pytest

from gitops.manifests.checks import find_cycles
from gitops.manifests.load import load_repo
from gitops.manifests.policy import classify_bind_source, normalize_host_path
from tests.conftest import PROJECT, service

NET = "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: %s}\n"
VOL = "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: %s}\n"
HOST = "apiVersion: gitops/v1\nkind: Host\nmetadata: {name: %s}\nspec: {url: %s}\n"


def errors(repo, files: dict[str, str], **kw) -> list[str]:
    return [str(e) for e in load_repo(repo(files, **kw)).errors]


def test_names_are_unique_per_kind(repo) -> None:
    found = errors(repo, {"a.yaml": service("web"), "b.yaml": service("web"), "n.yaml": NET % "web"})
    assert found == ["b.yaml:4:9: metadata.name: Service 'web' is already defined at a.yaml:4; "
                     "names must be unique per kind"]


def test_a_project_is_required_and_only_one(repo) -> None:
    assert errors(repo, {"a.yaml": service("web")}, project=False) == [
        ".: no Project manifest: add one document with 'kind: Project' and metadata.name to name the "
        "project (its name labels every container gitops manages)"]
    found = errors(repo, {"p2.yaml": PROJECT.replace("test", "other")})
    assert found == ["project.yaml:2:7: kind: only one Project may exist in a repository; merge them"]


@pytest.mark.parametrize("body, expected", [
    ("dependsOn: [dbb]\n", "s.yaml:7:15: spec.dependsOn[0]: service 'dbb' is not defined; did you mean 'db'?"),
    ("dependsOn: [web]\n", "s.yaml:7:15: spec.dependsOn[0]: a service cannot depend on itself"),
    ("dependsOn: [{service: db, condition: healthy}]\n",
     "s.yaml:7:15: spec.dependsOn[0]: condition 'healthy' needs service 'db' to have a healthcheck"),
    ("networks: [frnt]\n", "s.yaml:7:14: spec.networks[0]: network 'frnt' is not defined; did you mean 'front'?"),
    ("mounts: [{type: volume, source: dat, target: /d}]\n",
     "s.yaml:7:35: spec.mounts[0].source: volume 'dat' is not defined; did you mean 'data'?"),
    ("mounts: [{type: volume, target: /d}]\n", "s.yaml:7:12: spec.mounts[0]: a volume mount needs source (a Volume name)"),
    ("mounts: [{type: bind, source: rel/path, target: /d}]\n",
     "s.yaml:7:12: spec.mounts[0]: a bind mount needs an absolute source path on the host"),
    ("mounts: [{type: tmpfs, source: x, target: /d}]\n", "s.yaml:7:34: spec.mounts[0].source: a tmpfs mount has no source"),
    ("placement: {hosts: [h1]}\n",
     "s.yaml:7:23: spec.placement.hosts[0]: host 'h1' is not defined; there are no Host manifests "
     "(the local engine is used as the one host)"),
    ("labels: {io.gitops.managed: 'no'}\n",
     "s.yaml:7:12: spec.labels.io.gitops.managed: the 'io.gitops.' prefix is reserved for gitops' ownership labels"),
    ("networkMode: none\nnetworks: [front]\n", "s.yaml:7:16: spec.networkMode: cannot be combined with networks"),
    ("healthcheck: {exec: [x], interval: 0s}\n", "s.yaml:7:38: spec.healthcheck.interval: must be at least 1ms"),
    ("update: {minHealthyTime: 1m, healthyDeadline: 30s}\n",
     "s.yaml:7:28: spec.update.minHealthyTime: must be shorter than healthyDeadline, or no update could ever succeed"),
    ("resources: {memory: 1Mi}\n", "s.yaml:7:23: spec.resources.memory: Docker needs at least 6Mi"),
    ("resources: {memory: 64Mi, memoryReservation: 128Mi}\n",
     "s.yaml:7:48: spec.resources.memoryReservation: must not exceed memory"),
    ("mounts: [{type: volume, source: data, target: /d, size: 1Mi}]\n",
     "s.yaml:7:59: spec.mounts[0].size: only tmpfs mounts have a size"),
    ("healthcheck: {http: {port: 8080}}\n",
     "s.yaml:7:30: spec.healthcheck.http.port: container port 8080 must be published with a fixed host port in "
     "spec.ports: the reconciler probes it from outside the container"),
    ("ports: [{container: 80, host: 8080}]\nupdate: {order: start-first}\n",
     "s.yaml:8:19: spec.update.order: start-first cannot work with the fixed host port 8080: old and new "
     "containers would share a host and both bind it; use order: stop-first, or drop the host port"),
    ("ports: [{container: 80, host: 8080}]\nreplicas: 2\n",
     "s.yaml:7:33: spec.ports[0].host: 8080/tcp on host 'local' is already published by another replica of "
     "this service; use another host port, fewer replicas per host, or spread them with placement"),
])
def test_semantic_errors(repo, body: str, expected: str) -> None:
    files = {"s.yaml": service("web", body), "db.yaml": service("db"), "n.yaml": NET % "front", "v.yaml": VOL % "data"}
    assert errors(repo, files) == [expected]


def test_port_clash_between_two_services_and_ip_overlap(repo) -> None:
    files = {
        "a.yaml": service("a", "ports: [{container: 80, host: 8080, hostIp: 127.0.0.1}]"),
        "b.yaml": service("b", "ports: [{container: 80, host: 8080}]"),  # 0.0.0.0 overlaps 127.0.0.1
        "c.yaml": service("c", "ports: [{container: 80, host: 8080, protocol: udp}]"),  # udp: no clash
        "d.yaml": service("d", "ports: [{container: 80, host: 9090, hostIp: 127.0.0.1}]"),
        "e.yaml": service("e", "ports: [{container: 80, host: 9090, hostIp: 127.0.0.2}]"),  # other ip: fine
    }
    assert errors(repo, files) == [
        "b.yaml:7:33: spec.ports[0].host: 8080/tcp on host 'local' is already published by service 'a'; use "
        "another host port, fewer replicas per host, or spread them with placement"]


def test_port_clash_only_on_the_same_host(repo) -> None:
    hosts = {"h.yaml": HOST % ("h1", "unix:///run/h1.sock") + "---\n" + HOST % ("h2", "unix:///run/h2.sock")}
    spread = service("web", "replicas: 2\nports: [{container: 80, host: 8080}]\nplacement: {hosts: [h1, h2]}")
    assert errors(repo, {**hosts, "s.yaml": spread}) == []
    packed = service("web", "replicas: 3\nports: [{container: 80, host: 8080}]\nplacement: {hosts: [h1, h2]}")
    assert len(errors(repo, {**hosts, "s.yaml": packed})) == 1


def test_dependency_cycle_is_reported_whole(repo) -> None:
    files = {"a.yaml": service("a", "dependsOn: [b]"), "b.yaml": service("b", "dependsOn: [c]"),
             "c.yaml": service("c", "dependsOn: [a]"), "d.yaml": service("d", "dependsOn: [a]")}
    assert errors(repo, files) == [
        "a.yaml:7:14: spec.dependsOn: dependency cycle a -> b -> c -> a; services in a cycle could never start"]


def test_find_cycles_is_iterative_for_long_chains() -> None:
    graph = {f"s{i}": [f"s{i + 1}"] for i in range(5000)}
    graph["s5000"] = ["s0"]
    cycles = find_cycles(graph)
    assert len(cycles) == 1 and len(cycles[0]) == 5002


@pytest.mark.parametrize("url, expected", [
    ("tcp://10.1.2.3:2375", "h.yaml:4:13: spec.url: plain tcp:// to 10.1.2.3 sends the Docker API (root on that "
     "host) unencrypted and lets a manifest make gitops call any service there; configure spec.tls, or set "
     "spec.insecure: true to accept the risk"),
    ("tcp://127.0.0.1:2375", "h.yaml:4:13: spec.url: plain tcp:// to 127.0.0.1 sends the Docker API (root on "
     "that host) unencrypted and lets a manifest make gitops call any service there; configure spec.tls, or "
     "set spec.insecure: true to accept the risk"),
    ("tcp://10.1.2.3", "h.yaml:4:13: spec.url: tcp:// needs a host and a port, e.g. tcp://10.0.0.5:2376"),
    ("tcp://10.1.2.3:0", "h.yaml:4:13: spec.url: tcp:// needs a host and a port, e.g. tcp://10.0.0.5:2376"),
    ("tcp://h:99999", "h.yaml:4:13: spec.url: 'tcp://h:99999' is not a valid URL: the port must be a number "
     "from 1 to 65535"),
    ("ftp://x", "h.yaml:4:13: spec.url: 'ftp://x' is not valid: unix:///var/run/docker.sock, tcp://10.0.0.5:2376 or ssh://deploy@host."),
])
def test_host_urls(repo, url: str, expected: str) -> None:
    assert errors(repo, {"h.yaml": HOST % ("h1", url)}) == [expected]


def test_plain_tcp_allowed_only_when_insecure(repo) -> None:
    """Loopback included: a Host manifest must not make gitops call a local service unasked."""
    ok = ("apiVersion: gitops/v1\nkind: Host\nmetadata: {name: h1}\nspec: {url: 'tcp://127.0.0.1:2375', "
          "insecure: true}\n---\napiVersion: gitops/v1\nkind: Host\nmetadata: {name: h2}\n"
          "spec: {url: 'tcp://10.1.2.3:2375', insecure: true}\n")
    assert errors(repo, {"h.yaml": ok}) == []


def test_tls_files_must_be_inside_the_repo(repo, tmp_path) -> None:
    host = ("apiVersion: gitops/v1\nkind: Host\nmetadata: {name: h1}\nspec:\n  url: tcp://10.0.0.1:2376\n"
            "  tls: {ca: ../../outside/ca.pem, cert: c.pem, key: k.pem}\n")
    found = errors(repo, {"h.yaml": host, "c.pem": "x", "k.pem": "y"})
    assert found == ["h.yaml:6:13: spec.tls.ca: '../../outside/ca.pem' resolves outside the repository"]


def test_selector_matching_no_host(repo) -> None:
    files = {"h.yaml": HOST % ("h1", "unix:///a.sock"), "s.yaml": service("web", "placement: {selector: {zone: x}}")}
    assert errors(repo, files) == [
        "s.yaml:7:25: spec.placement.selector: no Host has these labels, so the service would run nowhere"]


def test_env_and_secret_files(repo) -> None:
    body = "envFile: [../cfg/missing.env, bad.env]\nenv:\n  TOKEN: {secretFile: /etc/shadow}\n"
    found = errors(repo, {"svc/s.yaml": service("web", body), "svc/bad.env": "not a pair\n"})
    assert found == [
        "svc/s.yaml:7:13: spec.envFile[0]: '../cfg/missing.env' is not a file in the repository",
        "svc/s.yaml:7:33: spec.envFile[1]: line 1: expected KEY=VALUE",
        "svc/s.yaml:9:25: spec.env.TOKEN.secretFile: '/etc/shadow' is absolute; name a file inside the "
        "repository instead",
    ]


# --- policy -------------------------------------------------------------------------------------------

POLICY_CASES = [
    ("privileged", "privileged: true", "spec.privileged: privileged: true"),
    ("host-network", "networkMode: host", "spec.networkMode: networkMode: host"),
    ("host-pid", "pid: host", "spec.pid: pid: host"),
    ("host-ipc", "ipc: host", "spec.ipc: ipc: host"),
    ("host-uts", "uts: host", "spec.uts: uts: host"),
    ("host-userns", "userns: host", "spec.userns: userns: host"),
    ("cap-add", "capAdd: [SYS_ADMIN]", "spec.capAdd[0]: capAdd SYS_ADMIN"),
    ("cap-add", "capAdd: [ALL]", "spec.capAdd[0]: capAdd ALL"),
    ("devices", "devices: [/dev/sda]", "spec.devices[0]: device /dev/sda"),
    ("container-network", "networkMode: 'container:db'", "spec.networkMode: networkMode: container:db"),
    ("seccomp-profile", "securityOpt: [seccomp=unconfined]", "spec.securityOpt[0]: securityOpt seccomp=unconfined"),
    ("seccomp-profile", "securityOpt: ['seccomp:unconfined']", "spec.securityOpt[0]: securityOpt seccomp:unconfined"),
    ("apparmor-profile", "securityOpt: [apparmor=unconfined]", "spec.securityOpt[0]: securityOpt apparmor=unconfined"),
    ("selinux-label", "securityOpt: ['label=disable']", "spec.securityOpt[0]: securityOpt label=disable"),
    ("security-opt", "securityOpt: ['systempaths=unconfined']",
     "spec.securityOpt[0]: securityOpt systempaths=unconfined"),
]

SOCK, SENS = "docker-socket-mount", "sensitive-bind-mount"
# The second layer: rules a bind mount needs even inside an allowed host path prefix.
BIND_CASES = [
    ("/", [SOCK, SENS]), ("/etc", [SENS]), ("/etc/ssl/", [SENS]), ("/proc", [SENS]), ("/sys/fs", [SENS]),
    ("/root", [SENS]), ("/var/lib/docker", [SENS]), ("/var/lib/docker/volumes", [SENS]),
    ("/var", [SENS]),  # a parent of /var/lib/docker
    ("/usr", [SENS]), ("/bin", [SENS]), ("/lib", [SENS]), ("/var/spool/cron/crontabs", [SENS]),
    ("/run/dbus/system_bus_socket", [SENS]), ("/run/systemd/private", [SENS]),
    ("/run/user/1000", [SOCK, SENS]),  # a rootless docker.sock's folder
    ("/var/run/docker.sock", [SOCK, SENS]), ("//var/run/docker.sock", [SOCK, SENS]),
    ("/run/docker.sock", [SOCK, SENS]), ("/var/run/docker.sock/", [SOCK, SENS]),
    ("/var/./run/../run/docker.sock", [SOCK, SENS]), ("/run", [SOCK, SENS]), ("/var/run", [SOCK, SENS]),
    ("/run/containerd/containerd.sock", [SOCK, SENS]), ("/home/me/.docker/run/docker.sock", [SOCK]),
    ("/srv/app", []), ("/home/app/data", []), ("/etcetera", []), ("/opt/var/lib/docker-notes", []),
    ("/usrlocal", []), ("/runner", []),
]


@pytest.mark.parametrize("rule, body, detail", POLICY_CASES)
def test_policy_refuses_each_rule_unless_allowed(repo, rule: str, body: str, detail: str) -> None:
    found = errors(repo, {"s.yaml": service("web", body)})
    assert len(found) == 1
    assert f"{detail} refused by policy rule '{rule}'" in found[0]
    assert f"add '{rule}' to spec.policy.allow of the Project" in found[0]
    allowed = PROJECT + f"spec:\n  policy:\n    allow: [{rule}]\n"
    assert errors(repo, {"project.yaml": allowed, "s.yaml": service("web", body)}) == []


@pytest.mark.parametrize("path, rules", BIND_CASES)
def test_bind_mount_classification(path: str, rules: list[str]) -> None:
    assert classify_bind_source(path) == rules


@pytest.mark.parametrize("path, rules", [c for c in BIND_CASES if ".." not in c[0]])  # '..' is an error
def test_bind_mount_policy_end_to_end(repo, path: str, rules: list[str]) -> None:
    """Outside allowHostPaths, every bind mount is refused by host-path; inside even '/', each
    second-layer rule is still reported, and allowing one does not let the other through."""
    body = f"mounts: [{{type: bind, source: '{path}', target: /x}}]"
    found = errors(repo, {"s.yaml": service("web", body)})
    assert [r for r in ("host-path", SOCK, SENS) if any(f"refused by policy rule '{r}'" in f for f in found)] == [
        "host-path", *rules]
    everywhere = PROJECT + "spec:\n  policy:\n    allowHostPaths: ['/']\n"
    left = errors(repo, {"project.yaml": everywhere, "s.yaml": service("web", body)})
    assert [r for r in (SOCK, SENS) if any(f"refused by policy rule '{r}'" in f for f in left)] == rules
    assert len(left) == len(rules)
    if rules:
        allow_first = everywhere + f"    allow: [{rules[0]}]\n"
        assert len(errors(repo, {"project.yaml": allow_first, "s.yaml": service("web", body)})) == len(rules) - 1


def test_allowlisted_capabilities_and_project_extras(repo) -> None:
    assert errors(repo, {"s.yaml": service("web", "capDrop: [ALL]\ncapAdd: [NET_BIND_SERVICE, CAP_CHOWN]")}) == []
    extra = PROJECT + "spec:\n  policy:\n    allowCapabilities: [NET_ADMIN]\n"
    assert errors(repo, {"project.yaml": extra, "s.yaml": service("web", "capAdd: [NET_ADMIN]")}) == []


@pytest.mark.parametrize("options, refused", [
    ("{type: none, o: bind, device: /srv/data}", True),
    ("{o: 'rw,bind'}", True),
    ("{device: /dev/sdb1, type: ext4}", True),
    ("{type: tmpfs, device: tmpfs, o: 'size=100m'}", False),
    ("{type: nfs, o: 'addr=10.0.0.1,rw', device: ':/export'}", False),
])
def test_volume_options(repo, options: str, refused: bool) -> None:
    vol = VOL % "data" + f"spec:\n  options: {options}\n"
    found = errors(repo, {"v.yaml": vol})
    assert bool(found) == refused
    if refused:
        assert "refused by policy rule 'volume-options'" in found[0]
        allowed = PROJECT + "spec:\n  policy:\n    allow: [volume-options]\n"
        assert errors(repo, {"project.yaml": allowed, "v.yaml": vol}) == []


def test_policy_sees_merge_keys(repo) -> None:
    """A dangerous setting smuggled in through a '<<' merge is still refused."""
    text = ("apiVersion: gitops/v1\nkind: Service\nmetadata: {name: web}\n"
            "x-danger: &danger {privileged: true, image: local/web:1}\nspec:\n  <<: *danger\n")
    found = errors(repo, {"s.yaml": text})
    # x-danger is an unknown top-level field, and the merged privileged flag is refused by policy
    assert any("unknown field 'x-danger'" in f for f in found)
    text2 = ("apiVersion: gitops/v1\nkind: Service\nmetadata: {name: web}\n"
             "spec:\n  <<: {privileged: true}\n  image: local/web:1\n")
    found2 = errors(repo, {"s.yaml": text2})
    assert len(found2) == 1 and "refused by policy rule 'privileged'" in found2[0]


def test_policy_sees_project_defaults(repo) -> None:
    """Defaults merged into a service are checked like the service's own fields."""
    project = PROJECT + "spec:\n  defaults:\n    networks: [front]\n"
    assert errors(repo, {"project.yaml": project, "s.yaml": service("web")}) == [
        "s.yaml:6:3: spec.networks[0]: network 'front' is not defined"]


def test_normalize_host_path() -> None:
    assert normalize_host_path("//var//run/./docker.sock/") == "/run/docker.sock"
    assert normalize_host_path("/a/b/../c") == "/a/c"
