"""Everything a repository can feed the loader, as a user runs gitops: `gitops validate DIR --format json`
in its own process. Each hostile repository is refused with exit code 1, its exact errors (file, line,
column, message) in the JSON report, in under 1 s of work and under 200 MB (SECURITY.md items 1, 2, 4b,
11 and 17; tests/hostile.py measures).

Cases: alias bombs (one document; many documents of one file; a 1 MiB file of them; many files of one
repository), cyclic aliases, 5,000-deep nesting, a 50 MB file, 100,000 files, duplicate keys, explicit
tags, numbers (4,300-digit integers, floats where integers belong, NaN and infinities, durations and
sizes past what Docker takes), %YAML 1.3, symlink loops, files under .git/, and malformed
`gitops plan --observed` snapshots.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gitops.manifests.parse import DEFAULT_LIMITS
from tests.conftest import PROJECT, service, write_files
from tests.hostile import Measured, run_gitops

NODES_FILE = DEFAULT_LIMITS.max_nodes  # 100,000
NODES_REPO = DEFAULT_LIMITS.max_repo_nodes  # 250,000
FILE_BUDGET = (f"too many YAML nodes: more than {NODES_FILE} in this file (an alias counts as the nodes it "
               "expands to); split the file or use fewer aliases")
REPO_BUDGET = (f"too many YAML nodes: more than {NODES_REPO} in all manifest files together (an alias counts "
               "as the nodes it expands to); no further files were read")
NOT_MANIFEST = "not a gitops manifest: apiVersion is missing (expected 'gitops/v1')"


def validate(root: Path, tmp: Path) -> tuple[Measured, list[str]]:
    """Run `gitops validate ROOT --format json`; the refusal is exit 1, JSON, within the bounds."""
    measured = run_gitops("validate", str(root), "--format", "json", tmp=tmp)
    assert measured.returncode == 1, measured.stderr[-3000:]
    assert "Traceback" not in measured.stderr
    report = json.loads(measured.stdout)  # JSON even when refused
    assert report["valid"] is False
    measured.within_bounds()
    return measured, [f"{e['file']}:{e['line']}:{e['column']}: {e['message']}" for e in report["errors"]]


def refused(tmp_path: Path, files: dict[str, str]) -> list[str]:
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, **files})
    return validate(root, tmp_path)[1]


# --- YAML structure: aliases, nesting, size, count, keys, tags (SECURITY.md 1 and 4b) ------------------------

BOMB = "\n".join(
    [f"a0: &a0 [{', '.join(['lol'] * 9)}]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
) + "\n"


def bomb_document(levels: int = 5) -> str:
    """One document whose anchors expand to 74,733 nodes: most of the 100,000 a file may have."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * 9)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_one_document(tmp_path: Path) -> None:
    """A 500-byte billion laughs is refused where its budget runs out, before anything is expanded."""
    assert len(BOMB) < 600
    assert refused(tmp_path, {"bomb.yaml": BOMB}) == [f"bomb.yaml:6:10: {FILE_BUDGET}"]


def test_many_documents_of_one_file_share_its_budget(tmp_path: Path) -> None:
    """Each document stays under 100,000 nodes; together they are refused at the second one.

    (With a budget per document, a 173 KB file of these took 59 s and 2 GB.)
    """
    text = "---\n".join([bomb_document()] * 300)
    assert len(text) < 100_000
    a4 = 2 * len(bomb_document().splitlines()) + 1  # the last line of the second document, after '---'
    assert refused(tmp_path, {"bombs.yaml": text}) == [f"bombs.yaml:1:1: {NOT_MANIFEST}",
                                                       f"bombs.yaml:{a4}:20: {FILE_BUDGET}"]


