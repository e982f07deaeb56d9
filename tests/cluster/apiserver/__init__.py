"""A small Kubernetes API server for tests: the REST protocol kubectl and the Python client speak.

:class:`ApiServer` serves plain HTTP on 127.0.0.1 (a free port, one thread per request) with bearer-token
auth, and keeps its objects in memory, seeded from a ``v1 List`` (``kubectl get ... -A -o json``). It
covers what kubectl-netgen and its tests use:

* legacy discovery (``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>/<version>``); the
  aggregated-discovery ``Accept`` is answered with the legacy JSON, which kubectl takes as "fall back";
* get, list (``labelSelector``, ``fieldSelector``), watch (``resourceVersion``, ``timeoutSeconds``),
  create, update (PUT), delete and merge / strategic-merge / JSON patches on the resources in
  :data:`RESOURCES`, each write also as ``dryRun=All`` (checked, answered, not persisted); every write
  bumps one global ``resourceVersion``;
* ``pods/ephemeralcontainers`` (get, patch, PUT) with upstream validation and PodSecurity "restricted"
  admission; each new ephemeral container is run by a :class:`~tests.cluster.runtime.ContainerRuntime`
  whose reports become ``status.ephemeralContainerStatuses`` (each a MODIFIED event) and the log;
* ``pods/log`` with ``container``, ``follow``, ``limitBytes``, ``sinceSeconds``, ``tailLines`` and
  ``timestamps``, and kubelet-like log rotation (see :class:`ContainerLog`);
* users by bearer token (:meth:`ApiServer.add_user`; the admin token is in ``system:masters``, bound to
  ``cluster-admin``) and RBAC from stored Roles, ClusterRoles and bindings (``rbac.authorization.k8s.io/v1``),
  with SelfSubjectAccessReview and SelfSubjectRulesReview answered from it (see :mod:`.rbac`);
  :meth:`ApiServer.deny` forbids on top of RBAC, for tests;
* errors as ``Status`` objects with upstream messages: 401, 403, 404, 409, 410, 422;
* lists in pages (``limit``, ``metadata.continue``; :meth:`ApiServer.compact` expires the tokens issued),
  and faults a test switches on (:meth:`ApiServer.inject`: 429 with ``Retry-After``, a dropped connection,
  a request never answered); :attr:`ApiServer.requests` records every request.

It serves HTTPS with a throwaway self-signed certificate (the kubeconfig carries it as
``certificate-authority-data``) because kubectl will not send a bearer token over plain http;
``tls=False`` serves plain http for clients that do (the Python client).

Typical use::

    with ApiServer(seed_list()) as server:
        server.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")
        ...  # run kubectl or the Python client with that kubeconfig

The package, by responsibility (imports point down: ``server -> handler, logs -> store -> selectors,
admission, patches -> errors -> resources``):

* :mod:`.resources` — the served resource types and the ``/version`` answer;
* :mod:`.errors` — ``Status`` errors with upstream messages;
* :mod:`.formats` — Kubernetes timestamps and Go booleans;
* :mod:`.selectors` — label and field selectors;
* :mod:`.patches` — merge, strategic-merge and JSON patches;
* :mod:`.admission` — ephemeral-container validation and PodSecurity "restricted";
* :mod:`.faults` — throttled, dropped and hung requests;
* :mod:`.rbac` — users, RBAC rule matching, the Forbidden answer and access reviews;
* :mod:`.protobuf` — the protobuf access-review bodies ``kubectl auth can-i`` sends;
* :mod:`.store` — the object store, resourceVersions, watch events and the generic REST verbs;
* :mod:`.logs` — container logs, rotation and ``pods/log`` options;
* :mod:`.handler` — HTTP routing, auth, discovery documents (and the sliver of OpenAPI v3 that lets
  ``kubectl apply`` leave validation to the server) and streaming;
* :mod:`.server` — :class:`ApiServer`: lifecycle, TLS, kubeconfig, users, pods and their ephemeral containers.
"""

from __future__ import annotations

from tests.cluster.apiserver.admission import (
    BASELINE_CAPABILITIES,
    POD_SECURITY_LABEL,
    restricted_violations,
    validate_ephemeral_containers,
)
from tests.cluster.apiserver.errors import ApiError, Cause, bad_request, conflict, invalid, not_found
from tests.cluster.apiserver.formats import parse_bool, rfc3339, rfc3339_nano
from tests.cluster.apiserver.logs import ContainerLog, LogLine, LogOptions
from tests.cluster.apiserver.patches import PATCHERS, json_patch, merge_patch, strategic_merge_patch
from tests.cluster.apiserver.resources import GROUPS, RESOURCES, SERVER_VERSION, Obj, Resource, find_resource
from tests.cluster.apiserver.selectors import FIELD_SELECTABLE, Requirement, parse_field_selector, parse_label_selector
from tests.cluster.apiserver.server import ApiServer, self_signed_certificate
from tests.cluster.apiserver.store import DEFAULT_WATCH_TIMEOUT, Key, WatchEvent

__all__ = [
    "BASELINE_CAPABILITIES",
    "DEFAULT_WATCH_TIMEOUT",
    "FIELD_SELECTABLE",
    "GROUPS",
    "PATCHERS",
    "POD_SECURITY_LABEL",
    "RESOURCES",
    "SERVER_VERSION",
    "ApiError",
    "ApiServer",
    "Cause",
    "ContainerLog",
    "Key",
    "LogLine",
    "LogOptions",
    "Obj",
    "Requirement",
    "Resource",
    "WatchEvent",
    "bad_request",
    "conflict",
    "find_resource",
    "invalid",
    "json_patch",
    "merge_patch",
    "not_found",
    "parse_bool",
    "parse_field_selector",
    "parse_label_selector",
    "restricted_violations",
    "rfc3339",
    "rfc3339_nano",
    "self_signed_certificate",
    "strategic_merge_patch",
    "validate_ephemeral_containers",
]
