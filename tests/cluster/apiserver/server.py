"""The :class:`ApiServer`: lifecycle, TLS and kubeconfig, RBAC denials, and the pod-specific verbs — pod
deletion, ``pods/ephemeralcontainers`` updates and running the added containers through a
:class:`~tests.cluster.runtime.ContainerRuntime` whose reports become pod status and log lines.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.cluster.apiserver.admission import (
    POD_SECURITY_LABEL,
    baseline_violations,
    restricted_violations,
    validate_ephemeral_containers,
)
from tests.cluster.apiserver.errors import (
    ApiError,
    Cause,
    bad_request,
    conflict,
    invalid,
    not_found,
    status_details,
)
from tests.cluster.apiserver.faults import HANG_SECONDS, Fault
from tests.cluster.apiserver.formats import rfc3339
from tests.cluster.apiserver.handler import handler_for
from tests.cluster.apiserver.logs import PodLogs
from tests.cluster.apiserver.rbac import (
    AUTHENTICATED,
    MASTERS,
    Attributes,
    Authorizer,
    Decision,
    User,
    cluster_admin_objects,
    forbidden,
)
from tests.cluster.apiserver.resources import Obj, Resource, find_resource
from tests.cluster.runtime import ContainerRuntime, ProcessRuntime


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


@dataclass(frozen=True)
class _Denial:
    verb: str
    resource: str
    subresource: str | None
    namespace: str | None


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


class ApiServer(PodLogs):
    """An in-memory Kubernetes API server on ``http://127.0.0.1:<port>``; see the package docstring."""

    def __init__(self, seed: Mapping[str, Any] | None = None, *, token: str = "netgen-test-token",
                 user: str = "netgen-test", runtime: ContainerRuntime | None = None,
                 log_max_bytes: int | None = None, host: str = "127.0.0.1", port: int = 0, tls: bool = True) -> None:
        """Seed from a ``v1 List``; accept ``token`` as ``user``; run containers with ``runtime``.

        ``runtime`` defaults to a :class:`~tests.cluster.runtime.ProcessRuntime` running local processes.
        ``log_max_bytes`` is the per-container log rotation size (None: never rotate).
        """
        self.token, self.user, self._host = token, user, host
        self.runtime: ContainerRuntime = runtime if runtime is not None else ProcessRuntime()
        super().__init__(log_max_bytes)
        self._denials: list[_Denial] = []
        self._users: dict[str, User] = {token: User(user, (MASTERS, AUTHENTICATED))}
        self.authorizer = Authorizer(self.objects)
        """RBAC from the stored Roles, ClusterRoles and bindings (``cluster-admin`` for the admin token)."""
        self.load({"kind": "List", "items": cluster_admin_objects()})
        self.faults: list[Fault] = []
        """Switched-on faults (:meth:`inject`)."""
        self.requests: list[tuple[str, str]] = []
        """Every request received: (method, path with query), in order."""
        self.unserved: set[str] = set()
        """Subresources answered 404 as by a server that lacks them (e.g. ``ephemeralcontainers`` before 1.23)."""
        if seed is not None:
            self.load(seed)
        self._http = ThreadingHTTPServer((host, port), handler_for(self))
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

    def write_kubeconfig(self, path: str | Path, context: str = "netgen-test", namespace: str | None = None,
                         token: str | None = None) -> Path:
        """Write a kubeconfig (JSON, which kubeconfig loaders accept as YAML) pointing at this server.

        ``token`` (from :meth:`add_user`) makes it another user's; the default is the admin's.
        """
        ctx: Obj = {"cluster": context, "user": context}
        if namespace:
            ctx["namespace"] = namespace
        cluster: Obj = {"server": self.url}
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": context,
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": {"token": self.token if token is None else token}}],
            "contexts": [{"name": context, "context": ctx}],
        }
        target = Path(path)
        target.write_text(json.dumps(config, indent=2) + "\n")
        target.chmod(0o600)
        return target

    # -- faults

    def inject(self, action: str, verb: str = "*", resource: str = "*", *, nth: int = 1, times: int = 1,
               retry_after: int = 1) -> Fault:
        """Switch on a fault (see :mod:`.faults`): ``throttle`` (429), ``drop`` (close, no reply) or ``hang``.

        It fires on the ``nth`` request of ``verb`` on ``resource`` (``pods/log``; ``*``: any, discovery
        included) and the ``times - 1`` after it (``times=0``: every one from then on).
        """
        fault = Fault(action, verb, resource, nth, times, retry_after)
        with self._cond:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Switch every fault off."""
        with self._cond:
            self.faults.clear()

    def fault_for(self, verb: str, resource: str) -> Fault | None:
        """Count a request against every fault; the first that fires (each fault counts it either way)."""
        with self._cond:
            fired = [f for f in self.faults if f.take(verb, resource)]
        return fired[0] if fired else None

    def wait_closed(self, timeout: float = HANG_SECONDS) -> None:
        """Block until the server closes (or ``timeout``): what a hung request does."""
        with self._cond:
            self._cond.wait_for(lambda: self._closing, timeout)

    def record(self, method: str, path: str) -> None:
        """Remember one request (see :attr:`requests`)."""
        with self._cond:
            self.requests.append((method, path))

    # -- users and RBAC

    def add_user(self, name: str, token: str | None = None, groups: tuple[str, ...] = ()) -> str:
        """Accept a bearer token as user ``name`` (also in ``system:authenticated`` and ``groups``); return it.

        The user can do only what RBAC objects bound to it (or its groups) allow: store Roles and bindings
        with :meth:`put_object` or ``kubectl apply``.
        """
        token = token or f"netgen-{name.replace(':', '-')}-{uuid.uuid4().hex[:12]}"
        with self._cond:
            self._users[token] = User(name, (*groups, AUTHENTICATED))
        return token

    def authenticate(self, authorization: str) -> User:
        """The user of an ``Authorization: Bearer <token>`` header; 401 for anything else."""
        scheme, _, token = authorization.partition(" ")
        with self._cond:
            found = self._users.get(token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return found

    def deny(self, verb: str, resource: str, subresource: str | None = None, namespace: str | None = None) -> None:
        """Forbid ``verb`` ("*" for all) on ``resource`` (plural) [/``subresource``] [in ``namespace``] to every
        user, whatever RBAC says (a test hook; real RBAC only adds permissions)."""
        with self._cond:
            self._denials.append(_Denial(verb, resource, subresource, namespace))

    def allow_all(self) -> None:
        """Drop every :meth:`deny` rule (RBAC still applies)."""
        with self._cond:
            self._denials.clear()

    def decide(self, attrs: Attributes) -> Decision:
        """What the server would answer ``attrs``: the :meth:`deny` hooks first, then RBAC."""
        with self._cond:
            denied = attrs.is_resource and any(
                d.verb in (attrs.verb, "*") and d.resource == attrs.resource
                and (d.subresource or "") == attrs.subresource and d.namespace in (None, attrs.namespace or None)
                for d in self._denials)
        if denied:
            return Decision(False, "")
        return self.authorizer.decide(attrs)

    def _check_access(self, user: User, verb: str, res: Resource, sub: str | None, namespace: str | None,
                      name: str | None) -> None:
        attrs = Attributes(user, verb, res.group, res.plural, sub or "", namespace or "", name or "")
        decision = self.decide(attrs)
        if not decision.allowed:
            raise forbidden(attrs, res.qualified, decision.reason)

    def check_path(self, user: User, path: str) -> None:
        """Authorize a non-resource request (discovery) as ``get`` on its path."""
        attrs = Attributes(user, "get", path=path)
        decision = self.decide(attrs)
        if not decision.allowed:
            raise forbidden(attrs, "", decision.reason)

    def review(self, user: User, res: Resource, body: Obj) -> Obj:
        """Answer a SelfSubjectAccessReview or SelfSubjectRulesReview from RBAC (nothing is stored)."""
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        spec = body.get("spec") or {}
        answer: Obj = {"kind": res.kind, "apiVersion": res.api_version, "metadata": {"creationTimestamp": None},
                       "spec": spec}
        if res.plural == "selfsubjectrulesreviews":
            namespace = str(spec.get("namespace") or "")
            rules, non_resource, incomplete, error = self.authorizer.rules(user, namespace)
            status: Obj = {"resourceRules": rules, "nonResourceRules": non_resource, "incomplete": incomplete}
            if error:
                status["evaluationError"] = error
            answer["status"] = status
            return answer
        resource, non_resource_attrs = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if isinstance(resource, dict):
            attrs = Attributes(user, str(resource.get("verb") or ""), str(resource.get("group") or ""),
                               str(resource.get("resource") or ""), str(resource.get("subresource") or ""),
                               str(resource.get("namespace") or ""), str(resource.get("name") or ""))
        elif isinstance(non_resource_attrs, dict):
            attrs = Attributes(user, str(non_resource_attrs.get("verb") or ""),
                               path=str(non_resource_attrs.get("path") or ""))
        else:
            raise invalid(res.kind, "", [Cause("FieldValueRequired", "spec.resourceAttributes",
                                               "Required value: exactly one of nonResourceAttributes or "
                                               "resourceAttributes must be specified")])
        decision = self.decide(attrs)
        answer["status"] = {"allowed": decision.allowed}
        if decision.reason:
            answer["status"]["reason"] = decision.reason
        return answer

    # -- pods and their ephemeral containers

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

    # -- REST verbs with pod side effects (called by the handler; raise ApiError)

    def rest_delete(self, res: Resource, namespace: str | None, name: str, *, dry_run: bool = False) -> Obj:
        if dry_run:
            return self.rest_get(res, namespace, name)
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
                    change: Callable[[Obj], Any], *, dry_run: bool = False) -> Obj:
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
            if dry_run:
                return copy.deepcopy(new)
            self._store(res, key, new, "MODIFIED")
            result = copy.deepcopy(new)
        for container in started:
            sink = _ContainerSink(self, namespace or "", name, current["metadata"]["uid"], container)
            self.runtime.start(namespace or "", name, copy.deepcopy(container), sink)
        return result

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
        level = ns_labels.get(POD_SECURITY_LABEL)
        if level in ("restricted", "baseline") and added:
            version = ns_labels.get("pod-security.kubernetes.io/enforce-version", "latest")
            reasons = (restricted_violations(current.get("spec", {}), added) if level == "restricted"
                       else baseline_violations(added))
            if reasons:
                raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity '
                               f'"{level}:{version}": {", ".join(reasons)}',
                               status_details(find_resource("pods"), name))
        result = copy.deepcopy(current)
        for c in added:
            c.setdefault("imagePullPolicy", "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
        result.setdefault("spec", {})["ephemeralContainers"] = copy.deepcopy(new_list)
        return result, added
