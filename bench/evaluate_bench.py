"""Benchmark: the evaluation engine on the policies ``generate`` writes for a large cluster.

For each scale (default: 1/4 and full, see ``generate_bench.py``):

1. the synthetic capture directory of ``generate_bench.py`` (written once into ``--dir``);
2. its policies, as ``kubectl netgen generate DIR --no-reverse-dns -o json`` prints them (a ``v1 List``
   read back with ``json``, so no part is shared between rules, as when ``verify`` reads files);
3. ``parse_policies`` on them, timed (with the number of rules);
4. every flow the policies allow: for each rule, a pod of the policy's workload and, for each peer and
   port, the peer's address (an ipBlock's address, a pod of a selected workload), evaluated with
   ``Evaluator.evaluate`` (both sides, verdicts with reasons) and with ``Evaluator.allows`` (the
   policy's side only, no verdicts), timed, after building the evaluator (timed too). The policy's
   side of every one must be allowed;
5. as many flows from (to) addresses no rule names, which must be denied.

Prints rules, parse time, evaluations per second and microseconds per evaluation (CPU time, with the
command's garbage-collector thresholds). Target: the per-flow cost does not grow with the number of
rules (about the same at 1/4 and full scale).

Usage: python3 bench/evaluate_bench.py [--scale F ...] [--dir DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_network
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_bench

from kubectl_netgen.cli import GC_THRESHOLD
from kubectl_netgen.evaluate import Evaluator, NetworkPolicy, parse_policies
from kubectl_netgen.inventory import read_snapshot
from kubectl_netgen.model import Inventory, LabelSelector, Pod, PolicyDirection, Protocol

NETGEN = [sys.executable, "-m", "kubectl_netgen"]
Flow = tuple[PolicyDirection, IPv4Address | IPv6Address, IPv4Address | IPv6Address, Protocol, int]
"""(side asked, that side's pod address, the other end's address, protocol, port)."""


def policies_of(directory: Path) -> list[dict[str, Any]]:
    """The policies ``generate`` writes for a capture directory, as plain (unshared) JSON values."""
    out = subprocess.run([*NETGEN, "generate", str(directory), "--no-reverse-dns", "-o", "json"],
                         check=True, capture_output=True)
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def _pod_for(inventory: Inventory, namespace: str, selector: LabelSelector | None) -> Pod | None:
    for pod in inventory.pods:
        if pod.namespace == namespace and not pod.host_network and pod.ips and (
                selector is None or selector.matches(pod.labels)):
            return pod
    return None


def allowed_flows(policies: tuple[NetworkPolicy, ...], inventory: Inventory) -> Iterator[Flow]:
    """One flow per peer and port of every rule, from (ingress: to) a pod the policy selects."""
    pods: dict[tuple[str, LabelSelector | None], Pod | None] = {}

    def pod(namespace: str, selector: LabelSelector | None) -> Pod | None:
        key = (namespace, selector)
        if key not in pods:
            pods[key] = _pod_for(inventory, namespace, selector)
        return pods[key]

    for policy in policies:
        own = pod(policy.namespace, policy.pod_selector)
        if own is None:
            continue
        for direction in (PolicyDirection.INGRESS, PolicyDirection.EGRESS):
            for rule in policy.rules(direction):
                for peer in rule.peers or ():
                    if peer.ip_block is not None:
                        remote = peer.ip_block.cidr.network_address
                    else:
                        namespace = policy.namespace
                        if peer.namespace_selector is not None:
                            namespace = dict(peer.namespace_selector.match_labels)["kubernetes.io/metadata.name"]
                        other = pod(namespace, peer.pod_selector)
                        if other is None:
                            continue
                        remote = other.ips[0]
                    for spec in rule.ports or ():
                        if isinstance(spec.port, int) and spec.protocol is not None:
                            yield direction, own.ips[0], remote, spec.protocol, spec.port


def run(scale: float, directory: Path) -> None:
    capture = directory / f"scale-{scale:g}"
    if not (capture / "cluster.json").exists():
        generate_bench.write_capture_dir(capture, scale)
    documents = policies_of(capture)
    inventory = read_snapshot(str(capture / "cluster.json"), lambda _: None)

    start = time.process_time()
    policy_set = parse_policies(documents)
    parse = time.process_time() - start
    rules = sum(len(p.ingress) + len(p.egress) for p in policy_set.network)

    flows = list(allowed_flows(policy_set.network, inventory))
    start = time.process_time()
    evaluator = Evaluator(policy_set, inventory)
    build = time.process_time() - start
    start = time.process_time()
    for direction, own, remote, protocol, port in flows:
        src, dst = (own, remote) if direction is PolicyDirection.EGRESS else (remote, own)
        verdict = evaluator.evaluate(src, dst, protocol, port)
        side = verdict.egress if direction is PolicyDirection.EGRESS else verdict.ingress
        if side is None or not side.allowed:
            raise SystemExit(f"not allowed: {src} -> {dst} {protocol.value}/{port}: {verdict.reason}")
    full = time.process_time() - start
    print(f"scale {scale:g}: {len(policy_set.network)} policies, {rules:,} rules; parse_policies {parse:.2f} s "
          f"({parse / rules * 1e6:.1f} µs/rule); Evaluator() {build:.2f} s")
    print(f"  evaluate: {len(flows):,} allowed flows in {full:.2f} s CPU: {len(flows) / full:,.0f}/s "
          f"({full / len(flows) * 1e6:.1f} µs each, first evaluator)")
    if hasattr(evaluator, "allows"):
        evaluator = Evaluator(policy_set, inventory)
        start = time.process_time()
        for direction, own, remote, protocol, port in flows:
            if not evaluator.allows(direction, own, remote, protocol, port):
                raise SystemExit(f"not allowed: {direction.value} of {own} with {remote} {protocol.value}/{port}")
        lean = time.process_time() - start
        print(f"  allows:   {len(flows):,} sides in {lean:.2f} s CPU: {len(flows) / lean:,.0f}/s "
              f"({lean / len(flows) * 1e6:.1f} µs each, fresh evaluator)")
    # Denied: the same sides from an address no rule names (same cost: nothing matches).
    outside = ip_network("100.64.0.0/16")
    evaluator = Evaluator(policy_set, inventory)
    start = time.process_time()
    sample = flows[: 100_000]
    for n, (direction, own, _, protocol, port) in enumerate(sample):
        remote = outside[n % outside.num_addresses]
        src, dst = (own, remote) if direction is PolicyDirection.EGRESS else (remote, own)
        verdict = evaluator.evaluate(src, dst, protocol, port)
        side = verdict.egress if direction is PolicyDirection.EGRESS else verdict.ingress
        if side is None or side.allowed:
            raise SystemExit(f"allowed: {src} -> {dst} {protocol.value}/{port}: {verdict.reason}")
    denied = time.process_time() - start
    print(f"  denied:   {len(sample):,} flows from unnamed addresses in {denied:.2f} s CPU "
          f"({denied / len(sample) * 1e6:.1f} µs each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, action="append", help="scale (repeatable; default 0.25 and 1)")
    parser.add_argument("--dir", type=Path, help="where to keep the capture directories (default: temporary)")
    args = parser.parse_args()
    gc.set_threshold(*GC_THRESHOLD)  # as the command runs
    with tempfile.TemporaryDirectory() as temporary:
        for scale in args.scale or [0.25, 1.0]:
            run(scale, args.dir or Path(temporary))


if __name__ == "__main__":
    main()
