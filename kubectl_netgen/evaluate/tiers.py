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

Which rules match a remote end is found through indexes of each policy's peers (:class:`_Peers`),
so its cost does not grow with the number of rules: generated policies have one rule per peer,
thousands of them. ``indexed=False`` scans every rule instead, the reference the indexes are tested
against. :meth:`NetworkPolicies.denied` checks many distinct flows of one side at once without the
caches, for ``generate``'s check of its own output.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kubectl_netgen.evaluate.admin import Action, AdminNetworkPolicy, AdminPeer, AdminRule, BaselineAdminNetworkPolicy
from kubectl_netgen.evaluate.fields import IPNetwork
from kubectl_netgen.evaluate.matching import (
    NAMESPACE_NAME_LABEL,
    BoundedCache,
    Cluster,
    Decision,
    Endpoint,
    Ports,
    Query,
    RuleRef,
    Tier,
)
from kubectl_netgen.evaluate.policies import NetworkPolicy, PolicyPeer, PortSpec, Rule
from kubectl_netgen.model import Labels, LabelSelector, Pod, PolicyDirection
from kubectl_netgen.model import Protocol as Transport


class LocalTraffic:
    """Never blocked: a pod talking to itself, and a pod and the node it runs on (kubelet probes)."""

    def decide(self, query: Query) -> Decision | None:
        """Allow traffic with the pod itself or its own node; pass everything else."""
        return self.local(query.pod, query.remote)

    @staticmethod
    def local(pod: Pod, remote: Endpoint) -> Decision | None:
        """The decision for traffic between ``pod`` and ``remote`` if it is local (itself, its node), else ``None``."""
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
R = TypeVar("R", Rule, AdminRule)
_SelectorKey = tuple[str | None, tuple[str, str] | None, bool]
"""Where a selecting peer finds pods: one namespace (``None``: any), one label pair (``None``: any), and
whether that is all it asks (then a pod found under the key is selected without checking the peer)."""
_NetworkKey = tuple[int, int, int]
"""A network: (IP version, bits of host part, address shifted right by them)."""
_Hit = tuple[int, int]
"""A rule of a group: (position of its policy in the group, position of the rule in the policy)."""


class _Rule:
    """A rule that matched, ready to decide: its compiled ports, who it is and the decision it makes alone.

    Who it is and its decision are built when first asked for: checking a large set of flows against
    a large set of rules needs only the ports of most rules.
    """

    __slots__ = ("_decision", "action", "index", "part", "ports", "tier")

    def __init__(self, tier: _RuleTier[Any, Any], part: _Peers[Any, Any], index: int, ports: Ports | None,
                 action: Action) -> None:
        self.tier, self.part, self.index, self.ports, self.action = tier, part, index, ports, action
        self._decision: Decision | None = None

    @property
    def ref(self) -> RuleRef:
        """How verdicts name the rule."""
        return self.decision.refs[0]

    @property
    def decision(self) -> Decision:
        """The rule's decision alone."""
        if self._decision is None:
            ref = self.tier._ref(self.part, self.index)
            self._decision = Decision(self.tier.tier, self.action, (ref,))
        return self._decision


