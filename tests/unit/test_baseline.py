"""Namespace baselines: the evaluator confirms DNS still works and the rest is denied; Kyverno output is golden.

Refresh the golden file deliberately: ``NETGEN_UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_baseline.py``.
"""

from __future__ import annotations

import json
import os
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_netgen.baseline import (
    KUBE_DNS,
    NAMESPACE_VARIABLE,
    baseline_policies,
    kyverno_policy,
    selected_namespaces,
)
from kubectl_netgen.errors import InputError
from kubectl_netgen.evaluate import Evaluator, parse_policies
from kubectl_netgen.model import (
    Inventory,
    LabelSelector,
    Namespace,
    Pod,
    Protocol,
    WorkloadKind,
    WorkloadRef,
    labels_of,
)
from kubectl_netgen.synth import Mode, PolicyPeer
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
SCHEMA = ROOT / "kubectl_netgen" / "data" / "kyverno-clusterpolicy-schema.json"
TCP, UDP = Protocol.TCP, Protocol.UDP


def pod(namespace: str, name: str, ips: tuple[str, ...], labels: dict[str, str]) -> Pod:
    return Pod(namespace=namespace, name=name, labels=labels_of(labels), ips=tuple(ip_address(a) for a in ips),
               node="node-a", host_network=False, workload=WorkloadRef(WorkloadKind.POD, namespace, name))


PODS = {
    "dns": pod("kube-system", "coredns-1", ("10.244.0.2", "fd00:244::2"), {"k8s-app": "kube-dns"}),
    "a1": pod("team-a", "a1", ("10.244.1.10", "fd00:244::110"), {"app": "one"}),
    "a2": pod("team-a", "a2", ("10.244.1.11",), {"app": "two"}),
    "b1": pod("team-b", "b1", ("10.244.2.10",), {"app": "one"}),
    "c1": pod("team-c", "c1", ("10.244.3.10",), {"app": "one"}),  # not baselined
}
INVENTORY = Inventory.create(
    namespaces=[Namespace(n, labels_of({"kubernetes.io/metadata.name": n}))
                for n in ("kube-system", "team-a", "team-b", "team-c")],
    pods=PODS.values())
IP = {k: str(p.ips[0]) for k, p in PODS.items()} | {
    "dns-v6": "fd00:244::2", "a1-v6": "fd00:244::110", "metadata": "169.254.169.254", "metadata-v6": "fd00:ec2::254",
    "external": "203.0.113.5", "external-v6": "2001:db8::5"}


def allowed(manifests: list[dict[str, Any]], src: str, dst: str, protocol: Protocol, port: int) -> bool:
    return Evaluator(parse_policies(manifests), INVENTORY).evaluate(IP[src], IP[dst], protocol, port).allowed


def names(manifests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in manifests]


# ----------------------------------------------------------------------------- baseline, evaluated

FLOWS_BOTH = [
    # DNS to the cluster DNS pods still works, over UDP and TCP, v4 and v6
    ("a1", "dns", UDP, 53, True),
    ("a1", "dns", TCP, 53, True),
    ("a1-v6", "dns-v6", UDP, 53, True),
    ("b1", "dns", UDP, 53, True),
    # ... and nothing else
    ("a1", "dns", UDP, 54, False),
    ("a1", "dns", TCP, 8080, False),
    ("a1", "a2", TCP, 80, False),          # pod -> pod in the namespace
    ("a1", "b1", TCP, 80, False),          # pod -> pod of another baselined namespace
    ("c1", "a1", TCP, 80, False),          # ingress from a namespace without baseline
    ("a1", "c1", TCP, 80, False),          # egress to it
    ("a1", "external", TCP, 443, False),   # pod -> external
    ("a1", "metadata", TCP, 80, False),
    ("external", "a1", TCP, 80, False),    # external -> pod
    ("c1", "external", TCP, 443, True),    # namespaces without a baseline are untouched
]


@pytest.mark.parametrize(("src", "dst", "protocol", "port", "expected"), FLOWS_BOTH)
def test_default_deny_keeps_dns(src: str, dst: str, protocol: Protocol, port: int, expected: bool) -> None:
    policies = baseline_policies(["team-a", "team-b"])
    assert allowed(policies, src, dst, protocol, port) is expected


