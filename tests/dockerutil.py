"""Listing a project's containers from a test while a reconciler may be changing them."""

from __future__ import annotations

import docker.errors


def project_containers(client, project: str, *labels: str, all: bool = False) -> list:
    """The containers carrying the project's label (and any extra label filters).

    docker-py's ``containers.list`` inspects each container after listing; when a reconciler removes one
    in between, that inspect is a 404. A removed container is simply not there any more, so list again.
    """
    filters = {"label": [f"io.gitops.project={project}", *labels]}
    for _ in range(20):
        try:
            return client.containers.list(all=all, filters=filters)
        except docker.errors.NotFound:
            continue
    raise AssertionError(f"the containers of {project} kept changing under 20 listings")