class _Peers(Generic[P, R]):
    """The rules of one policy for one direction, their peers indexed by what they can match.

    Matching a remote end then costs a few lookups, however many rules the policy has (a generated
    policy has one rule per peer, thousands of them):

    * address peers that are exact networks (an ipBlock without ``except``, an ANP ``networks`` entry):
      by prefix length, then network number; a query masks its address once per prefix length present;
    * selecting peers: by the namespace they are limited to (``None``: any, or decided by other labels)
      and by one ``matchLabels`` pair of their pod selector (``None``: every pod, or decided otherwise);
      the candidates a remote pod's namespace and labels find are then checked in full;
    * everything else (ipBlocks with ``except``, ``nodes``) is checked in full for every remote end.

    Compiled once per policy and direction, shared by every group the policy applies to. Rules are
    compiled (:class:`_Rule`) only when they first match.
    """

    __slots__ = ("addressed", "by_namespace", "checks", "compiled", "direction", "every", "name", "named",
                 "namespace", "networks", "policy", "raw")

    def __init__(self, policy: object, name: str, namespace: str, direction: PolicyDirection,
                 raw: tuple[R, ...]) -> None:
        self.policy = policy
        """The policy (kept so that its ``id`` stays its own while this exists)."""
        self.name = name
        self.namespace = namespace
        """Where a NetworkPolicy peer without a namespaceSelector looks; ``""`` for tiered policies."""
        self.direction = direction
        self.raw: tuple[R, ...] = raw
        self.compiled: list[_Rule | None] = [None] * len(raw)
        self.every: tuple[int, ...] = ()
        """Rules without peers: they match every remote end."""
        self.networks: dict[int, tuple[tuple[int, dict[int, tuple[int, ...]]], ...]] = {}
        """IP version -> ((bits to shift an address by, network number -> rules), ...) per prefix length."""
        self.checks: tuple[tuple[int, P], ...] = ()
        """(rule, address peer) to check in full."""
        self.by_namespace: dict[str | None, dict[tuple[str, str] | None, tuple[tuple[int, P | None], ...]]] = {}
        """Namespace (``None``: any) -> pod label pair (``None``: any) -> (rule, selecting peer to check in full,
        or ``None`` when the keys say all: the peer selects every pod with that label pair in that namespace)."""
        self.addressed = False
        """Some rule has an address peer: which rules match then depends on the remote address."""
        self.named = False
        """Some rule has a named port: the decision then depends on the destination's container ports."""

    def address_hits(self, tier: _RuleTier[P, R], remote: Endpoint) -> list[int]:
        """The rules with an address peer matching ``remote`` (maybe repeated, in no particular order)."""
        hits: list[int] = []
        tables = self.networks.get(remote.ip.version)
        if tables:
            number = int(remote.ip)
            for shift, table in tables:
                found = table.get(number >> shift)
                if found is not None:
                    hits.extend(found)
        for index, peer in self.checks:
            if tier._address(peer, remote):
                hits.append(index)
        return hits

    def selecting(self, tier: _RuleTier[P, R], pod: Pod, labels: dict[str, str],
                  namespace_labels: dict[str, str]) -> list[int]:
        """The rules with a selecting peer that selects ``pod`` (maybe repeated, in no particular order)."""
        hits: list[int] = []
        for namespace in (pod.namespace, None):
            by_label = self.by_namespace.get(namespace)
            if by_label is None:
                continue
            for pair in (None, *pod.labels):
                candidates = by_label.get(pair)
                if candidates is not None:
                    hits.extend(index for index, peer in candidates
                                if peer is None or tier._selects(self.namespace, peer, pod, labels, namespace_labels))
        return hits


