"""Real git repositories for tests: a bare 'remote' and a work tree that pushes to it."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": "/usr/bin:/bin", "HOME": "/tmp"}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


class Remote:
    def __init__(self, root: Path, branch: str = "main") -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        self.branch = branch
        root.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "--bare", "-b", branch, str(self.bare), cwd=root)
        git("init", "-q", "-b", branch, str(self.work), cwd=root)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    def commit(self, files: dict[str, str | None], message: str = "change", *, push: bool = True) -> str:
        for rel, text in files.items():
            path = self.work / rel
            if text is None:
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        if push:
            git("push", "-q", "--force", "origin", self.branch, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def reset_hard(self, commit: str) -> None:
        git("reset", "-q", "--hard", commit, cwd=self.work)
        git("push", "-q", "--force", "origin", self.branch, cwd=self.work)
