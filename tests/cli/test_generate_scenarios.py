"""``kubectl netgen generate`` on small hand-written scenarios: one cluster feature per test.

Each test builds a tiny cluster snapshot (a ``v1 List``) and tiny pcaps (packed with ``struct``) into a
capture directory in ``tmp_path``, runs ``generate`` on it and compares the YAML with a golden file in
``tests/golden/scenarios/``. Each also checks the meaning of the output with a small NetworkPolicy
evaluator: every observed flow is allowed, and one plausible flow that was never observed is denied.

Refresh the golden files deliberately: ``NETGEN_UPDATE_GOLDEN=1 python3 -m pytest
tests/cli/test_generate_scenarios.py``, then read every diff. A golden file is the output a
NetworkPolicy author would want; where ``generate`` gets it wrong the test is an ``xfail`` naming the bug.

Addresses: pods 10.244.0.0/16 and fd00:10:244::/48, Services 10.96.0.0/12 and fd00:10:96::/112, nodes
10.250.0.0/24, the outside 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Sequence
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_netgen.evaluate import Evaluator, parse_policies
from kubectl_netgen.flows import flows as fold
from kubectl_netgen.identity import PeerKind, resolve_flows
from kubectl_netgen.inventory import read_snapshot
from kubectl_netgen.model import Inventory, Pod, PolicyDirection, Protocol
from kubectl_netgen.pcap import Scanner
from tests.conftest import ROOT, need, run

GOLDEN = ROOT / "tests" / "golden" / "scenarios"

# ----------------------------------------------------------------------------- the cluster snapshot

HASH = "7d9f8c6b5"
"""The pod-template-hash of every Deployment's current ReplicaSet."""

NODE_A, NODE_B, CONTROL_PLANE = "10.250.0.11", "10.250.0.12", "10.250.0.10"
WEB4, WEB6 = "10.244.1.10", "fd00:10:244:1::10"
DB0_4, DB0_6, DB1_4 = "10.244.2.20", "fd00:10:244:2::20", "10.244.1.21"
API1, API2 = "10.244.2.30", "10.244.2.31"
COREDNS, COREDNS6 = "10.244.1.53", "fd00:10:244:1::53"
PROMETHEUS = "10.244.2.60"
KUBE_DNS_IP, KUBERNETES_IP, DB_SVC, API_SVC = "10.96.0.10", "10.96.0.1", "10.96.0.30", "10.96.0.50"
KUBE_DNS6 = "fd00:10:96::10"
WEB_POD = f"web-{HASH}-x2kq9"


def _meta(namespace: str | None, name: str, labels: dict[str, str] | None = None,
          owner: tuple[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if owner is not None:
        api = "batch/v1" if owner[0] in ("Job", "CronJob") else "apps/v1"
        meta["ownerReferences"] = [{"apiVersion": api, "kind": owner[0], "name": owner[1], "uid": f"uid-{owner[1]}",
                                    "controller": True, "blockOwnerDeletion": True}]
    return meta


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(None, name, {"kubernetes.io/metadata.name": name})}


def node(name: str, ip: str, *cidrs: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": _meta(None, name, {"kubernetes.io/hostname": name}),
            "spec": {"podCIDR": cidrs[0], "podCIDRs": list(cidrs)},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}


def pod(ns: str, name: str, ips: Sequence[str], on: str, labels: dict[str, str], *,
        owner: tuple[str, str] | None = None, ports: Iterable[tuple[str, int]] = (),
        host_network: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "example.org/app:1"}
    if ports:
        container["ports"] = [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports]
    spec: dict[str, Any] = {"nodeName": on, "containers": [container]}
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(ns, name, labels, owner), "spec": spec,
            "status": {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]}}


def _template(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"labels": dict(labels)}, "spec": {"containers": [{"name": "main"}]}}


