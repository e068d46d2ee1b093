"""Safe YAML loading: positions, YAML 1.2 scalars, merge keys, and every hazard of SECURITY.md item 1-2."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.manifests.load import load_repo
from gitops.manifests.parse import (
    Limits,
    RepoPathError,
    load_documents,
    parse_documents,
    read_repo_file,
    resolve_inside,
)
from tests.conftest import PROJECT


def errors_of(text: str, **limits: int) -> list[str]:
    return [str(e) for e in parse_documents(text, "f.yaml", limits=Limits(**limits)).errors]


def test_positions_are_kept_for_every_node() -> None:
    """Each value and key keeps its 1-based line and column."""
    doc = parse_documents("a:\n  b: [1, 2]\n  c: x\n", "f.yaml").documents[0]
    assert doc.where(("a", "b", 1)) == (2, 10)
    assert doc.where(("a", "c")) == (3, 6)
    assert doc.where(("a", "c"), key=True) == (3, 3)
    assert doc.where(("a", "missing")) == (2, 3)  # nearest known ancestor: the mapping a


def test_yaml_1_2_core_schema_scalars() -> None:
    """'no' and 'on' stay strings (no Norway problem); hex and octal are ints; quoted stays str."""
    data = parse_documents("a: no\nb: on\nc: 0x1F\nd: 0o17\ne: '12'\nf: ~\ng: 1.5\nh: true\n", "f").documents[0].data
    assert data == {"a": "no", "b": "on", "c": 31, "d": 15, "e": "12", "f": None, "g": 1.5, "h": True}


def test_several_documents_per_file_and_empty_ones_skipped() -> None:
    """Documents are split on '---'; an empty one (trailing separator) is not an error."""
    result = parse_documents("a: 1\n---\nb: 2\n---\n", "f.yaml")
    assert [d.data for d in result.documents] == [{"a": 1}, {"b": 2}]
    assert [d.line for d in result.documents] == [1, 2]  # the "---" line
    assert result.errors == []


def test_merge_keys_are_applied_and_explicit_keys_win() -> None:
    """Policy must see the merged structure, so '<<' is resolved while building."""
    text = "base: &b {privileged: true, image: x}\nsvc:\n  <<: *b\n  image: y\n"
    doc = parse_documents(text, "f").documents[0]
    assert doc.data["svc"] == {"privileged": True, "image": "y"}


def test_small_aliases_are_allowed() -> None:
    """Anchors for shared settings, as compose users write them, keep working."""
    doc = parse_documents("x: &env {A: '1'}\ny: *env\n", "f").documents[0]
    assert doc.data["y"] == {"A": "1"}


@pytest.mark.parametrize("text, expected", [
    ("a: !custom x\n", "f.yaml:1:4: explicit YAML tag '!custom'"),
    ("a: 1\na: 2\n", "f.yaml:2:1: duplicate key 'a' (first defined at line 1)"),
    ("a: &x [*x]\n", "f.yaml:1:8: alias '*x' refers to a node that contains it (cycle)"),
    ("a: *nope\n", "f.yaml:1:4: alias '*nope' has no anchor before it"),
    ("? [1]\n: 2\n", "f.yaml:1:3: mapping keys must be plain strings"),
    ("a: [1, 2\n", "f.yaml:2:1: invalid YAML"),
    ("- 1\n- 2\n", "f.yaml:1:1: a manifest document must be a mapping"),
])
def test_hazards_give_located_errors(text: str, expected: str) -> None:
    """Each hazard is refused with FILE:LINE:COL and a reason."""
    errors = errors_of(text)
    assert len(errors) == 1 and errors[0].startswith(expected), errors


# The alias bomb, 5000-deep nesting, the 50 MB file, 100k files, duplicate keys and explicit tags are
# measured as a user meets them (a whole `gitops validate` process) in tests/test_hostile_inputs.py.


def test_positions_cost_the_same_at_any_depth() -> None:
    """One entry per node, keyed by (container, key): a deep node's entry is no bigger than a shallow one,
    and values copied from an alias add no entries (the node budget bounds them all)."""
    deep = "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 60)) + "  " * 60 + f"x: [{', '.join(['1'] * 5000)}]\n"
    doc = parse_documents(deep + "b: &b [1, 2, 3]\nc: [*b, *b, *b]\n", "f").documents[0]
    assert len(doc.positions.values) == 1 + 59 + 1 + 5000 + 1 + 3 + 1 + 3
    assert {len(edge) for edge in doc.positions.values} == {2}
    path = ("a", *[f"k{i}" for i in range(1, 60)], "x", 4999)
    assert doc.where(path) == (61, 125 + 3 * 4999)
    assert doc.where(("c", 1, 2)) == (63, 9)  # inside an alias copy: the alias's position


def test_budget_is_per_file_and_per_repository(tmp_path: Path) -> None:
    """Documents of a file share the file's budget; files share the repository's, and reading stops there."""
    doc = "a: &a [1, 2, 3, 4]\nb: [*a, *a, *a, *a]\n"  # 1 + 5 + (1 + 4 * 5) = 27 nodes
    assert errors_of("---\n".join([doc] * 3), max_nodes=60) == [
        "f.yaml:8:4: too many YAML nodes: more than 60 in this file (an alias counts as the nodes it expands "
        "to); split the file or use fewer aliases"]
    for name in ("a", "b", "c", "d"):
        (tmp_path / f"{name}.yaml").write_text(doc)
    result = load_documents(tmp_path, limits=Limits(max_nodes=60, max_repo_nodes=60))
    assert [str(e) for e in result.errors] == [
        "c.yaml:2:4: too many YAML nodes: more than 60 in all manifest files together (an alias counts as the "
        "nodes it expands to); no further files were read"]
    assert [d.file for d in result.documents] == ["a.yaml", "b.yaml"]
    assert not result.complete


def test_a_repository_cut_short_by_the_budget_reports_only_the_budget(repo) -> None:
    """The files after the budget ran out are not read, so checks across documents (is there a Project, does
    a named host exist) would report what was merely not read: only the budget error is shown."""
    bomb = "a: &a [1, 2, 3, 4]\nb: [*a, *a, *a, *a]\n"
    root = repo({"a.yaml": bomb, "b.yaml": bomb, "c.yaml": bomb}, project=False)
    (root / "z-project.yaml").write_text(PROJECT)
    outcome = load_repo(root, limits=Limits(max_nodes=60, max_repo_nodes=60))
    shown = [str(e) for e in outcome.errors]
    assert shown[-1] == ("c.yaml:2:4: too many YAML nodes: more than 60 in all manifest files together (an alias "
                         "counts as the nodes it expands to); no further files were read")
    assert shown[:-1] == [f"{f}.yaml:1:1: not a gitops manifest: apiVersion is missing (expected 'gitops/v1')"
                          for f in "ab"]  # each document read is still checked on its own


def test_hidden_folders_and_non_yaml_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.yml").write_text("x: 1\n")
    (tmp_path / "notes.txt").write_text("x: [\n")
    result = load_documents(tmp_path)
    assert [d.file for d in result.documents] == ["a/b/deep.yml"]
    assert result.errors == []


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_bytes(b"a: \xff\xfe\n")
    assert [str(e) for e in load_documents(tmp_path).errors] == ["x.yaml: file is not UTF-8 text"]


# --- paths and symlinks (SECURITY.md item 2) ---------------------------------------------------------


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "canary.txt"
    secret.write_text("CANARY-7f3a9c\n")
    return secret


def test_symlinked_manifest_leaving_the_checkout_is_refused(tmp_path: Path, canary: Path) -> None:
    """A manifest that is a symlink to a file outside is refused, and its content never shows."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "evil.yaml").symlink_to(canary)
    result = load_documents(root)
    assert [str(e) for e in result.errors] == [
        "evil.yaml: symlink refused: 'evil.yaml' resolves outside the repository"]
    assert "CANARY" not in repr(result)


