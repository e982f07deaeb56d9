"""Use cases of kubectl-netgen, wiring decoders and the pure core together.

No typer, no rich, no printing: results come back as values, warnings go
through the ``warn`` callable the CLI passes in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from kubectl_netgen import flows as flowfold
from kubectl_netgen.capturedir import is_capture_dir, read_capture_dir
from kubectl_netgen.errors import DecodeError, InputError
from kubectl_netgen.identity import Peer, PeerKind
from kubectl_netgen.model import (
    Flow,
    Inventory,
    IPAddress,
    LabelSelector,
    Pod,
    PolicyDirection,
    Protocol,
    Workload,
    WorkloadRef,
)
from kubectl_netgen.pcap import CaptureReport, DnsSink, Scanner, linktype_name, open_capture
from kubectl_netgen.synth import Mode, Observation, PolicyPeer, external_names, synthesize

if TYPE_CHECKING:
    from kubectl_netgen.dns import AddressResolver

Warn = Callable[[str], None]


@dataclass(frozen=True)
class FlowsResult:
    """Flows of a set of captures, and what reading each capture found."""

    flows: list[Flow]
    """Sorted flows, aggregated over every capture."""
    reports: list[CaptureReport]
    """One report per capture, in the order given."""


@dataclass(frozen=True)
class SnapshotResult:
    """A cluster snapshot read from the live cluster."""

    document: dict[str, Any]
    """The ``v1 List``, as ``kubectl get … -o json`` prints it."""
    namespace: str | None
    """The namespace it was restricted to; ``None`` for all namespaces."""
    counts: dict[str, int]
    """Items per kind, in snapshot order (kinds with no items included, as 0)."""


@dataclass(frozen=True)
class NamesResult:
    """Names DNS answers gave to addresses in a set of captures."""

    names: dict[IPAddress, list[str]]
    """Address -> sorted names."""
    responses: int
    """DNS responses that named at least one address."""
    reports: list[CaptureReport]
    """One report per capture, in the order given."""


def read_captures(
    paths: Sequence[str], *, stdin: BinaryIO | None, strict: bool, warn: Warn, dns_sink: DnsSink | None = None
) -> tuple[Scanner, list[CaptureReport]]:
    """Read every capture into one scanner, reporting damage as warnings (or errors if ``strict``).

    Raises:
        InputError: A capture is missing, unreadable or not a capture.
        DecodeError: A capture is damaged and ``strict`` is set.
    """
    if list(paths).count("-") > 1:
        raise InputError("'-' (stdin) can be given only once")
    scanner = Scanner(dns_sink)
    reports = []
    for path in paths:
        stream = open_capture(path, stdin)
        try:
            report = scanner.scan(stream, path)
        finally:
            if stream is not stdin:
                stream.close()
        _check(report, strict, warn)
        reports.append(report)
    return scanner, reports


def _check(report: CaptureReport, strict: bool, warn: Warn) -> None:
    name = report.name
    if report.damage:
        if strict:
            raise DecodeError(f"{name}: {report.damage} (without --strict, the packets before it are used)")
        warn(f"{name}: {report.damage}; using the {report.packets} packets read before it")
    for linktype, count in sorted(report.unsupported.items()):
        warn(f"{name}: skipped {count} packet(s) with unsupported link type {linktype_name(linktype)}")
    if report.invalid_timestamps:
        warn(f"{name}: {report.invalid_timestamps} packet(s) have an invalid timestamp (fraction out of range); "
             "their flows are counted but these packets do not set first/last seen")
    if report.short:
        warn(f"{name}: {report.short} packet(s) were cut by the snapshot length before their IP/transport "
             "headers and were skipped")
    if report.fragments_unmatched:
        warn(f"{name}: {report.fragments_unmatched} IP fragment(s) arrived without their first fragment "
             "(which carries the ports) and were skipped")


def flows(paths: Sequence[str], *, stdin: BinaryIO | None, strict: bool, warn: Warn) -> FlowsResult:
    """Decode captures and fold their packets into flows.

    Args:
        paths: Capture files; ``-`` reads ``stdin``.
        stdin: Binary standard input.
        strict: Treat a damaged capture as an error instead of a warning.
        warn: Receives one line per warning.

    Returns:
        The flows and the per-capture reports.
    """
    scanner, reports = read_captures(paths, stdin=stdin, strict=strict, warn=warn)
    return FlowsResult(flowfold.flows(scanner.table), reports)


def dns_names(paths: Sequence[str], *, stdin: BinaryIO | None, strict: bool, warn: Warn) -> NamesResult:
    """Collect the names DNS answers (port 53, UDP and TCP) gave to addresses in captures.

    Args:
        paths: Capture files; ``-`` reads ``stdin``.
        stdin: Binary standard input.
        strict: Treat a damaged capture as an error instead of a warning.
        warn: Receives one line per warning.

    Returns:
        Address -> sorted names, with the per-capture reports.
    """
    from kubectl_netgen.dns import DnsNames  # dnspython costs ~50 ms to import: only here

    names = DnsNames()
    _, reports = read_captures(paths, stdin=stdin, strict=strict, warn=warn, dns_sink=names.feed)
    incomplete = sum(r.dns_incomplete for r in reports)
    if incomplete:
        warn(f"{incomplete} DNS message(s) were cut short (snapshot length or missing TCP segments) and skipped")
    if names.malformed:
        warn(f"{names.malformed} DNS message(s) on port 53 could not be parsed and were skipped")
    return NamesResult(names.mapping(), names.responses, reports)


def snapshot(*, kubeconfig: str | None, context: str | None, namespace: str | None, all_namespaces: bool,
             warn: Warn) -> SnapshotResult:
    """Read the live cluster into a snapshot (the ``v1 List`` that ``--cluster FILE`` reads back).

    Args:
        kubeconfig: ``--kubeconfig``; ``None`` follows kubectl (``KUBECONFIG``, ``~/.kube/config``, in-cluster).
        context: ``--context``; ``None`` for the current context.
        namespace: ``-n``; ``None`` uses the context's namespace (``default`` if it names none).
        all_namespaces: ``-A``: read every namespace (``namespace`` must then be ``None``).
        warn: Receives one line per warning (kinds the server does not serve).

    Returns:
        The snapshot and per-kind counts.

    Raises:
        InputError: ``kubeconfig`` does not exist, or both ``namespace`` and ``all_namespaces`` are given.
        ClusterError: The cluster cannot be read (ForbiddenError: RBAC; NotFoundError: no such namespace).
    """
    from kubectl_netgen import kube  # the kubernetes client is imported only when a cluster is read

    if namespace is not None and all_namespaces:
        raise InputError("-n/--namespace and -A/--all-namespaces cannot be given together")
    cluster = kube.connect(kubeconfig, context)
    try:
        scope = None if all_namespaces else (namespace or cluster.namespace)
        document = cluster.snapshot(scope, warn)
    finally:
        cluster.close()
    counts = {res.kind: 0 for res in kube.RESOURCES}
    for item in document["items"]:
        counts[item["kind"]] += 1
    return SnapshotResult(document, scope, counts)


def read_cluster(path: str, warn: Warn) -> Inventory:
    """Read ``--cluster FILE`` (a snapshot) into an inventory, warning about what it lacks.

    Raises:
        InputError: The file is missing, not JSON, or not a ``v1 List``.
    """
    from kubectl_netgen import inventory

    result = inventory.read_snapshot(path, warn)
    for kind in result.missing:
        if kind in _MISSING_EFFECT:
            warn(f"{path}: no {kind}s in the snapshot: {_MISSING_EFFECT[kind]}")
    return result


_MISSING_EFFECT = {
    "EndpointSlice": "Service backends cannot be resolved",
    "Pod": "pod addresses cannot be resolved to workloads",
    "Service": "Service addresses cannot be resolved",
    "Node": "node addresses and pod networks are unknown",
    "Namespace": "namespace labels are unknown (namespaceSelectors use kubernetes.io/metadata.name)",
}
"""What a kind's absence from a snapshot costs. Controllers are often absent (no CronJobs) and their pods
still resolve (owners fall back to pod labels), so their absence is not worth a warning."""


@dataclass(frozen=True)
class GenerateResult:
    """Policies for the captured workloads, and how they came about."""

    policies: list[dict[str, Any]]
    """NetworkPolicy manifests, sorted by namespace and name."""
    names: dict[str, list[str]]
    """ipBlock CIDR -> names (for comments beside the ipBlocks)."""
    workloads: int
    """Captured workloads (one policy each)."""
    flows: int
    """Flows read from the captures."""
    ignored: int
    """Flows that need no rule: loopback, the pod itself, its own node (kubelet probes), ICMP."""
    reports: list[CaptureReport]


def _pod_captures(sources: Sequence[str], pods: Sequence[str], cluster: str | None) -> tuple[
        list[tuple[str, str, str]], str | None]:
    """(namespace, pod, capture path) per capture, and the cluster file to use (if any)."""
    if len(sources) == 1 and is_capture_dir(Path(sources[0])):
        if pods:
            raise InputError("--pod is for pcap files; a capture directory says which pod each capture is")
        found = read_capture_dir(Path(sources[0]))
        return [(p.namespace, p.pod, str(p.pcap)) for p in found.pods], cluster or str(found.cluster)
    if not sources:
        raise InputError("give a capture directory or pcap files (with --pod NS/NAME for each)")
    if len(pods) != len(sources):
        raise InputError(f"{len(sources)} pcap file(s) but {len(pods)} --pod option(s): give one --pod NS/NAME "
                         "per file, in the same order, or a capture directory")
    out = []
    for path, pod in zip(sources, pods, strict=True):
        namespace, sep, name = pod.partition("/")
        if not sep or not namespace or not name:
            raise InputError(f"--pod {pod!r} is not NAMESPACE/NAME")
        out.append((namespace, name, path))
    return out, cluster


def _policy_peer(peer: Peer, inventory: Inventory) -> PolicyPeer | None:
    if peer.kind is PeerKind.POD and peer.workload is not None:
        workload = inventory.workloads_by_ref.get(peer.workload)
        if workload is not None:
            return PolicyPeer(peer.workload.namespace, workload.selector)
    if peer.cidr is None:
        return None
    if peer.kind is PeerKind.NODE:
        return PolicyPeer(cidr=peer.cidr, names=(f"node {peer.node}",))
    if peer.kind is PeerKind.SERVICE_ENDPOINT_IP and peer.service is not None:
        return PolicyPeer(cidr=peer.cidr, names=(f"endpoint of Service {peer.service[0]}/{peer.service[1]}",))
    return PolicyPeer(cidr=peer.cidr, names=peer.names)


def _dns_peer(inventory: Inventory) -> PolicyPeer | None:
    for service in inventory.services:
        if (service.namespace, service.name) == ("kube-system", "kube-dns") and service.selector:
            return PolicyPeer("kube-system", LabelSelector(service.selector))
    return None


@dataclass(frozen=True)
class ReverseDns:
    """How to name external addresses that no DNS answer in the captures named: reverse (PTR) lookups."""

    enabled: bool = True
    """``--no-reverse-dns`` turns lookups off."""
    server: str | None = None
    """``--dns-server IP[:PORT]``; ``None`` uses the system's resolver configuration."""
    resolver: AddressResolver | None = None
    """An injected resolver (tests); overrides ``server``."""


