"""``generate`` writes policies that are safe to apply: what a capture cannot see is not cut off.

Each test is one way a policy built from a capture's window would break a real cluster (or widen it
silently): shared servers in ``kube-system``, excluded workloads, hostNetwork pods, pods without stable
labels, public Services, node gateway addresses, hairpin traffic, connection pools known from socket
tables, and rules that repeat. Scenarios reuse the builders of ``test_generate_scenarios``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_generate_scenarios import (
    API1,
    API_SVC,
    COREDNS,
    DB0_4,
    DB1_4,
    DB_SVC,
    HASH,
    KUBE_DNS_IP,
    NODE_A,
    NODE_B,
    WEB4,
    WEB_POD,
    Outcome,
    _ip,
    base_cluster,
    capture_dir,
    deployment,
    deployment_pod,
    endpointslice,
    namespace,
    pod,
    service,
    tcp,
    udp,
)
from tests.conftest import run

WEB = f"shop/{WEB_POD}"
COREDNS_POD = f"kube-system/coredns-{HASH}-q7w2e"


def _policy(out: Outcome, name: str) -> dict[str, Any]:
    return next(p for p in out.policies if p["metadata"]["name"] == name)


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def _peers(policy: dict[str, Any], side: str, protocol: str, port: int) -> list[dict[str, Any]]:
    """Every peer that a rule of ``side`` (ingress/egress) admits on ``protocol``/``port``."""
    key = "from" if side == "ingress" else "to"
    return [peer for rule in policy["spec"].get(side, []) for peer in rule[key]
            if any(p["protocol"] == protocol and p["port"] == port for p in rule["ports"])]


# ----------------------------------------------------------------------------- shared infrastructure

def test_kube_system_gets_no_policy_by_default(tmp_path: Path) -> None:
    root = capture_dir(tmp_path, base_cluster(), {
        WEB: [udp(WEB4, KUBE_DNS_IP, 53)],
        COREDNS_POD: [udp(WEB4, COREDNS, 53)],
    })
    out = Outcome(root)
    assert [p["metadata"]["namespace"] for p in out.policies] == ["shop"]
    assert _warnings(out.result.stderr) == [
        "warning: 1 kube-system workload(s) serve the whole cluster and get no policy (--include-system writes "
        "them): kube-system/coredns"]


def test_include_system_dns_server_admits_every_pod_on_udp_and_tcp(tmp_path: Path) -> None:
    """The DNS server admits every pod, never only the captured clients; its other ports keep their peers."""
    items = [*base_cluster(), namespace("monitoring"),
             *deployment("monitoring", "prometheus", {"app": "prometheus"}),
             deployment_pod("monitoring", "prometheus", "m4n5b", ["10.244.2.60"], "node-b", {"app": "prometheus"})]
    root = capture_dir(tmp_path, items, {
        # web asks over TCP (a truncated answer's retry); the server saw it on TCP only.
        WEB: [tcp(WEB4, KUBE_DNS_IP, 53)],
        COREDNS_POD: [tcp(WEB4, COREDNS, 53), tcp("10.244.2.60", COREDNS, 9153, 40001)],
    })
    out = Outcome(root, "--include-system")
    coredns = _policy(out, "coredns-netgen")
    for protocol in ("UDP", "TCP"):
        assert _peers(coredns, "ingress", protocol, 53) == [{"namespaceSelector": {}}]
    assert _peers(coredns, "ingress", "TCP", 9153) == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
         "podSelector": {"matchLabels": {"app": "prometheus"}}}]
    # Client egress and server ingress agree on both protocols.
    web = _policy(out, "web-netgen")
    dns_ports = {(p["protocol"], p["port"]) for rule in web["spec"]["egress"]
                 for peer in rule["to"] if peer.get("podSelector") == {"matchLabels": {"k8s-app": "kube-dns"}}
                 for p in rule["ports"]}
    assert dns_ports == {("UDP", 53), ("TCP", 53)}
    # A pod of a namespace that was never captured may ask the server.
    prometheus = "monitoring/prometheus-7d9f8c6b5-m4n5b"
    assert out.allows(COREDNS_POD, "ingress", "10.244.2.60", "UDP", 53, prometheus)
    assert not out.allows(COREDNS_POD, "ingress", DB0_4, "TCP", 9153, "data/db-0")
    assert ("warning: kube-system/coredns: TCP/53, UDP/53 admit pods in every namespace: it serves cluster DNS "
            "(kube-system/kube-dns)") in _warnings(out.result.stderr)


def test_dns_rule_uses_the_servers_target_port(tmp_path: Path) -> None:
    """Egress is enforced after the Service's DNAT: a DNS server on 5353 is reached on 5353, both protocols."""
    items = base_cluster()
    for item in items:
        if item["kind"] == "Service" and item["metadata"]["name"] == "kube-dns":
            for port in item["spec"]["ports"]:
                port["targetPort"] = 5353
        if item["kind"] == "EndpointSlice" and item["metadata"]["name"].startswith("kube-dns"):
            for port in item["ports"]:
                port["port"] = 5353
    root = capture_dir(tmp_path, items, {WEB: [tcp(WEB4, DB_SVC, 5432)]})
    out = Outcome(root)
    web = _policy(out, "web-netgen")
    assert _peers(web, "egress", "UDP", 5353) == _peers(web, "egress", "TCP", 5353) == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert not _peers(web, "egress", "UDP", 53)


