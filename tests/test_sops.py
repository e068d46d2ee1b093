"""SOPS and age files in the repository, decrypted in memory with the age key file given to gitops: checked
against a file the sops tool wrote (tests/sops/README.md), then used as secretFile, envFile, Service files and
compose env_file/secrets; tampering, a missing or wrong key, and other key services are errors with the file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pyrage import x25519

from gitops.core.model import ephemeral_key
from gitops.manifests import sops
from gitops.manifests.load import load_repo
from gitops.manifests.parse import parse_documents
from gitops.manifests.sops import SopsError, decrypt
from gitops.secret_key import age_identities, with_age
from tests.conftest import PROJECT, service, write_files
from tests.hostile import run_gitops
from tests.sopsutil import age_file, new_identity, sops_binary, sops_dotenv, sops_json

VECTOR = Path(__file__).parent / "sops" / "terragrunt-issue-2103.enc.yaml"
# Files sops wrote with encrypted comments (tests/sops/README.md): their plaintexts and their comments, each with
# the additional data sops sealed it with (the path of the mapping that holds it).
SOPS_EXAMPLE = Path(__file__).parent / "sops" / "sops-example.enc.yaml"
SOPS_COMMENTS = Path(__file__).parent / "sops" / "sops-comments.enc.yaml"
SOPS_EXAMPLE_PLAIN = {
    "myapp1": "t00m4nys3cr3tzupdated",
    "app2": {"db": {"user": "eve", "password": "c4r1b0u"},
             "key": "-----BEGIN RSA PRIVATE KEY-----\n"
                    "MIIBPAIBAAJBAPTMNIyHuZtpLYc7VsHQtwOkWYobkUblmHWRmbXzlAX6K8tMf3Wf\n"
                    "ImcbNkqAKnELzFAPSBeEMhrBN0PyOC9lYlMCAwEAAQJBALXD4sjuBn1E7Y9aGiMz\n"
                    "bJEBuZJ4wbhYxomVoQKfaCu+kH80uLFZKoSz85/ySauWE8LgZcMLIBoiXNhDKfQL\n"
                    "vHECIQD6tCG9NMFWor69kgbX8vK5Y+QL+kRq+9HK6yZ9a+hsLQIhAPn4Ie6HGTjw\n"
                    "fHSTXWZpGSan7NwTkIu4U5q2SlLjcZh/AiEA78NYRRBwGwAYNUqzutGBqyXKUl4u\n"
                    "Erb0xAEyVV7e8J0CIQC8VBY8f8yg+Y7Kxbw4zDYGyb3KkXL10YorpeuZR4LuQQIg\n"
                    "bKGPkMM4w5blyE1tqGN0T7sJwEx+EUOgacRNqM2ljVA=\n"
                    "-----END RSA PRIVATE KEY-----\n"},
    "number": 1234568000.0,
    "an_array": ["secretuser1", "secretuser2", "somelongvalue" + "A" * 45, "some other value"],
    "somebooleans": [True, False],
    "this": {"is": {"a": {"nested": {"value": "with something secret in it"}}}},
    "somelist_unencrypted": ["all elements of this list", "remain in clear text",
                             "because of the _unencrypted suffix in the key"],
    "nested_unencrypted": {"this": {"is": {"all": "going to remain in clear text"}}},
}
SOPS_EXAMPLE_COMMENTS = [("app2:db:", " private key for secret operations in app2"),
                         ("this:is:a:nested:", " sops supports unencrypted fields"),
                         ("this:is:a:nested:", " by adding the `_unencrypted` suffix"),
                         ("this:is:a:nested:", " to any key")]
SOPS_COMMENTS_PLAIN = {"lorem": "ipsum", "dolor": "sit"}
SOPS_COMMENTS_COMMENTS = [(":", " first comment in file"), (":", " this-is-a-comment")]
VECTOR_KEY = "AGE-SECRET-KEY-1YQMYYAHGUU5VK67GKY6RM8YEKTW687RT9KPUG5X8FD0F988PCXKQXM8RMY"
CANARY = "CANARY-sops-7d1e"


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch) -> tuple[Path, str]:
    """An age key file given to gitops (SOPS_AGE_KEY_FILE) with a fresh identity and the vector's."""
    identity, recipient = new_identity()
    path = tmp_path / "keys.txt"
    path.write_text(f"# created by the test\n{identity}\n{VECTOR_KEY}\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(path))
    return path, recipient


def _vector_document() -> dict:
    (doc,) = parse_documents(VECTOR.read_text(), "v.yaml").documents
    return doc.data


def test_a_file_the_sops_tool_wrote_decrypts_and_its_mac_is_checked(key_file) -> None:
    plain = decrypt(VECTOR.read_bytes(), age_identities(), document=_vector_document())
    assert plain is not None
    assert json.loads(plain) == {"secrets": {"SOME SECRET": "0x629A673A8242c2AC4B7B8C5D8735fbeac21A6205"}}
    tampered = _vector_document()
    tampered["secrets"]["SOME SECRET"] = tampered["sops"]["mac"]  # another valid ENC value under this key
    with pytest.raises(SopsError, match="does not decrypt"):
        decrypt(b"sops mac ENC[AES256_GCM", age_identities(), document=tampered)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["sops"].update(lastmodified="2022-05-23T12:25:57Z"), "a value does not decrypt"),
    (lambda d: d["secrets"].update(extra_unencrypted="x"), "the MAC does not match"),
    (lambda d: d["sops"].update(age=[]), "encrypted for no key service, not age"),
    (lambda d: d["sops"].update(age=[], pgp=[{"fp": "x"}]), "encrypted for pgp, not age"),
])
def test_tampering_or_another_key_service_is_refused(key_file, change, message: str) -> None:
    document = _vector_document()
    change(document)
    with pytest.raises(SopsError, match=message):
        decrypt(b"sops mac ENC[AES256_GCM", age_identities(), document=document)


