"""Values shared by every layer: flows, protocols and directions.

Frozen dataclasses and enums only; no I/O. Decoders produce these, renderers
and later policy synthesis consume them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_network

IPAddress = IPv4Address | IPv6Address


class Protocol(str, enum.Enum):
    """Transport protocol of a flow, spelled as Kubernetes spells it where it can."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"
    ICMP = "ICMP"
    ICMPV6 = "ICMPv6"


class Direction(str, enum.Enum):
    """How the client side of a flow was decided."""

    HANDSHAKE = "handshake"
    """Seen: a TCP SYN or SYN+ACK, an SCTP INIT, an ICMP echo request, a UDP request and its reply."""
    GUESS = "guess"
    """Inferred from ports (listening, well-known, lower) because the opening was not captured."""
    SOCKET = "socket"
    """From the pod's socket tables: a connection open at the start or end of the capture; the listening
    sockets decide which side is the server."""


class PolicyDirection(str, enum.Enum):
    """A flow seen from a captured pod: ``egress`` when the pod is the client, ``ingress`` when the server."""

    EGRESS = "egress"
    INGRESS = "ingress"


@dataclass(frozen=True)
class Flow:
    """Traffic from one client IP to one server IP and port, over all its connections."""

    protocol: Protocol
    """Transport protocol."""
    src: IPAddress
    """Client: the side that opened the connection (or sent the request)."""
    dst: IPAddress
    """Server: the side that accepted it."""
    dst_port: int | None
    """Server port; ``None`` for ICMP."""
    connections: int
    """Distinct connections (5-tuples; ICMP echo identifiers) seen."""
    packets: int
    """Packets in both directions."""
    bytes: int
    """IP-layer bytes on the wire in both directions (frame length minus the link header)."""
    first_seen: int
    """First packet, nanoseconds since the Unix epoch (UTC); 0 when no packet had a valid time."""
    last_seen: int
    """Last packet, nanoseconds since the Unix epoch (UTC); 0 when no packet had a valid time."""
    direction: Direction
    """Whether the client side was seen opening the flow or guessed."""
    kind: str = "connection"
    """``connection`` for TCP/UDP/SCTP, ``echo`` for ICMP echo, else the ICMP message name."""

    def order(self) -> tuple[str, int, int, int, int, int, str]:
        """Sort key: protocol, server address, port, client address, kind (stable across runs)."""
        return (
            self.protocol.value,
            self.dst.version,
            int(self.dst),
            -1 if self.dst_port is None else self.dst_port,
            self.src.version,
            int(self.src),
            self.kind,
        )


# ----------------------------------------------------------------------------- the cluster inventory

Labels = tuple[tuple[str, str], ...]
"""Labels as sorted (key, value) pairs: hashable and deterministic. ``dict(labels)`` to look up."""


def labels_of(mapping: dict[str, str] | None) -> Labels:
    """Sorted, hashable labels from a Kubernetes ``labels``/``matchLabels`` mapping."""
    return tuple(sorted((mapping or {}).items()))


@dataclass(frozen=True)
class SelectorRequirement:
    """One ``matchExpressions`` entry of a label selector."""

    key: str
    operator: str
    """``In``, ``NotIn``, ``Exists`` or ``DoesNotExist``."""
    values: tuple[str, ...] = ()
    """Sorted values (empty for Exists/DoesNotExist)."""


@dataclass(frozen=True)
class LabelSelector:
    """A Kubernetes label selector (``matchLabels`` and ``matchExpressions``); empty selects everything."""

    match_labels: Labels = ()
    match_expressions: tuple[SelectorRequirement, ...] = ()

    def matches(self, labels: Labels | dict[str, str]) -> bool:
        """Tell whether an object with ``labels`` is selected."""
        have = labels if isinstance(labels, dict) else dict(labels)
        if any(have.get(k) != v for k, v in self.match_labels):
            return False
        for req in self.match_expressions:
            present = req.key in have
            if req.operator == "In" and not (present and have[req.key] in req.values):
                return False
            if req.operator == "NotIn" and present and have[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


class WorkloadKind(str, enum.Enum):
    """What owns a pod, after following ReplicaSet -> Deployment and Job -> CronJob."""

    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"
    DAEMONSET = "DaemonSet"
    REPLICASET = "ReplicaSet"
    """A ReplicaSet without a Deployment."""
    JOB = "Job"
    CRONJOB = "CronJob"
    POD = "Pod"
    """A bare pod (no controller, or a controller of a kind we do not know)."""


@dataclass(frozen=True)
class WorkloadRef:
    """A workload: the top-level controller of pods (or a bare pod)."""

    kind: WorkloadKind
    namespace: str
    name: str


@dataclass(frozen=True)
class ContainerPort:
    """A port a pod's container declares."""

    port: int
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True)
class Pod:
    """A pod, as the inventory knows it."""

    namespace: str
    name: str
    labels: Labels
    ips: tuple[IPAddress, ...]
    """All of ``status.podIPs`` (empty before the pod has an IP)."""
    node: str | None
    """``spec.nodeName``."""
    host_network: bool
    """A hostNetwork pod: its IPs are its node's, so it is not a pod for identity purposes."""
    workload: WorkloadRef
    ports: tuple[ContainerPort, ...] = ()
    """Container ports of every container (named ports resolve against these)."""
    phase: str = "Running"
    created: str = ""
    """``metadata.creationTimestamp`` (RFC 3339, so it sorts as text); "" when unknown."""