@dataclass(frozen=True)
class _Group(Generic[P, R]):
    """The policies that apply to a set of look-alike pods (same namespace and labels) for one direction."""

    serial: int
    parts: tuple[_Peers[P, R], ...]
    """The rules of the applying policies, policy by policy in evaluation order."""
    denial: Decision | None
    """NetworkPolicies: the denial by the isolating policies, ``None`` when none isolates; tiered: ``None``."""
    inert: bool
    """The tier has nothing to say about this group (no isolating NetworkPolicy; no tiered rule)."""
    addressed: bool = field(init=False)
    """Some rule has an address peer: which rules match then depends on the remote address."""
    named: bool = field(init=False)
    """Some rule has a named port: the decision then depends on the destination's container ports."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "addressed", any(p.addressed for p in self.parts))
        object.__setattr__(self, "named", any(p.named for p in self.parts))


class _RuleTier(Generic[P, R]):
    """What both rule tiers share: groups, indexed peers, and decisions cached per group, remote identity, port.

    Args:
        cluster: The inventory.
        indexed: Match through the peer indexes of :class:`_Peers`; ``False`` checks every peer of every
            rule in turn, the reference the indexes are tested against.
    """

    tier: Tier

    def __init__(self, cluster: Cluster, *, indexed: bool = True) -> None:
        self._cluster = cluster
        self._indexed = indexed
        self._groups: dict[tuple[str, Labels, PolicyDirection], _Group[P, R]] = {}
        self._compiled: dict[tuple[int, PolicyDirection], _Peers[P, R]] = {}
        self._ports: dict[int, tuple[object, Ports | None]] = {}
        self._where: dict[str, dict[int, tuple[P, _SelectorKey | None, tuple[_NetworkKey, ...] | None]]] = {}
        """Policy namespace -> ``id`` of a peer -> (the peer, where an index keeps it: :meth:`_where_of`)."""
        self._sides: BoundedCache[int, _Group[P, R]] = BoundedCache()
        self._masks: BoundedCache[int, tuple[_Hit, ...]] = BoundedCache()
        self._matches: BoundedCache[tuple[int, int, tuple[_Hit, ...]], tuple[_Rule, ...]] = BoundedCache()
        self._decisions: BoundedCache[tuple[object, ...], Decision | None] = BoundedCache()
        self._serials = itertools.count(1)

    def decide(self, query: Query) -> Decision | None:
        """This tier's decision for one side of a flow (``None``: nothing to say, go on)."""
        group = self._group(query)
        if group.inert:
            return None
        remote = query.remote
        mask = self._mask(group, remote) if group.addressed else ()
        ingress = query.direction is PolicyDirection.INGRESS
        port_set = (query.local.port_set if ingress else remote.port_set) if group.named else 0
        key = (group.serial, remote.identity, mask, id(query.protocol), query.port, port_set)
        decision = self._decisions.get(key, _UNKNOWN)
        if decision is _UNKNOWN:
            rules = self._matching(group, remote, mask)
            decision = self._decisions.store(key, self._decide(group, rules, query.protocol, query.port,
                                                               query.pod if ingress else remote.pod))
        return decision

    def _group(self, query: Query) -> _Group[P, R]:
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

    def _mask(self, group: _Group[P, R], remote: Endpoint) -> tuple[_Hit, ...]:
        """The rules of ``group`` (in order) with an address peer matching ``remote``."""
        key = (group.serial << 64) | remote.serial
        mask = self._masks.get(key)
        if mask is None:
            hits: set[_Hit] = set()
            for n, part in enumerate(group.parts):
                if part.addressed:
                    found = part.address_hits(self, remote) if self._indexed else [
                        i for i, rule in enumerate(part.raw)
                        if any(self._by_address(p) and self._address(p, remote) for p in self._peers_of(rule) or ())]
                    hits.update((n, i) for i in found)
            mask = self._masks.store(key, tuple(sorted(hits)))
        return mask

    def _matching(self, group: _Group[P, R], remote: Endpoint, mask: tuple[_Hit, ...]) -> tuple[_Rule, ...]:
        """The rules of ``group`` with a peer matching ``remote`` (whose address peers ``mask`` gives), in order."""
        key = (group.serial, remote.identity, mask)
        rules = self._matches.get(key)
        if rules is None:
            pod = remote.pod
            labels = dict(pod.labels) if pod is not None else {}
            namespace_labels = self._cluster.namespace_labels(pod.namespace) if pod is not None else {}
            hits = set(mask)
            for n, part in enumerate(group.parts):
                hits.update((n, i) for i in part.every)
                if pod is None:
                    continue
                found = part.selecting(self, pod, labels, namespace_labels) if self._indexed else [
                    i for i, rule in enumerate(part.raw)
                    if any(not self._by_address(p) and self._selects(part.namespace, p, pod, labels, namespace_labels)
                           for p in self._peers_of(rule) or ())]
                hits.update((n, i) for i in found)
            rules = self._matches.store(key, tuple(self._rule(group.parts[n], i) for n, i in sorted(hits)))
        return rules

    def _peers(self, policy: object, name: str, namespace: str, direction: PolicyDirection,
               raw: tuple[R, ...]) -> _Peers[P, R]:
        """The rules of ``policy`` for ``direction``, indexed (once per policy and direction)."""
        key = (id(policy), direction)
        found = self._compiled.get(key)
        if found is not None and found.policy is policy:
            return found
        part: _Peers[P, R] = _Peers(policy, name, namespace, direction, raw)
        every: list[int] = []
        checks: list[tuple[int, P]] = []
        # Lists of entries by the id of the key a peer's memo holds: hashing ints, not nested tuples.
        selects: dict[int, tuple[_SelectorKey, list[tuple[int, P | None]]]] = {}
        numbers: dict[int, tuple[tuple[_NetworkKey, ...], list[int]]] = {}
        seen_ports: set[int] = set()
        where = self._where.setdefault(namespace, {})
        peers_of = self._peers_of
        for index, rule in enumerate(raw):
            ports = rule.ports
            if ports is not None and id(ports) not in seen_ports:
                seen_ports.add(id(ports))
                part.named = part.named or any(isinstance(spec.port, str) for spec in ports)
            peers = peers_of(rule)
            if peers is None:
                every.append(index)
                continue
            for peer in peers:
                # Where a peer goes is worked out once per distinct peer object (parsing shares them).
                known = where.get(id(peer))
                if known is None or known[0] is not peer:
                    selector_key, network_keys = self._where_of(namespace, peer)
                    known = where[id(peer)] = (peer, selector_key, network_keys)
                _, selector_key, network_keys = known
                if selector_key is not None:
                    listed = selects.get(id(selector_key))
                    if listed is None:
                        listed = selects[id(selector_key)] = (selector_key, [])
                    listed[1].append((index, None if selector_key[2] else peer))
                elif network_keys is None:
                    checks.append((index, peer))
                else:
                    indices = numbers.get(id(network_keys))
                    if indices is None:
                        indices = numbers[id(network_keys)] = (network_keys, [])
                    indices[1].append(index)
        networks: dict[int, dict[int, dict[int, tuple[int, ...]]]] = {}
        for keys, rules in numbers.values():
            for version, bits, number in keys:
                by_number = networks.setdefault(version, {}).setdefault(bits, {})
                by_number[number] = by_number.get(number, ()) + tuple(rules)
        by_namespace: dict[str | None, dict[tuple[str, str] | None, tuple[tuple[int, P | None], ...]]] = {}
        for (namespace_key, pair, _), entries in selects.values():
            found_pairs = by_namespace.setdefault(namespace_key, {})
            found_pairs[pair] = found_pairs.get(pair, ()) + tuple(entries)
        part.checks = tuple(checks)
        part.addressed = bool(part.checks or networks)
        part.every = tuple(every)
        part.networks = {version: tuple(sorted(by_bits.items())) for version, by_bits in networks.items()}
        part.by_namespace = by_namespace
        self._compiled[key] = part
        return part

    def _where_of(self, namespace: str, peer: P) -> tuple[_SelectorKey | None, tuple[_NetworkKey, ...] | None]:
        """Where the index of a policy in ``namespace`` keeps ``peer`` (see :meth:`_peers`).

        Returns:
            For a selecting peer, its key (namespace, label pair) and ``None``; for an address peer,
            ``None`` and the keys of its networks, or ``None`` when it must be checked in full.
        """
        if not self._by_address(peer):
            return self._selector_keys(namespace, peer), None
        exact = self._networks(peer)
        if exact is None:
            return None, None
        keys = []
        for network in exact:
            bits = network.max_prefixlen - network.prefixlen
            keys.append((network.version, bits, int(network.network_address) >> bits))
        return None, tuple(dict.fromkeys(keys))

    def _rule(self, part: _Peers[P, R], index: int) -> _Rule:
        """Rule ``index`` of ``part``, compiled on first use."""
        rule = part.compiled[index]
        if rule is None:
            raw = part.raw[index]
            rule = part.compiled[index] = _Rule(self, part, index, self._compiled_ports(raw.ports), self._action(raw))
        return rule

    def _compiled_ports(self, specs: tuple[PortSpec, ...] | None) -> Ports | None:
        """``Ports.of(specs)``, once per tuple (parsing gives equal lists of ports one tuple)."""
        if specs is None:
            return None
        known = self._ports.get(id(specs))
        if known is not None and known[0] is specs:
            return known[1]
        ports = Ports.of(specs)
        self._ports[id(specs)] = (specs, ports)
        return ports

    def _build(self, serial: int, namespace: str, labels: dict[str, str], direction: PolicyDirection) -> _Group[P, R]:
        """The group of pods with these namespace and labels."""
        raise NotImplementedError

    def _decide(self, group: _Group[P, R], rules: tuple[_Rule, ...], protocol: Transport, port: int,
                destination: Pod | None) -> Decision | None:
        """The decision, given the rules whose peers match."""
        raise NotImplementedError

    def _ref(self, part: _Peers[P, R], index: int) -> RuleRef:
        """How verdicts name rule ``index`` of ``part``."""
        raise NotImplementedError

    def _peers_of(self, rule: R) -> tuple[P, ...] | None:
        """A rule's peers; ``None``: every peer."""
        raise NotImplementedError

    def _action(self, rule: R) -> Action:
        """What a matching rule does."""
        raise NotImplementedError

    def _by_address(self, peer: P) -> bool:
        """Whether ``peer`` matches addresses rather than selecting pods by labels."""
        raise NotImplementedError

    def _networks(self, peer: P) -> tuple[IPNetwork, ...] | None:
        """The networks an address peer matches exactly (their addresses, no others), or ``None``."""
        raise NotImplementedError

    def _address(self, peer: P, remote: Endpoint) -> bool:
        """Whether an address peer matches ``remote``."""
        raise NotImplementedError

    def _selector_keys(self, namespace: str, peer: P) -> _SelectorKey:
        """Where a selecting peer can find pods: the one namespace (``None``: not known) and a label pair they carry.

        The pair is ``None`` when the peer selects pods without requiring one. The flag tells whether the
        namespace and the pair are all the peer asks for.
        """
        raise NotImplementedError

    def _selects(self, namespace: str, peer: P, pod: Pod, labels: dict[str, str],
                 namespace_labels: dict[str, str]) -> bool:
        """Whether a selecting peer of a policy in ``namespace`` selects ``pod`` (with these labels)."""
        raise NotImplementedError


