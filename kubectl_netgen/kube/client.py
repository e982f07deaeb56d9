"""Connecting to the live cluster and reading it: the snapshot and the applied policies.

:func:`connect` finds the cluster as kubectl does (``--kubeconfig``, else ``KUBECONFIG``, else
``~/.kube/config``, else the in-cluster service account) and :meth:`Cluster.snapshot` lists the kinds a
cluster snapshot holds into the same ``v1 List`` that ``kubectl get … -o json`` prints: the API's own
JSON (camelCase, read raw so nothing is lost or renamed by the client's models), each item with its
``apiVersion`` and ``kind``, sorted by kind, namespace and name so the same cluster gives the same bytes.

``kubernetes`` costs about a second to import, so it is imported inside the functions that use it; the
CLI's ``--help`` never pays for it. Client exceptions become :class:`~kubectl_netgen.errors.ClusterError`
and its subclasses here, with server payloads cut short.

Every request is bounded by the cluster's ``request_timeout`` (``--request-timeout``, default
:data:`DEFAULT_REQUEST_TIMEOUT`), so no call waits forever on a server that accepts and never answers;
followed logs bound only their connect (they are long by design). Reads (GET) are tried up to
:data:`READ_TRIES` times on ``429 Too Many Requests`` (waiting what ``Retry-After`` asks, at most
:data:`RETRY_BUDGET` seconds in all) and on a connection dropped without a reply; writes are never
retried here (urllib3's own retries are switched off, so a PUT or DELETE is not silently sent twice).
"""

from __future__ import annotations

import json
import os
import time
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
    cut,
)