def deployment(ns: str, name: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """A Deployment and its current ReplicaSet (whose selector and pods carry the pod-template-hash)."""
    hashed = {**labels, "pod-template-hash": HASH}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(ns, name, labels),
         "spec": {"selector": {"matchLabels": dict(labels)}, "template": _template(labels)}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": _meta(ns, f"{name}-{HASH}", hashed,
                                                                          ("Deployment", name)),
         "spec": {"selector": {"matchLabels": hashed}, "template": _template(hashed)}},
    ]


def deployment_pod(ns: str, workload: str, suffix: str, ips: Sequence[str], on: str, labels: dict[str, str],
                   **kw: Any) -> dict[str, Any]:
    return pod(ns, f"{workload}-{HASH}-{suffix}", ips, on, {**labels, "pod-template-hash": HASH},
               owner=("ReplicaSet", f"{workload}-{HASH}"), **kw)


def statefulset(ns: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(ns, name, labels),
            "spec": {"serviceName": name, "selector": {"matchLabels": dict(labels)}, "template": _template(labels)}}


def statefulset_pod(ns: str, workload: str, index: int, ips: Sequence[str], on: str, labels: dict[str, str],
                    **kw: Any) -> dict[str, Any]:
    name = f"{workload}-{index}"
    volatile = {"controller-revision-hash": f"{workload}-5c9f7b8d4", "statefulset.kubernetes.io/pod-name": name,
                "apps.kubernetes.io/pod-index": str(index)}
    return pod(ns, name, ips, on, {**labels, **volatile}, owner=("StatefulSet", workload), **kw)


def service(ns: str, name: str, cluster_ips: Sequence[str] | None, ports: Iterable[dict[str, Any]],
            selector: dict[str, str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "ClusterIP", "ports": [{"protocol": "TCP", **p} for p in ports]}
    if cluster_ips is None:  # headless
        spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
    else:
        spec["clusterIP"], spec["clusterIPs"] = cluster_ips[0], list(cluster_ips)
        spec["ipFamilies"] = ["IPv6" if ":" in ip else "IPv4" for ip in cluster_ips]
    if selector is not None:
        spec["selector"] = dict(selector)
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(ns, name), "spec": spec}


def endpointslice(ns: str, svc: str, ports: Iterable[dict[str, Any]],
                  endpoints: Iterable[tuple[str, str | None]], family: str = "IPv4") -> dict[str, Any]:
    """An EndpointSlice of ``svc``: ``endpoints`` are (address, backing pod name or None)."""
    eps = []
    for address, pod_name in endpoints:
        ep: dict[str, Any] = {"addresses": [address], "conditions": {"ready": True}}
        if pod_name is not None:
            ep["targetRef"] = {"kind": "Pod", "namespace": ns, "name": pod_name}
        eps.append(ep)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": _meta(ns, f"{svc}-{family.lower()}", {"kubernetes.io/service-name": svc}),
            "addressType": family, "ports": [{"protocol": "TCP", **p} for p in ports], "endpoints": eps}


WEB = {"app": "web"}
DB = {"app": "db"}
DNS_PORTS = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
             {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]


