"""Registry manifests: credentials declared in the repository, the password only from an encrypted file, and
never in a repr, a plan or an error. Pulls and lookups with them on a real registry: test_registry_docker."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyrage import x25519

from gitops.core.model import SecretKey, ephemeral_key
from gitops.hosts.registry import client_for
from gitops.manifests.load import load_repo
from tests.conftest import service
from tests.sopsutil import age_file, new_identity, sops_binary

CANARY = "registry-canary-Zq8"


def _registry(server: str = "registry.example.com:5000", file: str = "secrets/registry.sops", name: str = "private"):
    return (f"apiVersion: gitops/v1\nkind: Registry\nmetadata: {{name: {name}}}\n"
            f"spec:\n  server: '{server}'\n  username: deploy\n  password: {{secretFile: {file}}}\n")


@pytest.fixture
def age_key() -> tuple[str, str]:
    return new_identity()


def _key(identity: str) -> SecretKey:
    import dataclasses

    return dataclasses.replace(ephemeral_key(), age=(x25519.Identity.from_str(identity),))


def test_credentials_come_from_an_encrypted_password_file_and_go_to_the_registry_client(repo, age_key) -> None:
    identity, recipient = age_key
    root = repo({"registry.yaml": _registry(), "app.yaml": service("app", image="registry.example.com:5000/app:1"),
                 "secrets/registry.sops": sops_binary(CANARY + "\n", recipient)})
    loaded = load_repo(root, key=_key(identity))
    assert loaded.desired is not None, [str(e) for e in loaded.errors]
    (spec,) = loaded.desired.registries
    assert (spec.name, spec.server, spec.username, spec.password) == (
        "private", "registry.example.com:5000", "deploy", CANARY)
    assert CANARY not in repr(spec) and CANARY not in repr(loaded.desired)
    creds = client_for(loaded.desired).credentials_for("registry.example.com:5000")
    assert creds is not None and creds.password == CANARY and CANARY not in repr(creds)
    assert creds.origin == "Registry 'private' (registry.yaml:1)"


def test_an_age_file_holds_a_token_too_and_docker_hub_has_one_name(repo, age_key) -> None:
    identity, recipient = age_key
    root = repo({"hub.yaml": _registry("index.docker.io", "secrets/hub.age", "hub")})
    (root / "secrets").mkdir()
    (root / "secrets" / "hub.age").write_bytes(age_file(CANARY.encode(), recipient))
    loaded = load_repo(root, key=_key(identity))
    assert loaded.desired is not None, [str(e) for e in loaded.errors]
    assert [(r.server, r.password) for r in loaded.desired.registries] == [("docker.io", CANARY)]


@pytest.mark.parametrize("files, expected", [
    ({"registry.yaml": _registry(), "secrets/registry.sops": CANARY + "\n"},
     "registry.yaml:7:26: spec.password.secretFile: the file is not encrypted; a registry password is never kept "
     "in plain text in git: encrypt it with `gitops secrets encrypt FILE --age RECIPIENT -i` (or sops)"),
    ({"registry.yaml": _registry(file="secrets/missing.sops")},
     "registry.yaml:7:26: spec.password.secretFile: 'secrets/missing.sops' is not a file in the repository"),
    ({"registry.yaml": _registry(server="https://registry.example.com/v2")},
     "registry.yaml:5:11: spec.server: 'https://registry.example.com/v2' is not valid: The registry as image names "
     "spell it"),
    ({"registry.yaml": _registry() + "---\n" + _registry(server="REGISTRY.example.com:5000", name="again"),
      "secrets/registry.sops": "ENCRYPTED"},
     "registry.yaml:5:11: spec.server: registry.example.com:5000 already has credentials in Registry 'again' "
     "(registry.yaml:8); keep one"),
])
def test_bad_registry_manifests_are_refused_with_file_line_and_the_way_out(repo, age_key, files, expected) -> None:
    identity, recipient = age_key
    files = {k: (sops_binary("pw", recipient) if v == "ENCRYPTED" else v) for k, v in files.items()}
    loaded = load_repo(repo(files), key=_key(identity))
    assert loaded.desired is None
    assert any(str(e).startswith(expected) for e in loaded.errors), [str(e) for e in loaded.errors]
    assert all(CANARY not in str(e) for e in loaded.errors)


def test_a_password_encrypted_to_another_key_names_the_file_and_not_the_value(repo, age_key, tmp_path: Path) -> None:
    identity, _ = age_key
    _, stranger = new_identity()
    loaded = load_repo(repo({"registry.yaml": _registry(), "secrets/registry.sops": sops_binary(CANARY, stranger)}),
                       key=_key(identity))
    assert loaded.desired is None
    (error,) = [str(e) for e in loaded.errors]
    assert error.startswith("registry.yaml:7:26: spec.password.secretFile: 'secrets/registry.sops' cannot be decrypted: "
                            "no age identity given matches a recipient of the file")
    assert CANARY not in error


@pytest.mark.parametrize("password", [f"'{CANARY}'", f"{{secretFile: x, value: '{CANARY}'}}", f"[{CANARY}]"])
def test_a_password_written_in_the_manifest_is_refused_without_echoing_it(repo, password: str) -> None:
    text = _registry().replace("password: {secretFile: secrets/registry.sops}", f"password: {password}")
    loaded = load_repo(repo({"registry.yaml": text}), key=ephemeral_key())
    assert loaded.desired is None
    assert [str(e) for e in loaded.errors] == [
        "registry.yaml:7:13: spec.password: must be {secretFile: FILE}, a SOPS or age encrypted file; what is "
        "written here is not shown"]
