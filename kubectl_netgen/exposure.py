"""Servers that more clients reach than a capture can see: the cluster DNS and public Services.

Pure: an inventory and what each workload's policy must allow in; the same, widened where the observed
clients can only be a sample of the real ones, out. A capture sees the clients of its window; a policy
must admit the next ones too:

* **Cluster DNS.** The pods behind ``kube-system/kube-dns`` answer every pod of every namespace: they admit
  ``namespaceSelector: {}`` on their DNS ports, UDP and TCP alike (the ports every client's DNS rule
  names), whoever was captured asking. Their other ports keep their observed peers.
* **Public Services.** Backends of a ``LoadBalancer`` or ``NodePort`` Service are reached from outside the
  cluster, through a node (SNAT under ``externalTrafficPolicy: Cluster``) or straight from the client
  (``Local``): when the observed clients on the Service's target port are node or outside addresses, the
  next one will have another address, so the port admits ``0.0.0.0/0`` (and ``::/0`` for an IPv6 family).
  This covers the backends a cloud ingress controller reaches through a NodePort Service alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from kubectl_netgen.model import Inventory, Pod, PolicyDirection, Protocol, Service, ServicePort, Workload
from kubectl_netgen.synth import ANY_POD, DNS_PORTS, Allowed, PolicyPeer

DNS_SERVICE = ("kube-system", "kube-dns")
PUBLIC_TYPES = frozenset({"LoadBalancer", "NodePort"})
ANYWHERE = {4: "0.0.0.0/0", 6: "::/0"}


def dns_service(inventory: Inventory) -> Service | None:
    """The cluster DNS Service (``kube-system/kube-dns``) when it has a selector."""
    return next((s for s in inventory.services if (s.namespace, s.name) == DNS_SERVICE and s.selector), None)


def _target(service: Service, sp: ServicePort, pod: Pod | None) -> int | None:
    """The backend port of ``sp``: its numeric targetPort, the pod's port of that name, else the EndpointSlices'."""
    if sp.target_port is None:
        return sp.port
    if isinstance(sp.target_port, int):
        return sp.target_port
    if pod is not None:
        named = next((c.port for c in pod.ports if c.name == sp.target_port and c.protocol == sp.protocol), None)
        if named is not None:
            return named
    for endpoints in service.endpoints:
        found = next((e.port for e in endpoints.ports
                      if (e.name or None) == (sp.name or None) and e.protocol == sp.protocol), None)
        if found is not None:
            return found
    return None


def _backends(inventory: Inventory, service: Service) -> Iterator[Pod]:
    """The pods behind a Service: its EndpointSlices' pods, and the pods its selector picks."""
    seen: set[tuple[str, str]] = set()
    for endpoints in service.endpoints:
        pod = inventory.pods_by_name.get(endpoints.pod) if endpoints.pod else None
        if pod is not None and endpoints.pod not in seen:
            seen.add(endpoints.pod)  # type: ignore[arg-type]
            yield pod
    if service.selector:
        wanted = dict(service.selector)
        for pod in inventory.pods:
            labels = dict(pod.labels)
            if (pod.namespace == service.namespace and (pod.namespace, pod.name) not in seen and not pod.host_network
                    and all(labels.get(k) == v for k, v in wanted.items())):
                seen.add((pod.namespace, pod.name))
                yield pod


def dns_ports(inventory: Inventory) -> tuple[tuple[Protocol, int], ...]:
    """The ports the cluster DNS pods answer on, after the Service's translation: UDP and TCP, 53 unless told.

    A client's DNS rule and the DNS server's ingress rule both use these, so they always agree: the Service's
    port-53 target for each protocol, the other protocol's target when only one is declared.
    """
    service = dns_service(inventory)
    targets: dict[Protocol, int] = {}
    if service is not None:
        pod = next(_backends(inventory, service), None)
        for sp in service.ports:
            if sp.port == 53 and sp.protocol in (Protocol.UDP, Protocol.TCP):
                target = _target(service, sp, pod)
                if target is not None:
                    targets.setdefault(sp.protocol, target)
    if not targets:
        return DNS_PORTS
    fallback = targets.get(Protocol.UDP, targets.get(Protocol.TCP, 53))
    return tuple(sorted((p, targets.get(p, fallback)) for p in (Protocol.UDP, Protocol.TCP)))


@dataclass(frozen=True)
class PublicPort:
    """A port of a workload that a public Service reaches."""

    protocol: Protocol
    port: int
    """The backend (target) port."""
    services: tuple[str, ...]
    """``namespace/name (Type)`` of each public Service that reaches it."""
    families: tuple[int, ...]
    """IP versions the Services serve (``spec.clusterIPs``; IPv4 when none is known)."""


