"""What Services mean to the data plane: endpoints, kube-proxy-like nftables rules, masquerading, DNS zone.

Pure functions of the layout and the pods that exist now: no I/O. The lab loads their output into the
node namespaces and the zone file; the Kubernetes objects use the same endpoints for EndpointSlices, so
the rules, DNS answers and EndpointSlices always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.cluster.fabric.layout import CLUSTER_DOMAIN, EXTERNAL_NAMES, Pod, ServiceSpec

Endpoint = tuple[Pod | None, str, dict[str, tuple[int, str]]]
"""(pod, address, {port name: (resolved target port, protocol)}); the pod is None for manual endpoints."""


def endpoints(svc: ServiceSpec, pods: Iterable[Pod]) -> list[Endpoint]:
    """(pod, address, {port name: (resolved target port, protocol)}) per ready endpoint."""
    if svc.selector is None:
        return [(None, addr, {name: (int(target), proto) for name, _, target, proto in svc.ports})
                for addr in svc.endpoints]
    found: list[Endpoint] = []
    for pod in sorted(pods, key=lambda p: p.name):
        if pod.namespace != svc.namespace or any(pod.labels.get(k) != v for k, v in svc.selector.items()):
            continue
        ports: dict[str, tuple[int, str]] = {}
        for name, _, target, proto in svc.ports:
            if isinstance(target, int):
                ports[name] = (target, proto)
            else:
                named = [p.port for p in pod.controller.ports if p.name == target and p.protocol == proto]
                if named:
                    ports[name] = (named[0], proto)
        found.append((pod, pod.ip, ports))
    return found


def kubeproxy_rules(services: Iterable[ServiceSpec], pods: Iterable[Pod]) -> str:
    """The nftables ruleset (kube-proxy nftables mode, in small) loaded into every node."""
    pods = list(pods)
    lines = ["table ip netgen_kubeproxy", "delete table ip netgen_kubeproxy", "table ip netgen_kubeproxy {",
             " chain prerouting {", "  type nat hook prerouting priority dstnat; policy accept;",
             "  jump services", " }",
             " chain output {", "  type nat hook output priority -100; policy accept;", "  jump services", " }"]
    rules: list[str] = []
    chains: list[str] = []
    for svc in services:
        if svc.cluster_ip is None:
            continue
        found = endpoints(svc, pods)
        for name, port, _, proto in svc.ports:
            backends = [(addr, ports[name][0]) for _, addr, ports in found if name in ports]
            if not backends:
                continue
            l4 = proto.lower()
            chain = f"service-{svc.namespace}-{svc.name}-{name}-{l4}"
            rules.append(f"  ip daddr {svc.cluster_ip} {l4} dport {port} goto {chain}")
            verdicts = ", ".join(f"{i} : goto {chain}-ep{i}" for i in range(len(backends)))
            chains += [f" chain {chain} {{", f"  numgen random mod {len(backends)} vmap {{ {verdicts} }}", " }"]
            for i, (addr, target) in enumerate(backends):
                chains += [f" chain {chain}-ep{i} {{", f"  # {addr}:{target}",
                           f"  meta l4proto {l4} dnat to {addr}:{target}", " }"]
    lines += [" chain services {", *rules, " }", *chains, "}"]
    return "\n".join(lines) + "\n"


def masquerade_rules() -> str:
    """SNAT of pod traffic to destinations outside pods, Services and nodes (the externals)."""
    return ("table ip netgen_masquerade\ndelete table ip netgen_masquerade\ntable ip netgen_masquerade {\n"
            " chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n"
            "  ip saddr 10.244.0.0/16 ip daddr != { 10.244.0.0/16, 10.96.0.0/12, 10.250.0.0/24 } masquerade\n"
            " }\n}\n")


def zone(services: Iterable[ServiceSpec], pods: Iterable[Pod]) -> dict[str, dict[str, Any]]:
    """The cluster DNS zone: Service names, headless pod names and the external names."""
    pods = list(pods)
    records: dict[str, list[str]] = {}
    for svc in services:
        fqdn = f"{svc.name}.{svc.namespace}.svc.{CLUSTER_DOMAIN}."
        if svc.cluster_ip is not None:
            records[fqdn] = [svc.cluster_ip]
            continue
        # A headless Service without ready endpoints has no records at all (NXDOMAIN), as in CoreDNS.
        found = endpoints(svc, pods)
        if found:
            records[fqdn] = sorted(addr for _, addr, _ in found)
        for pod, addr, _ in found:
            if pod is not None:
                records[f"{pod.name}.{fqdn}"] = [addr]
    for name, ip in EXTERNAL_NAMES["A"].items():
        records[name] = [ip]
    return {"A": records, "CNAME": dict(EXTERNAL_NAMES["CNAME"])}
