"""Observed traffic -> a small, readable, least-privilege set of NetworkPolicies.

Pure: observations in, ``networking.k8s.io/v1`` NetworkPolicy manifests (plain dicts) out.

* One policy per captured workload, in its namespace, named ``<workload>-netgen``, selecting the
  workload's pods with its own selector.
* Peers are labels, never names: a workload's selector (with a ``namespaceSelector`` on
  ``kubernetes.io/metadata.name`` when it lives in another namespace), or an ``ipBlock`` for
  addresses outside the cluster's pods.
* One rule per set of ports: every peer allowed on exactly the same ports shares it, so identical rules
  never repeat; ports may become ``endPort`` ranges on request. The protocol is always explicit.
* Whenever egress is restricted, DNS to the cluster DNS pods is allowed, observed or not.
* Everything is sorted, so the same observations always give the same manifests.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_netgen.model import LabelSelector, PolicyDirection, Protocol, Workload

MANAGED_BY = {"app.kubernetes.io/managed-by": "kubectl-netgen"}
EXTERNAL_PEERS_ANNOTATION = "netgen.io/external-peers"
"""JSON object on each policy: ipBlock CIDR -> the names (DNS answers, notes) behind it."""
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
MAX_NAME = 253
DNS_PORTS = ((Protocol.UDP, 53), (Protocol.TCP, 53))


class Mode(str, enum.Enum):
    """Which directions the generated policies restrict (``--mode``)."""

    BOTH = "both"
    INGRESS = "ingress"
    EGRESS = "egress"


@dataclass(frozen=True)
class PolicyPeer:
    """The other side of a flow, in NetworkPolicy terms: pods by selector, or an IP block."""

    namespace: str | None = None
    """The peer pods' namespace (for a selector peer); ``None`` with a selector: every namespace."""
    selector: LabelSelector | None = None
    """The peer workload's pod selector; ``None`` for an IP block."""
    cidr: str | None = None
    """``a.b.c.d/32`` or ``x::y/128`` for an IP-block peer."""
    names: tuple[str, ...] = ()
    """What is known of an IP block: DNS names, or a note such as ``node node-b``."""

    def sort_key(self) -> tuple[int, str, str, str]:
        """Selectors before IP blocks; then by namespace, selector and address."""
        return self._sort_key

    @functools.cached_property
    def _sort_key(self) -> tuple[int, str, str, str]:
        # Cached: a large capture puts one peer into the rules of many workloads.
        if self.cidr is not None:
            return (1, "", "", _cidr_key(self.cidr))
        return (0, self.namespace or "", json.dumps(selector_manifest(self.selector), sort_keys=True), "")

    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.namespace, self.selector, self.cidr, self.names))

    def __hash__(self) -> int:
        """The fields' hash, computed once: peers are dictionary keys in every workload's rules."""
        return self._hash


@dataclass(frozen=True)
class Observation:
    """One allowed thing: the captured workload talked to (or was reached by) a peer on a port."""

    workload: Workload
    """The captured workload whose policy gets the rule."""
    direction: PolicyDirection
    peer: PolicyPeer
    protocol: Protocol
    port: int
    """Ingress: the workload's own (server) port. Egress: the peer's port, translated to the backend."""


Allowed = tuple[PolicyDirection, PolicyPeer, Protocol, int]
"""What one workload's policy must allow: an :class:`Observation` without its workload."""


def _cidr_key(cidr: str) -> str:
    from ipaddress import ip_network

    network = ip_network(cidr, strict=False)
    return f"{network.version}:{int(network.network_address):040d}/{network.prefixlen:03d}"