def test_without_a_matching_identity_the_error_names_the_recipients(tmp_path: Path, monkeypatch) -> None:
    other, _ = new_identity()
    (tmp_path / "k").write_text(other + "\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "k"))
    with pytest.raises(SopsError, match="no age identity given matches a recipient of the file "
                                        r"\(age106dn94074uskzjua39h4v0ql89l528wrqp2f84xpcznpr9f6ye4q9k8hp8\)"):
        decrypt(VECTOR.read_bytes(), age_identities(), document=_vector_document())
    with pytest.raises(SopsError, match="there is no age identity to decrypt it"):
        decrypt(VECTOR.read_bytes(), (), document=_vector_document())


def test_encrypted_files_are_secrets_wherever_a_manifest_uses_them(tmp_path: Path, key_file) -> None:
    _, recipient = key_file
    body = ("envFile: app.env\nenv: {TOKEN: {secretFile: token.json}}\n"
            "files: [{source: certs, target: /certs}]")
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, "web.yaml": service("web", body),
                                          "app.env": sops_dotenv({"DB_PASSWORD": CANARY, "MODE": "prod"}, recipient),
                                          "token.json": sops_binary(CANARY + "-token", recipient)})
    (root / "certs").mkdir()
    (root / "certs" / "key.pem").write_bytes(age_file(CANARY.encode() + b"-pem", recipient))
    (root / "certs" / "ca.pem").write_text("public\n")
    web = load_repo(root, key=with_age(ephemeral_key())).desired.service("web")  # type: ignore[union-attr]
    env = {e.name: (e.value, e.secret) for e in web.env}
    assert env == {"DB_PASSWORD": (CANARY, True), "MODE": ("prod", True), "TOKEN": (CANARY + "-token", True)}
    files = {f.target: (f.content, f.secret) for f in web.files}
    assert files == {"/certs/ca.pem": (b"public\n", False), "/certs/key.pem": (CANARY.encode() + b"-pem", True)}


def test_compose_env_file_and_secrets_may_be_encrypted(tmp_path: Path, key_file) -> None:
    _, recipient = key_file
    compose = ("name: s\nservices:\n  web:\n    image: a\n    env_file: [app.env]\n    secrets: [db]\n"
               "secrets:\n  db: {file: ./db.json}\n")
    root = write_files(tmp_path / "repo", {"compose.yaml": compose,
                                          "app.env": sops_dotenv({"API_KEY": CANARY}, recipient),
                                          "db.json": sops_json({"password": CANARY}, recipient)})
    web = load_repo(root, key=with_age(ephemeral_key())).desired.service("web")  # type: ignore[union-attr]
    assert [(e.name, e.value, e.secret) for e in web.env] == [("API_KEY", CANARY, True)]
    ((target, data, secret),) = [(f.target, f.content, f.secret) for f in web.files]
    assert target == "/run/secrets/db" and json.loads(data) == {"password": CANARY} and secret


