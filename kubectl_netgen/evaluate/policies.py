"""``networking.k8s.io/v1`` NetworkPolicies as values, read from their manifests.

What the API server would default is defaulted here (``policyTypes``, protocols, absent or empty
lists), so the engine only ever sees one spelling of each meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kubectl_netgen.evaluate.fields import Field, IPNetwork, cidr, port_name, port_number, protocol, selector
from kubectl_netgen.model import LabelSelector, PolicyDirection, Protocol

NETWORKING_V1 = "networking.k8s.io/v1"
T = TypeVar("T")


@dataclass(frozen=True)
class IPBlock:
    """An ``ipBlock`` peer: addresses in ``cidr`` but in none of ``except_``."""

    cidr: IPNetwork
    except_: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True)
class PolicyPeer:
    """One ``from``/``to`` entry: either selectors (ANDed when both are set) or an ipBlock."""

    pod_selector: LabelSelector | None = None
    """Pods matching it; ``None`` = every pod of the selected namespaces."""
    namespace_selector: LabelSelector | None = None
    """Namespaces matching it; ``None`` = only the policy's own namespace."""
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PortSpec:
    """One ``ports`` entry of a rule (NetworkPolicy and the tiered APIs alike)."""

    protocol: Protocol | None
    """TCP, UDP or SCTP; ``None`` only for an AdminNetworkPolicy ``namedPort`` (the named port's own)."""
    port: int | str | None = None
    """A number, a container port name (resolved on the destination pod), or ``None`` = every port."""
    end_port: int | None = None
    """With a numeric ``port``: the last port of the range ``port..end_port``."""


@dataclass(frozen=True)
class Rule:
    """One ingress or egress entry: it allows traffic matching one of its peers and one of its ports."""

    peers: tuple[PolicyPeer, ...] | None = None
    """``from``/``to``; ``None`` when absent or empty, which the API defines as every peer."""
    ports: tuple[PortSpec, ...] | None = None
    """``None`` when absent or empty, which the API defines as every port (and protocol)."""


@dataclass(frozen=True)
class NetworkPolicy:
    """A ``networking.k8s.io/v1`` NetworkPolicy, defaulted as the API server stores it."""

    namespace: str
    name: str
    pod_selector: LabelSelector
    """The pods of ``namespace`` it applies to (empty = all of them)."""
    policy_types: tuple[PolicyDirection, ...]
    """The directions it isolates: ``spec.policyTypes``, else ingress, plus egress if it has egress rules."""
    ingress: tuple[Rule, ...] = ()
    """Ingress rules (no rules = allows nothing: pure isolation)."""
    egress: tuple[Rule, ...] = ()

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: PolicyDirection) -> tuple[Rule, ...]:
        """The rules for one direction."""
        return self.ingress if direction is PolicyDirection.INGRESS else self.egress


class Parts:
    """Peers and ports already read, so that one repeated in many rules is read (and stored) once.

    A generated policy set names the same few peers and port lists in thousands of rules: ``synth``
    even shares them (one dict or list object), and files repeat them. A part is found by its object
    or else by its content; what a part means does not depend on where it stands, and a malformed one
    is never kept, so errors still name their field. Equal lists of parts give one tuple, so that the
    engine compiles each distinct list of ports once.
    """

    def __init__(self) -> None:
        """Start with nothing read."""
        self._by_id: dict[int, tuple[object, Any]] = {}
        """``id`` -> (the object, what it reads as); the object is kept so that its ``id`` stays its own.

        Forgotten when full: unshared parts (a file read) would otherwise all be kept."""
        self._by_value: dict[Hashable, Any] = {}
        self._rules: dict[tuple[int, int], tuple[object, object, Rule]] = {}
        """(``id`` of the one peer, ``id`` of the ports) -> (the peer, the ports, the rule)."""

    def rule(self, rules: Field, n: int, peers_key: str) -> Rule:
        """Rule ``n`` of ``rules`` (a mapping with no other keys than ``peers_key`` and ``ports``)."""
        item = rules.value[n]
        peers, ports = item.get(peers_key), item.get("ports")
        # A generated rule names one shared peer object and one shared list of ports: one lookup.
        single = type(peers) is list and len(peers) == 1
        if single:
            known = self._rules.get((id(peers[0]), id(ports)))
            if known is not None and known[0] is peers[0] and known[1] is ports:
                return known[2]
        rule = Rule(self.read(rules, n, peers_key, _peer) or None, self.read(rules, n, "ports", _port) or None)
        if single:
            if len(self._rules) >= _REMEMBERED:
                self._rules.clear()
            self._rules[id(peers[0]), id(ports)] = (peers[0], ports, rule)
        return rule

    def read(self, rules: Field, n: int, key: str, parse: Callable[[Field], T]) -> tuple[T, ...]:
        """The entries of the list ``key`` of rule ``n`` of ``rules``, each read with ``parse`` unless read before.

        An absent or null list gives ``()``.
        """
        rule = rules.value[n]
        raw = rule.get(key)
        if raw is None:
            return ()
        by_id, by_value = self._by_id, self._by_value
        known = by_id.get(id(raw))
        if known is not None and known[0] is raw:
            found: tuple[T, ...] = known[1]
            return found
        if type(raw) is not list:
            Field(rules.owner, f"{rules.path}[{n}]", rule).child(key).items()  # raises: not a list
        out = []
        for i, item in enumerate(raw):
            seen = by_id.get(id(item))
            if seen is not None and seen[0] is item:
                out.append(seen[1])
                continue
            content = _content(item)
            value = by_value.get(content)
            if value is None:
                value = by_value[content] = parse(Field(rules.owner, f"{rules.path}[{n}].{key}[{i}]", item))
            self._remember(item, value)
            out.append(value)
        identities = (_TUPLE, *map(id, out))  # the values are kept in _by_value: their ids stay theirs
        result: tuple[T, ...] | None = by_value.get(identities)
        if result is None:
            result = by_value[identities] = tuple(out)
        self._remember(raw, result)
        return result

    def _remember(self, raw: object, value: Any) -> None:
        if len(self._by_id) >= _REMEMBERED:
            self._by_id.clear()
        self._by_id[id(raw)] = (raw, value)


