"""Where the manifests come from: for now, the revision of a local checkout (gitpython)."""

from __future__ import annotations

from pathlib import Path


def revision_of(path: Path) -> str:
    """The commit the folder is at, with '-dirty' when its manifests have uncommitted changes; '' outside git."""
    try:
        import git
    except ImportError:  # pragma: no cover - gitpython is a dependency
        return ""
    try:
        repo = git.Repo(path, search_parent_directories=True)
        sha = repo.head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return ""
    try:
        rel = str(Path(path).resolve().relative_to(Path(repo.working_tree_dir or ".").resolve()))
        dirty = repo.is_dirty(untracked_files=True, path=None if rel == "." else rel)
    except (ValueError, git.GitCommandError):
        dirty = False
    return sha + ("-dirty" if dirty else "")