def test_no_decrypted_value_reaches_any_output(tmp_path: Path, key_file) -> None:
    path, recipient = key_file
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, "web.yaml": service("web", "envFile: app.env"),
                                          "app.env": sops_dotenv({"DB_PASSWORD": CANARY}, recipient)})
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"hosts": [{"host": "local", "reachable": True, "containers": [], "networks": [],
                                            "volumes": []}]}))
    for args in (["validate", str(root)], ["validate", str(root), "--format", "json"],
                 *(["plan", str(root), "--observed", str(empty), "--format", fmt, "--state-dir", str(tmp_path / "s")]
                   for fmt in ("text", "json", "markdown"))):
        done = run_gitops("--age-key-file", str(path), *args, tmp=tmp_path)
        assert done.returncode == 0, done.stderr
        assert CANARY not in done.stdout + done.stderr, args
    assert not any(CANARY.encode() in p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file())


def test_an_encrypted_file_without_the_key_is_an_error_naming_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    _, recipient = new_identity()
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, "web.yaml": service("web", "envFile: app.env"),
                                          "app.env": sops_dotenv({"DB_PASSWORD": CANARY}, recipient)})
    done = run_gitops("validate", str(root), tmp=tmp_path)
    assert done.returncode == 1 and CANARY not in done.stdout + done.stderr
    assert done.stderr.splitlines()[0] == (
        f"{root}/web.yaml:7:12: spec.envFile: 'app.env' cannot be decrypted: encrypted with SOPS for age recipients, "
        "and there is no age identity to decrypt it: give gitops the key file (gitops --age-key-file FILE COMMAND ..., or SOPS_AGE_KEY_FILE)")


def test_gitops_secrets_encrypt_writes_what_the_decrypter_reads(tmp_path: Path, key_file) -> None:
    path, recipient = key_file
    (tmp_path / "app.env").write_text(f"DB_PASSWORD={CANARY}\nMODE=prod\n")
    (tmp_path / "s.yaml").write_text(f"db:\n  password: {CANARY}\n  port: 5432\n  debug: true\n  user_unencrypted: app\n")
    (tmp_path / "cert.pem").write_text(f"-----BEGIN-----\n{CANARY}\n")
    for name in ("app.env", "s.yaml", "cert.pem"):
        done = run_gitops("secrets", "encrypt", str(tmp_path / name), "--age", recipient, "-i", tmp=tmp_path)
        assert done.returncode == 0 and done.stdout == "", done.stderr
        assert CANARY.encode() not in (tmp_path / name).read_bytes()
    again = run_gitops("secrets", "encrypt", str(tmp_path / "app.env"), "--age", recipient, tmp=tmp_path)
    assert again.returncode == 1 and again.stderr.strip() == f"Error: {tmp_path / 'app.env'}: already encrypted"
    env = (tmp_path / "app.env").read_bytes()
    assert decrypt(env, age_identities()) == f"DB_PASSWORD={CANARY}\nMODE=prod\n".encode()
    yaml_data = (tmp_path / "s.yaml").read_bytes()
    (doc,) = parse_documents(yaml_data.decode(), "s.yaml").documents
    assert doc.data["db"]["user_unencrypted"] == "app"
    assert json.loads(decrypt(yaml_data, age_identities(), document=doc.data) or b"") == {
        "db": {"password": CANARY, "port": 5432, "debug": True, "user_unencrypted": "app"}}
    pem = (tmp_path / "cert.pem").read_bytes()
    (doc,) = parse_documents(pem.decode(), "cert.pem").documents
    assert decrypt(pem, age_identities(), document=doc.data) == f"-----BEGIN-----\n{CANARY}\n".encode()
    bad = run_gitops("secrets", "encrypt", str(tmp_path / "s.yaml"), "--age", "age1nope", tmp=tmp_path)
    assert bad.returncode == 1 and "already encrypted" in bad.stderr
    (tmp_path / "x.txt").write_text("x\n")
    bad = run_gitops("secrets", "encrypt", str(tmp_path / "x.txt"), "--age", "age1nope", tmp=tmp_path)
    assert (bad.returncode, bad.stderr.strip()) == (
        1, f"Error: {tmp_path / 'x.txt'}: a recipient is not an age public key (age1...)")


