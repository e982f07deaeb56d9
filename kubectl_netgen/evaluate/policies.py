"""``networking.k8s.io/v1`` NetworkPolicies as values, read from their manifests.

What the API server would default is defaulted here (``policyTypes``, protocols, absent or empty
lists), so the engine only ever sees one spelling of each meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_netgen.evaluate.fields import Field, IPNetwork, cidr, port_name, port_number, protocol, selector
from kubectl_netgen.model import LabelSelector, PolicyDirection, Protocol

NETWORKING_V1 = "networking.k8s.io/v1"


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


def parse_network_policy(doc: Mapping[str, Any], namespace: str = "default") -> NetworkPolicy:
    """One ``networking.k8s.io/v1`` NetworkPolicy manifest, checked as the API server checks it.

    Raises:
        InputError: The manifest is malformed; the message names the policy and the field.
    """
    meta = Field("NetworkPolicy", "metadata", doc.get("metadata"))
    meta.mapping(None)
    name = meta.child("name").string()
    ns = meta.child("namespace").string() if meta.child("namespace").value is not None else namespace
    root = Field(f"NetworkPolicy {ns}/{name}", "", doc)
    spec = root.child("spec")
    spec.mapping(("podSelector", "policyTypes", "ingress", "egress"))
    ingress = tuple(_rule(r, "from") for r in spec.child("ingress").items() or ())
    egress = tuple(_rule(r, "to") for r in spec.child("egress").items() or ())
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