Warn = Callable[[str], None]
Obj = dict[str, Any]

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
PAGE_SIZE = 500
"""Items per list request; longer lists are read in pages (``continue``)."""
DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds each API request may take unless ``--request-timeout`` says otherwise (kubectl's default is no
limit; a capture must not hang on a server that accepts and never answers)."""
READ_TRIES = 3
"""Tries of a read (GET) that was throttled (429) or whose connection dropped without a reply."""
RETRY_BUDGET = 10.0
"""Seconds a read may spend waiting between tries, in all (a longer ``Retry-After`` is not waited for)."""
DROP_BACKOFF = 0.5
"""Seconds before trying again a read whose connection dropped (doubled each time)."""
TIMEOUT = (10, 120)
"""(connect, read) seconds, for modules not yet on :attr:`Cluster.request_timeout` (use that instead)."""


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
    request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT
    """Seconds each request may take; ``None``: no limit (``--request-timeout 0``)."""

    @property
    def call_timeout(self) -> tuple[float | None, float | None]:
        """The (connect, read) timeout of one request, as ``_request_timeout`` takes it.

        A pair, because ``kubernetes.client.rest`` silently ignores a bare float (it honours an ``int`` or a pair).
        """
        return self.request_timeout, self.request_timeout

    @property
    def stream_timeout(self) -> tuple[float | None, None]:
        """The (connect, read) timeout of a followed log: a bounded connect, a read left open."""
        return self.request_timeout, None

    def snapshot(self, namespace: str | None, warn: Warn, refused: list[Resource] | None = None) -> Obj:
        """List every snapshot kind into a ``v1 List``.

        Args:
            namespace: Restrict namespaced kinds (and the Namespace list) to this namespace; ``None``
                reads all namespaces. Nodes are cluster-scoped and always read.
            warn: Told about kinds the server does not serve (they are left out).
            refused: When given, a kind RBAC refuses is left out and appended here instead of raising
                (a user bound to a namespace Role cannot read nodes or the namespace object).

        Returns:
            The ``v1 List``, items sorted by kind (as :data:`RESOURCES`), namespace and name.

        Raises:
            ClusterError: The server cannot be reached or refuses (ForbiddenError: RBAC), or
                NotFoundError: ``namespace`` does not exist.
        """
        items: list[Obj] = []
        for res in RESOURCES:
            try:
                if res.kind == "Namespace" and namespace is not None:
                    items.append(_typed(res, self._get(res, f"/api/v1/namespaces/{namespace}", namespace)))
                    continue
                items.extend(_typed(res, obj) for obj in self._list(res, namespace))
            except ForbiddenError:
                if refused is None:
                    raise
                refused.append(res)
            except NotFoundError:
                if res.kind == "Namespace":
                    raise
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

    def _list(self, res: Resource, namespace: str | None, query: list[tuple[str, Any]] | None = None) -> Iterator[Obj]:
        """Every item of a list request, read in pages of :data:`PAGE_SIZE` (``query``: e.g. a label selector)."""
        base = [*(query or []), ("limit", PAGE_SIZE)]
        page_query = base
        while True:
            page = self._request(res.path(namespace), page_query, res, "list", namespace)
            yield from page.get("items") or ()
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            page_query = [*base, ("continue", token)]

    def _get(self, res: Resource, path: str, name: str) -> Obj:
        try:
            return self._request(path, [], res, "get", None)
        except NotFoundError as e:
            raise NotFoundError(f'namespace "{name}" not found; check the name (kubectl get namespaces) '
                                "or use -A for all namespaces") from e

    def _request(self, path: str, query: list[tuple[str, Any]], res: Resource, verb: str,
                 namespace: str | None) -> Obj:
        """GET one JSON object, retried as the module docstring says."""
        data = self._read(path, query, res, verb, namespace)
        try:
            document = json.loads(data)
        except ValueError as e:
            raise ClusterError(f"the API server at {self.server} answered GET {path} with something that is not "
                               f"JSON: {cut(data.decode('utf-8', 'replace'))}") from e
        if not isinstance(document, dict):
            raise ClusterError(f"the API server at {self.server} answered GET {path} with JSON that is not an object")
        return document

    def _read(self, path: str, query: list[tuple[str, Any]], res: Resource, verb: str,
              namespace: str | None) -> bytes:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import ProtocolError

        waited = 0.0
        with _converted(self.server, res, verb, namespace, self.request_timeout):
            for attempt in range(1, READ_TRIES + 1):
                try:
                    response = self.api.call_api(
                        path, "GET", query_params=query, header_params={"Accept": "application/json"},
                        auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                        _request_timeout=self.call_timeout,
                    )
                    return bytes(response.data)
                except ApiException as e:
                    wait = _retry_after(e)
                    if wait is None or attempt == READ_TRIES or waited + wait > RETRY_BUDGET:
                        raise
                except ProtocolError:  # the connection was dropped without a reply
                    wait = DROP_BACKOFF * 2 ** (attempt - 1)
                    if attempt == READ_TRIES or waited + wait > RETRY_BUDGET:
                        raise
                time.sleep(wait)
                waited += wait
        raise AssertionError("unreachable: the last try returns or raises")


def _retry_after(e: Any) -> float | None:
    """Seconds a 429 answer asks to wait (``Retry-After``, 1 when absent or unreadable); ``None`` otherwise."""
    if e.status != 429:
        return None
    value = (e.headers or {}).get("Retry-After", "1")
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 1.0


def _typed(res: Resource, obj: Obj) -> Obj:
    """The item with ``apiVersion`` and ``kind`` first, as ``kubectl get -o json`` prints list items."""
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": res.api_version, "kind": res.kind, **rest}


def _sort_key(item: Obj) -> tuple[int, str, str]:
    meta = item.get("metadata") or {}
    return _ORDER[item["kind"]], str(meta.get("namespace") or ""), str(meta.get("name") or "")


def timeout_text(seconds: float | None) -> str:
    """``30s``, ``1.5s``: a timeout as ``--request-timeout`` takes it."""
    return "no limit" if seconds is None else f"{seconds:g}s"


@contextmanager
def _converted(server: str, res: Resource, verb: str, namespace: str | None,
               timeout: float | None = DEFAULT_REQUEST_TIMEOUT) -> Iterator[None]:
    """Turn client and connection exceptions into our errors (``timeout``: the request's, for the message)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    try:
        yield
    except ApiException as e:
        raise _api_error(e, server, res, verb, namespace) from e
    except NewConnectionError as e:  # a ConnectTimeoutError subclass in urllib3, but a refusal, not a timeout
        raise ClusterError(f"cannot reach the API server at {server}: {cut(str(e))}") from e
    except (Urllib3Timeout, TimeoutError) as e:
        raise ClusterError(f"the API server at {server} did not answer {verb} {res.plural} within "
                           f"{timeout_text(timeout)}: pass --request-timeout to wait longer (0: no limit)") from e
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
    if e.status == 429:
        after = (e.headers or {}).get("Retry-After")
        wait = f", Retry-After {after}s" if after else ""
        return ClusterError(f"the API server at {server} is throttling requests (429 Too Many Requests{wait}) to "
                            f"{verb} {res.plural}, still after {READ_TRIES} tries or more waiting than "
                            f"{RETRY_BUDGET:g}s: try again later")
    return ClusterError(f"the API server at {server} answered {e.status} {e.reason or ''} to {verb} {res.plural}: "
                        f"{_server_message(e)}".replace("  ", " "))


# ----------------------------------------------------------------------------- finding the cluster


def one_line_of(error: BaseException) -> str:
    """An exception's message on one line, cut short."""
    return cut(" ".join(str(error).split()))


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


def connect(kubeconfig: str | None, context: str | None,
            request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT) -> Cluster:
    """Connect to the cluster as kubectl would.

    Args:
        kubeconfig: A kubeconfig file; ``None`` uses ``KUBECONFIG``, else ``~/.kube/config``, else the
            in-cluster service account.
        context: A kubeconfig context; ``None`` uses the current one.
        request_timeout: Seconds each request may take (``None``: no limit).

    Returns:
        The cluster (no request is made yet).

    Raises:
        InputError: ``kubeconfig`` does not exist.
        ClusterError: No configuration is found, or it cannot be used (unknown context, bad file).
    """
    import yaml
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    path = _kubeconfig_path(kubeconfig)
    if path is None:
        if context:
            raise ClusterError(f"no kubeconfig found for --context {context}: set KUBECONFIG or use --kubeconfig")
        configuration = client.Configuration()
        configuration.retries = False  # reads are retried by Cluster._read, writes never
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as e:
            raise ClusterError("no kubeconfig found (KUBECONFIG, ~/.kube/config) and not running in a pod: "
                               "use --kubeconfig FILE, or --cluster FILE with a snapshot") from e
        try:
            namespace = Path(SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or "default"
        except OSError:
            namespace = "default"
        return Cluster(client.ApiClient(configuration), str(configuration.host), namespace, request_timeout)
    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
        chosen = current if context is None else next((c for c in contexts if c.get("name") == context), None)
        if chosen is None:
            names = ", ".join(sorted(str(c.get("name")) for c in contexts)) or "none"
            raise ClusterError(f"no context {context!r} in the kubeconfig {path} (contexts: {names})")
        configuration = client.Configuration()
        config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                persist_config=False)
        configuration.retries = False  # reads are retried by Cluster._read, writes never
        if not configuration.verify_ssl:  # insecure-skip-tls-verify: asked for; kubectl says nothing either
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        api = client.ApiClient(configuration)
    except ConfigException as e:
        raise ClusterError(f"cannot use the kubeconfig {path}: {cut(str(e))}") from e
    except OSError as e:
        raise ClusterError(f"cannot read the kubeconfig {path}: {one_line_of(e)}") from e
    except (ValueError, AttributeError, TypeError) as e:  # YAML that is not a kubeconfig
        raise ClusterError(f"the kubeconfig {path} is not a kubeconfig (a mapping of clusters, contexts and "
                           f"users): {one_line_of(e)}") from e
    except yaml.YAMLError as e:  # the client parses the file with PyYAML, and lets its errors out
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ClusterError(f"the kubeconfig {path} is not YAML{where}: fix it or pass --kubeconfig FILE") from e
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return Cluster(api, str(api.configuration.host), str(namespace), request_timeout)


def snapshot(kubeconfig: str | None, context: str | None, namespace: str | None,
             warn: Warn = lambda _: None, request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT) -> Obj:
    """Read the cluster into a ``v1 List`` (see :meth:`Cluster.snapshot`; ``namespace=None``: all).

    Raises:
        InputError: ``kubeconfig`` does not exist.
        ClusterError: See :func:`connect` and :meth:`Cluster.snapshot`.
    """
    cluster = connect(kubeconfig, context, request_timeout)
    try:
        return cluster.snapshot(namespace, warn)
    finally:
        cluster.close()


# ----------------------------------------------------------------------------- capturing pods
