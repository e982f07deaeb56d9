"""Following pods while a capture runs: a watch that reports every pod that exists at any moment.

:class:`PodWatch` lists the pods of a namespace (or of all), then watches from that list's
``resourceVersion``, as informers do: every version of every pod reaches its callback, a pod created
and deleted between two snapshots included. A watch the server ends (``timeoutSeconds``, a dropped
connection) is resumed from the last version seen; one the server says is too old (410 Gone) starts
again from a new list. It ends when :meth:`PodWatch.close` is called.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from kubectl_netgen.errors import ClusterError
from kubectl_netgen.kube.client import Cluster, Obj, Resource, _converted

PODS = Resource("Pod", "v1", "pods", True)
WATCH_SECONDS = 60
"""``timeoutSeconds`` of each watch request: the server ends it then and it is resumed."""

PodEvent = Callable[[str, Obj], None]
"""Receives (``ADDED`` | ``MODIFIED`` | ``DELETED`` | ``LISTED``, the pod) for each version of each pod."""


class PodWatch:
    """Pods of a namespace (``None``: all) as they come and go, reported to ``on_event`` from a thread."""

    def __init__(self, cluster: Cluster, namespace: str | None, on_event: PodEvent,
                 on_error: Callable[[ClusterError], None]) -> None:
        """Prepare; :meth:`start` lists and begins watching."""
        self.cluster, self.namespace, self.on_event, self.on_error = cluster, namespace, on_event, on_error
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name="netgen-pod-watch", daemon=True)
        self._version = ""

    def start(self) -> PodWatch:
        """List the pods (reported as ``LISTED``) and begin watching on a background thread.

        Raises:
            ClusterError: The pods cannot be listed (ForbiddenError: RBAC).
        """
        self._list()
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop watching and wait for the thread (idempotent; safe from any thread but the watch's own)."""
        self._stop.set()
        with self._lock:
            response = self._response
        if response is not None:
            shutdown = getattr(response, "shutdown", None)
            try:
                (shutdown or response.close)()
            except (OSError, ValueError, RuntimeError):
                pass
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _list(self) -> None:
        path = PODS.path(self.namespace)
        query: list[tuple[str, Any]] = [("limit", 500)]
        while True:
            page = self._get(path, query)
            for pod in page.get("items") or ():
                self.on_event("LISTED", _typed(pod))
            meta = page.get("metadata") or {}
            self._version = str(meta.get("resourceVersion") or self._version)
            if not meta.get("continue"):
                return
            query = [("limit", 500), ("continue", meta["continue"])]

    def _get(self, path: str, query: list[tuple[str, Any]]) -> Obj:
        with _converted(self.cluster.server, PODS, "list", self.namespace, self.cluster.request_timeout):
            response = self.cluster.api.call_api(
                path, "GET", query_params=query, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                _request_timeout=self.cluster.call_timeout)
            document = json.loads(response.data)
        if not isinstance(document, dict):
            raise ClusterError(f"the API server at {self.cluster.server} answered a pod list with JSON that is "
                               "not an object")
        return document

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                gone = self._watch_once()
                if gone and not self._stop.is_set():
                    self._list()  # our version is too old for the server: start again from a list
            except ClusterError as e:
                if not self._stop.is_set():
                    self.on_error(e)
                return
            except (OSError, ValueError):
                if self._stop.wait(1):  # a dropped connection: resume after a pause
                    return

    def _watch_once(self) -> bool:
        """One watch request, until the server ends it; ``True`` when the server said 410 Gone."""
        from urllib3.exceptions import HTTPError

        query: list[tuple[str, Any]] = [("watch", "true"), ("timeoutSeconds", WATCH_SECONDS),
                                        ("allowWatchBookmarks", "true")]
        if self._version:
            query.append(("resourceVersion", self._version))
        with _converted(self.cluster.server, PODS, "watch", self.namespace, self.cluster.request_timeout):
            response = self.cluster.api.call_api(
                PODS.path(self.namespace), "GET", query_params=query, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
                _request_timeout=(self.cluster.request_timeout, WATCH_SECONDS + 10))
        with self._lock:
            self._response = response
        if self._stop.is_set():
            response.close()
        buffer = b""
        try:
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip() and self._event(json.loads(line)):
                        return True
        except (HTTPError, OSError, AttributeError):
            pass  # closed by close(), or dropped: the caller resumes unless stopped
        finally:
            with self._lock:
                self._response = None
            response.release_conn()
        return False

    def _event(self, event: Any) -> bool:
        """Report one watch event; ``True`` for an ERROR event saying the version is gone (410)."""
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            return False
        kind, obj = event.get("type"), event["object"]
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "ERROR":
            return bool(obj.get("code") == 410)
        if isinstance(version, str) and version:
            self._version = version
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self.on_event(str(kind), _typed(obj))
        return False  # BOOKMARK: only the version moves


def _typed(pod: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", **{k: v for k, v in pod.items() if k not in ("apiVersion", "kind")}}
