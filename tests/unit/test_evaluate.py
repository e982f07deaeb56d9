"""The NetworkPolicy evaluation engine: Kubernetes semantics case by case, its reasons, and its invariants."""

from __future__ import annotations

import json
from dataclasses import replace
from ipaddress import ip_address, ip_network
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubectl_netgen.errors import InputError
from kubectl_netgen.evaluate import (
    Action,
    AdminNetworkPolicy,
    AdminPeer,
    AdminRule,
    Evaluator,
    IPBlock,
    NetworkPolicy,
    PolicyPeer,
    PolicySet,
    PortSpec,
    Rule,
    RuleRef,
    Subject,
    Tier,
    Verdict,
    endpoint,
    evaluate,
    parse_policies,
)
from kubectl_netgen.evaluate.matching import BoundedCache
from kubectl_netgen.model import (
    ContainerPort,
    Inventory,
    LabelSelector,
    Namespace,
    Node,
    Pod,
    PolicyDirection,
    Protocol,
    SelectorRequirement,
    WorkloadKind,
    WorkloadRef,
    labels_of,
)

TCP, UDP, SCTP, ICMP = Protocol.TCP, Protocol.UDP, Protocol.SCTP, Protocol.ICMP
INGRESS, EGRESS = PolicyDirection.INGRESS, PolicyDirection.EGRESS


def pod(namespace: str, name: str, ips: tuple[str, ...], node: str, labels: dict[str, str],
        ports: tuple[ContainerPort, ...] = (), host_network: bool = False) -> Pod:
    return Pod(namespace=namespace, name=name, labels=labels_of(labels), ips=tuple(ip_address(a) for a in ips),
               node=node, host_network=host_network, workload=WorkloadRef(WorkloadKind.POD, namespace, name),
               ports=ports)


# ----------------------------------------------------------------------------- the cluster of the cases

WEB = pod("shop", "web-1", ("10.244.1.10", "fd00:244::10"), "node-a", {"app": "web"}, (ContainerPort(80, TCP, "http"),))
API_1 = pod("shop", "api-1", ("10.244.1.20",), "node-a", {"app": "api"},
            (ContainerPort(8080, TCP, "http"), ContainerPort(9000, UDP, "stats")))
API_2 = pod("shop", "api-2", ("10.244.2.20",), "node-b", {"app": "api"}, (ContainerPort(9090, TCP, "http"),))
DB = pod("shop", "db-0", ("10.244.2.30",), "node-b", {"app": "db"},
         (ContainerPort(5432, TCP, "postgres"), ContainerPort(3868, SCTP, "diameter")))
FRONTEND = pod("web", "frontend", ("10.244.1.40",), "node-a", {"app": "frontend"})
ADMIN = pod("web", "admin", ("10.244.1.41",), "node-a", {"app": "admin"})
TOOL = pod("dev", "tool", ("10.244.2.50",), "node-b", {"app": "tool"})
STRAY = pod("ghost", "stray", ("10.244.2.60",), "node-b", {"app": "web"})
"""In a namespace the inventory does not list: it still has the kubernetes.io/metadata.name label."""
EXPORTER = pod("monitoring", "exporter", ("10.0.0.2",), "node-b", {"app": "exporter"}, host_network=True)
"""A hostNetwork pod: its address is node-b's, so it is the node, not a pod."""

INVENTORY = Inventory.create(
    namespaces=[Namespace("shop", labels_of({"team": "shop", "env": "prod"})),
                Namespace("web", labels_of({"team": "web", "env": "prod"})),
                Namespace("dev", labels_of({"env": "dev"})),
                Namespace("monitoring")],
    nodes=[Node("node-a", (ip_address("10.0.0.1"),)), Node("node-b", (ip_address("10.0.0.2"),))],
    pods=[WEB, API_1, API_2, DB, FRONTEND, ADMIN, TOOL, STRAY, EXPORTER],
)
IP = {p.name: str(p.ips[0]) for p in INVENTORY.pods}
IP |= {"web-1-v6": "fd00:244::10", "node-a": "10.0.0.1", "node-b": "10.0.0.2", "outside": "203.0.113.7",
       "outside-2": "198.51.100.1", "outside-v6": "2001:db8::7"}


