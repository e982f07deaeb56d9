"""A small Kubernetes API server for tests: the REST protocol kubectl and the Python client speak.

:class:`ApiServer` serves plain HTTP on 127.0.0.1 (a free port, one thread per request) with bearer-token
auth, and keeps its objects in memory, seeded from a ``v1 List`` (``kubectl get ... -A -o json``). It
covers what kubectl-netgen and its tests use:

* legacy discovery (``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>/<version>``); the
  aggregated-discovery ``Accept`` is answered with the legacy JSON, which kubectl takes as "fall back";
* get, list (``labelSelector``, ``fieldSelector``), watch (``resourceVersion``, ``timeoutSeconds``),
  create, update (PUT), delete and merge / strategic-merge / JSON patches on the resources in
  :data:`RESOURCES`; every write bumps one global ``resourceVersion``;
* ``pods/ephemeralcontainers`` (get, patch, PUT) with upstream validation and PodSecurity "restricted"
  admission; each new ephemeral container is run by a :class:`~tests.cluster.runtime.ContainerRuntime`
  whose reports become ``status.ephemeralContainerStatuses`` (each a MODIFIED event) and the log;
* ``pods/log`` with ``container``, ``follow``, ``limitBytes``, ``sinceSeconds``, ``tailLines`` and
  ``timestamps``, and kubelet-like log rotation (see :class:`ContainerLog`);
* errors as ``Status`` objects with upstream messages: 401, 403 (:meth:`ApiServer.deny`), 404, 409, 422.

It serves HTTPS with a throwaway self-signed certificate (the kubeconfig carries it as
``certificate-authority-data``) because kubectl will not send a bearer token over plain http;
``tls=False`` serves plain http for clients that do (the Python client).

Typical use::

    with ApiServer(seed_list()) as server:
        server.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")
        ...  # run kubectl or the Python client with that kubeconfig
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import copy
import datetime as dt
import ipaddress
import json
import re
import secrets
import ssl
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.cluster.runtime import ContainerRuntime, ProcessRuntime

Obj = dict[str, Any]

SERVER_VERSION: Obj = {
    "major": "1", "minor": "37", "gitVersion": "v1.37.0", "gitCommit": "0" * 40, "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64",
}
POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
DEFAULT_WATCH_TIMEOUT = 1800.0
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})


@dataclass(frozen=True)
class Resource:
    """One served resource type."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def api_version(self) -> str:
        """``v1`` or ``<group>/<version>``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The name upstream messages use: ``pods``, ``deployments.apps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",)),
    Resource("", "v1", "nodes", "Node", False, ("no",)),
    Resource("", "v1", "pods", "Pod", True, ("po",),
             (("ephemeralcontainers", ("get", "patch", "update")), ("log", ("get",)))),
    Resource("", "v1", "services", "Service", True, ("svc",)),
    Resource("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",)),
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",)),
    Resource("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",)),
    Resource("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",)),
    Resource("batch", "v1", "jobs", "Job", True),
    Resource("batch", "v1", "cronjobs", "CronJob", True, ("cj",)),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
)
GROUPS: tuple[tuple[str, str], ...] = tuple(dict.fromkeys((r.group, r.version) for r in RESOURCES if r.group))


def find_resource(name: str) -> Resource:
    """Return the resource for a kind (``Pod``), plural (``pods``) or qualified plural (``deployments.apps``)."""
    for r in RESOURCES:
        if name in (r.kind, r.plural, r.qualified, *r.short_names):
            return r
    raise KeyError(f"unknown resource {name!r}")


def _resource_at(group: str, version: str, plural: str) -> Resource | None:
    for r in RESOURCES:
        if (r.group, r.version, r.plural) == (group, version, plural):
            return r
    return None


# ---------------------------------------------------------------------------------------------- errors


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


def _details(res: Resource, name: str | None) -> Obj:
    details: Obj = {"kind": res.plural}
    if name:
        details["name"] = name
    if res.group:
        details["group"] = res.group
    return details


def not_found(res: Resource, name: str) -> ApiError:
    """``pods "x" not found``."""
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', _details(res, name))


def conflict(res: Resource, name: str) -> ApiError:
    """The optimistic-concurrency conflict of an update carrying a stale ``resourceVersion``."""
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    _details(res, name))


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


# ------------------------------------------------------------------------------------------- selectors

_REQ = re.compile(r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
                  r"(?:(?P<op>==|!=|=|\s+in\s+|\s+notin\s+)\s*(?P<val>\([^)]*\)|[A-Za-z0-9._-]*))?\s*$")


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: ``key op values`` with op in =, !=, in, notin, exists, !."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this term."""
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op in ("=", "in"):
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # != and notin also match a missing key


