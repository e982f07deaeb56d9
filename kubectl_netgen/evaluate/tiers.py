"""The tiers of the pipeline, in the order an implementation consults them for one side of a flow.

1. :class:`LocalTraffic`: a pod's traffic with itself or its own node is always allowed.
2. :class:`TieredRules` for AdminNetworkPolicies: the first matching rule, by priority then position,
   allows, denies, or passes to the next tiers.
3. :class:`NetworkPolicies`: a pod selected by a policy of its namespace for the direction is
   isolated, and then only the union of those policies' rules allows anything.
4. :class:`TieredRules` for the BaselineAdminNetworkPolicy: consulted only for a side no
   NetworkPolicy isolates (the tier before it decides every isolated side).

Work is shared as far as the semantics allow, because verifying a capture asks about a million
flows. Which policies apply to a pod depends only on its namespace and labels: pods that agree on
them form a *group*. Which rules match the other end depends only on the group, that end's
namespace and labels (its *identity*) and which address peers (ipBlock, networks, nodes) contain
its address. The decision adds the protocol, the port and, for named ports, the destination's
container ports. Each of these is computed once and kept.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kubectl_netgen.evaluate.admin import Action, AdminNetworkPolicy, AdminPeer, BaselineAdminNetworkPolicy
from kubectl_netgen.evaluate.matching import BoundedCache, Cluster, Decision, Endpoint, Ports, Query, RuleRef, Tier
from kubectl_netgen.evaluate.policies import NetworkPolicy, PolicyPeer
from kubectl_netgen.model import Labels, Pod, PolicyDirection
from kubectl_netgen.model import Protocol as Transport


class LocalTraffic:
    """Never blocked: a pod talking to itself, and a pod and the node it runs on (kubelet probes)."""

    def decide(self, query: Query) -> Decision | None:
        """Allow traffic with the pod itself or its own node; pass everything else."""
        remote, pod = query.remote, query.pod
        if remote.pod is not None and (remote.pod is pod or (remote.pod.name, remote.pod.namespace) == (
                pod.name, pod.namespace)):
            return _SELF
        if remote.node is not None and remote.node == pod.node:
            return _NODE
        return None


_SELF = Decision(Tier.SELF, Action.ALLOW)
_NODE = Decision(Tier.NODE, Action.ALLOW)
_UNKNOWN = Decision(Tier.DEFAULT, Action.PASS)
"""Marks a decision not computed yet (a cached ``None`` means the tier has nothing to say)."""
P = TypeVar("P", PolicyPeer, AdminPeer)


@dataclass(frozen=True)
class _Rule(Generic[P]):
    """A rule ready to match: its peers by kind, its compiled ports, and the decision it makes alone."""

    ref: RuleRef
    namespace: str
    """The policy's namespace (where a NetworkPolicy peer's podSelector alone looks)."""
    every_peer: bool
    """No peers given: every remote end matches."""
    by_labels: tuple[P, ...]
    """The peers that select pods by labels (their answer is the same for pods of one identity)."""
    by_address: tuple[P, ...]
    """The peers that match addresses (ipBlock, networks, nodes)."""
    ports: Ports | None
    decision: Decision


@dataclass(frozen=True)
class _Group(Generic[P]):
    """The rules that apply to a set of look-alike pods (same namespace and labels) for one direction."""

    serial: int
    rules: tuple[_Rule[P], ...]
    """Every rule of the applying policies, in evaluation order."""
    denial: Decision | None
    """NetworkPolicies: the denial by the isolating policies, ``None`` when none isolates; tiered: ``None``."""
    inert: bool
    """The tier has nothing to say about this group (no isolating NetworkPolicy; no tiered rule)."""
    addressed: bool = field(init=False)
    """Some rule has an address peer: which rules match then depends on the remote address."""
    named: bool = field(init=False)
    """Some rule has a named port: the decision then depends on the destination's container ports."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "addressed", any(r.by_address for r in self.rules))
        object.__setattr__(self, "named", any(r.ports is not None and r.ports.names for r in self.rules))


