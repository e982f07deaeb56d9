"""Identity resolution: remote IP and port -> pod/workload, Service backend, node or outside (hand-made inventories)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from kubectl_netgen.identity import Peer, PeerKind, ResolvedFlow, Resolver, direction_of, resolve, resolve_flows
from kubectl_netgen.model import (
    ContainerPort,
    Direction,
    EndpointPort,
    Endpoints,
    Flow,
    Inventory,
    IPAddress,
    Node,
    Pod,
    Protocol,
    Service,
    ServicePort,
    WorkloadKind,
    WorkloadRef,
    labels_of,
)

TCP, UDP = Protocol.TCP, Protocol.UDP


def ip(text: str) -> IPAddress:
    return ip_address(text)


def pod(namespace: str, name: str, ips: tuple[str, ...], node: str, kind: WorkloadKind, workload: str,
        labels: dict[str, str] | None = None, ports: tuple[ContainerPort, ...] = (),
        host_network: bool = False, phase: str = "Running") -> Pod:
    return Pod(namespace=namespace, name=name, labels=labels_of(labels), ips=tuple(ip(a) for a in ips), node=node,
               host_network=host_network, workload=WorkloadRef(kind, namespace, workload), ports=ports, phase=phase)


def service(namespace: str, name: str, cluster_ips: tuple[str, ...], ports: tuple[ServicePort, ...],
            selector: dict[str, str] | None, endpoints: tuple[Endpoints, ...] = (), type_: str = "ClusterIP",
            external_ips: tuple[str, ...] = ()) -> Service:
    return Service(namespace=namespace, name=name, type=type_, cluster_ips=tuple(ip(a) for a in cluster_ips),
                   external_ips=tuple(ip(a) for a in external_ips), ports=ports,
                   selector=None if selector is None else labels_of(selector), endpoints=endpoints)


def endpoints(address: str, *ports: EndpointPort, pod: tuple[str, str] | None = None) -> Endpoints:
    return Endpoints(addresses=(ip(address),), ports=ports, pod=pod)


HTTP = ContainerPort(8080, TCP, "http")
FRONTEND = pod("shop", "frontend-7d9f-abcde", ("10.244.1.5", "fd00:10:244:1::5"), "node-a",
               WorkloadKind.DEPLOYMENT, "frontend", {"app": "frontend"}, (HTTP,))
API_1 = pod("shop", "api-5c8-x1", ("10.244.2.10",), "node-b", WorkloadKind.DEPLOYMENT, "api", {"app": "api"},
            (ContainerPort(8080, TCP, "http"),))
API_2 = pod("shop", "api-5c8-x2", ("10.244.1.11",), "node-a", WorkloadKind.DEPLOYMENT, "api", {"app": "api"},
            (ContainerPort(8081, TCP, "http"),))
DB = pod("shop", "db-0", ("10.244.2.20",), "node-b", WorkloadKind.STATEFULSET, "db", {"app": "db"},
         (ContainerPort(6432, TCP, "postgres"), ContainerPort(9187, TCP, "metrics")))
FLUENTD = pod("kube-system", "fluentd-q7x2p", ("10.244.2.30",), "node-b", WorkloadKind.DAEMONSET, "fluentd")
REPORT = pod("shop", "report-28001-qz8v", ("10.244.2.40",), "node-b", WorkloadKind.CRONJOB, "report")
DEBUG = pod("shop", "debug", ("10.244.1.50", "fd00:10:244:1::50"), "node-a", WorkloadKind.POD, "debug",
            {"run": "debug"})
EXPORTER = pod("monitoring", "node-exporter-9k2lw", ("10.250.0.2",), "node-b", WorkloadKind.DAEMONSET,
               "node-exporter", {"app": "node-exporter"}, (ContainerPort(9100, TCP, "metrics"),), host_network=True)
COREDNS = pod("kube-system", "coredns-6f6b-1", ("10.244.1.53",), "node-a", WorkloadKind.DEPLOYMENT, "coredns",
              {"k8s-app": "kube-dns"}, (ContainerPort(5353, UDP, "dns"), ContainerPort(5354, TCP, "dns-tcp")))
DONE = pod("shop", "api-old", ("10.244.2.77",), "node-b", WorkloadKind.DEPLOYMENT, "api", {"app": "api"},
           (ContainerPort(8080, TCP, "http"),), phase="Succeeded")

API_PORTS = (ServicePort(80, TCP, "http", "http"),)
SERVICES = (
    # No EndpointSlices: the selector fallback resolves the named targetPort per pod.
    service("shop", "api", ("10.96.0.20",), API_PORTS, {"app": "api"}),
    # The same Service with its EndpointSlices: one slice per distinct backend port.
    service("shop", "api-eps", ("10.96.0.21",), API_PORTS, {"app": "api"}, (
        endpoints("10.244.2.10", EndpointPort(8080, TCP, "http"), pod=("shop", "api-5c8-x1")),
        endpoints("10.244.1.11", EndpointPort(8081, TCP, "http"), pod=("shop", "api-5c8-x2")),
    )),
    service("shop", "db", ("10.96.0.30",),
            (ServicePort(5432, TCP, "postgres", "pg"), ServicePort(9000, TCP, 9187, "metrics")), {"app": "db"},
            (endpoints("10.244.2.20", EndpointPort(9187, TCP, "metrics"), EndpointPort(6432, TCP, "pg"),
                       pod=("shop", "db-0")),)),
    service("shop", "legacy", ("10.96.0.40",), (ServicePort(80, TCP, 8080),), {"app": "api"}),
    service("shop", "db-headless", (), (ServicePort(5432, TCP, "postgres"),), {"app": "db"}),
    service("shop", "web", ("10.96.0.50",), (ServicePort(443, TCP, "http", "https"),), {"app": "api"},
            type_="LoadBalancer", external_ips=("203.0.113.10",)),
    service("shop", "debug", ("10.96.0.60", "fd00:96::60"), (ServicePort(22, TCP),), {"run": "debug"}),
    service("shop", "empty", ("10.96.0.70",), (ServicePort(80, TCP),), {"app": "nothing"}),
    service("default", "kubernetes", ("10.96.0.1",), (ServicePort(443, TCP, 6443, "https"),), None,
            (endpoints("10.250.0.11", EndpointPort(6443, TCP, "https")),)),
    service("kube-system", "kube-dns", ("10.96.0.10",),
            (ServicePort(53, UDP, "dns", "dns"), ServicePort(53, TCP, "dns-tcp", "dns-tcp")), {"k8s-app": "kube-dns"},
            (endpoints("10.244.1.53", EndpointPort(5354, TCP, "dns-tcp"), EndpointPort(5353, UDP, "dns"),
                       pod=("kube-system", "coredns-6f6b-1")),)),
)


def inventory(*, services: tuple[Service, ...] = SERVICES, pods: tuple[Pod, ...] = ()) -> Inventory:
    return Inventory.create(
        nodes=(Node("node-a", (ip("10.250.0.1"),), ("10.244.1.0/24", "fd00:10:244:1::/64")),
               Node("node-b", (ip("10.250.0.2"),), ("10.244.2.0/24",))),
        pods=(FRONTEND, API_1, API_2, DB, FLUENTD, REPORT, DEBUG, EXPORTER, COREDNS, DONE, *pods),
        services=services,
    )


CLUSTER = inventory()


def who(address: str, port: int | None = None, protocol: Protocol = TCP, *, own: Pod = FRONTEND,
        names: dict[IPAddress, list[str]] | None = None) -> tuple[Peer, ...]:
    return resolve(CLUSTER, own, ip(address), port, protocol, names)


def backend(p: Pod, address: str, port: int, svc: str, service_port: int, protocol: Protocol = TCP) -> Peer:
    return Peer(PeerKind.POD, ip(address), port, protocol, pod=(p.namespace, p.name), workload=p.workload,
                service=(p.namespace, svc), service_port=service_port)


# ----------------------------------------------------------------------------- pods and workloads

@pytest.mark.parametrize(("address", "p", "workload"), [
    ("10.244.2.10", API_1, WorkloadRef(WorkloadKind.DEPLOYMENT, "shop", "api")),
    ("10.244.2.20", DB, WorkloadRef(WorkloadKind.STATEFULSET, "shop", "db")),
    ("10.244.2.30", FLUENTD, WorkloadRef(WorkloadKind.DAEMONSET, "kube-system", "fluentd")),
    ("10.244.2.40", REPORT, WorkloadRef(WorkloadKind.CRONJOB, "shop", "report")),
    ("10.244.1.50", DEBUG, WorkloadRef(WorkloadKind.POD, "shop", "debug")),
])
def test_pod_ip_is_the_pod_and_its_workload(address: str, p: Pod, workload: WorkloadRef) -> None:
    assert who(address, 5000) == (Peer(PeerKind.POD, ip(address), 5000, TCP, pod=(p.namespace, p.name),
                                       workload=workload),)


def test_dual_stack_pod_is_the_same_pod_on_both_ips() -> None:
    v4, v6 = who("10.244.1.50", 22), who("fd00:10:244:1::50", 22)
    assert v4[0].pod == v6[0].pod == ("shop", "debug")
    assert (v4[0].kind, v6[0].kind) == (PeerKind.POD, PeerKind.POD)
    assert v6[0].ip == ip("fd00:10:244:1::50")


def test_headless_service_pod_ip_resolves_as_the_pod() -> None:
    assert who("10.244.2.20", 6432) == (Peer(PeerKind.POD, ip("10.244.2.20"), 6432, TCP, pod=("shop", "db-0"),
                                              workload=DB.workload),)


# ----------------------------------------------------------------------------- ignored: loopback and self

@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", PeerKind.LOOPBACK), ("127.3.2.1", PeerKind.LOOPBACK), ("::1", PeerKind.LOOPBACK),
    ("10.244.1.5", PeerKind.SELF), ("fd00:10:244:1::5", PeerKind.SELF),
])
def test_loopback_and_own_ips_are_returned_as_ignored_peers(address: str, kind: PeerKind) -> None:
    (peer,) = who(address, 8080)
    assert (peer.kind, peer.ip, peer.port, peer.cidr) == (kind, ip(address), 8080, None)
    assert peer.kind.ignored and not peer.kind.warning
    if kind is PeerKind.SELF:
        assert peer.pod == ("shop", "frontend-7d9f-abcde")


# ----------------------------------------------------------------------------- Services

def test_named_target_port_differs_per_backend_with_the_selector_fallback() -> None:
    assert who("10.96.0.20", 80) == (
        backend(API_2, "10.244.1.11", 8081, "api", 80),
        backend(API_1, "10.244.2.10", 8080, "api", 80),
    )


def test_named_target_port_differs_per_backend_with_endpointslices() -> None:
    assert who("10.96.0.21", 80) == (
        backend(API_2, "10.244.1.11", 8081, "api-eps", 80),
        backend(API_1, "10.244.2.10", 8080, "api-eps", 80),
    )


def test_numeric_target_port_is_the_same_for_every_backend() -> None:
    assert who("10.96.0.40", 80) == (
        backend(API_2, "10.244.1.11", 8080, "legacy", 80),
        backend(API_1, "10.244.2.10", 8080, "legacy", 80),
    )


@pytest.mark.parametrize(("port", "target"), [(5432, 6432), (9000, 9187)])
def test_multi_port_service_picks_the_endpoint_port_by_name(port: int, target: int) -> None:
    assert who("10.96.0.30", port) == (backend(DB, "10.244.2.20", target, "db", port),)


@pytest.mark.parametrize(("protocol", "target"), [(UDP, 5353), (TCP, 5354)])
def test_udp_and_tcp_ports_of_the_same_number_are_different_service_ports(protocol: Protocol, target: int) -> None:
    assert who("10.96.0.10", 53, protocol) == (Peer(
        PeerKind.POD, ip("10.244.1.53"), target, protocol, pod=("kube-system", "coredns-6f6b-1"),
        workload=COREDNS.workload, service=("kube-system", "kube-dns"), service_port=53),)


def test_load_balancer_ip_resolves_like_the_cluster_ip() -> None:
    assert who("203.0.113.10", 443) == (
        backend(API_2, "10.244.1.11", 8081, "web", 443),
        backend(API_1, "10.244.2.10", 8080, "web", 443),
    )
    assert who("10.96.0.50", 443) == who("203.0.113.10", 443)


def test_selectorless_kubernetes_service_is_its_endpoint_ips_on_the_endpoint_port() -> None:
    assert who("10.96.0.1", 443) == (Peer(
        PeerKind.SERVICE_ENDPOINT_IP, ip("10.250.0.11"), 6443, TCP, service=("default", "kubernetes"),
        service_port=443, cidr="10.250.0.11/32"),)


def test_selectorless_service_endpoint_on_a_node_names_the_node() -> None:
    kubernetes = service("default", "kubernetes", ("10.96.0.1",), (ServicePort(443, TCP, 6443, "https"),), None,
                         (endpoints("10.250.0.2", EndpointPort(6443, TCP, "https")),))
    peers = resolve(inventory(services=(kubernetes,)), FRONTEND, ip("10.96.0.1"), 443, TCP)
    assert peers == (Peer(PeerKind.SERVICE_ENDPOINT_IP, ip("10.250.0.2"), 6443, TCP, service=("default", "kubernetes"),
                          service_port=443, node="node-b", cidr="10.250.0.2/32"),)


def test_port_the_service_does_not_expose_is_a_warning() -> None:
    (peer,) = who("10.96.0.20", 81)
    assert peer == Peer(PeerKind.UNKNOWN_SERVICE_PORT, ip("10.96.0.20"), 81, TCP, service=("shop", "api"),
                        service_port=81)
    assert peer.kind.warning
    # The right number over the wrong protocol is not the Service port either.
    assert who("10.96.0.20", 80, UDP)[0].kind is PeerKind.UNKNOWN_SERVICE_PORT


def test_service_without_backends_is_a_warning() -> None:
    assert who("10.96.0.70", 80) == (Peer(PeerKind.NO_BACKENDS, ip("10.96.0.70"), 80, TCP, service=("shop", "empty"),
                                          service_port=80),)


def test_dual_stack_service_is_served_by_backends_of_the_dialed_family() -> None:
    assert who("fd00:96::60", 22) == (backend(DEBUG, "fd00:10:244:1::50", 22, "debug", 22),)
    assert who("10.96.0.60", 22) == (backend(DEBUG, "10.244.1.50", 22, "debug", 22),)


def test_endpoint_of_a_pod_that_is_gone_is_an_unknown_pod() -> None:
    stale = service("shop", "api", ("10.96.0.20",), API_PORTS, {"app": "api"},
                    (endpoints("10.244.2.99", EndpointPort(8080, TCP, "http"), pod=("shop", "api-gone")),))
    assert resolve(inventory(services=(stale,)), FRONTEND, ip("10.96.0.20"), 80, TCP) == (
        Peer(PeerKind.UNKNOWN_POD, ip("10.244.2.99"), 8080, TCP, service=("shop", "api"), service_port=80),)


def test_host_network_backend_is_its_node_ip_as_an_ip_block() -> None:
    metrics = service("monitoring", "node-exporter", ("10.96.0.80",), (ServicePort(9100, TCP, "metrics"),),
                      {"app": "node-exporter"})
    assert resolve(inventory(services=(metrics,)), FRONTEND, ip("10.96.0.80"), 9100, TCP) == (Peer(
        PeerKind.SERVICE_ENDPOINT_IP, ip("10.250.0.2"), 9100, TCP, pod=("monitoring", "node-exporter-9k2lw"),
        workload=EXPORTER.workload, service=("monitoring", "node-exporter"), service_port=9100, node="node-b",
        cidr="10.250.0.2/32"),)


def test_own_pod_behind_a_service_is_self() -> None:
    (peer,) = who("10.96.0.20", 80, own=API_1)[1:]
    assert (peer.kind, peer.ip, peer.port, peer.service) == (PeerKind.SELF, ip("10.244.2.10"), 8080, ("shop", "api"))


def test_icmp_to_a_service_ip_is_every_backend_without_a_port() -> None:
    peers = who("10.96.0.20", None, Protocol.ICMP)
    assert [(p.ip, p.port, p.service_port) for p in peers] == [(ip("10.244.1.11"), None, None),
                                                              (ip("10.244.2.10"), None, None)]


# ----------------------------------------------------------------------------- nodes

def test_own_node_needs_no_rule() -> None:
    assert who("10.250.0.1", 10250) == (Peer(PeerKind.OWN_NODE, ip("10.250.0.1"), 10250, TCP, node="node-a"),)


def test_other_node_is_an_ip_block_naming_the_node() -> None:
    assert who("10.250.0.2", 10250) == (Peer(PeerKind.NODE, ip("10.250.0.2"), 10250, TCP, node="node-b",
                                             cidr="10.250.0.2/32"),)


def test_host_network_pod_ip_is_its_node_other_node_vs_own_node() -> None:
    exporter = ("monitoring", "node-exporter-9k2lw")
    assert who("10.250.0.2", 9100) == (Peer(PeerKind.NODE, ip("10.250.0.2"), 9100, TCP, pod=exporter,
                                            workload=EXPORTER.workload, node="node-b", cidr="10.250.0.2/32"),)
    assert who("10.250.0.2", 9100, own=API_1) == (Peer(PeerKind.OWN_NODE, ip("10.250.0.2"), 9100, TCP, pod=exporter,
                                                       workload=EXPORTER.workload, node="node-b"),)


# ----------------------------------------------------------------------------- unknown and external

@pytest.mark.parametrize("address", ["10.244.2.99", "fd00:10:244:1::99"])
def test_pod_network_ip_without_a_pod_is_an_unknown_pod_never_an_ip_block(address: str) -> None:
    (peer,) = who(address, 8080)
    assert peer == Peer(PeerKind.UNKNOWN_POD, ip(address), 8080, TCP)
    assert peer.kind.warning


def test_finished_pod_still_owning_its_ip_is_that_pod() -> None:
    # pods_by_ip keeps a finished pod when no Running pod took its IP over.
    (peer,) = who("10.244.2.77", 8080)
    assert (peer.kind, peer.pod) == (PeerKind.POD, ("shop", "api-old"))


def test_external_ipv4_and_ipv6_are_host_ip_blocks_named_by_dns() -> None:
    names: dict[IPAddress, list[str]] = {
        ip("93.184.215.14"): ["www.example.com", "example.com", "www.example.com"],
        ip("2606:2800:21f:cb07:6820:80da:af6b:8b2c"): ["example.com"],
    }
    assert who("93.184.215.14", 443, names=names) == (Peer(
        PeerKind.EXTERNAL, ip("93.184.215.14"), 443, TCP, names=("example.com", "www.example.com"),
        cidr="93.184.215.14/32"),)
    assert who("2606:2800:21f:cb07:6820:80da:af6b:8b2c", 443, names=names) == (Peer(
        PeerKind.EXTERNAL, ip("2606:2800:21f:cb07:6820:80da:af6b:8b2c"), 443, TCP, names=("example.com",),
        cidr="2606:2800:21f:cb07:6820:80da:af6b:8b2c/128"),)
    assert who("198.51.100.1", 53, UDP) == (Peer(PeerKind.EXTERNAL, ip("198.51.100.1"), 53, UDP,
                                                 cidr="198.51.100.1/32"),)


# ----------------------------------------------------------------------------- flows

def flow(src: str, dst: str, port: int | None, protocol: Protocol = TCP) -> Flow:
    return Flow(protocol=protocol, src=ip(src), dst=ip(dst), dst_port=port, connections=1, packets=4, bytes=240,
                first_seen=1, last_seen=2, direction=Direction.HANDSHAKE)


def test_resolve_flows_direction_and_which_side_is_resolved() -> None:
    inbound = flow("10.244.2.10", "10.244.1.5", 8080)
    outbound = flow("10.244.1.5", "10.96.0.20", 80)
    dns = flow("10.244.1.5", "10.96.0.10", 53, UDP)
    local = flow("127.0.0.1", "127.0.0.1", 9090)
    unrelated = flow("10.244.2.10", "10.244.2.20", 6432)
    result = resolve_flows(CLUSTER, FRONTEND, [inbound, unrelated, local, outbound, dns], {})
    assert result == [
        # Egress first, then by protocol, server address, port.
        ResolvedFlow("egress", outbound, (backend(API_2, "10.244.1.11", 8081, "api", 80),
                                          backend(API_1, "10.244.2.10", 8080, "api", 80))),
        ResolvedFlow("egress", local, (Peer(PeerKind.LOOPBACK, ip("127.0.0.1"), 9090, TCP),)),
        ResolvedFlow("egress", dns, (Peer(PeerKind.POD, ip("10.244.1.53"), 5353, UDP,
                                          pod=("kube-system", "coredns-6f6b-1"), workload=COREDNS.workload,
                                          service=("kube-system", "kube-dns"), service_port=53),)),
        # Inbound: the remote is the client, its (ephemeral) port is irrelevant.
        ResolvedFlow("ingress", inbound, (Peer(PeerKind.POD, ip("10.244.2.10"), None, TCP,
                                               pod=("shop", "api-5c8-x1"), workload=API_1.workload),)),
    ]
    assert [r.remote for r in result] == [ip("10.96.0.20"), ip("127.0.0.1"), ip("10.96.0.10"), ip("10.244.2.10")]
    assert direction_of(FRONTEND, unrelated) is None


def test_inbound_from_a_service_ip_is_not_translated() -> None:
    # A client address is never a virtual IP; no backend expansion for ingress.
    (resolved,) = resolve_flows(CLUSTER, FRONTEND, [flow("10.96.0.20", "10.244.1.5", 8080)], {})
    assert resolved.direction == "ingress"
    assert resolved.peers == (Peer(PeerKind.EXTERNAL, ip("10.96.0.20"), None, TCP, cidr="10.96.0.20/32"),)


def test_dual_stack_own_pod_flows_on_both_families_are_its_own() -> None:
    v6 = flow("fd00:10:244:1::5", "fd00:10:244:1::50", 22)
    (resolved,) = resolve_flows(CLUSTER, FRONTEND, [v6], {})
    assert resolved.direction == "egress"
    assert resolved.peers[0].pod == ("shop", "debug")


def test_resolver_is_deterministic_and_memoised() -> None:
    resolver = Resolver(CLUSTER, FRONTEND)
    first = resolver.resolve(ip("10.96.0.20"), 80, TCP)
    assert resolver.resolve(ip("10.96.0.20"), 80, TCP) is first
    reordered = inventory(services=tuple(reversed(SERVICES)))
    assert Resolver(reordered, FRONTEND).resolve(ip("10.96.0.20"), 80, TCP) == first
