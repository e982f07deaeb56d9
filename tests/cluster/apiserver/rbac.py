"""RBAC as kube-apiserver's authorizer does it: users from bearer tokens, rules from Roles, ClusterRoles,
RoleBindings and ClusterRoleBindings, the Forbidden ``Status`` and the access reviews answered from them.

The objects are ordinary stored resources (``rbac.authorization.k8s.io/v1``, so ``kubectl apply -f`` of a
Role works); :class:`Authorizer` reads them through a callable that lists the stored objects of a kind.
What it covers, as upstream (``plugin/pkg/auth/authorizer/rbac``):

* a rule matches when its ``verbs``, ``apiGroups`` and ``resources`` contain the request's (``*`` matches
  all; ``pods/ephemeralcontainers`` names a subresource, ``*/log`` any resource's, a plain ``pods`` never
  matches a subresource) and, when ``resourceNames`` is set, the request names one of them (a list,
  watch or create, which name no object, then never matches);
* ``nonResourceURLs`` rules for paths (``/healthz``, ``/api/*``);
* a RoleBinding grants its Role's, or a ClusterRole's, rules in its own namespace only; a
  ClusterRoleBinding grants a ClusterRole's rules everywhere;
* subjects: ``User``, ``Group`` (every authenticated user is in ``system:authenticated``) and
  ``ServiceAccount`` (``system:serviceaccount:<ns>:<name>``);
* the denial reason (``RBAC: role.rbac.authorization.k8s.io "x" not found`` when a binding names a role
  that does not exist) and the allow reason (``RBAC: allowed by RoleBinding "b/ns" of Role "r" to User "u"``).

Aggregated ClusterRoles (``aggregationRule``) and escalation checks on writes of RBAC objects are not
modelled: tests write the rules they mean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from tests.cluster.apiserver.errors import ApiError
from tests.cluster.apiserver.resources import Obj

RBAC_GROUP = "rbac.authorization.k8s.io"
AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"


@dataclass(frozen=True)
class User:
    """Who a bearer token authenticates as."""

    name: str
    groups: tuple[str, ...] = field(default=(AUTHENTICATED,))


@dataclass(frozen=True)
class Attributes:
    """One request as the authorizer sees it (``authorizer.Attributes``)."""

    user: User
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    """Set (and ``resource`` empty) for a non-resource request such as ``/version``."""

    @property
    def is_resource(self) -> bool:
        """Whether this is a resource request (not a path such as ``/healthz``)."""
        return not self.path

    @property
    def full_resource(self) -> str:
        """``pods`` or ``pods/log``."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True)
class Decision:
    """The authorizer's answer and why (the SubjectAccessReview ``status.reason``)."""

    allowed: bool
    reason: str = ""


