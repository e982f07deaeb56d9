"""Who is behind an IP address a captured pod talked to: pod, Service backend, node or the outside.

Pure: an :class:`~kubectl_netgen.model.Inventory` snapshot and addresses in, :class:`Peer` values out;
no I/O, no clock. Policy synthesis consumes the result, so every answer is one of a few kinds
(:class:`PeerKind`) that each map to one way of writing a NetworkPolicy peer, or to a warning.

Rules, first match wins:

1. Loopback and the captured pod's own IPs: :attr:`PeerKind.LOOPBACK` / :attr:`PeerKind.SELF`; ignored.
2. A pod IP (hostNetwork pods excluded: their IPs are their node's): the pod and its workload.
3. A Service ClusterIP or external/LoadBalancer IP: one peer per backend, the port translated to the
   backend's ``targetPort`` (policies are enforced after the Service's DNAT, so they must name the
   backend and its port, never the virtual IP). Backends come from the EndpointSlices, else from the
   Service's selector; a Service without selector (``default/kubernetes``) yields its endpoint IPs.
4. A node IP: the captured pod's own node (always allowed by the NetworkPolicy spec) or another node.
   So is a node's own address inside the pod network (:meth:`~kubectl_netgen.model.Node.gateways`: the
   CNI bridge or gateway of its podCIDR, e.g. 10.244.1.1, and tunnel devices), where hairpinned and
   tunnelled traffic comes from.
5. An address in the cluster's pod networks that no pod has now: a warning, never an ipBlock.
6. Anything else: an external ipBlock (/32 or /128), named by the DNS answers seen in the capture.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network

from kubectl_netgen.model import (
    Flow,
    Inventory,
    IPAddress,
    Node,
    Pod,
    PolicyDirection,
    Protocol,
    Service,
    ServicePort,
    WorkloadRef,
)

Names = Mapping[IPAddress, Sequence[str]]
"""Address -> names it was known by (DNS answers seen in the capture, reverse DNS added by the caller)."""

_GONE_PHASES = frozenset({"Succeeded", "Failed"})
"""Pods in these phases are never Service backends (the EndpointSlice controller drops them)."""


class PeerKind(str, enum.Enum):
    """What a remote address turned out to be; each kind is written into a policy in one way."""

    LOOPBACK = "loopback"
    """127.0.0.0/8 or ::1: never leaves the pod; ignored."""
    SELF = "self"
    """One of the captured pod's own IPs (also as the backend of a Service it reached); ignored."""
    POD = "pod"
    """A pod (directly, or as a Service backend): a ``podSelector`` for its workload."""
    SERVICE_ENDPOINT_IP = "service-endpoint-ip"
    """A Service backend that is not a pod (selectorless Service such as ``default/kubernetes``, or a
    hostNetwork backend): an ipBlock on the backend port."""
    NO_BACKENDS = "no-backends"
    """A Service with neither endpoints nor selected pods: a warning, no rule."""
    UNKNOWN_SERVICE_PORT = "unknown-service-port"
    """A Service IP on a port (or protocol) the Service does not expose: a warning, no rule."""
    OWN_NODE = "own-node"
    """The captured pod's own node: the NetworkPolicy spec always allows it (kubelet probes); no rule."""
    NODE = "node"
    """Another node: an ipBlock, with a note naming the node."""
    UNKNOWN_POD = "unknown-pod"
    """Inside the cluster's pod networks, but no pod has that IP now: a warning, never an ipBlock."""
    EXTERNAL = "external"
    """Anything else: an ipBlock."""

    @property
    def ignored(self) -> bool:
        """Traffic that never needs a rule and is dropped by callers (counted, not written)."""
        return self in (PeerKind.LOOPBACK, PeerKind.SELF)

    @property
    def warning(self) -> bool:
        """A result that cannot become a rule and must be reported to the user."""
        return self in (PeerKind.NO_BACKENDS, PeerKind.UNKNOWN_SERVICE_PORT, PeerKind.UNKNOWN_POD)


