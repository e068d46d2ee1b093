"""Safe YAML loading: positions, YAML 1.2 scalars, merge keys, and every hazard of SECURITY.md item 1-2."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import pytest

from gitops.manifests import (
    Limits,
    RepoPathError,
    load_documents,
    parse_documents,
    read_repo_file,
    resolve_inside,
)


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
    ("a: !!python/object/apply:os.system ['id']\n", "f.yaml:1:4: explicit YAML tag"),
    ("a: !!str 3\n", "f.yaml:1:4: explicit YAML tag"),
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


BOMB = "\n".join(
    [f"a0: &a0 [{', '.join(['lol'] * 9)}]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
) + "\n"


def test_alias_bomb_is_refused_fast_and_small() -> None:
    """A billion-laughs document is refused before it is expanded: under 1 s and a few MB."""
    assert len(BOMB) < 600
    tracemalloc.start()
    started = time.perf_counter()
    errors = errors_of(BOMB)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert errors and "more than 100000 nodes" in errors[0]
    assert elapsed < 1.0
    assert peak < 50 * 1024 * 1024


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "".join("  " * i + "a:\n" for i in range(5000)) + "  " * 5000 + "b: 1\n"],
                         ids=["flow", "block"])
def test_5000_deep_nesting_is_refused_within_a_second(text: str) -> None:
    """Deep nesting stops at the depth limit, without recursion errors."""
    started = time.perf_counter()
    errors = errors_of(text)
    assert time.perf_counter() - started < 1.0
    assert len(errors) == 1 and "nesting deeper than 64 levels" in errors[0]


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A 50 MB manifest gives a per-file error within a second, reading none of it."""
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    started = time.perf_counter()
    result = load_documents(tmp_path)
    assert time.perf_counter() - started < 1.0
    assert [str(e) for e in result.errors] == [
        "big.yaml: file is 52428800 bytes, more than the 1048576 allowed for one manifest file"]


def test_100k_files_give_one_clean_error_fast(tmp_path: Path) -> None:
    """A repository with 100,000 manifest files is refused in well under a second per file, in bounded memory."""
    root = tmp_path / "many"
    root.mkdir()
    for i in range(100_000):
        os.close(os.open(root / f"m{i}.yaml", os.O_CREAT | os.O_WRONLY))
    started = time.perf_counter()
    result = load_documents(root)
    elapsed = time.perf_counter() - started
    assert [str(e) for e in result.errors] == [
        ".: more than 5000 manifest files; point gitops at the folder that holds the manifests"]
    assert result.documents == []
    assert elapsed < 5.0  # 100k directory entries; the per-file work stops at the limit


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
