"""Hostile manifests against the security policy, as a user runs gitops: `gitops validate DIR --format json`
in its own process, each refusal asserted by its exact message, in under 1 s and under 200 MB.

Every bypass a review found in the old denylists is here (SECURITY.md item 4, 13): host paths outside
the dangerous-path list, symlinks through a path another service can write, local volume options that
mount proc/sysfs/overlay/rbind, inline seccomp profiles, SELinux label options, joining another
container's network namespace, plain tcp:// to loopback and Host URLs that broke the URL parser.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.manifests.policy import POLICY_RULES
from tests.conftest import PROJECT, service, write_files
from tests.hostile import run_gitops

VOL = "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: %s}\nspec:\n  options: %s\n"
HOST = "apiVersion: gitops/v1\nkind: Host\nmetadata: {name: %s}\nspec: {url: '%s'}\n"


def project(policy: str = "") -> str:
    return PROJECT + (f"spec:\n  policy:\n{policy}" if policy else "")


def refusal(where: str, field: str, detail: str, rule: str, how: str = "") -> str:
    how = how or f"add '{rule}' to spec.policy.allow of the Project"
    return (f"{where}: {field}: {detail} refused by policy rule '{rule}' ({POLICY_RULES[rule]}); "
            f"if this is intended, {how}")


def validate(tmp_path: Path, files: dict[str, str]) -> list[str]:
    root = write_files(tmp_path / "repo", {"project.yaml": project(), **files})
    measured = run_gitops("validate", str(root), "--format", "json", tmp=tmp_path)
    measured.within_bounds()
    report = json.loads(measured.stdout)  # JSON even when the manifests are refused
    assert measured.returncode == (0 if report["valid"] else 1), measured.stderr
    return [f"{e['file']}:{e['line']}:{e['column']}: {e['message']}" for e in report["errors"]]


def bind(source: str, read_only: bool = False) -> str:
    return f"mounts: [{{type: bind, source: '{source}', target: /x, readOnly: {str(read_only).lower()}}}]"


def host_path(where: str, source: str, allow: str) -> str:
    return refusal(where, "spec.mounts[0].source", f"bind mount of {source}", "host-path",
                   f"add {allow} or a folder above it to spec.policy.allowHostPaths of the Project")


SOCK, SENS = "docker-socket-mount", "sensitive-bind-mount"


def test_host_paths_the_old_denylist_let_through(tmp_path: Path) -> None:
    """Nothing is allowed by default: every bind mount names host-path, and system trees their rule too."""
    paths = ["/run/dbus/system_bus_socket", "/var/spool/cron/crontabs", "/usr", "/bin", "/lib", "/home",
             "/run/user/1000", "/run/systemd/private", "/srv/app"]
    files = {f"s{i}.yaml": service(f"s{i}", bind(p)) for i, p in enumerate(paths)}
    where = {i: f"s{i}.yaml:7:33" for i in range(len(paths))}
    found = validate(tmp_path, files)

    def second(i: int, rule: str) -> str:
        return refusal(where[i], "spec.mounts[0].source", f"bind mount of {paths[i]}", rule)

    assert found == sorted([  # sorted like every error list: file, line, column, message
        host_path(where[0], paths[0], "/run/dbus/system_bus_socket"), second(0, SENS),
        host_path(where[1], paths[1], "/var/spool/cron/crontabs"), second(1, SENS),
        host_path(where[2], paths[2], "/usr"), second(2, SENS),
        host_path(where[3], paths[3], "/bin"), second(3, SENS),
        host_path(where[4], paths[4], "/lib"), second(4, SENS),
        host_path(where[5], paths[5], "/home"),
        host_path(where[6], paths[6], "/run/user/1000"), second(6, SOCK), second(6, SENS),
        host_path(where[7], paths[7], "/run/systemd/private"), second(7, SENS),
        host_path(where[8], paths[8], "/srv/app"),
    ])


def test_allowed_prefixes_are_whole_folders_and_keep_the_second_layer(tmp_path: Path) -> None:
    files = {
        "project.yaml": project("    allowHostPaths: [/srv/app]\n"),
        "a.yaml": service("a", bind("/srv/app/data")),  # inside the prefix: fine
        "b.yaml": service("b", bind("/srv/application")),  # shares the prefix's letters, not its folder
        "c.yaml": service("c", bind("//srv//app/./x/")),  # normalised: /srv/app/x
    }
    assert validate(tmp_path, files) == [host_path("b.yaml:7:33", "/srv/application", "/srv/application")]
    everything = {"project.yaml": project("    allowHostPaths: ['/']\n"),
                  "s.yaml": service("s", bind("/var/run/docker.sock")), "t.yaml": service("t", bind("/etc"))}
    assert validate(tmp_path / "2", everything) == [
        refusal("s.yaml:7:33", "spec.mounts[0].source", "bind mount of /var/run/docker.sock", SOCK),
        refusal("s.yaml:7:33", "spec.mounts[0].source", "bind mount of /var/run/docker.sock", SENS),
        refusal("t.yaml:7:33", "spec.mounts[0].source", "bind mount of /etc", SENS),
    ]


def test_a_dotdot_in_a_host_path_is_refused(tmp_path: Path) -> None:
    """'/srv/app/link/..' is /srv/app as written but the parent of link's target on the host."""
    files = {"project.yaml": project("    allowHostPaths: [/srv/app]\n"),
             "s.yaml": service("s", bind("/srv/app/link/.."))}
    assert validate(tmp_path, files) == [
        "s.yaml:7:33: spec.mounts[0].source: '/srv/app/link/..' contains '..': Docker resolves it on the host "
        "after following symlinks, so write the path without '..'"]