@dataclass(frozen=True)
class Peer:
    """One answer to "who is this address": the remote side of a flow, as a policy needs it."""

    kind: PeerKind
    """What the address is."""
    ip: IPAddress
    """The peer's address: the backend's for a Service (the Service IP for Service warnings)."""
    port: int | None
    """The port on the wire at the peer, translated to the backend ``targetPort`` for Services;
    ``None`` when it does not matter (the remote client of an inbound flow, ICMP)."""
    protocol: Protocol
    """Transport protocol."""
    pod: tuple[str, str] | None = None
    """(namespace, name) of the pod, if the peer is one (or a hostNetwork pod serving on a node)."""
    workload: WorkloadRef | None = None
    """The pod's owning workload (Deployment, StatefulSet, DaemonSet, Job/CronJob, bare pod)."""
    service: tuple[str, str] | None = None
    """(namespace, name) of the Service the peer was reached through."""
    service_port: int | None = None
    """The Service port that was dialed, when the peer was reached through a Service."""
    node: str | None = None
    """The node's name, when the address is a node's."""
    names: tuple[str, ...] = ()
    """Sorted DNS names the address was known by."""
    cidr: str | None = None
    """The ipBlock (``a.b.c.d/32``, ``…/128``) for peers written as one; ``None`` otherwise."""


@dataclass(frozen=True)
class ResolvedFlow:
    """A captured flow, seen from the captured pod, with who is on the other side."""

    direction: PolicyDirection
    """``egress`` when the captured pod is the client, ``ingress`` when it is the server."""
    flow: Flow
    """The flow as decoded."""
    peers: tuple[Peer, ...]
    """The remote side: one peer, or one per backend for a Service (sorted)."""

    @property
    def remote(self) -> IPAddress:
        """The other side's address: the server for egress, the client for ingress."""
        return self.flow.dst if self.direction is PolicyDirection.EGRESS else self.flow.src


@dataclass(frozen=True)
class _Via:
    """The Service (and the port of it) a backend was reached through."""

    service: tuple[str, str]
    service_port: int | None


def _cidr(ip: IPAddress) -> str:
    return f"{ip}/{ip.max_prefixlen}"


def _peer_key(peer: Peer) -> tuple[int, int, int, str, str, str]:
    return (
        peer.ip.version,
        int(peer.ip),
        -1 if peer.port is None else peer.port,
        peer.kind.value,
        "/".join(peer.pod or ()),
        "/".join(peer.service or ()),
    )


def _selects(selector: dict[str, str], pod: Pod) -> bool:
    labels = dict(pod.labels)
    return all(labels.get(k) == v for k, v in selector.items())


def direction_of(own: Pod, flow: Flow) -> PolicyDirection | None:
    """Tell which side of ``own`` a flow is on.

    Args:
        own: The captured pod.
        flow: A flow from its capture.

    Returns:
        ``egress`` if the pod (or its loopback) is the client, ``ingress`` if it is the server, ``None``
        when neither end is the pod (traffic of other interfaces a capture on ``any`` may see).
    """
    if flow.src in own.ips or flow.src.is_loopback:
        return PolicyDirection.EGRESS
    if flow.dst in own.ips or flow.dst.is_loopback:
        return PolicyDirection.INGRESS
    return None


class Lookups:
    """Indexes over one inventory that the resolver of every captured pod needs: built once, lazily, shared.

    Pass one to each :class:`Resolver` of the same inventory so that a thousand captured pods do not each
    rebuild them.
    """

    def __init__(self, inventory: Inventory) -> None:
        """Bind the snapshot; nothing is computed before it is needed."""
        self.inventory = inventory
        self.networks: tuple[IPv4Network | IPv6Network, ...] = tuple(ip_network(c) for c in inventory.pod_cidrs)
        self._pods_by_namespace: dict[str, tuple[Pod, ...]] | None = None
        self._host_servers: dict[tuple[str, int, Protocol], Pod] | None = None

    def in_pod_network(self, ip: IPAddress) -> bool:
        """Tell whether ``ip`` lies in one of the cluster's pod networks."""
        return any(ip in net for net in self.networks if net.version == ip.version)

    def namespace_pods(self, namespace: str) -> tuple[Pod, ...]:
        """Every pod of ``namespace``, in inventory order."""
        if self._pods_by_namespace is None:
            grouped: dict[str, list[Pod]] = {}
            for pod in self.inventory.pods:
                grouped.setdefault(pod.namespace, []).append(pod)
            self._pods_by_namespace = {ns: tuple(pods) for ns, pods in grouped.items()}
        return self._pods_by_namespace.get(namespace, ())

    def host_server(self, node: str, port: int | None, protocol: Protocol) -> Pod | None:
        """The hostNetwork pod on ``node`` that declares ``port``, to name what serves on a node IP."""
        if port is None:
            return None
        if self._host_servers is None:
            self._host_servers = {}
            for pod in self.inventory.pods:
                if pod.host_network and pod.node is not None and pod.phase not in _GONE_PHASES:
                    for cp in pod.ports:
                        self._host_servers.setdefault((pod.node, cp.port, cp.protocol), pod)
        return self._host_servers.get((node, port, protocol))