def test_a_1_mib_file_of_bomb_documents(tmp_path: Path) -> None:
    """The same at the largest size a manifest file may have: refused as fast, in bounded memory."""
    doc = bomb_document()
    text = "---\n".join([doc] * (DEFAULT_LIMITS.max_file_bytes // (len(doc) + 4)))
    assert DEFAULT_LIMITS.max_file_bytes - 1000 < len(text) <= DEFAULT_LIMITS.max_file_bytes
    a4 = 2 * len(doc.splitlines()) + 1
    assert refused(tmp_path, {"bombs.yaml": text}) == [f"bombs.yaml:1:1: {NOT_MANIFEST}",
                                                       f"bombs.yaml:{a4}:20: {FILE_BUDGET}"]


def test_many_files_of_one_repository_share_its_budget(tmp_path: Path) -> None:
    """Files each under their own budget add up: the fourth crosses 250,000 and nothing after it is read."""
    files = {f"x{i:02}.yaml": bomb_document() for i in range(40)}  # read after project.yaml
    errors = refused(tmp_path, files)
    assert errors == [f"x00.yaml:1:1: {NOT_MANIFEST}", f"x01.yaml:1:1: {NOT_MANIFEST}",
                      f"x02.yaml:1:1: {NOT_MANIFEST}", f"x03.yaml:5:20: {REPO_BUDGET}"]


def test_cyclic_alias(tmp_path: Path) -> None:
    assert refused(tmp_path, {"c.yaml": "a: &x [1, *x]\n"}) == [
        "c.yaml:1:11: alias '*x' refers to a node that contains it (cycle)"]


def test_5000_deep_nesting(tmp_path: Path) -> None:
    """Nesting stops at 64 levels, without recursion (1,400 levels of block mappings fill 1 MiB)."""
    files = {"flow-list.yaml": "a: " + "[" * 5000 + "]" * 5000 + "\n",
             "flow-mapping.yaml": "a: " + "{a: " * 5000 + "}" * 5000 + "\n",
             "block-list.yaml": "- " * 5000 + "x\n",
             "block-mapping.yaml": "".join(" " * i + "a:\n" for i in range(1400))}
    assert refused(tmp_path, files) == [f"{where}: nesting deeper than 64 levels" for where in (
        "block-list.yaml:1:129", "block-mapping.yaml:65:65", "flow-list.yaml:1:67", "flow-mapping.yaml:1:256")]


def test_50_mb_file(tmp_path: Path) -> None:
    """Refused by its size, without reading it."""
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT})
    with (root / "big.yaml").open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    assert validate(root, tmp_path)[1] == [
        "big.yaml:0:0: file is 52428800 bytes, more than the 1048576 allowed for one manifest file"]


def test_100k_files(tmp_path: Path) -> None:
    """One clean error for the whole repository; no file is parsed."""
    root = tmp_path / "repo"
    root.mkdir()
    for i in range(100_000):
        os.close(os.open(root / f"m{i}.yaml", os.O_CREAT | os.O_WRONLY))
    assert validate(root, tmp_path)[1] == [
        ".:0:0: more than 5000 manifest files; point gitops at the folder that holds the manifests",
        ".:0:0: no Project manifest: add one document with 'kind: Project' and metadata.name to name the "
        "project (its name labels every container gitops manages)"]


def test_yaml_hazards(tmp_path: Path) -> None:
    """Duplicate keys, any explicit tag (Python object tags first of all), and YAML versions past 1.2."""
    files = {"h1.yaml": "a: 1\nb: 2\na: 3\n", "h2.yaml": "a: !!python/object/apply:os.system ['id']\n",
             "h3.yaml": "a: !!str 3\n", "h4.yaml": "%YAML 1.3\n---\na: 1\n"}
    tag = "is not allowed; remove it (quote the value if you meant a string)"
    assert refused(tmp_path, files) == [
        "h1.yaml:3:1: duplicate key 'a' (first defined at line 1)",
        f"h2.yaml:1:4: explicit YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' {tag}",
        f"h3.yaml:1:4: explicit YAML tag 'tag:yaml.org,2002:str' {tag}",
        "h4.yaml:1:1: '%YAML 1.3' is not supported: gitops reads YAML 1.2; remove the directive or write '%YAML 1.2'"]


# --- numbers (SECURITY.md 4b) --------------------------------------------------------------------------------

OUT_OF_RANGE = ("is out of range: numbers must fit in 64 bits (-9223372036854775808 to 9223372036854775807); "
                "quote it if it is text")
NOT_FINITE = "is not a finite number: NaN and infinities are not allowed; write a number (or quote it if it is text)"