def _reverse_names(inventory: Inventory, decoded: list[tuple[Pod, list[Flow]]], names: dict[IPAddress, list[str]],
                   reverse: ReverseDns, warn: Warn) -> dict[IPAddress, list[str]]:
    """Add PTR names for the external peers the captures' DNS answers left unnamed."""
    from kubectl_netgen.dns import ReverseResolver, merge_names, parse_server
    from kubectl_netgen.identity import Resolver, direction_of

    if reverse.server is not None:
        parse_server(reverse.server)  # a bad --dns-server is the user's error, whatever the capture holds
    if not reverse.enabled:
        return names

    # Whether a peer is external depends on its address alone, not its port: resolve each distinct remote
    # address once per pod rather than every flow (the callers resolve every flow afterwards, with the names).
    found_unnamed: set[IPAddress] = set()
    for own, flows in decoded:
        remotes: set[tuple[IPAddress, Protocol, bool]] = set()
        for flow in flows:
            direction = direction_of(own, flow)
            if direction is PolicyDirection.EGRESS:
                remotes.add((flow.dst, flow.protocol, True))
            elif direction is PolicyDirection.INGRESS:
                remotes.add((flow.src, flow.protocol, False))
        who = Resolver(inventory, own, names)
        for ip, protocol, services in remotes:
            found_unnamed.update(peer.ip for peer in who.resolve(ip, None, protocol, services=services)
                                 if peer.kind is PeerKind.EXTERNAL and not peer.names)
    unnamed = sorted(found_unnamed, key=lambda ip: (ip.version, int(ip)))
    if not unnamed:
        return names
    try:
        resolver = ReverseResolver(reverse.resolver, server=reverse.server)
    except InputError as e:
        warn(f"reverse DNS is not available ({e.message}); external addresses stay unnamed "
             "(pass --dns-server IP or --no-reverse-dns)")
        return names
    found = resolver.lookup(unnamed)
    stats = resolver.stats
    if stats.failed or stats.timed_out or stats.abandoned:
        warn(stats.summary())  # it starts with "reverse DNS:"
    return merge_names(names, found)


