"""Writing to the cluster: namespaces listed by label, objects applied and deleted (``contracts``)."""


from __future__ import annotations

import json
from typing import Any

from kubectl_netgen.errors import (
    ForbiddenError,
    InputError,
    NotFoundError,
)
from kubectl_netgen.kube.client import (
    POLICY_RESOURCES,
    Cluster,
    Obj,
    Resource,
    _converted,
    _typed,
)
from kubectl_netgen.kube.pods import POD

NAMESPACE = Resource("Namespace", "v1", "namespaces", False)
WRITABLE: dict[str, Resource] = {
    "NetworkPolicy": POLICY_RESOURCES[0],
    "Pod": POD,
}
"""The kinds netgen creates, updates and deletes: its policies and its test pods."""
WRITE_HINT = "ask your cluster admin for it"


def list_namespaces(cluster: Cluster, label_selector: str | None = None) -> list[str]:
    """The names of the namespaces (optionally those matching a label selector), sorted.

    Raises:
        ClusterError: The request failed (ForbiddenError names ``list`` on ``namespaces``).
    """
    query: list[tuple[str, Any]] = [("labelSelector", label_selector)] if label_selector else []
    try:
        items = list(cluster._list(NAMESPACE, None, query))
    except ForbiddenError as e:
        raise ForbiddenError(e.message.replace("ask your cluster admin or use --cluster FILE",
                                               "ask your cluster admin for it, or name the namespace with -n")
                             ) from e
    return sorted(str((item.get("metadata") or {}).get("name")) for item in items)


def _writable(obj: Obj) -> Resource:
    res = WRITABLE.get(str(obj.get("kind")))
    if res is None or obj.get("apiVersion") != res.api_version:
        raise InputError(f"netgen does not write {obj.get('apiVersion')} {obj.get('kind')} objects")
    return res


def _object_path(res: Resource, namespace: str, name: str | None = None) -> str:
    return res.path(namespace) + (f"/{name}" if name else "")


def _write(cluster: Cluster, method: str, path: str, body: Obj | None, res: Resource, verb: str, namespace: str,
           dry_run: bool) -> Obj:
    """Send one write (POST, PUT, DELETE); ``dry_run`` asks the server to check it without persisting it."""
    query: list[tuple[str, Any]] = [("dryRun", "All")] if dry_run else []
    try:
        with _converted(cluster.server, res, verb, namespace, cluster.request_timeout):
            response = cluster.api.call_api(
                path, method, query_params=query, body=body,
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                _request_timeout=cluster.call_timeout)
            data = response.data
    except ForbiddenError as e:
        raise ForbiddenError(e.message.replace("ask your cluster admin or use --cluster FILE", WRITE_HINT)) from e
    try:
        document = json.loads(data)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _contains(have: Any, want: Any) -> bool:
    """Whether ``have`` (as the server keeps it, with defaults filled in) says everything ``want`` says."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_contains(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(_contains, have, want))
    return bool(have == want)


def apply_object(cluster: Cluster, obj: Obj, dry_run: bool = False) -> str:
    """Create an object, or bring an existing one of the same name up to date (as ``kubectl apply`` does).

    Reads the object first: absent, it is created (``POST``); present and already saying everything ``obj``
    says (labels, annotations, spec), it is left alone; otherwise its labels, annotations and spec are
    replaced (``PUT`` with its ``resourceVersion``, so a concurrent change is a conflict, not lost).

    Args:
        cluster: The cluster.
        obj: A NetworkPolicy or Pod manifest with ``metadata.namespace``.
        dry_run: Send the write with ``dryRun=All``: the server checks and admits it but persists nothing.

    Returns:
        ``created``, ``configured`` or ``unchanged``.

    Raises:
        ForbiddenError: RBAC refused (the message names the verb and resource to grant).
        ClusterError: Any other failure (e.g. the server rejected the object: its message is kept).
    """
    res = _writable(obj)
    meta = obj["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    try:
        current = cluster._request(_object_path(res, namespace, name), [], res, "get", namespace)
    except ForbiddenError as e:
        raise ForbiddenError(e.message.replace("ask your cluster admin or use --cluster FILE", WRITE_HINT)) from e
    except NotFoundError:
        _write(cluster, "POST", _object_path(res, namespace), obj, res, "create", namespace, dry_run)
        return "created"
    want_meta = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    if _contains(current, {"metadata": want_meta, "spec": obj.get("spec")}):
        return "unchanged"
    updated = dict(current)
    updated["metadata"] = {**current.get("metadata", {}), **want_meta}
    updated["spec"] = obj.get("spec")
    _write(cluster, "PUT", _object_path(res, namespace, name), updated, res, "update", namespace, dry_run)
    return "configured"


def delete_object(cluster: Cluster, obj: Obj, dry_run: bool = False) -> bool:
    """Delete an object named by a manifest (its kind, namespace and name).

    Returns:
        ``False`` when it was already gone.

    Raises:
        ForbiddenError: RBAC refused (the message names ``delete`` on the resource).
        ClusterError: Any other failure.
    """
    res = _writable(obj)
    namespace, name = str(obj["metadata"]["namespace"]), str(obj["metadata"]["name"])
    try:
        _write(cluster, "DELETE", _object_path(res, namespace, name), None, res, "delete", namespace, dry_run)
    except NotFoundError:
        return False
    return True


def list_managed(cluster: Cluster, kind: str, namespace: str, label_selector: str) -> list[Obj]:
    """The objects of a kind netgen writes, in one namespace, that match a label selector (typed manifests).

    Raises:
        ClusterError: The request failed (ForbiddenError names ``list`` on the resource).
    """
    res = WRITABLE[kind]
    try:
        items = list(cluster._list(res, namespace, [("labelSelector", label_selector)]))
    except ForbiddenError as e:
        raise ForbiddenError(e.message.replace("ask your cluster admin or use --cluster FILE", WRITE_HINT)) from e
    return [_typed(res, item) for item in items]