def selector_manifest(selector: LabelSelector | None) -> dict[str, Any]:
    """A label selector as it stands in a manifest (``{}`` selects everything)."""
    if selector is None:
        return {}
    if not selector.match_expressions:  # the common case, kept short: one call per rule of a large policy set
        return {"matchLabels": dict(selector.match_labels)} if selector.match_labels else {}
    out: dict[str, Any] = {}
    if selector.match_labels:
        out["matchLabels"] = dict(selector.match_labels)
    out["matchExpressions"] = [
        {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
        for r in selector.match_expressions
    ]
    return out


def policy_name(workload: Workload) -> str:
    """``<workload>-netgen``, a valid DNS-1123 subdomain; long names are cut and keep a short hash."""
    base = f"{workload.ref.name}-netgen"
    if len(base) <= MAX_NAME:
        return base
    digest = hashlib.sha256(workload.ref.name.encode()).hexdigest()[:8]
    return f"{workload.ref.name[: MAX_NAME - len('-netgen') - 9]}-{digest}-netgen"


ANY_POD = PolicyPeer(None, LabelSelector())
"""Every pod of every namespace (``namespaceSelector: {}``): the clients of a cluster-wide server."""


def _peer_manifest(peer: PolicyPeer, own_namespace: str) -> dict[str, Any]:
    if peer.cidr is not None:
        return {"ipBlock": {"cidr": peer.cidr}}
    if peer.namespace is None:
        out_any: dict[str, Any] = {"namespaceSelector": {}}
        if peer.selector is not None and (peer.selector.match_labels or peer.selector.match_expressions):
            out_any["podSelector"] = selector_manifest(peer.selector)
        return out_any
    out: dict[str, Any] = {}
    if peer.namespace != own_namespace:
        out["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: peer.namespace}}
    out["podSelector"] = selector_manifest(peer.selector)
    return out


def _ports_manifest(ports: Iterable[tuple[Protocol, int]], ranges: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for protocol, port in sorted(set(ports)):  # Protocol is a str enum: sorts by its value
        name = protocol.value
        if ranges and last is not None and last["protocol"] == name and last.get("endPort", last["port"]) == port - 1:
            last["endPort"] = port
            continue
        last = {"protocol": name, "port": port}
        out.append(last)
    return out


class _Manifests:
    """The peer and port manifests of one policy set, each distinct one built once and then shared.

    A large capture gives thousands of rules naming the same few peers and ports; sharing their
    manifests (plain dicts and lists, never changed after this) saves building them again and lets
    the renderer write each once.
    """

    def __init__(self, ranges: bool) -> None:
        self.ranges = ranges
        self.peers: dict[tuple[PolicyPeer, bool], dict[str, Any]] = {}
        self.ports: dict[frozenset[tuple[Protocol, int]], list[dict[str, Any]]] = {}

    def peer(self, peer: PolicyPeer, own_namespace: str) -> dict[str, Any]:
        key = (peer, peer.namespace == own_namespace)
        found = self.peers.get(key)
        if found is None:
            found = self.peers[key] = _peer_manifest(peer, own_namespace)
        return found

    def port_list(self, ports: set[tuple[Protocol, int]]) -> list[dict[str, Any]]:
        key = frozenset(ports)
        found = self.ports.get(key)
        if found is None:
            found = self.ports[key] = _ports_manifest(key, self.ranges)
        return found

    def rules(self, allowed: Iterable[Allowed], own_namespace: str, side: str,
              names: dict[str, list[str]]) -> list[dict[str, Any]]:
        """One rule per distinct port set (``side``: ``from`` or ``to``), naming every peer allowed on exactly it.

        Peers that share a port set share the rule, so no two rules are alike; rules are ordered by their
        first peer. IP-block names go into ``names``.
        """
        by_peer: dict[PolicyPeer, set[tuple[Protocol, int]]] = {}
        for _, peer, protocol, port in allowed:
            ports = by_peer.get(peer)
            if ports is None:
                ports = by_peer[peer] = set()
            ports.add((protocol, port))
        by_ports: dict[frozenset[tuple[Protocol, int]], list[PolicyPeer]] = {}
        for peer in sorted(by_peer, key=PolicyPeer.sort_key):
            if peer.cidr is not None and peer.names:
                names[peer.cidr] = sorted(set(names.get(peer.cidr, ())) | set(peer.names))
            by_ports.setdefault(frozenset(by_peer[peer]), []).append(peer)
        return [{side: [self.peer(peer, own_namespace) for peer in peers], "ports": self.port_list(set(ports))}
                for ports, peers in by_ports.items()]  # insertion order: by each rule's first peer


def synthesize(
    observations: Iterable[Observation],
    *,
    workloads: Iterable[Workload] = (),
    mode: Mode = Mode.BOTH,
    dns: PolicyPeer | None = None,
    dns_ports: Sequence[tuple[Protocol, int]] = DNS_PORTS,
    port_ranges: bool = False,
) -> list[dict[str, Any]]:
    """Build one NetworkPolicy per workload that allows exactly what was observed.

    Args:
        observations: What each captured workload sent and received.
        workloads: Captured workloads; one without observations still gets a (deny-all) policy.
        mode: Which directions to restrict.
        dns: The cluster DNS pods; when given, egress to them on ``dns_ports`` is always allowed.
        dns_ports: The ports the DNS pods serve on (after the Service's translation): UDP and TCP 53.
        port_ranges: Merge consecutive ports of a peer into ``port``/``endPort`` ranges.

    Returns:
        NetworkPolicy manifests, sorted by namespace and name.
    """
    grouped: dict[Workload, list[Allowed]] = {w: [] for w in workloads}
    for o in observations:
        grouped.setdefault(o.workload, []).append((o.direction, o.peer, o.protocol, o.port))
    return policies_for(grouped, mode=mode, dns=dns, dns_ports=dns_ports, port_ranges=port_ranges)


def policies_for(
    allowed: Mapping[Workload, Iterable[Allowed]],
    *,
    mode: Mode = Mode.BOTH,
    dns: PolicyPeer | None = None,
    dns_ports: Sequence[tuple[Protocol, int]] = DNS_PORTS,
    port_ranges: bool = False,
) -> list[dict[str, Any]]:
    """Like :func:`synthesize`, from what each workload must allow, already grouped by workload.

    Args:
        allowed: Per captured workload, what its policy must allow (possibly nothing: deny all).
        mode: Which directions to restrict.
        dns: The cluster DNS pods; when given, egress to them on ``dns_ports`` is always allowed.
        dns_ports: The ports the DNS pods serve on (after the Service's translation): UDP and TCP 53.
        port_ranges: Merge consecutive ports of a peer into ``port``/``endPort`` ranges.

    Returns:
        NetworkPolicy manifests, sorted by namespace and name. Rules naming the same peer or the same
        ports share those parts (the same dict or list object): copy a manifest before changing it.
    """
    manifests = _Manifests(port_ranges)
    policies: list[dict[str, Any]] = []
    for workload, seen in allowed.items():
        namespace = workload.ref.namespace
        inbound: list[Allowed] = []
        outbound: list[Allowed] = []
        for item in seen:
            (outbound if item[0] is PolicyDirection.EGRESS else inbound).append(item)
        types: list[str] = []
        spec: dict[str, Any] = {"podSelector": selector_manifest(workload.selector), "policyTypes": types}
        external: dict[str, list[str]] = {}
        if mode in (Mode.BOTH, Mode.INGRESS):
            types.append("Ingress")
            rules = manifests.rules(inbound, namespace, "from", external)
            if rules:
                spec["ingress"] = rules
        if mode in (Mode.BOTH, Mode.EGRESS):
            types.append("Egress")
            if dns is not None:
                outbound += [(PolicyDirection.EGRESS, dns, proto, port) for proto, port in dns_ports]
            rules = manifests.rules(outbound, namespace, "to", external)
            if rules:
                spec["egress"] = rules
        metadata: dict[str, Any] = {"name": policy_name(workload), "namespace": namespace,
                                    "labels": dict(MANAGED_BY)}
        if external:
            metadata["annotations"] = {
                EXTERNAL_PEERS_ANNOTATION: json.dumps({c: external[c] for c in sorted(external, key=_cidr_key)},
                                                      separators=(",", ":"))
            }
        policies.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata,
                         "spec": spec})
    policies.sort(key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    return policies


def external_names(policies: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """CIDR -> names over a policy set (from the annotations), for comments beside ipBlocks."""
    names: dict[str, list[str]] = {}
    for policy in policies:
        raw = policy.get("metadata", {}).get("annotations", {}).get(EXTERNAL_PEERS_ANNOTATION)
        if raw:
            for cidr, values in json.loads(raw).items():
                names[cidr] = sorted(set(names.get(cidr, [])) | set(values))
    return names