def test_symlink_inside_the_checkout_works(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.yaml.txt").write_text("a: 1\n")
    (root / "a.yaml").symlink_to(root / "real" / "a.yaml.txt")
    result = load_documents(root)
    assert result.errors == [] and result.documents[0].data == {"a": 1}


def test_folder_symlinks_are_not_followed(tmp_path: Path, canary: Path) -> None:
    """A symlinked folder (to outside, or a loop) is not walked."""
    root = tmp_path / "repo"
    root.mkdir()
    (canary.parent / "x.yaml").write_text("leak: CANARY\n")
    (root / "out").symlink_to(canary.parent, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    result = load_documents(root)
    assert result.documents == [] and result.errors == []


@pytest.mark.parametrize("relative", ["../outside/canary.txt", "/etc/passwd", "link", "sub/../../outside/canary.txt"])
def test_referenced_paths_must_stay_inside(tmp_path: Path, canary: Path, relative: str) -> None:
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "link").symlink_to(canary)
    with pytest.raises(RepoPathError) as info:
        read_repo_file(root, relative)
    assert "CANARY" not in str(info.value)


def test_referenced_path_relative_to_the_manifest(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "services").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "config" / "a.env").write_text("A=1\n")
    (root / "services" / "link.env").symlink_to(root / "config" / "a.env")
    assert read_repo_file(root, "../config/a.env", base="services/api.yaml") == "A=1\n"
    assert read_repo_file(root, "link.env", base="services/api.yaml") == "A=1\n"
    assert resolve_inside(root, "config/a.env") == (root / "config" / "a.env").resolve()


@pytest.mark.parametrize(("text", "expected"), [
    ("a: [b:/c, d]\n", {"a": ["b:/c", "d"]}),  # YAML 1.2 allows ':' in a flow plain scalar; libyaml does not
    ("a: x\u2028y\n", {"a": "x\u2028y"}),  # a character in YAML 1.2, a line break in YAML 1.1
    ("a: 0o17\nb: 017\nc: yes\n", {"a": 15, "b": 17, "c": "yes"}),  # the 1.2 core schema either way
])
def test_yaml_is_read_as_yaml_1_2_whichever_parser_reads_it(text: str, expected: dict[str, object]) -> None:
    (doc,) = parse_documents(text, "f.yaml").documents
    assert doc.data == expected


def test_libyaml_reads_manifests_when_installed() -> None:
    """ruamel.yaml.clib is a dependency: without it every load is ~15x slower (bench/bench_compose.py)."""
    from gitops.manifests import parse

    assert parse._PURE is False
