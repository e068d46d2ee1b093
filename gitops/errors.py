"""The errors gitops raises on purpose: one root, and one word for "retrying may help".

Every error that is part of gitops' contract derives from ``GitopsError``. Its ``temporary`` flag is
the only way code tells a failure worth retrying (a host unreachable, a network timeout, a health
check that failed because someone stopped the container) from one that stays until somebody changes
something (a refused spec, a name taken by an unmanaged container, an invalid ref). The loop retries
temporary failures on the next pass and holds permanent ones against the commit.

Docker's answers are mapped here by status code, never by matching their text: 404 is ``NotFound``,
409 is ``Conflict``. Only gitops.hosts imports docker; the engine sees these classes.
"""

from __future__ import annotations


class GitopsError(Exception):
    """Root of gitops' errors. ``temporary``: retrying later may help, with nothing changed by anyone."""

    temporary: bool = False

    def __init__(self, message: str, *, temporary: bool | None = None) -> None:
        super().__init__(message)
        if temporary is not None:
            self.temporary = temporary


class HostError(GitopsError):
    """A call to a Docker host failed. The message starts with the host's name."""

    def __init__(self, host: str, message: str, *, temporary: bool = False) -> None:
        super().__init__(f"{host}: {message}", temporary=temporary)
        self.host = host


class HostUnreachable(HostError):
    """The host did not answer (connection refused, timeout, TLS or ssh failure)."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(host, message, temporary=True)


class NotFound(HostError):
    """Docker answered 404: the container, image, network or volume does not exist (any more)."""


class Conflict(HostError):
    """Docker answered 409: a name is taken, or the object is in a state that refuses the call."""


class NameConflict(HostError):
    """The name gitops needs belongs to an object it does not manage (permanent until someone acts)."""
