"""The live cluster, read through the official ``kubernetes`` client: the only module that imports it.

:func:`connect` finds the cluster as kubectl does (``--kubeconfig``, else ``KUBECONFIG``, else
``~/.kube/config``, else the in-cluster service account) and :meth:`Cluster.snapshot` lists the kinds a
cluster snapshot holds into the same ``v1 List`` that ``kubectl get … -o json`` prints: the API's own
JSON (camelCase, read raw so nothing is lost or renamed by the client's models), each item with its
``apiVersion`` and ``kind``, sorted by kind, namespace and name so the same cluster gives the same bytes.

``kubernetes`` costs about a second to import, so it is imported inside the functions that use it; the
CLI's ``--help`` never pays for it. Client exceptions become :class:`~kubectl_netgen.errors.ClusterError`
and its subclasses here, with server payloads cut short.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubectl_netgen.errors import (
    ClusterError,
    ForbiddenError,
    InputError,
    NotFoundError,
    PodSecurityError,
    UnsupportedError,
    cut,
)

Warn = Callable[[str], None]
Obj = dict[str, Any]

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
PAGE_SIZE = 500
TIMEOUT = (10, 120)
"""(connect, read) seconds for each API request."""


@dataclass(frozen=True)
class Resource:
    """A resource type a snapshot lists."""

    kind: str
    api_version: str
    """``v1`` or ``<group>/<version>``."""
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        """The API group (``""`` for the core group)."""
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str | None) -> str:
        """The list URL, in ``namespace`` or across all namespaces (``None``)."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        scope = f"/namespaces/{namespace}" if namespace is not None and self.namespaced else ""
        return f"{prefix}{scope}/{self.plural}"


RESOURCES: tuple[Resource, ...] = (
    Resource("Namespace", "v1", "namespaces", False),
    Resource("Pod", "v1", "pods", True),
    Resource("Service", "v1", "services", True),
    Resource("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", True),
    Resource("Node", "v1", "nodes", False),
    Resource("ReplicaSet", "apps/v1", "replicasets", True),
    Resource("Deployment", "apps/v1", "deployments", True),
    Resource("StatefulSet", "apps/v1", "statefulsets", True),
    Resource("DaemonSet", "apps/v1", "daemonsets", True),
    Resource("Job", "batch/v1", "jobs", True),
    Resource("CronJob", "batch/v1", "cronjobs", True),
)
"""What a snapshot holds, in the order of ``kubectl get namespaces,pods,services,…``."""

_ORDER = {r.kind: i for i, r in enumerate(RESOURCES)}

POLICY_RESOURCES: tuple[Resource, ...] = (
    Resource("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", True),
    Resource("AdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1", "adminnetworkpolicies", False),
    Resource("BaselineAdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1", "baselineadminnetworkpolicies", False),
)
"""The policies a cluster applies: NetworkPolicies, and the Network Policy API's tiers where installed."""


@dataclass(frozen=True)
class Cluster:
    """A connection to a cluster's API server."""

    api: Any
    """A ``kubernetes.client.ApiClient``."""
    server: str
    """The API server URL (for messages)."""
    namespace: str
    """The namespace of the kubeconfig context (``default`` if it names none)."""

    def snapshot(self, namespace: str | None, warn: Warn) -> Obj:
        """List every snapshot kind into a ``v1 List``.

        Args:
            namespace: Restrict namespaced kinds (and the Namespace list) to this namespace; ``None``
                reads all namespaces. Nodes are cluster-scoped and always read.
            warn: Told about kinds the server does not serve (they are left out).

        Returns:
            The ``v1 List``, items sorted by kind (as :data:`RESOURCES`), namespace and name.

        Raises:
            ClusterError: The server cannot be reached or refuses (ForbiddenError: RBAC), or
                NotFoundError: ``namespace`` does not exist.
        """
        items: list[Obj] = []
        for res in RESOURCES:
            if res.kind == "Namespace" and namespace is not None:
                obj = self._get(res, f"/api/v1/namespaces/{namespace}", namespace)
                items.append(_typed(res, obj))
                continue
            try:
                items.extend(_typed(res, obj) for obj in self._list(res, namespace))
            except NotFoundError:
                warn(f"the API server does not serve {res.api_version} {res.plural}: "
                     f"{res.kind}s are left out of the snapshot")
        items.sort(key=_sort_key)
        return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}

    def policies(self, warn: Warn) -> list[Obj]:
        """Every policy applied in the cluster, as manifests.

        NetworkPolicies in all namespaces, and the tiered policies of the Network Policy API when their
        CRDs are installed (none otherwise).

        Raises:
            ClusterError: The server cannot be reached or refuses (ForbiddenError: RBAC).
        """
        items: list[Obj] = []
        for res in POLICY_RESOURCES:
            try:
                items.extend(_typed(res, obj) for obj in self._list(res, None))
            except NotFoundError:
                if res.kind == "NetworkPolicy":
                    warn("the API server does not serve networking.k8s.io/v1 networkpolicies")
        return items

    def close(self) -> None:
        """Release the client's connections."""
        self.api.close()

    def _list(self, res: Resource, namespace: str | None) -> Iterator[Obj]:
        query: list[tuple[str, Any]] = [("limit", PAGE_SIZE)]
        while True:
            page = self._request(res.path(namespace), query, res, "list", namespace)
            yield from page.get("items") or ()
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            query = [("limit", PAGE_SIZE), ("continue", token)]

    def _get(self, res: Resource, path: str, name: str) -> Obj:
        try:
            return self._request(path, [], res, "get", None)
        except NotFoundError as e:
            raise NotFoundError(f'namespace "{name}" not found; check the name (kubectl get namespaces) '
                                "or use -A for all namespaces") from e

    def _request(self, path: str, query: list[tuple[str, Any]], res: Resource, verb: str,
                 namespace: str | None) -> Obj:
        with _converted(self.server, res, verb, namespace):
            response = self.api.call_api(
                path, "GET", query_params=query, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                _request_timeout=TIMEOUT,
            )
            data = response.data
        try:
            document = json.loads(data)
        except ValueError as e:
            raise ClusterError(f"the API server at {self.server} answered GET {path} with something that is not "
                               f"JSON: {cut(data.decode('utf-8', 'replace'))}") from e
        if not isinstance(document, dict):
            raise ClusterError(f"the API server at {self.server} answered GET {path} with JSON that is not an object")
        return document


