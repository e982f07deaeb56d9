"""A small NetworkPolicy evaluator for tests: enough to check what generated policies mean.

It handles ``matchLabels`` pod and namespace selectors (namespaces by ``kubernetes.io/metadata.name``),
ipBlocks and port/endPort ranges; the evaluator issue brings the full engine. A flow from pod A to
pod B is allowed when A's egress and B's ingress both allow it; this checks one side at a time.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a ``matchLabels`` selector selects ``labels``."""
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def peer_matches(peer: dict[str, Any], policy_ns: str, ip: str, pod: Any | None) -> bool:
    """Whether one ``from``/``to`` peer matches the remote address (and its pod, if any)."""
    if "ipBlock" in peer:
        return ip_address(ip) in ip_network(peer["ipBlock"]["cidr"])
    if pod is None:
        return False
    ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name", policy_ns)
    return bool(ns == pod.namespace and selects(peer.get("podSelector", {}), dict(pod.labels)))


def allows(policies: list[dict[str, Any]], pod: Any, direction: str, remote_ip: str, remote_pod: Any | None,
           protocol: str, port: int) -> bool:
    """Whether ``pod``'s policies allow its side (``ingress``/``egress``) of a flow with the remote end."""
    key, side = ("ingress", "from") if direction == "ingress" else ("egress", "to")
    selecting = [p for p in policies if p["metadata"]["namespace"] == pod.namespace
                 and selects(p["spec"]["podSelector"], dict(pod.labels))
                 and key.capitalize() in p["spec"]["policyTypes"]]
    if not selecting:
        return True
    return any(
        any(peer_matches(peer, p["metadata"]["namespace"], remote_ip, remote_pod) for peer in rule[side])
        and any(q["protocol"] == protocol and q["port"] <= port <= q.get("endPort", q["port"]) for q in rule["ports"])
        for p in selecting for rule in p["spec"].get(key, [])
    )
