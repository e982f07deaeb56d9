"""``generate`` on the scenarios of ``test_generate_scenarios.py``, judged by an independent oracle.

The scenario tests there check the output with ``kubectl_netgen.evaluate``, which ``generate`` also runs as
its self-check. Here the same captures go through the real CLI and network-config-analyzer judges the
policies against tables written by hand (``tests/oracle.py``): what each captured workload must be able to
do, and plausible neighbours of it that must stay denied. The tables speak of connectivity, not of YAML,
so they hold however ``generate`` groups its rules.

Reading a table: ``allow(src, dst, protocol, port)`` is a connection ``src`` opens to ``dst:port``; a pod
is ``namespace/name``, anything else an address. A Service is never a destination: after kube-proxy's DNAT
the packet reaches a backend pod on its target port, and that is what a policy sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_generate_scenarios import (
    API1,
    API2,
    API_SVC,
    CONTROL_PLANE,
    DB0_4,
    DB1_4,
    DB_SVC,
    HASH,
    KUBERNETES_IP,
    NODE_A,
    NODE_B,
    PROMETHEUS,
    WEB4,
    WEB_POD,
    _dns_exchange,
    _meta,
    _template,
    base_cluster,
    capture_dir,
    deployment,
    deployment_pod,
    endpointslice,
    namespace,
    pod,
    service,
    statefulset,
    statefulset_pod,
    tcp,
    udp,
)
from tests.conftest import run
from tests.oracle import Row, allow, deny, expect_connectivity, parse_connections

WEB = f"shop/{WEB_POD}"
DB0, DB1 = "data/db-0", "data/db-1"
DNS = f"kube-system/coredns-{HASH}-q7w2e"
PROM = f"monitoring/prometheus-{HASH}-m4n5b"
API_A, API_B = f"shop/api-{HASH}-a1b2c", f"shop/api-{HASH}-d3e4f"
EXTERNAL = "192.0.2.7"


def generate(tmp_path: Path, items: list[dict[str, Any]], pcaps: dict[str, list[list[bytes]]], *args: str) -> str:
    """Run ``kubectl netgen generate`` on a capture directory of ``items`` and ``pcaps``; return the YAML."""
    root = capture_dir(tmp_path, items, pcaps)
    result = run("generate", root, "--no-reverse-dns", *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def judge(tmp_path: Path, items: list[dict[str, Any]], pcaps: dict[str, list[list[bytes]]], table: list[Row],
          *args: str) -> None:
    expect_connectivity(generate(tmp_path, items, pcaps, *args), items, table)


def _monitoring() -> list[dict[str, Any]]:
    return [namespace("monitoring"),
            *deployment("monitoring", "prometheus", {"app.kubernetes.io/name": "prometheus"}),
            deployment_pod("monitoring", "prometheus", "m4n5b", [PROMETHEUS], "node-b",
                           {"app.kubernetes.io/name": "prometheus"})]


def _api(**kw: Any) -> list[dict[str, Any]]:
    api = {"app": "api", "tier": "backend"}
    return [*deployment("shop", "api", api),
            deployment_pod("shop", "api", "a1b2c", [API1], "node-b", api, **kw),
            deployment_pod("shop", "api", "d3e4f", [API2], "node-b", api, **kw)]


# ----------------------------------------------------------------------------- scenarios

def test_cross_namespace(tmp_path: Path) -> None:
    items = [*base_cluster(), *_monitoring()]
    judge(tmp_path, items, {WEB: [tcp(WEB4, DB_SVC, 5432), tcp(PROMETHEUS, WEB4, 9090)]}, [
        allow(WEB, DB0, "TCP", 5432, "through Service data/db"),
        allow(WEB, DB1, "TCP", 5432, "the Service's other backend"),
        deny(WEB, DB0, "TCP", 5433),
        deny(WEB, DB0, "UDP", 5432),
        allow(PROM, WEB, "TCP", 9090, "the scrape web received"),
        deny(PROM, WEB, "TCP", 8080, "never seen"),
        deny(DNS, WEB, "TCP", 9090, "another namespace's pod"),
        deny(DB0, WEB, "TCP", 9090, "another namespace's pod"),
        deny(WEB, PROM, "TCP", 9090, "the scrape's reverse"),
        deny(WEB, EXTERNAL, "TCP", 443, "egress is closed"),
        # Prometheus and db have no policy: what web does not take part in stays open.
        allow(PROM, DB0, "TCP", 5432),
    ])


def test_both_ends_captured(tmp_path: Path) -> None:
    """web and db-0 both captured: the connection needs web's egress AND db's ingress, and db's is web only."""
    items = [*base_cluster(), *_monitoring()]
    judge(tmp_path, items, {WEB: [tcp(WEB4, DB_SVC, 5432)], DB0: [tcp(WEB4, DB0_4, 5432)]}, [
        allow(WEB, DB0, "TCP", 5432),
        allow(WEB, DB1, "TCP", 5432, "db-1 is the same StatefulSet: the same policy"),
        deny(PROM, DB0, "TCP", 5432, "db's ingress admits web only"),
        deny(DB1, DB0, "TCP", 5432, "not seen among the replicas"),
        deny(WEB, DB0, "TCP", 5433),
        deny(DB0, WEB, "TCP", 5432, "the reverse"),
        deny(DB0, EXTERNAL, "TCP", 443, "db's egress is closed"),
    ])