# ----------------------------------------------------------------------------- what gets a policy

def test_exclude_leaves_workloads_out(tmp_path: Path) -> None:
    root = capture_dir(tmp_path, base_cluster(), {WEB: [tcp(WEB4, DB_SVC, 5432)],
                                                  "data/db-0": [tcp(WEB4, DB0_4, 5432)]})
    out = Outcome(root, "--exclude", "shop/w?b", "--exclude", "other/*")
    assert [p["metadata"]["name"] for p in out.policies] == ["db-netgen"]
    assert "warning: 1 workload(s) left out by --exclude: shop/web" in out.result.stderr
    everything = Outcome(root, "--exclude", "*/*")
    assert everything.policies == []


def test_exclude_rejects_what_is_not_a_workload_pattern(tmp_path: Path) -> None:
    root = capture_dir(tmp_path, base_cluster(), {WEB: [tcp(WEB4, DB_SVC, 5432)]})
    result = run("generate", root, "--no-reverse-dns", "--exclude", "web")
    assert result.exit_code == 2
    assert "'web' is not NAMESPACE/NAME of a workload" in result.stderr


def test_host_network_pod_gets_no_policy(tmp_path: Path) -> None:
    agent = {"app": "node-agent"}
    items = [*base_cluster(),
             {"apiVersion": "apps/v1", "kind": "DaemonSet",
              "metadata": {"name": "node-agent", "namespace": "shop", "uid": "uid-node-agent"},
              "spec": {"selector": {"matchLabels": agent}, "template": {"metadata": {"labels": agent}}}},
             pod("shop", "node-agent-b7x4p", [NODE_B], "node-b", agent, owner=("DaemonSet", "node-agent"),
                 host_network=True)]
    root = capture_dir(tmp_path, items, {"shop/node-agent-b7x4p": [tcp(NODE_B, DB0_4, 5432)],
                                         WEB: [tcp(WEB4, DB_SVC, 5432)]})
    out = Outcome(root)
    assert [p["metadata"]["name"] for p in out.policies] == ["web-netgen"]
    assert ("warning: 1 hostNetwork pod(s) get no policy: NetworkPolicy does not apply to them: "
            "shop/node-agent-b7x4p") in out.result.stderr