def _split_terms(text: str) -> list[str]:
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse ``a=b,c!=d,e in (f,g),h notin (i),j,!k``; raise :class:`ApiError` 400 on bad syntax."""
    reqs = []
    for term in _split_terms(text):
        m = _REQ.match(term)
        if m is None or (m["neg"] and m["op"]):
            raise bad_request(f"unable to parse requirement: {term!r}")
        key, op, val = m["key"], (m["op"] or "").strip(), m["val"] or ""
        if m["neg"]:
            reqs.append(Requirement(key, "!"))
        elif not op:
            reqs.append(Requirement(key, "exists"))
        elif op in ("in", "notin"):
            if not val.startswith("("):
                raise bad_request(f"unable to parse requirement: {term!r}")
            reqs.append(Requirement(key, op, tuple(v.strip() for v in val[1:-1].split(",") if v.strip())))
        else:
            reqs.append(Requirement(key, "=" if op in ("=", "==") else "!=", (val,)))
    return reqs


FIELD_SELECTABLE: dict[str, tuple[str, ...]] = {
    "pods": ("metadata.name", "metadata.namespace", "status.phase", "spec.nodeName", "spec.restartPolicy",
             "spec.schedulerName", "spec.serviceAccountName", "status.podIP", "status.nominatedNodeName"),
}


def parse_field_selector(res: Resource, text: str) -> list[tuple[str, str, str]]:
    """Parse ``f=v,f!=v`` into (field, op, value); only the fields upstream supports for ``res``."""
    allowed = FIELD_SELECTABLE.get(res.plural, ("metadata.name", "metadata.namespace"))
    out = []
    for term in _split_terms(text):
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if m is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        if m[1] not in allowed:
            raise bad_request(f'field label not supported: {m[1]}')
        out.append((m[1], "!=" if m[2] == "!=" else "=", m[3]))
    return out


def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _matches(obj: Obj, labels: list[Requirement], fields: list[tuple[str, str, str]]) -> bool:
    obj_labels = obj.get("metadata", {}).get("labels") or {}
    if not all(r.matches(obj_labels) for r in labels):
        return False
    return all((_field_value(obj, f) == v) == (op == "=") for f, op, v in fields)


# --------------------------------------------------------------------------------------------- patches


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch and return the result (inputs are not modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_MERGE_KEYS = ("name", "containerPort", "port", "ip", "type")


def _merge_key(items: list[Any]) -> str | None:
    for key in _MERGE_KEYS:
        if items and all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch, simplified: lists of objects merge by ``name`` (or ``containerPort``, ...).

    Supports ``$patch: delete``/``replace`` on list elements and maps, and drops ``$setElementOrder/...``
    and ``$retainKeys`` directives. Lists of scalars are replaced, as for most upstream fields.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/")) or key in ("$retainKeys", "$patch"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _strategic_list(result[key], value)
        elif isinstance(value, list):
            result[key] = [strategic_merge_patch(None, v) if isinstance(v, dict) else v for v in value
                           if not (isinstance(v, dict) and v.get("$patch") == "delete")]
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _strategic_list(current: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key([p for p in patch if not (isinstance(p, dict) and set(p) == {"$patch"})])
    if key is None or (current and _merge_key(current) != key):
        return copy.deepcopy(patch)
    result = copy.deepcopy(current)
    for item in patch:
        index = next((i for i, c in enumerate(result) if c.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch(None, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch; raise :class:`ApiError` (422 upstream-style) when an operation fails."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    try:
        for op in operations:
            kind, parts = op["op"], _pointer(op["path"])
            if kind in ("add", "replace", "copy", "move"):
                if kind in ("add", "replace"):
                    value = copy.deepcopy(op["value"])
                else:
                    src_parent, src_key = _parent(doc, _pointer(op["from"]))
                    src = src_parent[int(src_key)] if isinstance(src_parent, list) else src_parent[src_key]
                    value = copy.deepcopy(src)
                    if kind == "move":
                        doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                if not parts:
                    doc = value
                    continue
                parent, key = _parent(doc, parts)
                if isinstance(parent, list):
                    if kind == "replace":
                        parent[int(key)] = value
                    else:
                        parent.insert(len(parent) if key == "-" else int(key), value)
                else:
                    if kind == "replace" and key not in parent:
                        raise KeyError(key)
                    parent[key] = value
            elif kind == "remove":
                parent, key = _parent(doc, parts)
                del parent[int(key) if isinstance(parent, list) else key]
            elif kind == "test":
                parent, key = _parent(doc, parts)
                current = parent[int(key)] if isinstance(parent, list) else parent[key]
                if current != op["value"]:
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                                   f"request: testing value {op['path']} failed")
            else:
                raise bad_request(f"Unexpected kind: {kind}")
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                       f"jsonpatch {operations!r}: {e!r}") from e
    return doc


PATCHERS: dict[str, Callable[[Any, Any], Any]] = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}


# ----------------------------------------------------------------------------------------------- times


def rfc3339(ts_ns: int | None = None) -> str:
    """Seconds-precision UTC time as Kubernetes writes it in objects."""
    seconds = (time.time_ns() if ts_ns is None else ts_ns) // 1_000_000_000
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(ts_ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: nanoseconds with trailing zeros trimmed."""
    base = rfc3339(ts_ns)[:-1]
    frac = f"{ts_ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


# ------------------------------------------------------------------------------------------------ logs


@dataclass
class LogLine:
    """One line a container wrote, as the CRI log file keeps it."""

    ts_ns: int
    stream: str
    data: bytes


@dataclass
class ContainerLog:
    """A container's log, with kubelet-like rotation.

    ``lines`` holds everything written; ``file_start`` is the first line of the *current* log file. When the
    current file grows past ``max_bytes`` (kubelet's ``containerLogMaxSize``) it is rotated: ``file_start``
    moves to the end, so a later non-follow request sees only what was written since (kubelet serves only
    the current file). A follower keeps its own position in ``lines`` and so, like kubelet's follow, which
    reopens the new file after a rotation, sees every line. Old lines stay in memory for such followers.
    """

    max_bytes: int | None = None
    lines: list[LogLine] = field(default_factory=list)
    file_start: int = 0
    file_bytes: int = 0
    closed: bool = False
    rotations: int = 0

    def append(self, stream: str, data: bytes, ts_ns: int | None = None) -> None:
        """Add a line and rotate when the current file is over ``max_bytes``."""
        self.lines.append(LogLine(time.time_ns() if ts_ns is None else ts_ns, stream, data))
        self.file_bytes += len(data)
        if self.max_bytes is not None and self.file_bytes > self.max_bytes:
            self.file_start, self.file_bytes = len(self.lines), 0
            self.rotations += 1


