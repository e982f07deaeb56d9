"""RBAC in the test API server as kube-apiserver does it: users, Roles and bindings, reviews, 403 messages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.apiserver import ApiServer
from tests.cluster.rbac import SHOP_EDITOR_RULES, namespace_user, role, role_binding
from tests.cluster.seed import seed_list
from tests.cluster.test_apiserver import kubectl, raw


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer(seed_list()) as api:
        yield api


def review(server: ApiServer, token: str, **attributes: str) -> dict[str, Any]:
    status, body = raw(server, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                       {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                        "spec": {"resourceAttributes": attributes}}, token=token)
    assert status == 201, body
    return dict(body["status"])


def test_a_new_user_can_do_nothing_but_review_itself(server: ApiServer) -> None:
    token = server.add_user("jane")
    status, body = raw(server, "GET", "/api/v1/namespaces/shop/pods", token=token)
    assert status == 403
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": 'pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the '
                               'namespace "shop"',
                    "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403}
    status, body = raw(server, "GET", "/api/v1/nodes/node-a", token=token)
    assert body["message"] == ('nodes "node-a" is forbidden: User "jane" cannot get resource "nodes" in API group "" '
                               "at the cluster scope")
    assert body["details"] == {"name": "node-a", "kind": "nodes"}
    status, body = raw(server, "GET", "/apis/apps/v1/deployments", token=token)
    assert body["message"] == ('deployments.apps is forbidden: User "jane" cannot list resource "deployments" in API '
                               'group "apps" at the cluster scope')
    assert body["details"] == {"group": "apps", "kind": "deployments"}
    assert review(server, token, verb="list", resource="pods", namespace="shop") == {"allowed": False}
    assert raw(server, "GET", "/apis", token=token)[0] == 200  # discovery: system:discovery


def test_the_admin_token_is_cluster_admin(server: ApiServer) -> None:
    assert review(server, server.token, verb="patch", resource="pods", subresource="ephemeralcontainers",
                  namespace="shop") == {
        "allowed": True,
        "reason": 'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group '
                  '"system:masters"'}
    # Take cluster-admin away and the admin is an ordinary user.
    server.rest_delete(server_res("clusterrolebindings"), None, "cluster-admin")
    status, body = raw(server, "GET", "/api/v1/pods")
    assert status == 403 and body["message"].startswith('pods is forbidden: User "netgen-test" cannot list')


def server_res(plural: str) -> Any:
    from tests.cluster.apiserver import find_resource

    return find_resource(plural)


def test_namespace_role_grants_only_its_namespace_and_subresources(server: ApiServer) -> None:
    token = namespace_user(server, "shop", "editor")
    assert raw(server, "GET", "/api/v1/namespaces/shop/pods", token=token)[0] == 200
    assert raw(server, "GET", "/api/v1/namespaces/shop/pods/db-0/log", token=token)[0] == 200
    status, body = raw(server, "GET", "/api/v1/namespaces/kube-system/pods", token=token)
    assert status == 403 and body["message"].endswith('in the namespace "kube-system"')
    status, body = raw(server, "GET", "/api/v1/pods", token=token)
    assert status == 403 and body["message"].endswith("at the cluster scope")
    # The Role says pods/ephemeralcontainers patch, not pods patch, and no delete at all.
    status, body = raw(server, "PATCH", "/api/v1/namespaces/shop/pods/db-0", {"metadata": {"labels": {"a": "b"}}},
                       content_type="application/merge-patch+json", token=token)
    assert status == 403 and body["message"] == (
        'pods "db-0" is forbidden: User "editor" cannot patch resource "pods" in API group "" in the namespace '
        '"shop"')
    status, body = raw(server, "PATCH", "/api/v1/namespaces/shop/pods/db-0/ephemeralcontainers",
                       {"spec": {"ephemeralContainers": []}}, content_type="application/strategic-merge-patch+json",
                       token=token)
    assert status == 200, body
    status, body = raw(server, "DELETE", "/api/v1/namespaces/shop/pods/db-0", token=token)
    assert status == 403 and 'cannot delete resource "pods"' in body["message"]
    assert review(server, token, verb="get", resource="pods", subresource="log", namespace="shop")["allowed"]
    assert not review(server, token, verb="get", resource="pods", subresource="log", namespace="payments")["allowed"]
    assert not review(server, token, verb="list", resource="nodes")["allowed"]


@pytest.mark.parametrize(("rule", "request_", "allowed"), [
    ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}, ("get", "apps", "deployments", "", "web"), True),
    ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}, ("list", "apps", "deployments", "", ""), False),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}, ("get", "", "pods", "log", "db-0"), False),
    ({"apiGroups": [""], "resources": ["*/log"], "verbs": ["get"]}, ("get", "", "pods", "log", "db-0"), True),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["db-0"]},
     ("get", "", "pods", "", "db-0"), True),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["db-0"]},
     ("get", "", "pods", "", "web"), False),
    ({"apiGroups": [""], "resources": ["pods"], "verbs": ["list"], "resourceNames": ["db-0"]},
     ("list", "", "pods", "", ""), False),
    ({"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"]}, ("get", "", "pods", "", "db-0"), False),
])
def test_rule_matching(server: ApiServer, rule: dict[str, Any], request_: tuple[str, str, str, str, str],
                       allowed: bool) -> None:
    token = namespace_user(server, "shop", "u", rules=[rule])
    verb, group, resource, sub, name = request_
    assert review(server, token, verb=verb, group=group, resource=resource, subresource=sub, name=name,
                  namespace="shop")["allowed"] is allowed


def test_cluster_role_via_role_binding_and_missing_role(server: ApiServer) -> None:
    token = server.add_user("ops", groups=("ops-team",))
    server.put_object({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": {"name": "pod-reader"},
                       "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
    server.put_object({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "readers", "namespace": "payments"},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                   "name": "pod-reader"},
                       "subjects": [{"kind": "Group", "name": "ops-team"}]})
    assert review(server, token, verb="list", resource="pods", namespace="payments") == {
        "allowed": True,
        "reason": 'RBAC: allowed by RoleBinding "readers/payments" of ClusterRole "pod-reader" to Group "ops-team"'}
    assert not review(server, token, verb="list", resource="pods", namespace="shop")["allowed"]
    server.put_object(role_binding("shop", "ops", "gone"))
    assert raw(server, "GET", "/api/v1/namespaces/shop/pods", token=token)[1]["message"] == (
        'pods is forbidden: User "ops" cannot list resource "pods" in API group "" in the namespace "shop": RBAC: '
        'roles.rbac.authorization.k8s.io "gone" not found')


def test_rules_review(server: ApiServer) -> None:
    token = namespace_user(server, "shop", "editor")
    status, body = raw(server, "POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                       {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                        "spec": {"namespace": "shop"}}, token=token)
    assert status == 201, body
    rules = body["status"]["resourceRules"]
    for rule in SHOP_EDITOR_RULES:
        assert {"verbs": rule["verbs"], "apiGroups": rule["apiGroups"], "resources": rule["resources"]} in rules
    assert body["status"]["incomplete"] is False


def test_kubectl_applies_rbac_and_can_i(server: ApiServer, tmp_path: Path) -> None:
    admin = server.write_kubeconfig(tmp_path / "admin")
    manifest = tmp_path / "rbac.yaml"  # two documents, as `kubectl netgen rbac` prints them
    manifest.write_text("---\n".join(json.dumps(o) + "\n" for o in (role("shop", "viewer"),
                                                                      role_binding("shop", "viewer", "viewer"))))
    applied = kubectl(admin, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    assert "role.rbac.authorization.k8s.io/viewer created" in applied.stdout
    again = kubectl(admin, "apply", "-f", str(manifest))
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stderr
    viewer = server.write_kubeconfig(tmp_path / "viewer", namespace="shop", token=server.add_user("viewer"))
    can_patch = kubectl(viewer, "auth", "can-i", "patch", "pods", "--subresource=ephemeralcontainers")
    assert can_patch.stdout.strip() == "yes", can_patch.stderr
    assert kubectl(viewer, "auth", "can-i", "list", "nodes").stdout.strip() == "no"
    assert kubectl(viewer, "auth", "can-i", "list", "pods", "-n", "payments").stdout.strip() == "no"
    pods = kubectl(viewer, "get", "pods", "-o", "name")
    assert pods.returncode == 0 and "pod/db-0" in pods.stdout.split(), pods.stderr
    denied = kubectl(viewer, "get", "pods", "-A")
    assert denied.returncode == 1
    assert ('Error from server (Forbidden): pods is forbidden: User "viewer" cannot list resource "pods" in API group '
            '"" at the cluster scope') in denied.stderr