def test_pods_without_stable_labels_are_never_selected_by_an_empty_selector(tmp_path: Path) -> None:
    """A bare pod labelled only with volatile labels: no policy for it, no ``podSelector: {}`` for its peers."""
    items = [*base_cluster(), pod("shop", "scratch", ["10.244.1.90"], "node-a", {"pod-template-hash": "abc"})]
    root = capture_dir(tmp_path, items, {WEB: [tcp(WEB4, "10.244.1.90", 8080), tcp(WEB4, DB_SVC, 5432, 40001)],
                                         "shop/scratch": [tcp("10.244.1.90", DB0_4, 5432)]})
    out = Outcome(root)
    assert [p["metadata"]["name"] for p in out.policies] == ["web-netgen"]
    assert "podSelector: {}" not in out.result.stdout
    warnings = "\n".join(_warnings(out.result.stderr))
    assert ("shop/scratch: carries no stable label (only volatile ones such as pod-template-hash), so a policy "
            "would select every pod of shop; no policy written, its 1 observed flow(s) stay unrestricted (add a "
            "label such as app.kubernetes.io/name=scratch to the pod template)") in warnings
    assert (f"{WEB}: TCP egress to 10.244.1.90: pod shop/scratch carries no stable label, so no selector can name "
            "it without selecting its whole namespace; no rule written, these flows stay unallowed") in warnings
    assert not out.allows(WEB, "egress", "10.244.1.90", "TCP", 8080, "shop/scratch")
    assert not out.allows(WEB, "egress", DB1_4, "TCP", 8080, "data/db-1")


# ----------------------------------------------------------------------------- public Services

def _public_web(kind: str = "LoadBalancer", families: tuple[str, ...] = ("10.96.0.80",)) -> list[dict[str, Any]]:
    svc = service("shop", "web", list(families), [{"name": "http", "port": 80, "targetPort": "http"}], {"app": "web"})
    svc["spec"]["type"] = kind
    svc["spec"]["ports"][0]["nodePort"] = 30080
    return [svc, endpointslice("shop", "web", [{"name": "http", "port": 8080}], [(WEB4, WEB_POD)])]


@pytest.mark.parametrize(("kind", "client"), [("LoadBalancer", "203.0.113.7"), ("NodePort", NODE_B),
                                              ("LoadBalancer", NODE_A)],
                         ids=["outside-client", "snat-other-node", "snat-own-node"])
def test_public_service_backends_admit_anyone_on_the_target_port(tmp_path: Path, kind: str, client: str) -> None:
    root = capture_dir(tmp_path, [*base_cluster(), *_public_web(kind)],
                       {WEB: [tcp(client, WEB4, 8080), tcp(NODE_B, WEB4, 9090, 40001)]})
    out = Outcome(root)
    web = _policy(out, "web-netgen")
    assert _peers(web, "ingress", "TCP", 8080) == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    assert f"cidr: 0.0.0.0/0  # anywhere: public Service shop/web ({kind})" in out.result.stdout
    assert out.allows(WEB, "ingress", "198.51.100.99", "TCP", 8080)  # the next client
    assert not out.allows(WEB, "ingress", "198.51.100.99", "TCP", 9090)  # not a public port: observed peer only
    assert _peers(web, "ingress", "TCP", 9090) == [{"ipBlock": {"cidr": f"{NODE_B}/32"}}]
    assert any(f"web: TCP/8080 admits 0.0.0.0/0: public Service shop/web ({kind})" in w
               for w in _warnings(out.result.stderr))
    observed = Outcome(root, "--external-ingress", "observed")
    expected = [] if client == NODE_A else [{"ipBlock": {"cidr": f"{client}/32"}}]
    assert _peers(_policy(observed, "web-netgen"), "ingress", "TCP", 8080) == expected


def test_dual_stack_public_service_admits_both_families(tmp_path: Path) -> None:
    root = capture_dir(tmp_path, [*base_cluster(), *_public_web(families=("10.96.0.80", "fd00:10:96::80"))],
                       {WEB: [tcp("203.0.113.7", WEB4, 8080)]})
    web = _policy(Outcome(root), "web-netgen")
    assert _peers(web, "ingress", "TCP", 8080) == [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]


def test_public_service_reached_only_from_pods_keeps_its_selectors(tmp_path: Path) -> None:
    """An in-cluster ingress controller (a pod) reaching a NodePort Service: nothing outside was seen."""
    items = [*base_cluster(), *_public_web("NodePort"), *deployment("shop", "ingress", {"app": "ingress"}),
             deployment_pod("shop", "ingress", "i9o8p", [API1], "node-b", {"app": "ingress"})]
    root = capture_dir(tmp_path, items, {WEB: [tcp(API1, WEB4, 8080)]})
    web = _policy(Outcome(root), "web-netgen")
    assert _peers(web, "ingress", "TCP", 8080) == [{"podSelector": {"matchLabels": {"app": "ingress"}}}]