def test_an_encrypted_dot_env_cannot_feed_interpolation(tmp_path: Path, key_file) -> None:
    """Interpolated values land in image names, ports and plain environment, all shown in plans."""
    _, recipient = key_file
    root = write_files(tmp_path / "repo", {"compose.yaml": "name: s\nservices:\n  web: {image: 'a:${TAG}'}\n",
                                          ".env": sops_dotenv({"TAG": CANARY}, recipient)})
    outcome = load_repo(root, key=with_age(ephemeral_key()))
    assert [str(e) for e in outcome.errors] == [
        ".env: an encrypted file cannot give variables to the compose file: what it interpolates (image tags, ports, "
        "environment) is shown in plans; keep variables plain, and give the container its secrets with env_file: or "
        "secrets: pointing at the encrypted file"]


def gitops(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None, umask: int | None = None
           ) -> subprocess.CompletedProcess[bytes]:
    """The real gitops executable in a fresh process (standard input given, optionally another umask)."""
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([str(Path(sys.executable).parent / "gitops"), *args], input=stdin, capture_output=True,
                          env=env, timeout=60, preexec_fn=preexec)


def test_secrets_keygen_writes_a_private_age_key_file_and_prints_its_recipient(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "age.txt"
    key.parent.mkdir()
    done = gitops("secrets", "keygen", "--output", str(key), umask=0)  # no umask to hide a loose mode
    assert done.returncode == 0, done.stderr
    recipient = done.stdout.decode().strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    created, public, secret = key.read_text().splitlines()
    assert re.fullmatch(r"# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", created)
    assert public == f"# public key: {recipient}" and recipient.startswith("age1")
    assert str(x25519.Identity.from_str(secret).to_public()) == recipient
    assert secret.encode() not in done.stdout + done.stderr
    # what it encrypts to, the key file decrypts (the file is read as --age-key-file reads it)
    sealed = gitops("secrets", "encrypt", "-", "--age", recipient, stdin=CANARY.encode())
    assert sealed.returncode == 0 and CANARY.encode() not in sealed.stdout
    (doc,) = parse_documents(sealed.stdout.decode(), "stdin").documents
    assert decrypt(sealed.stdout, [x25519.Identity.from_str(secret)], document=doc.data) == CANARY.encode()


def test_secrets_keygen_never_overwrites_a_file(tmp_path: Path) -> None:
    existing = tmp_path / "age.txt"
    existing.write_text("the only key to something\n")
    done = gitops("secrets", "keygen", "-o", str(existing))
    assert done.returncode == 1 and done.stdout == b""
    assert b"already exists; a key file is never overwritten" in done.stderr
    assert existing.read_text() == "the only key to something\n"
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")  # a dangling link is not followed either
    assert gitops("secrets", "keygen", "-o", str(tmp_path / "link")).returncode == 1
    assert not (tmp_path / "elsewhere").exists()


def test_secrets_keygen_without_output_prints_the_key_file_as_age_keygen_does() -> None:
    done = gitops("secrets", "keygen")
    assert done.returncode == 0
    created, public, secret = done.stdout.decode().splitlines()
    recipient = done.stderr.decode().strip().removeprefix("Public key: ")
    assert created.startswith("# created: ") and public == f"# public key: {recipient}"
    assert str(x25519.Identity.from_str(secret).to_public()) == recipient


def test_secrets_check_says_whether_files_decrypt_and_never_what_they_hold(tmp_path: Path, key_file) -> None:
    path, recipient = key_file
    (tmp_path / "ok.env").write_text(sops_dotenv({"DB_PASSWORD": CANARY}, recipient))
    (tmp_path / "ok.age").write_bytes(age_file(CANARY.encode(), recipient))
    (tmp_path / "plain.txt").write_text(CANARY)
    (tmp_path / "other.json").write_text(sops_json({"a": CANARY}, new_identity()[1]))
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(path)}
    good = gitops("secrets", "check", str(tmp_path / "ok.env"), str(tmp_path / "ok.age"), env=env)
    assert good.returncode == 0, good.stderr
    assert good.stdout.decode().splitlines() == [f"{tmp_path / n}: decrypts with the age key given"
                                                for n in ("ok.env", "ok.age")]
    bad = gitops("secrets", "check", *(str(tmp_path / n) for n in ("ok.env", "plain.txt", "other.json")), env=env)
    assert bad.returncode == 1
    assert bad.stderr.decode().splitlines() == [
        f"{tmp_path / 'plain.txt'}: not encrypted",
        f"{tmp_path / 'other.json'}: cannot be decrypted: no age identity given matches a recipient of the file "
        f"({json.loads((tmp_path / 'other.json').read_text())['sops']['age'][0]['recipient']})"]
    for done in (good, bad):
        assert CANARY.encode() not in done.stdout + done.stderr