def _decode_pods(
    sources: Sequence[str], pods: Sequence[str], cluster: str | None, *, stdin: BinaryIO | None, strict: bool,
    warn: Warn, reverse: ReverseDns | None = None,
) -> tuple[Inventory, str, list[tuple[Pod, list[Flow]]], dict[IPAddress, list[str]], list[CaptureReport]]:
    """Read the inventory and decode every pod capture into (the captured pod, its flows).

    Returns:
        The inventory, the cluster file it came from, (pod, flows) per capture in capture order, the
        names of addresses (the captures' DNS answers, then reverse DNS for unnamed external peers),
        and one report per capture.

    Raises:
        InputError: Bad sources, a missing cluster file, a pod the inventory does not know.
        DecodeError: A damaged capture with ``strict``.
    """
    from kubectl_netgen.dns import DnsNames

    captures, cluster_file = _pod_captures(sources, pods, cluster)
    if cluster_file is None:
        raise InputError("no cluster inventory: pass --cluster FILE (from 'kubectl netgen snapshot -A > FILE')")
    inventory = read_cluster(cluster_file, warn)
    names = DnsNames()
    decoded: list[tuple[Pod, list[Flow]]] = []
    reports = []
    for namespace, name, path in captures:
        own = inventory.pods_by_name.get((namespace, name))
        if own is None:
            raise InputError(f"pod {namespace}/{name} (capture {path}) is not in {cluster_file}; "
                             "take the snapshot while the pod exists, or fix --pod")
        scanner, [report] = read_captures([path], stdin=stdin, strict=strict, warn=warn, dns_sink=names.feed)
        reports.append(report)
        decoded.append((own, flowfold.flows(scanner.table)))
    mapping = _reverse_names(inventory, decoded, names.mapping(), reverse or ReverseDns(), warn)
    return inventory, cluster_file, decoded, mapping, reports