@pytest.mark.parametrize("slices", [True, False], ids=["endpointslices", "selector"])
def test_service_named_target_port(tmp_path: Path, slices: bool) -> None:
    items = [*base_cluster(), *_api(ports=[("http", 8080), ("metrics", 9100)]),
             service("shop", "api", [API_SVC], [{"name": "web", "port": 80, "targetPort": "http"}],
                     {"app": "api", "tier": "backend"})]
    if slices:
        items.append(endpointslice("shop", "api", [{"name": "web", "port": 8080}],
                                   [(API1, f"api-{HASH}-a1b2c"), (API2, f"api-{HASH}-d3e4f")]))
    judge(tmp_path, items, {WEB: [tcp(WEB4, API_SVC, 80)]}, [
        allow(WEB, API_A, "TCP", 8080, "Service port 80 -> targetPort http = 8080"),
        allow(WEB, API_B, "TCP", 8080, "the other backend"),
        deny(WEB, API_A, "TCP", 80, "the Service port never reaches a pod"),
        deny(WEB, API_A, "TCP", 9100, "the backends' other named port"),
        deny(API_A, WEB, "TCP", 8080, "the reverse"),
        deny(WEB, DB0, "TCP", 8080),
    ])


def test_headless_service(tmp_path: Path) -> None:
    cache = {"app": "cache"}
    items = [*base_cluster(), statefulset("shop", "cache", cache),
             statefulset_pod("shop", "cache", 0, ["10.244.1.40"], "node-a", cache, ports=[("redis", 6379)]),
             statefulset_pod("shop", "cache", 1, ["10.244.2.41"], "node-b", cache, ports=[("redis", 6379)]),
             service("shop", "cache", None, [{"name": "redis", "port": 6379, "targetPort": 6379}], cache),
             endpointslice("shop", "cache", [{"name": "redis", "port": 6379}],
                           [("10.244.1.40", "cache-0"), ("10.244.2.41", "cache-1")])]
    pcaps = {WEB: [tcp(WEB4, "10.244.1.40", 6379), tcp(WEB4, "10.244.2.41", 6379, 40001)]}
    judge(tmp_path, items, pcaps, [
        allow(WEB, "shop/cache-0", "TCP", 6379),
        allow(WEB, "shop/cache-1", "TCP", 6379),
        deny(WEB, "shop/cache-0", "TCP", 16379),
        deny(WEB, DB0, "TCP", 6379, "only the cache pods"),
        deny("shop/cache-0", WEB, "TCP", 6379, "the reverse"),
    ])


def test_host_network_peer(tmp_path: Path) -> None:
    agent = {"app": "node-agent"}
    items = [*base_cluster(),
             {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta("kube-system", "node-agent", agent),
              "spec": {"selector": {"matchLabels": agent}, "template": _template(agent)}},
             pod("kube-system", "node-agent-b7x4p", [NODE_B], "node-b", {**agent, "controller-revision-hash": "6f7"},
                 owner=("DaemonSet", "node-agent"), ports=[("metrics", 9100)], host_network=True)]
    judge(tmp_path, items, {WEB: [tcp(NODE_B, WEB4, 8080)]}, [
        allow(NODE_B, WEB, "TCP", 8080, "the hostNetwork pod speaks with node-b's address"),
        deny(NODE_B, WEB, "TCP", 9090),
        deny(CONTROL_PLANE, WEB, "TCP", 8080, "another node"),
        deny(WEB, NODE_B, "TCP", 8080, "the reverse"),
        deny(WEB, NODE_B, "TCP", 9100),
    ])