def test_a_path_below_one_another_service_can_write(tmp_path: Path) -> None:
    """A binds /srv/share writable and could make share/root -> /; B binding /srv/share/root gets '/'."""
    below = ("bind-below-writable", "spec.mounts[0].source")
    allow = project("    allowHostPaths: [/srv]\n")
    files = {"project.yaml": allow, "a.yaml": service("a", bind("/srv/share")),
             "b.yaml": service("b", bind("/srv/share/root", read_only=True))}
    assert validate(tmp_path, files) == [refusal(
        "b.yaml:7:33", below[1], "bind mount of /srv/share/root (below /srv/share, which service 'a' can "
        "write)", below[0], f"add '{below[0]}' to spec.policy.allow of the Project, or mount /srv/share "
        "read-only everywhere")]
    # the same service writing the parent counts too
    own = {"project.yaml": allow, "a.yaml": service(
        "a", "mounts: [{type: bind, source: /srv/share, target: /a}, {type: bind, source: /srv/share/x, target: /b}]")}
    assert validate(tmp_path / "2", own) == [refusal(
        "a.yaml:7:79", "spec.mounts[1].source", "bind mount of /srv/share/x (below /srv/share, which service "
        "'a' can write)", below[0], f"add '{below[0]}' to spec.policy.allow of the Project, or mount "
        "/srv/share read-only everywhere")]
    # read-only everywhere: nobody can plant the symlink
    safe = {**files, "a.yaml": service("a", bind("/srv/share", read_only=True))}
    assert validate(tmp_path / "3", safe) == []


@pytest.mark.parametrize("options, shown", [
    ("{type: none, o: rbind, device: .}", "device=., o=rbind, type=none"),
    ("{type: overlay, o: 'lowerdir=/etc:/root'}", "o=lowerdir=/etc:/root, type=overlay"),
    ("{type: proc}", "type=proc"),
    ("{type: sysfs}", "type=sysfs"),
    ("{type: none, o: bind, device: /srv/data}", "device=/srv/data, o=bind, type=none"),
    ("{type: tmpfs, device: tmpfs, o: 'size=1m,exec'}", "device=tmpfs, o=size=1m,exec, type=tmpfs"),
    ("{type: tmpfs, device: /etc}", "device=/etc, type=tmpfs"),
    ("{type: nfs, o: 'addr=127.0.0.1', device: ':/'}", "device=:/, o=addr=127.0.0.1, type=nfs"),
    ("{type: cifs, o: 'addr=10.0.0.9,credentials=/root/.smb', device: //srv/share}",
     "device=//srv/share, o=addr=10.0.0.9,credentials=/root/.smb, type=cifs"),
])
def test_local_volume_options_outside_the_safe_sets(tmp_path: Path, options: str, shown: str) -> None:
    assert validate(tmp_path, {"v.yaml": VOL % ("data", options)}) == [
        refusal("v.yaml:5:12", "spec.options", f"volume options {shown}", "volume-options")]


