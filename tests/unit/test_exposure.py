"""Pure parts of safe generation: which workloads get a policy (scope) and who else reaches a server (exposure)."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from kubectl_netgen.errors import InputError
from kubectl_netgen.exposure import dns_ports, public_ports, widen
from kubectl_netgen.model import (
    ContainerPort,
    EndpointPort,
    Endpoints,
    Inventory,
    LabelSelector,
    Pod,
    PolicyDirection,
    Protocol,
    Service,
    ServicePort,
    Workload,
    WorkloadKind,
    WorkloadRef,
)
from kubectl_netgen.scope import Scope, Skip, check_patterns
from kubectl_netgen.synth import ANY_POD, PolicyPeer

DNS_REF = WorkloadRef(WorkloadKind.DEPLOYMENT, "kube-system", "coredns")
WEB_REF = WorkloadRef(WorkloadKind.DEPLOYMENT, "shop", "web")
DNS_WORKLOAD = Workload(DNS_REF, LabelSelector((("k8s-app", "kube-dns"),)))
WEB_WORKLOAD = Workload(WEB_REF, LabelSelector((("app", "web"),)))
COREDNS = Pod("kube-system", "coredns-1", (("k8s-app", "kube-dns"),), (ip_address("10.244.1.53"),), "node-a", False,
              DNS_REF, (ContainerPort(5353, Protocol.UDP, "dns"), ContainerPort(5353, Protocol.TCP, "dns-tcp")))
WEB = Pod("shop", "web-1", (("app", "web"),), (ip_address("10.244.1.10"),), "node-a", False, WEB_REF,
          (ContainerPort(8080, Protocol.TCP, "http"),))


def _inventory(*services: Service) -> Inventory:
    return Inventory.create(pods=[COREDNS, WEB], workloads=[DNS_WORKLOAD, WEB_WORKLOAD], services=services)


def _kube_dns(*ports: ServicePort) -> Service:
    return Service("kube-system", "kube-dns", "ClusterIP", (ip_address("10.96.0.10"),), (), ports,
                   (("k8s-app", "kube-dns"),))


def test_dns_ports_follow_named_target_ports_and_cover_both_protocols() -> None:
    named = _inventory(_kube_dns(ServicePort(53, Protocol.UDP, "dns", "dns")))
    assert dns_ports(named) == ((Protocol.TCP, 5353), (Protocol.UDP, 5353))  # TCP takes UDP's port when absent
    assert dns_ports(_inventory()) == ((Protocol.UDP, 53), (Protocol.TCP, 53))  # no Service: the default


def test_dns_ports_from_endpoint_slices_when_no_pod_declares_the_name() -> None:
    service = Service("kube-system", "kube-dns", "ClusterIP", (ip_address("10.96.0.10"),), (),
                      (ServicePort(53, Protocol.UDP, "named", "dns"), ServicePort(53, Protocol.TCP, 1053, "dns-tcp")),
                      (("k8s-app", "kube-dns"),),
                      (Endpoints((ip_address("10.244.9.9"),), (EndpointPort(9053, Protocol.UDP, "dns"),)),))
    assert dns_ports(Inventory.create(services=[service])) == ((Protocol.TCP, 1053), (Protocol.UDP, 9053))


def test_public_ports_are_the_target_ports_of_load_balancers_and_node_ports() -> None:
    lb = Service("shop", "web", "LoadBalancer", (ip_address("10.96.0.80"), ip_address("fd00:10:96::80")), (),
                 (ServicePort(80, Protocol.TCP, "http"),), (("app", "web"),))
    internal = Service("shop", "web-internal", "ClusterIP", (ip_address("10.96.0.81"),), (),
                       (ServicePort(9090, Protocol.TCP, 9090),), (("app", "web"),))
    [port] = public_ports(_inventory(lb, internal))[WEB_WORKLOAD]
    assert (port.protocol, port.port, port.services, port.families) == (
        Protocol.TCP, 8080, ("shop/web (LoadBalancer)",), (4, 6))


def test_widen_keeps_pod_peers_off_public_ports_and_replaces_the_dns_servers_observed_clients() -> None:
    lb = Service("shop", "web", "NodePort", (ip_address("10.96.0.80"),), (), (ServicePort(80, Protocol.TCP, 8080),),
                 (("app", "web"),))
    inventory = _inventory(lb, _kube_dns(ServicePort(53, Protocol.UDP, 53), ServicePort(53, Protocol.TCP, 53)))
    web_peer = PolicyPeer("shop", WEB_WORKLOAD.selector)
    outside = PolicyPeer(cidr="203.0.113.7/32")
    allowed, notes = widen({
        DNS_WORKLOAD: [(PolicyDirection.INGRESS, web_peer, Protocol.UDP, 53),
                       (PolicyDirection.INGRESS, web_peer, Protocol.TCP, 9153)],
        WEB_WORKLOAD: [(PolicyDirection.INGRESS, outside, Protocol.TCP, 8080),
                       (PolicyDirection.INGRESS, web_peer, Protocol.TCP, 8080)],
    }, inventory)
    assert allowed[DNS_WORKLOAD] == [(PolicyDirection.INGRESS, web_peer, Protocol.TCP, 9153),
                                     (PolicyDirection.INGRESS, ANY_POD, Protocol.TCP, 53),
                                     (PolicyDirection.INGRESS, ANY_POD, Protocol.UDP, 53)]
    [web_kept, web_anywhere] = allowed[WEB_WORKLOAD]
    assert web_kept == (PolicyDirection.INGRESS, web_peer, Protocol.TCP, 8080)
    assert web_anywhere[1].cidr == "0.0.0.0/0" and web_anywhere[3] == 8080
    assert len(notes) == 3
    unchanged, none = widen({WEB_WORKLOAD: [(PolicyDirection.INGRESS, outside, Protocol.TCP, 8080)]}, inventory,
                            public=False)
    assert unchanged[WEB_WORKLOAD] == [(PolicyDirection.INGRESS, outside, Protocol.TCP, 8080)] and none == []


def test_scope_reasons() -> None:
    host = Pod("shop", "agent", (("app", "agent"),), (ip_address("10.250.0.11"),), "node-a", True, WEB_REF)
    bare_ref = WorkloadRef(WorkloadKind.POD, "shop", "scratch")
    bare = Pod("shop", "scratch", (), (), "node-a", False, bare_ref)
    scope = Scope(exclude=check_patterns(["shop/w?b"]))
    assert scope.skip(host, WEB_WORKLOAD) is Skip.HOST_NETWORK
    assert scope.skip(COREDNS, DNS_WORKLOAD) is Skip.SYSTEM
    assert Scope(include_system=True).skip(COREDNS, DNS_WORKLOAD) is None
    assert scope.skip(WEB, WEB_WORKLOAD) is Skip.EXCLUDED
    assert Scope().skip(bare, Workload(bare_ref, LabelSelector())) is Skip.UNLABELLED
    assert Scope().skip(WEB, WEB_WORKLOAD) is None


@pytest.mark.parametrize("pattern", ["web", "shop/", "/web", "Shop/web", "shop/web/x", ""])
def test_exclude_patterns_must_be_namespace_slash_name(pattern: str) -> None:
    with pytest.raises(InputError):
        check_patterns([pattern])