def test_node_probes(tmp_path: Path) -> None:
    judge(tmp_path, base_cluster(), {WEB: [tcp(NODE_A, WEB4, 8081), tcp(NODE_B, WEB4, 8081, 40001)]}, [
        allow(NODE_B, WEB, "TCP", 8081, "another node's probe needs a rule"),
        # The kubelet's probes from the pod's own node pass whatever the policy says, so no rule is written.
        deny(NODE_A, WEB, "TCP", 8081, "own node: allowed by the spec, not by a rule"),
        deny(CONTROL_PLANE, WEB, "TCP", 8081),
        deny(NODE_B, WEB, "TCP", 8080),
        deny(WEB, NODE_B, "TCP", 8081, "the reverse"),
    ])


def test_kube_apiserver(tmp_path: Path) -> None:
    judge(tmp_path, base_cluster(), {WEB: [tcp(WEB4, KUBERNETES_IP, 443)]}, [
        allow(WEB, CONTROL_PLANE, "TCP", 6443, "default/kubernetes:443's endpoint"),
        deny(WEB, CONTROL_PLANE, "TCP", 443, "the Service port"),
        deny(WEB, CONTROL_PLANE, "TCP", 10250, "the kubelet"),
        deny(WEB, KUBERNETES_IP, "TCP", 443, "the VIP itself never carries a packet"),
        deny(WEB, NODE_A, "TCP", 6443, "another node"),
        deny(CONTROL_PLANE, WEB, "TCP", 6443, "the reverse"),
    ])


def test_udp_that_is_not_dns(tmp_path: Path) -> None:
    """UDP request/response pairs, out to an external host and in from a pod, next to a DNS lookup."""
    lookup = _dns_exchange(WEB4, "udp.example.com.", [("udp.example.com.", "A", EXTERNAL)])
    pcaps = {WEB: [lookup, udp(WEB4, EXTERNAL, 5000), udp(DB1_4, WEB4, 6000, sport=42000)]}
    judge(tmp_path, base_cluster(), pcaps, [
        allow(WEB, DNS, "UDP", 53, "the lookup"),
        allow(WEB, EXTERNAL, "UDP", 5000, "the request web sent"),
        deny(WEB, EXTERNAL, "TCP", 5000, "the protocol matters"),
        deny(WEB, EXTERNAL, "UDP", 5001),
        deny(WEB, "192.0.2.8", "UDP", 5000, "the neighbouring address"),
        deny(EXTERNAL, WEB, "UDP", 41000, "the response, read as a request to web's source port"),
        allow(DB1, WEB, "UDP", 6000, "the request web received"),
        deny(DB1, WEB, "TCP", 6000),
        allow(DB0, WEB, "UDP", 6000, "db-1's StatefulSet is the peer"),
        deny(DNS, WEB, "UDP", 6000, "another workload"),
        deny(WEB, DB1, "UDP", 6000, "the reverse"),
        deny(WEB, DB1, "UDP", 42000, "the response, read as a request to db-1's source port"),
    ])


@pytest.mark.parametrize("mode", ["ingress", "egress"])
def test_mode(tmp_path: Path, mode: str) -> None:
    api = {"app": "api"}
    items = [*base_cluster(), *deployment("shop", "api", api),
             deployment_pod("shop", "api", "a1b2c", [API1], "node-b", api)]
    pcaps = {WEB: [tcp(API1, WEB4, 8080), tcp(WEB4, DB0_4, 5432), tcp(WEB4, "192.0.2.50", 443, 40001)]}
    observed = [allow(API_A, WEB, "TCP", 8080), allow(WEB, DB0, "TCP", 5432), allow(WEB, "192.0.2.50", "TCP", 443)]
    if mode == "ingress":
        table = [*observed,
                 deny(API_A, WEB, "TCP", 9090), deny(DB0, WEB, "TCP", 8080),
                 allow(WEB, "192.0.2.51", "TCP", 443, "egress left open"),
                 allow(WEB, DB0, "TCP", 5433, "egress left open")]
    else:
        table = [*observed,
                 deny(WEB, "192.0.2.51", "TCP", 443), deny(WEB, DB0, "TCP", 5433),
                 allow(API_A, WEB, "TCP", 9090, "ingress left open"),
                 allow(DB0, WEB, "TCP", 8080, "ingress left open")]
    judge(tmp_path, items, pcaps, table, "--mode", mode)