def public_ports(inventory: Inventory) -> dict[Workload, list[PublicPort]]:
    """Per workload, the backend ports that a ``LoadBalancer`` or ``NodePort`` Service reaches."""
    found: dict[Workload, dict[tuple[Protocol, int], tuple[set[str], set[int]]]] = {}
    for service in inventory.services:
        if service.type not in PUBLIC_TYPES:
            continue
        families = {ip.version for ip in (*service.cluster_ips, *service.external_ips)} or {4}
        label = f"{service.namespace}/{service.name} ({service.type})"
        for pod in _backends(inventory, service):
            workload = inventory.workloads_by_ref.get(pod.workload)
            if workload is None:
                continue
            for sp in service.ports:
                target = _target(service, sp, pod)
                if target is None:
                    continue
                names, versions = found.setdefault(workload, {}).setdefault((sp.protocol, target), (set(), set()))
                names.add(label)
                versions.update(families)
    return {workload: [PublicPort(protocol, port, tuple(sorted(names)), tuple(sorted(versions)))
                       for (protocol, port), (names, versions) in sorted(ports.items())]
            for workload, ports in found.items()}


@dataclass(frozen=True)
class Widened:
    """What :func:`widen` opened up, for the user to read on stderr."""

    workload: Workload
    protocol: Protocol
    port: int
    cidrs: tuple[str, ...]
    """The peers now admitted: ``0.0.0.0/0``, ``::/0``, or ``pods in every namespace``."""
    why: str


def widen(
    allowed: Mapping[Workload, Iterable[Allowed]],
    inventory: Inventory,
    *,
    node_ingress: Mapping[Workload, Iterable[tuple[Protocol, int]]] | None = None,
    public: bool = True,
) -> tuple[dict[Workload, list[Allowed]], list[Widened]]:
    """Widen the ingress of cluster DNS servers and of public Services' backends (see the module docstring).

    Args:
        allowed: Per workload, what its policy must allow (as :meth:`Observer.allowed` gives it).
        inventory: The cluster the allowances were resolved in.
        node_ingress: Per workload, (protocol, port) its pods were reached on from their own node (no
            allowance: the spec allows it), which for a public Service's port stands for SNATed clients.
        public: Widen public Services' ports (``--external-ingress any``); ``False`` keeps the observed
            addresses (``--external-ingress observed``).

    Returns:
        The allowances, widened, in the same order of workloads; and one note per widened port.
    """
    dns = dns_service(inventory)
    dns_workloads = {inventory.workloads_by_ref[p.workload] for p in _backends(inventory, dns)
                     if p.workload in inventory.workloads_by_ref} if dns is not None else set()
    dns_at = set(dns_ports(inventory))
    exposed = public_ports(inventory) if public else {}
    out: dict[Workload, list[Allowed]] = {}
    notes: list[Widened] = []
    for workload, items in allowed.items():
        kept = list(items)
        if workload in dns_workloads:
            kept = [a for a in kept if not (a[0] is PolicyDirection.INGRESS and (a[2], a[3]) in dns_at
                                            and a[1].cidr is None)]
            kept += [(PolicyDirection.INGRESS, ANY_POD, protocol, port) for protocol, port in sorted(dns_at)]
            notes += [Widened(workload, protocol, port, ("pods in every namespace",),
                              f"it serves cluster DNS ({DNS_SERVICE[0]}/{DNS_SERVICE[1]})")
                      for protocol, port in sorted(dns_at)]
        seen_from_node = set(node_ingress.get(workload, ())) if node_ingress else set()
        for public_port in exposed.get(workload, ()):
            at = (public_port.protocol, public_port.port)
            outside = {a for a in kept if a[0] is PolicyDirection.INGRESS and (a[2], a[3]) == at
                       and a[1].cidr is not None}
            if not outside and at not in seen_from_node:
                continue  # only pods were seen on it (an in-cluster client such as an ingress controller)
            why = f"public Service {', '.join(public_port.services)}"
            families = sorted({*public_port.families, *(6 if ":" in (a[1].cidr or "") else 4 for a in outside)})
            anywhere = [PolicyPeer(cidr=ANYWHERE[v], names=(f"anywhere: {why}",)) for v in families]
            kept = [a for a in kept if a not in outside]
            kept += [(PolicyDirection.INGRESS, peer, at[0], at[1]) for peer in anywhere]
            notes.append(Widened(workload, at[0], at[1], tuple(p.cidr or "" for p in anywhere), why))
        out[workload] = kept
    return out, notes
