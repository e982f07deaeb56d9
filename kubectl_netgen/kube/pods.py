"""What a capture asks of a pod: reading it, adding an ephemeral container, following its log."""


from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from kubectl_netgen.errors import (
    ClusterError,
    ForbiddenError,
    NotFoundError,
    PodSecurityError,
    UnsupportedError,
)
from kubectl_netgen.kube.client import (
    Cluster,
    Obj,
    Resource,
    _api_error,
    _converted,
    _server_message,
)

EPHEMERAL = Resource("Pod", "v1", "pods/ephemeralcontainers", True)
POD_LOG = Resource("Pod", "v1", "pods/log", True)
POD = Resource("Pod", "v1", "pods", True)
CAPTURE_HINT = "ask your cluster admin for it"


class LogStream:
    """A followed container log: iterate for chunks of bytes; :meth:`close` ends it from another thread."""

    def __init__(self, response: Any) -> None:
        """Wrap a streaming ``urllib3`` response."""
        self._response = response
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        """Chunks as the server sends them, until the log ends or :meth:`close` is called."""
        from urllib3.exceptions import HTTPError

        try:
            yield from self._response.stream(65536, decode_content=False)
        except (HTTPError, OSError, ValueError, AttributeError):
            # Closed under our feet (close() from another thread) or the connection dropped: the log ends here.
            return
        finally:
            self._response.release_conn()

    def close(self) -> None:
        """Stop reading: unblock a reader waiting for data (safe from another thread, idempotent)."""
        if self.closed:
            return
        self.closed = True
        shutdown = getattr(self._response, "shutdown", None)
        try:
            if shutdown is not None:
                shutdown()
            else:
                self._response.close()
        except (OSError, ValueError, RuntimeError):  # RuntimeError: already released (the log had ended)
            pass


def _capture_api_error(e: Any, server: str, res: Resource, verb: str, namespace: str, pod: str) -> ClusterError:
    """A refused capture request, in words: RBAC, Pod Security, no ephemeral containers, pod gone."""
    message = _server_message(e)
    if e.status == 403 and "violates PodSecurity" in message:
        level = re.search(r'PodSecurity "(\w+)', message)
        name = level.group(1) if level else "restricted"
        return PodSecurityError(f'namespace "{namespace}" enforces Pod Security "{name}": {message}', name)
    if e.status == 404:
        if f'"{pod}" not found' in message:
            return NotFoundError(f'pod "{pod}" not found in namespace "{namespace}" (deleted?)')
        if res is EPHEMERAL:
            return UnsupportedError(f"the API server at {server} does not serve pods/ephemeralcontainers: "
                                    "ephemeral containers need Kubernetes >= 1.23")
    if e.status == 422 and res is EPHEMERAL:
        return UnsupportedError(f'pod "{pod}" cannot take an ephemeral container: {message}')
    error = _api_error(e, server, res, verb, namespace)
    if isinstance(error, ForbiddenError):
        return ForbiddenError(error.message.replace("ask your cluster admin or use --cluster FILE", CAPTURE_HINT))
    return error


def _patch_request(cluster: Cluster, path: str, body: Obj, res: Resource, namespace: str, pod: str) -> Obj:
    from kubernetes.client.exceptions import ApiException

    with _converted(cluster.server, res, "patch", namespace, cluster.request_timeout):
        try:  # never retried: a PATCH that reached the server may have added the container
            response = cluster.api.call_api(
                path, "PATCH", body=body,
                header_params={"Accept": "application/json",
                               "Content-Type": "application/strategic-merge-patch+json"},
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                _request_timeout=cluster.call_timeout)
        except ApiException as e:
            raise _capture_api_error(e, cluster.server, res, "patch", namespace, pod) from e
        data = response.data
    try:
        document = json.loads(data)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def get_object(cluster: Cluster, api_version: str, plural: str, namespace: str, name: str) -> Obj:
    """Read one namespaced object.

    Raises:
        NotFoundError: There is no such object (the message names it and the namespace).
        ClusterError: The request failed (ForbiddenError names the missing permission).
    """
    res = Resource(plural, api_version, plural, True)
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    try:
        return cluster._request(f"{prefix}/namespaces/{namespace}/{plural}/{name}", [], res, "get", namespace)
    except ForbiddenError as e:
        raise ForbiddenError(e.message.replace("ask your cluster admin or use --cluster FILE", CAPTURE_HINT)) from e
    except NotFoundError as e:
        raise NotFoundError(f'{plural} "{name}" not found in namespace "{namespace}"') from e


def list_objects(cluster: Cluster, api_version: str, plural: str, namespace: str | None,
                 label_selector: str | None = None) -> list[Obj]:
    """List a namespaced kind (``namespace=None``: all namespaces), optionally by label selector.

    Raises:
        ClusterError: The request failed (ForbiddenError names the missing permission).
    """
    res = Resource(plural, api_version, plural, True)
    query: list[tuple[str, Any]] = [("labelSelector", label_selector)] if label_selector else []
    try:
        return list(cluster._list(res, namespace, query))
    except ForbiddenError as e:
        raise ForbiddenError(e.message.replace("ask your cluster admin or use --cluster FILE", CAPTURE_HINT)) from e


def read_pod(cluster: Cluster, namespace: str, name: str) -> Obj | None:
    """The pod as the API has it now, or ``None`` when it is gone.

    Raises:
        ClusterError: The request failed otherwise.
    """
    try:
        return cluster._request(f"/api/v1/namespaces/{namespace}/pods/{name}", [], POD, "get", namespace)
    except NotFoundError:
        return None


def add_ephemeral_container(cluster: Cluster, namespace: str, pod: str, container: Obj) -> Obj:
    """Add an ephemeral container to a running pod (``patch`` on ``pods/ephemeralcontainers``); nothing restarts.

    Returns:
        The pod as the API returned it.

    Raises:
        ForbiddenError: RBAC refused (the message names ``patch`` on ``pods/ephemeralcontainers``);
            PodSecurityError: the namespace's Pod Security level refused the container.
        UnsupportedError: The cluster has no ephemeral containers, or the pod cannot take one.
        NotFoundError: The pod is gone.
        ClusterError: Any other failure.
    """
    body = {"spec": {"ephemeralContainers": [container]}}
    return _patch_request(cluster, f"/api/v1/namespaces/{namespace}/pods/{pod}/ephemeralcontainers", body,
                          EPHEMERAL, namespace, pod)


def follow_log(cluster: Cluster, namespace: str, pod: str, container: str) -> LogStream:
    """Open the followed log of a container (``get`` on ``pods/log``, ``follow=true``).

    Raises:
        ClusterError: The log cannot be opened: ``BadRequest`` while the container is still waiting
            (the message says why), ForbiddenError (RBAC), NotFoundError (the pod is gone).
    """
    from kubernetes.client.exceptions import ApiException

    with _converted(cluster.server, POD_LOG, "get", namespace, cluster.request_timeout):
        try:  # long by design: a bounded connect, a read left open
            response = cluster.api.call_api(
                f"/api/v1/namespaces/{namespace}/pods/{pod}/log", "GET",
                query_params=[("container", container), ("follow", "true")],
                header_params={"Accept": "*/*"}, auth_settings=["BearerToken"], _preload_content=False,
                _return_http_data_only=True, _request_timeout=cluster.stream_timeout)
        except ApiException as e:
            raise _capture_api_error(e, cluster.server, POD_LOG, "get", namespace, pod) from e
    return LogStream(response)


# ----------------------------------------------------------------------------- writing objects (contracts, baseline)