class _RuleTier(Generic[P]):
    """What both rule tiers share: groups, and decisions cached per group, remote identity, port."""

    tier: Tier

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._groups: dict[tuple[str, Labels, PolicyDirection], _Group[P]] = {}
        self._sides: BoundedCache[int, _Group[P]] = BoundedCache()
        self._masks: BoundedCache[int, int] = BoundedCache()
        self._matches: BoundedCache[tuple[int, int, int], tuple[_Rule[P], ...]] = BoundedCache()
        self._decisions: BoundedCache[tuple[int, ...], Decision | None] = BoundedCache()
        self._serials = itertools.count(1)

    def decide(self, query: Query) -> Decision | None:
        """This tier's decision for one side of a flow (``None``: nothing to say, go on)."""
        group = self._group(query)
        if group.inert:
            return None
        remote = query.remote
        mask = self._mask(group, remote) if group.addressed else 0
        ingress = query.direction is PolicyDirection.INGRESS
        port_set = (query.local.port_set if ingress else remote.port_set) if group.named else 0
        key = (group.serial, remote.identity, mask, id(query.protocol), query.port, port_set)
        decision = self._decisions.get(key, _UNKNOWN)
        if decision is _UNKNOWN:
            rules = self._matching(group, remote, mask)
            decision = self._decisions.store(key, self._decide(group, rules, query.protocol, query.port,
                                                               query.pod if ingress else remote.pod))
        return decision

    def _group(self, query: Query) -> _Group[P]:
        group = self._sides.get(query.side)
        if group is None:
            pod, direction = query.pod, query.direction
            key = (pod.namespace, pod.labels, direction)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = self._build(next(self._serials), pod.namespace, dict(pod.labels),
                                                        direction)
            self._sides.store(query.side, group)
        return group

    def _mask(self, group: _Group[P], remote: Endpoint) -> int:
        """Bit ``i`` set when an address peer of rule ``i`` matches ``remote``."""
        key = (group.serial << 64) | remote.serial
        mask = self._masks.get(key)
        if mask is None:
            mask = self._masks.store(key, sum(1 << i for i, r in enumerate(group.rules)
                                              if any(self._address(p, remote) for p in r.by_address)))
        return mask

    def _matching(self, group: _Group[P], remote: Endpoint, mask: int) -> tuple[_Rule[P], ...]:
        """The rules of ``group`` with a peer matching ``remote`` (whose address peers ``mask`` gives)."""
        key = (group.serial, remote.identity, mask)
        rules = self._matches.get(key)
        if rules is None:
            pod = remote.pod
            labels = dict(pod.labels) if pod is not None else {}
            namespace_labels = self._cluster.namespace_labels(pod.namespace) if pod is not None else {}
            rules = self._matches.store(key, tuple(
                r for i, r in enumerate(group.rules)
                if r.every_peer or mask >> i & 1
                or (pod is not None and any(self._selects(r.namespace, p, pod, labels, namespace_labels)
                                            for p in r.by_labels))))
        return rules

    def _rule(self, ref: RuleRef, namespace: str, peers: tuple[P, ...] | None, ports: Ports | None,
              decision: Decision) -> _Rule[P]:
        return _Rule(ref, namespace, peers is None, tuple(p for p in peers or () if not self._by_address(p)),
                     tuple(p for p in peers or () if self._by_address(p)), ports, decision)

    def _build(self, serial: int, namespace: str, labels: dict[str, str], direction: PolicyDirection) -> _Group[P]:
        """The group of pods with these namespace and labels."""
        raise NotImplementedError

    def _decide(self, group: _Group[P], rules: tuple[_Rule[P], ...], protocol: Transport, port: int,
                destination: Pod | None) -> Decision | None:
        """The decision, given the rules whose peers match."""
        raise NotImplementedError

    def _by_address(self, peer: P) -> bool:
        """Whether ``peer`` matches addresses rather than selecting pods by labels."""
        raise NotImplementedError

    def _address(self, peer: P, remote: Endpoint) -> bool:
        """Whether an address peer matches ``remote``."""
        raise NotImplementedError

    def _selects(self, namespace: str, peer: P, pod: Pod, labels: dict[str, str],
                 namespace_labels: dict[str, str]) -> bool:
        """Whether a selecting peer of a policy in ``namespace`` selects ``pod`` (with these labels)."""
        raise NotImplementedError


