"""Synthesis: observations -> NetworkPolicies, exact manifests, determinism and a semantic self-check."""

from __future__ import annotations

import random
from typing import Any

import pytest

from kubectl_netgen.model import (
    LabelSelector,
    PolicyDirection,
    Protocol,
    Workload,
    WorkloadKind,
    WorkloadRef,
    labels_of,
)
from kubectl_netgen.render import policies_yaml
from kubectl_netgen.synth import (
    Mode,
    Observation,
    PolicyPeer,
    external_names,
    policy_name,
    synthesize,
)


def workload(namespace: str, name: str, kind: WorkloadKind = WorkloadKind.DEPLOYMENT, **labels: str) -> Workload:
    return Workload(WorkloadRef(kind, namespace, name), LabelSelector(labels_of(labels or {"app": name})))


FRONTEND = workload("shop", "frontend")
CHECKOUT = workload("shop", "checkout")
MONITOR = workload("monitoring", "prometheus", **{"app.kubernetes.io/name": "prometheus"})
COREDNS = workload("kube-system", "coredns", **{"k8s-app": "kube-dns"})
DNS = PolicyPeer("kube-system", COREDNS.selector)
API = PolicyPeer(cidr="203.0.113.10/32", names=("api.payments.example.com", "edge.payments.example.net"))


def peer(w: Workload) -> PolicyPeer:
    return PolicyPeer(w.ref.namespace, w.selector)


def scenario() -> list[Observation]:
    return [
        Observation(FRONTEND, PolicyDirection.EGRESS, peer(CHECKOUT), Protocol.TCP, 8080),
        Observation(FRONTEND, PolicyDirection.EGRESS, peer(CHECKOUT), Protocol.TCP, 8081),
        Observation(FRONTEND, PolicyDirection.EGRESS, API, Protocol.TCP, 443),
        Observation(FRONTEND, PolicyDirection.EGRESS, DNS, Protocol.UDP, 53),
        Observation(FRONTEND, PolicyDirection.INGRESS, peer(MONITOR), Protocol.TCP, 9090),
        Observation(FRONTEND, PolicyDirection.INGRESS, peer(CHECKOUT), Protocol.TCP, 8080),
        Observation(CHECKOUT, PolicyDirection.INGRESS, peer(FRONTEND), Protocol.TCP, 8080),
        Observation(CHECKOUT, PolicyDirection.INGRESS, peer(FRONTEND), Protocol.TCP, 8081),
    ]


def test_frontend_policy_exactly() -> None:
    policies = synthesize(scenario(), dns=DNS)
    assert [p["metadata"]["name"] for p in policies] == ["checkout-netgen", "frontend-netgen"]
    assert policies[1] == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "frontend-netgen",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/managed-by": "kubectl-netgen"},
            "annotations": {
                "netgen.io/external-peers": '{"203.0.113.10/32":["api.payments.example.com",'
                                            '"edge.payments.example.net"]}',
            },
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": "frontend"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                           "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
                 "ports": [{"protocol": "TCP", "port": 9090}]},
                {"from": [{"podSelector": {"matchLabels": {"app": "checkout"}}}],
                 "ports": [{"protocol": "TCP", "port": 8080}]},
            ],
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]},
                {"to": [{"podSelector": {"matchLabels": {"app": "checkout"}}}],
                 "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 8081}]},
                {"to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}], "ports": [{"protocol": "TCP", "port": 443}]},
            ],
        },
    }


def test_yaml_is_multi_document_with_names_beside_ip_blocks() -> None:
    policies = synthesize(scenario(), dns=DNS)
    text = policies_yaml(policies, external_names(policies))
    assert text.count("\n---\n") == 1 and text.startswith("apiVersion: networking.k8s.io/v1\n")
    assert ("  - to:\n    - ipBlock:\n        cidr: 203.0.113.10/32  # api.payments.example.com, "
            "edge.payments.example.net\n    ports:\n") in text
    import yaml

    assert list(yaml.safe_load_all(text)) == policies


