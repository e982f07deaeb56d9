"""Record the ``shop`` example: a capture directory of real pcaps and the cluster snapshot they belong to.

It builds the local test cluster's fabric (``tests/cluster/fabric``: two nodes, pods as network
namespaces, kube-proxy-like DNAT for ClusterIPs, cluster DNS with search domains, external APIs behind
CNAME chains, a hostNetwork DaemonSet and kubelet-like probes), lets its workloads talk, and runs real
tcpdump in every pod of the captured namespaces, the way ``kubectl netgen capture`` does it (``-i any``
inside the pod's network namespace). The result has the capture-directory layout::

    examples/shop/cluster.json                    the snapshot (a v1 List)
    examples/shop/pcaps/<namespace>/<pod>.pcap    one capture per pod

Needs root, iproute2, nftables and tcpdump. From the repository root::

    sudo python3 examples/shop/record.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests import netlab  # noqa: E402
from tests.cluster.fabric import Fabric  # noqa: E402

CAPTURED_NAMESPACES = ("shop", "kube-system")
"""Whose pods are captured (hostNetwork pods are not: they share their node's network)."""


def record(out: Path, seconds: float) -> list[Path]:
    """Capture every pod of :data:`CAPTURED_NAMESPACES` for ``seconds`` while the workloads run."""
    pcaps = out / "pcaps"
    shutil.rmtree(pcaps, ignore_errors=True)
    written: list[Path] = []
    with Fabric(iterations=int(seconds * 2) + 20) as fabric:
        captures = []
        for (namespace, name), pod in sorted(fabric.pods.items()):
            if namespace not in CAPTURED_NAMESPACES or pod.controller.host_network:
                continue
            path = pcaps / namespace / f"{name}.pcap"
            path.parent.mkdir(parents=True, exist_ok=True)
            args = ["tcpdump", "-Z", "root", "-i", "any", "-B", "32768", "-s", "262144", "-U", "-nn", "-w", str(path)]
            capture = netlab.Capture(netlab.Proc(pod.netns, args, read=False), path)
            capture.wait_ready()
            captures.append(capture)
            written.append(path)
        time.sleep(seconds)
        for capture in captures:
            capture.stop()
        fabric.write_objects(out / "cluster.json")
    for path in written:
        path.chmod(0o644)  # sample data; real captures are written 0600
    return written


def main() -> int:
    """Record into examples/shop/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0, help="how long to capture")
    args = parser.parse_args()
    out = Path(__file__).resolve().parent
    for path in record(out, args.seconds):
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")
    print(f"wrote {(out / 'cluster.json').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