def test_secrets_encrypt_reads_standard_input_in_sops_binary_form(tmp_path: Path) -> None:
    _, recipient = new_identity()
    done = gitops("secrets", "encrypt", "-", "--age", recipient, "-i", stdin=b"x")
    assert done.returncode == 2 and b"--in-place needs a FILE" in done.stderr
    done = gitops("secrets", "encrypt", "-", "--age", recipient, stdin=f"{CANARY}\n".encode())
    assert done.returncode == 0
    assert set(json.loads(done.stdout)) == {"data", "sops"} and CANARY.encode() not in done.stdout


# -- encrypted comments -----------------------------------------------------------------------------------------------
def _read(data: bytes, identities) -> dict:
    """What gitops makes of a SOPS YAML file, parsed as the loader parses it."""
    (doc,) = parse_documents(data.decode(), "f.yaml").documents
    plain = decrypt(data, identities, document=doc.data)
    assert plain is not None
    return json.loads(plain)


def _comments(data: bytes) -> list[str]:
    return re.findall(r"(?m)^ *#(ENC\[AES256_GCM,[^\]]*,type:comment\])$", data.decode())


@pytest.mark.parametrize(("vector", "plain", "comments"), [
    (SOPS_EXAMPLE, SOPS_EXAMPLE_PLAIN, SOPS_EXAMPLE_COMMENTS),
    (SOPS_COMMENTS, SOPS_COMMENTS_PLAIN, SOPS_COMMENTS_COMMENTS),
])
def test_files_sops_wrote_with_encrypted_comments_decrypt_with_sops_own_mac(key_file, vector: Path, plain: dict,
                                                                            comments: list) -> None:
    """sops seals a comment (the text after '#') with the path of the mapping that holds it, and leaves comments out
    of the MAC: gitops, which never needs a comment, reads such a file and finds sops' MAC."""
    data = vector.read_bytes()
    assert _read(data, age_identities()) == plain
    # the comments are what tests/sops/README.md says, sealed as it says: the rule the writer follows
    (doc,) = parse_documents(data.decode(), "f.yaml").documents
    key = sops._data_key(doc.data["sops"], age_identities())
    assert [(aad, sops._open(key, sealed, aad)) for sealed, (aad, _) in zip(_comments(data), comments, strict=True)] \
        == [(aad, (text.encode(), "comment")) for aad, text in comments]


def test_a_tampered_or_removed_comment_changes_nothing_as_in_sops(key_file) -> None:
    """Comments are outside the MAC: sops warns about a comment that does not decrypt, keeps it as it is, and
    decrypts the file; gitops, which does not read comments, uses the file just the same. A value is another
    matter: changing one is refused."""
    data = SOPS_EXAMPLE.read_text()
    first = _comments(SOPS_EXAMPLE.read_bytes())[0]
    data_b64 = re.search(r"data:([^,]+)", first)[1]
    flipped = first.replace(data_b64, ("B" if data_b64[0] == "A" else "A") + data_b64[1:])
    tampered = data.replace(first, flipped)
    assert tampered != data
    with pytest.raises(SopsError):  # the comment itself no longer opens with the data key
        (doc,) = parse_documents(data, "f.yaml").documents
        sops._open(sops._data_key(doc.data["sops"], age_identities()), flipped.removeprefix("#"), "app2:db:")
    assert _read(tampered.encode(), age_identities()) == SOPS_EXAMPLE_PLAIN
    no_comments = "".join(line for line in data.splitlines(keepends=True) if not line.lstrip().startswith("#"))
    assert _comments(no_comments.encode()) == [] and _read(no_comments.encode(), age_identities()) == SOPS_EXAMPLE_PLAIN
    value = re.search(r"user: (ENC\[[^\]]*\])", data)[1]
    password = re.search(r"password: (ENC\[[^\]]*\])", data)[1]
    swapped = data.replace(f"user: {value}", f"user: {password}")  # a value moved to another key
    with pytest.raises(SopsError, match="a value does not decrypt"):
        _read(swapped.encode(), age_identities())