def test_default_deny_manifests() -> None:
    policies = baseline_policies(["team-b", "team-a", "team-a"])
    assert names(policies) == [("team-a", "netgen-allow-dns"), ("team-a", "netgen-default-deny"),
                               ("team-b", "netgen-allow-dns"), ("team-b", "netgen-default-deny")]
    assert policies[1]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert policies[0]["spec"] == {
        "podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}
    assert all(p["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kubectl-netgen"} for p in policies)


@pytest.mark.parametrize(("src", "dst", "protocol", "port", "expected"), [
    ("a1", "a2", TCP, 80, True),
    ("a2", "a1", UDP, 9999, True),
    ("a1", "b1", TCP, 80, False),
    ("b1", "a1", TCP, 80, False),
    ("a1", "external", TCP, 443, False),
    ("a1", "dns", UDP, 53, True),
])
def test_allow_same_namespace(src: str, dst: str, protocol: Protocol, port: int, expected: bool) -> None:
    policies = baseline_policies(["team-a", "team-b"], allow_same_namespace=True)
    assert allowed(policies, src, dst, protocol, port) is expected


@pytest.mark.parametrize(("src", "dst", "protocol", "port", "expected"), [
    ("a1", "metadata", TCP, 80, False),
    ("a1-v6", "metadata-v6", TCP, 80, False),
    ("a1", "external", TCP, 443, True),
    ("a1-v6", "external-v6", TCP, 443, True),
    ("a1", "dns", UDP, 53, True),
    ("a1", "c1", TCP, 80, True),           # egress to pods stays open
    ("a1", "a2", TCP, 80, False),          # ... but ingress is denied
    ("external", "a1", TCP, 80, False),
    ("c1", "metadata", TCP, 80, True),     # namespaces without a baseline are untouched
])
def test_deny_metadata_with_ingress_mode(src: str, dst: str, protocol: Protocol, port: int, expected: bool) -> None:
    policies = baseline_policies(["team-a"], mode=Mode.INGRESS, deny_metadata=True)
    assert names(policies) == [("team-a", "netgen-default-deny"), ("team-a", "netgen-deny-metadata")]
    assert allowed(policies, src, dst, protocol, port) is expected


def test_deny_metadata_is_moot_when_egress_is_denied() -> None:
    """An allow-all-but-metadata policy would undo the egress default deny: none is written."""
    assert baseline_policies(["team-a"], deny_metadata=True) == baseline_policies(["team-a"])
    assert not allowed(baseline_policies(["team-a"], deny_metadata=True), "a1", "metadata", TCP, 80)


@pytest.mark.parametrize(("src", "dst", "protocol", "port", "expected"), [
    ("a1", "external", TCP, 443, False),
    ("a1", "dns", UDP, 53, True),
    ("a1", "a2", TCP, 80, True),           # same namespace allowed for egress; ingress is not restricted
    ("external", "a1", TCP, 80, True),
])
def test_egress_mode(src: str, dst: str, protocol: Protocol, port: int, expected: bool) -> None:
    policies = baseline_policies(["team-a"], mode=Mode.EGRESS, allow_same_namespace=True)
    assert allowed(policies, src, dst, protocol, port) is expected


def test_ingress_mode_has_no_dns_rule() -> None:
    assert names(baseline_policies(["team-a"], mode=Mode.INGRESS)) == [("team-a", "netgen-default-deny")]


def test_custom_dns_and_no_dns() -> None:
    dns = PolicyPeer("dns", LabelSelector((("app", "unbound"),)))
    policy = baseline_policies(["team-a"], dns=dns)[0]
    assert policy["spec"]["egress"][0]["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dns"}},
         "podSelector": {"matchLabels": {"app": "unbound"}}}]
    assert names(baseline_policies(["team-a"], dns=None)) == [("team-a", "netgen-default-deny")]
    assert not allowed(baseline_policies(["team-a"], dns=None), "a1", "dns", UDP, 53)


