"""The test cluster's namespace-scoped user: the Role a capture in one namespace needs, in one place.

:data:`SHOP_EDITOR_RULES` are the rules ``kubectl netgen rbac -n shop`` prints (taken from the plugin itself).
:func:`namespace_user` stores the Role and a RoleBinding for a new user and returns the user's token.
"""

from __future__ import annotations

from typing import Any

from kubectl_netgen.app import rbac_manifests
from tests.cluster.apiserver import ApiServer

RBAC_API = "rbac.authorization.k8s.io/v1"
SHOP_EDITOR = "shop-editor"

SHOP_EDITOR_RULES: list[dict[str, Any]] = rbac_manifests("shop")[0]["rules"]
"""The rules of the Role ``kubectl netgen rbac -n shop`` prints: the test cluster's namespace user has exactly
what the plugin says a capture in one namespace needs, no more (so a capture that needs more fails here)."""


def role(namespace: str, name: str = SHOP_EDITOR, rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Role manifest with ``rules`` (default :data:`SHOP_EDITOR_RULES`)."""
    return {"apiVersion": RBAC_API, "kind": "Role", "metadata": {"name": name, "namespace": namespace},
            "rules": [dict(r) for r in (SHOP_EDITOR_RULES if rules is None else rules)]}


def role_binding(namespace: str, user: str, role_name: str = SHOP_EDITOR) -> dict[str, Any]:
    """A RoleBinding of the Role ``role_name`` to the User ``user`` in ``namespace``."""
    return {"apiVersion": RBAC_API, "kind": "RoleBinding", "metadata": {"name": role_name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}


def namespace_user(server: ApiServer, namespace: str = "shop", user: str = SHOP_EDITOR,
                   rules: list[dict[str, Any]] | None = None) -> str:
    """Make ``user`` able to do exactly what ``rules`` (a Role in ``namespace``) allow; return its token."""
    server.put_object(role(namespace, user, rules))
    server.put_object(role_binding(namespace, user, user))
    return server.add_user(user)
