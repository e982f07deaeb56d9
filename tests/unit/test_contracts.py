"""Group contracts: the document is checked precisely, and the policies let exactly the contracts through."""

from __future__ import annotations

import copy
from ipaddress import ip_address
from typing import Any

import pytest

from kubectl_netgen.contracts import (
    CONTRACTS_ANNOTATION,
    ContractPort,
    contract_policies,
    normalise_group,
    parse_contracts,
)
from kubectl_netgen.errors import InputError
from kubectl_netgen.evaluate import Evaluator, parse_policies
from kubectl_netgen.model import Inventory, Namespace, Pod, Protocol, WorkloadKind, WorkloadRef, labels_of
from tests.conftest import need

TCP, UDP = Protocol.TCP, Protocol.UDP

WORKED_EXAMPLE: dict[str, Any] = {
    "namespaces": ["mms"],
    "contracts": {
        "web-to-db": {"provide_networks": ["db"], "consume_networks": ["web"],
                      "ports": [{"protocol": "TCP", "port": "3306"}]},
    },
    "expose": [{"network": "web", "cidr": "0.0.0.0/0", "except": [], "ports": [{"protocol": "TCP", "port": "80"}]}],
}


def pod(namespace: str, name: str, ip: str, labels: dict[str, str]) -> Pod:
    return Pod(namespace=namespace, name=name, labels=labels_of(labels), ips=(ip_address(ip),), node="node-a",
               host_network=False, workload=WorkloadRef(WorkloadKind.POD, namespace, name))


PODS = {
    "web": pod("mms", "web-1", "10.244.0.10", {"mms_network_tag": "web"}),
    "web-2": pod("mms", "web-2", "10.244.0.11", {"mms_network_tag": "web"}),
    "db": pod("mms", "db-1", "10.244.0.20", {"mms_network_tag": "db"}),
    "plain": pod("mms", "plain", "10.244.0.30", {}),
    "other-ns-web": pod("other", "web-x", "10.244.0.40", {"mms_network_tag": "web"}),
}
INVENTORY = Inventory.create(namespaces=[Namespace("mms", labels_of({"kubernetes.io/metadata.name": "mms"})),
                                         Namespace("other", labels_of({"kubernetes.io/metadata.name": "other"}))],
                             pods=PODS.values())
EXTERNAL = "203.0.113.5"


def allowed(manifests: list[dict[str, Any]], src: str, dst: str, port: int, protocol: Protocol = TCP) -> bool:
    ip = {k: str(p.ips[0]) for k, p in PODS.items()}
    verdict = Evaluator(parse_policies(manifests), INVENTORY).evaluate(ip.get(src, src), ip.get(dst, dst),
                                                                        protocol, port)
    return verdict.allowed


@pytest.fixture(scope="module")
def policies() -> list[dict[str, Any]]:
    return contract_policies(parse_contracts(WORKED_EXAMPLE))


@pytest.fixture(scope="module")
def symmetric() -> list[dict[str, Any]]:
    return contract_policies(parse_contracts(WORKED_EXAMPLE), symmetric=True)


# ----------------------------------------------------------------------------- the worked example, evaluated

@pytest.mark.parametrize(("src", "dst", "port", "expected"), [
    ("web", "db", 3306, True),        # the contract
    ("web", "db", 22, False),         # ... on its ports only
    ("db", "web", 22, True),          # the provider reaches its consumer on any port
    ("db", "web", 8080, True),
    (EXTERNAL, "web", 80, True),      # expose
    (EXTERNAL, "web", 81, False),
    (EXTERNAL, "db", 3306, False),    # db is not exposed
    ("plain", "db", 3306, False),     # not in a group: nothing
    ("plain", "web", 8080, False),
    ("plain", "web", 80, True),       # ... but it is an address of 0.0.0.0/0, like any other (ipBlocks match pods)
    ("web", "web-2", 12345, True),    # members of a group reach each other
    ("other-ns-web", "db", 3306, False),  # a group member in a namespace the document does not list
    ("web", "plain", 22, True),       # egress is not restricted, nor ungrouped pods
])
def test_worked_example(policies: list[dict[str, Any]], src: str, dst: str, port: int, expected: bool) -> None:
    assert allowed(policies, src, dst, port) is expected


