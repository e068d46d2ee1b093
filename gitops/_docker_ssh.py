"""docker-py's ssh transport, loaded only when a client for an ``ssh://`` host is built.

``import docker`` imports ``docker.transport.sshconn``, and with it paramiko (about 0.15 s, a third of
docker-py's import time), whether or not any host uses ssh. gitops reaches ssh hosts through the
``ssh`` client (``use_ssh_client``), so most runs never need that module at all. Until the first ssh
client is built, a stand-in module answers for it; its ``SSHHTTPAdapter`` (or any other name asked
of it) imports the real module then and builds the real adapter, so ssh hosts work exactly as before.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

MODULE = "docker.transport.sshconn"
_lock = threading.Lock()


def _real_module() -> types.ModuleType:
    with _lock:  # hosts connect from a thread pool: one of them swaps the real module in
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


def defer_ssh_transport() -> None:
    """Put the stand-in in place, unless docker-py is imported already (then there is nothing to save)."""
    if "docker" in sys.modules or MODULE in sys.modules:
        return
    stand_in = types.ModuleType(MODULE, "gitops: docker-py's ssh transport, imported on first use")
    stand_in._gitops_stand_in = True  # type: ignore[attr-defined]
    stand_in.SSHHTTPAdapter = _real_adapter  # type: ignore[attr-defined]
    stand_in.__getattr__ = _real_attribute  # type: ignore[method-assign]
    sys.modules[MODULE] = stand_in