def test_direction_of_an_incoming_connection(tmp_path: Path) -> None:
    """api connects to web: an ingress rule on web's port, and web may not connect back on either port."""
    items = [*base_cluster(), *_api()]
    judge(tmp_path, items, {WEB: [tcp(API1, WEB4, 8080, sport=40123), tcp(WEB4, DB0_4, 5432)]}, [
        allow(API_A, WEB, "TCP", 8080, "the connection web accepted"),
        allow(API_B, WEB, "TCP", 8080, "the same Deployment"),
        deny(WEB, API_A, "TCP", 8080, "web never connected to api"),
        deny(WEB, API_A, "TCP", 40123, "api's source port is no service"),
        deny(API_A, WEB, "TCP", 40123),
        allow(WEB, DB0, "TCP", 5432, "the connection web opened"),
        deny(DB0, WEB, "TCP", 5432, "the reverse"),
        deny(DB0, WEB, "TCP", 8080, "db never connected to web"),
    ])


# ----------------------------------------------------------------------------- the oracle itself

def test_the_oracle_fails_a_wrong_table(tmp_path: Path) -> None:
    """A wrong row in either direction is reported, with nca's view of that pair."""
    text = generate(tmp_path, base_cluster(), {WEB: [tcp(WEB4, DB_SVC, 5432)]})
    with pytest.raises(AssertionError, match=r"2 of 2 rows disagree with nca") as failure:
        expect_connectivity(text, base_cluster(), [deny(WEB, DB0, "TCP", 5432), allow(WEB, DB0, "TCP", 5433)])
    message = str(failure.value)
    assert f"{WEB} -> {DB0} TCP/5432 must be denied, but nca says allowed" in message
    assert f"{WEB} -> {DB0} TCP/5433 must be allowed, but nca says denied" in message
    assert "{protocols:TCP,dst_ports:5432}" in message


def test_the_oracle_refuses_a_service_or_pod_address_in_a_table(tmp_path: Path) -> None:
    text = generate(tmp_path, base_cluster(), {WEB: [tcp(WEB4, DB_SVC, 5432)]})
    with pytest.raises(AssertionError, match="is pod data/db-0: name it so"):
        expect_connectivity(text, base_cluster(), [allow(WEB, DB0_4, "TCP", 5432)])
    with pytest.raises(AssertionError, match="no pod data/db-9"):
        expect_connectivity(text, base_cluster(), [allow(WEB, "data/db-9", "TCP", 5432)])


@pytest.mark.parametrize(("text", "inside", "outside"), [
    ("All connections", [("SCTP", 1)], []),
    ("No connections", [], [("TCP", 80)]),
    ("{protocols:TCP,dst_ports:9090}", [("TCP", 9090)], [("TCP", 9091), ("UDP", 9090)]),
    ("{protocols:TCP, UDP,dst_ports:53}", [("TCP", 53), ("UDP", 53)], [("SCTP", 53), ("UDP", 54)]),
    ("{protocols:TCP,dst_ports:8000-8002,8004},{protocols:UDP}", [("TCP", 8001), ("TCP", 8004), ("UDP", 1)],
     [("TCP", 8003), ("SCTP", 8000)]),
    ("All but {protocols:TCP,dst_ports:22}", [("TCP", 23), ("UDP", 22)], [("TCP", 22)]),
])
def test_nca_connection_sets_are_read(text: str, inside: list[tuple[str, int]],
                                      outside: list[tuple[str, int]]) -> None:
    connections = parse_connections(text)
    for item in inside:
        assert item in connections
    for item in outside:
        assert item not in connections


@pytest.mark.parametrize("text", ["{protocols:ICMP}", "{protocols:TCP,src_ports:1000}", "some connections"])
def test_unknown_nca_connection_sets_fail(text: str) -> None:
    with pytest.raises(ValueError, match=r"nca|unreadable"):
        parse_connections(text)