def generate(
    sources: Sequence[str],
    *,
    pods: Sequence[str] = (),
    cluster: str | None = None,
    mode: Mode = Mode.BOTH,
    dns_rule: bool = True,
    port_ranges: bool = False,
    reverse: ReverseDns | None = None,
    stdin: BinaryIO | None = None,
    strict: bool = False,
    warn: Warn,
) -> GenerateResult:
    """Turn pod captures into least-privilege NetworkPolicies.

    Args:
        sources: A capture directory, or pcap files.
        pods: ``NAMESPACE/NAME`` of the pod behind each pcap file (not for a capture directory).
        cluster: The inventory file (``kubectl netgen snapshot`` output); a capture directory brings its own.
        mode: Which directions to restrict.
        dns_rule: Always allow DNS to the cluster DNS pods when egress is restricted.
        port_ranges: Merge consecutive ports into ``endPort`` ranges.
        reverse: Reverse DNS for external addresses no DNS answer named (default: on, system resolver).
        stdin: Binary standard input (``-`` as a pcap file).
        strict: Treat a damaged capture as an error.
        warn: Receives one line per warning.

    Returns:
        The policies and a summary of what was read.

    Raises:
        InputError: Bad sources, a missing cluster file, a pod the inventory does not know.
        DecodeError: A damaged capture with ``strict``.
    """
    from kubectl_netgen.identity import resolve_flows

    inventory, cluster_file, decoded, mapping, reports = _decode_pods(
        sources, pods, cluster, stdin=stdin, strict=strict, warn=warn, reverse=reverse)
    # One flow to a Service yields an observation per backend, mostly the same one; synthesis merges them anyway.
    observations: dict[Observation, None] = {}
    workloads: set[Workload] = set()
    flows = ignored = 0
    for own, pod_flows in decoded:
        workload = inventory.workloads_by_ref[own.workload]
        workloads.add(workload)
        flows += len(pod_flows)
        for resolved in resolve_flows(inventory, own, pod_flows, mapping):
            direction = resolved.direction
            for peer in resolved.peers:
                if peer.kind.ignored or peer.kind is PeerKind.OWN_NODE or resolved.flow.dst_port is None:
                    ignored += 1
                    continue
                if peer.kind.warning:
                    warn(f"{own.namespace}/{own.name}: {resolved.flow.protocol.value} {direction.value} "
                         f"{'to' if direction is PolicyDirection.EGRESS else 'from'} {peer.ip}: {peer.kind.value}; "
                         "no rule written")
                    continue
                policy_peer = _policy_peer(peer, inventory)
                if policy_peer is None:
                    ignored += 1
                    continue
                port = peer.port if direction is PolicyDirection.EGRESS else resolved.flow.dst_port
                if port is None:
                    ignored += 1
                    continue
                observations[Observation(workload, direction, policy_peer, resolved.flow.protocol, port)] = None
    dns = _dns_peer(inventory) if dns_rule else None
    if dns_rule and dns is None and mode is not Mode.INGRESS:
        warn(f"{cluster_file} has no kube-system/kube-dns Service with a selector: no DNS rule was added")
    policies = synthesize(observations, workloads=workloads, mode=mode, dns=dns, port_ranges=port_ranges)
    return GenerateResult(policies, external_names(policies), len(workloads), flows, ignored, reports)


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
        reverse: Reverse DNS for external addresses no DNS answer named (default: on, system resolver).
        stdin: Binary standard input (``-`` as a pcap file).
        strict: Treat a damaged capture as an error.
        warn: Receives one line per warning.

    Returns:
        The neighbours of every captured workload, and a summary of what was read.

    Raises:
        InputError: Bad sources, a missing cluster file, a pod the inventory does not know.
        DecodeError: A damaged capture with ``strict``.
    """
    from kubectl_netgen.identity import resolve_flows

    inventory, _, decoded, mapping, reports = _decode_pods(sources, pods, cluster, stdin=stdin, strict=strict,
                                                           warn=warn, reverse=reverse)
    captured: dict[WorkloadRef, set[str]] = {}
    totals: dict[WorkloadRef, dict[_NeighborKey, list[int]]] = {}
    names: dict[tuple[WorkloadRef, _NeighborKey], set[str]] = {}
    flow_count = 0
    for own, pod_flows in decoded:
        captured.setdefault(own.workload, set()).add(own.name)
        found = totals.setdefault(own.workload, {})
        flow_count += len(pod_flows)
        for resolved in resolve_flows(inventory, own, pod_flows, mapping):
            flow = resolved.flow
            keys: dict[_NeighborKey, None] = {}  # a Service's backends in one workload count the flow once
            for peer in resolved.peers:
                key = _neighbor_key(resolved.direction, peer, flow)
                keys[key] = None
                names.setdefault((own.workload, key), set()).update(peer.names)
            for key in keys:
                sums = found.setdefault(key, [0, 0, 0])
                sums[0] += flow.connections
                sums[1] += flow.packets
                sums[2] += flow.bytes
    result = []
    for ref in sorted(captured, key=lambda r: (r.namespace, r.kind.value, r.name)):
        entries = [
            Neighbor(direction=key[0], kind=key[1], workload=key[2], service=key[3], ip=key[4], node=key[5],
                     names=tuple(sorted(names[(ref, key)])), protocol=key[6], port=key[7], service_port=key[8],
                     connections=sums[0], packets=sums[1], bytes=sums[2])
            for key, sums in totals[ref].items()
        ]
        entries.sort(key=_neighbor_order)
        result.append(WorkloadNeighbors(
            ref, sorted(captured[ref]),
            [n for n in entries if n.direction is PolicyDirection.EGRESS],
            [n for n in entries if n.direction is PolicyDirection.INGRESS]))
    return NeighborsResult(result, flow_count, reports)
