"""A real container registry for tests: Debian's docker-registry (distribution 2.8) with TLS and a password.

It listens on the docker0 bridge's gateway address, not on loopback: dockerd treats loopback registries
as insecure and would skip TLS verification, while for any other address it pulls only when it trusts
the registry's CA, which this fixture installs at ``/etc/docker/certs.d/<ip>:<port>/ca.crt`` (the file
gitops' registry client reads too) and removes afterwards. Images are pushed with docker-py and an
``auth_config``: never ``docker login``, never a write to ~/.docker/config.json.

Use the session fixture ``registry`` (import it into conftest.py); ``TestRegistry`` also works alone as
a context manager.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

CERTS_ROOT = Path("/etc/docker/certs.d")
READY_DEADLINE = 60.0  # seconds for the registry to answer /v2/ (it takes well under one on an idle machine)


def ensure_docker_registry() -> str:
    """The path of docker-registry, installing Debian's package when it is missing; "" when that fails."""
    found = shutil.which("docker-registry") or ("/usr/bin/docker-registry" if os.access("/usr/bin/docker-registry",
                                                                                          os.X_OK) else "")
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "docker-registry"]
    if subprocess.run(install, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=900).returncode:
        subprocess.run(["apt-get", "update", "-qq"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=900)
        subprocess.run(install, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=900)
    return shutil.which("docker-registry") or ""


def bridge_gateway(docker_client: Any) -> str:
    """The docker0 bridge's address on this machine, where dockerd (and the tests) can reach a local server."""
    return docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]