class Resolver:
    """Resolves addresses seen from one captured pod against one inventory.

    Build it once per pod and call :meth:`resolve` per address: lookups are dict hits and answers are
    memoised; the indexes that the Service selector fallback and node names need live in a
    :class:`Lookups` that the resolvers of many pods can share.
    """

    def __init__(self, inventory: Inventory, own: Pod, names: Names | None = None,
                 lookups: Lookups | None = None) -> None:
        """Bind the snapshot, the captured pod and the address -> names map.

        Args:
            inventory: The cluster snapshot.
            own: The captured pod (its IPs are "self", its node is "own node").
            names: Names for addresses, from the capture's DNS answers (and reverse DNS).
            lookups: Indexes over ``inventory``, shared with the resolvers of other pods.
        """
        self.inventory = inventory
        self.own = own
        self.names = names or {}
        self._own_ips = frozenset(own.ips)
        self._lookups = lookups if lookups is not None and lookups.inventory is inventory else Lookups(inventory)
        self._memo: dict[tuple[IPAddress, int | None, Protocol, bool], tuple[Peer, ...]] = {}

    # ----------------------------------------------------------------------------------------- public

    def resolve(
        self, ip: IPAddress, port: int | None, protocol: Protocol, *, services: bool = True
    ) -> tuple[Peer, ...]:
        """Say who ``ip`` is, as seen from the captured pod.

        Args:
            ip: The remote address.
            port: The remote port (the server port of an outbound flow); ``None`` when irrelevant.
            protocol: Transport protocol of the flow.
            services: Look the address up as a Service IP; off for the client of an inbound flow,
                which is never a virtual IP.

        Returns:
            At least one peer, sorted: one per backend for a Service, else exactly one. Loopback and
            own addresses come back as :attr:`PeerKind.LOOPBACK` / :attr:`PeerKind.SELF` peers so
            callers can count what they ignore.
        """
        key = (ip, port, protocol, services)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._resolve(ip, port, protocol, services)
        return found

    # ----------------------------------------------------------------------------------------- rules

    def _resolve(self, ip: IPAddress, port: int | None, protocol: Protocol, services: bool) -> tuple[Peer, ...]:
        if ip.is_loopback:
            return (self._peer(PeerKind.LOOPBACK, ip, port, protocol),)
        if ip in self._own_ips:
            return (self._pod_peer(self.own, ip, port, protocol),)
        pod = self.inventory.pods_by_ip.get(ip)
        if pod is not None:
            return (self._pod_peer(pod, ip, port, protocol),)
        service = self.inventory.services_by_ip.get(ip) if services else None
        if service is not None:
            return self._service(service, ip, port, protocol)
        node = self.inventory.nodes_by_ip.get(ip) or self.inventory.nodes_by_gateway.get(ip)
        if node is not None:
            return (self._node_peer(node, ip, port, protocol),)
        if self._lookups.in_pod_network(ip):
            return (self._peer(PeerKind.UNKNOWN_POD, ip, port, protocol),)
        return (self._peer(PeerKind.EXTERNAL, ip, port, protocol, cidr=_cidr(ip)),)

    def _service(self, service: Service, ip: IPAddress, port: int | None, protocol: Protocol) -> tuple[Peer, ...]:
        via = _Via(service=(service.namespace, service.name), service_port=port)
        sp: ServicePort | None = None  # None: ICMP, or no port given: every backend, no port to translate
        if port is not None:
            sp = next((p for p in service.ports if p.port == port and p.protocol == protocol), None)
            if sp is None:
                return (self._peer(PeerKind.UNKNOWN_SERVICE_PORT, ip, port, protocol, via=via),)
        found = self._from_endpoints(service, sp, protocol) or self._from_selector(service, sp, protocol)
        # A ClusterIP of one family is served by backends of that family (dual-stack Services).
        same_family = [peer for peer in found if peer.ip.version == ip.version] or found
        backends = {(peer.ip, peer.port): peer for peer in same_family}
        if not backends:
            return (self._peer(PeerKind.NO_BACKENDS, ip, port, protocol, via=via),)
        return tuple(sorted(backends.values(), key=_peer_key))

    def _from_endpoints(self, service: Service, sp: ServicePort | None, protocol: Protocol) -> list[Peer]:
        """Backends from the EndpointSlices: the endpoint port named like the Service port."""
        peers: list[Peer] = []
        for endpoints in service.endpoints:
            if sp is None:
                target: int | None = None
            else:
                # The EndpointSlice port carries the Service port's name ("" and None both mean unnamed).
                ep = next((e for e in endpoints.ports
                           if (e.name or None) == (sp.name or None) and e.protocol == sp.protocol), None)
                if ep is None:
                    continue
                target = ep.port
            target_pod = self.inventory.pods_by_name.get(endpoints.pod) if endpoints.pod else None
            peers.extend(self._backend(addr, target, protocol, service, sp, target_pod) for addr in endpoints.addresses)
        return peers

    def _from_selector(self, service: Service, sp: ServicePort | None, protocol: Protocol) -> list[Peer]:
        """Backends from the selector when there are no EndpointSlices: ``targetPort`` resolved per pod."""
        if not service.selector:
            return []  # no selector (default/kubernetes) or an empty one, which Kubernetes treats alike
        selector = dict(service.selector)
        peers: list[Peer] = []
        for pod in self._lookups.namespace_pods(service.namespace):
            if pod.phase in _GONE_PHASES or not pod.ips or not _selects(selector, pod):
                continue
            target = None if sp is None else self._target_port(sp, pod)
            if sp is not None and target is None:
                continue  # a named targetPort this pod does not declare: not a backend (as kube does)
            peers.extend(self._backend(addr, target, protocol, service, sp, pod) for addr in pod.ips)
        return peers

    @staticmethod
    def _target_port(sp: ServicePort, pod: Pod) -> int | None:
        if sp.target_port is None:
            return sp.port
        if isinstance(sp.target_port, int):
            return sp.target_port
        named = next((c for c in pod.ports if c.name == sp.target_port and c.protocol == sp.protocol), None)
        return None if named is None else named.port

    def _backend(
        self,
        addr: IPAddress,
        port: int | None,
        protocol: Protocol,
        service: Service,
        sp: ServicePort | None,
        target_pod: Pod | None,
    ) -> Peer:
        """One Service backend address: a pod, the captured pod itself, or an IP (node or outside)."""
        via = _Via(service=(service.namespace, service.name), service_port=None if sp is None else sp.port)
        if addr in self._own_ips:
            return self._pod_peer(self.own, addr, port, protocol, via)
        pod = self.inventory.pods_by_ip.get(addr)
        if pod is not None:
            return self._pod_peer(pod, addr, port, protocol, via)
        node = self.inventory.nodes_by_ip.get(addr)
        host = target_pod if target_pod is not None and target_pod.host_network else None
        if node is None and host is None and (target_pod is not None or self._lookups.in_pod_network(addr)):
            # A pod address no pod has now (the EndpointSlice names a pod that went away, or a stale snapshot).
            return self._peer(PeerKind.UNKNOWN_POD, addr, port, protocol, via=via)
        # Not a pod: written as an ipBlock on the backend port, even for a node (e.g. kube-apiserver).
        return self._peer(
            PeerKind.SERVICE_ENDPOINT_IP, addr, port, protocol, via=via, server=host,
            node=None if node is None else node.name, cidr=_cidr(addr),
        )

    def _node_peer(self, node: Node, ip: IPAddress, port: int | None, protocol: Protocol) -> Peer:
        server = self._lookups.host_server(node.name, port, protocol)
        if self.own.node is not None and node.name == self.own.node:
            return self._peer(PeerKind.OWN_NODE, ip, port, protocol, server=server, node=node.name)
        return self._peer(PeerKind.NODE, ip, port, protocol, server=server, node=node.name, cidr=_cidr(ip))

    # ----------------------------------------------------------------------------------------- helpers

    def _peer(
        self,
        kind: PeerKind,
        ip: IPAddress,
        port: int | None,
        protocol: Protocol,
        *,
        via: _Via | None = None,
        server: Pod | None = None,
        node: str | None = None,
        cidr: str | None = None,
    ) -> Peer:
        return Peer(
            kind=kind, ip=ip, port=port, protocol=protocol,
            pod=None if server is None else (server.namespace, server.name),
            workload=None if server is None else server.workload,
            service=None if via is None else via.service,
            service_port=None if via is None else via.service_port,
            node=node, names=tuple(sorted(set(self.names.get(ip, ())))), cidr=cidr,
        )

    def _pod_peer(self, pod: Pod, ip: IPAddress, port: int | None, protocol: Protocol, via: _Via | None = None) -> Peer:
        own = ip in self._own_ips or (pod.namespace, pod.name) == (self.own.namespace, self.own.name)
        return self._peer(PeerKind.SELF if own else PeerKind.POD, ip, port, protocol, via=via, server=pod)