class NetworkPolicies(_RuleTier[PolicyPeer]):
    """The NetworkPolicy tier: isolation by any selecting policy, then the union of their rules."""

    tier = Tier.NETWORK_POLICY

    def __init__(self, policies: Iterable[NetworkPolicy], cluster: Cluster) -> None:
        """Group ``policies`` by namespace (a pod is only ever selected by policies of its own)."""
        super().__init__(cluster)
        self._by_namespace: dict[str, list[NetworkPolicy]] = defaultdict(list)
        for policy in sorted(policies, key=lambda p: (p.namespace, p.name)):
            self._by_namespace[policy.namespace].append(policy)

    def isolated(self, query: Query) -> bool:
        """Whether a NetworkPolicy selects the query's pod for its direction."""
        return self._group(query).denial is not None

    def _decide(self, group: _Group[PolicyPeer], rules: tuple[_Rule[PolicyPeer], ...], protocol: Transport,
                port: int, destination: Pod | None) -> Decision | None:
        """Allowed by every rule that admits the port (policies add up); denied by isolation if none does."""
        allowing = [r for r in rules if r.ports is None or r.ports.admit(protocol, port, destination)]
        if not allowing:
            return group.denial
        if len(allowing) == 1:
            return allowing[0].decision
        return Decision(self.tier, Action.ALLOW, tuple(r.ref for r in allowing))

    def _build(self, serial: int, namespace: str, labels: dict[str, str],
               direction: PolicyDirection) -> _Group[PolicyPeer]:
        isolating = [p for p in self._by_namespace.get(namespace, ())
                     if direction in p.policy_types and p.pod_selector.matches(labels)]
        rules = []
        for policy in isolating:
            for index, rule in enumerate(policy.rules(direction)):
                ref = RuleRef(policy.namespace, policy.name, direction, index)
                rules.append(self._rule(ref, policy.namespace, rule.peers, Ports.of(rule.ports),
                                        Decision(self.tier, Action.ALLOW, (ref,))))
        denial = Decision(self.tier, Action.DENY, tuple(RuleRef(p.namespace, p.name, direction) for p in isolating))
        return _Group(serial, tuple(rules), denial if isolating else None, inert=not isolating)

    def _by_address(self, peer: PolicyPeer) -> bool:
        return peer.ip_block is not None

    def _address(self, peer: PolicyPeer, remote: Endpoint) -> bool:
        # ipBlocks match any address, pod addresses included, as the upstream conformance tests expect.
        block = peer.ip_block
        return block is not None and remote.ip in block.cidr and not any(remote.ip in hole for hole in block.except_)

    def _selects(self, namespace: str, peer: PolicyPeer, pod: Pod, labels: dict[str, str],
                 namespace_labels: dict[str, str]) -> bool:
        if peer.namespace_selector is None:
            if pod.namespace != namespace:
                return False
        elif not peer.namespace_selector.matches(namespace_labels):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(labels)


class TieredRules(_RuleTier[AdminPeer]):
    """An ordered list of tiered policies (AdminNetworkPolicies by priority, or the baseline): first match decides."""

    def __init__(self, tier: Tier, policies: Iterable[AdminNetworkPolicy | BaselineAdminNetworkPolicy],
                 cluster: Cluster) -> None:
        """Keep ``policies`` in evaluation order (priority, then name for equal priorities, as implementations do)."""
        super().__init__(cluster)
        self.tier = tier
        self._policies = sorted(policies, key=lambda p: (getattr(p, "priority", 0), p.name))

    def _decide(self, group: _Group[AdminPeer], rules: tuple[_Rule[AdminPeer], ...], protocol: Transport,
                port: int, destination: Pod | None) -> Decision | None:
        """The action of the first rule that admits the port; ``None`` when none does."""
        for rule in rules:
            if rule.ports is None or rule.ports.admit(protocol, port, destination):
                return rule.decision
        return None

    def _build(self, serial: int, namespace: str, labels: dict[str, str],
               direction: PolicyDirection) -> _Group[AdminPeer]:
        namespace_labels = self._cluster.namespace_labels(namespace)
        rules = []
        for policy in self._policies:
            subject = policy.subject
            if not (subject.namespace_selector.matches(namespace_labels) and subject.pod_selector.matches(labels)):
                continue
            for index, rule in enumerate(policy.ingress if direction is PolicyDirection.INGRESS else policy.egress):
                ref = RuleRef("", policy.name, direction, index, self.tier.value, rule.name)
                rules.append(self._rule(ref, "", rule.peers, Ports.of(rule.ports),
                                        Decision(self.tier, rule.action, (ref,))))
        return _Group(serial, tuple(rules), None, inert=not rules)

    def _by_address(self, peer: AdminPeer) -> bool:
        return peer.namespace_selector is None

    def _address(self, peer: AdminPeer, remote: Endpoint) -> bool:
        if peer.nodes:
            return remote.node is not None
        return any(remote.ip in network for network in peer.networks)

    def _selects(self, namespace: str, peer: AdminPeer, pod: Pod, labels: dict[str, str],
                 namespace_labels: dict[str, str]) -> bool:
        return peer.namespace_selector is not None and peer.namespace_selector.matches(namespace_labels) and (
            peer.pod_selector is None or peer.pod_selector.matches(labels))
