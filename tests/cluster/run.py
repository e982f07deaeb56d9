"""Start the local test cluster by hand, for exploring: ``sudo python3 tests/cluster/run.py --workdir DIR``.

Runs the shop layout (``--layout default`` for the small one) and writes ``DIR/kubeconfig`` (the admin),
``DIR/kubeconfig-shop-editor`` (a user bound only to a Role in ``shop``, see :mod:`tests.cluster.rbac`)
and ``DIR/cluster.json``. Prints the pods, then runs until Ctrl-C, SIGTERM or ``--lifetime`` and tears it
all down; the pods' traffic keeps flowing all that time. Try, in another shell:
``KUBECONFIG=DIR/kubeconfig kubectl get pods -A -o wide``, then capture with the plugin.
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
from tests.cluster.fabric import default_layout
from tests.cluster.fabric.shop import shop_layout


def main() -> int:
    """Start the cluster, print how to reach it, and wait for Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", type=Path, help="where to write the kubeconfigs and cluster.json "
                        "(default: a new temporary directory)")
    parser.add_argument("--layout", choices=("shop", "default"), default="shop", help="which pods to run")
    parser.add_argument("--iterations", type=int, default=0,
                        help="rounds each workload client makes (default 0: until the cluster stops)")
    parser.add_argument("--lifetime", type=float, default=24 * 3600.0,
                        help="stop by itself after this many seconds (default: a day)")
    args = parser.parse_args()
    if args.iterations < 0 or args.lifetime <= 0:
        parser.error("--iterations must be >= 0 and --lifetime > 0")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="netgen-cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    layout = (shop_layout if args.layout == "shop" else default_layout)(args.iterations)
    with LocalCluster(workdir, iterations=args.iterations, lifetime=args.lifetime, layout=layout) as cluster:
        print(cluster.fabric.summary())
        print(f"\nexport KUBECONFIG={cluster.kubeconfig}\n# as the shop-editor user: {cluster.editor_kubeconfig}"
              f"\n# cluster snapshot: {cluster.snapshot}")
        print("Ctrl-C to stop.", flush=True)
        try:
            stop.wait(args.lifetime)
        except KeyboardInterrupt:
            pass
    print("torn down", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