def _admits(found: list[Ports | None], protocol: Transport, port: int, destination: Pod | None) -> bool:
    """Whether one of these rules' ports (``None``: every port) admits the traffic."""
    for ports in found:
        if ports is None or ports.admit(protocol, port, destination):
            return True
    return False


def _namespace_name(selector: LabelSelector) -> tuple[str | None, bool]:
    """The namespace a namespace selector is limited to by its name label (if it is), and whether that is all it asks.

    An empty selector (every namespace) is all it asks too.
    """
    exact = not selector.match_expressions and len(selector.match_labels) <= 1
    for key, value in selector.match_labels:
        if key == NAMESPACE_NAME_LABEL:
            return value, exact
    return None, exact and not selector.match_labels


def _label_pair(selector: LabelSelector | None) -> tuple[tuple[str, str] | None, bool]:
    """A label every pod a pod selector selects carries (if it requires one), and whether that is all it asks.

    ``None`` (every pod) and an empty selector ask nothing.
    """
    if selector is None:
        return None, True
    exact = not selector.match_expressions and len(selector.match_labels) <= 1
    return (selector.match_labels[0] if selector.match_labels else None), exact


class NetworkPolicies(_RuleTier[PolicyPeer, Rule]):
    """The NetworkPolicy tier: isolation by any selecting policy, then the union of their rules."""

    tier = Tier.NETWORK_POLICY

    def __init__(self, policies: Iterable[NetworkPolicy], cluster: Cluster, *, indexed: bool = True) -> None:
        """Group ``policies`` by namespace (a pod is only ever selected by policies of its own)."""
        super().__init__(cluster, indexed=indexed)
        self._labels: dict[int, dict[str, str]] = {}
        """Pod identity -> its labels, as a mapping."""
        self._by_namespace: dict[str, list[NetworkPolicy]] = defaultdict(list)
        for policy in sorted(policies, key=lambda p: (p.namespace, p.name)):
            self._by_namespace[policy.namespace].append(policy)

    def isolated(self, query: Query) -> bool:
        """Whether a NetworkPolicy selects the query's pod for its direction."""
        return self._group(query).denial is not None

    def denied(self, query: Query, flows: Iterable[tuple[Endpoint, Transport, int]]) -> list[int]:
        """Which flows of one side this tier denies, by position: what :meth:`decide` says of each, faster.

        Args:
            query: The side (its remote end, protocol and port are not used).
            flows: (remote end, protocol, port) of each flow; a remote end that is the pod itself or
                its node must have been taken out (:class:`LocalTraffic` allows them before this tier).

        Nothing is cached and no decision is built: for checking many flows once (``generate``).
        """
        group = self._group(query)
        if group.inert:
            return []
        if not self._indexed:  # the reference: decide flow by flow
            return [n for n, (remote, protocol, port) in enumerate(flows)
                    if self.decide(query._replace(remote=remote, protocol=protocol, port=port)) is group.denial]
        ingress = query.direction is PolicyDirection.INGRESS
        pod, parts, addressed, ports_of = query.pod, group.parts, group.addressed, self._compiled_ports
        # What selecting peers and peerless rules allow depends on the remote pod's identity only.
        selected: dict[int, list[Ports | None]] = {}
        out = []
        for n, (remote, protocol, port) in enumerate(flows):
            found = selected.get(remote.identity)
            if found is None:
                found = selected[remote.identity] = self._selected(parts, remote)
            destination = pod if ingress else remote.pod
            if _admits(found, protocol, port, destination):
                continue
            # Only then the address peers (one rule allowing is enough: this is no verdict to explain).
            if not addressed or not _admits([ports_of(part.raw[i].ports) for part in parts if part.addressed
                                             for i in part.address_hits(self, remote)], protocol, port, destination):
                out.append(n)
        return out

    def _selected(self, parts: tuple[_Peers[PolicyPeer, Rule], ...], remote: Endpoint) -> list[Ports | None]:
        """The ports of the rules without peers or with a selecting peer that selects ``remote`` (uncached)."""
        remote_pod = remote.pod
        found: list[Ports | None] = []
        if remote_pod is None:
            for part in parts:
                found += [self._compiled_ports(part.raw[i].ports) for i in part.every]
            return found
        labels = self._labels.get(remote.identity)
        if labels is None:
            labels = self._labels[remote.identity] = dict(remote_pod.labels)
        namespace_labels = self._cluster.namespace_labels(remote_pod.namespace)
        for part in parts:
            hits = part.selecting(self, remote_pod, labels, namespace_labels) if part.by_namespace else []
            found += [self._compiled_ports(part.raw[i].ports) for i in (*part.every, *hits)]
        return found

    def _decide(self, group: _Group[PolicyPeer, Rule], rules: tuple[_Rule, ...], protocol: Transport,
                port: int, destination: Pod | None) -> Decision | None:
        """Allowed by every rule that admits the port (policies add up); denied by isolation if none does."""
        allowing = [r for r in rules if r.ports is None or r.ports.admit(protocol, port, destination)]
        if not allowing:
            return group.denial
        if len(allowing) == 1:
            return allowing[0].decision
        return Decision(self.tier, Action.ALLOW, tuple(r.ref for r in allowing))

    def _build(self, serial: int, namespace: str, labels: dict[str, str],
               direction: PolicyDirection) -> _Group[PolicyPeer, Rule]:
        isolating = [p for p in self._by_namespace.get(namespace, ())
                     if direction in p.policy_types and p.pod_selector.matches(labels)]
        parts = tuple(self._peers(p, p.name, p.namespace, direction, p.rules(direction)) for p in isolating)
        denial = Decision(self.tier, Action.DENY, tuple(RuleRef(p.namespace, p.name, direction) for p in isolating))
        return _Group(serial, parts, denial if isolating else None, inert=not isolating)

    def _ref(self, part: _Peers[PolicyPeer, Rule], index: int) -> RuleRef:
        return RuleRef(part.namespace, part.name, part.direction, index)

    def _action(self, rule: Rule) -> Action:
        return Action.ALLOW

    def _peers_of(self, rule: Rule) -> tuple[PolicyPeer, ...] | None:
        return rule.peers

    def _by_address(self, peer: PolicyPeer) -> bool:
        return peer.ip_block is not None

    def _networks(self, peer: PolicyPeer) -> tuple[IPNetwork, ...] | None:
        block = peer.ip_block
        return (block.cidr,) if block is not None and not block.except_ else None

    def _address(self, peer: PolicyPeer, remote: Endpoint) -> bool:
        # ipBlocks match any address, pod addresses included, as the upstream conformance tests expect.
        block = peer.ip_block
        return block is not None and remote.ip in block.cidr and not any(remote.ip in hole for hole in block.except_)

    def _selector_keys(self, namespace: str, peer: PolicyPeer) -> _SelectorKey:
        selector = peer.namespace_selector
        where, whole = (namespace, True) if selector is None else _namespace_name(selector)
        pair, exact = _label_pair(peer.pod_selector)
        return where, pair, whole and exact

    def _selects(self, namespace: str, peer: PolicyPeer, pod: Pod, labels: dict[str, str],
                 namespace_labels: dict[str, str]) -> bool:
        if peer.namespace_selector is None:
            if pod.namespace != namespace:
                return False
        elif not peer.namespace_selector.matches(namespace_labels):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(labels)