@dataclass(frozen=True)
class Workload:
    """A workload and the selector that picks its pods (used as a NetworkPolicy ``podSelector``)."""

    ref: WorkloadRef
    selector: LabelSelector
    """The controller's ``spec.selector``; for a bare pod, its labels minus volatile ones."""
    labels: Labels = ()
    """The pod template's labels (what its pods carry, volatile labels removed)."""


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service."""

    port: int
    protocol: Protocol = Protocol.TCP
    target_port: int | str | None = None
    """A number, a container port name, or ``None`` (= ``port``)."""
    name: str | None = None


@dataclass(frozen=True)
class EndpointPort:
    """A port of an EndpointSlice: the resolved backend port for the Service port of the same name."""

    port: int
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True)
class Endpoints:
    """One EndpointSlice of a Service: backend addresses and the ports they serve."""

    addresses: tuple[IPAddress, ...]
    ports: tuple[EndpointPort, ...]
    pod: tuple[str, str] | None = None
    """(namespace, name) of the pod behind the addresses, from ``targetRef``."""
    ready: bool = True


@dataclass(frozen=True)
class Service:
    """A Service and what backs it."""

    namespace: str
    name: str
    type: str
    """``ClusterIP``, ``NodePort``, ``LoadBalancer`` or ``ExternalName``."""
    cluster_ips: tuple[IPAddress, ...]
    """``spec.clusterIPs`` (empty for a headless Service)."""
    external_ips: tuple[IPAddress, ...]
    """``spec.externalIPs`` and ``status.loadBalancer.ingress[].ip``."""
    ports: tuple[ServicePort, ...]
    selector: Labels | None
    """``spec.selector``; ``None`` for a Service without selector (e.g. ``default/kubernetes``)."""
    endpoints: tuple[Endpoints, ...] = ()
    """From its EndpointSlices (one entry per endpoint)."""

    @property
    def headless(self) -> bool:
        """A headless Service (``clusterIP: None``) has no ClusterIP: clients talk to pod IPs."""
        return not self.cluster_ips and self.type != "ExternalName"


@dataclass(frozen=True)
class Node:
    """A node."""

    name: str
    addresses: tuple[IPAddress, ...]
    """InternalIP and ExternalIP addresses."""
    pod_cidrs: tuple[str, ...] = ()
    """``spec.podCIDRs`` (CIDR strings)."""
    tunnel_addresses: tuple[IPAddress, ...] = ()
    """The node's own addresses inside the pod network that its CNI announces (tunnel devices, ``cilium_host``)."""

    def gateways(self) -> tuple[IPAddress, ...]:
        """The node's addresses inside the pod network, where its hairpinned and tunnelled traffic comes from.

        The first two of each podCIDR (the network address: flannel's VXLAN device; the first host: the
        ``cni0`` bridge or gateway), then its tunnel addresses.
        """
        found: list[IPAddress] = []
        for cidr in self.pod_cidrs:
            try:
                network = ip_network(cidr, strict=False)
            except ValueError:
                continue
            if network.num_addresses >= 4:
                found += [network.network_address, network.network_address + 1]
        return (*found, *self.tunnel_addresses)


@dataclass(frozen=True)
class Namespace:
    """A namespace and its labels (NetworkPolicy namespaceSelectors match these)."""

    name: str
    labels: Labels = ()


def _claim(pod: Pod) -> tuple[bool, str]:
    """How strongly a pod holds its IPs against another pod with the same: see :meth:`Inventory.create`."""
    return pod.phase == "Running", pod.created


