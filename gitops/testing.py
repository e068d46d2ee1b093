"""Test helpers shipped with the package (re-exported from gitops.core.observed)."""

from gitops.core.observed import converged, empty, unreachable, with_containers

__all__ = ["converged", "empty", "unreachable", "with_containers"]