def test_dotenv_comments_are_sealed_and_skipped_as_sops_does(tmp_path: Path, key_file) -> None:
    """gitops secrets encrypt seals a dotenv comment as sops' dotenv store does (the path of the top, ':'), outside
    the MAC; the reader skips comments, whatever they hold."""
    _, recipient = key_file
    (tmp_path / "app.env").write_text(f"# {CANARY} rotate monthly\nDB_PASSWORD={CANARY}\n#\nMULTI=a\\nb\n")
    done = gitops("secrets", "encrypt", str(tmp_path / "app.env"), "--age", recipient, "-i")
    assert done.returncode == 0, done.stderr
    sealed = (tmp_path / "app.env").read_text()
    assert CANARY not in sealed
    lines = sealed.splitlines()
    assert lines[0].startswith("#ENC[AES256_GCM,") and lines[0].endswith(",type:comment]") and lines[2] == "#"
    key = sops._data_key({"age": [{"enc": lines[4].partition("=")[2].replace("\\n", "\n")}]}, age_identities())
    assert sops._open(key, lines[0][1:], ":") == (f" {CANARY} rotate monthly".encode(), "comment")
    assert sops._open(key, lines[3].partition("=")[2], "MULTI:") == (b"a\nb", "str")  # "\n" is a newline, as in sops
    assert decrypt(sealed.encode(), age_identities()) == f"DB_PASSWORD={CANARY}\nMULTI=a\\nb\n".encode()
    other = sealed.replace(lines[0], "#ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:comment]\n# plain too")
    assert decrypt(other.encode(), age_identities()) == f"DB_PASSWORD={CANARY}\nMULTI=a\\nb\n".encode()


@pytest.mark.parametrize("option", ["unencrypted_comment_regex", "encrypted_comment_regex"])
def test_comment_regexes_are_refused_with_the_reason(key_file, option: str) -> None:
    """With them, comments decide which values sops encrypted; gitops does not read where comments stand."""
    (doc,) = parse_documents(SOPS_EXAMPLE.read_text(), "f.yaml").documents
    doc.data["sops"][option] = "^sops:"
    with pytest.raises(SopsError, match=f"encrypted with {option}: then its comments decide which values"):
        decrypt(b"sops mac ENC[AES256_GCM", age_identities(), document=doc.data)


def test_the_mac_of_mac_only_encrypted_starts_as_sops_starts_it(key_file) -> None:
    """With mac_only_encrypted sops hashes only encrypted values, after 32 fixed bytes (sops.go,
    MACOnlyEncryptedInitialization), so the MAC never equals the one of the same tree without the option."""
    _, recipient = key_file
    document = json.loads(sops_json({"password": CANARY, "user_unencrypted": "app"}, recipient))
    metadata = document["sops"]
    key = sops._data_key(metadata, age_identities())

    def sealed_mac(hashed: bytes) -> str:
        iv = os.urandom(32)
        out = sops.AESGCM(key).encrypt(iv, hashlib.sha512(hashed).hexdigest().upper().encode(),
                                       metadata["lastmodified"].encode())
        data, tag = (base64.b64encode(p).decode() for p in (out[:-16], out[-16:]))
        return f"ENC[AES256_GCM,data:{data},iv:{base64.b64encode(iv).decode()},tag:{tag},type:str]"

    init = bytes([0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0xb,
                  0xb, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69])
    metadata["mac_only_encrypted"] = True
    metadata["mac"] = sealed_mac(init + CANARY.encode())
    assert json.loads(decrypt(b"", age_identities(), document=document) or b"") == {
        "password": CANARY, "user_unencrypted": "app"}
    metadata["mac"] = sealed_mac(CANARY.encode())  # the encrypted values alone: not what sops computes
    with pytest.raises(SopsError, match="the MAC does not match"):
        decrypt(b"", age_identities(), document=document)


