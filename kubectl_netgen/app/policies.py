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

from kubectl_netgen import flows as flowfold
from kubectl_netgen.app.captures import Warn, read_captures
from kubectl_netgen.app.cluster import LiveCluster
from kubectl_netgen.app.sources import ReverseDns, captured_pod, inventory_for, pod_captures, socket_flows
from kubectl_netgen.errors import NetgenError
from kubectl_netgen.evaluate import Evaluator, parse_policies
from kubectl_netgen.exposure import Widened, dns_ports, dns_service, widen
from kubectl_netgen.model import Inventory, IPAddress, LabelSelector, Pod, PolicyDirection, Protocol
from kubectl_netgen.observe import Observer, Sample, Unresolved
from kubectl_netgen.pcap import CaptureReport
from kubectl_netgen.scope import SUGGESTED_LABEL, Scope, Skip
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
    service = dns_service(inventory)
    if service is None or not service.selector:
        return None
    return PolicyPeer(service.namespace, LabelSelector(service.selector))


def _unresolved_line(item: Unresolved) -> str:
    own, peer = item.pod, item.peer
    egress = item.direction is PolicyDirection.EGRESS
    flows = "" if item.flows == 1 else f" ({item.flows} flows)"
    head = (f"{own.namespace}/{own.name}: {item.protocol.value} {item.direction.value} "
            f"{'to' if egress else 'from'} {peer.ip}")
    if item.unlabelled and peer.pod is not None:
        name = f"{peer.pod[0]}/{peer.pod[1]}"
        workload = peer.workload.name if peer.workload is not None else peer.pod[1]
        return (f"{head}: pod {name} carries no stable label, so no selector can name it without selecting its "
                f"whole namespace; no rule written, these flows stay unallowed{flows} (add a label such as "
                f"{SUGGESTED_LABEL}={workload} to the pod template)")
    return f"{head}: {peer.kind.value}; no rule written{flows}"


_SKIPPED = {
    Skip.SYSTEM: "kube-system workload(s) serve the whole cluster and get no policy "
                 "(--include-system writes them)",
    Skip.EXCLUDED: "workload(s) left out by --exclude",
    Skip.HOST_NETWORK: "hostNetwork pod(s) get no policy: NetworkPolicy does not apply to them",
}


def _scope_lines(skipped: Mapping[Skip, Mapping[str, None]], unlabelled: Mapping[Pod, int]) -> list[str]:
    """One stderr line per reason a captured workload got no policy; one per unlabelled pod."""
    lines = [f"{len(names)} {_SKIPPED[reason]}: {', '.join(sorted(names))}"
             for reason, names in skipped.items() if names and reason in _SKIPPED]
    for pod, flows in unlabelled.items():
        lines.append(f"{pod.namespace}/{pod.name}: carries no stable label (only volatile ones such as "
                     f"pod-template-hash), so a policy would select every pod of {pod.namespace}; no policy written, "
                     f"its {flows} observed flow(s) stay unrestricted (add a label such as "
                     f"{SUGGESTED_LABEL}={pod.workload.name} to the pod template)")
    return lines


def _widened_lines(notes: Iterable[Widened]) -> list[str]:
    """One line per workload and reason: which ports now admit more than the observed clients, and why."""
    grouped: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
    for note in notes:
        ref = note.workload.ref
        grouped.setdefault((f"{ref.namespace}/{ref.name}", note.cidrs, note.why), []).append(
            f"{note.protocol.value}/{note.port}")
    return [f"{name}: {', '.join(ports)} admit{'s' if len(ports) == 1 else ''} {' and '.join(cidrs)}: {why}"
            for (name, cidrs, why), ports in grouped.items()]


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
    scope: Scope | None = None,
    external_ingress: bool = True,
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
        scope: Which captured workloads get a policy (``--include-system``, ``--exclude``); hostNetwork
            and unlabelled pods never do.
        external_ingress: Public Services' backends admit their target port from anywhere when outside
            clients were seen on it (``--external-ingress any``); ``False`` keeps the observed addresses.
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
    captures, snapshots = pod_captures(sources, pods, cluster)
    inventory, where = inventory_for(snapshots, live, warn)
    scope = scope or Scope()
    observer = Observer(inventory)
    names = DnsNames()
    reports = []
    skipped: dict[Skip, dict[str, None]] = {reason: {} for reason in Skip}
    unlabelled: dict[Pod, int] = {}
    for capture in captures:
        own = captured_pod(inventory, where, capture)
        workload = inventory.workloads_by_ref[own.workload]
        reason = scope.skip(own, workload)
        if reason is Skip.SYSTEM or reason is Skip.EXCLUDED:
            skipped[reason][f"{workload.ref.namespace}/{workload.ref.name}"] = None
            continue
        if reason is Skip.HOST_NETWORK:
            skipped[reason][f"{own.namespace}/{own.name}"] = None
            continue
        scanner, [report] = read_captures([capture.path], stdin=stdin, strict=strict, warn=warn,
                                          dns_sink=names.feed)
        reports.append(report)
        if reason is Skip.UNLABELLED:
            unlabelled[own] = unlabelled.get(own, 0) + len(flowfold.fold(scanner.table))
        else:
            observer.add(own, scanner.table, socket_flows(capture, warn))
        del scanner  # the next capture's table replaces this one
    for line in _scope_lines(skipped, unlabelled):
        warn(line)
    for item in observer.unresolved:
        warn(_unresolved_line(item))
    mapping = reverse.name(observer.external, names.mapping(), warn)
    dns = _dns_peer(inventory) if dns_rule else None
    if dns_rule and dns is None and mode is not Mode.INGRESS:
        warn(f"{where} has no kube-system/kube-dns Service with a selector: no DNS rule was added")
    allowed, widened = widen(observer.allowed(mapping), inventory, node_ingress=observer.node_ingress,
                             public=external_ingress)
    if mode is not Mode.EGRESS:
        for line in _widened_lines(widened):
            warn(line)
    policies = policies_for(allowed, mode=mode, dns=dns, dns_ports=dns_ports(inventory), port_ranges=port_ranges)
    if self_check or (self_check is None and observer.allowances <= SELF_CHECK_LIMIT):
        check_policies(policies, inventory, observer.samples())
    elif self_check is None:
        warn(f"{observer.allowances} allowances: the policies were not checked against every observed flow "
             f"(done up to {SELF_CHECK_LIMIT}; --self-check forces it, or run 'kubectl netgen verify')")
    return GenerateResult(policies, external_names(policies), len(observer.workloads), observer.flows,
                          observer.ignored, reports)