class TieredRules(_RuleTier[AdminPeer, AdminRule]):
    """An ordered list of tiered policies (AdminNetworkPolicies by priority, or the baseline): first match decides."""

    def __init__(self, tier: Tier, policies: Iterable[AdminNetworkPolicy | BaselineAdminNetworkPolicy],
                 cluster: Cluster, *, indexed: bool = True) -> None:
        """Keep ``policies`` in evaluation order (priority, then name for equal priorities, as implementations do)."""
        super().__init__(cluster, indexed=indexed)
        self.tier = tier
        self._policies = sorted(policies, key=lambda p: (getattr(p, "priority", 0), p.name))

    def _decide(self, group: _Group[AdminPeer, AdminRule], rules: tuple[_Rule, ...], protocol: Transport,
                port: int, destination: Pod | None) -> Decision | None:
        """The action of the first rule that admits the port; ``None`` when none does."""
        for rule in rules:
            if rule.ports is None or rule.ports.admit(protocol, port, destination):
                return rule.decision
        return None

    def _build(self, serial: int, namespace: str, labels: dict[str, str],
               direction: PolicyDirection) -> _Group[AdminPeer, AdminRule]:
        namespace_labels = self._cluster.namespace_labels(namespace)
        parts = []
        for policy in self._policies:
            subject = policy.subject
            if not (subject.namespace_selector.matches(namespace_labels) and subject.pod_selector.matches(labels)):
                continue
            raw = policy.ingress if direction is PolicyDirection.INGRESS else policy.egress
            if raw:
                parts.append(self._peers(policy, policy.name, "", direction, raw))
        return _Group(serial, tuple(parts), None, inert=not parts)

    def _ref(self, part: _Peers[AdminPeer, AdminRule], index: int) -> RuleRef:
        return RuleRef("", part.name, part.direction, index, self.tier.value, part.raw[index].name)

    def _action(self, rule: AdminRule) -> Action:
        return rule.action

    def _peers_of(self, rule: AdminRule) -> tuple[AdminPeer, ...] | None:
        return rule.peers

    def _by_address(self, peer: AdminPeer) -> bool:
        return peer.namespace_selector is None

    def _networks(self, peer: AdminPeer) -> tuple[IPNetwork, ...] | None:
        return None if peer.nodes else peer.networks

    def _address(self, peer: AdminPeer, remote: Endpoint) -> bool:
        if peer.nodes:
            return remote.node is not None
        return any(remote.ip in network for network in peer.networks)

    def _selector_keys(self, namespace: str, peer: AdminPeer) -> _SelectorKey:
        if peer.namespace_selector is None:  # not a selecting peer: never asked
            return None, None, False
        where, whole = _namespace_name(peer.namespace_selector)
        pair, exact = _label_pair(peer.pod_selector)
        return where, pair, whole and exact

    def _selects(self, namespace: str, peer: AdminPeer, pod: Pod, labels: dict[str, str],
                 namespace_labels: dict[str, str]) -> bool:
        return peer.namespace_selector is not None and peer.namespace_selector.matches(namespace_labels) and (
            peer.pod_selector is None or peer.pod_selector.matches(labels))