# ----------------------------------------------------------------------------- the node inside the pod network

def test_node_gateway_addresses_are_the_node(tmp_path: Path) -> None:
    """10.244.1.1 is node-a's bridge (web's own node: no rule); 10.244.2.0 is node-b's tunnel device."""
    root = capture_dir(tmp_path, base_cluster(), {WEB: [tcp("10.244.1.1", WEB4, 8080),
                                                        tcp("10.244.2.0", WEB4, 8080, 40001)]})
    out = Outcome(root)
    assert _warnings(out.result.stderr) == []
    assert _peers(_policy(out, "web-netgen"), "ingress", "TCP", 8080) == [{"ipBlock": {"cidr": "10.244.2.0/32"}}]
    assert "cidr: 10.244.2.0/32  # node node-b" in out.result.stdout
    policies = tmp_path / "policies.yaml"
    policies.write_text(out.result.stdout)
    verified = run("verify", root, "--policies", policies, "-o", "json")
    assert verified.exit_code == 0, verified.stderr
    bridge = next(f for f in json.loads(verified.stdout) if f["src_ip"] == "10.244.1.1")
    assert bridge["verdict"] == "allowed" and "from its own node" in bridge["reason"]


def test_tunnel_addresses_the_cni_announces_are_the_node(tmp_path: Path) -> None:
    """Calico's tunnel address comes from its IP pool, outside node-b's podCIDR; Cilium's cilium_host is node-a's."""
    items = base_cluster()
    for item in items:
        if item["kind"] == "Node" and item["metadata"]["name"] == "node-b":
            item["metadata"]["annotations"] = {"projectcalico.org/IPv4VXLANTunnelAddr": "10.244.130.193"}
        if item["kind"] == "Node" and item["metadata"]["name"] == "node-a":
            item["metadata"]["annotations"] = {"network.cilium.io/ipv4-cilium-host": "10.244.1.77"}
    root = capture_dir(tmp_path, items, {WEB: [tcp("10.244.130.193", WEB4, 8080),
                                               tcp("10.244.1.77", WEB4, 9090, 40001)]})
    out = Outcome(root)
    assert _warnings(out.result.stderr) == []
    web = _policy(out, "web-netgen")
    assert _peers(web, "ingress", "TCP", 8080) == [{"ipBlock": {"cidr": "10.244.130.193/32"}}]
    assert "cidr: 10.244.130.193/32  # node node-b" in out.result.stdout
    assert _peers(web, "ingress", "TCP", 9090) == []  # web's own node: allowed without a rule


def test_hairpin_through_the_own_service_admits_the_workload(tmp_path: Path) -> None:
    """web calls its own Service and kube-proxy picks web itself; the reply comes back from the gateway."""
    items = [*base_cluster(), service("shop", "web", [API_SVC], [{"name": "http", "port": 80, "targetPort": 8080}],
                                      {"app": "web"}),
             endpointslice("shop", "web", [{"name": "http", "port": 8080}], [(WEB4, WEB_POD)])]
    root = capture_dir(tmp_path, items, {WEB: [tcp(WEB4, API_SVC, 80), tcp("10.244.1.1", WEB4, 8080, 40001)]})
    out = Outcome(root)
    assert _warnings(out.result.stderr) == []
    web = _policy(out, "web-netgen")
    assert _peers(web, "egress", "TCP", 8080) == [{"podSelector": {"matchLabels": {"app": "web"}}}]
    assert _peers(web, "ingress", "TCP", 8080) == [{"podSelector": {"matchLabels": {"app": "web"}}}]


# ----------------------------------------------------------------------------- socket tables decide

def _hex4(address: str) -> str:
    return bytes(reversed(bytes(int(part) for part in address.split(".")))).hex().upper()