def _typed(res: Resource, obj: Obj) -> Obj:
    """The item with ``apiVersion`` and ``kind`` first, as ``kubectl get -o json`` prints list items."""
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": res.api_version, "kind": res.kind, **rest}


def _sort_key(item: Obj) -> tuple[int, str, str]:
    meta = item.get("metadata") or {}
    return _ORDER[item["kind"]], str(meta.get("namespace") or ""), str(meta.get("name") or "")


@contextmanager
def _converted(server: str, res: Resource, verb: str, namespace: str | None) -> Iterator[None]:
    """Turn client and connection exceptions into our errors."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError, MaxRetryError

    try:
        yield
    except ApiException as e:
        raise _api_error(e, server, res, verb, namespace) from e
    except MaxRetryError as e:
        raise ClusterError(f"cannot reach the API server at {server}: {cut(str(e.reason or e))}") from e
    except (HTTPError, OSError) as e:
        raise ClusterError(f"cannot reach the API server at {server}: {cut(str(e))}") from e


def _server_message(e: Any) -> str:
    """The ``message`` of the ``Status`` a server answered with, else its raw body or reason."""
    body = e.body.decode("utf-8", "replace") if isinstance(e.body, bytes) else (e.body or "")
    try:
        status = json.loads(body)
        if isinstance(status, dict) and isinstance(status.get("message"), str):
            return cut(status["message"])
    except ValueError:
        pass
    return cut(body.strip() or str(e.reason or ""))


def _api_error(e: Any, server: str, res: Resource, verb: str, namespace: str | None) -> ClusterError:
    if e.status == 401:
        return ClusterError(f"unauthorized: check your kubeconfig credentials (the API server at {server} "
                            f"said: {_server_message(e)})")
    if e.status == 403:
        target = res.plural if res.group == "" else f"{res.plural}.{res.group}"
        where = f'in namespace "{namespace}"' if namespace is not None and res.namespaced else (
            "in all namespaces" if res.namespaced else "(cluster-scoped)")
        group = f' in API group "{res.group}"' if res.group else ""
        scope = "" if namespace is not None and res.namespaced else " with a ClusterRole"
        return ForbiddenError(f'forbidden: cannot {verb} {target} {where} (RBAC: grant verb "{verb}" on resource '
                              f'"{res.plural}"{group}{scope}); ask your cluster admin or use --cluster FILE')
    if e.status == 404:
        return NotFoundError(f"not found: {res.api_version} {res.plural} ({_server_message(e)})")
    return ClusterError(f"the API server at {server} answered {e.status} {e.reason or ''} to {verb} {res.plural}: "
                        f"{_server_message(e)}".replace("  ", " "))


# ----------------------------------------------------------------------------- finding the cluster


def _kubeconfig_path(kubeconfig: str | None) -> str | None:
    """The kubeconfig file(s) to load, ``os.pathsep``-joined, or ``None`` when there is none."""
    if kubeconfig:
        if not Path(kubeconfig).is_file():
            raise InputError(f"{kubeconfig}: no such kubeconfig file; give --kubeconfig the path of a kubeconfig")
        return kubeconfig
    env = os.environ.get("KUBECONFIG", "")
    existing = [p for p in env.split(os.pathsep) if p and Path(p).expanduser().is_file()]
    if existing:
        return os.pathsep.join(existing)
    default = Path("~/.kube/config").expanduser()
    return str(default) if default.is_file() else None


def connect(kubeconfig: str | None, context: str | None) -> Cluster:
    """Connect to the cluster as kubectl would.

    Args:
        kubeconfig: A kubeconfig file; ``None`` uses ``KUBECONFIG``, else ``~/.kube/config``, else the
            in-cluster service account.
        context: A kubeconfig context; ``None`` uses the current one.

    Returns:
        The cluster (no request is made yet).

    Raises:
        InputError: ``kubeconfig`` does not exist.
        ClusterError: No configuration is found, or it cannot be used (unknown context, bad file).
    """
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = _kubeconfig_path(kubeconfig)
    if path is None:
        if context:
            raise ClusterError(f"no kubeconfig found for --context {context}: set KUBECONFIG or use --kubeconfig")
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as e:
            raise ClusterError("no kubeconfig found (KUBECONFIG, ~/.kube/config) and not running in a pod: "
                               "use --kubeconfig FILE, or --cluster FILE with a snapshot") from e
        try:
            namespace = Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or "default"
        except OSError:
            namespace = "default"
        return Cluster(client.ApiClient(configuration), str(configuration.host), namespace)
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
        chosen = current if context is None else next((c for c in contexts if c.get("name") == context), None)
        if chosen is None:
            names = ", ".join(sorted(str(c.get("name")) for c in contexts)) or "none"
            raise ClusterError(f"no context {context!r} in the kubeconfig {path} (contexts: {names})")
        api = config.new_client_from_config(config_file=path, context=context, persist_config=False)
    except ConfigException as e:
        raise ClusterError(f"cannot use the kubeconfig {path}: {cut(str(e))}") from e
    except (OSError, ValueError) as e:  # unreadable file, YAML that is not a kubeconfig
        raise ClusterError(f"cannot read the kubeconfig {path}: {cut(str(e))}") from e
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return Cluster(api, str(api.configuration.host), str(namespace))


def snapshot(kubeconfig: str | None, context: str | None, namespace: str | None,
             warn: Warn = lambda _: None) -> Obj:
    """Read the cluster into a ``v1 List`` (see :meth:`Cluster.snapshot`; ``namespace=None``: all).

    Raises:
        InputError: ``kubeconfig`` does not exist.
        ClusterError: See :func:`connect` and :meth:`Cluster.snapshot`.
    """
    cluster = connect(kubeconfig, context)
    try:
        return cluster.snapshot(namespace, warn)
    finally:
        cluster.close()


# ----------------------------------------------------------------------------- capturing pods

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

    with _converted(cluster.server, res, "patch", namespace):
        try:
            response = cluster.api.call_api(
                path, "PATCH", body=body,
                header_params={"Accept": "application/json",
                               "Content-Type": "application/strategic-merge-patch+json"},
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                _request_timeout=TIMEOUT)
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
        document = cluster._request(res.path(namespace), query, res, "list", namespace)
    except ForbiddenError as e:
        raise ForbiddenError(e.message.replace("ask your cluster admin or use --cluster FILE", CAPTURE_HINT)) from e
    return list(document.get("items") or [])


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

    with _converted(cluster.server, POD_LOG, "get", namespace):
        try:
            response = cluster.api.call_api(
                f"/api/v1/namespaces/{namespace}/pods/{pod}/log", "GET",
                query_params=[("container", container), ("follow", "true")],
                header_params={"Accept": "*/*"}, auth_settings=["BearerToken"], _preload_content=False,
                _return_http_data_only=True, _request_timeout=(TIMEOUT[0], None))
        except ApiException as e:
            raise _capture_api_error(e, cluster.server, POD_LOG, "get", namespace, pod) from e
    return LogStream(response)


def merge_snapshots(start: Obj, end: Obj) -> Obj:
    """One ``v1 List`` of two snapshots: every object of ``end``, plus those of ``start`` gone since.

    Pods that came and went during a capture are thus known to ``generate``.
    """
    def key(item: Obj) -> tuple[str, str, str]:
        meta = item.get("metadata") or {}
        return str(item.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name") or "")

    merged = {key(item): item for item in start.get("items") or []}
    merged.update({key(item): item for item in end.get("items") or []})
    items = sorted(merged.values(), key=_sort_key)
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


# ----------------------------------------------------------------------------- writing objects (contracts, baseline)

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
    query: list[tuple[str, Any]] = [("limit", PAGE_SIZE)]
    if label_selector:
        query.append(("labelSelector", label_selector))
    names: list[str] = []
    while True:
        try:
            page = cluster._request(NAMESPACE.path(None), query, NAMESPACE, "list", None)
        except ForbiddenError as e:
            raise ForbiddenError(e.message.replace("ask your cluster admin or use --cluster FILE",
                                                   "ask your cluster admin for it, or name the namespace with -n")
                                 ) from e
        names += [str((item.get("metadata") or {}).get("name")) for item in page.get("items") or ()]
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return sorted(names)
        query = [q for q in query if q[0] != "continue"] + [("continue", token)]


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
        with _converted(cluster.server, res, verb, namespace):
            response = cluster.api.call_api(
                path, method, query_params=query, body=body,
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                _request_timeout=TIMEOUT)
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
        page = cluster._request(res.path(namespace), [("labelSelector", label_selector)], res, "list", namespace)
    except ForbiddenError as e:
        raise ForbiddenError(e.message.replace("ask your cluster admin or use --cluster FILE", WRITE_HINT)) from e
    return [_typed(res, item) for item in page.get("items") or ()]