def base_cluster(*, dual_stack: bool = False) -> list[dict[str, Any]]:
    """Two worker nodes and a control plane; cluster DNS; the API server; shop/web (a Deployment on node-a)
    and data/db (a StatefulSet, db-0 on node-b, db-1 on node-a) behind a ClusterIP Service."""
    web_ips = [WEB4, WEB6] if dual_stack else [WEB4]
    db0_ips = [DB0_4, DB0_6] if dual_stack else [DB0_4]
    return [
        *(namespace(n) for n in ("default", "kube-system", "shop", "data")),
        node("control-plane", CONTROL_PLANE, "10.244.0.0/24", "fd00:10:244::/64"),
        node("node-a", NODE_A, "10.244.1.0/24", "fd00:10:244:1::/64"),
        node("node-b", NODE_B, "10.244.2.0/24", "fd00:10:244:2::/64"),
        service("default", "kubernetes", [KUBERNETES_IP], [{"name": "https", "port": 443, "targetPort": 6443}],
                None),
        endpointslice("default", "kubernetes", [{"name": "https", "port": 6443}], [(CONTROL_PLANE, None)]),
        *deployment("kube-system", "coredns", {"k8s-app": "kube-dns"}),
        deployment_pod("kube-system", "coredns", "q7w2e", [COREDNS, COREDNS6] if dual_stack else [COREDNS], "node-a",
                       {"k8s-app": "kube-dns"}, ports=[("dns", 53), ("metrics", 9153)]),
        service("kube-system", "kube-dns", [KUBE_DNS_IP, KUBE_DNS6] if dual_stack else [KUBE_DNS_IP], DNS_PORTS,
                {"k8s-app": "kube-dns"}),
        *(endpointslice("kube-system", "kube-dns", [{"name": "dns", "port": 53, "protocol": "UDP"},
                                                    {"name": "dns-tcp", "port": 53}],
                        [(address, f"coredns-{HASH}-q7w2e")], family)
          for address, family in [(COREDNS, "IPv4"), (COREDNS6, "IPv6")][:2 if dual_stack else 1]),
        *deployment("shop", "web", WEB),
        deployment_pod("shop", "web", "x2kq9", web_ips, "node-a", WEB, ports=[("http", 8080), ("metrics", 9090)]),
        statefulset("data", "db", DB),
        statefulset_pod("data", "db", 0, db0_ips, "node-b", DB, ports=[("postgres", 5432)]),
        statefulset_pod("data", "db", 1, [DB1_4], "node-a", DB, ports=[("postgres", 5432)]),
        service("data", "db", [DB_SVC], [{"name": "postgres", "port": 5432, "targetPort": 5432}], DB),
        endpointslice("data", "db", [{"name": "postgres", "port": 5432}],
                      [(DB0_4, "db-0"), (DB1_4, "db-1")]),
    ]


# ----------------------------------------------------------------------------- packets and pcaps

_MACS = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
_SYN, _SYN_ACK = 0x02, 0x12


def _ip(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    a, b = ip_address(src), ip_address(dst)
    if a.version == 6:
        header = struct.pack("!IHBB16s16s", 0x60000000, len(payload), proto, 64, a.packed, b.packed)
        return _MACS + b"\x86\xdd" + header + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, proto, 0, a.packed, b.packed)
    return _MACS + b"\x08\x00" + header + payload


def tcp(client: str, server: str, port: int, sport: int = 40000) -> list[bytes]:
    """A TCP handshake's SYN and SYN/ACK: ``client`` opens a connection to ``server:port``."""
    def segment(a: str, b: str, pa: int, pb: int, flags: int) -> bytes:
        return _ip(a, b, 6, struct.pack("!HHIIBBHHH", pa, pb, 1, 0, 0x50, flags, 1000, 0, 0))
    return [segment(client, server, sport, port, _SYN), segment(server, client, port, sport, _SYN_ACK)]


def udp(client: str, server: str, port: int, request: bytes = b"ping", response: bytes = b"pong",
        sport: int = 41000) -> list[bytes]:
    """A UDP request from ``client`` and the reply of ``server:port``."""
    def datagram(a: str, b: str, pa: int, pb: int, data: bytes) -> bytes:
        return _ip(a, b, 17, struct.pack("!HHHH", pa, pb, 8 + len(data), 0) + data)
    return [datagram(client, server, sport, port, request), datagram(server, client, port, sport, response)]


def write_pcap(path: Path, frames: Iterable[bytes]) -> None:
    records = b"".join(struct.pack("<IIII", 1_700_000_000 + n, 0, len(f), len(f)) + f for n, f in enumerate(frames))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1) + records)


