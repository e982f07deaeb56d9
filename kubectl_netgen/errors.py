"""The errors kubectl-netgen raises on purpose, and the exit codes they map to.

Every failure a user can cause or meet (a bad file, a refused API call, …) is a
:class:`NetgenError` subclass carrying its exit code; only ``cli.py`` turns them
into a message and an exit status. Anything else escaping is a bug (exit 1).
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit codes of ``kubectl netgen``, as documented in the README."""

    OK = 0
    """Success (a truncated capture that was read up to its damage still counts)."""
    ERROR = 1
    """An unexpected internal error: a bug, reported with ``--debug`` for a traceback."""
    USAGE = 2
    """The command line is wrong: unknown option, missing argument, bad value."""
    INPUT = 3
    """An input cannot be used: missing or unreadable file, not a capture at all."""
    DECODE = 4
    """A capture is damaged (truncated or corrupt) and ``--strict`` was given."""
    CLUSTER = 5
    """The cluster cannot be reached or used: no kubeconfig, unreachable API server, bad credentials."""
    FORBIDDEN = 6
    """The API server refused a request (RBAC): the message names the verb and resource to grant."""
    NOT_FOUND = 7
    """Something asked for is not in the cluster (e.g. the namespace given with ``-n``)."""
    CAPTURE_PARTIAL = 8
    """``capture``: some pods were captured, others failed (each failure was reported on its own line)."""
    CAPTURE_FAILED = 9
    """``capture``: no pod could be captured (each failure was reported on its own line)."""
    DENIED = 10
    """``verify``: the policies would deny some observed flows (the flows are printed; usable as a CI gate)."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C (SIGINT), as shells report it."""


class NetgenError(Exception):
    """Base of every error kubectl-netgen reports to the user as one line."""

    exit_code: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str) -> None:
        """Keep the one-line, human-readable message."""
        super().__init__(message)
        self.message = message


class InputError(NetgenError):
    """An input file or argument cannot be used as given."""

    exit_code = ExitStatus.INPUT


class DecodeError(NetgenError):
    """A capture is damaged; raised for damage only when the user asked for ``--strict``."""

    exit_code = ExitStatus.DECODE


class ClusterError(NetgenError):
    """The cluster cannot be reached or used (kubeconfig, connection, credentials, server errors)."""

    exit_code = ExitStatus.CLUSTER


class ForbiddenError(ClusterError):
    """The API server refused a request for lack of an RBAC permission."""

    exit_code = ExitStatus.FORBIDDEN


class NotFoundError(ClusterError):
    """An object that was asked for by name does not exist in the cluster."""

    exit_code = ExitStatus.NOT_FOUND


class PodSecurityError(ForbiddenError):
    """Pod Security admission refused a container: the namespace's level forbids what it asks for."""

    def __init__(self, message: str, level: str) -> None:
        """Keep the message and the enforced level (``baseline``, ``restricted``)."""
        super().__init__(message)
        self.level = level


class UnsupportedError(ClusterError):
    """The cluster or the pod cannot do what is asked (e.g. ephemeral containers)."""


def cut(text: str, limit: int = 200) -> str:
    """Shorten ``text`` (e.g. a server payload) to ``limit`` characters for one-line messages."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