NUMBERS = [
    ("replicas: " + "1" * 5000, f"7:13: integer 111111111111111111111... {OUT_OF_RANGE}"),
    ("replicas: 0x" + "f" * 5000, f"7:13: integer 0xfffffffffffffffffff... {OUT_OF_RANGE}"),
    ("env: {BIG: 9223372036854775808}", f"7:14: integer 9223372036854775808 {OUT_OF_RANGE}"),
    ("replicas: 2.0", "7:13: spec.replicas: expected integer, got number 2.0"),
    ("replicas: 1e2", "7:13: spec.replicas: expected integer, got number 100.0"),
    ("resources: {memory: 1.0e9}", "7:23: spec.resources.memory: expected string or integer, got number "
     "1000000000.0"),
    ("resources: {cpus: .nan}", f"7:21: .nan {NOT_FINITE}"),
    ("resources: {cpus: .inf}", f"7:21: .inf {NOT_FINITE}"),
    ("env: {A: -.Inf}", f"7:12: -.Inf {NOT_FINITE}"),
    ("resources: {cpus: 1e400}", f"7:21: 1e400 {NOT_FINITE}"),
    ("resources: {cpus: 1e300}", "7:21: spec.resources.cpus: 1e+300 is greater than the maximum of 100000"),
    ("stopGracePeriod: " + "9" * 400 + "h", "7:20: spec.stopGracePeriod: '9999999999999999999999999999999999999...' "
     "is too long: durations are at most 8784h"),
    ("healthcheck: {exec: 'true', startPeriod: 9000h}", "7:44: spec.healthcheck.startPeriod: '9000h' is too "
     "long: durations are at most 8784h"),
    ("resources: {memory: " + "9" * 400 + "Ti}", "7:23: spec.resources.memory: '9999999999999999999999999999999999999...' "
     "is too large: sizes are at most 9223372036854775807 bytes"),
    ("resources: {memory: 8Mi, memoryReservation: 9223372036854775807}", "7:47: spec.resources.memoryReservation: "
     "must not exceed memory"),
]


def test_numbers(tmp_path: Path) -> None:
    """Each is a located error, never a traceback: int('1' * 5000) raises, range(2.0) raises, inf overflows
    on its way to Docker. The largest 64-bit size is compared without overflowing (the last case)."""
    files = {f"n{i:02}.yaml": service(f"s{i:02}", body) for i, (body, _) in enumerate(NUMBERS)}
    assert refused(tmp_path, files) == [f"n{i:02}.yaml:{error}" for i, (_, error) in enumerate(NUMBERS)]


# --- paths: symlink loops, .git/ (SECURITY.md 2 and 17) ---------------------------------------------------------

GIT_REFUSED = ("is inside a .git folder, which holds git's configuration and credentials; it can never be read "
               "by a manifest")


def test_symlink_loops(tmp_path: Path) -> None:
    """As a manifest, as a secretFile and as an envFile (Path.resolve raises on a loop)."""
    manifests = write_files(tmp_path / "manifests", {"project.yaml": PROJECT})
    (manifests / "a.yaml").symlink_to("b.yaml")
    (manifests / "b.yaml").symlink_to("a.yaml")
    assert validate(manifests, tmp_path)[1] == ["a.yaml:0:0: symlink refused: 'a.yaml' is a symlink loop",
                                                "b.yaml:0:0: symlink refused: 'b.yaml' is a symlink loop"]
    referenced = write_files(tmp_path / "referenced", {"project.yaml": PROJECT,
                                                       "s1.yaml": service("s1", "env: {T: {secretFile: x}}"),
                                                       "s2.yaml": service("s2", "envFile: x")})
    (referenced / "x").symlink_to("y")
    (referenced / "y").symlink_to("x")
    assert validate(referenced, tmp_path)[1] == ["s1.yaml:7:25: spec.env.T.secretFile: 'x' is a symlink loop",
                                                 "s2.yaml:7:12: spec.envFile: 'x' is a symlink loop"]


HOST_TLS = ("apiVersion: gitops/v1\nkind: Host\nmetadata: {name: %s}\n"
            "spec: {url: 'tcp://10.0.0.5:2376', tls: {ca: %s}}\n")


def test_files_under_git_are_never_inputs(tmp_path: Path) -> None:
    """.git/config holds the CI token: as written or after following symlinks, at any depth, in any case,
    as an env file, a secret file or a TLS file, it is never read."""
    files = {
        "g1.yaml": service("g1", "env: {T: {secretFile: .git/config}}"),
        "g2.yaml": service("g2", "envFile: .git/config"),
        "g3.yaml": service("g3", "envFile: [a.env, vendor/lib/.GIT/config]"),
        "g4.yaml": service("g4", "env: {T: {secretFile: sub/../.git/config}}"),
        "g5.yaml": service("g5", "env: {T: {secretFile: token}}"),  # token -> .git/config
        "g6.yaml": service("g6", "envFile: conf/config"),  # conf -> .git
        "h1.yaml": HOST_TLS % ("h1", ".git/config"),
        "h2.yaml": HOST_TLS % ("h2", "ca.pem"),  # ca.pem -> .git/config
    }
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, "a.env": "A=1\n", **files})
    for git_dir in (root / ".git", root / "vendor" / "lib" / ".GIT"):
        git_dir.mkdir(parents=True)
        (git_dir / "config").write_text("A=1\n[http]\n\textraheader = AUTHORIZATION: basic CANARY-TOKEN\n")
    for link, target in (("token", ".git/config"), ("conf", ".git"), ("ca.pem", ".git/config")):
        (root / link).symlink_to(root / target)
    measured, errors = validate(root, tmp_path)
    assert errors == [
        f"g1.yaml:7:25: spec.env.T.secretFile: '.git/config' {GIT_REFUSED}",
        f"g2.yaml:7:12: spec.envFile: '.git/config' {GIT_REFUSED}",
        f"g3.yaml:7:20: spec.envFile[1]: 'vendor/lib/.GIT/config' {GIT_REFUSED}",
        f"g4.yaml:7:25: spec.env.T.secretFile: 'sub/../.git/config' {GIT_REFUSED}",
        f"g5.yaml:7:25: spec.env.T.secretFile: 'token' {GIT_REFUSED}",
        f"g6.yaml:7:12: spec.envFile: 'conf/config' {GIT_REFUSED}",
        f"h1.yaml:4:46: spec.tls.ca: '.git/config' {GIT_REFUSED}",
        f"h2.yaml:4:46: spec.tls.ca: 'ca.pem' {GIT_REFUSED}"]
    assert "CANARY" not in measured.stdout + measured.stderr


