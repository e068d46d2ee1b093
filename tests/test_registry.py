"""gitops.hosts.registry: tags resolved to digests on a real registry (docker-registry, TLS, a password) and,
for what a real registry will not do on demand (Bearer tokens, redirects, oversized answers), on a small
threaded HTTP server on loopback that checks the shape of each request."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gitops.core.model import DesiredState, ProjectSpec, RegistrySpec
from gitops.hosts.registry import (
    MANIFEST_TYPES,
    Credentials,
    RegistryClient,
    RegistryError,
    client_for,
    is_loopback,
    parse_challenges,
)
from tests.registryutil import TestRegistry, free_port, make_tls  # the `registry` fixture comes from conftest.py

D1 = "sha256:" + "ab" * 32
D2 = "sha256:" + "cd" * 32


def no_secret(exc: BaseException, *secrets: str) -> None:
    """None of ``secrets`` (nor their base64 in a Basic header) shows in the error, its repr or its args."""
    texts = [str(exc), repr(exc), *map(str, exc.args)]
    for secret in secrets:
        forms = {secret, base64.b64encode(secret.encode()).decode()}
        for text in texts:
            for form in forms:
                assert form not in text


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# --- the real registry ------------------------------------------------------------------------------------------

@pytest.fixture
def creds(registry) -> dict[str, Credentials]:
    return {registry.address: Credentials(registry.username, registry.password, origin="test registry")}


@pytest.mark.docker
def test_resolve_equals_the_digest_docker_pushed_and_pulls(registry, creds, docker_client) -> None:
    repo = unique("web")
    pushed = registry.push("local/web:1", repo, "1")
    with RegistryClient(creds, docker_config=False) as client:
        assert client.resolve(registry.image(repo, "1")) == pushed
    # dockerd pulls it with the same credentials (their auth_config) and the CA the fixture installed
    cred = creds[registry.address]
    docker_client.api.pull(registry.image(repo), tag="1", auth_config=cred.auth_config())
    try:
        # (RepoDigests belong to the image, so other tests' pushes of local/web:1 are listed too)
        assert f"{registry.image(repo)}@{pushed}" in docker_client.images.get(registry.image(repo, "1")).attrs[
            "RepoDigests"]
    finally:
        docker_client.images.remove(registry.image(repo, "1"), noprune=True)


@pytest.mark.docker
def test_a_moved_tag_is_seen_by_a_new_client_and_one_client_keeps_its_answer(registry, creds) -> None:
    repo = unique("web")
    first = registry.push("local/web:1", repo, "stable")
    client = RegistryClient(creds, docker_config=False)
    assert client.resolve(registry.image(repo, "stable")) == first
    second = registry.push("local/web:2", repo, "stable")
    assert second != first
    assert client.resolve(registry.image(repo, "stable")) == first  # one client, one pass: the answer it had
    with RegistryClient(creds, docker_config=False) as fresh:
        assert fresh.resolve(registry.image(repo, "stable")) == second
    client.close()


@pytest.mark.docker
def test_an_image_given_by_digest_needs_no_request(registry) -> None:
    closed = f"{registry.ip}:{free_port(registry.ip)}"
    with RegistryClient(docker_config=False) as client:
        assert client.resolve(f"{closed}/app:1@{D1}") == D1
        assert client.resolve(f"{closed}/app@{D2}") == D2


@pytest.mark.docker
def test_wrong_password_is_refused_without_showing_it(registry) -> None:
    repo = unique("web")
    registry.push("local/web:1", repo, "1")
    canary = f"CANARY-{uuid.uuid4().hex}"
    wrong = Credentials(registry.username, canary, origin="Registry 'private' (registries.yaml:3)")
    with RegistryClient({registry.address: wrong}, docker_config=False) as client, \
            pytest.raises(RegistryError) as info:
        client.resolve(registry.image(repo, "1"))
    err = info.value
    assert err.temporary is False
    assert err.registry == registry.address and err.image == f"{registry.image(repo)}:1"
    assert str(err) == (
        f"registry {registry.address} refused the credentials of user {registry.username!r} from Registry "
        f"'private' (registries.yaml:3) for {registry.image(repo)}:1 (401): check the username and password, "
        f"and that the user may pull {repo}")
    no_secret(err, canary, f"{registry.username}:{canary}")
    assert canary not in repr(wrong)


@pytest.mark.docker
def test_no_credentials_says_to_declare_them(registry, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # an empty docker config folder
    monkeypatch.setenv("HOME", str(tmp_path))
    with RegistryClient() as client, pytest.raises(RegistryError) as info:
        client.resolve(registry.image("any/thing", "1"))
    text = str(info.value)
    assert info.value.temporary is False
    assert f"registry {registry.address} requires credentials to read {registry.image('any/thing')}:1" in text
    assert f"declare credentials for {registry.address} in the repository" in text
    assert f"docker login {registry.address}" in text


@pytest.mark.docker
def test_unknown_tag_and_unknown_repository_are_not_found(registry, creds) -> None:
    repo = unique("web")
    registry.push("local/web:1", repo, "1")
    with RegistryClient(creds, docker_config=False) as client:
        with pytest.raises(RegistryError) as tag:
            client.resolve(registry.image(repo, "nope"))
        with pytest.raises(RegistryError) as name:
            client.resolve(registry.image(f"{repo}-missing", "1"))
    assert str(tag.value) == (f"registry {registry.address} has no tag 'nope' in repository {repo!r} (404): "
                              f"check the image name and tag")
    assert str(name.value) == (f"registry {registry.address} has no repository '{repo}-missing' (404): check the "
                               f"image name and tag")
    assert not tag.value.temporary and not name.value.temporary


@pytest.mark.docker
def test_unreachable_port_is_temporary(registry) -> None:
    closed = f"{registry.ip}:{free_port(registry.ip)}"
    with RegistryClient(docker_config=False, timeout=5) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{closed}/app:1")
    assert info.value.temporary is True
    assert str(info.value) == (f"registry {closed} could not be reached at https://{closed} for {closed}/app:1 "
                               f"(connection refused); it may answer later")


@pytest.mark.docker
def test_untrusted_certificate_is_named_with_where_the_ca_goes(registry, creds, tmp_path) -> None:
    with RegistryClient(creds, docker_config=False, certs_dir=tmp_path) as client, \
            pytest.raises(RegistryError) as info:
        client.resolve(registry.image("web", "1"))
    text = str(info.value)
    assert info.value.temporary is False
    assert f"registry {registry.address} presented a TLS certificate that is not trusted" in text
    assert f"put that CA's certificate in {tmp_path / registry.address / 'ca.crt'}" in text


@pytest.mark.docker
def test_the_ca_in_certs_d_is_trusted_on_top_of_the_system_store(registry, creds, tmp_path) -> None:
    repo = unique("web")
    pushed = registry.push("local/web:1", repo, "1")
    (tmp_path / registry.address).mkdir()
    (tmp_path / registry.address / "ca.crt").write_bytes(registry.ca_path.read_bytes())
    with RegistryClient(creds, docker_config=False, certs_dir=tmp_path) as client:
        assert client.resolve(registry.image(repo, "1")) == pushed
    assert registry.certs_dir == Path("/etc/docker/certs.d")
    assert (registry.certs_dir / registry.address / "ca.crt").read_bytes() == registry.ca_path.read_bytes()


def write_docker_config(folder: Path, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.mark.docker
def test_docker_config_auths_are_used_when_nothing_is_declared(registry, tmp_path, monkeypatch) -> None:
    repo = unique("web")
    pushed = registry.push("local/web:1", repo, "1")
    path = write_docker_config(tmp_path / "dc", {"auths": {registry.address: {
        "auth": basic(registry.username, registry.password)}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    with RegistryClient() as client:
        assert client.resolve(registry.image(repo, "1")) == pushed
        found = client.credentials_for(registry.address)
    assert found == Credentials(registry.username, registry.password, origin=f"docker config {path}")


def credential_helper(folder: Path, username: str, password: str) -> Path:
    """``docker-credential-gitopstest`` in ``folder``: answers ``get`` and logs the server asked for."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "asked"
    script = folder / "docker-credential-gitopstest"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read -r server\n"
        f'printf "%s\\n" "$server" >> "{log}"\n'
        f"printf '{{\"ServerURL\":\"%s\",\"Username\":\"{username}\",\"Secret\":\"{password}\"}}' \"$server\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


