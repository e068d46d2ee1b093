"""Start-up: each command imports only what it uses (issue item 15).

Checked by module, not by seconds, so a loaded machine cannot make it flake: the real `gitops`
executable runs in a fresh process with PYTHONPROFILEIMPORTTIME=1, and every module it imported is
read from the import-time report on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.examplerepo import example_copy

GITOPS = str(Path(sys.executable).parent / "gitops")

# What --help must not pay for: the Docker client and its transports, the logging renderer and its
# terminal library, the schema validator, git.
NOT_FOR_HELP = ("docker", "paramiko", "requests", "urllib3", "structlog", "rich", "jsonschema", "git")
# validate reads and checks files: no Docker client, no network library, no logging renderer.
NOT_FOR_VALIDATE = ("docker", "paramiko", "requests", "urllib3", "structlog", "rich", "git")


def imported(*args: str, tmp: Path) -> tuple[int, set[str]]:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([GITOPS, *args], env=env, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "gitops.cli.commands" in modules, done.stderr[-2000:]  # the report is there at all
    return done.returncode, modules


def offending(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in packages)


def test_help_imports_no_docker_logging_or_schema(tmp_path: Path) -> None:
    code, modules = imported("--help", tmp=tmp_path)
    assert code == 0
    assert offending(modules, NOT_FOR_HELP) == []


def test_subcommand_help_imports_no_docker_logging_or_schema(tmp_path: Path) -> None:
    code, modules = imported("apply", "--help", tmp=tmp_path)
    assert code == 0
    assert offending(modules, NOT_FOR_HELP) == []


def test_validate_imports_no_docker(tmp_path: Path) -> None:
    example = example_copy(tmp_path / "example")
    code, modules = imported("--age-key-file", str(example.key_file), "validate", str(example.root), tmp=tmp_path)
    assert code == 0
    assert offending(modules, NOT_FOR_VALIDATE) == []
    assert "jsonschema" in modules and "gitops.manifests.load" in modules  # it did validate


def test_invalid_repo_validate_imports_no_docker(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.yaml").write_text("apiVersion: gitops/v1\nkind: Service\nmetadata: {name: web}\nspec: {imag: x}\n")
    code, modules = imported("validate", str(repo), tmp=tmp_path)
    assert code == 1
    assert offending(modules, NOT_FOR_VALIDATE) == []


@pytest.mark.docker
def test_plan_against_local_engine_imports_no_paramiko_or_logging(tmp_path: Path, docker_client: object) -> None:
    """docker-py imports paramiko for its ssh transport; gitops leaves it unimported without ssh:// hosts."""
    example = example_copy(tmp_path / "example")
    code, modules = imported("--age-key-file", str(example.key_file), "plan", str(example.root),
                             "--state-dir", str(tmp_path / "state"), tmp=tmp_path)
    assert code == 0
    assert "docker" in modules  # it did talk to the engine
    assert offending(modules, ("paramiko", "structlog", "rich")) == []


def test_ssh_transport_loads_paramiko_when_an_ssh_host_is_used() -> None:
    """The deferred ssh transport still works: building an ssh:// client brings in docker-py's real adapter."""
    code = (
        "import sys\n"
        "import gitops.hosts.docker, docker\n"
        "assert 'paramiko' not in sys.modules, 'paramiko imported with docker'\n"
        "client = docker.APIClient(base_url='ssh://nobody@127.0.0.1:1', version='1.41', use_ssh_client=True)\n"
        "from docker.transport.sshconn import SSHHTTPAdapter\n"
        "assert isinstance(client._custom_adapter, SSHHTTPAdapter), type(client._custom_adapter)\n"
        "assert 'paramiko' in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout == "ok\n", done.stderr


def test_other_names_of_the_ssh_transport_still_import() -> None:
    code = (
        "import sys\n"
        "import gitops.hosts.docker\n"
        "from docker.transport.sshconn import SSHSocket\n"
        "assert SSHSocket.__module__ == 'docker.transport.sshconn' and 'paramiko' in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout == "ok\n", done.stderr