@pytest.mark.parametrize(("src", "dst", "port", "expected"), [
    ("web", "db", 3306, True),
    ("web", "db", 22, False),
    ("db", "web", 3306, True),        # symmetric: the provider is held to the contract's ports too
    ("db", "web", 22, False),
    (EXTERNAL, "web", 80, True),
])
def test_symmetric(symmetric: list[dict[str, Any]], src: str, dst: str, port: int, expected: bool) -> None:
    assert allowed(symmetric, src, dst, port) is expected


def test_worked_example_manifests(policies: list[dict[str, Any]]) -> None:
    peer = {"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["mms"]}]}}
    meta = {"namespace": "mms", "labels": {"app.kubernetes.io/managed-by": "kubectl-netgen"},
            "annotations": {CONTRACTS_ANNOTATION: "web-to-db"}}
    assert policies == [
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "netgen-group-db", **meta},
         "spec": {"podSelector": {"matchLabels": {"mms_network_tag": "db"}}, "policyTypes": ["Ingress"],
                  "ingress": [
                      {"from": [{**peer, "podSelector": {"matchLabels": {"mms_network_tag": "db"}}}]},
                      {"from": [{**peer, "podSelector": {"matchLabels": {"mms_network_tag": "web"}}}],
                       "ports": [{"protocol": "TCP", "port": 3306}]},
                  ]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "netgen-group-web", **meta},
         "spec": {"podSelector": {"matchLabels": {"mms_network_tag": "web"}}, "policyTypes": ["Ingress"],
                  "ingress": [
                      {"from": [{**peer, "podSelector": {"matchLabels": {"mms_network_tag": "web"}}}]},
                      {"from": [{**peer, "podSelector": {"matchLabels": {"mms_network_tag": "db"}}}]},
                      {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 80}]},
                  ]}},
    ]


def test_output_is_deterministic() -> None:
    doc = copy.deepcopy(WORKED_EXAMPLE)
    doc["namespaces"] = ["zeta", "mms"]
    doc["contracts"]["app-to-db"] = {"provide_networks": ["db"], "consume_networks": ["app"],
                                     "ports": [{"protocol": "TCP", "port": "5432"}, {"protocol": "UDP", "port": "53"}]}
    reordered = copy.deepcopy(doc)
    reordered["contracts"] = dict(reversed(list(doc["contracts"].items())))
    reordered["namespaces"].reverse()
    assert contract_policies(parse_contracts(doc)) == contract_policies(parse_contracts(reordered))
    names = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in contract_policies(parse_contracts(doc))]
    assert names == sorted(names) and len(names) == 6


def test_a_group_can_provide_and_consume() -> None:
    doc = {"namespaces": ["mms"], "contracts": {
        "web-to-app": {"provide_networks": ["app"], "consume_networks": ["web"], "ports": [{"port": "8080"}]},
        "app-to-db": {"provide_networks": ["db"], "consume_networks": ["app"], "ports": [{"port": "3306"}]},
    }}
    cs = parse_contracts(doc)
    assert cs.groups == ("app", "db", "web")
    app = next(p for p in contract_policies(cs) if p["metadata"]["name"] == "netgen-group-app")
    peers = [(r["from"][0]["podSelector"]["matchLabels"]["mms_network_tag"], r.get("ports"))
             for r in app["spec"]["ingress"]]
    assert peers == [("app", None), ("db", None), ("web", [{"protocol": "TCP", "port": 8080}])]
    assert app["metadata"]["annotations"][CONTRACTS_ANNOTATION] == "app-to-db,web-to-app"


def test_ports_of_several_contracts_between_the_same_groups_merge() -> None:
    doc = {"namespaces": ["mms"], "contracts": {
        "a": {"provide_networks": ["db"], "consume_networks": ["web"], "ports": [{"port": "3306"}]},
        "b": {"provide_networks": ["db"], "consume_networks": ["web"],
              "ports": [{"port": "8000-8010"}, {"protocol": "udp"}]},
    }}
    db = contract_policies(parse_contracts(doc))[0]
    assert db["spec"]["ingress"][1]["ports"] == [
        {"protocol": "TCP", "port": 3306}, {"protocol": "TCP", "port": 8000, "endPort": 8010}, {"protocol": "UDP"}]
    assert allowed([db], "web", "db", 8005) and allowed([db], "web", "db", 5353, UDP)
    assert not allowed([db], "web", "db", 8011)