def free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def make_tls(folder: Path, ip: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``ip`` (subjectAltName) signed by it: (ca.crt, server.crt, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"gitops test CA {secrets.token_hex(4)}")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def htpasswd_line(username: str, password: str) -> str:
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()  # the cheapest cost: tests only
    return f"{username}:{hashed}\n"


class TestRegistry:
    """docker-registry serving https on ``address`` ("ip:port"), with one user, storage in ``folder``."""

    __test__ = False  # a helper, not a test class

    def __init__(self, docker_client: Any, folder: Path, *, username: str = "gitops-test", password: str = "",
                 ip: str = "", certs_root: Path = CERTS_ROOT, tls: bool = True) -> None:
        self.docker = docker_client
        self.folder = Path(folder)
        self.username = username
        self.password = password or f"pw-{secrets.token_hex(12)}"
        self.ip = ip or bridge_gateway(docker_client)
        self.certs_dir = Path(certs_root)  # the root: the client and dockerd look in certs_dir/<address>/
        self.ca_path = self.folder / "tls" / "ca.crt"
        self.log_path = self.folder / "registry.log"
        self.tls = tls  # False: plain http, which dockerd and gitops accept only on loopback
        self.scheme = "https" if tls else "http"
        self.address = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._installed_ca: Path | None = None
        self._kept_tags: list[str] = []

    # --- life ------------------------------------------------------------------------------------------------

    def __enter__(self) -> TestRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> TestRegistry:
        binary = ensure_docker_registry()
        if not binary:
            raise RuntimeError("docker-registry is not installed (Debian package docker-registry)")
        ca, cert, key = make_tls(self.folder / "tls", self.ip)
        htpasswd = self.folder / "htpasswd"
        htpasswd.write_text(htpasswd_line(self.username, self.password))
        storage = self.folder / "storage"
        storage.mkdir(exist_ok=True)
        problems = []
        for _attempt in range(5):  # another process may take the free port between our probe and the bind
            port = free_port(self.ip)
            self.address = f"{self.ip}:{port}" if ":" not in self.ip else f"[{self.ip}]:{port}"
            config = self.folder / "config.yml"
            config.write_text(
                "version: 0.1\n"
                "log:\n  level: info\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
                f"http:\n  addr: {self.address}\n  secret: {secrets.token_hex(16)}\n"
                + (f"  tls:\n    certificate: {cert}\n    key: {key}\n" if self.tls else "") +
                f"auth:\n  htpasswd:\n    realm: gitops-test\n    path: {htpasswd}\n"
            )
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen([binary, "serve", str(config)], stdin=subprocess.DEVNULL,
                                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            if self._wait_ready():
                break
            problems.append(self.log_tail())
        else:
            raise RuntimeError("docker-registry did not start:\n" + "\n---\n".join(problems))
        if self.tls:
            self._install_ca(ca)
        return self

    def _wait_ready(self) -> bool:
        """True once /v2/ answers 401 (over TLS verified with our CA); False if the process ended first."""
        import requests

        assert self._process is not None
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{self.scheme}://{self.address}/v2/", verify=str(self.ca_path), timeout=5)
                if answer.status_code == 401:
                    return True
            except requests.RequestException:
                pass
            try:
                self._process.wait(timeout=0.05)  # the pause between probes doubles as "did it die?"
                return False
            except subprocess.TimeoutExpired:
                pass
        self._terminate()
        raise RuntimeError(f"docker-registry did not answer on {self.address} within {READY_DEADLINE:g}s:\n"
                           + self.log_tail())

    def _install_ca(self, ca: Path) -> None:
        folder = self.certs_dir / self.address
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca, folder / "ca.crt")
        self._installed_ca = folder

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)

    def stop(self) -> None:
        for ref in self._kept_tags:
            with contextlib.suppress(Exception):  # already gone is fine
                self.docker.images.remove(ref, noprune=True)
        self._kept_tags.clear()
        self.forget_pulled()
        self._terminate()
        if self._installed_ca is not None:
            shutil.rmtree(self._installed_ca, ignore_errors=True)
            self._installed_ca = None

    def forget_pulled(self) -> None:
        """Remove every name the engine gave images pulled from this registry (tags, and the repo@sha256 names
        a pull by digest leaves), so that no test finds them among an image's tags; the layers stay."""
        if not self.address:
            return
        for image in self.docker.images.list():
            for ref in [*image.tags, *(image.attrs.get("RepoDigests") or [])]:
                if ref.startswith(f"{self.address}/"):
                    with contextlib.suppress(Exception):  # already gone is fine
                        self.docker.images.remove(ref, noprune=True)

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    # --- use -------------------------------------------------------------------------------------------------

    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}

    def image(self, repo: str, tag: str = "") -> str:
        """``<address>/<repo>[:tag]``: how an image in this registry is named."""
        return f"{self.address}/{repo}" + (f":{tag}" if tag else "")

    def push(self, local_image: str, repo: str, tag: str, *, keep_tag: bool = False) -> str:
        """Push ``local_image`` as ``<address>/<repo>:<tag>``; the digest the registry reports.

        The local tag is removed again unless ``keep_tag`` (then at stop()), so a later pull really pulls.
        """
        target = self.image(repo)
        self.docker.images.get(local_image).tag(target, tag)
        digest, errors = "", []
        try:
            for line in self.docker.api.push(target, tag=tag, auth_config=self.auth_config(), stream=True,
                                             decode=True):
                if line.get("error") or line.get("errorDetail"):
                    errors.append(str(line.get("error") or line.get("errorDetail")))
                aux = line.get("aux") or {}
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = aux["Digest"]
        finally:
            if keep_tag:
                self._kept_tags.append(f"{target}:{tag}")
            else:
                self.docker.images.remove(f"{target}:{tag}", noprune=True)
        if errors or not digest:
            raise RuntimeError(f"push of {local_image} to {target}:{tag} failed: {errors or 'no digest reported'}")
        return digest


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


_shared: dict[str, Any] = {"registry": None, "users": 0}


@pytest.fixture(scope="session")
def registry(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A TLS registry with a password on the docker0 gateway, its CA trusted by dockerd, for the session.

    One process however many modules import this fixture (conftest.py and a test module both may)."""
    if not ensure_docker_registry():
        reason = "docker-registry (Debian package docker-registry) is missing and could not be installed"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    if _shared["registry"] is None:
        _shared["registry"] = TestRegistry(docker_client, tmp_path_factory.mktemp("registry")).start()
    _shared["users"] += 1
    try:
        yield _shared["registry"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["registry"].stop()
            _shared["registry"] = None