def test_a_manifest_symlinked_into_git_is_refused(tmp_path: Path) -> None:
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, ".git/config.yaml": "token: CANARY\n"})
    (root / "x.yaml").symlink_to(".git/config.yaml")
    measured, errors = validate(root, tmp_path)
    assert errors == [f"x.yaml:0:0: symlink refused: 'x.yaml' {GIT_REFUSED}"]
    assert "CANARY" not in measured.stdout


# --- gitops plan --observed FILE: a malformed snapshot is one clean error ------------------------------------------

SNAPSHOT = "{path}: not a status snapshot (gitops status --format json): "
CONTAINER = {"host": "local", "id": "x", "name": "n", "service": "web", "slot": 0, "spec_hash": "h",
             "revision": "r", "state": "running", "health": "none", "image": "i"}


def host_with(**container: object) -> str:
    return json.dumps({"hosts": [{"host": "local", "reachable": True, "containers": [{**CONTAINER, **container}]}]})


@pytest.mark.parametrize("content, reason", [
    ("{not json", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("[" * 100_000 + "]" * 100_000, "not JSON: nested too deeply"),
    ('{"hosts": [' + "1" * 5000 + "]}", "not JSON: Exceeds the limit (4300 digits) for integer string "
     "conversion: value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit"),
    ("[]", "the document: expected an object, got a list"),
    ('{"observed": null}', "observed is null: the status was saved when no host had been observed"),
    ('{"hosts": {}}', "hosts: expected a list, got an object"),
    ('{"hosts": [{"host": "local"}]}', "hosts[0]: reachable is missing"),
    ('{"hosts": [{"host": "local", "reachable": "yes"}]}', "hosts[0].reachable: expected true or false, got a string"),
    (host_with(slot=1.5), "hosts[0].containers[0].slot: expected an integer, got a number"),
    (host_with(health="sick"), "hosts[0].containers[0].health: expected one of ['healthy', 'unhealthy', "
     "'starting', 'none'], got a string"),
    (host_with(sneaky=1), "hosts[0].containers[0]: unknown field 'sneaky'"),
    ("\xff", "not UTF-8 text"),
], ids=["not-json", "deep", "4300-digits", "list", "observed-null", "hosts-object", "missing-field",
        "bool-type", "float-slot", "literal", "unknown-field", "not-utf8"])
def test_malformed_observed_snapshot(tmp_path: Path, content: str, reason: str) -> None:
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, "s.yaml": service("web")})
    snapshot = tmp_path / "snap.json"
    snapshot.write_bytes(content.encode("latin-1") if content == "\xff" else content.encode())
    measured = run_gitops("plan", str(root), "--observed", str(snapshot), tmp=tmp_path)
    assert measured.returncode == 1, measured.stderr
    assert measured.stderr == f"Error: {SNAPSHOT.format(path=snapshot)}{reason}\n"
    measured.within_bounds()


def test_huge_observed_snapshot(tmp_path: Path) -> None:
    """More than 64 MiB is refused after reading the bound, not the file."""
    root = write_files(tmp_path / "repo", {"project.yaml": PROJECT, "s.yaml": service("web")})
    snapshot = tmp_path / "snap.json"
    with snapshot.open("wb") as handle:
        handle.truncate(1024 * 1024 * 1024)
    measured = run_gitops("plan", str(root), "--observed", str(snapshot), tmp=tmp_path)
    assert measured.returncode == 1
    assert measured.stderr == f"Error: {SNAPSHOT.format(path=snapshot)}more than 67108864 bytes\n"
    assert measured.seconds < 1.0  # reading 64 MiB of a sparse file; memory is the 64 MiB read
