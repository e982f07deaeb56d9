"""``verify``: what a policy set would do to the traffic that was captured, flow by flow, and why.

Flows come from pod captures (a capture directory, or pcaps with ``--pod``): each is seen from its pod,
and a connection to a Service is judged once per backend on the backend's target port, since policies
apply after the Service's address translation. Bare pcaps (no pod known, e.g. taken on a node) are
judged by resolving both ends against the inventory. The same connection seen from both of its pods is
judged once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from kubectl_netgen import manifests
from kubectl_netgen.app.captures import Warn, read_captures
from kubectl_netgen.app.cluster import LiveCluster
from kubectl_netgen.app.sources import (
    PodCapture,
    capture_dirs,
    captured_pod,
    inventory_for,
    pod_captures,
    pod_flows,
    socket_flows,
)
from kubectl_netgen.errors import InputError
from kubectl_netgen.evaluate import Evaluator, PolicySet, Verdict, parse_policies
from kubectl_netgen.identity import Lookups, PeerKind, Resolver, direction_of
from kubectl_netgen.model import Flow, Inventory, IPAddress, Pod, PolicyDirection, Protocol, WorkloadKind, WorkloadRef
from kubectl_netgen.pcap import CaptureReport

_NOBODY = Pod(namespace="", name="", labels=(), ips=(), node=None, host_network=False,
              workload=WorkloadRef(WorkloadKind.POD, "", ""))
"""The point of view of a capture taken outside any pod: no address is its own."""


@dataclass(frozen=True)
class Judged:
    """One observed flow (after Service translation) and what the policies make of it."""

    src_ip: IPAddress
    dst_ip: IPAddress
    protocol: Protocol
    port: int | None
    """The server port on the backend (``targetPort``); ``None`` for ICMP."""
    verdict: Verdict
    service: str | None = None
    """``namespace/name:port`` of the Service the client dialed, when the flow went through one."""
    connections: int = 1

    @property
    def src(self) -> str | None:
        """``namespace/pod`` of the client, or ``None`` when it is not a pod."""
        pod = self.verdict.source.pod
        return None if pod is None else f"{pod.namespace}/{pod.name}"

    @property
    def dst(self) -> str | None:
        """``namespace/pod`` of the server, or ``None`` when it is not a pod."""
        pod = self.verdict.destination.pod
        return None if pod is None else f"{pod.namespace}/{pod.name}"


@dataclass(frozen=True)
class Exposure:
    """Something the policies allow that was never observed: part of the least-privilege gap."""

    workload: WorkloadRef
    """The workload whose policies allow it (the server for ingress, the client for egress)."""
    direction: PolicyDirection
    peer: WorkloadRef
    """The other workload."""
    protocol: Protocol
    port: int
    """The server's container port."""


@dataclass(frozen=True)
class VerifyResult:
    """Every observed flow with its verdict."""

    flows: list[Judged]
    """Denied flows first, then by protocol, server, port and client."""
    reports: list[CaptureReport]
    policies: PolicySet
    """What was evaluated."""
    decoded: int = 0
    """Flows read from the captures (before Service translation and de-duplication)."""
    exposure: list[Exposure] | None = None
    """With ``what_if``: per workload the policies isolate, what they allow that was never observed."""

    @property
    def denied(self) -> list[Judged]:
        """The flows the policies would deny."""
        return [j for j in self.flows if not j.verdict.allowed]


_Key = tuple[IPAddress, IPAddress, Protocol, int | None]


class _Judge:
    """Collects flows (translated, de-duplicated) and judges each once."""

    def __init__(self, inventory: Inventory, evaluator: Evaluator) -> None:
        self.inventory = inventory
        self.evaluator = evaluator
        self.lookups = Lookups(inventory)
        self.seen: dict[_Key, tuple[int, str | None]] = {}
        """Flow -> (connections, the Service it was dialed through)."""

    def add(self, src: IPAddress, dst: IPAddress, protocol: Protocol, port: int | None, connections: int,
            service: str | None = None) -> None:
        """Add a flow; the same flow seen from its other end (the server's capture) is the same connections."""
        key = (src, dst, protocol, port)
        count, via = self.seen.get(key, (0, None))
        self.seen[key] = (max(count, connections), via or service)

    def add_pod_flows(self, own: Pod, flows: Iterable[Flow]) -> None:
        """Flows seen from ``own``: outbound ones through Services to their backends."""
        resolver = Resolver(self.inventory, own, lookups=self.lookups)
        for flow in flows:
            direction = direction_of(own, flow) if own is not _NOBODY else PolicyDirection.EGRESS
            if direction is PolicyDirection.INGRESS or direction is None:
                self.add(flow.src, flow.dst, flow.protocol, flow.dst_port, flow.connections)
                continue
            for peer in resolver.resolve(flow.dst, flow.dst_port, flow.protocol):
                if peer.kind is PeerKind.LOOPBACK:
                    continue
                via = None if peer.service is None else f"{'/'.join(peer.service)}:{peer.service_port}"
                translated = peer.service is not None and peer.kind not in (
                    PeerKind.NO_BACKENDS, PeerKind.UNKNOWN_SERVICE_PORT)
                self.add(flow.src, peer.ip if translated else flow.dst, flow.protocol,
                         peer.port if translated else flow.dst_port, flow.connections, via)

    def judged(self) -> list[Judged]:
        out = [Judged(src, dst, protocol, port, self.evaluator.evaluate(src, dst, protocol, port), service, count)
               for (src, dst, protocol, port), (count, service) in self.seen.items()]
        out.sort(key=lambda j: (j.verdict.allowed, j.protocol.value, j.dst_ip.version, int(j.dst_ip),
                                -1 if j.port is None else j.port, j.src_ip.version, int(j.src_ip), j.service or ""))
        return out


