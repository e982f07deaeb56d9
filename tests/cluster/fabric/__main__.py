"""Build a fabric by hand: ``sudo python3 -m tests.cluster.fabric [--objects cluster.json]``.

It prints what it built and waits for Ctrl-C (or SIGTERM), then tears it all down.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as `python3 tests/cluster/fabric`: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import tests.cluster.fabric as package
from tests.cluster.fabric.lab import Fabric


def main(argv: Sequence[str] | None = None) -> int:
    """Build a fabric, print it, and wait for Ctrl-C (or SIGTERM), then tear it down."""
    parser = argparse.ArgumentParser(description=package.__doc__.splitlines()[0] if package.__doc__ else None)
    parser.add_argument("--iterations", type=int, default=240, help="client rounds (every 0.5 s)")
    parser.add_argument("--lifetime", type=float, default=3600.0, help="seconds servers run at most")
    parser.add_argument("--objects", type=Path, help="also write the objects (v1 List JSON) here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Also for SIGINT: a shell starts background jobs with SIGINT ignored, and `kill -INT` must still work.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = time.monotonic()
    with Fabric(iterations=args.iterations, lifetime=args.lifetime,
                probe_iterations=int(args.lifetime)) as fabric:
        print(f"built in {time.monotonic() - started:.1f}s\n{fabric.summary()}", flush=True)
        if args.objects:
            print(f"objects: {fabric.write_objects(args.objects)}", flush=True)
        print("try: ip netns exec <pod netns> getent hosts checkout.shop\nCtrl-C tears it down.", flush=True)
        try:
            deadline = time.monotonic() + args.lifetime
            while time.monotonic() < deadline:
                time.sleep(1)
        except KeyboardInterrupt:
            print("tearing down", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
