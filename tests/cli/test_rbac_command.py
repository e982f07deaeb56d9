"""``kubectl netgen rbac``: the Role (or ClusterRole) capture needs, ready for ``kubectl apply``.

That a user bound to it can really capture is shown against the test cluster (tests/cluster); here the
documents themselves: valid RBAC objects, bound to the subjects asked for, granting what capture asks
the API server for before it starts (one table feeds both).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from kubectl_netgen.capturing.rbac import CLUSTER_RULES, NAMESPACE_RULES
from tests.conftest import need, run


def _grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_a_role_and_binding_in_the_namespace() -> None:
    result = run("rbac", "-n", "shop", "--user", "jane@example.com", "--group", "sre",
                 "--serviceaccount", "ci:netgen")
    assert result.exit_code == 0 and result.stderr == ""
    role, binding = yaml.safe_load_all(result.stdout)
    assert (role["kind"], role["metadata"]["name"], role["metadata"]["namespace"]) == ("Role", "netgen-capture", "shop")
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == "shop"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "netgen-capture"}
    assert binding["subjects"] == [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane@example.com"},
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "sre"},
        {"kind": "ServiceAccount", "name": "netgen", "namespace": "ci"}]
    grants = _grants(role)
    assert ("", "pods/ephemeralcontainers", "patch") in grants and ("", "pods/log", "get") in grants
    assert ("", "pods", "watch") in grants
    assert {("", "pods/ephemeralcontainers", v) for v in ("update", "create", "delete")}.isdisjoint(grants)
    assert not any(resource in ("nodes", "namespaces", "secrets") for _, resource, _ in grants)
    assert grants == {(r.group, res, v) for r in NAMESPACE_RULES for res in r.resources for v in r.verbs}


def test_cluster_wide_for_capture_all_namespaces() -> None:
    result = run("rbac", "--cluster", "-o", "json")
    assert result.exit_code == 0
    role, binding = json.loads(result.stdout)["items"]
    assert role["kind"] == "ClusterRole" and "namespace" not in role["metadata"]
    assert binding["kind"] == "ClusterRoleBinding" and binding["subjects"] == []
    assert ("", "nodes", "list") in _grants(role) and ("", "namespaces", "list") in _grants(role)
    assert _grants(role) == {(r.group, res, v) for r in CLUSTER_RULES for res in r.resources for v in r.verbs}
    assert "no subjects yet" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    ((), "give one of -n NAMESPACE"),
    (("-n", "shop", "--cluster"), "give one of -n NAMESPACE"),
    (("-n", "shop", "--serviceaccount", "netgen"), "'netgen' is not NAMESPACE:NAME"),
])
def test_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = run("rbac", *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert message in result.stderr


def test_documents_validate_against_the_kubernetes_schema() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    need(kubernetes_validate is not None, "needs kubernetes-validate (pip install -e '.[test]')")
    assert kubernetes_validate is not None
    for args in (("-n", "shop", "--user", "u"), ("--cluster", "--group", "g")):
        for document in yaml.safe_load_all(run("rbac", *args).stdout):
            kubernetes_validate.validate(document, "1.33", strict=True)