def test_deterministic_whatever_the_order() -> None:
    observations = scenario()
    first = policies_yaml(synthesize(observations, dns=DNS))
    for seed in range(5):
        random.Random(seed).shuffle(observations)
        assert policies_yaml(synthesize(observations, dns=DNS)) == first


@pytest.mark.parametrize(("mode", "types"), [(Mode.INGRESS, ["Ingress"]), (Mode.EGRESS, ["Egress"]),
                                             (Mode.BOTH, ["Ingress", "Egress"])])
def test_modes(mode: Mode, types: list[str]) -> None:
    [_, frontend] = synthesize(scenario(), mode=mode, dns=DNS)
    assert frontend["spec"]["policyTypes"] == types
    assert ("ingress" in frontend["spec"]) == ("Ingress" in types)
    assert ("egress" in frontend["spec"]) == ("Egress" in types)


def test_dns_rule_only_when_egress_is_restricted_and_opt_out() -> None:
    [checkout] = synthesize([], workloads=[CHECKOUT], dns=DNS)
    assert checkout["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]
    assert "ingress" not in checkout["spec"]  # captured, nothing came in: all ingress denied
    [no_dns] = synthesize([], workloads=[CHECKOUT], dns=None)
    assert no_dns["spec"] == {"podSelector": {"matchLabels": {"app": "checkout"}},
                              "policyTypes": ["Ingress", "Egress"]}
    [ingress_only] = synthesize([], workloads=[CHECKOUT], dns=DNS, mode=Mode.INGRESS)
    assert "egress" not in ingress_only["spec"]


def test_port_ranges_only_when_asked() -> None:
    observations = [Observation(FRONTEND, PolicyDirection.EGRESS, peer(CHECKOUT), Protocol.TCP, p)
                    for p in (8080, 8081, 8082, 9000)]
    observations.append(Observation(FRONTEND, PolicyDirection.EGRESS, peer(CHECKOUT), Protocol.UDP, 8083))
    [plain] = synthesize(observations)
    assert len(plain["spec"]["egress"][0]["ports"]) == 5
    [ranged] = synthesize(observations, port_ranges=True)
    assert ranged["spec"]["egress"][0]["ports"] == [
        {"protocol": "TCP", "port": 8080, "endPort": 8082},
        {"protocol": "TCP", "port": 9000},
        {"protocol": "UDP", "port": 8083},
    ]


def test_names_are_dns_1123_and_bounded() -> None:
    assert policy_name(FRONTEND) == "frontend-netgen"
    long = workload("shop", "a" * 260)
    name = policy_name(long)
    assert len(name) <= 253 and name.endswith("-netgen") and name == policy_name(long)


# A minimal NetworkPolicy check (the evaluator issue brings the full engine): is each observation allowed?
def _selected(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _allowed(policy: dict[str, Any], o: Observation, peer_labels: dict[str, str], peer_ns: str | None) -> bool:
    key, peers_key = ("ingress", "from") if o.direction is PolicyDirection.INGRESS else ("egress", "to")
    for rule in policy["spec"].get(key, []):
        ports_ok = any(p["protocol"] == o.protocol.value and p["port"] <= o.port <= p.get("endPort", p["port"])
                       for p in rule["ports"])
        for p in rule[peers_key]:
            if "ipBlock" in p:
                hit = o.peer.cidr == p["ipBlock"]["cidr"]
            else:
                ns = p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name",
                                                                                 policy["metadata"]["namespace"])
                hit = ns == peer_ns and _selected(p["podSelector"], peer_labels)
            if hit and ports_ok:
                return True
    return False


def test_every_observation_is_allowed_by_the_result() -> None:
    policies = {p["metadata"]["name"]: p for p in synthesize(scenario(), dns=DNS, port_ranges=True)}
    for o in scenario():
        policy = policies[policy_name(o.workload)]
        labels = dict(o.peer.selector.match_labels) if o.peer.selector else {}
        assert _allowed(policy, o, labels, o.peer.namespace), o
    stranger = Observation(FRONTEND, PolicyDirection.EGRESS, peer(MONITOR), Protocol.TCP, 9090)
    assert not _allowed(policies["frontend-netgen"], stranger, {"app.kubernetes.io/name": "prometheus"}, "monitoring")
