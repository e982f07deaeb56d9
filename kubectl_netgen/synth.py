"""Observed traffic -> a small, readable, least-privilege set of NetworkPolicies.

Pure: observations in, ``networking.k8s.io/v1`` NetworkPolicy manifests (plain dicts) out.

* One policy per captured workload, in its namespace, named ``<workload>-netgen``, selecting the
  workload's pods with its own selector.
* Peers are labels, never names: a workload's selector (with a ``namespaceSelector`` on
  ``kubernetes.io/metadata.name`` when it lives in another namespace), or an ``ipBlock`` for
  addresses outside the cluster's pods.
* One rule per peer, all its ports merged into it; ports may become ``endPort`` ranges on request.
  The protocol is always explicit.
* Whenever egress is restricted, DNS to the cluster DNS pods is allowed, observed or not.
* Everything is sorted, so the same observations always give the same manifests.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
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
    """The peer pods' namespace (for a selector peer)."""
    selector: LabelSelector | None = None
    """The peer workload's pod selector; ``None`` for an IP block."""
    cidr: str | None = None
    """``a.b.c.d/32`` or ``x::y/128`` for an IP-block peer."""
    names: tuple[str, ...] = ()
    """What is known of an IP block: DNS names, or a note such as ``node node-b``."""

    def sort_key(self) -> tuple[int, str, str, str]:
        """Selectors before IP blocks; then by namespace, selector and address."""
        if self.cidr is not None:
            return (1, "", "", _cidr_key(self.cidr))
        return (0, self.namespace or "", json.dumps(selector_manifest(self.selector), sort_keys=True), "")


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


def _cidr_key(cidr: str) -> str:
    from ipaddress import ip_network

    network = ip_network(cidr, strict=False)
    return f"{network.version}:{int(network.network_address):040d}/{network.prefixlen:03d}"


def selector_manifest(selector: LabelSelector | None) -> dict[str, Any]:
    """A label selector as it stands in a manifest (``{}`` selects everything)."""
    if selector is None:
        return {}
    out: dict[str, Any] = {}
    if selector.match_labels:
        out["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
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


def _peer_manifest(peer: PolicyPeer, own_namespace: str) -> dict[str, Any]:
    if peer.cidr is not None:
        return {"ipBlock": {"cidr": peer.cidr}}
    out: dict[str, Any] = {}
    if peer.namespace != own_namespace:
        out["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: peer.namespace}}
    out["podSelector"] = selector_manifest(peer.selector)
    return out


def _ports_manifest(ports: Iterable[tuple[Protocol, int]], ranges: bool) -> list[dict[str, Any]]:
    ordered = sorted(set(ports), key=lambda p: (p[0].value, p[1]))
    out: list[dict[str, Any]] = []
    for protocol, port in ordered:
        last = out[-1] if out else None
        if (ranges and last is not None and last["protocol"] == protocol.value
                and last.get("endPort", last["port"]) == port - 1):
            last["endPort"] = port
            continue
        out.append({"protocol": protocol.value, "port": port})
    return out


def _rules(observations: Iterable[Observation], own_namespace: str, ranges: bool) -> list[dict[str, Any]]:
    by_peer: dict[PolicyPeer, set[tuple[Protocol, int]]] = {}
    for o in observations:
        by_peer.setdefault(o.peer, set()).add((o.protocol, o.port))
    return [
        {"peer": _peer_manifest(peer, own_namespace), "ports": _ports_manifest(ports, ranges)}
        for peer, ports in sorted(by_peer.items(), key=lambda item: item[0].sort_key())
    ]


def synthesize(
    observations: Iterable[Observation],
    *,
    workloads: Iterable[Workload] = (),
    mode: Mode = Mode.BOTH,
    dns: PolicyPeer | None = None,
    port_ranges: bool = False,
) -> list[dict[str, Any]]:
    """Build one NetworkPolicy per workload that allows exactly what was observed.

    Args:
        observations: What each captured workload sent and received.
        workloads: Captured workloads; one without observations still gets a (deny-all) policy.
        mode: Which directions to restrict.
        dns: The cluster DNS pods; when given, egress to them on UDP and TCP 53 is always allowed.
        port_ranges: Merge consecutive ports of a peer into ``port``/``endPort`` ranges.

    Returns:
        NetworkPolicy manifests, sorted by namespace and name.
    """
    grouped: dict[Workload, list[Observation]] = {w: [] for w in workloads}
    for o in observations:
        grouped.setdefault(o.workload, []).append(o)
    policies: list[dict[str, Any]] = []
    for workload, seen in grouped.items():
        namespace = workload.ref.namespace
        types: list[str] = []
        spec: dict[str, Any] = {"podSelector": selector_manifest(workload.selector), "policyTypes": types}
        external: dict[str, list[str]] = {}
        if mode in (Mode.BOTH, Mode.INGRESS):
            types.append("Ingress")
            inbound = [o for o in seen if o.direction is PolicyDirection.INGRESS]
            rules = _rules(inbound, namespace, port_ranges)
            if rules:
                spec["ingress"] = [{"from": [r["peer"]], "ports": r["ports"]} for r in rules]
            _collect_names(inbound, external)
        if mode in (Mode.BOTH, Mode.EGRESS):
            types.append("Egress")
            outbound = [o for o in seen if o.direction is PolicyDirection.EGRESS]
            if dns is not None:
                outbound += [Observation(workload, PolicyDirection.EGRESS, dns, proto, port)
                             for proto, port in DNS_PORTS]
            rules = _rules(outbound, namespace, port_ranges)
            if rules:
                spec["egress"] = [{"to": [r["peer"]], "ports": r["ports"]} for r in rules]
            _collect_names(outbound, external)
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


def _collect_names(observations: Iterable[Observation], into: dict[str, list[str]]) -> None:
    for o in observations:
        if o.peer.cidr is not None and o.peer.names:
            into[o.peer.cidr] = sorted(set(into.get(o.peer.cidr, [])) | set(o.peer.names))


def external_names(policies: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """CIDR -> names over a policy set (from the annotations), for comments beside ipBlocks."""
    names: dict[str, list[str]] = {}
    for policy in policies:
        raw = policy.get("metadata", {}).get("annotations", {}).get(EXTERNAL_PEERS_ANNOTATION)
        if raw:
            for cidr, values in json.loads(raw).items():
                names[cidr] = sorted(set(names.get(cidr, [])) | set(values))
    return names
