"""What a capture may do: the RBAC template ``kubectl netgen rbac`` prints, and the check before a capture.

Both come from one table (:mod:`kubectl_netgen.capturing.rbac`): what ``rbac`` grants is exactly what
:func:`check_access` asks the API server about, so a user bound to the printed Role passes the check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kubectl_netgen.app.captures import Warn
from kubectl_netgen.capturing import rbac
from kubectl_netgen.errors import ForbiddenError, InputError

RBAC_GROUP = "rbac.authorization.k8s.io"


def rbac_manifests(namespace: str | None, *, users: Sequence[str] = (), groups: Sequence[str] = (),
                   service_accounts: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The Role and RoleBinding that ``capture -n namespace`` needs (``None``: the ClusterRole pair for ``-A``).

    Args:
        namespace: The namespace, or ``None`` for cluster-wide.
        users: User names to bind.
        groups: Group names to bind.
        service_accounts: ``NAMESPACE:NAME`` of service accounts to bind (as ``kubectl create rolebinding``).

    Raises:
        InputError: A service account is not ``NAMESPACE:NAME``.
    """
    subjects: list[dict[str, str]] = [{"kind": "User", "apiGroup": RBAC_GROUP, "name": u} for u in users]
    subjects += [{"kind": "Group", "apiGroup": RBAC_GROUP, "name": g} for g in groups]
    for account in service_accounts:
        ns, sep, name = account.partition(":")
        if not sep or not ns or not name:
            raise InputError(f"--serviceaccount {account!r} is not NAMESPACE:NAME")
        subjects.append({"kind": "ServiceAccount", "name": name, "namespace": ns})
    return rbac.role_manifests(namespace, subjects)


def _permissions(namespace: str | None, rules: Sequence[rbac.Rule]) -> list[tuple[Any, rbac.Rule]]:
    from kubectl_netgen.kube.access import Permission

    found = []
    for rule in rules:
        for resource in rule.resources:
            plural, _, sub = resource.partition("/")
            scoped = namespace if plural not in ("nodes", "namespaces") else None
            found += [(Permission(verb, plural, rule.group, sub, scoped), rule) for verb in rule.verbs]
    return found


def check_access(cluster: Any, namespace: str | None, warn: Warn) -> None:
    """Ask the API server, before anything changes, whether the user may capture in ``namespace`` (``None``: all).

    Every missing permission the capture cannot do without is named in one error; missing optional ones
    (what the inventory would hold) are one warning saying what ``generate`` will lack. A server without
    SelfSubjectAccessReview is not asked: the requests themselves will say what is refused.

    Raises:
        ForbiddenError: A required permission is missing (all of them are named).
        ClusterError: The server cannot be asked.
    """
    from kubectl_netgen.kube.access import missing_permissions

    wanted = _permissions(namespace, rbac.NAMESPACE_RULES if namespace is not None else rbac.CLUSTER_RULES)
    missing = missing_permissions(cluster, [p for p, _ in wanted])
    if not missing:
        return
    lacking = set(missing)
    required = [str(p) for p, rule in wanted if p in lacking and rule.required]
    optional = [f"{p} ({rule.why})" for p, rule in wanted if p in lacking and not rule.required]
    template = f"kubectl netgen rbac -n {namespace}" if namespace is not None else "kubectl netgen rbac --cluster"
    if required:
        raise ForbiddenError(f"you may not {', '.join(required)}: a capture needs them; ask your cluster admin "
                             f"to grant them ('{template}' prints a Role that does)")
    warn(f"you may not {'; '.join(optional)}: the capture goes on without (ask for them with '{template}')")