def _has(values: Sequence[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def _resource_matches(rule: Obj, attrs: Attributes) -> bool:
    combined = attrs.full_resource
    for res in rule.get("resources") or ():
        if res == "*" or res == combined:
            return True
        if attrs.subresource and res == f"*/{attrs.subresource}":
            return True
    return False


def rule_allows(rule: Obj, attrs: Attributes) -> bool:
    """Whether one PolicyRule allows the request (``rbac.RuleAllows``)."""
    verbs = rule.get("verbs") or ()
    if not attrs.is_resource:
        if not _has(verbs, attrs.verb):
            return False
        for url in rule.get("nonResourceURLs") or ():
            if url == "*" or url == attrs.path or (url.endswith("*") and attrs.path.startswith(url[:-1])):
                return True
        return False
    names = rule.get("resourceNames") or ()
    return (_has(verbs, attrs.verb) and _has(rule.get("apiGroups") or (), attrs.group)
            and _resource_matches(rule, attrs) and (not names or attrs.name in names))


def _subject_matches(subject: Obj, user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def _describe_subject(subject: Obj, binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace") or binding_namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


Lister = Callable[[str], list[Obj]]
"""Returns copies of the stored objects of a kind (``Role``, ``ClusterRoleBinding``...)."""


class Authorizer:
    """Decides requests from the stored RBAC objects (read afresh on every decision)."""

    def __init__(self, objects: Lister) -> None:
        """Read Roles, ClusterRoles and their bindings through ``objects``."""
        self._objects = objects

    def _role_rules(self, ref: Obj, binding_namespace: str, errors: list[str]) -> list[Obj]:
        kind, name = ref.get("kind"), ref.get("name")
        if kind == "ClusterRole":
            found = [r for r in self._objects("ClusterRole") if r["metadata"]["name"] == name]
            plural = "clusterroles"
        else:
            found = [r for r in self._objects("Role")
                     if r["metadata"]["name"] == name and r["metadata"].get("namespace") == binding_namespace]
            plural = "roles"
        if not found:
            errors.append(f'{plural}.{RBAC_GROUP} "{name}" not found')
            return []
        return list(found[0].get("rules") or [])

    def _visit(self, user: User, namespace: str, errors: list[str]) -> Iterator[tuple[str, Obj]]:
        """Yield (who granted it, rule) for every rule that applies to ``user`` in ``namespace``."""
        for binding in self._objects("ClusterRoleBinding"):
            for subject in binding.get("subjects") or ():
                if _subject_matches(subject, user, ""):
                    ref = binding.get("roleRef") or {}
                    source = (f'ClusterRoleBinding "{binding["metadata"]["name"]}" of {ref.get("kind")} '
                              f'"{ref.get("name")}" to {_describe_subject(subject, "")}')
                    for rule in self._role_rules(ref, "", errors):
                        yield source, rule
                    break
        if not namespace:
            return
        for binding in self._objects("RoleBinding"):
            if binding["metadata"].get("namespace") != namespace:
                continue
            for subject in binding.get("subjects") or ():
                if _subject_matches(subject, user, namespace):
                    ref = binding.get("roleRef") or {}
                    source = (f'RoleBinding "{binding["metadata"]["name"]}/{namespace}" of {ref.get("kind")} '
                              f'"{ref.get("name")}" to {_describe_subject(subject, namespace)}')
                    for rule in self._role_rules(ref, namespace, errors):
                        yield source, rule
                    break

    def decide(self, attrs: Attributes) -> Decision:
        """Allow when some bound rule allows the request; the reason says which binding (or what went wrong)."""
        errors: list[str] = []
        for source, rule in self._visit(attrs.user, attrs.namespace, errors):
            if rule_allows(rule, attrs):
                return Decision(True, f"RBAC: allowed by {source}")
        reason = ""
        if errors:
            joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
            reason = f"RBAC: {joined}"
        return Decision(False, reason)

    def rules(self, user: User, namespace: str) -> tuple[list[Obj], list[Obj], bool, str]:
        """SelfSubjectRulesReview: (resource rules, non-resource rules, incomplete, evaluation error)."""
        errors: list[str] = []
        resource: list[Obj] = []
        non_resource: list[Obj] = []
        for _, rule in self._visit(user, namespace, errors):
            if rule.get("nonResourceURLs"):
                non_resource.append({"verbs": list(rule.get("verbs") or []),
                                     "nonResourceURLs": list(rule["nonResourceURLs"])})
            else:
                entry: Obj = {"verbs": list(rule.get("verbs") or []), "apiGroups": list(rule.get("apiGroups") or []),
                              "resources": list(rule.get("resources") or [])}
                if rule.get("resourceNames"):
                    entry["resourceNames"] = list(rule["resourceNames"])
                resource.append(entry)
        error = ", ".join(errors)
        return resource, non_resource, bool(errors), error


def forbidden(attrs: Attributes, qualified: str, reason: str = "") -> ApiError:
    """kube-apiserver's 403: ``<res> "<name>" is forbidden: User "<u>" cannot <verb> resource "<r>" in API group
    "<g>" in the namespace "<ns>"`` (``at the cluster scope`` without one), then ``: <reason>`` if any."""
    if not attrs.is_resource:
        message = f'forbidden: User "{attrs.user.name}" cannot {attrs.verb} path "{attrs.path}"'
        return ApiError(403, "Forbidden", message + (f": {reason}" if reason else ""), {})
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    why = (f'User "{attrs.user.name}" cannot {attrs.verb} resource "{attrs.full_resource}" in API group '
           f'"{attrs.group}" {scope}') + (f": {reason}" if reason else "")
    target = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details: Obj = {"kind": attrs.resource}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.group:
        details["group"] = attrs.group
    return ApiError(403, "Forbidden", f"{target} is forbidden: {why}", details)


def cluster_admin_objects() -> list[Obj]:
    """What every cluster starts with: ``cluster-admin`` for ``system:masters`` and ``system:basic-user``
    (access reviews of oneself) for every authenticated user."""
    meta = {"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}
    api = f"{RBAC_GROUP}/v1"
    return [
        {"apiVersion": api, "kind": "ClusterRole", "metadata": {"name": "cluster-admin", **meta},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                   {"nonResourceURLs": ["*"], "verbs": ["*"]}]},
        {"apiVersion": api, "kind": "ClusterRoleBinding", "metadata": {"name": "cluster-admin", **meta},
         "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": MASTERS}]},
        {"apiVersion": api, "kind": "ClusterRole", "metadata": {"name": "system:basic-user", **meta},
         "rules": [{"apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]}]},
        {"apiVersion": api, "kind": "ClusterRoleBinding", "metadata": {"name": "system:basic-user", **meta},
         "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "system:basic-user"},
         "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": AUTHENTICATED}]},
        {"apiVersion": api, "kind": "ClusterRole", "metadata": {"name": "system:discovery", **meta},
         "rules": [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                                        "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]},
        {"apiVersion": api, "kind": "ClusterRoleBinding", "metadata": {"name": "system:discovery", **meta},
         "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "system:discovery"},
         "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": AUTHENTICATED}]},
    ]
