"""From the flows of many captured pods to what each workload's policy must allow.

Pure: traffic tables and an inventory in, per-workload allowances (:data:`~kubectl_netgen.synth.Allowed`)
out. This is the hot path of ``generate`` on large captures, so it works on the packed addresses the
decoder produced and resolves each distinct remote end once for all pods:

* A pod's flows are folded (:func:`kubectl_netgen.flows.fold`) and each one is reduced to what a rule
  needs: its direction seen from the pod, the remote address, the protocol and the server port.
* What a remote end means (its peers, as :mod:`kubectl_netgen.identity` resolves them, turned into
  policy peers) is computed once and reused by every pod it is valid for. An answer depends on the pod
  only through the pod's own addresses (``self``) and its node (``own node``): it is reused unless it
  involves one of them.
* External addresses are collected without names; :meth:`Observer.allowed` names them at the end, when
  the DNS answers of every capture (and reverse DNS) are known.
* Each allowance keeps the address of one remote end that asked for it, and each workload one of its
  captured pods: :meth:`Observer.samples` gives back one observed flow per allowance, which the
  generated policies must allow (``generate`` checks them with the evaluation engine).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address

from kubectl_netgen import flows as flowfold
from kubectl_netgen.identity import Lookups, Peer, PeerKind, Resolver
from kubectl_netgen.model import Inventory, IPAddress, Pod, PolicyDirection, Protocol, Workload
from kubectl_netgen.scope import selects_something
from kubectl_netgen.sockets import SocketFlows
from kubectl_netgen.synth import Allowed, PolicyPeer

_LOOPBACK6 = bytes(15) + b"\x01"


def _loopback(packed: bytes) -> bool:
    return packed[0] == 127 if len(packed) == 4 else packed == _LOOPBACK6


def known_connections(sockets: SocketFlows | None) -> frozenset[tuple[int, bytes]]:
    """(IP protocol, packed client -> server key) of each connection in a pod's socket tables, as folding wants."""
    if sockets is None:
        return frozenset()
    return frozenset((flowfold.IP_PROTOCOLS[protocol], flowfold.pack(client.packed, server.packed, cport, sport))
                     for protocol, client, cport, server, sport in sockets.connections
                     if client.version == server.version)


def listening_addresses(own: Pod, sockets: SocketFlows | None) -> frozenset[tuple[bytes, int, int]]:
    """(packed address, IP protocol, port) on which ``own`` listens, from its socket tables, as folding takes them."""
    if sockets is None:
        return frozenset()
    return frozenset((ip.packed, flowfold.IP_PROTOCOLS[protocol], port)
                     for protocol, port in sockets.listening for ip in own.ips)


@dataclass(frozen=True)
class Unresolved:
    """A remote end that cannot become a rule (a warning): what was seen and what the address is."""

    pod: Pod
    """The captured pod that saw it."""
    direction: PolicyDirection
    protocol: Protocol
    peer: Peer
    """The peer, of a :attr:`PeerKind.warning` kind, or a pod whose labels cannot select it (see ``unlabelled``)."""
    flows: int = 1
    """How many of the pod's flows it stands for."""

    @property
    def unlabelled(self) -> bool:
        """A pod peer whose workload's pods carry no stable label: no selector can name it without widening."""
        return self.peer.kind is PeerKind.POD


@dataclass(frozen=True)
class _Outcome:
    """What one remote end (direction, address, protocol, port) means for a policy."""

    parts: tuple[int, ...]
    """Indices into :attr:`Observer._parts`: the allowances it adds."""
    warnings: tuple[Peer, ...]
    """Peers that cannot become a rule."""
    addresses: frozenset[bytes]
    """Packed addresses of every peer: the answer is only valid for pods that own none of them."""
    nodes: frozenset[str]
    """Nodes among the peers: the answer is only valid for pods on other nodes."""
    pod_specific: bool
    """It involved the resolving pod itself or its node: never reused for another pod."""
    from_own_node: bool = False
    """An inbound flow from the pod's own node: no rule, but a public Service's port reached so (SNAT) is noted."""


_Key = tuple[bool, bytes, int, int | None]
"""(egress, packed remote address, IP protocol, server port or None)."""

Sample = tuple[Workload, Pod, PolicyDirection, IPAddress, Protocol, int]
"""An observed flow standing for one allowance: (workload, one of its captured pods, direction, the remote
end's address (a backend pod's, a node's, an external one), protocol, port (the server's, after Service
translation))."""