@pytest.mark.docker
def test_a_credential_helper_from_the_docker_config_is_used(registry, tmp_path, monkeypatch) -> None:
    repo = unique("web")
    pushed = registry.push("local/web:1", repo, "1")
    asked = credential_helper(tmp_path / "bin", registry.username, registry.password)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    path = write_docker_config(tmp_path / "dc", {"credHelpers": {registry.address: "gitopstest"}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    with RegistryClient() as client:
        assert client.resolve(registry.image(repo, "1")) == pushed
        assert client.credentials_for(registry.address).origin == (
            f"docker credential helper docker-credential-gitopstest (docker config {path})")
    assert asked.read_text().split() == [registry.address]  # asked once, for this registry


@pytest.mark.docker
def test_declared_credentials_win_over_the_docker_config(registry, tmp_path, monkeypatch) -> None:
    repo = unique("web")
    pushed = registry.push("local/web:1", repo, "1")
    asked = credential_helper(tmp_path / "bin", registry.username, "helper-wrong")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    write_docker_config(tmp_path / "dc", {"auths": {registry.address: {"auth": basic(registry.username, "wrong")}},
                                          "credHelpers": {registry.address: "gitopstest"}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    declared = Credentials(registry.username, registry.password, origin="Registry 'ours' (registries.yaml:1)")
    with RegistryClient({registry.address: declared}) as client:
        assert client.resolve(registry.image(repo, "1")) == pushed
        assert client.credentials_for(registry.address) is declared
    assert not asked.exists()  # the helper was never run
    # and declared credentials that are wrong fail as such, with no fall-back to the docker config
    write_docker_config(tmp_path / "dc", {"auths": {registry.address: {
        "auth": basic(registry.username, registry.password)}}})
    bad = Credentials(registry.username, "declared-wrong", origin="Registry 'ours' (registries.yaml:1)")
    with RegistryClient({registry.address: bad}) as client, pytest.raises(RegistryError) as info:
        client.resolve(registry.image(repo, "1"))
    assert "refused the credentials of user 'gitops-test' from Registry 'ours' (registries.yaml:1)" in str(info.value)


@pytest.mark.docker
def test_client_for_takes_the_registry_manifests(registry) -> None:
    repo = unique("web")
    pushed = registry.push("local/web:1", repo, "1")
    desired = DesiredState(ProjectSpec("p"), (), (), (), (), registries=(
        RegistrySpec("private", registry.address, registry.username, registry.password, source="registries.yaml:3"),))
    with client_for(desired, docker_config=False) as client:
        assert client.resolve(registry.image(repo, "1")) == pushed
        assert client.credentials_for(registry.address).origin == "Registry 'private' (registries.yaml:3)"


@pytest.mark.docker
def test_a_plain_http_registry_on_loopback_is_reached_over_http(docker_client, tmp_path) -> None:
    with TestRegistry(docker_client, tmp_path, ip="127.0.0.1", tls=False) as plain:
        pushed = plain.push("local/web:1", "web", "1")  # dockerd too uses plain http for loopback
        creds = {plain.address: Credentials(plain.username, plain.password, origin="test")}
        with RegistryClient(creds, docker_config=False) as client:
            assert client.resolve(plain.image("web", "1")) == pushed


# --- docker config, offline --------------------------------------------------------------------------------------

def test_docker_hub_credentials_are_found_under_the_index_url(tmp_path, monkeypatch) -> None:
    write_docker_config(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": basic("hubuser", "hubpw")}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with RegistryClient() as client:
        found = client.credentials_for("docker.io")
        assert client.credentials_for("index.docker.io") is found
    assert (found.username, found.password) == ("hubuser", "hubpw")
    assert found.auth_config() == {"username": "hubuser", "password": "hubpw"}


def test_an_identity_token_in_the_docker_config_is_kept(tmp_path, monkeypatch) -> None:
    write_docker_config(tmp_path, {"auths": {"reg.example:5000": {"identitytoken": "refresh-tok"}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with RegistryClient() as client:
        found = client.credentials_for("reg.example:5000")
    assert found.identity_token == "refresh-tok"
    assert found.auth_config() == {"username": "", "password": "", "identitytoken": "refresh-tok"}
    assert "refresh-tok" not in repr(found)


def test_no_docker_config_means_no_credentials(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with RegistryClient() as client:
        assert client.credentials_for("reg.example") is None
    write_docker_config(tmp_path, {"auths": {"reg.example": {"auth": basic("u", "p")}}})
    with RegistryClient(docker_config=False) as client:
        assert client.credentials_for("reg.example") is None  # docker_config=False: never read


def test_a_missing_credential_helper_is_named(tmp_path, monkeypatch) -> None:
    path = write_docker_config(tmp_path, {"credHelpers": {"reg.example": "gitops-absent"}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with RegistryClient() as client, pytest.raises(RegistryError) as info:
        client.credentials_for("reg.example")
    assert str(info.value).startswith(
        f"the docker credential helper docker-credential-gitops-absent (named in the docker config {path}) failed "
        f"to give credentials for registry reg.example")
    assert info.value.temporary is False


def test_a_credential_helper_that_hangs_does_not_hang_the_lookup(tmp_path, monkeypatch) -> None:
    """docker-py runs a helper with no timeout; one waiting for a keyring must not hold a pass for ever."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-gitops-hangs"
    helper.write_text("#!/bin/sh\nexec sleep 20\n")
    helper.chmod(0o755)
    path = write_docker_config(tmp_path, {"credHelpers": {"reg.example": "gitops-hangs"}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(RegistryClient, "HELPER_TIMEOUT", 0.5)
    started = time.monotonic()
    with RegistryClient() as client, pytest.raises(RegistryError) as info:
        client.credentials_for("reg.example")
    assert time.monotonic() - started < 10  # the helper itself sleeps 20 s
    assert str(info.value) == (
        f"the docker credential helper docker-credential-gitops-hangs (named in the docker config {path}) did not "
        "answer within 0.5 s for registry reg.example: check that `docker-credential-gitops-hangs get` answers for "
        "the user the reconciler runs as")
    assert info.value.temporary


def test_a_missing_helper_is_named_with_the_image_when_a_registry_asks(fake, tmp_path, monkeypatch) -> None:
    server = fake(lambda f, s: (401, {"WWW-Authenticate": 'Basic realm="r"'}, b""))
    write_docker_config(tmp_path, {"credHelpers": {server.address: "gitops-absent"}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with RegistryClient() as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/app:1")
    assert "docker-credential-gitops-absent" in str(info.value)
    assert str(info.value).endswith(f"(needed to read {server.address}/app:1)")
    assert (info.value.registry, info.value.image) == (server.address, f"{server.address}/app:1")


def test_a_malformed_reference_is_a_registry_error_that_is_not_temporary() -> None:
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError) as info:
        client.resolve("Bad/Name")
    assert str(info.value) == "invalid image reference 'Bad/Name': repository name must be lowercase"
    assert info.value.temporary is False


def test_a_broken_docker_config_is_named(tmp_path, monkeypatch) -> None:
    path = write_docker_config(tmp_path, {"auths": {"reg.example": {"auth": "!!not base64!!"}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with RegistryClient() as client, pytest.raises(RegistryError, match=f"the docker config {path} could not be read"):
        client.credentials_for("reg.example")


def test_declared_registry_names_are_normalised() -> None:
    hub = Credentials("u", "p", origin="o")
    with RegistryClient({"https://index.docker.io/v1/": hub}, docker_config=False) as client:
        assert client.credentials_for("docker.io") is hub
    with pytest.raises(ValueError, match="is not a registry host"):
        RegistryClient({"not a host": hub})


# --- a fake registry on loopback ----------------------------------------------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, dict[str, str], Any]  # status, headers, body: bytes, or an iterator of bytes streamed unsized


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many clients at once: the default backlog of 5 drops connections

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early are part of the tests


class Fake:
    """A threaded HTTP(S) server on 127.0.0.1 answering with ``handler(seen)`` and recording every request.

    Like Go's net/http (and so docker-registry), the plain-http variant answers a TLS handshake with a 400."""

    def __init__(self, handler: Callable[[Fake, Seen], Reply] | None = None, *, tls: tuple[Path, Path] | None = None):
        self.seen: list[Seen] = []
        self.handler = handler or (lambda fake, seen: (404, {}, b""))
        self.release = threading.Event()  # handlers that hang wait on this
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle(self) -> None:
                if tls is None and self.connection.recv(1, socket.MSG_PEEK) == b"\x16":
                    self.connection.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an "
                                            b"HTTPS server.\n")
                    return
                super().handle()

            def answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, parts.path, parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()},
                            self.rfile.read(length) if length else b"")
                fake.seen.append(seen)
                status, headers, body = fake.handler(fake, seen)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if isinstance(body, bytes):
                    if "Content-Length" not in headers:
                        self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command == "HEAD":
                    return
                try:
                    for chunk in [body] if isinstance(body, bytes) else body:
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = answer

        self.server = _Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://{self.address}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[Callable[..., Fake]]:
    made: list[Fake] = []

    def make(handler: Callable[[Fake, Seen], Reply] | None = None, **kwargs: Any) -> Fake:
        made.append(Fake(handler, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture(scope="module")
def loopback_tls(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key) for 127.0.0.1."""
    return make_tls(tmp_path_factory.mktemp("tls"), "127.0.0.1")


def trusting(tmp_path: Path, server: Fake, ca: Path) -> Path:
    """A certs_dir holding ``ca`` for ``server``, as /etc/docker/certs.d would."""
    (tmp_path / "certs" / server.address).mkdir(parents=True)
    (tmp_path / "certs" / server.address / "ca.crt").write_bytes(ca.read_bytes())
    return tmp_path / "certs"


def manifests(fake: Fake, seen: Seen) -> Reply:
    """A registry without auth: every manifest exists, with digest D1."""
    return 200, {"Docker-Content-Digest": D1, "Content-Type": MANIFEST_TYPES[3]}, b""


def test_head_with_every_manifest_type_over_http_on_loopback(fake) -> None:
    server = fake(manifests)
    with RegistryClient(docker_config=False) as client:
        assert client.resolve(f"{server.address}/team/app:1") == D1
        assert client.resolve(f"{server.address}/team/app:1") == D1  # cached: one request
    [head] = server.seen
    assert (head.method, head.path) == ("HEAD", "/v2/team/app/manifests/1")
    assert [t.strip() for t in head.headers["accept"].split(",")] == list(MANIFEST_TYPES)
    assert "authorization" not in head.headers


def test_resolves_from_many_threads(fake) -> None:
    server = fake(lambda f, s: (200, {"Docker-Content-Digest": D1 if s.path.endswith("/a") else D2}, b""))
    with RegistryClient(docker_config=False) as client:
        images = [f"{server.address}/x/app:{tag}" for tag in ("a", "b") * 8]
        results: list[str] = []
        threads = [threading.Thread(target=lambda i=i: results.append(client.resolve(i))) for i in images]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert sorted(results) == sorted([D1] * 8 + [D2] * 8)


def test_a_closed_loopback_port_is_tried_over_https_then_http(fake) -> None:
    port = free_port("127.0.0.1")
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"127.0.0.1:{port}/app:1")
    assert info.value.temporary is True
    assert str(info.value) == (f"registry 127.0.0.1:{port} could not be reached at https://127.0.0.1:{port} (and "
                               f"over plain http, tried because the address is loopback) for 127.0.0.1:{port}/app:1 "
                               f"(connection refused); it may answer later")


def test_loopback_with_an_untrusted_certificate_does_not_fall_back_to_http(fake, loopback_tls, tmp_path) -> None:
    ca, cert, key = loopback_tls
    server = fake(manifests, tls=(cert, key))
    with RegistryClient(docker_config=False, certs_dir=tmp_path) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/app:1")
    assert "presented a TLS certificate that is not trusted" in str(info.value)
    assert server.seen == []
    with RegistryClient(docker_config=False, certs_dir=trusting(tmp_path, server, ca)) as client:
        assert client.resolve(f"{server.address}/app:1") == D1


def test_the_digest_is_computed_when_head_does_not_give_it(fake) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPES[3]}).encode()
    server = fake(lambda f, s: (200, {"Content-Type": MANIFEST_TYPES[3]}, body))
    with RegistryClient(docker_config=False) as client:
        assert client.resolve(f"{server.address}/app:1") == "sha256:" + hashlib.sha256(body).hexdigest()
    assert [s.method for s in server.seen] == ["HEAD", "GET"]
    assert server.seen[1].headers["accept-encoding"] == "identity"


def token_registry(token: str, *, token_key: str = "token", realm: str = "", expect_basic: str = "",
                   identity_token: str = "") -> Callable[[Fake, Seen], Reply]:
    """A registry whose manifests need ``Bearer <token>``, issued by its own /token endpoint."""

    def handle(fake: Fake, seen: Seen) -> Reply:
        if seen.path == "/token":
            if identity_token:
                form = parse_qs(seen.body.decode())
                ok = (seen.method == "POST" and form.get("grant_type") == ["refresh_token"]
                      and form.get("refresh_token") == [identity_token])
            else:
                ok = seen.method == "GET" and seen.headers.get("authorization", "") == (
                    f"Basic {expect_basic}" if expect_basic else "")
            return (200, {"Content-Type": "application/json"}, json.dumps({token_key: token}).encode()) if ok \
                else (401, {}, b"")
        if seen.headers.get("authorization") == f"Bearer {token}":
            return 200, {"Docker-Content-Digest": D1}, b""
        where = realm or f"{fake.url}/token"
        return 401, {"WWW-Authenticate": f'Bearer realm="{where}",service="fake-registry",'
                                         f'scope="repository:{seen.path.split("/")[2]}/app:pull"'}, b""

    return handle


def test_bearer_token_with_credentials(fake) -> None:
    server = fake(token_registry("TOKEN-1", expect_basic=basic("alice", "s3cret")))
    creds = {server.address: Credentials("alice", "s3cret", origin="test")}
    with RegistryClient(creds, docker_config=False) as client:
        assert client.resolve(f"{server.address}/team/app:1") == D1
        assert client.resolve(f"{server.address}/team/app:2") == D1  # the token is reused for the repository
    first, realm, retry, second = server.seen
    assert (first.method, "authorization" in first.headers) == ("HEAD", False)
    assert (realm.method, realm.path) == ("GET", "/token")
    assert realm.query == {"service": ["fake-registry"], "scope": ["repository:team/app:pull"]}
    assert realm.headers["authorization"] == f"Basic {basic('alice', 's3cret')}"
    assert (retry.path, retry.headers["authorization"]) == ("/v2/team/app/manifests/1", "Bearer TOKEN-1")
    assert (second.path, second.headers["authorization"]) == ("/v2/team/app/manifests/2", "Bearer TOKEN-1")


def test_anonymous_bearer_token_and_access_token(fake) -> None:
    server = fake(token_registry("ANON", token_key="access_token"))
    with RegistryClient(docker_config=False) as client:
        assert client.resolve(f"{server.address}/team/app:1") == D1
    assert "authorization" not in server.seen[1].headers


def test_identity_token_is_exchanged_for_an_access_token(fake) -> None:
    server = fake(token_registry("ACCESS", token_key="access_token", identity_token="REFRESH-1"))
    creds = {server.address: Credentials("", "", origin="docker config", identity_token="REFRESH-1")}
    with RegistryClient(creds, docker_config=False) as client:
        assert client.resolve(f"{server.address}/team/app:1") == D1
    form = parse_qs(server.seen[1].body.decode())
    assert form["service"] == ["fake-registry"] and form["scope"] == ["repository:team/app:pull"]


def test_a_refused_token_request_names_the_credentials_and_shows_no_secret(fake) -> None:
    canary = f"CANARY-{uuid.uuid4().hex}"
    server = fake(token_registry("TOKEN", expect_basic=basic("alice", "right")))
    creds = {server.address: Credentials("alice", canary, origin="Registry 'r' (r.yaml:2)")}
    with RegistryClient(creds, docker_config=False) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/team/app:1")
    assert str(info.value).startswith(
        f"registry {server.address} (its token service http://{server.address}) refused the credentials of user "
        f"'alice' from Registry 'r' (r.yaml:2)")
    no_secret(info.value, canary, f"alice:{canary}")


def test_a_token_that_is_then_refused_is_not_shown(fake) -> None:
    canary = f"TOKEN-CANARY-{uuid.uuid4().hex}"

    def handle(f: Fake, seen: Seen) -> Reply:
        if seen.path == "/token":
            return 200, {}, json.dumps({"token": canary}).encode()
        if "authorization" in seen.headers:
            return 403, {}, canary.encode()
        return 401, {"WWW-Authenticate": f'Bearer realm="{f.url}/token",service="s"'}, b""

    server = fake(handle)
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/team/app:1")
    assert str(info.value) == (f"registry {server.address} denied anonymous requests access to "
                               f"{server.address}/team/app:1 (403): give the user pull access to team/app")
    no_secret(info.value, canary)
    assert server.seen[1].query["scope"] == ["repository:team/app:pull"]  # the default scope when none is given


def test_basic_challenge(fake) -> None:
    def handle(f: Fake, seen: Seen) -> Reply:
        if seen.headers.get("authorization") == f"Basic {basic('bob', 'pw')}":
            return 200, {"Docker-Content-Digest": D2}, b""
        return 401, {"WWW-Authenticate": 'Basic realm="fake"'}, b""

    server = fake(handle)
    with RegistryClient({server.address: Credentials("bob", "pw", origin="t")}, docker_config=False) as client:
        assert client.resolve(f"{server.address}/app:1") == D2
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError, match="requires credentials"):
        client.resolve(f"{server.address}/app:1")


def test_a_plain_http_realm_is_refused_for_an_https_registry(fake, loopback_tls, tmp_path) -> None:
    ca, cert, key = loopback_tls
    realm = fake()
    server = fake(token_registry("T", realm=f"{realm.url}/token", expect_basic=basic("alice", "pw")), tls=(cert, key))
    creds = {server.address: Credentials("alice", "pw", origin="t")}
    with RegistryClient(creds, docker_config=False, certs_dir=trusting(tmp_path, server, ca)) as client, \
            pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/team/app:1")
    assert str(info.value).startswith(
        f"registry {server.address} is reached over https but sends gitops to a plain-http token service "
        f"(http://{realm.address}) for {server.address}/team/app:1: refused")
    assert realm.seen == []


def test_https_registry_with_https_realm(fake, loopback_tls, tmp_path) -> None:
    ca, cert, key = loopback_tls
    server = fake(token_registry("T", expect_basic=basic("alice", "pw")), tls=(cert, key))
    creds = {server.address: Credentials("alice", "pw", origin="t")}
    with RegistryClient(creds, docker_config=False, certs_dir=trusting(tmp_path, server, ca)) as client:
        assert client.resolve(f"{server.address}/team/app:1") == D1
    assert [s.path for s in server.seen] == ["/v2/team/app/manifests/1", "/token", "/v2/team/app/manifests/1"]


def test_a_redirect_is_not_followed(fake) -> None:
    elsewhere = fake(manifests)
    server = fake(lambda f, s: (307, {"Location": f"{elsewhere.url}/v2/team/app/manifests/1"}, b""))
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/team/app:1")
    assert str(info.value) == (f"registry {server.address} answered the manifest request for "
                               f"{server.address}/team/app:1 with a redirect (307 to {elsewhere.url}); redirects "
                               f"are not followed: use the address that serves the registry API itself")
    assert elsewhere.seen == []
    assert info.value.temporary is False


@pytest.mark.parametrize("status, temporary, text", [
    (500, True, "failed to answer for {image} (HTTP 500); it may answer later"),
    (503, True, "failed to answer for {image} (HTTP 503); it may answer later"),
    (429, True, "limits the rate of requests (429)"),
    (403, False, "denied anonymous requests access to {image} (403)"),
    (400, False, "answered HTTP 400 for {image}"),
])
def test_status_codes(fake, status, temporary, text) -> None:
    server = fake(lambda f, s: (status, {}, b""))
    image = f"{server.address}/app:1"
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError) as info:
        client.resolve(image)
    assert info.value.temporary is temporary
    assert text.format(image=image) in str(info.value)


def test_a_404_without_a_tag_list_says_either(fake) -> None:
    server = fake(lambda f, s: (404, {}, b""))
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/app:1")
    assert str(info.value) == (f"registry {server.address} has no image {server.address}/app:1 (the repository or "
                               f"the tag does not exist) (404): check the image name and tag")
    assert [(s.method, s.path, s.query) for s in server.seen] == [
        ("HEAD", "/v2/app/manifests/1", {}), ("GET", "/v2/app/tags/list", {"n": ["1"]})]


def test_a_404_with_name_unknown_says_the_repository_is_missing(fake) -> None:
    unknown = json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]}).encode()
    server = fake(lambda f, s: (404, {"Content-Type": "application/json"}, unknown))
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError, match="has no repository 'app'"):
        client.resolve(f"{server.address}/app:1")


def test_a_digest_header_that_is_not_sha256_is_refused(fake) -> None:
    server = fake(lambda f, s: (200, {"Docker-Content-Digest": "sha512:" + "a" * 128}, b""))
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError, match="not sha256"):
        client.resolve(f"{server.address}/app:1")


def test_an_oversized_header_is_bounded(fake) -> None:
    server = fake(lambda f, s: (200, {"X-Big": "a" * 100_000, "Docker-Content-Digest": D1}, b""))
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/app:1")
    assert "sent a malformed HTTP answer" in str(info.value)


def test_an_oversized_challenge_is_not_parsed(fake) -> None:
    server = fake(lambda f, s: (401, {"WWW-Authenticate": 'Bearer realm="x",' + "a" * 10_000}, b""))
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError, match="at most 8192 are read"):
        client.resolve(f"{server.address}/app:1")


def test_an_oversized_manifest_is_refused_by_its_length(fake) -> None:
    server = fake(lambda f, s: (200, {"Content-Length": str(5 * 1024 * 1024)}, b"" if s.method == "HEAD" else iter(())))
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/app:1")
    assert f"sent the manifest for {server.address}/app:1 as 5242880 bytes; at most 4194304 are read" in str(info.value)


def test_an_unsized_manifest_is_read_only_up_to_the_limit(fake) -> None:
    sent = []

    def endless() -> Iterator[bytes]:
        for _ in range(10_000):  # 640 MiB if nobody stopped reading
            sent.append(1)
            yield b"x" * 65536

    server = fake(lambda f, s: (200, {}, b"" if s.method == "HEAD" else endless()))
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/app:1")
    assert "larger than 4194304 bytes" in str(info.value)
    assert len(sent) < 1000


def test_an_oversized_token_answer_is_refused(fake) -> None:
    def handle(f: Fake, seen: Seen) -> Reply:
        if seen.path == "/token":
            return 200, {}, b"{" + b" " * (2 * 1024 * 1024) + b"}"
        return 401, {"WWW-Authenticate": f'Bearer realm="{f.url}/token"'}, b""

    server = fake(handle)
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError, match="the token answer"):
        client.resolve(f"{server.address}/app:1")


@pytest.mark.parametrize("answer, message", [
    (b"not json", "gave no token"),
    (b'{"token": ""}', "gave no token"),
    (b'{"token": 5}', "gave no token"),
    (b'["token"]', "gave no token"),
    (json.dumps({"token": "a b"}).encode(), "cannot go in a header"),
    (json.dumps({"token": "t" * 70_000}).encode(), "cannot go in a header"),
])
def test_a_bad_token_answer_is_refused(fake, answer, message) -> None:
    def handle(f: Fake, seen: Seen) -> Reply:
        if seen.path == "/token":
            return 200, {}, answer
        return 401, {"WWW-Authenticate": f'Bearer realm="{f.url}/token"'}, b""

    server = fake(handle)
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError, match=message):
        client.resolve(f"{server.address}/app:1")


def test_a_registry_that_does_not_answer_times_out_as_temporary(fake) -> None:
    def hang(f: Fake, seen: Seen) -> Reply:
        f.release.wait(60)
        return 200, {"Docker-Content-Digest": D1}, b""

    server = fake(hang)
    with RegistryClient(docker_config=False, timeout=0.5) as client, pytest.raises(RegistryError) as info:
        client.resolve(f"{server.address}/app:1")
    assert info.value.temporary is True
    assert "did not answer within 0.5s" in str(info.value)


def test_401_without_a_challenge(fake) -> None:
    server = fake(lambda f, s: (401, {}, b""))
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError, match="without a WWW-Authenticate"):
        client.resolve(f"{server.address}/app:1")


def test_an_unknown_auth_scheme(fake) -> None:
    server = fake(lambda f, s: (401, {"WWW-Authenticate": 'Negotiate'}, b""))
    with RegistryClient(docker_config=False) as client, pytest.raises(RegistryError, match=r"\(negotiate\)"):
        client.resolve(f"{server.address}/app:1")


# --- small parts -------------------------------------------------------------------------------------------

def test_parse_challenges() -> None:
    assert parse_challenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                            'scope="repository:library/nginx:pull"') == {"bearer": {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:library/nginx:pull"}}
    assert parse_challenges('Basic realm="Registry Realm"') == {"basic": {"realm": "Registry Realm"}}
    assert parse_challenges('Bearer realm=https://x/t, service=s') == {"bearer": {"realm": "https://x/t",
                                                                                  "service": "s"}}
    assert parse_challenges('Bearer realm="a\\"b",scope="repository:a/b:pull,push"') == {
        "bearer": {"realm": 'a"b', "scope": "repository:a/b:pull,push"}}
    assert parse_challenges('Basic realm="r", Bearer realm="t"') == {"basic": {"realm": "r"},
                                                                     "bearer": {"realm": "t"}}
    assert parse_challenges("") == {}


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost:5000", True), ("LOCALHOST", True),
    ("[::1]:5000", True), ("::1", True), ("172.17.0.1:5000", False), ("10.0.0.1", False), ("ghcr.io", False),
    ("localhost.example.com:5000", False), ("[fe80::1]:5000", False),
])
def test_is_loopback(host, loopback) -> None:
    assert is_loopback(host) is loopback


def test_credentials_never_show_the_password() -> None:
    creds = Credentials("u", "CANARY-pw", origin="o", identity_token="CANARY-tok")
    assert "CANARY" not in repr(creds) and "CANARY" not in str(creds)
    assert creds.auth_config() == {"username": "u", "password": "CANARY-pw", "identitytoken": "CANARY-tok"}