@pytest.mark.parametrize(("namespaces", "message"), [
    (["kube-system"], "will not baseline namespace kube-system"),
    (["Team-A"], "'Team-A' is not a namespace name"),
])
def test_bad_namespaces(namespaces: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        baseline_policies(namespaces)


def test_the_dns_namespace_is_protected() -> None:
    with pytest.raises(InputError, match="will not baseline namespace dns"):
        baseline_policies(["dns"], dns=PolicyPeer("dns", LabelSelector()))


def test_selected_namespaces() -> None:
    assert selected_namespaces(["team-b", "kube-system", "team-a", "dev-1", "dev-2"], exclude=["dev-*"]) == [
        "team-a", "team-b"]


def all_variants() -> list[dict[str, Any]]:
    out = []
    for mode in Mode:
        for deny_metadata in (False, True):
            for same in (False, True):
                out += baseline_policies(["team-a"], mode=mode, deny_metadata=deny_metadata, allow_same_namespace=same)
    return out


def test_every_manifest_is_valid_against_the_kubernetes_schema() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    need(kubernetes_validate is not None, "needs kubernetes-validate (pip install -e '.[test]')")
    assert kubernetes_validate is not None
    for document in all_variants():
        kubernetes_validate.validate(document, "1.33", strict=True)


# ----------------------------------------------------------------------------- Kyverno

GOLDEN_OPTIONS: dict[str, Any] = {"deny_metadata": True, "allow_same_namespace": True, "exclude": ["monitoring"]}


def test_kyverno_matches_the_golden_file() -> None:
    text = yaml.safe_dump(kyverno_policy(**GOLDEN_OPTIONS), sort_keys=False)
    path = GOLDEN / "baseline-kyverno.yaml"
    if os.environ.get("NETGEN_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with NETGEN_UPDATE_GOLDEN=1 to write it, then review it"
    assert text == path.read_text(), (
        "baseline-kyverno.yaml differs from the golden file (NETGEN_UPDATE_GOLDEN=1 refreshes it)")


def generated(policy: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """What Kyverno would create in ``namespace``: each rule's resource, with the namespace variable replaced."""
    out = []
    for rule in policy["spec"]["rules"]:
        gen = rule["generate"]
        assert gen["namespace"] == NAMESPACE_VARIABLE
        data = json.loads(json.dumps(gen["data"]))
        out.append({"apiVersion": gen["apiVersion"], "kind": gen["kind"],
                    "metadata": {"name": gen["name"], "namespace": namespace, **data["metadata"]},
                    "spec": data["spec"]})
    return out


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("deny_metadata", [False, True])
@pytest.mark.parametrize("same", [False, True])
def test_kyverno_generates_the_same_policies(mode: Mode, deny_metadata: bool, same: bool) -> None:
    options: dict[str, Any] = {"mode": mode, "deny_metadata": deny_metadata, "allow_same_namespace": same}
    policy = kyverno_policy(**options, exclude=["monitoring"])
    assert generated(policy, "team-a") == baseline_policies(["team-a"], **options)
    for rule in policy["spec"]["rules"]:
        assert rule["generate"]["synchronize"] is True and rule["generate"]["generateExisting"] is True
        assert rule["match"] == {"any": [{"resources": {"kinds": ["Namespace"]}}]}
        assert rule["exclude"] == {"any": [{"resources": {"names": ["kube-system", "monitoring"]}}]}
        assert len(rule["name"]) <= 63


def test_kyverno_output_is_valid_against_the_vendored_crd_schema() -> None:
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    need(jsonschema is not None, "needs jsonschema (installed with kubernetes-validate)")
    assert jsonschema is not None
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for mode in Mode:
        validator.validate(kyverno_policy(mode=mode, deny_metadata=True, allow_same_namespace=True, exclude=["x-*"]))
    # the schema has teeth: a misspelt generate field or a rule name over 63 characters is refused
    bad = kyverno_policy()
    bad["spec"]["rules"][0]["generate"]["synchronise"] = True
    assert not validator.is_valid(bad)
    bad = kyverno_policy(name="x")
    bad["spec"]["rules"][0]["name"] = "r" * 64
    assert not validator.is_valid(bad)


def test_kyverno_generated_policies_are_valid_network_policies() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    need(kubernetes_validate is not None, "needs kubernetes-validate (pip install -e '.[test]')")
    assert kubernetes_validate is not None
    for document in generated(kyverno_policy(deny_metadata=True, allow_same_namespace=True, mode=Mode.INGRESS),
                              "team-a"):
        kubernetes_validate.validate(document, "1.33", strict=True)


def test_kyverno_bad_exclude() -> None:
    with pytest.raises(InputError, match="--exclude 'Bad_NS'"):
        kyverno_policy(exclude=["Bad_NS"])


def test_kyverno_excludes_the_dns_namespace() -> None:
    policy = kyverno_policy(dns=PolicyPeer("dns", LabelSelector((("app", "unbound"),))))
    assert policy["spec"]["rules"][0]["exclude"]["any"][0]["resources"]["names"] == ["dns", "kube-system"]
    assert KUBE_DNS.namespace == "kube-system"
