"""The permissions ``capture`` needs, as RBAC rules.

One table, printed by ``kubectl netgen rbac`` and asked of the API server (SelfSubjectAccessReview)
before a capture changes anything.

In a namespace, a Role is enough: the pods and what owns them, the Services and EndpointSlices of the
inventory, adding the ephemeral container and reading its log, and watching pods so the ones that start
during the window are captured too. ``-A`` needs the same cluster-wide (a ClusterRole), plus the nodes and
namespaces a Role cannot grant. ``generate`` reads the capture directory's ``cluster.json``: it needs
nothing more (it reads the live cluster only without a capture directory, and then cluster-wide).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NAME = "netgen-capture"
"""The name of the Role/ClusterRole and of its binding."""


@dataclass(frozen=True)
class Rule:
    """One RBAC rule and why capture needs it."""

    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    required: bool = True
    """Without it the capture cannot run; else it runs with less (one warning says what)."""


NAMESPACE_RULES: tuple[Rule, ...] = (
    Rule("", ("pods",), ("get", "list"), "the target pods and their capture containers' state"),
    Rule("", ("pods",), ("watch",), "pods that start during the window are captured too", False),
    Rule("", ("pods/ephemeralcontainers",), ("patch",), "add the capture container (nothing restarts)"),
    Rule("", ("pods/log",), ("get",), "the capture travels back through the container log"),
    Rule("", ("services",), ("get", "list"), "svc/NAME targets; Service ClusterIPs in cluster.json", False),
    Rule("discovery.k8s.io", ("endpointslices",), ("list",), "Service backends in cluster.json", False),
    Rule("apps", ("deployments", "replicasets", "statefulsets", "daemonsets"), ("get", "list"),
         "deploy/sts/ds/rs targets and the workloads owning the pods"),
    Rule("batch", ("jobs", "cronjobs"), ("get", "list"), "job/cronjob targets and the workloads owning the pods"),
)
"""What ``capture -n NS`` needs in ``NS``."""

CLUSTER_RULES: tuple[Rule, ...] = (
    *NAMESPACE_RULES,
    Rule("", ("namespaces",), ("get", "list"), "namespace labels, for namespaceSelectors", False),
    Rule("", ("nodes",), ("list",), "node addresses: traffic from nodes is named, not an unknown address", False),
)
"""What ``capture -A`` needs cluster-wide."""


def rules_manifest(rules: Sequence[Rule]) -> list[dict[str, Any]]:
    """The ``rules:`` of a Role or ClusterRole: one per group and resource list, its verbs joined."""
    merged: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for rule in rules:
        verbs = merged.setdefault((rule.group, rule.resources), [])
        verbs += [v for v in rule.verbs if v not in verbs]
    return [{"apiGroups": [group], "resources": list(resources), "verbs": verbs}
            for (group, resources), verbs in merged.items()]


def role_manifests(namespace: str | None, subjects: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
    """A Role and RoleBinding in ``namespace``, or (``None``) a ClusterRole and ClusterRoleBinding.

    Args:
        namespace: Where ``capture -n`` will run; ``None`` for ``capture -A``.
        subjects: RBAC subjects (``{"kind": "User", "name": …}``, ``Group``, ``ServiceAccount`` with its
            namespace) to bind.
    """
    labels = {"app.kubernetes.io/managed-by": "kubectl-netgen"}
    scoped = namespace is not None
    meta: dict[str, Any] = {"name": NAME, **({"namespace": namespace} if scoped else {}), "labels": labels}
    role_kind = "Role" if scoped else "ClusterRole"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": role_kind, "metadata": dict(meta),
            "rules": rules_manifest(NAMESPACE_RULES if scoped else CLUSTER_RULES)}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": f"{role_kind}Binding", "metadata": dict(meta),
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": NAME},
               "subjects": [dict(s) for s in subjects]}
    return [role, binding]
