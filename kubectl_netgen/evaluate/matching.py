"""What the tiers of the engine share: endpoints, the question one side of a flow asks, and its answer.

A flow has up to two sides: the egress side of its source and the ingress side of its destination,
each asked only when that end is a pod of the inventory. A :class:`Query` is one side; each tier of
the pipeline (:class:`Stage`) answers it with a :class:`Decision` or passes it on with ``None``.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import NamedTuple, Protocol, TypeVar

from kubectl_netgen.evaluate.admin import Action
from kubectl_netgen.evaluate.policies import PortSpec
from kubectl_netgen.model import ContainerPort, Inventory, IPAddress, Labels, Pod, PolicyDirection
from kubectl_netgen.model import Protocol as Transport

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""The label the API server sets on every namespace to its name (namespaceSelectors often use it)."""


K = TypeVar("K")
V = TypeVar("V")
_CACHE_LIMIT = 1 << 18


class BoundedCache(dict[K, V]):
    """A memo that starts over when full, so a million distinct flows cannot exhaust memory.

    A dict (lookups stay C-speed ``get`` calls on the hot path); :meth:`store` adds entries.
    """

    def __init__(self, limit: int = _CACHE_LIMIT) -> None:
        """Keep at most ``limit`` entries."""
        super().__init__()
        self.limit = limit

    def store(self, key: K, value: V) -> V:
        """Keep ``value`` for ``key`` (forgetting everything first if full) and return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


@dataclass(frozen=True)
class Endpoint:
    """One end of a flow: an address and, when the inventory knows it, the pod or node behind it."""

    ip: IPAddress
    pod: Pod | None = None
    """The pod with this IP; never a hostNetwork pod (its address is its node's)."""
    node: str | None = None
    """The node this address belongs to (a node address, or a hostNetwork pod's); ``None`` for pods."""
    serial: int = field(default=0, compare=False, repr=False)
    """A number unique to this endpoint within one :class:`Cluster`: the engine's cache keys use it."""
    identity: int = field(default=0, compare=False, repr=False)
    """For a pod, a number shared by the pods of the same namespace and labels (what selectors see); else 0."""
    port_set: int = field(default=0, compare=False, repr=False)
    """For a pod, a number shared by the pods with the same container ports (what named ports see); else 0."""

    def __str__(self) -> str:
        """``namespace/pod``, ``node NAME (IP)`` or the address."""
        if self.pod is not None:
            return f"{self.pod.namespace}/{self.pod.name}"
        return f"node {self.node} ({self.ip})" if self.node is not None else str(self.ip)


class Cluster:
    """The inventory as the engine reads it: who is behind an address, and the labels of namespaces."""

    def __init__(self, inventory: Inventory) -> None:
        """Index ``inventory`` (node and hostNetwork pod addresses, namespace labels)."""
        self.inventory = inventory
        self._node_of: dict[IPAddress, str] = {}
        for pod in inventory.pods:
            if pod.host_network and pod.node is not None:
                self._node_of.update(dict.fromkeys(pod.ips, pod.node))
        self._node_of.update({ip: node.name for ip, node in inventory.nodes_by_gateway.items()})
        self._node_of.update({ip: node.name for ip, node in inventory.nodes_by_ip.items()})
        self._labels = {ns.name: {**dict(ns.labels), NAMESPACE_NAME_LABEL: ns.name} for ns in inventory.namespaces}
        # By integer value, one table per family: hashing an ipaddress object is slow (it hashes a hex string).
        self._v4: BoundedCache[int, Endpoint] = BoundedCache()
        self._v6: BoundedCache[int, Endpoint] = BoundedCache()
        self._serials = itertools.count(1)
        self._identities: dict[tuple[str, Labels], int] = {}
        self._port_sets: dict[tuple[ContainerPort, ...], int] = {}

    def endpoint(self, ip: IPAddress) -> Endpoint:
        """The endpoint at ``ip``: a pod, a node (or hostNetwork pod), or an address outside both."""
        table = self._v4 if isinstance(ip, IPv4Address) else self._v6
        number = int(ip)
        found = table.get(number)
        if found is None:
            pod = self.inventory.pods_by_ip.get(ip)
            if pod is None:
                found = Endpoint(ip, None, self._node_of.get(ip), next(self._serials))
            else:
                identity = self._identities.setdefault((pod.namespace, pod.labels), len(self._identities) + 1)
                port_set = self._port_sets.setdefault(pod.ports, len(self._port_sets) + 1)
                found = Endpoint(ip, pod, None, next(self._serials), identity, port_set)
            table.store(number, found)
        return found

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """A namespace's labels; one missing from the inventory still has its name label, as the API server sets it."""
        labels = self._labels.get(namespace)
        if labels is None:
            labels = self._labels[namespace] = {NAMESPACE_NAME_LABEL: namespace}
        return labels


class Tier(str, enum.Enum):
    """The stage of the pipeline that decided a side, in the order they are consulted."""

    SELF = "self"
    """Traffic between a pod and itself: never blocked."""
    NODE = "node"
    """Traffic between a pod and the node it runs on: always allowed."""
    ADMIN = "AdminNetworkPolicy"
    NETWORK_POLICY = "NetworkPolicy"
    BASELINE = "BaselineAdminNetworkPolicy"
    DEFAULT = "default"
    """Nothing decided: allowed."""


@dataclass(frozen=True)
class RuleRef:
    """A policy rule that decided a side, or (``index`` ``None``) a policy that isolates a pod."""

    namespace: str
    """The policy's namespace; ``""`` for the cluster-scoped tiered policies."""
    name: str
    direction: PolicyDirection
    index: int | None = None
    """Position in the policy's ``ingress``/``egress`` list."""
    kind: str = "NetworkPolicy"
    rule_name: str = ""
    """The ``name`` of a tiered policy's rule."""

    def __str__(self) -> str:
        """``shop/db ingress[0]``, ``AdminNetworkPolicy base egress[2] (deny-dns)``, or just the policy."""
        policy = f"{self.namespace}/{self.name}" if self.kind == "NetworkPolicy" else f"{self.kind} {self.name}"
        if self.index is None:
            return policy
        return f"{policy} {self.direction.value}[{self.index}]" + (f" ({self.rule_name})" if self.rule_name else "")


class Query(NamedTuple):
    """One side of a flow: may ``pod`` send (egress) or receive (ingress) this traffic?"""

    direction: PolicyDirection
    pod: Pod
    local: Endpoint
    """The pod's end of the flow (the address the pod used)."""
    remote: Endpoint
    """The other end: the destination for egress, the source for ingress."""
    protocol: Transport
    port: int
    """Destination port; -1 for protocols without ports (ICMP)."""
    side: int
    """Cache key of (local endpoint, direction): the policies that apply depend on nothing else."""


class Decision(NamedTuple):
    """A tier's answer for one side."""

    tier: Tier
    action: Action
    """Allow, Deny, or Pass (go on to the next tier)."""
    refs: tuple[RuleRef, ...] = ()
    """The rules that matched; for a NetworkPolicy denial, the policies that isolate the pod."""


class Stage(Protocol):
    """One tier of the pipeline."""

    def decide(self, query: Query) -> Decision | None:
        """Allow, deny or pass ``query``; ``None`` when this tier has nothing to say about it."""


@dataclass(frozen=True)
class Ports:
    """A rule's ``ports``, compiled: numeric ranges, and named ports resolved per destination pod."""

    ranges: tuple[tuple[Transport, int, int], ...] = ()
    """(protocol, first, last); a protocol without a port is (protocol, -1, 65535), so portless flows match too."""
    names: tuple[tuple[str, Transport | None], ...] = ()
    """(name, protocol); ``None`` = the named port's own protocol (AdminNetworkPolicy ``namedPort``)."""

    @classmethod
    def of(cls, specs: tuple[PortSpec, ...] | None) -> Ports | None:
        """Compile port specs; ``None`` (every port) stays ``None``."""
        if specs is None:
            return None
        ranges: list[tuple[Transport, int, int]] = []
        names: list[tuple[str, Transport | None]] = []
        for spec in specs:
            if isinstance(spec.port, str):
                names.append((spec.port, spec.protocol))
            elif spec.protocol is not None:
                ranges.append((spec.protocol, -1, 65535) if spec.port is None
                              else (spec.protocol, spec.port, spec.end_port or spec.port))
        return cls(tuple(ranges), tuple(names))

    def admit(self, protocol: Transport, port: int, destination: Pod | None) -> bool:
        """Tell whether traffic to ``port`` of ``destination`` is one of these ports.

        A named port is a container port of the destination pod with that name (and protocol);
        a destination that is not a pod has no named ports.
        """
        for p, low, high in self.ranges:
            if p is protocol and low <= port <= high:
                return True
        if self.names and destination is not None:
            for cp in destination.ports:
                if cp.port == port and cp.protocol is protocol and any(
                        name == cp.name and p in (None, protocol) for name, p in self.names):
                    return True
        return False
