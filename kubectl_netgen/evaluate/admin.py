"""The tiered policies of the Network Policy API project, as values: AdminNetworkPolicy and BaselineAdminNetworkPolicy.

``policy.networking.k8s.io/v1alpha1``: cluster-scoped policies an administrator puts before
(AdminNetworkPolicy, ordered by ``priority``) and after (the one BaselineAdminNetworkPolicy,
``default``) the namespaced NetworkPolicies. Each rule has an action: Allow, Deny or (ANP only) Pass.

Peers the inventory cannot judge are refused when read rather than guessed: ``nodes`` peers with a
non-empty selector (the inventory keeps no node labels) and ``domainNames`` peers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_netgen.evaluate.fields import Field, IPNetwork, cidr, port_name, port_number, protocol, selector
from kubectl_netgen.evaluate.policies import PortSpec
from kubectl_netgen.model import LabelSelector

POLICY_V1ALPHA1 = "policy.networking.k8s.io/v1alpha1"


class Action(str, enum.Enum):
    """What a tiered rule does with the traffic it matches."""

    ALLOW = "Allow"
    DENY = "Deny"
    PASS = "Pass"
    """Skip the remaining AdminNetworkPolicy rules: NetworkPolicies (then the baseline) decide."""


@dataclass(frozen=True)
class Subject:
    """The pods a tiered policy applies to (hostNetwork pods never are)."""

    namespace_selector: LabelSelector
    pod_selector: LabelSelector
    """Empty for a ``namespaces`` subject (every pod of the namespaces)."""


@dataclass(frozen=True)
class AdminPeer:
    """One ``from``/``to`` entry of a tiered rule; exactly one kind of peer is set."""

    namespace_selector: LabelSelector | None = None
    """``namespaces`` (pod selector ``None``) or ``pods``: pods in the namespaces it selects."""
    pod_selector: LabelSelector | None = None
    nodes: bool = False
    """``nodes: {}``: the addresses of every node (egress only)."""
    networks: tuple[IPNetwork, ...] = ()
    """``networks``: these CIDRs, pods included (egress only)."""


@dataclass(frozen=True)
class AdminRule:
    """One ingress/egress rule of a tiered policy."""

    name: str
    action: Action
    peers: tuple[AdminPeer, ...]
    ports: tuple[PortSpec, ...] | None = None
    """``None`` when absent: every port."""


@dataclass(frozen=True)
class AdminNetworkPolicy:
    """An AdminNetworkPolicy: evaluated before NetworkPolicies, lower ``priority`` first."""

    name: str
    priority: int
    subject: Subject
    ingress: tuple[AdminRule, ...] = ()
    egress: tuple[AdminRule, ...] = ()


@dataclass(frozen=True)
class BaselineAdminNetworkPolicy:
    """The BaselineAdminNetworkPolicy (always named ``default``): applies where no NetworkPolicy isolates."""

    subject: Subject
    ingress: tuple[AdminRule, ...] = ()
    egress: tuple[AdminRule, ...] = ()
    name: str = "default"


def parse_admin(doc: Mapping[str, Any]) -> AdminNetworkPolicy:
    """One AdminNetworkPolicy manifest, checked as its CRD validation checks it.

    Raises:
        InputError: The manifest is malformed or uses a peer the engine cannot evaluate.
    """
    name = Field("AdminNetworkPolicy", "metadata", doc.get("metadata")).child("name").string()
    spec = Field(f"AdminNetworkPolicy {name}", "", doc).child("spec")
    spec.mapping(("priority", "subject", "ingress", "egress"))
    return AdminNetworkPolicy(
        name=name, priority=spec.child("priority").integer(0, 1000), subject=_subject(spec.child("subject")),
        ingress=tuple(_rule(r, "from", pass_ok=True) for r in spec.child("ingress").items() or ()),
        egress=tuple(_rule(r, "to", pass_ok=True) for r in spec.child("egress").items() or ()),
    )


def parse_baseline(doc: Mapping[str, Any]) -> BaselineAdminNetworkPolicy:
    """The BaselineAdminNetworkPolicy manifest (its name must be ``default``).

    Raises:
        InputError: The manifest is malformed or uses a peer the engine cannot evaluate.
    """
    name_field = Field("BaselineAdminNetworkPolicy", "metadata", doc.get("metadata")).child("name")
    name = name_field.string()
    if name != "default":
        raise name_field.fail(f"{name!r} must be 'default' (there is one baseline per cluster)")
    spec = Field("BaselineAdminNetworkPolicy default", "", doc).child("spec")
    spec.mapping(("subject", "ingress", "egress"))
    return BaselineAdminNetworkPolicy(
        subject=_subject(spec.child("subject")),
        ingress=tuple(_rule(r, "from", pass_ok=False) for r in spec.child("ingress").items() or ()),
        egress=tuple(_rule(r, "to", pass_ok=False) for r in spec.child("egress").items() or ()),
    )


def _subject(field: Field) -> Subject:
    field.mapping(("namespaces", "pods"))
    if field.only_one(("namespaces", "pods")) == "namespaces":
        return Subject(selector(field.child("namespaces")), LabelSelector())
    namespaces, pods = _namespaced_pods(field.child("pods"))
    return Subject(namespaces, pods)


def _namespaced_pods(field: Field) -> tuple[LabelSelector, LabelSelector]:
    field.mapping(("namespaceSelector", "podSelector"))
    for key in ("namespaceSelector", "podSelector"):
        if not field.child(key).present:
            raise field.child(key).fail("is missing (use {} to select all)")
    return selector(field.child("namespaceSelector")), selector(field.child("podSelector"))


def _rule(field: Field, peers_key: str, *, pass_ok: bool) -> AdminRule:
    field.mapping(("name", peers_key, "ports", "action"))
    actions = ("Allow", "Deny", "Pass") if pass_ok else ("Allow", "Deny")
    action = field.child("action")
    if action.value not in actions:
        problem = "is missing" if action.value is None else f"{action.value!r} is not one of {', '.join(actions)}"
        raise action.fail(problem)
    peers = field.child(peers_key).items()
    if not peers:
        raise field.child(peers_key).fail("must list at least one peer")
    name = field.child("name")
    # No ports, or an empty list, match every port (as implementations read ``len(ports) == 0``).
    ports = tuple(_port(p) for p in field.child("ports").items() or ())
    return AdminRule(
        name=name.string() if name.value is not None else "",
        action=Action(action.value),
        peers=tuple(_peer(p, egress=peers_key == "to") for p in peers),
        ports=ports or None,
    )


def _peer(field: Field, *, egress: bool) -> AdminPeer:
    kinds = ("namespaces", "pods", "nodes", "networks", "domainNames") if egress else ("namespaces", "pods")
    field.mapping(kinds)
    kind = field.only_one(kinds)
    value = field.child(kind)
    if kind == "namespaces":
        return AdminPeer(namespace_selector=selector(value))
    if kind == "pods":
        namespaces, pods = _namespaced_pods(value)
        return AdminPeer(namespace_selector=namespaces, pod_selector=pods)
    if kind == "nodes":
        if selector(value) != LabelSelector():
            raise value.fail("selects nodes by label, which the inventory does not record (only {} is supported)")
        return AdminPeer(nodes=True)
    if kind == "networks":
        networks = tuple(cidr(n) for n in value.items() or ())
        if not networks:
            raise value.fail("must list at least one CIDR")
        return AdminPeer(networks=networks)
    raise value.fail("is not supported: a snapshot does not say which addresses a domain name had")


def _port(field: Field) -> PortSpec:
    field.mapping(("portNumber", "namedPort", "portRange"))
    kind = field.only_one(("portNumber", "namedPort", "portRange"))
    value = field.child(kind)
    if kind == "namedPort":
        return PortSpec(None, port_name(value))
    if kind == "portNumber":
        value.mapping(("protocol", "port"))
        return PortSpec(protocol(value.child("protocol")), port_number(value.child("port")))
    value.mapping(("protocol", "start", "end"))
    start, end = port_number(value.child("start")), port_number(value.child("end"))
    if end <= start:
        raise value.child("end").fail(f"{end} must be greater than start {start}")
    return PortSpec(protocol(value.child("protocol")), start, end)