def _representatives(inventory: Inventory) -> dict[WorkloadRef, Pod]:
    """One running pod with an address per workload (the pods of a workload share labels and ports)."""
    found: dict[WorkloadRef, Pod] = {}
    for pod in inventory.pods:
        if pod.ips and not pod.host_network and pod.phase == "Running":
            found.setdefault(pod.workload, pod)
    return found


def exposure(inventory: Inventory, evaluator: Evaluator, flows: Iterable[Judged]) -> list[Exposure]:
    """What the policies allow between workloads on their declared container ports that was never observed.

    Only sides the policies isolate count (a workload no policy selects is open to everything, which is
    not a gap of the policies but their absence). Each workload is represented by one of its pods.
    """
    observed: set[tuple[WorkloadRef, WorkloadRef, Protocol, int]] = set()
    for judged in flows:
        src, dst = judged.verdict.source.pod, judged.verdict.destination.pod
        if src is not None and dst is not None and judged.port is not None:
            observed.add((src.workload, dst.workload, judged.protocol, judged.port))
    pods = _representatives(inventory)
    found: list[Exposure] = []
    for server, server_pod in pods.items():
        ports = sorted({(cp.protocol, cp.port) for cp in server_pod.ports}, key=lambda p: (p[0].value, p[1]))
        for client, client_pod in pods.items():
            if client == server:
                continue
            for protocol, port in ports:
                if (client, server, protocol, port) in observed:
                    continue
                verdict = evaluator.evaluate(client_pod.ips[0], server_pod.ips[0], protocol, port)
                if not verdict.allowed:
                    continue
                if verdict.ingress is not None and verdict.ingress.isolated:
                    found.append(Exposure(server, PolicyDirection.INGRESS, client, protocol, port))
                if verdict.egress is not None and verdict.egress.isolated:
                    found.append(Exposure(client, PolicyDirection.EGRESS, server, protocol, port))
    found.sort(key=lambda e: (e.workload.namespace, e.workload.name, e.direction.value, e.peer.namespace,
                              e.peer.name, e.protocol.value, e.port))
    return found


def read_policies(sources: Sequence[str], *, stdin: BinaryIO | None, live: LiveCluster | None,
                  live_policies: bool, warn: Warn) -> PolicySet:
    """The policies to evaluate: from files, directories and stdin, and (``live_policies``) the cluster's own.

    Raises:
        InputError: No policy source, a bad file or a malformed policy.
        ClusterError: The live cluster cannot be read.
    """
    if not sources and not live_policies:
        raise InputError("no policies to verify: give --policies FILE|DIR|- (e.g. the output of "
                         "'kubectl netgen generate'), --live-policies, or both")
    documents = manifests.read(sources, stdin)
    if live_policies:
        cluster = (live or LiveCluster()).connect()
        try:
            documents += cluster.policies(warn)
        finally:
            cluster.close()
    policies = parse_policies(documents)
    for text in policies.skipped:
        warn(f"not a policy, left out: {text}")
    return policies


def verify(
    sources: Sequence[str],
    *,
    policies: Sequence[str] = (),
    live_policies: bool = False,
    pods: Sequence[str] = (),
    cluster: str | None = None,
    live: LiveCluster | None = None,
    stdin: BinaryIO | None = None,
    strict: bool = False,
    what_if: bool = False,
    warn: Warn,
) -> VerifyResult:
    """Judge every captured flow against a policy set.

    Args:
        sources: A capture directory, or pcap files (with ``pods``, or bare).
        policies: Policy manifests: files, directories, ``-`` for stdin.
        live_policies: Add the policies applied in the live cluster.
        pods: ``NAMESPACE/NAME`` of the pod behind each pcap file; none for bare pcaps.
        cluster: The inventory file; a capture directory brings its own; else the live cluster is read.
        live: The live cluster (inventory without a file, ``live_policies``).
        stdin: Binary standard input (``-`` as a pcap file or as the policies, not both).
        strict: Treat a damaged capture as an error.
        what_if: Also work out the exposure: what the policies allow that was never observed.
        warn: Receives one line per warning.

    Returns:
        Every flow with its verdict.

    Raises:
        InputError: Bad sources, no policies, a malformed policy, no inventory, an unknown pod.
        ClusterError: The live cluster cannot be read.
        DecodeError: A damaged capture with ``strict``.
    """
    if "-" in policies and "-" in sources:
        raise InputError("'-' (stdin) can be the policies or a capture, not both")
    policy_set = read_policies(policies, stdin=stdin, live=live, live_policies=live_policies, warn=warn)
    by_pod = bool(pods) or bool(capture_dirs(sources))
    captures, snapshots = pod_captures(sources, pods, cluster) if by_pod else (
        [PodCapture("", "", path) for path in sources], (cluster,) if cluster is not None else ())
    if not captures:
        raise InputError("give a capture directory or pcap files")
    inventory, where = inventory_for(snapshots, live, warn)
    evaluator = Evaluator(policy_set, inventory)
    judge = _Judge(inventory, evaluator)
    reports = []
    decoded = 0
    for capture in captures:
        own = captured_pod(inventory, where, capture) if by_pod else _NOBODY
        scanner, [report] = read_captures([capture.path], stdin=stdin, strict=strict, warn=warn)
        reports.append(report)
        found = pod_flows(scanner.table, own, socket_flows(capture, warn))
        decoded += len(found)
        judge.add_pod_flows(own, found)
    judged = judge.judged()
    gap = exposure(inventory, evaluator, judged) if what_if else None
    return VerifyResult(judged, reports, policy_set, decoded, gap)