def test_every_port_of_a_protocol_swallows_single_ports() -> None:
    cs = parse_contracts({"namespaces": ["n"], "contracts": {"c": {
        "provide_networks": ["a"], "consume_networks": ["b"],
        "ports": [{"protocol": "TCP", "port": 22}, {"protocol": "TCP"},
                  {"protocol": "SCTP", "port": "9", "endPort": 9}]}}})
    assert cs.contracts[0].ports == (ContractPort(Protocol.SCTP, 9), ContractPort(TCP))


def test_label_key_and_group_normalisation() -> None:
    doc = {"namespaces": ["mms"], "contracts": {"c": {
        "provide_networks": ["DB_main"], "consume_networks": ["web_front"], "ports": [{"port": 3306}]}}}
    policies = contract_policies(parse_contracts(doc), label_key="example.com/network")
    assert [p["metadata"]["name"] for p in policies] == ["netgen-group-db-main", "netgen-group-web-front"]
    assert policies[0]["spec"]["podSelector"] == {"matchLabels": {"example.com/network": "DB-main"}}


def test_expose_with_except_and_ipv6() -> None:
    doc = copy.deepcopy(WORKED_EXAMPLE)
    doc["expose"] = [
        {"network": "web", "cidr": "0.0.0.0/0", "except": ["203.0.113.0/24", "10.0.0.0/8"], "ports": [{"port": "80"}]},
        {"network": "web", "cidr": "2001:db8::/32", "ports": [{"port": "443"}]},
    ]
    web = contract_policies(parse_contracts(doc))[1]
    blocks = [r for r in web["spec"]["ingress"] if "ipBlock" in r["from"][0]]
    assert [b["from"][0]["ipBlock"] for b in blocks] == [
        {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "203.0.113.0/24"]}, {"cidr": "2001:db8::/32"}]
    assert not allowed([web], EXTERNAL, "web", 80)
    assert allowed([web], "198.51.100.1", "web", 80)


def test_source_ports_and_established_are_ignored_with_a_warning() -> None:
    doc = copy.deepcopy(WORKED_EXAMPLE)
    doc["contracts"]["web-to-db"]["established"] = True
    doc["contracts"]["web-to-db"]["ports"] = [{"protocol": "TCP", "port": "3306", "source_port": "1024-65535"}]
    cs = parse_contracts(doc)
    assert cs.warnings == (
        "contract web-to-db: established ignored (NetworkPolicy is stateful: replies are always allowed)",
        "contract web-to-db: source_port ignored (NetworkPolicy matches destination ports only)",
    )
    assert contract_policies(cs) == contract_policies(parse_contracts(WORKED_EXAMPLE))


def test_every_manifest_is_valid_against_the_kubernetes_schema(policies: list[dict[str, Any]],
                                                              symmetric: list[dict[str, Any]]) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    need(kubernetes_validate is not None, "needs kubernetes-validate (pip install -e '.[test]')")
    assert kubernetes_validate is not None
    doc = copy.deepcopy(WORKED_EXAMPLE)
    doc["expose"].append({"network": "db", "cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"],
                          "ports": [{"protocol": "UDP", "port": "9000-9100"}, {"protocol": "SCTP"}]})
    extra = contract_policies(parse_contracts(doc), label_key="example.com/net")
    for document in [*policies, *symmetric, *extra]:
        kubernetes_validate.validate(document, "1.33", strict=True)


# ----------------------------------------------------------------------------- bad input

