"""The layers of DESIGN.md hold: import-linter checks the contract in .importlinter on every run."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / ".importlinter")], cwd=root,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_are_kept() -> None:
    """cli > daemon > outcomes > engine > manifests|hosts|source > ... > core > errors; docker only in hosts, git only in source."""
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 kept, 0 broken" in done.stdout


def test_every_module_of_gitops_is_in_a_layer() -> None:
    """A new folder or top-level module cannot slip past the contract by not being named in it."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    named = {m.strip() for line in config["importlinter:contract:layers"]["layers"].split("\n")
             for m in line.split("|") if m.strip()}
    package = ROOT / "gitops"
    present = {f"gitops.{p.stem}" for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")}
    present |= {f"gitops.{p.name}" for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert present - named == set(), "add these to a layer in .importlinter"


def test_a_forbidden_import_breaks_the_contract(tmp_path: Path) -> None:
    """The check can fail: the core importing docker (or the engine importing the CLI) is reported."""
    shutil.copytree(ROOT / "gitops", tmp_path / "gitops", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    planner = tmp_path / "gitops" / "core" / "planner.py"
    planner.write_text(planner.read_text() + "\nimport docker  # noqa\n")
    executor = tmp_path / "gitops" / "engine" / "executor.py"
    executor.write_text(executor.read_text() + "\nfrom gitops.cli import commands  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "gitops.core.planner -> docker" in done.stdout
    assert "gitops.engine.executor -> gitops.cli" in done.stdout


def test_imports_inside_functions_say_why() -> None:
    """Imports sit at the module top, unless a comment says why (start-up time, an optional tool).

    cli/commands.py and log.py import lazily throughout, for start-up time; their docstrings say so."""
    unexplained = []
    for path in sorted((ROOT / "gitops").rglob("*.py")):
        if path.relative_to(ROOT).as_posix() in ("gitops/cli/commands.py", "gitops/log.py"):
            continue
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            if not line.startswith(" ") or not stripped.startswith(("import ", "from ")) or " import" not in stripped:
                continue
            if lines[i - 1].strip().startswith(("import ", "from ")) and lines[i - 1].startswith(" "):
                continue  # one block of imports: its first line explains it
            if "#" not in line and not lines[i - 1].strip().startswith("#") and "TYPE_CHECKING" not in lines[i - 1]:
                unexplained.append(f"{path.relative_to(ROOT)}:{i + 1}: {stripped}")
    assert unexplained == []
