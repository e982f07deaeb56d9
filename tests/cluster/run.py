"""Start the local test cluster by hand, for exploring: ``sudo python3 tests/cluster/run.py``.

Prints the KUBECONFIG to use and the pods, then runs until Ctrl-C (or SIGTERM) and tears it all down.
Try, in another shell: ``KUBECONFIG=<path> kubectl get pods -A -o wide``, then capture with the plugin.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the `tests` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.cluster.cluster import LocalCluster


def main() -> int:
    """Start the cluster, print how to reach it, and wait for Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", type=Path, help="where to write kubeconfig and cluster.json")
    parser.add_argument("--iterations", type=int, default=600, help="rounds each workload client makes")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="netgen-cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalCluster(workdir, iterations=args.iterations) as cluster:
        print(cluster.fabric.summary())
        print(f"\nexport KUBECONFIG={cluster.kubeconfig}\n# cluster snapshot: {cluster.snapshot}")
        print("Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(1):
                pass
        except KeyboardInterrupt:
            pass
    print("torn down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