@dataclass
class Observer:
    """Accumulates, pod capture by pod capture, what every captured workload's policy must allow.

    Args:
        inventory: The cluster snapshot the captures are resolved against.
    """

    inventory: Inventory
    flows: int = 0
    """Flows read, over every pod added."""
    ignored: int = 0
    """Flows that need no rule: loopback, the pod itself, its own node (kubelet probes), ICMP."""
    unresolved: list[Unresolved] = field(default_factory=list)
    """Remote ends that cannot become rules, one entry per pod, direction, protocol and peer."""
    _lookups: Lookups = field(init=False)
    _outcomes: dict[_Key, _Outcome] = field(default_factory=dict)
    _parts: list[Allowed] = field(default_factory=list)
    _remotes: list[IPAddress] = field(default_factory=list)
    """Part index -> the address of the first remote end that asked for it."""
    _pods: dict[Workload, Pod] = field(default_factory=dict)
    """Workload -> its first captured pod (with an address, if any has one)."""
    _part_ids: dict[Allowed, int] = field(default_factory=dict)
    _peers: dict[PolicyPeer, PolicyPeer] = field(default_factory=dict)
    """One instance of each distinct peer: synthesis then compares peers by identity, not field by field."""
    _external: dict[int, IPAddress] = field(default_factory=dict)
    """Part index -> the external address its ipBlock peer stands for (named at the end)."""
    _workloads: dict[Workload, set[int]] = field(default_factory=dict)
    node_ingress: dict[Workload, set[tuple[Protocol, int]]] = field(default_factory=dict)
    """Per workload, (protocol, port) its pods were reached on from their own node (no rule: the spec allows
    it; but a public Service's traffic arrives so after SNAT, and the next may come through another node)."""

    def __post_init__(self) -> None:
        """Build the shared lookup indexes."""
        self._lookups = Lookups(self.inventory)

    def add(self, own: Pod, table: flowfold.TrafficTable, sockets: SocketFlows | None = None) -> None:
        """Add the flows of one captured pod.

        Args:
            own: The captured pod (its workload gets the allowances).
            table: What its capture decoded into.
            sockets: What its socket tables held, if they were recorded: their connections are flows too
                (pools opened before the capture), and their listening ports orient the captured flows
                whose opening was not seen.
        """
        keys: Collection[flowfold.FlowKey] = flowfold.fold(table, listening_addresses(own, sockets),
                                                           known_connections(sockets))
        if sockets is not None and sockets.flows:
            keys = {**dict.fromkeys(keys), **dict.fromkeys(
                (flowfold.IP_PROTOCOLS[f.protocol], f.src.packed, f.dst.packed, f.dst_port, f.kind)
                for f in sockets.flows)}
        self._add_keys(own, keys)

    def _add_keys(self, own: Pod, keys: Collection[flowfold.FlowKey]) -> None:
        workload = self.inventory.workloads_by_ref[own.workload]
        parts = self._workloads.setdefault(workload, set())
        if workload not in self._pods or (own.ips and not self._pods[workload].ips):
            self._pods[workload] = own  # the first with an address (samples need one)
        mine = frozenset(ip.packed for ip in own.ips)
        node = own.node
        resolver: Resolver | None = None
        warned: dict[tuple[bool, int, Peer], int] = {}
        outcomes = self._outcomes
        self.flows += len(keys)
        for proto, client, server, port, _ in keys:
            if client in mine or _loopback(client):
                key: _Key = (True, server, proto, port)
            elif server in mine or _loopback(server):
                key = (False, client, proto, port)
            else:
                continue  # neither end is the pod: traffic of another interface a capture on "any" saw
            outcome = outcomes.get(key)
            if outcome is None or not outcome.addresses.isdisjoint(mine) or node in outcome.nodes:
                if resolver is None:
                    resolver = Resolver(self.inventory, own, lookups=self._lookups)
                outcome = self._resolve(resolver, key, workload)
                if not outcome.pod_specific:
                    outcomes[key] = outcome
            if outcome.from_own_node and port is not None:
                self.node_ingress.setdefault(workload, set()).add((flowfold.PROTOCOLS[proto], port))
            if outcome.parts:
                parts.update(outcome.parts)
            elif not outcome.warnings:
                self.ignored += 1
            for peer in outcome.warnings:
                at = (key[0], proto, peer)
                warned[at] = warned.get(at, 0) + 1
        for (egress, proto, peer), count in warned.items():
            direction = PolicyDirection.EGRESS if egress else PolicyDirection.INGRESS
            self.unresolved.append(Unresolved(own, direction, flowfold.PROTOCOLS[proto], peer, count))

    def _resolve(self, resolver: Resolver, key: _Key, workload: Workload) -> _Outcome:
        egress, remote, proto, port = key
        protocol = flowfold.PROTOCOLS[proto]
        address = ip_address(remote)
        if egress:
            peers = resolver.resolve(address, port, protocol)
        else:
            peers = resolver.resolve(address, None, protocol, services=False)
        direction = PolicyDirection.EGRESS if egress else PolicyDirection.INGRESS
        parts: dict[int, None] = {}
        warnings: list[Peer] = []
        specific = own_node = False
        for peer in peers:
            if peer.kind in (PeerKind.SELF, PeerKind.OWN_NODE):
                specific = True
            if peer.kind is PeerKind.OWN_NODE and not egress:
                own_node = True
            if peer.kind is PeerKind.SELF and egress and peer.service is not None and peer.port is not None:
                # Hairpin: the pod reached itself through its Service; kube-proxy may pick another replica next.
                for part in self._hairpin(workload, peer, protocol):
                    parts[part] = None
                continue
            if peer.kind.ignored or peer.kind is PeerKind.OWN_NODE or port is None:
                continue
            if peer.kind.warning:
                warnings.append(peer)
                continue
            policy_peer = self._policy_peer(peer)
            rule_port = peer.port if egress else port
            if policy_peer is None or rule_port is None:
                if peer.kind is PeerKind.POD and rule_port is not None:
                    warnings.append(peer)  # a pod no label selects: a warning, never podSelector: {}
                continue
            policy_peer = self._peers.setdefault(policy_peer, policy_peer)
            parts[self._part((direction, policy_peer, protocol, rule_port), peer)] = None
        return _Outcome(
            parts=tuple(parts), warnings=tuple(warnings), addresses=frozenset(p.ip.packed for p in peers),
            nodes=frozenset(p.node for p in peers if p.node is not None), pod_specific=specific,
            from_own_node=own_node,
        )

    def _hairpin(self, workload: Workload, peer: Peer, protocol: Protocol) -> list[int]:
        """Egress to and ingress from the pod's own workload on the backend port: the next replica's view."""
        if not selects_something(workload):
            return []
        assert peer.port is not None
        own = self._peers.setdefault(PolicyPeer(workload.ref.namespace, workload.selector),
                                     PolicyPeer(workload.ref.namespace, workload.selector))
        return [self._part((direction, own, protocol, peer.port), peer)
                for direction in (PolicyDirection.EGRESS, PolicyDirection.INGRESS)]

    def _part(self, allowed: Allowed, peer: Peer) -> int:
        index = self._part_ids.get(allowed)
        if index is None:
            index = self._part_ids[allowed] = len(self._parts)
            self._parts.append(allowed)
            self._remotes.append(peer.ip)
            if peer.kind is PeerKind.EXTERNAL:
                self._external[index] = peer.ip
        return index

    def _policy_peer(self, peer: Peer) -> PolicyPeer | None:
        if peer.kind is PeerKind.POD and peer.workload is not None:
            workload = self.inventory.workloads_by_ref.get(peer.workload)
            if workload is not None and selects_something(workload):
                return PolicyPeer(peer.workload.namespace, workload.selector)
            return None
        if peer.cidr is None:
            return None
        if peer.kind is PeerKind.NODE:
            return PolicyPeer(cidr=peer.cidr, names=(f"node {peer.node}",))
        if peer.kind is PeerKind.SERVICE_ENDPOINT_IP and peer.service is not None:
            return PolicyPeer(cidr=peer.cidr, names=(f"endpoint of Service {peer.service[0]}/{peer.service[1]}",))
        return PolicyPeer(cidr=peer.cidr)  # external: named in allowed(), once every capture's DNS is known

    @property
    def workloads(self) -> list[Workload]:
        """The captured workloads, in the order their first pod was added."""
        return list(self._workloads)

    @property
    def external(self) -> list[IPAddress]:
        """The external addresses that policies will name as ipBlocks, sorted."""
        return sorted(set(self._external.values()), key=lambda ip: (ip.version, int(ip)))

    @property
    def allowances(self) -> int:
        """How many allowances the workloads' policies hold (one sample each)."""
        return sum(len(ids) for ids in self._workloads.values())

    def samples(self) -> Iterator[Sample]:
        """One observed flow per allowance of every workload, seen from a captured pod of the workload.

        The pod is the workload's first captured one, the remote end the first that asked for the
        allowance (possibly seen by another pod of the workload): policies that allow the allowances
        allow these flows.
        """
        parts, remotes = self._parts, self._remotes
        for workload, ids in self._workloads.items():
            pod = self._pods[workload]
            for index in sorted(ids):
                direction, _, protocol, port = parts[index]
                yield workload, pod, direction, remotes[index], protocol, port

    def allowed(self, names: Mapping[IPAddress, Sequence[str]] | None = None) -> dict[Workload, list[Allowed]]:
        """What each captured workload's policy must allow, external peers named by ``names``.

        Args:
            names: Address -> names (the captures' DNS answers, reverse DNS).

        Returns:
            Per captured workload (in the order they were added), its allowances.
        """
        parts = list(self._parts)
        named: dict[IPAddress, PolicyPeer] = {}  # one peer object per address: its hash is computed once
        for index, ip in self._external.items():
            known = (names or {}).get(ip)
            if known:
                direction, peer, protocol, port = parts[index]
                if ip not in named:
                    named[ip] = PolicyPeer(cidr=peer.cidr, names=tuple(sorted(set(known))))
                parts[index] = (direction, named[ip], protocol, port)
        return {workload: [parts[i] for i in sorted(ids)] for workload, ids in self._workloads.items()}
