"""What the user may do, asked before doing it, and how many requests a capture sends at a time.

:func:`missing_permissions` asks the API server with one SelfSubjectAccessReview per permission, the
way ``kubectl auth can-i`` does, so a capture can name every permission it lacks in one message before
it changes anything. :func:`bounded` gives a cluster whose API client sends at most N requests at once
(the capture's ``--parallel``) while long streams (followed logs, the pod watch) stay open beside them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from kubectl_netgen.errors import ClusterError, NotFoundError
from kubectl_netgen.kube.client import Cluster, Resource, _converted

_REVIEWS = Resource("SelfSubjectAccessReview", "authorization.k8s.io/v1", "selfsubjectaccessreviews", False)


@dataclass(frozen=True)
class Permission:
    """One verb on one resource, in a namespace or cluster-wide, as RBAC rules name them."""

    verb: str
    resource: str
    """The plural (``pods``, ``endpointslices``)."""
    group: str = ""
    """The API group; ``""`` for the core group."""
    subresource: str = ""
    namespace: str | None = None
    """``None``: in every namespace, or cluster-scoped."""

    def __str__(self) -> str:
        """``patch pods/ephemeralcontainers in namespace "shop"``, ``list nodes (cluster-wide)``."""
        name = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        if self.group:
            name += f".{self.group}"
        where = f'in namespace "{self.namespace}"' if self.namespace is not None else "cluster-wide"
        return f"{self.verb} {name} {where}"


def missing_permissions(cluster: Cluster, wanted: Sequence[Permission]) -> list[Permission] | None:
    """The ``wanted`` permissions the user lacks, in the order given.

    Returns:
        The missing ones (empty: all granted); ``None`` when the server has no SelfSubjectAccessReview
        (then the requests themselves will say what is refused).

    Raises:
        ClusterError: The server cannot be reached, or refuses the reviews themselves.
    """
    missing = []
    for permission in wanted:
        attributes: dict[str, Any] = {"verb": permission.verb, "resource": permission.resource,
                                      "group": permission.group}
        if permission.subresource:
            attributes["subresource"] = permission.subresource
        if permission.namespace is not None:
            attributes["namespace"] = permission.namespace
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes}}
        try:
            with _converted(cluster.server, _REVIEWS, "create", None, cluster.request_timeout):
                response = cluster.api.call_api(
                    f"/apis/{_REVIEWS.api_version}/{_REVIEWS.plural}", "POST", body=body,
                    header_params={"Accept": "application/json", "Content-Type": "application/json"},
                    auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                    _request_timeout=cluster.call_timeout)
                answer = json.loads(response.data)
        except NotFoundError:
            return None
        except ValueError as e:
            raise ClusterError(f"the API server at {cluster.server} answered a SelfSubjectAccessReview with "
                               "something that is not JSON") from e
        status = answer.get("status") if isinstance(answer, dict) else None
        if not isinstance(status, dict) or status.get("allowed") is not True:
            missing.append(permission)
    return missing


class _BoundedApi:
    """An ``ApiClient`` that lets at most ``calls`` requests wait for an answer at once.

    A streamed request (``_preload_content=False``) counts until its answer's headers arrive, so followed
    logs and watches do not hold a slot while they stream.
    """

    def __init__(self, api: Any, calls: int) -> None:
        self._api = api
        self._slots = threading.BoundedSemaphore(calls)

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        with self._slots:
            return self._api.call_api(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


def bounded(cluster: Cluster, calls: int, connections: int) -> Cluster:
    """The same cluster, sending at most ``calls`` requests at once, keeping up to ``connections`` open.

    ``connections`` should cover the streams that stay open (one log per pod, a watch) plus ``calls``:
    the client's default pool keeps 10, and drops (with a warning each time) what it cannot keep.
    """
    pool = getattr(getattr(cluster.api, "rest_client", None), "pool_manager", None)
    if pool is not None and isinstance(getattr(pool, "connection_pool_kw", None), dict):
        pool.connection_pool_kw["maxsize"] = max(int(pool.connection_pool_kw.get("maxsize") or 0), connections)
    return replace(cluster, api=_BoundedApi(cluster.api, calls))