def test_floats_are_hashed_and_sealed_as_go_writes_them(key_file) -> None:
    """sops hashes and encrypts a float with strconv.FormatFloat(f, 'f', -1, 64): sops' own example sealed
    1234568000.0 as "1234568000"; an unencrypted float enters the MAC the same way."""
    (doc,) = parse_documents(SOPS_EXAMPLE.read_text(), "f.yaml").documents
    key = sops._data_key(doc.data["sops"], age_identities())
    assert sops._open(key, doc.data["number"], "number:") == (b"1234568000", "float")
    assert [sops._plain_bytes(v) for v in (1234568000.0, 1.0, 1.5, 1e20, 1.5e-7, -0.0, float("inf"))] == [
        b"1234568000", b"1", b"1.5", b"100000000000000000000", b"0.00000015", b"-0", b"+Inf"]
    _, recipient = key_file
    sealed = sops.encrypt(b"", "f.yaml", [recipient], now="2026-12-01T00:00:00Z",
                          document={"ratio": 2.0, "limit_unencrypted": 1.0})
    (doc,) = parse_documents(sealed.decode(), "f.yaml").documents
    assert sops._open(key := sops._data_key(doc.data["sops"], age_identities()), doc.data["ratio"], "ratio:") \
        == (b"2", "float")
    digest = hashlib.sha512(b"2" + b"1").hexdigest().upper().encode()
    assert sops._open(key, doc.data["sops"]["mac"], "2026-12-01T00:00:00Z") == (digest, "str")


def _comment_lines(text: str) -> list[tuple[int, int, str]]:
    """(line number, indentation, sealed comment) of each encrypted comment."""
    return [(number, len(line) - len(line.lstrip()), line.strip()[1:]) for number, line in enumerate(text.splitlines())
            if line.lstrip().startswith("#ENC[")]


def test_gitops_secrets_encrypt_seals_yaml_comments_where_and_as_sops_did(tmp_path: Path, key_file) -> None:
    """sops' example, decrypted in place, encrypted again by gitops: every comment comes back on the line and at
    the indentation where sops wrote it, sealed with the additional data sops sealed it with, and the file reads
    back with its MAC."""
    _, recipient = key_file
    source = tmp_path / "example.yaml"
    shutil.copy(Path(__file__).parent / "sops" / "sops-example.plain.yaml", source)
    done = gitops("secrets", "encrypt", str(source), "--age", recipient, "-i")
    assert done.returncode == 0, done.stderr
    ours = source.read_text()
    assert "secret operations" not in ours and "c4r1b0u" not in ours
    theirs = _comment_lines(SOPS_EXAMPLE.read_text())
    assert [(n, indent) for n, indent, _ in _comment_lines(ours)] == [(n, indent) for n, indent, _ in theirs]
    (doc,) = parse_documents(ours, "example.yaml").documents
    key = sops._data_key(doc.data["sops"], age_identities())
    assert [sops._open(key, sealed, aad) for (_, _, sealed), (aad, _) in zip(_comment_lines(ours),
                                                                               SOPS_EXAMPLE_COMMENTS, strict=True)] \
        == [(text.encode(), "comment") for _, text in SOPS_EXAMPLE_COMMENTS]
    assert _read(ours.encode(), age_identities()) == SOPS_EXAMPLE_PLAIN