_LIST, _TUPLE = object(), object()
_REMEMBERED = 1 << 18


def _content(value: Any) -> Hashable:
    """A manifest value as a hashable key: equal keys mean equal values of the same JSON types."""
    kind = type(value)
    if kind is dict:
        return tuple([(k, v if type(v) is str else _content(v)) for k, v in value.items()])
    if kind is list:
        return (_LIST, *[v if type(v) is str else _content(v) for v in value])
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return (kind, value)
    return (kind, id(value))  # nothing a manifest may hold: never equal to anything else


def parse_network_policy(doc: Mapping[str, Any], namespace: str = "default", parts: Parts | None = None
                         ) -> NetworkPolicy:
    """One ``networking.k8s.io/v1`` NetworkPolicy manifest, checked as the API server checks it.

    Args:
        doc: The manifest.
        namespace: Its namespace when ``metadata.namespace`` is absent.
        parts: Peers and ports read before (from other policies of the same set), to read each once.

    Raises:
        InputError: The manifest is malformed; the message names the policy and the field.
    """
    parts = parts if parts is not None else Parts()
    meta = Field("NetworkPolicy", "metadata", doc.get("metadata"))
    meta.mapping(None)
    name = meta.child("name").string()
    ns = meta.child("namespace").string() if meta.child("namespace").value is not None else namespace
    root = Field(f"NetworkPolicy {ns}/{name}", "", doc)
    spec = root.child("spec")
    spec.mapping(("podSelector", "policyTypes", "ingress", "egress"))
    ingress = _rules(spec.child("ingress"), "from", parts)
    egress = _rules(spec.child("egress"), "to", parts)
    types: list[PolicyDirection] = []
    for entry in spec.child("policyTypes").items() or ():
        if entry.value not in ("Ingress", "Egress"):
            raise entry.fail(f"{entry.value!r} is not Ingress or Egress")
        types.append(PolicyDirection(entry.value.lower()))
    if len(types) > 2:
        raise spec.child("policyTypes").fail("may not list more than two types")
    if not types:
        # The API server's defaulting: every policy isolates ingress; one with egress rules also egress.
        types = [PolicyDirection.INGRESS, *([PolicyDirection.EGRESS] if egress else [])]
    return NetworkPolicy(
        namespace=ns, name=name, pod_selector=selector(spec.child("podSelector")),
        policy_types=tuple(d for d in (PolicyDirection.INGRESS, PolicyDirection.EGRESS) if d in types),
        ingress=ingress, egress=egress,
    )


def _rules(rules: Field, peers_key: str, parts: Parts) -> tuple[Rule, ...]:
    raw = rules.value
    if type(raw) is not list:
        return tuple(_rule(r, peers_key) for r in rules.items() or ())
    out = []
    keys = {peers_key, "ports"}
    for n, item in enumerate(raw):
        # Field objects (and their paths) only where something could be wrong: a large set has ~10^6 rules.
        if type(item) is dict and item.keys() <= keys:
            out.append(parts.rule(rules, n, peers_key))
        else:
            out.append(_rule(Field(rules.owner, f"{rules.path}[{n}]", item), peers_key))
    return tuple(out)


def _rule(field: Field, peers_key: str) -> Rule:
    field.mapping((peers_key, "ports"))
    peers = tuple(_peer(p) for p in field.child(peers_key).items() or ())
    ports = tuple(_port(p) for p in field.child("ports").items() or ())
    return Rule(peers=peers or None, ports=ports or None)


def _peer(field: Field) -> PolicyPeer:
    field.mapping(("podSelector", "namespaceSelector", "ipBlock"))
    pods, namespaces, block = (field.child(k) for k in ("podSelector", "namespaceSelector", "ipBlock"))
    if block.value is not None:
        if pods.value is not None or namespaces.value is not None:
            raise field.fail("may not combine ipBlock with podSelector or namespaceSelector (use two peers)")
        return PolicyPeer(ip_block=_ip_block(block))
    if pods.value is None and namespaces.value is None:
        raise field.fail("must set podSelector, namespaceSelector or ipBlock")
    return PolicyPeer(
        pod_selector=selector(pods) if pods.value is not None else None,
        namespace_selector=selector(namespaces) if namespaces.value is not None else None,
    )


def _ip_block(field: Field) -> IPBlock:
    field.mapping(("cidr", "except"))
    network = cidr(field.child("cidr"))
    excepts = []
    for entry in field.child("except").items() or ():
        hole = cidr(entry)
        if hole.network_address not in network or hole.prefixlen <= network.prefixlen:
            raise entry.fail(f"{entry.value!r} is not a strict subset of cidr {network}")
        excepts.append(hole)
    return IPBlock(network, tuple(excepts))


def _port(field: Field) -> PortSpec:
    field.mapping(("protocol", "port", "endPort"))
    proto = protocol(field.child("protocol"))
    raw, end = field.child("port"), field.child("endPort")
    port: int | str | None = None
    if raw.value is not None:
        port = port_name(raw) if isinstance(raw.value, str) else port_number(raw)
    end_port = None
    if end.value is not None:
        if not isinstance(port, int):
            raise end.fail("needs a numeric port")
        end_port = port_number(end)
        if end_port < port:
            raise end.fail(f"{end_port} is below port {port}")
    return PortSpec(proto, port, end_port)