def test_socket_table_decides_direction_ahead_of_port_guesses(tmp_path: Path) -> None:
    """A pool connection from web:40000 to a Service on 50000, seen mid-stream: both ports look ephemeral."""
    items = [*base_cluster(), *deployment("shop", "api", {"app": "api"}),
             deployment_pod("shop", "api", "a1b2c", [API1], "node-b", {"app": "api"}),
             service("shop", "api", [API_SVC], [{"name": "grpc", "port": 50000, "targetPort": 50000}], {"app": "api"}),
             endpointslice("shop", "api", [{"name": "grpc", "port": 50000}], [(API1, f"api-{HASH}-a1b2c")])]

    def segment(a: str, b: str, pa: int, pb: int) -> bytes:  # ACK with data: no handshake in the window
        return _ip(a, b, 6, struct.pack("!HHIIBBHHH", pa, pb, 7, 9, 0x50, 0x18, 1000, 0, 0) + b"x")

    root = capture_dir(tmp_path, items, {WEB: [[segment(WEB4, API_SVC, 40000, 50000),
                                                segment(API_SVC, WEB4, 50000, 40000)]]})
    guessed = Outcome(root)
    assert _peers(_policy(guessed, "web-netgen"), "ingress", "TCP", 40000) == [
        {"ipBlock": {"cidr": f"{API_SVC}/32"}}]  # without tables: the lower port is taken for the server's
    row = (f"   0: {_hex4(WEB4)}:9C40 {_hex4(API_SVC)}:C350 01 00000000:00000000 00:00000000 00000000     0        0 "
           "4242 1 0000000000000000 20 4 30 10 -1\n")
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    for moment in ("start", "end"):
        tables = root / "sockets" / "shop" / WEB_POD / moment
        tables.mkdir(parents=True)
        (tables / "tcp").write_text(header + row)
    out = Outcome(root)
    web = _policy(out, "web-netgen")
    assert "ingress" not in web["spec"]
    assert _peers(web, "egress", "TCP", 50000) == [{"podSelector": {"matchLabels": {"app": "api"}}}]
    # neighbors and verify read the same tables, so they orient the flow the same way
    listed = json.loads(run("neighbors", root, "--no-reverse-dns", "-o", "json").stdout)
    [web_neighbors] = [w for w in listed if w["workload"]["name"] == "web"]
    assert web_neighbors["ingress"] == []
    assert [(n["peer"]["workload"]["name"], n["port"]) for n in web_neighbors["egress"]] == [("api", 50000)]
    policies = root.parent / "policies.yaml"
    policies.write_text(out.result.stdout)
    verified = run("verify", root, "--policies", policies, "-o", "json")
    assert verified.exit_code == 0, verified.stderr


# ----------------------------------------------------------------------------- readable

def test_peers_with_the_same_ports_share_one_rule(tmp_path: Path) -> None:
    items = [*base_cluster(), *deployment("shop", "api", {"app": "api"}),
             deployment_pod("shop", "api", "a1b2c", [API1], "node-b", {"app": "api"})]
    root = capture_dir(tmp_path, items, {WEB: [tcp(API1, WEB4, 8080), tcp(DB0_4, WEB4, 8080, 40001),
                                                tcp("192.0.2.10", WEB4, 8080, 40002), tcp(API1, WEB4, 9090, 40003)]})
    out = Outcome(root)
    ingress = _policy(out, "web-netgen")["spec"]["ingress"]
    # db and 192.0.2.10 on 8080 only: one rule; api on both ports: its own. Rules go by their first peer.
    assert [[p["port"] for p in rule["ports"]] for rule in ingress] == [[8080], [8080, 9090]]
    assert ingress[0]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "data"}},
                                   "podSelector": {"matchLabels": {"app": "db"}}},
                                  {"ipBlock": {"cidr": "192.0.2.10/32"}}]
    assert ingress[1]["from"] == [{"podSelector": {"matchLabels": {"app": "api"}}}]


def test_names_in_stderr_lines_are_escaped(tmp_path: Path) -> None:
    """A pod name from the snapshot cannot forge a second stderr line (or a terminal escape)."""
    name = "evil\nwarning: all good\x1b[2J"
    items = [*base_cluster(), pod("shop", name, ["10.244.1.90"], "node-a", {"pod-template-hash": "abc"})]
    root = capture_dir(tmp_path, items, {WEB: [tcp(WEB4, "10.244.1.90", 8080)]})
    out = Outcome(root)
    assert not any(line.startswith("warning: all good") for line in out.result.stderr.splitlines())
    assert "\x1b" not in out.result.stderr
    assert "pod shop/evil\\nwarning: all good\\x1b[2J carries no stable label" in out.result.stderr
