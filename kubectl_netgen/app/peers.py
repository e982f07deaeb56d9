"""``neighbors``: who each captured workload talks to and who talks to it, before any policy is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from kubectl_netgen.app.captures import Warn
from kubectl_netgen.app.cluster import LiveCluster
from kubectl_netgen.app.sources import ReverseDns, decode_pods
from kubectl_netgen.identity import Peer, PeerKind
from kubectl_netgen.model import Flow, IPAddress, PolicyDirection, Protocol, WorkloadRef
from kubectl_netgen.pcap import CaptureReport


@dataclass(frozen=True)
class Neighbor:
    """One peer of a captured workload on one protocol and port, summed over the workload's pods and flows.

    Flows to a Service count once for each backend they resolved to, since a capture does not say which
    backend served them; pod peers are one per workload, address peers one per address.
    """

    direction: PolicyDirection
    """``egress``: the workload opened the connections; ``ingress``: the peer did."""
    kind: PeerKind
    """What the peer is, including the kinds ``generate`` ignores or warns about."""
    workload: WorkloadRef | None
    """The peer's workload (a pod, itself, or the hostNetwork pod serving on a node)."""
    service: tuple[str, str] | None
    """(namespace, name) of the Service the peer was reached through."""
    ip: IPAddress | None
    """The peer's address when it is not a pod (node, external, Service endpoint, loopback, unknown pod)."""
    node: str | None
    """The node's name when the address is a node's."""
    names: tuple[str, ...]
    """Sorted DNS names the peer's addresses were known by."""
    protocol: Protocol
    """Transport protocol."""
    port: int | None
    """Server port: the peer's (Service ``targetPort``) for egress, the workload's own for ingress; ``None``
    for ICMP."""
    service_port: int | None
    """The Service port that was dialed, when reached through a Service."""
    connections: int
    packets: int
    bytes: int
    first_seen: int = 0
    """Earliest ``first_seen`` (ns since the epoch) of the flows summed here; 0 when none says (socket tables)."""
    last_seen: int = 0
    """Latest ``last_seen`` (ns since the epoch) of the flows summed here; 0 when none says."""


@dataclass(frozen=True)
class WorkloadNeighbors:
    """A captured workload, the pods of it that were captured, and who it talked to."""

    workload: WorkloadRef
    pods: list[str]
    """Sorted names of its captured pods."""
    egress: list[Neighbor]
    ingress: list[Neighbor]


@dataclass(frozen=True)
class NeighborsResult:
    """Who each captured workload talks to and who talks to it."""

    workloads: list[WorkloadNeighbors]
    """Sorted by namespace, kind, name."""
    flows: int
    """Flows read from the captures."""
    reports: list[CaptureReport]


_NeighborKey = tuple[PolicyDirection, PeerKind, WorkloadRef | None, tuple[str, str] | None, IPAddress | None,
                     str | None, Protocol, int | None, int | None]


def _neighbor_key(direction: PolicyDirection, peer: Peer, flow: Flow) -> _NeighborKey:
    pod_like = peer.kind in (PeerKind.POD, PeerKind.SELF)
    port = peer.port if direction is PolicyDirection.EGRESS else flow.dst_port
    return (direction, peer.kind, peer.workload, peer.service, None if pod_like else peer.ip, peer.node,
            flow.protocol, port, peer.service_port)


def _neighbor_order(n: Neighbor) -> tuple[Any, ...]:
    workload = ("", "", "") if n.workload is None else (n.workload.namespace, n.workload.kind.value, n.workload.name)
    ip = (0, 0) if n.ip is None else (n.ip.version, int(n.ip))
    return (n.kind.value, workload, n.service or ("", ""), ip, n.node or "", n.protocol.value,
            -1 if n.port is None else n.port, -1 if n.service_port is None else n.service_port)


def neighbors(
    sources: Sequence[str],
    *,
    pods: Sequence[str] = (),
    cluster: str | None = None,
    live: LiveCluster | None = None,
    reverse: ReverseDns | None = None,
    stdin: BinaryIO | None = None,
    strict: bool = False,
    warn: Warn,
) -> NeighborsResult:
    """Say, per captured workload, who it talks to and who talks to it: what ``generate`` builds policies from.

    Args:
        sources: A capture directory, or pcap files.
        pods: ``NAMESPACE/NAME`` of the pod behind each pcap file (not for a capture directory).
        cluster: The inventory file; a capture directory brings its own.
        live: The cluster to read the inventory from when there is no file; ``None``: a file is required.
        reverse: Reverse DNS for external addresses no DNS answer named (default: on, system resolver).
        stdin: Binary standard input (``-`` as a pcap file).
        strict: Treat a damaged capture as an error.
        warn: Receives one line per warning.

    Returns:
        The neighbours of every captured workload, and a summary of what was read.

    Raises:
        InputError: Bad sources, no inventory, a pod the inventory does not know.
        ClusterError: The live cluster cannot be read.
        DecodeError: A damaged capture with ``strict``.
    """
    from kubectl_netgen.identity import Lookups, resolve_flows

    decoded = decode_pods(sources, pods, cluster, live=live, stdin=stdin, strict=strict, warn=warn,
                          reverse=reverse)
    captured: dict[WorkloadRef, set[str]] = {}
    totals: dict[WorkloadRef, dict[_NeighborKey, list[int]]] = {}
    names: dict[tuple[WorkloadRef, _NeighborKey], set[str]] = {}
    flow_count = 0
    lookups = Lookups(decoded.inventory)  # built once, not once per captured pod
    for own, pod_flows in decoded.pods:
        captured.setdefault(own.workload, set()).add(own.name)
        found = totals.setdefault(own.workload, {})
        flow_count += len(pod_flows)
        for resolved in resolve_flows(decoded.inventory, own, pod_flows, decoded.names, lookups):
            flow = resolved.flow
            keys: dict[_NeighborKey, None] = {}  # a Service's backends in one workload count the flow once
            for peer in resolved.peers:
                key = _neighbor_key(resolved.direction, peer, flow)
                keys[key] = None
                names.setdefault((own.workload, key), set()).update(peer.names)
            for key in keys:
                sums = found.setdefault(key, [0, 0, 0, 0, 0])
                sums[0] += flow.connections
                sums[1] += flow.packets
                sums[2] += flow.bytes
                if flow.first_seen > 0 and (not sums[3] or flow.first_seen < sums[3]):
                    sums[3] = flow.first_seen
                sums[4] = max(sums[4], flow.last_seen)
    result = []
    for ref in sorted(captured, key=lambda r: (r.namespace, r.kind.value, r.name)):
        entries = [
            Neighbor(direction=key[0], kind=key[1], workload=key[2], service=key[3], ip=key[4], node=key[5],
                     names=tuple(sorted(names[(ref, key)])), protocol=key[6], port=key[7], service_port=key[8],
                     connections=sums[0], packets=sums[1], bytes=sums[2], first_seen=sums[3], last_seen=sums[4])
            for key, sums in totals[ref].items()
        ]
        entries.sort(key=_neighbor_order)
        result.append(WorkloadNeighbors(
            ref, sorted(captured[ref]),
            [n for n in entries if n.direction is PolicyDirection.EGRESS],
            [n for n in entries if n.direction is PolicyDirection.INGRESS]))
    return NeighborsResult(result, flow_count, decoded.reports)
