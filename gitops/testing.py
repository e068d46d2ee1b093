"""Test helpers shipped with the package (re-exported from gitops.observed)."""

from gitops.observed import converged, empty, unreachable, with_containers

__all__ = ["converged", "empty", "unreachable", "with_containers"]