def test_volume_plugins_and_network_drivers(tmp_path: Path) -> None:
    files = {"v.yaml": "apiVersion: gitops/v1\nkind: Volume\nmetadata: {name: v}\nspec: {driver: local-persist}\n",
             "n.yaml": "apiVersion: gitops/v1\nkind: Network\nmetadata: {name: n}\nspec: {driver: macvlan}\n"}
    assert validate(tmp_path, files) == [
        refusal("n.yaml:4:16", "spec.driver", "network driver macvlan", "network-driver"),
        refusal("v.yaml:4:16", "spec.driver", "volume driver local-persist", "volume-driver"),
    ]


def test_security_options_and_network_namespaces(tmp_path: Path) -> None:
    opts = ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "label=disable", "label:disable", "label=type:spc_t",
            "disable", "apparmor=unconfined", "seccomp=unconfined", "systempaths=unconfined"]
    rules = ["seccomp-profile", "selinux-label", "selinux-label", "selinux-label", "selinux-label",
             "apparmor-profile", "seccomp-profile", "security-opt"]
    body = "securityOpt:\n" + "".join(f"  - '{o}'\n" for o in opts) + "networkMode: 'container:other'\n"
    found = validate(tmp_path, {"s.yaml": service("s", body)})
    assert found == [
        refusal(f"s.yaml:{8 + i}:7", f"spec.securityOpt[{i}]", f"securityOpt {o}", r)
        for i, (o, r) in enumerate(zip(opts, rules, strict=True))
    ] + [refusal("s.yaml:16:16", "spec.networkMode", "networkMode: container:other", "container-network")]
    # only no-new-privileges passes, in each spelling the daemon accepts
    ok = service("s", "securityOpt: [no-new-privileges, 'no-new-privileges:true', no-new-privileges=false]")
    assert validate(tmp_path / "2", {"s.yaml": ok}) == []


@pytest.mark.parametrize("url, expected", [
    ("tcp://127.0.0.1:2375", "spec.url: plain tcp:// to 127.0.0.1 sends the Docker API (root on that host) "
     "unencrypted and lets a manifest make gitops call any service there; configure spec.tls, or set "
     "spec.insecure: true to accept the risk"),
    ("tcp://[::1", "spec.url: 'tcp://[::1' is not a valid URL: the host is not a valid address (an IPv6 "
     "address needs both brackets, as in tcp://[::1]:2376)"),
    ("tcp://h:99999", "spec.url: 'tcp://h:99999' is not a valid URL: the port must be a number from 1 to 65535"),
    ("ssh://deploy@h:x", "spec.url: 'ssh://deploy@h:x' is not a valid URL: the port must be a number from 1 to 65535"),
])
def test_host_urls_are_errors_not_tracebacks(tmp_path: Path, url: str, expected: str) -> None:
    assert validate(tmp_path, {"h.yaml": HOST % ("h1", url)}) == [f"h.yaml:4:13: {expected}"]


# --- what a host answers (SECURITY.md item 13): cut and escaped before it reaches a message ------------------

HOSTILE_ANSWER = "\x1b[31mred\r\n::error::x\u202e" + "A" * 5000


@pytest.fixture
def hostile_engine():
    """A local HTTP server posing as a Docker Engine: /version answers (or not), everything else is an
    error whose text has terminal escapes, a CI workflow command and 5,000 more characters."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = {"version_ok": False}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.endswith("/version") and state["version_ok"]:
                status, body = 200, {"ApiVersion": "1.41", "Version": "20.10.0", "MinAPIVersion": "1.12"}
            else:
                status, body = 500, {"message": HOSTILE_ANSWER}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], state
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("version_ok", [False, True], ids=["connect-error", "api-error"])
def test_host_error_text_is_cut_and_escaped(tmp_path: Path, hostile_engine, version_ok: bool) -> None:
    port, state = hostile_engine
    state["version_ok"] = version_ok
    root = write_files(tmp_path / "repo", {
        "project.yaml": project(),
        "h.yaml": f"apiVersion: gitops/v1\nkind: Host\nmetadata: {{name: h1}}\n"
                  f"spec: {{url: 'tcp://127.0.0.1:{port}', insecure: true}}\n",
        "s.yaml": service("web")})
    measured = run_gitops("plan", str(root), "--format", "json", "--state-dir", str(tmp_path / "state"), tmp=tmp_path)
    measured.within_bounds()
    error = json.loads(measured.stdout)["unreachable"][0]["error"]
    assert "\\x1b[31mred\\r\\n::error::x\\u202eAAA" in error  # escaped, so nothing reaches a terminal or a CI log
    assert all(c.isprintable() for c in error)
    assert len(error) < 500 and error.endswith(" more characters)")