def broken(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(WORKED_EXAMPLE)
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(("doc", "message"), [
    (broken("contracts.web-to-db.ports", [{"protocol": "TCP", "port": "x"}]),
     "contract web-to-db: port 'x' is not a port number"),
    (broken("contracts.web-to-db.ports", [{"port": "0"}]), "contract web-to-db: port '0' is not a port number"),
    (broken("contracts.web-to-db.ports", [{"port": 65536}]), "contract web-to-db: port 65536 is not a port number"),
    (broken("contracts.web-to-db.ports", [{"port": True}]), "contract web-to-db: port True is not a port number"),
    (broken("contracts.web-to-db.ports", [{"port": "9000-8000"}]),
     "contract web-to-db: port range '9000-8000' ends before it starts"),
    (broken("contracts.web-to-db.ports", [{"protocol": "ICMP", "port": "1"}]),
     "contract web-to-db: protocol 'ICMP' is not TCP, UDP or SCTP"),
    (broken("contracts.web-to-db.ports", []), "contract web-to-db: ports: expected a list"),
    (broken("contracts.web-to-db.ports", [{"proto": "TCP"}]), "contract web-to-db: unknown port field 'proto'"),
    (broken("contracts.web-to-db.consume_network", ["web"]), "contract web-to-db: unknown field 'consume_network'"),
    (broken("contracts.web-to-db.consume_networks", []), "contract web-to-db: consume_networks names no group"),
    (broken("contracts.web-to-db.consume_networks", ["-web"]), "contract web-to-db: consume_networks: group '-web'"),
    (broken("contracts.web-to-db", "db"), "contract web-to-db: expected"),
    (broken("networks", ["web", "db"]) | {"contracts": {"c": {"provide_networks": ["dbb"], "consume_networks": ["web"],
                                                               "ports": [{"port": "1"}]}}},
     "contract c: provide_networks: unknown group 'dbb' (not in networks: db, web)"),
    (broken("expose.0.network", "wbe"), "expose[0] (network wbe): unknown group 'wbe' (not in any contract: db, web)"),
    (broken("expose.0.cidr", "10.0.0.1/8"), "expose[0] (network web): cidr '10.0.0.1/8' is not a CIDR"),
    (broken("expose.0.cidr", "nowhere"), "expose[0] (network web): cidr 'nowhere' is not a CIDR"),
    (broken("expose.0.except", ["10.0.0.0/33"]), "expose[0] (network web): except '10.0.0.0/33' is not a CIDR"),
    (broken("expose.0.cidr", "10.0.0.0/8") | {}, None),
    (broken("expose.0.except", ["192.168.0.0/16", "::/0"]), "except ::/0 is not strictly inside cidr 0.0.0.0/0"),
    (broken("expose.0.except", ["0.0.0.0/0"]), "except 0.0.0.0/0 is not strictly inside cidr 0.0.0.0/0"),
    (broken("expose.0.ports", None), "expose[0] (network web): ports: expected a list"),
    (broken("namespaces", []), "namespaces: list at least one namespace"),
    (broken("namespaces", ["MMS"]), "namespaces: 'MMS' is not a namespace name"),
    (broken("namespaces", "mms"), "namespaces: expected a list of names"),
    (broken("contracts", [{"web-to-db": {}}]), "contracts: expected a mapping"),
    (broken("extra", 1), "unknown field 'extra'"),
    ({"namespaces": ["n"], "contracts": {
        "c": {"provide_networks": ["Web"], "consume_networks": ["web"], "ports": [{"port": "1"}]}}},
     "groups 'Web' and 'web' differ only by case"),
    ({"namespaces": ["n"], "contracts": {
        "c": {"provide_networks": ["a..b"], "consume_networks": ["web"], "ports": [{"port": "1"}]}}},
     "group 'a..b' cannot name a policy"),
])
def test_bad_input_is_a_clear_error(doc: dict[str, Any], message: str | None) -> None:
    if message is None:  # a control: the document is fine
        parse_contracts(doc)
        return
    with pytest.raises(InputError) as caught:
        parse_contracts(doc)
    assert message in caught.value.message
    assert caught.value.exit_code == 3


def test_bad_label_key() -> None:
    with pytest.raises(InputError, match="is not a valid label key"):
        contract_policies(parse_contracts(WORKED_EXAMPLE), label_key="bad key")


@pytest.mark.parametrize(("raw", "value"), [("web_front", "web-front"), (" DB ", "DB"), ("a.b", "a.b")])
def test_normalise_group(raw: str, value: str) -> None:
    assert normalise_group(raw) == value


@pytest.mark.parametrize("raw", ["", "_web", "x" * 64, "we b"])
def test_normalise_group_refuses(raw: str) -> None:
    with pytest.raises(InputError):
        normalise_group(raw)
