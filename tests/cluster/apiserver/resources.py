"""The served API surface: which resource types exist, their names and groups, and the ``/version`` answer.

Everything else looks resources up here (:func:`find_resource` for a kind or plural, :func:`resource_at` for a
URL path); the discovery documents are built from :data:`RESOURCES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SERVER_VERSION: Obj = {
    "major": "1", "minor": "37", "gitVersion": "v1.37.0", "gitCommit": "0" * 40, "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc", "platform": "linux/amd64",
}


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
    verbs: tuple[str, ...] = ()
    """The verbs discovery lists (empty: :data:`VERBS`)."""

    @property
    def api_version(self) -> str:
        """``v1`` or ``<group>/<version>``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The name upstream messages use: ``pods``, ``deployments.apps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
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
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
             verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False,
             verbs=("create",)),
)
REVIEWS = ("selfsubjectaccessreviews", "selfsubjectrulesreviews")
"""Resources that are answered, never stored (create only)."""
GROUPS: tuple[tuple[str, str], ...] = tuple(dict.fromkeys((r.group, r.version) for r in RESOURCES if r.group))


def find_resource(name: str) -> Resource:
    """Return the resource for a kind (``Pod``), plural (``pods``) or qualified plural (``deployments.apps``)."""
    for r in RESOURCES:
        if name in (r.kind, r.plural, r.qualified, *r.short_names):
            return r
    raise KeyError(f"unknown resource {name!r}")


def resource_at(group: str, version: str, plural: str) -> Resource | None:
    for r in RESOURCES:
        if (r.group, r.version, r.plural) == (group, version, plural):
            return r
    return None
