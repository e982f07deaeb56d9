"""Errors the server answers with a Kubernetes ``Status`` object, with upstream reasons and messages.

:class:`ApiError` carries the HTTP code; the helpers build the 400, 404, 409 and 422 answers the REST verbs,
selectors, patches and admission raise.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.cluster.apiserver.resources import Obj, Resource


class ApiError(Exception):
    """An error the server answers with a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        """Keep the HTTP ``code``, the Status ``reason``, ``message`` and optional ``details``."""
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        """Return the ``Status`` body."""
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def status_details(res: Resource, name: str | None) -> Obj:
    """The ``details`` of a Status about one object (or a whole resource when ``name`` is empty)."""
    details: Obj = {"kind": res.plural}
    if name:
        details["name"] = name
    if res.group:
        details["group"] = res.group
    return details


def not_found(res: Resource, name: str) -> ApiError:
    """``pods "x" not found``."""
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', status_details(res, name))


def conflict(res: Resource, name: str) -> ApiError:
    """The optimistic-concurrency conflict of an update carrying a stale ``resourceVersion``."""
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    status_details(res, name))


def bad_request(message: str) -> ApiError:
    """A 400 ``BadRequest``."""
    return ApiError(400, "BadRequest", message)


@dataclass(frozen=True)
class Cause:
    """One field error of an ``Invalid`` answer."""

    reason: str
    field: str
    message: str


def invalid(kind: str, name: str, causes: list[Cause]) -> ApiError:
    """``Pod "x" is invalid: <field>: <message>`` (several causes in brackets, as upstream)."""
    texts = [f"{c.field}: {c.message}" for c in causes]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = {"name": name, "kind": kind,
               "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes]}
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {joined}', details)