def resolve(
    inventory: Inventory,
    own: Pod,
    ip: IPAddress,
    port: int | None,
    protocol: Protocol,
    names: Names | None = None,
) -> tuple[Peer, ...]:
    """Say who ``ip`` (on ``port``) is, as seen from the captured pod ``own``.

    For many addresses, build one :class:`Resolver` and reuse it instead.

    Args:
        inventory: The cluster snapshot.
        own: The captured pod.
        ip: The remote address.
        port: The remote server port (translated through Services); ``None`` when irrelevant.
        protocol: Transport protocol.
        names: Address -> names from the capture's DNS answers (and reverse DNS).

    Returns:
        At least one peer, sorted; one per backend when ``ip`` is a Service IP.
    """
    return Resolver(inventory, own, names).resolve(ip, port, protocol)


def resolve_flows(
    inventory: Inventory,
    own: Pod,
    flows: Iterable[Flow],
    names: Names | None = None,
    lookups: Lookups | None = None,
) -> list[ResolvedFlow]:
    """Resolve the remote side of every flow of the captured pod ``own``.

    Outbound flows (the pod is the client) resolve the server and its port, through Services. Inbound
    flows resolve the client without a port: an ingress rule names the pod's own server port,
    which stays in :attr:`ResolvedFlow.flow`. Flows that involve neither the pod's IPs nor loopback
    are left out (see :func:`direction_of`).

    Args:
        inventory: The cluster snapshot.
        own: The captured pod.
        flows: Its flows, as decoded from its capture.
        names: Address -> names from the capture's DNS answers (and reverse DNS).
        lookups: Indexes over ``inventory`` shared with the resolutions of other pods.

    Returns:
        The resolved flows, egress before ingress, each in protocol, server, port, client order.
    """
    resolver = Resolver(inventory, own, names, lookups)
    resolved: list[ResolvedFlow] = []
    for flow in flows:
        direction = direction_of(own, flow)
        if direction is PolicyDirection.EGRESS:
            peers = resolver.resolve(flow.dst, flow.dst_port, flow.protocol)
        elif direction is PolicyDirection.INGRESS:
            peers = resolver.resolve(flow.src, None, flow.protocol, services=False)
        else:
            continue
        resolved.append(ResolvedFlow(direction=direction, flow=flow, peers=peers))
    resolved.sort(key=_flow_key)
    return resolved


def _flow_key(item: ResolvedFlow) -> tuple[str, tuple[str, int, int, int, int, int, str]]:
    return (item.direction.value, item.flow.order())
