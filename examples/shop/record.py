"""Record the ``shop`` example: a capture directory of real pcaps and the cluster snapshot they belong to.

It builds the local test cluster's fabric (``tests/cluster/fabric``: two nodes, pods as network
namespaces, kube-proxy-like DNAT for ClusterIPs, cluster DNS with search domains, external APIs behind
CNAME chains, the API server's endpoint on the control-plane node, a hostNetwork DaemonSet and
kubelet-like probes) with the layout of :mod:`tests.cluster.fabric.shop` (a microservices shop across
the ``shop`` and ``payments`` namespaces), lets its workloads talk, and runs real tcpdump in every pod
of the captured namespaces, the way ``kubectl netgen capture`` does it (``-i any`` inside the pod's
network namespace). The result has the capture-directory layout::

    examples/shop/cluster.json                    the snapshot (a v1 List)
    examples/shop/pcaps/<namespace>/<pod>.pcap    one capture per pod

Needs root, iproute2, nftables and tcpdump. From the repository root::

    sudo python3 examples/shop/record.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests import netlab  # noqa: E402
from tests.cluster.fabric import Fabric  # noqa: E402
from tests.cluster.fabric.shop import INTERVAL, shop_layout  # noqa: E402

CAPTURED_NAMESPACES = ("shop", "payments", "kube-system")
"""Whose pods are captured (hostNetwork pods are not: they share their node's network)."""


def record(out: Path, seconds: float) -> list[Path]:
    """Capture every pod of :data:`CAPTURED_NAMESPACES` for ``seconds`` while the workloads run."""
    pcaps = out / "pcaps"
    shutil.rmtree(pcaps, ignore_errors=True)
    written: list[Path] = []
    # Enough rounds that every client still calls when the last tcpdump stops (clients start first).
    with Fabric(layout=shop_layout(int(seconds / INTERVAL) + 20)) as fabric:
        captures = []
        for (namespace, name), pod in sorted(fabric.pods.items()):
            if namespace not in CAPTURED_NAMESPACES or pod.controller.host_network:
                continue
            path = pcaps / namespace / f"{name}.pcap"
            path.parent.mkdir(parents=True, exist_ok=True)
            args = ["tcpdump", "-Z", "root", "-i", "any", "-B", "32768", "-s", "262144", "-U", "-nn", "-w", str(path)]
            captures.append(netlab.Capture(netlab.Proc(pod.netns, args, read=False), path))
            written.append(path)
        # Start all, then wait for all, and stop them together: every pod is recorded over the same
        # few seconds, so what one side saw of a conversation the other side saw too.
        for capture in captures:
            capture.wait_ready()
        time.sleep(seconds)
        with ThreadPoolExecutor(max_workers=len(captures)) as pool:
            list(pool.map(lambda capture: capture.stop(), captures))
        fabric.write_objects(out / "cluster.json")
    for path in written:
        path.chmod(0o644)  # sample data; real captures are written 0600
    return written


def main() -> int:
    """Record into examples/shop/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to capture")
    args = parser.parse_args()
    out = Path(__file__).resolve().parent
    for path in record(out, args.seconds):
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")
    print(f"wrote {(out / 'cluster.json').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