def capture_dir(tmp_path: Path, items: list[dict[str, Any]], pcaps: dict[str, list[list[bytes]]]) -> Path:
    """``cluster.json`` and ``pcaps/<ns>/<pod>.pcap`` for each ``"ns/pod": [conversation, ...]``."""
    root = tmp_path / "capture"
    root.mkdir()
    (root / "cluster.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=1))
    for key, conversations in pcaps.items():
        ns, name = key.split("/")
        write_pcap(root / "pcaps" / ns / f"{name}.pcap", [f for c in conversations for f in c])
    return root


# ----------------------------------------------------------------------------- golden files and meaning

def golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("NETGEN_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with NETGEN_UPDATE_GOLDEN=1 to write it, then review it"
    assert text == path.read_text(), f"{name} differs from the golden file (NETGEN_UPDATE_GOLDEN=1 refreshes it)"


class Outcome:
    """One ``generate`` run on a capture directory: its output, parsed, and the inventory behind it."""

    def __init__(self, root: Path, *args: str) -> None:
        self.root = root
        self.result = run("generate", root, "--no-reverse-dns", *args)
        assert self.result.exit_code == 0, self.result.stderr
        self.policies: list[dict[str, Any]] = list(yaml.safe_load_all(self.result.stdout))
        self.inventory: Inventory = read_snapshot(str(root / "cluster.json"), lambda m: None)
        self.evaluator = Evaluator(parse_policies(self.policies), self.inventory)

    def pod(self, key: str) -> Pod:
        ns, name = key.split("/")
        return self.inventory.pods_by_name[(ns, name)]

    def allows(self, own: str, direction: str, remote_ip: str, protocol: str, port: int,
               remote_pod: str | None = None) -> bool:
        """The evaluation engine's answer for ``own``'s side (``ingress``/``egress``) of a flow with ``remote_ip``.

        ``remote_pod`` (``namespace/name``) is the pod the engine must find at ``remote_ip``.
        """
        if remote_pod is not None:
            assert self.evaluator.endpoint(remote_ip).pod == self.pod(remote_pod)
        return self._allows(self.pod(own), direction, remote_ip, protocol, port)

    def _allows(self, own: Pod, direction: str, remote_ip: str, protocol: str, port: int) -> bool:
        answer = self.evaluator.allows(PolicyDirection(direction), own.ips[0], ip_address(remote_ip),
                                       Protocol(protocol), port)
        assert answer is not None, f"{own.name} is not a pod to the engine"
        return answer

    def check_observed(self) -> int:
        """Assert every flow of every capture is allowed on its side; return how many were checked."""
        checked = 0
        for pcap in sorted((self.root / "pcaps").glob("*/*.pcap")):
            own = self.inventory.pods_by_name[(pcap.parent.name, pcap.stem)]
            scanner = Scanner()
            with pcap.open("rb") as fh:
                scanner.scan(fh, str(pcap))
            for resolved in resolve_flows(self.inventory, own, fold(scanner.table)):
                for peer in resolved.peers:
                    if peer.kind.ignored or peer.kind.warning or peer.kind is PeerKind.OWN_NODE:
                        continue
                    port = peer.port if resolved.direction == "egress" else resolved.flow.dst_port
                    assert port is not None
                    assert self._allows(own, resolved.direction, str(peer.ip), resolved.flow.protocol.value, port), (
                        own.name, resolved, peer)
                    checked += 1
        assert checked, "the scenario has flows to check"
        return checked


def _web(*conversations: list[bytes]) -> dict[str, list[list[bytes]]]:
    return {f"shop/{WEB_POD}": list(conversations)}


# ----------------------------------------------------------------------------- scenarios

def test_cross_namespace_peer(tmp_path: Path) -> None:
    """Egress to a StatefulSet in another namespace (through its Service), ingress from another namespace."""
    items = [*base_cluster(), namespace("monitoring"),
             *deployment("monitoring", "prometheus", {"app.kubernetes.io/name": "prometheus"}),
             deployment_pod("monitoring", "prometheus", "m4n5b", [PROMETHEUS], "node-b",
                            {"app.kubernetes.io/name": "prometheus"})]
    root = capture_dir(tmp_path, items, _web(tcp(WEB4, DB_SVC, 5432), tcp(PROMETHEUS, WEB4, 9090)))
    out = Outcome(root)
    golden("cross-namespace", out.result.stdout)
    out.check_observed()
    prometheus = f"monitoring/prometheus-{HASH}-m4n5b"
    assert not out.allows(f"shop/{WEB_POD}", "ingress", PROMETHEUS, "TCP", 8080, prometheus)


@pytest.mark.parametrize("slices", [True, False], ids=["endpointslices", "selector"])
def test_service_with_named_target_port(tmp_path: Path, slices: bool) -> None:
    """ClusterIP:80 with ``targetPort: http``; the backends declare ``http`` = 8080: the rule is on 8080."""
    api = {"app": "api", "tier": "backend"}
    items = [*base_cluster(), *deployment("shop", "api", api),
             deployment_pod("shop", "api", "a1b2c", [API1], "node-b", api, ports=[("http", 8080), ("metrics", 9100)]),
             deployment_pod("shop", "api", "d3e4f", [API2], "node-b", api, ports=[("http", 8080), ("metrics", 9100)]),
             service("shop", "api", [API_SVC], [{"name": "web", "port": 80, "targetPort": "http"}], api)]
    if slices:
        items.append(endpointslice("shop", "api", [{"name": "web", "port": 8080}],
                                   [(API1, f"api-{HASH}-a1b2c"), (API2, f"api-{HASH}-d3e4f")]))
    root = capture_dir(tmp_path, items, _web(tcp(WEB4, API_SVC, 80)))
    out = Outcome(root)
    golden("service-named-target-port", out.result.stdout)
    assert out.check_observed() == 2  # both backends
    # The Service port never reaches a policy: after kube-proxy's DNAT the packet goes to 8080.
    assert not out.allows(f"shop/{WEB_POD}", "egress", API1, "TCP", 80, f"shop/api-{HASH}-a1b2c")


def test_headless_service(tmp_path: Path) -> None:
    """A headless Service hands out pod IPs: the pods are dialed directly and become a podSelector."""
    cache = {"app": "cache"}
    items = [*base_cluster(), statefulset("shop", "cache", cache),
             statefulset_pod("shop", "cache", 0, ["10.244.1.40"], "node-a", cache, ports=[("redis", 6379)]),
             statefulset_pod("shop", "cache", 1, ["10.244.2.41"], "node-b", cache, ports=[("redis", 6379)]),
             service("shop", "cache", None, [{"name": "redis", "port": 6379, "targetPort": 6379}], cache),
             endpointslice("shop", "cache", [{"name": "redis", "port": 6379}],
                           [("10.244.1.40", "cache-0"), ("10.244.2.41", "cache-1")])]
    root = capture_dir(tmp_path, items, _web(tcp(WEB4, "10.244.1.40", 6379), tcp(WEB4, "10.244.2.41", 6379, 40001)))
    out = Outcome(root)
    golden("headless-service", out.result.stdout)
    out.check_observed()
    assert not out.allows(f"shop/{WEB_POD}", "egress", "10.244.1.40", "TCP", 16379, "shop/cache-0")


def test_host_network_peer(tmp_path: Path) -> None:
    """A hostNetwork pod on node-b calls web: the source is node-b's address, an ipBlock noted ``node node-b``."""
    agent = {"app": "node-agent"}
    items = [*base_cluster(),
             {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta("kube-system", "node-agent", agent),
              "spec": {"selector": {"matchLabels": agent}, "template": _template(agent)}},
             pod("kube-system", "node-agent-b7x4p", [NODE_B], "node-b", {**agent, "controller-revision-hash": "6f7"},
                 owner=("DaemonSet", "node-agent"), ports=[("metrics", 9100)], host_network=True)]
    root = capture_dir(tmp_path, items, _web(tcp(NODE_B, WEB4, 8080)))
    out = Outcome(root)
    golden("host-network-peer", out.result.stdout)
    assert "cidr: 10.250.0.12/32  # node node-b\n" in out.result.stdout
    out.check_observed()
    assert not out.allows(f"shop/{WEB_POD}", "ingress", CONTROL_PLANE, "TCP", 8080)


def test_node_probes(tmp_path: Path) -> None:
    """Probes from the pod's own node need no rule (the spec allows them); another node's become an ipBlock."""
    root = capture_dir(tmp_path, base_cluster(), _web(tcp(NODE_A, WEB4, 8081), tcp(NODE_B, WEB4, 8081, 40001)))
    out = Outcome(root)
    golden("node-probes", out.result.stdout)
    assert NODE_A not in out.result.stdout
    out.check_observed()
    assert not out.allows(f"shop/{WEB_POD}", "ingress", CONTROL_PLANE, "TCP", 8081)


def test_kube_apiserver(tmp_path: Path) -> None:
    """default/kubernetes:443 has no selector: its endpoint address on 6443 is the rule, noted as such."""
    root = capture_dir(tmp_path, base_cluster(), _web(tcp(WEB4, KUBERNETES_IP, 443)))
    out = Outcome(root)
    golden("kube-apiserver", out.result.stdout)
    assert "cidr: 10.250.0.10/32  # endpoint of Service default/kubernetes\n" in out.result.stdout
    out.check_observed()
    assert not out.allows(f"shop/{WEB_POD}", "egress", CONTROL_PLANE, "TCP", 10250)  # the kubelet
    assert not out.allows(f"shop/{WEB_POD}", "egress", KUBERNETES_IP, "TCP", 443)  # the VIP is never seen


def _dns_exchange(client: str, qname: str, chain: Sequence[tuple[str, str, str]], rdtype: str = "A",
                  server: str = KUBE_DNS_IP) -> list[bytes]:
    """A query for ``qname`` to the kube-dns Service and its answer: (owner, type, data) records."""
    import dns.message
    import dns.rrset

    query = dns.message.make_query(qname, rdtype, id=4242)
    response = dns.message.make_response(query)
    for owner, rdtype, data in chain:
        response.answer.append(dns.rrset.from_text(owner, 30, "IN", rdtype, data))
    return udp(client, server, 53, query.to_wire(), response.to_wire(), sport=41053)


def test_ipv6_only_and_dual_stack(tmp_path: Path) -> None:
    """Dual-stack web and an IPv6-only pod: IPv6 pod peers are selectors, external IPv6 addresses /128 blocks."""
    metrics = {"app": "metrics"}
    metrics_ip = "fd00:10:244:2::50"
    items = [*base_cluster(dual_stack=True), *deployment("shop", "metrics", metrics),
             deployment_pod("shop", "metrics", "v6v6v", [metrics_ip], "node-b", metrics),
             service("shop", "web", ["10.96.0.80", "fd00:10:96::80"], [{"name": "http", "port": 80,
                                                                      "targetPort": 8080}], WEB),
             endpointslice("shop", "web", [{"name": "http", "port": 8080}], [(WEB4, WEB_POD)]),
             endpointslice("shop", "web", [{"name": "http", "port": 8080}], [(WEB6, WEB_POD)], "IPv6")]
    root = capture_dir(tmp_path, items, {
        f"shop/{WEB_POD}": [_dns_exchange(WEB6, "api.example.com.", [("api.example.com.", "CNAME", "lb.example.net."),
                                                                     ("lb.example.net.", "AAAA", "2001:db8::10")],
                                          "AAAA", KUBE_DNS6),
                            tcp(WEB6, DB0_6, 5432), tcp(WEB4, DB0_4, 5432, 40001), tcp(WEB6, "2001:db8::10", 443),
                            tcp(metrics_ip, WEB6, 9090), tcp(metrics_ip, WEB6, 8080, 40001)],
        f"shop/metrics-{HASH}-v6v6v": [tcp(metrics_ip, WEB6, 9090), tcp(metrics_ip, "fd00:10:96::80", 80, 40001),
                                       tcp(metrics_ip, "2001:db8:1::20", 443, 40002)],
    })
    out = Outcome(root)
    golden("ipv6-dual-stack", out.result.stdout)
    assert "cidr: 2001:db8::10/128  # api.example.com, lb.example.net\n" in out.result.stdout
    assert "cidr: 2001:db8:1::20/128\n" in out.result.stdout
    assert "fd00:10:96::" not in out.result.stdout  # Service addresses are never ipBlocks
    assert out.check_observed() == 9  # web: 6 flows; metrics: 3 (the dual-stack Service gives the IPv6 backend)
    assert not out.allows(f"shop/metrics-{HASH}-v6v6v", "egress", "2001:db8::10", "TCP", 443)  # only web uses it


def test_cname_chain(tmp_path: Path) -> None:
    """The capture's DNS answer reaches the address through two CNAMEs: every name is listed."""
    chain = [("api.example.com.", "CNAME", "api.edge.example.net."),
             ("api.edge.example.net.", "CNAME", "lb-7.cdn.example.org."),
             ("lb-7.cdn.example.org.", "A", "203.0.113.10")]
    root = capture_dir(tmp_path, base_cluster(),
                       _web(_dns_exchange(WEB4, "api.example.com.", chain), tcp(WEB4, "203.0.113.10", 443)))
    out = Outcome(root)
    golden("cname-chain", out.result.stdout)
    names = ["api.edge.example.net", "api.example.com", "lb-7.cdn.example.org"]
    [policy] = out.policies
    assert json.loads(policy["metadata"]["annotations"]["netgen.io/external-peers"]) == {"203.0.113.10/32": names}
    assert f"cidr: 203.0.113.10/32  # {', '.join(names)}\n" in out.result.stdout
    out.check_observed()
    assert not out.allows(f"shop/{WEB_POD}", "egress", "203.0.113.11", "TCP", 443)


def test_unknown_pod_ip(tmp_path: Path) -> None:
    """Addresses in the pod network that no pod has: a warning naming each, and never an ipBlock."""
    root = capture_dir(tmp_path, base_cluster(),
                       _web(tcp(WEB4, "10.244.2.99", 8080), tcp("10.244.1.77", WEB4, 8080), tcp(WEB4, DB_SVC, 5432)))
    out = Outcome(root)
    golden("unknown-pod-ip", out.result.stdout)
    warnings = [line for line in out.result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, out.result.stderr
    assert "10.244.2.99" in warnings[0] + warnings[1] and "10.244.1.77" in warnings[0] + warnings[1]
    assert "10.244.2.99" not in out.result.stdout and "10.244.1.77" not in out.result.stdout
    out.check_observed()
    assert not out.allows(f"shop/{WEB_POD}", "egress", "10.244.2.99", "TCP", 8080)
    assert not out.allows(f"shop/{WEB_POD}", "ingress", "10.244.1.77", "TCP", 8080)


@pytest.mark.parametrize("mode", ["ingress", "egress"])
def test_mode(tmp_path: Path, mode: str) -> None:
    """``--mode`` restricts one direction: the policy has only that policyType and only its rules."""
    api = {"app": "api"}
    items = [*base_cluster(), *deployment("shop", "api", api),
             deployment_pod("shop", "api", "a1b2c", [API1], "node-b", api)]
    root = capture_dir(tmp_path, items, _web(tcp(API1, WEB4, 8080), tcp(WEB4, DB0_4, 5432),
                                             tcp(WEB4, "192.0.2.50", 443, 40001)))
    out = Outcome(root, "--mode", mode)
    golden(f"mode-{mode}", out.result.stdout)
    [policy] = out.policies
    assert policy["spec"]["policyTypes"] == [mode.capitalize()]
    assert set(policy["spec"]) == {"podSelector", "policyTypes", mode}
    out.check_observed()
    web = f"shop/{WEB_POD}"
    if mode == "ingress":
        assert not out.allows(web, "ingress", API1, "TCP", 9090, f"shop/api-{HASH}-a1b2c")
        assert out.allows(web, "egress", "192.0.2.51", "TCP", 443)  # egress left open
    else:
        assert not out.allows(web, "egress", "192.0.2.51", "TCP", 443)
        assert out.allows(web, "ingress", API1, "TCP", 9090, f"shop/api-{HASH}-a1b2c")  # ingress left open


def test_port_ranges(tmp_path: Path) -> None:
    """``--port-ranges``: consecutive ports of one peer become port/endPort; a gap starts a new entry."""
    external = "192.0.2.10"
    ranged = [tcp(WEB4, external, port, 40000 + port) for port in (8000, 8001, 8002, 8004)]
    root = capture_dir(tmp_path, base_cluster(), _web(*ranged, tcp(WEB4, DB0_4, 5432)))
    out = Outcome(root, "--port-ranges")
    golden("port-ranges", out.result.stdout)
    out.check_observed()
    assert not out.allows(f"shop/{WEB_POD}", "egress", external, "TCP", 8003)
    assert not out.allows(f"shop/{WEB_POD}", "egress", external, "TCP", 7999)


def test_bare_pod(tmp_path: Path) -> None:
    """A pod without controller: its own policy, selecting its labels minus volatile ones (a copied hash)."""
    debug = {"app": "debug", "pod-template-hash": HASH}
    items = [*base_cluster(), pod("shop", "debug", ["10.244.1.90"], "node-a", debug)]
    root = capture_dir(tmp_path, items, {"shop/debug": [tcp("10.244.1.90", WEB4, 8080)]})
    out = Outcome(root)
    golden("bare-pod", out.result.stdout)
    [policy] = out.policies
    assert policy["metadata"]["name"] == "debug-netgen"
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app": "debug"}}
    out.check_observed()
    assert not out.allows("shop/debug", "egress", DB0_4, "TCP", 5432, "data/db-0")


def test_statefulset_workload(tmp_path: Path) -> None:
    """A captured StatefulSet pod: the policy is the StatefulSet's, selecting with its selector (no pod-name)."""
    conversations = [tcp(WEB4, DB0_4, 5432), tcp(DB1_4, DB0_4, 5432, 40001)]
    root = capture_dir(tmp_path, base_cluster(), {"data/db-0": conversations})
    out = Outcome(root)
    golden("statefulset", out.result.stdout)
    [policy] = out.policies
    assert policy["metadata"]["name"] == "db-netgen"
    assert policy["spec"]["podSelector"] == {"matchLabels": DB}
    out.check_observed()
    assert not out.allows("data/db-0", "ingress", COREDNS, "TCP", 5432, f"kube-system/coredns-{HASH}-q7w2e")


def test_cronjob_workload(tmp_path: Path) -> None:
    """A pod of a CronJob's Job: the policy is the CronJob's, selecting the template labels (not the run's uid)."""
    report = {"app": "report"}
    run_labels = {**report, "batch.kubernetes.io/controller-uid": "uid-report-28901234", "controller-uid":
                  "uid-report-28901234", "batch.kubernetes.io/job-name": "report-28901234",
                  "job-name": "report-28901234"}
    items = [
        *base_cluster(),
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta("shop", "report", report),
         "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": _template(report)}}}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta("shop", "report-28901234", run_labels,
                                                                    ("CronJob", "report")),
         "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-report-28901234"}},
                  "template": _template(run_labels)}},
        pod("shop", "report-28901234-xk2p9", ["10.244.2.70"], "node-b", run_labels, owner=("Job", "report-28901234")),
    ]
    root = capture_dir(tmp_path, items, {"shop/report-28901234-xk2p9": [tcp("10.244.2.70", DB_SVC, 5432),
                                                                         tcp("10.244.2.70", "198.51.100.20", 443)]})
    out = Outcome(root)
    golden("cronjob", out.result.stdout)
    [policy] = out.policies
    assert policy["metadata"]["name"] == "report-netgen"
    assert policy["spec"]["podSelector"] == {"matchLabels": report}
    out.check_observed()
    assert not out.allows("shop/report-28901234-xk2p9", "egress", "198.51.100.21", "TCP", 443)


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.yaml")))
def test_golden_scenarios_are_valid_against_the_kubernetes_schema(name: str) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    need(kubernetes_validate is not None, "needs kubernetes-validate (pip install -e '.[test]')")
    assert kubernetes_validate is not None
    for document in yaml.safe_load_all((GOLDEN / f"{name}.yaml").read_text()):
        kubernetes_validate.validate(document, "1.33", strict=True)
