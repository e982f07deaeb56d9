"""``generate``: least-privilege NetworkPolicies from pod captures.

Captures are read one at a time and folded into what each workload's policy must allow
(:class:`~kubectl_netgen.observe.Observer`), so memory holds the allowances, not every flow. The
policies are checked before they are returned: the evaluation engine must find every observed flow
allowed (:func:`check_policies`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from kubectl_netgen.app.captures import Warn, read_captures
from kubectl_netgen.app.cluster import LiveCluster
from kubectl_netgen.app.sources import ReverseDns, captured_pod, inventory_for, pod_captures, socket_flows
from kubectl_netgen.errors import NetgenError
from kubectl_netgen.evaluate import Evaluator, parse_policies
from kubectl_netgen.model import Inventory, IPAddress, LabelSelector, Pod, PolicyDirection, Protocol
from kubectl_netgen.observe import Observer, Sample, Unresolved
from kubectl_netgen.pcap import CaptureReport
from kubectl_netgen.synth import Mode, PolicyPeer, external_names, policies_for


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


class SelfCheckError(NetgenError):
    """The generated policies would deny traffic they were generated from: a bug (exit code 1)."""


SELF_CHECK_LIMIT = 200_000
"""Allowances up to which ``generate`` checks its policies with the engine unless told otherwise: about
3 s of checking on a 2-core machine. Real policy sets hold far fewer; past it, checking every flow costs
more than everything else ``generate`` does (12 s for the 875,000 of the scale benchmark)."""

SHOWN_DENIALS = 5
"""How many denied flows a :class:`SelfCheckError` names."""


def check_policies(policies: Iterable[Mapping[str, Any]], inventory: Inventory, samples: Iterable[Sample]) -> int:
    """Check that ``policies`` allow every sample flow on the captured pod's side, with the evaluation engine.

    An egress sample is the egress side of (the pod -> the remote end), an ingress sample the ingress
    side of (the remote end -> the pod); the other side belongs to the remote end's policies, if any.

    Args:
        policies: NetworkPolicy manifests (what ``generate`` prints).
        inventory: The cluster the samples were resolved in.
        samples: One observed flow per allowance (:meth:`Observer.samples`).

    Returns:
        How many flows were checked.

    Raises:
        SelfCheckError: Some flow is denied (the message names the first few).
    """
    evaluator = Evaluator(parse_policies(policies), inventory)
    sides: dict[tuple[int, PolicyDirection], tuple[Pod, list[tuple[IPAddress, Protocol, int]]]] = {}
    for _, pod, direction, remote, protocol, port in samples:
        side = sides.get((id(pod), direction))  # by identity: hashing a pod hashes all its fields
        if side is None:
            side = sides[id(pod), direction] = (pod, [])
        side[1].append((remote, protocol, port))
    checked = 0
    denied: list[str] = []
    count = 0
    for (_, direction), (pod, flows) in sides.items():
        if not pod.ips:
            continue
        own = pod.ips[0]
        checked += len(flows)
        for n in evaluator.denied(direction, own, flows):
            count += 1
            if len(denied) < SHOWN_DENIALS:
                remote, protocol, port = flows[n]
                name = f"{pod.namespace}/{pod.name}"
                src, dst = (name, remote) if direction is PolicyDirection.EGRESS else (remote, name)
                denied.append(f"{direction.value} {src} -> {dst} {protocol.value}/{port}")
    if count:
        more = f" and {count - len(denied)} more" if count > len(denied) else ""
        raise SelfCheckError(f"internal error: the generated policies would deny {count} observed flow(s): "
                             f"{'; '.join(denied)}{more}; please report")
    return checked


def _dns_peer(inventory: Inventory) -> PolicyPeer | None:
    for service in inventory.services:
        if (service.namespace, service.name) == ("kube-system", "kube-dns") and service.selector:
            return PolicyPeer("kube-system", LabelSelector(service.selector))
    return None


def _unresolved_line(item: Unresolved) -> str:
    own, peer = item.pod, item.peer
    egress = item.direction is PolicyDirection.EGRESS
    flows = "" if item.flows == 1 else f" ({item.flows} flows)"
    return (f"{own.namespace}/{own.name}: {item.protocol.value} {item.direction.value} "
            f"{'to' if egress else 'from'} {peer.ip}: {peer.kind.value}; no rule written{flows}")


def generate(
    sources: Sequence[str],
    *,
    pods: Sequence[str] = (),
    cluster: str | None = None,
    live: LiveCluster | None = None,
    mode: Mode = Mode.BOTH,
    dns_rule: bool = True,
    port_ranges: bool = False,
    reverse: ReverseDns | None = None,
    stdin: BinaryIO | None = None,
    strict: bool = False,
    self_check: bool | None = None,
    warn: Warn,
) -> GenerateResult:
    """Turn pod captures into least-privilege NetworkPolicies.

    Args:
        sources: A capture directory, or pcap files.
        pods: ``NAMESPACE/NAME`` of the pod behind each pcap file (not for a capture directory).
        cluster: The inventory file (``kubectl netgen snapshot`` output); a capture directory brings its own.
        live: The cluster to read the inventory from when there is no file; ``None``: a file is required.
        mode: Which directions to restrict.
        dns_rule: Always allow DNS to the cluster DNS pods when egress is restricted.
        port_ranges: Merge consecutive ports into ``endPort`` ranges.
        reverse: Reverse DNS for external addresses no DNS answer named (default: on, system resolver).
        stdin: Binary standard input (``-`` as a pcap file).
        strict: Treat a damaged capture as an error.
        self_check: Check with the evaluation engine that the policies allow every observed flow before
            returning them: ``None`` does so up to :data:`SELF_CHECK_LIMIT` allowances.
        warn: Receives one line per warning.

    Returns:
        The policies and a summary of what was read.

    Raises:
        InputError: Bad sources, no inventory, a pod the inventory does not know.
        ClusterError: The live cluster cannot be read.
        DecodeError: A damaged capture with ``strict``.
        SelfCheckError: The policies would deny an observed flow (a bug).
    """
    from kubectl_netgen.dns import DnsNames

    reverse = reverse or ReverseDns()
    reverse.check()
    captures, cluster_file = pod_captures(sources, pods, cluster)
    inventory, where = inventory_for(cluster_file, live, warn)
    observer = Observer(inventory)
    names = DnsNames()
    reports = []
    for capture in captures:
        own = captured_pod(inventory, where, capture)
        scanner, [report] = read_captures([capture.path], stdin=stdin, strict=strict, warn=warn,
                                          dns_sink=names.feed)
        reports.append(report)
        observer.add(own, scanner.table, socket_flows(capture, warn))
        del scanner  # the next capture's table replaces this one
    for item in observer.unresolved:
        warn(_unresolved_line(item))
    mapping = reverse.name(observer.external, names.mapping(), warn)
    dns = _dns_peer(inventory) if dns_rule else None
    if dns_rule and dns is None and mode is not Mode.INGRESS:
        warn(f"{where} has no kube-system/kube-dns Service with a selector: no DNS rule was added")
    policies = policies_for(observer.allowed(mapping), mode=mode, dns=dns, port_ranges=port_ranges)
    if self_check or (self_check is None and observer.allowances <= SELF_CHECK_LIMIT):
        check_policies(policies, inventory, observer.samples())
    elif self_check is None:
        warn(f"{observer.allowances} allowances: the policies were not checked against every observed flow "
             f"(done up to {SELF_CHECK_LIMIT}; --self-check forces it, or run 'kubectl netgen verify')")
    return GenerateResult(policies, external_names(policies), len(observer.workloads), observer.flows,
                          observer.ignored, reports)