@dataclass(frozen=True)
class Inventory:
    """The cluster as a snapshot: everything identity resolution and synthesis need to know.

    Built by :mod:`kubectl_netgen.inventory` from a ``v1 List`` (a ``cluster.json`` or the live
    cluster); immutable afterwards. Lookups by IP are precomputed in :attr:`pods_by_ip` and friends.
    """

    namespaces: tuple[Namespace, ...] = ()
    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    """Every pod, hostNetwork pods included (they are skipped when IPs are resolved to pods)."""
    workloads: tuple[Workload, ...] = ()
    services: tuple[Service, ...] = ()
    pod_cidrs: tuple[str, ...] = ()
    """The cluster's pod networks (node podCIDRs, else the networks pod IPs fall in), as CIDR strings."""
    missing: tuple[str, ...] = ()
    """Kinds that were absent from the snapshot (e.g. ``EndpointSlice``): results may be incomplete."""
    pods_by_ip: dict[IPAddress, Pod] = field(default_factory=dict, compare=False, hash=False)
    """Non-hostNetwork pods by each of their IPs (Running pods win over finished ones)."""
    services_by_ip: dict[IPAddress, Service] = field(default_factory=dict, compare=False, hash=False)
    """Services by ClusterIP and external/LoadBalancer IP."""
    nodes_by_ip: dict[IPAddress, Node] = field(default_factory=dict, compare=False, hash=False)
    nodes_by_gateway: dict[IPAddress, Node] = field(default_factory=dict, compare=False, hash=False)
    """Nodes by their addresses inside the pod network (:meth:`Node.gateways`) that no pod has."""
    workloads_by_ref: dict[WorkloadRef, Workload] = field(default_factory=dict, compare=False, hash=False)
    pods_by_name: dict[tuple[str, str], Pod] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def create(
        cls,
        *,
        namespaces: Iterable[Namespace] = (),
        nodes: Iterable[Node] = (),
        pods: Iterable[Pod] = (),
        workloads: Iterable[Workload] = (),
        services: Iterable[Service] = (),
        pod_cidrs: Iterable[str] = (),
        missing: Iterable[str] = (),
    ) -> Inventory:
        """Build an inventory with its lookup indexes; everything is sorted for determinism.

        ``pod_cidrs`` defaults to the nodes' podCIDRs, else to the /16 networks that pod IPs
        (v4; /64 for v6) fall in.
        """
        ns = tuple(sorted(namespaces, key=lambda n: n.name))
        nd = tuple(sorted(nodes, key=lambda n: n.name))
        pd = tuple(sorted(pods, key=lambda p: (p.namespace, p.name)))
        wl = tuple(sorted(workloads, key=lambda w: (w.ref.namespace, w.ref.kind.value, w.ref.name)))
        sv = tuple(sorted(services, key=lambda s: (s.namespace, s.name)))
        pods_by_ip: dict[IPAddress, Pod] = {}
        for pod in pd:
            if pod.host_network:
                continue
            for ip in pod.ips:
                # Two pods with one IP were not alive together (a snapshot merged from several moments):
                # a Running pod wins over a finished one, then the one created last, which has it now.
                if ip not in pods_by_ip or _claim(pod) > _claim(pods_by_ip[ip]):
                    pods_by_ip[ip] = pod
        services_by_ip = {ip: s for s in sv for ip in (*s.cluster_ips, *s.external_ips)}
        nodes_by_ip = {ip: n for n in nd for ip in n.addresses}
        nodes_by_gateway: dict[IPAddress, Node] = {}
        for n in nd:
            for ip in n.gateways():
                if ip not in pods_by_ip and ip not in nodes_by_ip:
                    nodes_by_gateway.setdefault(ip, n)
        cidrs = tuple(sorted(set(pod_cidrs))) or tuple(sorted({c for n in nd for c in n.pod_cidrs}))
        if not cidrs:
            cidrs = tuple(sorted({str(ip_network(f"{ip}/{16 if ip.version == 4 else 64}", strict=False))
                                  for ip in pods_by_ip}))
        return cls(
            namespaces=ns, nodes=nd, pods=pd, workloads=wl, services=sv, pod_cidrs=cidrs,
            missing=tuple(sorted(set(missing))), pods_by_ip=pods_by_ip, services_by_ip=services_by_ip,
            nodes_by_ip=nodes_by_ip, nodes_by_gateway=nodes_by_gateway, workloads_by_ref={w.ref: w for w in wl},
            pods_by_name={(p.namespace, p.name): p for p in pd},
        )

    def in_pod_network(self, ip: IPAddress) -> bool:
        """Tell whether ``ip`` falls in the cluster's pod networks (a pod that went away, if unknown)."""
        return any(ip in ip_network(cidr) for cidr in self.pod_cidrs if ip_network(cidr).version == ip.version)