def test_gitops_secrets_encrypt_keeps_comments_wherever_they_stand(tmp_path: Path, key_file) -> None:
    """At the top, after a value, in a list, at the end of a mapping; under an *_unencrypted key a comment stays
    readable (sops decides for comments by the same path rule); a '#' inside a block scalar is content."""
    _, recipient = key_file
    source = tmp_path / "s.yml"
    source.write_text(f"# top of {CANARY}\ndb:\n  password: {CANARY}  # rotate monthly\n  hosts:\n    # primary first\n"
                      "    - a\n    - b\n  # end of db\nnotes_unencrypted:\n  # stays readable\n  text: hello\n"
                      "script: |\n  # not a comment\n  run\n#\n")
    done = gitops("secrets", "encrypt", str(source), "--age", recipient, "-i")
    assert done.returncode == 0, done.stderr
    ours = source.read_text()
    assert CANARY not in ours and "#ENC" in ours
    (doc,) = parse_documents(ours, "s.yml").documents
    key = sops._data_key(doc.data["sops"], age_identities())
    assert [sops._open(key, sealed, aad)[0].decode() for (_, _, sealed), aad in zip(
        _comment_lines(ours), [":", "db:", "db:hosts:", "db:"], strict=True)] == [
        f" top of {CANARY}", " rotate monthly", " primary first", " end of db"]
    lines = ours.splitlines()
    assert "    # stays readable" in lines and lines[lines.index("sops:") - 1] == "#"  # an empty one stays empty
    assert _read(ours.encode(), age_identities()) == {
        "db": {"password": CANARY, "hosts": ["a", "b"]}, "notes_unencrypted": {"text": "hello"},
        "script": "# not a comment\nrun\n"}


@pytest.mark.parametrize("damage", ["merge conflict", "cut"])
def test_a_damaged_sops_file_is_an_error_never_its_ciphertext_as_a_value(tmp_path: Path, key_file,
                                                                          damage: str) -> None:
    """A merge conflict or a cut file still has SOPS' marks but is no longer YAML/JSON: the revision is invalid."""
    _, recipient = key_file
    sealed = sops_binary(CANARY, recipient)
    other = sops_binary(CANARY + "-other", recipient)
    text = (f"<<<<<<< HEAD\n{sealed}=======\n{other}>>>>>>> branch\n" if damage == "merge conflict"
            else sealed[: len(sealed) * 2 // 3])
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, "pw.sops": text,
                                          "web.yaml": service("web", "env: {PASSWORD: {secretFile: pw.sops}}")})
    loaded = load_repo(root, key=with_age(ephemeral_key()))
    assert loaded.desired is None
    (error,) = [str(e) for e in loaded.errors]
    assert error.endswith("spec.env.PASSWORD.secretFile: 'pw.sops' holds SOPS-encrypted values but is not a SOPS "
                          "file gitops can read (a merge conflict or a cut file?): check it with `gitops secrets "
                          "check`, and encrypt it again from its source")


def test_sops_age_key_holds_the_identities_as_sops_reads_them(tmp_path: Path, monkeypatch) -> None:
    identity, recipient = new_identity()
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY", f"# from a CI secret\n{identity}\n")
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, "pw.sops": sops_binary(CANARY, recipient),
                                          "web.yaml": service("web", "env: {PASSWORD: {secretFile: pw.sops}}")})
    web = load_repo(root, key=with_age(ephemeral_key())).desired.service("web")  # type: ignore[union-attr]
    assert [(e.name, e.value, e.secret) for e in web.env] == [("PASSWORD", CANARY, True)]


def test_a_missing_key_file_names_where_it_was_given(tmp_path: Path) -> None:
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, "web.yaml": service("web")})
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(tmp_path / "nowhere.txt")}
    done = run_gitops("validate", str(root), env=env, tmp=tmp_path)
    assert done.returncode == 1
    assert f"{tmp_path / 'nowhere.txt'}: cannot read the age key file (SOPS_AGE_KEY_FILE or --age-key-file)" in done.stderr


def test_the_key_file_may_follow_the_command_name(tmp_path: Path, monkeypatch) -> None:
    identity, recipient = new_identity()
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    (tmp_path / "key.txt").write_text(identity + "\n")
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, "pw.sops": sops_binary(CANARY, recipient),
                                          "web.yaml": service("web", "env: {PASSWORD: {secretFile: pw.sops}}")})
    before = run_gitops("validate", str(root), tmp=tmp_path)
    after = run_gitops("validate", "--age-key-file", str(tmp_path / "key.txt"), str(root), tmp=tmp_path)
    assert before.returncode == 1 and "no age identity" in before.stderr
    assert after.returncode == 0, after.stderr
