"""docker-py's ssh transport, loaded only when a client for an ``ssh://`` host is built.

``import docker`` imports ``docker.transport.sshconn``, and with it paramiko (about 0.15 s, a third of
docker-py's import time), whether or not any host uses ssh. gitops reaches ssh hosts through the
``ssh`` client (``use_ssh_client``), so most runs never need that module at all. Until the first ssh
client is built, a stand-in module answers for it; its ``SSHHTTPAdapter`` (or any other name asked
of it) imports the real module then and builds the real adapter, so ssh hosts work exactly as before.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

MODULE = "docker.transport.sshconn"
_lock = threading.Lock()
_real_wanted = False  # once an ssh client is built, the finder steps aside for the real module


def _real_module() -> types.ModuleType:
    with _lock:  # hosts connect from a thread pool: one of them swaps the real module in
        global _real_wanted
        _real_wanted = True
        module = sys.modules.get(MODULE)
        if module is None or module.__dict__.get("_gitops_stand_in", False):
            sys.modules.pop(MODULE, None)
            module = importlib.import_module(MODULE)
    return module


def _real_adapter(*args: Any, **kwargs: Any) -> Any:
    return _real_module().SSHHTTPAdapter(*args, **kwargs)


def _real_attribute(name: str) -> Any:
    """Any other name (``from docker.transport.sshconn import SSHSocket``) loads the real module too."""
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_real_module(), name)


class _StandInLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        module._gitops_stand_in = True  # type: ignore[attr-defined]
        module.SSHHTTPAdapter = _real_adapter  # type: ignore[attr-defined]
        module.__getattr__ = _real_attribute  # type: ignore[method-assign]


class _StandInFinder(importlib.abc.MetaPathFinder):
    """Answers only for docker-py's ssh transport, only when docker-py imports it, only until it is needed:
    nothing of docker's is in sys.modules before docker itself is imported."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != MODULE or _real_wanted:
            return None
        return importlib.util.spec_from_loader(fullname, _StandInLoader())


def defer_ssh_transport() -> None:
    """Put the finder in place, unless docker-py is imported already (then there is nothing to save)."""
    if "docker" in sys.modules or any(isinstance(f, _StandInFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _StandInFinder())