def np(name: str, namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    """A NetworkPolicy manifest; ``podSelector`` defaults to every pod."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"podSelector": {}, **spec}}


def app(name: str) -> dict[str, Any]:
    return {"matchLabels": {"app": name}}


def check(policies: list[dict[str, Any]], src: str, dst: str, protocol: Protocol = TCP,
          port: int | None = 80) -> Verdict:
    return evaluate(parse_policies(policies), INVENTORY, IP.get(src, src), IP.get(dst, dst), protocol, port)


DENY_ALL = np("default-deny", policyTypes=["Ingress", "Egress"])


def ingress_to(target: str, *rules: dict[str, Any], name: str = "p", namespace: str = "shop") -> dict[str, Any]:
    return np(name, namespace, podSelector=app(target), ingress=list(rules))


# ----------------------------------------------------------------------------- table of semantics

CASES: list[tuple[str, list[dict[str, Any]], str, str, Protocol, int | None, bool]] = [
    # isolation and policyTypes defaulting
    ("no policies allow everything", [], "web-1", "db-0", TCP, 5432, True),
    ("default deny ingress", [np("d", policyTypes=["Ingress"])], "web-1", "db-0", TCP, 5432, False),
    ("ingress [] without policyTypes denies ingress", [np("d", ingress=[])], "web-1", "db-0", TCP, 5432, False),
    ("a policy of another namespace does not isolate", [np("d", "web", policyTypes=["Ingress"])],
     "web-1", "db-0", TCP, 5432, True),
    ("a policy not selecting the pod does not isolate", [ingress_to("db")], "db-0", "api-1", TCP, 8080, True),
    ("egress rules without policyTypes imply Egress",
     [np("e", podSelector=app("web"), egress=[{"to": [{"podSelector": app("db")}]}])], "web-1", "api-1", TCP, 8080,
     False),
    ("... and allow what they list",
     [np("e", podSelector=app("web"), egress=[{"to": [{"podSelector": app("db")}]}])], "web-1", "db-0", TCP, 5432,
     True),
    ("egress [] without policyTypes isolates ingress only", [np("e", egress=[])], "web-1", "outside", TCP, 443, True),
    ("policyTypes [Egress] without rules denies egress", [np("e", policyTypes=["Egress"])],
     "web-1", "outside", TCP, 443, False),
    ("policyTypes [Egress] leaves ingress open", [np("e", policyTypes=["Egress"])], "outside", "web-1", TCP, 80, True),
    ("egress rules are ignored without Egress in policyTypes",
     [np("e", policyTypes=["Ingress"], ingress=[{}], egress=[{"to": [{"podSelector": app("db")}]}])],
     "web-1", "outside", TCP, 443, True),
    ("ingress [{}] allows everything", [np("a", policyTypes=["Ingress"], ingress=[{}])], "outside", "db-0", UDP, 1,
     True),
    ("policies are additive", [DENY_ALL, ingress_to("db", {"from": [{"podSelector": app("api")}]})],
     "api-2", "db-0", TCP, 5432, False),  # the egress side of api-2 is still denied by default-deny
    ("policies are additive (ingress side)",
     [np("d", policyTypes=["Ingress"]), ingress_to("db", {"from": [{"podSelector": app("api")}]})],
     "api-2", "db-0", TCP, 5432, True),
    # peers
    ("podSelector alone: the policy's namespace", [ingress_to("db", {"from": [{"podSelector": app("web")}]})],
     "web-1", "db-0", TCP, 5432, True),
    ("podSelector alone: not other namespaces", [ingress_to("db", {"from": [{"podSelector": app("web")}]})],
     "stray", "db-0", TCP, 5432, False),
    ("namespaceSelector alone: every pod there",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchLabels": {"team": "web"}}}]})],
     "admin", "db-0", TCP, 5432, True),
    ("namespaceSelector alone: not the policy's namespace",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchLabels": {"team": "web"}}}]})],
     "web-1", "db-0", TCP, 5432, False),
    ("namespaceSelector AND podSelector (one peer)",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchLabels": {"team": "web"}},
                                  "podSelector": app("frontend")}]})], "admin", "db-0", TCP, 5432, False),
    ("namespaceSelector AND podSelector: both match",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchLabels": {"team": "web"}},
                                  "podSelector": app("frontend")}]})], "frontend", "db-0", TCP, 5432, True),
    ("namespaceSelector OR podSelector (two peers)",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchLabels": {"team": "web"}}},
                                 {"podSelector": app("frontend")}]})], "admin", "db-0", TCP, 5432, True),
    ("empty namespaceSelector: every namespace", [ingress_to("db", {"from": [{"namespaceSelector": {}}]})],
     "tool", "db-0", TCP, 5432, True),
    ("empty namespaceSelector: pods only", [ingress_to("db", {"from": [{"namespaceSelector": {}}]})],
     "outside", "db-0", TCP, 5432, False),
    ("empty podSelector: the policy's namespace only", [ingress_to("db", {"from": [{"podSelector": {}}]})],
     "tool", "db-0", TCP, 5432, False),
    ("absent from: every source", [ingress_to("db", {"ports": [{"port": 5432}]})], "outside", "db-0", TCP, 5432,
     True),
    ("from [] is absent from: every source (the API defines empty as all)",
     [ingress_to("db", {"from": [], "ports": [{"port": 5432}]})], "outside", "db-0", TCP, 5432, True),
    ("matchExpressions NotIn on namespaces",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchExpressions": [
         {"key": "env", "operator": "NotIn", "values": ["dev"]}]}}]})], "tool", "db-0", TCP, 5432, False),
    ("NotIn matches a namespace without the key",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchExpressions": [
         {"key": "env", "operator": "NotIn", "values": ["dev"]}]}}]})], "stray", "db-0", TCP, 5432, True),
    ("DoesNotExist on namespaces",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchExpressions": [
         {"key": "env", "operator": "DoesNotExist"}]}}]})], "frontend", "db-0", TCP, 5432, False),
    ("DoesNotExist: a namespace missing from the inventory has no env label",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchExpressions": [
         {"key": "env", "operator": "DoesNotExist"}]}}]})], "stray", "db-0", TCP, 5432, True),
    ("Exists and In on pods",
     [ingress_to("db", {"from": [{"namespaceSelector": {}, "podSelector": {"matchExpressions": [
         {"key": "app", "operator": "In", "values": ["web", "tool"]}, {"key": "app", "operator": "Exists"}]}}]})],
     "tool", "db-0", TCP, 5432, True),
    ("a namespace missing from the inventory has its name label",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ghost"}}}]})],
     "stray", "db-0", TCP, 5432, True),
    ("the name label is set even if the snapshot lacks it",
     [ingress_to("db", {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "web"}}}]})],
     "frontend", "db-0", TCP, 5432, True),
    # ipBlock
    ("ipBlock", [ingress_to("db", {"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]})],
     "outside", "db-0", TCP, 5432, True),
    ("outside the ipBlock", [ingress_to("db", {"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]})],
     "outside-2", "db-0", TCP, 5432, False),
    ("ipBlock except", [ingress_to("db", {"from": [{"ipBlock": {"cidr": "203.0.113.0/24",
                                                                "except": ["203.0.113.0/29"]}}]})],
     "outside", "db-0", TCP, 5432, False),
    ("ipBlock outside its except", [ingress_to("db", {"from": [{"ipBlock": {"cidr": "203.0.113.0/24",
                                                                            "except": ["203.0.113.8/29"]}}]})],
     "outside", "db-0", TCP, 5432, True),
    ("IPv6 ipBlock", [ingress_to("db", {"from": [{"ipBlock": {"cidr": "2001:db8::/32"}}]})],
     "outside-v6", "db-0", TCP, 5432, True),
    ("an IPv6 ipBlock does not match IPv4", [ingress_to("db", {"from": [{"ipBlock": {"cidr": "::/0"}}]})],
     "outside", "db-0", TCP, 5432, False),
    ("an ipBlock matches pod IPs", [ingress_to("db", {"from": [{"ipBlock": {"cidr": "10.244.1.0/24"}}]})],
     "web-1", "db-0", TCP, 5432, True),
    ("an ipBlock matches pod IPs (not this one)",
     [ingress_to("db", {"from": [{"ipBlock": {"cidr": "10.244.1.0/24"}}]})], "api-2", "db-0", TCP, 5432, False),
    ("an IPv6 ipBlock matches a pod's IPv6 address",
     [ingress_to("db", {"from": [{"ipBlock": {"cidr": "fd00:244::/64"}}]})], "web-1-v6", "db-0", TCP, 5432, True),
    ("host bits in a cidr are ignored, as Go's ParseCIDR does",
     [ingress_to("db", {"from": [{"ipBlock": {"cidr": "203.0.113.99/24"}}]})], "outside", "db-0", TCP, 5432, True),
    # ports
    ("port number", [ingress_to("db", {"ports": [{"port": 5432}]})], "web-1", "db-0", TCP, 5432, True),
    ("another port number", [ingress_to("db", {"ports": [{"port": 5432}]})], "web-1", "db-0", TCP, 5433, False),
    ("protocol defaults to TCP", [ingress_to("db", {"ports": [{"port": 53}]})], "web-1", "db-0", UDP, 53, False),
    ("UDP", [ingress_to("db", {"ports": [{"port": 53, "protocol": "UDP"}]})], "web-1", "db-0", UDP, 53, True),
    ("SCTP", [ingress_to("db", {"ports": [{"port": 3868, "protocol": "SCTP"}]})], "web-1", "db-0", SCTP, 3868, True),
    ("SCTP is not TCP", [ingress_to("db", {"ports": [{"port": 3868, "protocol": "SCTP"}]})],
     "web-1", "db-0", TCP, 3868, False),
    ("endPort: first port", [ingress_to("db", {"ports": [{"port": 8000, "endPort": 8100}]})],
     "web-1", "db-0", TCP, 8000, True),
    ("endPort: last port", [ingress_to("db", {"ports": [{"port": 8000, "endPort": 8100}]})],
     "web-1", "db-0", TCP, 8100, True),
    ("endPort: past the range", [ingress_to("db", {"ports": [{"port": 8000, "endPort": 8100}]})],
     "web-1", "db-0", TCP, 8101, False),
    ("endPort: before the range", [ingress_to("db", {"ports": [{"port": 8000, "endPort": 8100}]})],
     "web-1", "db-0", TCP, 7999, False),
    ("protocol without port: every port of it", [ingress_to("db", {"ports": [{"protocol": "UDP"}]})],
     "web-1", "db-0", UDP, 33333, True),
    ("protocol without port: not other protocols", [ingress_to("db", {"ports": [{"protocol": "UDP"}]})],
     "web-1", "db-0", TCP, 33333, False),
    ("absent ports: every protocol, ICMP too", [ingress_to("db", {"from": [{"podSelector": {}}]})],
     "web-1", "db-0", ICMP, None, True),
    ("ports given: ICMP never matches", [ingress_to("db", {"ports": [{"protocol": "TCP"}]})],
     "web-1", "db-0", ICMP, None, False),
    ("named port on the selected pod (api-1: http is 8080)", [ingress_to("api", {"ports": [{"port": "http"}]})],
     "web-1", "api-1", TCP, 8080, True),
    ("named port per pod (api-2: http is 9090, not 8080)", [ingress_to("api", {"ports": [{"port": "http"}]})],
     "web-1", "api-2", TCP, 8080, False),
    ("named port per pod (api-2: 9090)", [ingress_to("api", {"ports": [{"port": "http"}]})],
     "web-1", "api-2", TCP, 9090, True),
    ("named port: the protocol must match the container port's",
     [ingress_to("api", {"ports": [{"port": "stats"}]})], "web-1", "api-1", UDP, 9000, False),
    ("named port with its protocol", [ingress_to("api", {"ports": [{"port": "stats", "protocol": "UDP"}]})],
     "web-1", "api-1", UDP, 9000, True),
    ("egress named port resolves on the destination pod",
     [np("e", podSelector=app("web"), policyTypes=["Egress"], egress=[{"ports": [{"port": "http"}]}])],
     "web-1", "api-2", TCP, 9090, True),
    ("egress named port: not the source's own port",
     [np("e", podSelector=app("web"), policyTypes=["Egress"], egress=[{"ports": [{"port": "http"}]}])],
     "web-1", "api-2", TCP, 80, False),
    ("egress named port: an external destination has no named ports",
     [np("e", podSelector=app("web"), policyTypes=["Egress"], egress=[{"ports": [{"port": "http"}]}])],
     "web-1", "outside", TCP, 80, False),
    # nodes, hostNetwork pods, the outside, the pod itself
    ("from its own node", [DENY_ALL], "node-a", "web-1", TCP, 80, True),
    ("from another node", [DENY_ALL], "node-b", "web-1", TCP, 80, False),
    ("to its own node", [DENY_ALL], "web-1", "node-a", TCP, 10250, True),
    ("a hostNetwork pod is its node: own node", [DENY_ALL], "exporter", "db-0", TCP, 5432, True),
    ("a hostNetwork pod is its node: no pod selector matches it",
     [ingress_to("web", {"from": [{"namespaceSelector": {}, "podSelector": {}}]})], "exporter", "web-1", TCP, 80,
     False),
    ("a hostNetwork pod is its node: ipBlocks match it",
     [ingress_to("web", {"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]})], "exporter", "web-1", TCP, 80, True),
    ("a hostNetwork pod is not isolated by policies of its namespace", [np("d", "monitoring", ingress=[])],
     "web-1", "exporter", TCP, 9100, True),
    ("to itself", [DENY_ALL], "web-1", "web-1", TCP, 80, True),
    ("pod to outside: only egress counts", [np("d", policyTypes=["Ingress"])], "web-1", "outside", TCP, 443, True),
    ("outside to pod: only ingress counts", [np("d", policyTypes=["Egress"])], "outside", "web-1", TCP, 80, True),
    ("neither end a pod", [DENY_ALL], "outside", "node-a", TCP, 22, True),
]


@pytest.mark.parametrize(("policies", "src", "dst", "protocol", "port", "allowed"),
                         [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_semantics(policies: list[dict[str, Any]], src: str, dst: str, protocol: Protocol, port: int | None,
                   allowed: bool) -> None:
    verdict = check(policies, src, dst, protocol, port)
    assert verdict.allowed is allowed, verdict.reason


# ----------------------------------------------------------------------------- sides, reasons, decided_by

DB_NETGEN = ingress_to("db", {"from": [{"podSelector": app("web")}], "ports": [{"port": 5432}]}, name="db-netgen")
DEFAULT_DENY = np("default-deny", podSelector={}, policyTypes=["Ingress"])


def test_pod_to_pod_has_both_sides() -> None:
    verdict = check([DB_NETGEN, DEFAULT_DENY], "web-1", "db-0", TCP, 5432)
    assert verdict.allowed
    assert verdict.egress is not None and verdict.ingress is not None
    assert (verdict.egress.isolated, verdict.egress.tier, verdict.egress.reason) == (
        False, Tier.DEFAULT, "no policy selects shop/web-1 for egress")
    assert verdict.ingress.isolated and verdict.ingress.tier is Tier.NETWORK_POLICY
    assert verdict.ingress.reason == "allowed by shop/db-netgen ingress[0]"
    assert verdict.ingress.decided_by == (RuleRef("shop", "db-netgen", INGRESS, 0),)
    assert verdict.reason == ("egress of shop/web-1: no policy selects shop/web-1 for egress; "
                              "ingress of shop/db-0: allowed by shop/db-netgen ingress[0]")


def test_denial_names_every_isolating_policy() -> None:
    verdict = check([DB_NETGEN, DEFAULT_DENY], "api-1", "db-0", TCP, 5432)
    assert not verdict.allowed and verdict.ingress is not None and not verdict.ingress.allowed
    assert verdict.ingress.reason == (
        "denied: shop/db-0 is isolated for ingress by shop/db-netgen, shop/default-deny and no rule matches")
    assert verdict.ingress.decided_by == (RuleRef("shop", "db-netgen", INGRESS),
                                          RuleRef("shop", "default-deny", INGRESS))


def test_every_allowing_rule_is_listed() -> None:
    other = ingress_to("db", {"ports": [{"port": 1}]}, {"from": [{"namespaceSelector": {}}]}, name="other")
    verdict = check([DB_NETGEN, other], "web-1", "db-0", TCP, 5432)
    assert verdict.ingress is not None
    assert verdict.ingress.decided_by == (RuleRef("shop", "db-netgen", INGRESS, 0),
                                          RuleRef("shop", "other", INGRESS, 1))
    assert verdict.ingress.reason == "allowed by shop/db-netgen ingress[0], shop/other ingress[1]"


def test_only_the_rules_that_admit_the_port_decide() -> None:
    two = ingress_to("db", {"ports": [{"port": 1}]}, {"ports": [{"port": 5432}]}, {"ports": [{"port": 9}]}, name="two")
    verdict = check([two], "web-1", "db-0", TCP, 5432)
    assert verdict.ingress is not None
    assert verdict.ingress.decided_by == (RuleRef("shop", "two", INGRESS, 1),)
    other = check([two], "web-1", "db-0", TCP, 9).ingress
    assert other is not None and other.decided_by == (RuleRef("shop", "two", INGRESS, 2),)


def test_outside_ends_have_no_side() -> None:
    out = check([DENY_ALL], "web-1", "outside", TCP, 443)
    assert out.ingress is None and out.egress is not None and not out.allowed
    assert out.egress.reason == "denied: shop/web-1 is isolated for egress by shop/default-deny and no rule matches"
    into = check([DENY_ALL], "outside", "web-1", TCP, 80)
    assert into.egress is None and into.ingress is not None
    assert (str(into.source), str(into.destination)) == ("203.0.113.7", "shop/web-1")
    neither = check([DENY_ALL], "outside", "outside-2", TCP, 80)
    assert (neither.allowed, neither.egress, neither.ingress) == (True, None, None)
    assert neither.reason == "neither end is a pod: no policy applies"


@pytest.mark.parametrize(("src", "dst", "side", "reason", "tier"), [
    ("node-a", "web-1", "ingress", "from its own node", Tier.NODE),
    ("web-1", "node-a", "egress", "to its own node", Tier.NODE),
    ("exporter", "db-0", "ingress", "from its own node", Tier.NODE),
    ("web-1", "web-1", "egress", "to itself", Tier.SELF),
    ("web-1", "web-1", "ingress", "from itself", Tier.SELF),
])
def test_local_traffic_reasons(src: str, dst: str, side: str, reason: str, tier: Tier) -> None:
    verdict = check([DENY_ALL], src, dst)
    found = getattr(verdict, side)
    assert verdict.allowed and found.isolated and found.allowed
    assert (found.reason, found.tier, found.decided_by) == (reason, tier, ())


def test_verdict_names_both_ends() -> None:
    verdict = check([DENY_ALL], "node-b", "db-0", TCP, 5432)
    assert (str(verdict.source), str(verdict.destination)) == ("node node-b (10.0.0.2)", "shop/db-0")
    assert verdict.reason == "ingress of shop/db-0: from its own node"


def test_bounded_cache_starts_over_when_full() -> None:
    cache: BoundedCache[int, str] = BoundedCache(limit=2)
    cache.store(1, "a")
    cache.store(2, "b")
    assert cache.store(3, "c") == "c"
    assert dict(cache) == {3: "c"}


def test_endpoints() -> None:
    assert endpoint(INVENTORY, "10.244.1.10").pod == WEB
    assert endpoint(INVENTORY, "fd00:244::10").pod == WEB
    hostnet = endpoint(INVENTORY, "10.0.0.2")
    assert (hostnet.pod, hostnet.node, str(hostnet)) == (None, "node-b", "node node-b (10.0.0.2)")
    outside = endpoint(INVENTORY, ip_address("203.0.113.7"))
    assert (outside.pod, outside.node, str(outside)) == (None, None, "203.0.113.7")
    assert str(endpoint(INVENTORY, "10.244.2.30")) == "shop/db-0"


def test_hostnetwork_pod_without_node_object() -> None:
    """A hostNetwork pod's address is its node's even when the snapshot lacks the Node."""
    inventory = Inventory.create(pods=[WEB, replace(EXPORTER, node="node-a", ips=(ip_address("10.0.0.9"),))])
    evaluator = Evaluator(parse_policies([DENY_ALL]), inventory)
    assert evaluator.endpoint("10.0.0.9").node == "node-a"
    assert evaluator.evaluate("10.0.0.9", "10.244.1.10", TCP, 80).allowed


def test_evaluate_flow_and_network_policy_iterables() -> None:
    from kubectl_netgen.model import Direction, Flow
    flow = Flow(TCP, ip_address(IP["web-1"]), ip_address(IP["db-0"]), 5432, 1, 2, 3, 0, 0, Direction.HANDSHAKE)
    policies = parse_policies([DB_NETGEN, DEFAULT_DENY]).network
    assert Evaluator(policies, INVENTORY).evaluate_flow(flow).allowed
    assert not Evaluator(list(policies), INVENTORY).evaluate_flow(replace(flow, dst_port=5433)).allowed


# ----------------------------------------------------------------------------- reading manifests

def test_parse_defaults_and_shapes() -> None:
    policies = parse_policies([{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [{"from": [], "ports": []},
                             {"from": [{"namespaceSelector": {}, "podSelector": app("web")},
                                       {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                              "ports": [{"port": "http"}, {"port": 1, "endPort": 9, "protocol": "UDP"}]}],
                 "egress": [{}]},
    }], namespace="shop")
    (policy,) = policies.network
    assert policy == NetworkPolicy(
        namespace="shop", name="x", pod_selector=LabelSelector(labels_of({"app": "db"})),
        policy_types=(INGRESS, EGRESS),
        ingress=(Rule(None, None),
                 Rule((PolicyPeer(LabelSelector(labels_of({"app": "web"})), LabelSelector()),
                       PolicyPeer(ip_block=IPBlock(ip_network("10.0.0.0/8"), (ip_network("10.1.0.0/16"),)))),
                      (PortSpec(TCP, "http"), PortSpec(UDP, 1, 9)))),
        egress=(Rule(),),
    )
    assert policy.key == "shop/x" and policy.rules(EGRESS) == (Rule(),)


def test_parse_lists_and_skips_other_kinds() -> None:
    calico = {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
              "metadata": {"name": "c", "namespace": "n"}}
    documents = [None, {"apiVersion": "v1", "kind": "List", "items": [np("a"), calico]},
                 {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "items": [np("b", "web")]},
                 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}]
    policies = parse_policies(documents)
    assert [p.key for p in policies.network] == ["shop/a", "web/b"]
    assert policies.skipped == ("projectcalico.org/v3 NetworkPolicy n/c", "v1 ConfigMap cm")


def _with(path: str, value: Any) -> dict[str, Any]:
    """np('x') with ``value`` set at a dotted path (``ingress.0.from.1.ipBlock.cidr``) under spec."""
    doc = np("x", ingress=[{"from": [{"podSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/8"}}],
                            "ports": [{"port": 80}]}])
    node: Any = doc["spec"]
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    last = keys[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(("path", "value", "message"), [
    ("ingress.0.from.1.ipBlock.cidr", "foo", "spec.ingress[0].from[1].ipBlock.cidr 'foo' is not a CIDR"),
    ("ingress.0.from.1.ipBlock.cidr", "10.0.0.1", "spec.ingress[0].from[1].ipBlock.cidr '10.0.0.1' is not a CIDR"),
    ("ingress.0.from.1.ipBlock.except", ["192.168.0.0/16"],
     "spec.ingress[0].from[1].ipBlock.except[0] '192.168.0.0/16' is not a strict subset of cidr 10.0.0.0/8"),
    ("ingress.0.from.1.ipBlock.except", ["10.0.0.0/8"],
     "spec.ingress[0].from[1].ipBlock.except[0] '10.0.0.0/8' is not a strict subset of cidr 10.0.0.0/8"),
    ("ingress.0.from.1.podSelector", {},
     "spec.ingress[0].from[1] may not combine ipBlock with podSelector or namespaceSelector (use two peers)"),
    ("ingress.0.from.0", {}, "spec.ingress[0].from[0] must set podSelector, namespaceSelector or ipBlock"),
    ("ingress.0.form", [], "spec.ingress[0].form is not a known field (expected one of: from, ports)"),
    ("ingress.0.ports.0.port", 0, "spec.ingress[0].ports[0].port 0 is not between 1 and 65535"),
    ("ingress.0.ports.0.port", "80", "spec.ingress[0].ports[0].port '80' is not a port number or a port name"),
    ("ingress.0.ports.0.port", True, "spec.ingress[0].ports[0].port True is not an integer"),
    ("ingress.0.ports.0.endPort", 79, "spec.ingress[0].ports[0].endPort 79 is below port 80"),
    ("ingress.0.ports.0", {"port": "http", "endPort": 90}, "spec.ingress[0].ports[0].endPort needs a numeric port"),
    ("ingress.0.ports.0.protocol", "ICMP", "spec.ingress[0].ports[0].protocol 'ICMP' is not one of TCP, UDP, SCTP"),
    ("policyTypes", ["Both"], "spec.policyTypes[0] 'Both' is not Ingress or Egress"),
    ("ingress", {"from": []}, "spec.ingress must be a list, not {'from': []}"),
    ("podSelector", {"matchLabels": {"app": 1}}, "spec.podSelector.matchLabels.app must be a string, not 1"),
    ("podSelector", {"matchExpressions": [{"key": "a", "operator": "Is"}]},
     "spec.podSelector.matchExpressions[0].operator 'Is' is not one of In, NotIn, Exists, DoesNotExist"),
    ("podSelector", {"matchExpressions": [{"key": "a", "operator": "In"}]},
     "spec.podSelector.matchExpressions[0].values must not be empty for In"),
    ("podSelector", {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]},
     "spec.podSelector.matchExpressions[0].values must be empty for Exists"),
])
def test_parse_errors_name_policy_and_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(InputError) as error:
        parse_policies([_with(path, value)])
    assert error.value.message == f"NetworkPolicy shop/x: {message}"


@pytest.mark.parametrize(("document", "message"), [
    ({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {}},
     "NetworkPolicy: metadata.name is missing"),
    ("not a manifest", "document 1 is not an object but str"),
])
def test_parse_errors_without_a_name(document: Any, message: str) -> None:
    with pytest.raises(InputError) as error:
        parse_policies([document])
    assert error.value.message == message


def test_parse_refuses_a_policy_twice() -> None:
    with pytest.raises(InputError, match=r"^NetworkPolicy shop/a: defined twice$"):
        parse_policies([np("a"), np("a")])


# ----------------------------------------------------------------------------- AdminNetworkPolicy and baseline

def anp(name: str, priority: int, subject: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
            "metadata": {"name": name},
            "spec": {"priority": priority, "subject": subject or {"namespaces": {}}, **spec}}


def banp(subject: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
            "metadata": {"name": "default"}, "spec": {"subject": subject or {"namespaces": {}}, **spec}}


def rule(action: str, *peers: dict[str, Any], key: str = "from", name: str = "", **extra: Any) -> dict[str, Any]:
    return {"action": action, key: list(peers), **({"name": name} if name else {}), **extra}


SHOP = {"namespaces": {"matchLabels": {"team": "shop"}}}
WEB_PODS = {"pods": {"namespaceSelector": {"matchLabels": {"team": "shop"}}, "podSelector": app("web")}}


def test_anp_deny_beats_a_networkpolicy_allow() -> None:
    policies = [ingress_to("db", {}), anp("block", 10, ingress=[rule("Deny", SHOP, name="no-shop")])]
    verdict = check(policies, "web-1", "db-0", TCP, 5432)
    assert not verdict.allowed and verdict.ingress is not None
    assert verdict.ingress.tier is Tier.ADMIN and verdict.ingress.isolated
    assert verdict.ingress.reason == "denied by AdminNetworkPolicy block ingress[0] (no-shop)"
    assert verdict.ingress.decided_by == (RuleRef("", "block", INGRESS, 0, "AdminNetworkPolicy", "no-shop"),)


def test_anp_allow_beats_networkpolicy_isolation() -> None:
    policies = [DENY_ALL, anp("open", 10, ingress=[rule("Allow", WEB_PODS)]),
                anp("open-egress", 20, egress=[rule("Allow", SHOP, key="to")])]
    assert check(policies, "web-1", "db-0", TCP, 5432).allowed
    assert not check(policies, "api-1", "db-0", TCP, 5432).allowed


def test_anp_pass_hands_over_to_networkpolicies() -> None:
    policies = [DB_NETGEN, DEFAULT_DENY,
                anp("pass", 1, ingress=[rule("Pass", SHOP, name="delegate")]),
                anp("deny", 2, ingress=[rule("Deny", SHOP)])]
    allowed = check(policies, "web-1", "db-0", TCP, 5432)
    assert allowed.allowed and allowed.ingress is not None
    assert allowed.ingress.reason == (
        "passed by AdminNetworkPolicy pass ingress[0] (delegate), then allowed by shop/db-netgen ingress[0]")
    denied = check(policies, "api-1", "db-0", TCP, 5432)
    assert not denied.allowed and denied.ingress is not None and denied.ingress.tier is Tier.NETWORK_POLICY
    assert denied.ingress.passed_by == (RuleRef("", "pass", INGRESS, 0, "AdminNetworkPolicy", "delegate"),)


def test_anp_priority_and_rule_order() -> None:
    policies = [anp("late-allow", 50, ingress=[rule("Allow", SHOP)]),
                anp("early", 5, ingress=[rule("Allow", WEB_PODS), rule("Deny", SHOP)])]
    assert check(policies, "web-1", "db-0", TCP, 5432).allowed      # early ingress[0]
    verdict = check(policies, "api-1", "db-0", TCP, 5432)          # early ingress[1] before late-allow
    assert not verdict.allowed and verdict.ingress is not None
    assert verdict.ingress.reason == "denied by AdminNetworkPolicy early ingress[1]"


def test_anp_subject_and_ports() -> None:
    subject = {"pods": {"namespaceSelector": {}, "podSelector": app("api")}}
    policies = [anp("ports", 1, subject, ingress=[
        rule("Allow", {"namespaces": {}}, ports=[{"namedPort": "http"}]),
        rule("Allow", {"namespaces": {}}, ports=[{"portNumber": {"protocol": "UDP", "port": 9000}}]),
        rule("Allow", {"namespaces": {}}, ports=[{"portRange": {"start": 7000, "end": 7010}}]),
        rule("Deny", {"namespaces": {}}),
    ])]
    assert check(policies, "web-1", "api-1", TCP, 8080).allowed     # named port on api-1
    assert not check(policies, "web-1", "api-2", TCP, 8080).allowed  # api-2's http is 9090
    assert check(policies, "web-1", "api-2", TCP, 9090).allowed
    assert check(policies, "web-1", "api-1", UDP, 9000).allowed
    assert check(policies, "web-1", "api-1", TCP, 7010).allowed
    assert not check(policies, "web-1", "api-1", TCP, 7011).allowed
    assert check(policies, "web-1", "db-0", TCP, 7011).allowed       # db-0 is not a subject


def test_anp_egress_networks_and_nodes() -> None:
    policies = [anp("egress", 1, egress=[
        rule("Allow", {"networks": ["203.0.113.0/24"]}, key="to"),
        rule("Deny", {"nodes": {}}, key="to"),
        rule("Deny", {"networks": ["0.0.0.0/0"]}, key="to"),
    ])]
    assert check(policies, "web-1", "outside", TCP, 443).allowed
    assert not check(policies, "web-1", "outside-2", TCP, 443).allowed
    assert not check(policies, "web-1", "db-0", TCP, 5432).allowed    # networks match pod addresses too
    nodes = check(policies, "web-1", "node-b", TCP, 10250)
    assert not nodes.allowed and nodes.egress is not None and nodes.egress.reason.endswith("egress[1]")
    assert check(policies, "web-1", "node-a", TCP, 10250).allowed     # its own node stays reachable
    assert check(policies, "outside", "web-1", TCP, 80).allowed       # no ingress rules


def test_anp_peers_never_match_hostnetwork_pods() -> None:
    policies = [anp("deny", 1, ingress=[rule("Deny", {"namespaces": {}})])]
    assert check(policies, "exporter", "web-1", TCP, 80).allowed      # exporter is node-b, not a pod
    assert not check(policies, "tool", "web-1", TCP, 80).allowed


def test_baseline_applies_only_where_no_networkpolicy_isolates() -> None:
    baseline = banp(ingress=[rule("Allow", WEB_PODS), rule("Deny", {"namespaces": {}})])
    assert check([baseline], "web-1", "db-0", TCP, 5432).allowed
    denied = check([baseline], "api-1", "db-0", TCP, 5432)
    assert not denied.allowed and denied.ingress is not None and not denied.ingress.isolated
    assert denied.ingress.reason == "denied by BaselineAdminNetworkPolicy default ingress[1]"
    assert check([baseline], "outside", "db-0", TCP, 5432).allowed    # namespaces peers match pods only
    # A NetworkPolicy that isolates db-0 decides instead, both ways.
    assert check([baseline, ingress_to("db", {})], "api-1", "db-0", TCP, 5432).allowed
    assert not check([baseline, ingress_to("db", {"ports": [{"port": 1}]})], "web-1", "db-0", TCP, 5432).allowed


def test_baseline_egress() -> None:
    baseline = banp(egress=[rule("Allow", {"networks": ["203.0.113.0/24"]}, key="to", ports=[{"portNumber": {
        "protocol": "TCP", "port": 443}}]), rule("Deny", {"networks": ["0.0.0.0/0"]}, key="to")])
    assert check([baseline], "web-1", "outside", TCP, 443).allowed
    assert not check([baseline], "web-1", "outside", TCP, 80).allowed
    assert check([baseline, np("e", podSelector=app("web"), egress=[{}])], "web-1", "outside", TCP, 80).allowed


def test_baseline_after_a_pass() -> None:
    policies = [anp("pass", 1, ingress=[rule("Pass", SHOP)]), banp(ingress=[rule("Deny", SHOP)])]
    verdict = check(policies, "web-1", "db-0", TCP, 5432)
    assert not verdict.allowed and verdict.ingress is not None and verdict.ingress.tier is Tier.BASELINE
    assert verdict.ingress.reason == (
        "passed by AdminNetworkPolicy pass ingress[0], then denied by BaselineAdminNetworkPolicy default ingress[0]")


def test_parse_tiered_policies() -> None:
    policies = parse_policies([anp("b", 10), anp("a", 10), anp("c", 1), banp()])
    assert [p.name for p in policies.admin] == ["c", "a", "b"]
    assert policies.baseline is not None and policies.baseline.name == "default"


@pytest.mark.parametrize(("document", "message"), [
    ({**anp("x", 1), "spec": {"subject": {"namespaces": {}}}}, "AdminNetworkPolicy x: spec.priority is missing"),
    (anp("x", 1001), "AdminNetworkPolicy x: spec.priority 1001 is not between 0 and 1000"),
    (anp("x", 1, {"namespaces": {}, "pods": {"namespaceSelector": {}, "podSelector": {}}}),
     "AdminNetworkPolicy x: spec.subject must set exactly one of namespaces, pods (got namespaces, pods)"),
    (anp("x", 1, {"pods": {"podSelector": {}}}),
     "AdminNetworkPolicy x: spec.subject.pods.namespaceSelector is missing (use {} to select all)"),
    (anp("x", 1, ingress=[rule("Drop", SHOP)]),
     "AdminNetworkPolicy x: spec.ingress[0].action 'Drop' is not one of Allow, Deny, Pass"),
    (anp("x", 1, ingress=[rule("Deny")]), "AdminNetworkPolicy x: spec.ingress[0].from must list at least one peer"),
    (anp("x", 1, ingress=[rule("Deny", {"networks": ["10.0.0.0/8"]})]),
     "AdminNetworkPolicy x: spec.ingress[0].from[0].networks is not a known field (expected one of: namespaces, pods)"),
    (anp("x", 1, egress=[rule("Deny", {"nodes": {"matchLabels": {"role": "infra"}}}, key="to")]),
     "AdminNetworkPolicy x: spec.egress[0].to[0].nodes selects nodes by label, which the inventory does not record "
     "(only {} is supported)"),
    (anp("x", 1, egress=[rule("Deny", {"domainNames": ["example.com"]}, key="to")]),
     "AdminNetworkPolicy x: spec.egress[0].to[0].domainNames is not supported: a snapshot does not say which "
     "addresses a domain name had"),
    (anp("x", 1, ingress=[rule("Deny", SHOP, ports=[{"portRange": {"start": 90, "end": 90}}])]),
     "AdminNetworkPolicy x: spec.ingress[0].ports[0].portRange.end 90 must be greater than start 90"),
    (banp(ingress=[rule("Pass", SHOP)]),
     "BaselineAdminNetworkPolicy default: spec.ingress[0].action 'Pass' is not one of Allow, Deny"),
    ({**banp(), "metadata": {"name": "other"}},
     "BaselineAdminNetworkPolicy: metadata.name 'other' must be 'default' (there is one baseline per cluster)"),
])
def test_tiered_parse_errors(document: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as error:
        parse_policies([document])
    assert error.value.message == message


# ----------------------------------------------------------------------------- invariants (hypothesis)

NAMESPACES = ("a", "b")
NS_LABELS = {"a": {"team": "x"}, "b": {"team": "y", "env": "dev"}}
HTTP = (ContainerPort(8080, TCP, "http"),)
PROP_PODS = [
    pod("a", "p1", ("10.1.0.1",), "n1", {"app": "p"}, HTTP),
    pod("a", "p2", ("10.1.0.2",), "n2", {"app": "q", "role": "s"}, (ContainerPort(9090, TCP, "http"),)),
    pod("b", "p3", ("10.1.0.3", "fd00::3"), "n1", {"app": "p", "role": "t"}),
    pod("b", "p4", ("10.1.0.4",), "n2", {"app": "r"}, (ContainerPort(53, UDP, "dns"),)),
    pod("c", "p5", ("10.1.0.5",), "n1", {"app": "q"}),  # namespace c is missing from the inventory
    pod("a", "h1", ("10.0.0.2",), "n2", {"app": "p"}, host_network=True),
]
PROP_INVENTORY = Inventory.create(
    namespaces=[Namespace(n, labels_of(NS_LABELS[n])) for n in NAMESPACES],
    nodes=[Node("n1", (ip_address("10.0.0.1"),)), Node("n2", (ip_address("10.0.0.2"),))],
    pods=PROP_PODS,
)
ADDRESSES = ["10.1.0.1", "10.1.0.2", "10.1.0.3", "fd00::3", "10.1.0.4", "10.1.0.5", "10.0.0.1", "10.0.0.2",
             "203.0.113.1", "2001:db8::1"]

label_pairs = st.sampled_from([("app", "p"), ("app", "q"), ("app", "r"), ("role", "s"), ("team", "x"),
                               ("team", "y"), ("env", "dev")])
requirements = st.builds(
    lambda key, op, values: SelectorRequirement(key, op, tuple(sorted(set(values))) if op in ("In", "NotIn") else ()),
    st.sampled_from(["app", "role", "team", "env"]), st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
    st.lists(st.sampled_from(["p", "q", "s", "x", "dev"]), min_size=1, max_size=2))
selectors = st.builds(lambda pairs, exprs: LabelSelector(labels_of(dict(pairs)), tuple(exprs)),
                      st.lists(label_pairs, max_size=2), st.lists(requirements, max_size=1))
cidrs = st.sampled_from([ip_network(c) for c in ("10.1.0.0/29", "10.1.0.0/30", "10.0.0.0/24", "203.0.113.0/24",
                                                 "0.0.0.0/0", "::/0", "fd00::/64")])
ip_blocks = st.builds(lambda net, hole: IPBlock(net, (hole,) if hole is not None and hole.version == net.version
                                                and hole.subnet_of(net) and hole != net else ()),
                      cidrs, st.one_of(st.none(), cidrs))
peers = st.one_of(
    st.builds(PolicyPeer, pod_selector=st.one_of(st.none(), selectors), namespace_selector=selectors),
    st.builds(PolicyPeer, pod_selector=selectors),
    st.builds(PolicyPeer, ip_block=ip_blocks),
)
port_specs = st.one_of(
    st.builds(PortSpec, st.sampled_from([TCP, UDP]), st.sampled_from([53, 80, 8080, 9090])),
    st.builds(PortSpec, st.sampled_from([TCP, UDP]), st.sampled_from(["http", "dns"])),
    st.builds(lambda p: PortSpec(p, 8000, 9000), st.sampled_from([TCP, UDP])),
    st.builds(PortSpec, st.sampled_from([TCP, UDP, SCTP])),
)
rules = st.builds(Rule, st.one_of(st.none(), st.lists(peers, min_size=1, max_size=2).map(tuple)),
                  st.one_of(st.none(), st.lists(port_specs, min_size=1, max_size=2).map(tuple)))
policy_types = st.sampled_from([(INGRESS,), (EGRESS,), (INGRESS, EGRESS)])


@st.composite
def network_policies(draw: st.DrawFn, name: str) -> NetworkPolicy:
    return NetworkPolicy(
        namespace=draw(st.sampled_from([*NAMESPACES, "c"])), name=name,
        pod_selector=draw(st.one_of(st.just(LabelSelector()), selectors)),
        policy_types=draw(policy_types), ingress=tuple(draw(st.lists(rules, max_size=2))),
        egress=tuple(draw(st.lists(rules, max_size=2))))


policy_lists = st.lists(st.integers(0, 10**6), max_size=4, unique=True).flatmap(
    lambda ids: st.tuples(*(network_policies(f"p{i}") for i in ids)).map(list))
flows = st.tuples(st.sampled_from(ADDRESSES), st.sampled_from(ADDRESSES), st.sampled_from([TCP, UDP, SCTP, ICMP]),
                  st.sampled_from([53, 80, 8080, 8500, 9090])).filter(lambda f: f[0] != f[1])
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(policies: list[NetworkPolicy], flow: tuple[str, str, Protocol, int]) -> Verdict:
    src, dst, protocol, port = flow
    return Evaluator(policies, PROP_INVENTORY).evaluate(src, dst, protocol, None if protocol is ICMP else port)


def isolated_sides(verdict: Verdict) -> set[tuple[str, PolicyDirection]]:
    return {(s.pod.name, s.direction) for s in (verdict.egress, verdict.ingress) if s is not None and s.isolated}


@PROPERTY
@given(flow=flows)
def test_without_policies_everything_is_allowed(flow: tuple[str, str, Protocol, int]) -> None:
    verdict = run([], flow)
    assert verdict.allowed and not isolated_sides(verdict)


@PROPERTY
@given(policies=policy_lists, flow=flows, extra=rules, which=st.integers(0, 3), direction=st.sampled_from([INGRESS,
                                                                                                         EGRESS]))
def test_adding_a_rule_never_denies(policies: list[NetworkPolicy], flow: tuple[str, str, Protocol, int],
                                    extra: Rule, which: int, direction: PolicyDirection) -> None:
    if not policies:
        return
    before = run(policies, flow)
    target = policies[which % len(policies)]
    grown = (replace(target, ingress=(*target.ingress, extra)) if direction is INGRESS
             else replace(target, egress=(*target.egress, extra)))
    after = run([grown if p is target else p for p in policies], flow)
    assert after.allowed or not before.allowed, (before.reason, after.reason)


@PROPERTY
@given(policies=policy_lists, new=network_policies("new"), flow=flows)
def test_a_new_policy_denies_only_by_isolating_a_new_side(policies: list[NetworkPolicy], new: NetworkPolicy,
                                                          flow: tuple[str, str, Protocol, int]) -> None:
    before, after = run(policies, flow), run([*policies, new], flow)
    if before.allowed and not after.allowed:
        assert isolated_sides(after) - isolated_sides(before), (before.reason, after.reason)
    if isolated_sides(after) == isolated_sides(before):
        # A policy that isolates nothing new only adds rules: it can only allow more.
        assert after.allowed or not before.allowed


@PROPERTY
@given(policies=policy_lists, batch=st.lists(flows, min_size=1, max_size=12))
def test_a_reused_evaluator_answers_like_a_fresh_one(policies: list[NetworkPolicy],
                                                     batch: list[tuple[str, str, Protocol, int]]) -> None:
    """The caches (selection, peers per remote address, endpoints) never change an answer."""
    evaluator = Evaluator(policies, PROP_INVENTORY)
    for src, dst, protocol, port in batch:
        reused = evaluator.evaluate(src, dst, protocol, None if protocol is ICMP else port)
        assert reused == run(policies, (src, dst, protocol, port))


def shrink_caches(evaluator: Evaluator, limit: int) -> None:
    """Make every cache of ``evaluator`` tiny, so that it keeps starting over."""
    for owner in (evaluator, evaluator.cluster, *evaluator.stages):
        for value in vars(owner).values():
            if isinstance(value, BoundedCache):
                value.limit = limit


@PROPERTY
@given(policies=policy_lists, batch=st.lists(flows, min_size=1, max_size=12), limit=st.integers(1, 3))
def test_evicting_caches_never_changes_an_answer(policies: list[NetworkPolicy],
                                                 batch: list[tuple[str, str, Protocol, int]], limit: int) -> None:
    evaluator = Evaluator(policies, PROP_INVENTORY)
    shrink_caches(evaluator, limit)
    for src, dst, protocol, port in batch:
        verdict = evaluator.evaluate(src, dst, protocol, None if protocol is ICMP else port)
        assert verdict == run(policies, (src, dst, protocol, port))


# ----------------------------------------------------------------------------- indexes (large policies)


def many_rules(n: int) -> list[dict[str, Any]]:
    """A generated-looking policy for shop/web: one egress rule per peer, /32 ipBlocks and selectors."""
    rules: list[dict[str, Any]] = []
    for i in range(n):
        rules.append({"to": [{"ipBlock": {"cidr": f"198.51.{i // 250}.{i % 250 + 1}/32"}}],
                      "ports": [{"protocol": "TCP", "port": 443}]})
    rules.append({"to": [{"podSelector": app("db")}], "ports": [{"protocol": "TCP", "port": 5432}]})
    rules.append({"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "web"}},
                          "podSelector": app("frontend")}], "ports": [{"protocol": "TCP", "port": 80}]})
    rules.append({"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}],
                  "ports": [{"protocol": "TCP", "port": 9999}]})
    rules.append({"to": [{"ipBlock": {"cidr": "198.51.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 8443}]})
    return [np("web-netgen", podSelector=app("web"), policyTypes=["Egress"], egress=rules)]


@pytest.mark.parametrize("indexed", [True, False])
def test_large_policies_decide_by_the_matching_rule(indexed: bool) -> None:
    policies = parse_policies(many_rules(600))
    evaluator = Evaluator(policies, INVENTORY, indexed=indexed)

    def egress(dst: str, port: int) -> Any:
        side = evaluator.evaluate(IP["web-1"], IP.get(dst, dst), TCP, port).egress
        assert side is not None
        return side

    assert egress("198.51.1.8", 443).decided_by == (RuleRef("shop", "web-netgen", EGRESS, 257),)
    assert not egress("198.51.1.8", 80).allowed
    assert not egress("198.51.9.9", 443).allowed  # in no /32
    # The /16 and the /32 both match: every allowing rule is named, in order.
    assert egress("198.51.0.1", 8443).decided_by == (RuleRef("shop", "web-netgen", EGRESS, 603),)
    assert [r.index for r in egress("198.51.0.1", 443).decided_by] == [0]
    assert egress("db-0", 5432).decided_by == (RuleRef("shop", "web-netgen", EGRESS, 600),)
    assert not egress("stray", 5432).allowed  # same labels as nothing selected, another namespace
    assert egress("frontend", 80).allowed and not egress("admin", 80).allowed
    assert egress("api-1", 9999).allowed and not egress("api-2", 9999).allowed  # the except
    assert not egress("db-0", 443).allowed


def test_denied_agrees_with_evaluate_on_large_policies() -> None:
    policies = parse_policies(many_rules(300))
    evaluator = Evaluator(policies, INVENTORY)
    remotes = [ip_address(a) for a in ("198.51.0.5", "198.51.1.44", "198.51.9.9", IP["db-0"], IP["frontend"],
                                       IP["admin"], IP["api-1"], IP["api-2"], IP["node-a"], IP["web-1"])]
    flows = [(r, protocol, port) for r in remotes for protocol in (TCP, UDP) for port in (80, 443, 5432, 9999, 8443)]
    expected = []
    for n, (remote, protocol, port) in enumerate(flows):
        side = evaluator.evaluate(ip_address(IP["web-1"]), remote, protocol, port).egress
        assert side is not None
        if not side.allowed:
            expected.append(n)
    assert Evaluator(policies, INVENTORY).denied(EGRESS, ip_address(IP["web-1"]), flows) == expected
    assert 0 < len(expected) < len(flows)


def test_parsing_shares_repeated_parts_and_still_names_bad_fields() -> None:
    peer = {"podSelector": app("db")}
    ports = [{"protocol": "TCP", "port": 5432}]
    shared = np("x", ingress=[{"from": [peer], "ports": ports} for _ in range(3)])
    copied = parse_policies([json.loads(json.dumps(shared))]).network[0]
    parsed = parse_policies([shared]).network[0]
    assert parsed == copied
    assert parsed.ingress[0] is parsed.ingress[2]  # one rule object for the same peer and ports
    assert parsed.ingress[0].ports is copied.ingress[0].ports or parsed.ingress[0].ports == copied.ingress[0].ports
    bad = np("x", ingress=[{"from": [peer], "ports": ports}, {"from": [peer, {"ipBlock": {"cidr": "foo"}}]}])
    with pytest.raises(InputError, match=r"NetworkPolicy shop/x: spec\.ingress\[1\]\.from\[1\]\.ipBlock\.cidr 'foo'"):
        parse_policies([bad])
    with pytest.raises(InputError, match=r"spec\.ingress\[1\]\.ports must be a list"):
        parse_policies([np("x", ingress=[{"from": [peer], "ports": ports}, {"from": [peer], "ports": "80"}])])


# Policies in the shapes the indexes know (name-label namespaces, one-label pods, /32 blocks) and others.
name_selectors = st.sampled_from([
    LabelSelector(labels_of({"kubernetes.io/metadata.name": n})) for n in ("a", "b", "c")]) | st.builds(
    lambda n, pairs: LabelSelector(labels_of({"kubernetes.io/metadata.name": n, **dict(pairs)})),
    st.sampled_from(["a", "b"]), st.lists(label_pairs, max_size=1))
indexed_peers = st.one_of(
    peers,
    st.builds(PolicyPeer, pod_selector=st.one_of(st.none(), selectors), namespace_selector=name_selectors),
    st.builds(PolicyPeer, namespace_selector=st.just(LabelSelector())),
    st.builds(lambda a: PolicyPeer(ip_block=IPBlock(ip_network(a))), st.sampled_from(ADDRESSES)),
    st.builds(lambda a, p: PolicyPeer(ip_block=IPBlock(ip_network(a).supernet(new_prefix=p))),
              st.sampled_from(ADDRESSES[:4]), st.sampled_from([24, 30, 31])),
)
indexed_rules = st.builds(Rule, st.one_of(st.none(), st.lists(indexed_peers, min_size=1, max_size=3).map(tuple)),
                          st.one_of(st.none(), st.lists(port_specs, min_size=1, max_size=2).map(tuple)))


@st.composite
def indexed_policies(draw: st.DrawFn, name: str) -> NetworkPolicy:
    return NetworkPolicy(
        namespace=draw(st.sampled_from([*NAMESPACES, "c"])), name=name,
        pod_selector=draw(st.one_of(st.just(LabelSelector()), selectors)),
        policy_types=draw(policy_types), ingress=tuple(draw(st.lists(indexed_rules, max_size=6))),
        egress=tuple(draw(st.lists(indexed_rules, max_size=6))))


admin_peers = st.one_of(
    st.builds(AdminPeer, namespace_selector=st.one_of(selectors, name_selectors)),
    st.builds(AdminPeer, namespace_selector=st.one_of(selectors, name_selectors), pod_selector=selectors),
    st.builds(lambda a: AdminPeer(networks=(ip_network(a),)), st.sampled_from(ADDRESSES)),
    st.builds(lambda c: AdminPeer(networks=(c,)), cidrs),
    st.just(AdminPeer(nodes=True)),
)
admin_rules = st.builds(AdminRule, st.just(""), st.sampled_from(list(Action)),
                        st.lists(admin_peers, min_size=1, max_size=2).map(tuple),
                        st.one_of(st.none(), st.lists(port_specs, min_size=1, max_size=2).map(tuple)))
admin_policies = st.lists(st.builds(
    AdminNetworkPolicy, st.sampled_from(["anp1", "anp2", "anp3"]), st.integers(0, 3),
    st.builds(Subject, st.one_of(st.just(LabelSelector()), name_selectors), st.one_of(st.just(LabelSelector()),
                                                                                       selectors)),
    st.lists(admin_rules, max_size=3).map(tuple), st.lists(admin_rules, max_size=3).map(tuple)),
    max_size=2, unique_by=lambda a: a.name)


@PROPERTY
@given(ids=st.lists(st.integers(0, 10**6), max_size=4, unique=True), data=st.data(), admin=admin_policies,
       batch=st.lists(flows, min_size=1, max_size=12))
def test_indexed_matching_agrees_with_the_linear_scan(ids: list[int], data: st.DataObject,
                                                      admin: list[AdminNetworkPolicy],
                                                      batch: list[tuple[str, str, Protocol, int]]) -> None:
    """The indexes find exactly the rules a scan of every peer of every rule finds: same verdicts, same reasons."""
    network = [data.draw(indexed_policies(f"p{i}")) for i in ids]
    policies = PolicySet(network=tuple(network), admin=tuple(admin))
    indexed = Evaluator(policies, PROP_INVENTORY)
    linear = Evaluator(policies, PROP_INVENTORY, indexed=False)
    for src, dst, protocol, port in batch:
        wire = None if protocol is ICMP else port
        verdict = indexed.evaluate(src, dst, protocol, wire)
        assert verdict == linear.evaluate(src, dst, protocol, wire)
        for direction, own, remote, side in ((EGRESS, src, dst, verdict.egress), (INGRESS, dst, src, verdict.ingress)):
            if side is not None:
                denied = Evaluator(policies, PROP_INVENTORY).denied(direction, ip_address(own),
                                                                     [(ip_address(remote), protocol, wire)])
                assert denied == ([] if side.allowed else [0])
                assert indexed.allows(direction, ip_address(own), ip_address(remote), protocol, wire) is side.allowed