@dataclass(frozen=True)
class LogOptions:
    """The ``pods/log`` query parameters."""

    follow: bool = False
    timestamps: bool = False
    limit_bytes: int | None = None
    since_seconds: int | None = None
    tail_lines: int | None = None


def _format_line(line: LogLine, timestamps: bool) -> bytes:
    return (rfc3339_nano(line.ts_ns).encode() + b" " + line.data) if timestamps else line.data


# ------------------------------------------------------------------------------------------------ state


@dataclass(frozen=True)
class WatchEvent:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``obj`` a snapshot after the change."""

    rv: int
    type: str
    resource: Resource
    obj: Obj


@dataclass(frozen=True)
class _Denial:
    verb: str
    resource: str
    subresource: str | None
    namespace: str | None


Key = tuple[str, str, str]  # (qualified resource, namespace or "", name)


class _ContainerSink:
    """Turns runtime reports about one ephemeral container into pod status changes and log lines."""

    def __init__(self, server: ApiServer, namespace: str, pod: str, uid: str, container: Obj) -> None:
        self.server, self.namespace, self.pod, self.uid = server, namespace, pod, uid
        self.name, self.image = str(container["name"]), str(container.get("image", ""))
        self.started_at = ""
        self.container_id = ""
        self.image_id = ""

    def _update(self, state: Obj, **fields: Any) -> None:
        status: Obj = {"name": self.name, "image": self.image, "imageID": self.image_id, "ready": False,
                       "restartCount": 0, "state": state, "lastState": {}, **fields}
        if self.container_id:
            status["containerID"] = self.container_id
        self.server._set_ephemeral_status(self.namespace, self.pod, self.uid, status)

    def waiting(self, reason: str, message: str = "") -> None:
        state: Obj = {"reason": reason}
        if message:
            state["message"] = message
        self._update({"waiting": state}, started=False)

    def started(self, container_id: str, image_id: str) -> None:
        self.container_id, self.image_id, self.started_at = container_id, image_id, rfc3339()
        self._update({"running": {"startedAt": self.started_at}}, started=True)

    def output(self, stream: str, line: bytes) -> None:
        self.server._append_log(self.namespace, self.pod, self.uid, self.name, stream, line)

    def terminated(self, exit_code: int) -> None:
        self._update({"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                     "startedAt": self.started_at, "finishedAt": rfc3339(),
                                     "containerID": self.container_id}}, started=False)
        self.server._close_log(self.namespace, self.pod, self.uid, self.name)


class ApiServer:
    """An in-memory Kubernetes API server on ``http://127.0.0.1:<port>``; see the module docstring."""

    def __init__(self, seed: Mapping[str, Any] | None = None, *, token: str = "netgen-test-token",
                 user: str = "netgen-test", runtime: ContainerRuntime | None = None,
                 log_max_bytes: int | None = None, host: str = "127.0.0.1", port: int = 0, tls: bool = True) -> None:
        """Seed from a ``v1 List``; accept ``token`` as ``user``; run containers with ``runtime``.

        ``runtime`` defaults to a :class:`~tests.cluster.runtime.ProcessRuntime` running local processes.
        ``log_max_bytes`` is the per-container log rotation size (None: never rotate).
        """
        self.token, self.user, self._host = token, user, host
        self.runtime: ContainerRuntime = runtime if runtime is not None else ProcessRuntime()
        self.log_max_bytes = log_max_bytes
        self._cond = threading.Condition()
        self._objects: dict[Key, Obj] = {}
        self._events: list[WatchEvent] = []
        self._rv = 0
        self._logs: dict[tuple[str, str, str, str], ContainerLog] = {}  # (ns, pod, pod uid, container)
        self._denials: list[_Denial] = []
        self._closing = False
        if seed is not None:
            self.load(seed)
        self._http = ThreadingHTTPServer((host, port), _handler_for(self))
        self._http.daemon_threads = True
        self.ca_pem = b""
        if tls:
            self.ca_pem, key_pem = self_signed_certificate(host)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.TemporaryDirectory() as tmp:
                cert_file, key_file = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
                cert_file.write_bytes(self.ca_pem)
                key_file.write_bytes(key_pem)
                context.load_cert_chain(cert_file, key_file)
            # The handshake happens on the request thread, so a stuck client cannot block accept().
            self._http.socket = context.wrap_socket(self._http.socket, server_side=True,
                                                    do_handshake_on_connect=False)
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>`` (``http://`` when built with ``tls=False``)."""
        scheme = "https" if self.ca_pem else "http"
        return f"{scheme}://{self._host}:{self.port}"

    def start(self) -> ApiServer:
        """Serve on a background thread; return self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="apiserver", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """End open watches and log streams, stop serving and kill every container process."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(timeout=5)
        self._http.server_close()
        self.runtime.close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_kubeconfig(self, path: str | Path, context: str = "netgen-test", namespace: str | None = None) -> Path:
        """Write a kubeconfig (JSON, which kubeconfig loaders accept as YAML) pointing at this server."""
        ctx: Obj = {"cluster": context, "user": context}
        if namespace:
            ctx["namespace"] = namespace
        cluster: Obj = {"server": self.url}
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": context,
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": ctx}],
        }
        target = Path(path)
        target.write_text(json.dumps(config, indent=2) + "\n")
        target.chmod(0o600)
        return target

    # -- RBAC

    def deny(self, verb: str, resource: str, subresource: str | None = None, namespace: str | None = None) -> None:
        """Forbid ``verb`` ("*" for all) on ``resource`` (plural) [/``subresource``] [in ``namespace``]."""
        with self._cond:
            self._denials.append(_Denial(verb, resource, subresource, namespace))

    def allow_all(self) -> None:
        """Drop every :meth:`deny` rule."""
        with self._cond:
            self._denials.clear()

    def _check_access(self, verb: str, res: Resource, sub: str | None, namespace: str | None, name: str | None) -> None:
        with self._cond:
            denied = any(d.verb in (verb, "*") and d.resource == res.plural and d.subresource == sub
                         and d.namespace in (None, namespace) for d in self._denials)
        if not denied:
            return
        target = f'{res.qualified} "{name}"' if name else res.qualified
        full = f"{res.plural}/{sub}" if sub else res.plural
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        message = (f'{target} is forbidden: User "{self.user}" cannot {verb} resource "{full}" in API group '
                   f'"{res.group}" {scope}')
        raise ApiError(403, "Forbidden", message, _details(res, name))

    # -- state accessors for tests

    def load(self, items: Mapping[str, Any]) -> None:
        """Add every item of a ``v1 List`` (or one object) as it is, with a fresh resourceVersion."""
        for obj in items.get("items", [items]) if items.get("kind", "").endswith("List") else [items]:
            self.put_object(obj)

    def put_object(self, obj: Mapping[str, Any]) -> Obj:
        """Create or replace an object (no validation, no admission); return the stored copy."""
        res = find_resource(str(obj["kind"]))
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", rfc3339())
        with self._cond:
            key = self._key(res, meta.get("namespace") if res.namespaced else None, meta["name"])
            self._store(res, key, stored, "MODIFIED" if key in self._objects else "ADDED")
        return copy.deepcopy(stored)

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        """Copies of the stored objects of a kind/plural (optionally in one namespace), sorted by namespace/name."""
        res = find_resource(kind)
        with self._cond:
            found = [copy.deepcopy(o) for (q, ns, _), o in sorted(self._objects.items())
                     if q == res.qualified and (namespace is None or ns == namespace)]
        return found

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """A copy of one stored object, or None."""
        res = find_resource(kind)
        with self._cond:
            obj = self._objects.get(self._key(res, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def events(self, kind: str | None = None) -> list[WatchEvent]:
        """Every change recorded so far (optionally of one kind)."""
        with self._cond:
            return [e for e in self._events if kind is None or e.resource == find_resource(kind)]

    def resource_version(self) -> str:
        """The current global resourceVersion."""
        with self._cond:
            return str(self._rv)

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod at once: kill its processes, end its log streams; later requests get 404."""
        res = find_resource("pods")
        with self._cond:
            key = self._key(res, namespace, name)
            pod = self._objects.get(key)
            if pod is None:
                raise not_found(res, name)
            self._remove(res, key)
        self.runtime.kill_pod(namespace, name)

    def kill(self, namespace: str, pod: str, container: str) -> None:
        """SIGKILL a running ephemeral container (it terminates with exit code 137, reason Error)."""
        self.runtime.kill(namespace, pod, container)

    def fail_image_pull(self, image: str) -> None:
        """Make the runtime fail to pull ``image`` (only for runtimes with a ``fail_image_pull`` method)."""
        fail = getattr(self.runtime, "fail_image_pull", None)
        if fail is None:
            raise TypeError(f"{type(self.runtime).__name__} cannot simulate image pull failures")
        fail(image)

    def append_log(self, namespace: str, pod: str, container: str, text: str, stream: str = "stdout",
                   ts_ns: int | None = None) -> None:
        """Add lines to any container's log (e.g. a seeded one the runtime does not run), stamped ``ts_ns``/now."""
        with self._cond:
            stored = self._objects.get(self._key(find_resource("pods"), namespace, pod))
            if stored is None:
                raise not_found(find_resource("pods"), pod)
            uid = stored["metadata"]["uid"]
        for line in text.splitlines(keepends=True):
            self._append_log(namespace, pod, uid, container, stream, line.encode(), ts_ns)

    def container_log(self, namespace: str, pod: str, container: str) -> ContainerLog | None:
        """The log object of a container of the current pod of that name, if any."""
        with self._cond:
            stored = self._objects.get(self._key(find_resource("pods"), namespace, pod))
            if stored is None:
                return None
            return self._logs.get((namespace, pod, stored["metadata"]["uid"], container))

    # -- internals (call with self._cond held unless stated)

    @staticmethod
    def _key(res: Resource, namespace: str | None, name: str) -> Key:
        return (res.qualified, (namespace or "") if res.namespaced else "", name)

    def _store(self, res: Resource, key: Key, obj: Obj, event: str) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        self._objects[key] = obj
        self._events.append(WatchEvent(self._rv, event, res, copy.deepcopy(obj)))
        self._cond.notify_all()

    def _remove(self, res: Resource, key: Key) -> Obj:
        obj = self._objects.pop(key)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if res.plural == "pods":
            for log_key, log in self._logs.items():
                if log_key[:3] == (key[1], key[2], obj["metadata"]["uid"]):
                    log.closed = True
        self._events.append(WatchEvent(self._rv, "DELETED", res, copy.deepcopy(obj)))
        self._cond.notify_all()
        return obj

    def _log_for(self, namespace: str, pod: str, uid: str, container: str) -> ContainerLog:
        key = (namespace, pod, uid, container)
        if key not in self._logs:
            self._logs[key] = ContainerLog(self.log_max_bytes)
        return self._logs[key]

    def _append_log(self, namespace: str, pod: str, uid: str, container: str, stream: str, data: bytes,
                    ts_ns: int | None = None) -> None:
        """Runtime thread: add a line (dropped if the pod is gone)."""
        with self._cond:
            log = self._log_for(namespace, pod, uid, container)
            if not log.closed:
                log.append(stream, data, ts_ns)
                self._cond.notify_all()

    def _close_log(self, namespace: str, pod: str, uid: str, container: str) -> None:
        with self._cond:
            self._log_for(namespace, pod, uid, container).closed = True
            self._cond.notify_all()

    def _set_ephemeral_status(self, namespace: str, pod: str, uid: str, status: Obj) -> None:
        """Runtime thread: replace one entry of ``status.ephemeralContainerStatuses`` (a MODIFIED event)."""
        res = find_resource("pods")
        with self._cond:
            key = self._key(res, namespace, pod)
            stored = self._objects.get(key)
            if stored is None or stored["metadata"]["uid"] != uid:
                return
            updated = copy.deepcopy(stored)
            statuses = updated.setdefault("status", {}).setdefault("ephemeralContainerStatuses", [])
            index = next((i for i, s in enumerate(statuses) if s.get("name") == status["name"]), None)
            if index is None:
                statuses.append(status)
            else:
                statuses[index] = status
            self._store(res, key, updated, "MODIFIED")

    # -- REST verbs (called by the handler; raise ApiError)

    def rest_get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        with self._cond:
            obj = self._objects.get(self._key(res, namespace, name))
            if obj is None:
                raise not_found(res, name)
            return copy.deepcopy(obj)

    def rest_list(self, res: Resource, namespace: str | None, query: Mapping[str, str]) -> Obj:
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(res, query.get("fieldSelector", ""))
        with self._cond:
            items = []
            for (q, ns, _), obj in sorted(self._objects.items()):
                if q == res.qualified and (namespace is None or ns == namespace) and _matches(obj, labels, fields):
                    item = copy.deepcopy(obj)
                    item.pop("apiVersion", None)
                    item.pop("kind", None)
                    items.append(item)
            rv = str(self._rv)
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": {"resourceVersion": rv},
                "items": items}

    def rest_watch(self, res: Resource, namespace: str | None, query: Mapping[str, str]) -> Iterator[Obj]:
        """Yield watch events until ``timeoutSeconds``, the server closes, or the client goes away."""
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(res, query.get("fieldSelector", ""))
        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        deadline = time.monotonic() + timeout
        since = query.get("resourceVersion", "")

        def wanted(r: Resource, obj: Obj) -> bool:
            ns = obj.get("metadata", {}).get("namespace")
            return r == res and (namespace is None or ns == namespace) and _matches(obj, labels, fields)

        with self._cond:
            if since in ("", "0"):
                position = self._rv
                initial = [copy.deepcopy(o) for (q, ns, _), o in sorted(self._objects.items())
                           if q == res.qualified and wanted(res, o)]
            else:
                position, initial = int(since), []
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        while True:
            with self._cond:
                while True:
                    start = bisect.bisect_right([e.rv for e in self._events], position)
                    pending = self._events[start:]
                    remaining = deadline - time.monotonic()
                    if pending or self._closing or remaining <= 0:
                        break
                    self._cond.wait(min(remaining, 0.5))
                if not pending:
                    return
                position = pending[-1].rv
            for event in pending:
                if wanted(event.resource, event.obj):
                    yield {"type": event.type, "object": event.obj}

    def rest_create(self, res: Resource, namespace: str | None, body: Obj) -> Obj:
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise bad_request("the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if not meta.get("name"):
            raise invalid(res.kind, "", [Cause("FieldValueRequired", "metadata.name",
                                               "Required value: name or generateName is required")])
        if res.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339()
        if "spec" in obj:
            meta["generation"] = 1
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        with self._cond:
            key = self._key(res, meta.get("namespace"), meta["name"])
            if key in self._objects:
                raise ApiError(409, "AlreadyExists", f'{res.qualified} "{meta["name"]}" already exists',
                               _details(res, meta["name"]))
            self._store(res, key, obj, "ADDED")
            return copy.deepcopy(obj)

    def rest_delete(self, res: Resource, namespace: str | None, name: str) -> Obj:
        if res.plural == "pods":
            pod = self.rest_get(res, namespace, name)
            self.delete_pod(namespace or "", name)
            return pod
        with self._cond:
            key = self._key(res, namespace, name)
            if key not in self._objects:
                raise not_found(res, name)
            return copy.deepcopy(self._remove(res, key))

    def rest_update(self, res: Resource, namespace: str | None, name: str, sub: str | None,
                    change: Callable[[Obj], Any]) -> Obj:
        """PUT or PATCH: ``change`` maps the current object to the new one; handles conflicts and subresources."""
        started: list[Obj] = []
        with self._cond:
            key = self._key(res, namespace, name)
            current = self._objects.get(key)
            if current is None:
                raise not_found(res, name)
            new = change(copy.deepcopy(current))
            if not isinstance(new, dict):
                raise bad_request("the patched object is not a JSON object")
            new_rv = new.get("metadata", {}).get("resourceVersion")
            if new_rv and new_rv != current["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if sub == "ephemeralcontainers":
                new, started = self._ephemeral_update(current, new)
            else:
                new = self._general_update(res, current, new)
            self._store(res, key, new, "MODIFIED")
            result = copy.deepcopy(new)
        for container in started:
            sink = _ContainerSink(self, namespace or "", name, current["metadata"]["uid"], container)
            self.runtime.start(namespace or "", name, copy.deepcopy(container), sink)
        return result

    @staticmethod
    def _general_update(res: Resource, current: Obj, new: Obj) -> Obj:
        meta = new.setdefault("metadata", {})
        for fixed in ("name", "namespace", "uid", "creationTimestamp"):
            if fixed in current["metadata"]:
                meta[fixed] = current["metadata"][fixed]
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        if res.plural == "pods":
            # Pod status belongs to the kubelet and ephemeral containers to their subresource.
            new["status"] = current.get("status", {})
            spec = new.setdefault("spec", {})
            spec.pop("ephemeralContainers", None)
            if "ephemeralContainers" in current.get("spec", {}):
                spec["ephemeralContainers"] = current["spec"]["ephemeralContainers"]
        if new.get("spec") != current.get("spec") and "spec" in current:
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        return new

    def _ephemeral_update(self, current: Obj, new: Obj) -> tuple[Obj, list[Obj]]:
        """Validate and admit a change of ``spec.ephemeralContainers``; return the pod and the added containers."""
        name, namespace = current["metadata"]["name"], current["metadata"].get("namespace", "")
        old_list = current.get("spec", {}).get("ephemeralContainers") or []
        new_list = (new.get("spec") or {}).get("ephemeralContainers") or []
        if not isinstance(new_list, list) or not all(isinstance(c, dict) for c in new_list):
            raise bad_request("spec.ephemeralContainers must be a list of objects")
        causes = validate_ephemeral_containers(current, old_list, new_list)
        if causes:
            raise invalid("Pod", name, causes)
        old_names = {c["name"] for c in old_list}
        added = [c for c in new_list if c["name"] not in old_names]
        ns_obj = self._objects.get(self._key(find_resource("namespaces"), None, namespace))
        ns_labels = (ns_obj or {}).get("metadata", {}).get("labels") or {}
        if ns_labels.get(POD_SECURITY_LABEL) == "restricted" and added:
            version = ns_labels.get("pod-security.kubernetes.io/enforce-version", "latest")
            reasons = restricted_violations(current.get("spec", {}), added)
            if reasons:
                raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity '
                               f'"restricted:{version}": {", ".join(reasons)}', _details(find_resource("pods"), name))
        result = copy.deepcopy(current)
        for c in added:
            c.setdefault("imagePullPolicy", "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
        result.setdefault("spec", {})["ephemeralContainers"] = copy.deepcopy(new_list)
        return result, added

    # -- logs

    def stream_log(self, namespace: str, pod: str, query: Mapping[str, str]) -> Iterator[bytes]:
        """Check a ``pods/log`` request (raising ApiError) and return the generator of its body chunks."""
        res = find_resource("pods")
        obj = self.rest_get(res, namespace, pod)
        spec = obj.get("spec", {})
        regular = [c["name"] for c in spec.get("containers", [])]
        init = [c["name"] for c in spec.get("initContainers", []) or []]
        ephemeral = [c["name"] for c in spec.get("ephemeralContainers", []) or []]
        container = query.get("container", "")
        if not container:
            if len(regular) != 1:
                raise bad_request(f"a container name must be specified for pod {pod}, choose one of: "
                                  f"[{' '.join(regular)}]")
            container = regular[0]
        if container not in regular + init + ephemeral:
            raise bad_request(f"container {container} is not valid for pod {pod}")
        status = obj.get("status", {})
        statuses = [*status.get("containerStatuses", []), *status.get("initContainerStatuses", []),
                    *status.get("ephemeralContainerStatuses", [])]
        state = next((s.get("state", {}) for s in statuses if s.get("name") == container), None)
        if container in ephemeral and not state:
            state = {"waiting": {"reason": "ContainerCreating"}}
        if state and "waiting" in state:
            reason = state["waiting"].get("reason", "")
            why = "trying and failing to pull image" if reason in ("ErrImagePull", "ImagePullBackOff") else reason
            raise bad_request(f'container "{container}" in pod "{pod}" is waiting to start: {why}')
        try:
            options = LogOptions(
                follow=parse_bool(query.get("follow", "")),
                timestamps=parse_bool(query.get("timestamps", "")),
                limit_bytes=int(query["limitBytes"]) if "limitBytes" in query else None,
                since_seconds=int(query["sinceSeconds"]) if "sinceSeconds" in query else None,
                tail_lines=int(query["tailLines"]) if "tailLines" in query else None,
            )
        except ValueError as e:
            raise bad_request(str(e)) from e
        with self._cond:
            log = self._log_for(namespace, pod, obj["metadata"]["uid"], container)
        return self._log_chunks(log, options)

    def _log_chunks(self, log: ContainerLog, options: LogOptions) -> Iterator[bytes]:
        with self._cond:
            lines = log.lines[log.file_start:]
            position = len(log.lines)
        if options.since_seconds is not None:
            cutoff = time.time_ns() - options.since_seconds * 1_000_000_000
            lines = [line for line in lines if line.ts_ns >= cutoff]
        if options.tail_lines is not None:
            lines = lines[-options.tail_lines:] if options.tail_lines > 0 else []
        budget = options.limit_bytes

        def emit(batch: list[LogLine]) -> tuple[bytes, bool]:
            nonlocal budget
            data = b"".join(_format_line(line, options.timestamps) for line in batch)
            if budget is None:
                return data, False
            data = data[:budget]
            budget -= len(data)
            return data, budget <= 0

        data, done = emit(lines)
        if data:
            yield data
        if done or not options.follow:
            return
        while True:
            with self._cond:
                while len(log.lines) == position and not log.closed and not self._closing:
                    self._cond.wait(0.5)
                batch = log.lines[position:]
                position = len(log.lines)
                finished = log.closed or self._closing
            data, done = emit(batch)
            if data:
                yield data
            if done or (finished and not batch):
                return


# ------------------------------------------------------------------------------------------ validation


def validate_ephemeral_containers(pod: Obj, old: list[Obj], new: list[Obj]) -> list[Cause]:
    """Upstream ``ValidatePodEphemeralContainersUpdate``, reduced to what a debugging tool can hit."""
    causes: list[Cause] = []
    spec = pod.get("spec", {})
    taken = {c.get("name") for c in spec.get("containers", []) + (spec.get("initContainers") or [])}
    seen: set[str] = set()
    regular = {c.get("name") for c in spec.get("containers", [])}
    for i, c in enumerate(new):
        path = f"spec.ephemeralContainers[{i}]"
        name = c.get("name")
        if not name:
            causes.append(Cause("FieldValueRequired", f"{path}.name", "Required value"))
            continue
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
            causes.append(Cause("FieldValueInvalid", f"{path}.name", f'Invalid value: "{name}": a lowercase RFC '
                                "1123 label must consist of lower case alphanumeric characters or '-', and must "
                                "start and end with an alphanumeric character"))
        if name in taken or name in seen:
            causes.append(Cause("FieldValueDuplicate", f"{path}.name", f'Duplicate value: "{name}"'))
        seen.add(name)
        if not c.get("image"):
            causes.append(Cause("FieldValueRequired", f"{path}.image", "Required value"))
        for forbidden in ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
            if c.get(forbidden):
                causes.append(Cause("FieldValueForbidden", f"{path}.{forbidden}",
                                    "Forbidden: cannot be set for an Ephemeral Container"))
        target = c.get("targetContainerName")
        if target and target not in regular:
            causes.append(Cause("FieldValueNotFound", f"{path}.targetContainerName", f'Not found: "{target}"'))
    by_name = {c.get("name"): (i, c) for i, c in enumerate(new)}
    for c in old:
        name = c["name"]
        if name not in by_name:
            causes.append(Cause("FieldValueForbidden", "spec.ephemeralContainers",
                                f'Forbidden: existing ephemeral containers "{name}" may not be removed\n'))
        elif _comparable(by_name[name][1]) != _comparable(c):
            causes.append(Cause("FieldValueForbidden", f"spec.ephemeralContainers[{by_name[name][0]}]",
                                f'Forbidden: existing ephemeral containers "{name}" may not be changed\n'))
    return causes


def _comparable(container: Obj) -> Obj:
    defaults = {"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"}
    return {**defaults, **{k: v for k, v in container.items() if v not in (None, [], {})}}


def restricted_violations(pod_spec: Obj, containers: list[Obj]) -> list[str]:
    """PodSecurity "restricted" failures of ``containers`` (pod-level securityContext as fallback), upstream order.

    Only the checks a debug container can fail are modelled: allowPrivilegeEscalation, capabilities
    (baseline and restricted), privileged, runAsNonRoot, runAsUser=0 and seccompProfile. Regular containers
    are not re-checked (a namespace labelled restricted already admitted them).
    """
    pod_sc = pod_spec.get("securityContext") or {}
    ape, caps_base, caps_restr, priv, non_root, root_user, seccomp = [], [], [], [], [], [], []
    for c in containers:
        name = c.get("name")
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        added = [str(a) for a in caps.get("add") or []]
        if sc.get("allowPrivilegeEscalation") is not False:
            ape.append(f'container "{name}" must set securityContext.allowPrivilegeEscalation=false')
        non_default = [a for a in added if a not in BASELINE_CAPABILITIES]
        if non_default:
            caps_base.append(f'container "{name}" must not include {_quoted(non_default)} in '
                             "securityContext.capabilities.add")
        details = []
        if "ALL" not in (caps.get("drop") or []):
            details.append(f'container "{name}" must set securityContext.capabilities.drop=["ALL"]')
        not_allowed = [a for a in added if a != "NET_BIND_SERVICE"]
        if not_allowed:
            details.append(f'container "{name}" must not include {_quoted(not_allowed)} in '
                           "securityContext.capabilities.add")
        if details:
            caps_restr.append("; ".join(details))
        if sc.get("privileged"):
            priv.append(f'container "{name}" must not set securityContext.privileged=true')
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            non_root.append(f'pod or container "{name}" must set securityContext.runAsNonRoot=true')
        if sc.get("runAsUser") == 0:
            root_user.append(f'container "{name}" must not set runAsUser=0')
        profile = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if profile not in ("RuntimeDefault", "Localhost"):
            seccomp.append(f'pod or container "{name}" must set securityContext.seccompProfile.type to '
                           '"RuntimeDefault" or "Localhost"')
    checks = [("allowPrivilegeEscalation != false", ape), ("non-default capabilities", caps_base),
              ("unrestricted capabilities", caps_restr), ("privileged", priv), ("runAsNonRoot != true", non_root),
              ("runAsUser=0", root_user), ("seccompProfile", seccomp)]
    return [f"{reason} ({'; '.join(found)})" for reason, found in checks if found]


def _quoted(values: list[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


# ----------------------------------------------------------------------------------------------- HTTP


def self_signed_certificate(host: str) -> tuple[bytes, bytes]:
    """Return (certificate PEM, key PEM) of a one-day self-signed certificate for ``host`` and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netgen-test-apiserver")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem



def _discovery_list(group: str, version: str) -> Obj:
    resources: list[Obj] = []
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        entry: Obj = {"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                      "kind": r.kind, "verbs": list(_VERBS)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        resources.append(entry)
        for sub, verbs in r.subresources:
            resources.append({"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": list(verbs)})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


def _handler_for(server: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        api = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read their own output."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing

    def _send_json(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, content_type: str, chunks: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        with contextlib.suppress(OSError):  # the client went away (reset, broken pipe, TLS EOF)
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        self.close_connection = True

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        raw = self._body()
        try:
            self._route(method, raw)
        except ApiError as e:
            self._send_json(e.code, e.status())
        except OSError:
            self.close_connection = True
        except Exception as e:
            # A bug in this server: answer like the real one does (500 InternalError) and show the traceback.
            traceback.print_exc()
            self._send_json(500, ApiError(500, "InternalError", f"Internal error occurred: {e!r}").status())

    def _route(self, method: str, raw: bytes) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [p for p in url.path.split("/") if p]
        if parts in (["version"], ["healthz"], ["livez"], ["readyz"]):
            self._send_json(200, SERVER_VERSION) if parts == ["version"] else self._send_text(b"ok")
            return
        if self.headers.get("Authorization", "") != f"Bearer {self.api.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if method == "GET" and self._discovery(parts):
            return
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _no_route()
        self._rest(method, group, version, rest, query, raw)

    def _send_text(self, data: bytes, code: int = 200) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _discovery(self, parts: list[str]) -> bool:
        # Aggregated discovery (Accept: ...;as=APIGroupDiscoveryList) gets the legacy JSON with a plain
        # application/json content type, which client-go takes as "not supported" and falls back.
        if parts == ["api"]:
            host = f"127.0.0.1:{self.api.port}"
            self._send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        elif parts == ["apis"]:
            groups = [{"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                       "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in GROUPS]
            self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        elif parts == ["api", "v1"]:
            self._send_json(200, _discovery_list("", "v1"))
        elif len(parts) == 2 and parts[0] == "apis" and any(g == parts[1] for g, _ in GROUPS):
            version = dict(GROUPS)[parts[1]]
            self._send_json(200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                                  "versions": [{"groupVersion": f"{parts[1]}/{version}", "version": version}],
                                  "preferredVersion": {"groupVersion": f"{parts[1]}/{version}", "version": version}})
        elif len(parts) == 3 and parts[0] == "apis" and (parts[1], parts[2]) in GROUPS:
            self._send_json(200, _discovery_list(parts[1], parts[2]))
        else:
            return False
        return True

    def _rest(self, method: str, group: str, version: str, rest: list[str], query: dict[str, str],
              raw: bytes) -> None:
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not 1 <= len(rest) <= 3:
            raise _no_route()
        res = _resource_at(group, version, rest[0])
        if res is None or (namespace is not None and not res.namespaced):
            raise _no_route()
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and sub not in dict(res.subresources):
            raise _no_route()
        if res.namespaced and name is not None and namespace is None:
            raise _no_route()
        api = self.api
        watching = parse_bool(query.get("watch", ""))
        verb = {"GET": "watch" if watching else ("get" if name else "list"), "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete"}[method]
        api._check_access(verb, res, sub, namespace, name)
        if name is None:
            if method == "GET" and watching:
                events = api.rest_watch(res, namespace, query)
                self._stream("application/json", (json.dumps(e).encode() + b"\n" for e in events))
            elif method == "GET":
                self._send_json(200, api.rest_list(res, namespace, query))
            elif method == "POST":
                self._send_json(201, api.rest_create(res, namespace, _json(raw)))
            else:
                raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested "
                               f"resource ({method})")
            return
        if sub == "log":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                               "resource")
            chunks = api.stream_log(namespace or "", name, query)
            if parse_bool(query.get("follow", "")):
                self._stream("text/plain", chunks)
            else:
                self._send_text(b"".join(chunks))
            return
        if method == "GET":
            self._send_json(200, api.rest_get(res, namespace, name))
        elif method == "DELETE":
            self._send_json(200, api.rest_delete(res, namespace, name))
        elif method == "PUT":
            body = _json(raw)
            self._send_json(200, api.rest_update(res, namespace, name, sub, lambda _current: body))
        elif method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            patcher = PATCHERS.get(content_type)
            if patcher is None:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                               f"accepted media types include: {', '.join(PATCHERS)}")
            patch = _json(raw)
            self._send_json(200, api.rest_update(res, namespace, name, sub, lambda current: patcher(current, patch)))
        else:
            raise _no_route()


def parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool`` truth, as the API server parses boolean query parameters (the Python client
    sends ``True``)."""
    return text in ("1", "t", "T", "true", "TRUE", "True")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError as e:
        raise bad_request(f"the body of the request was in an unknown format: {e}") from e


def _no_route() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})
