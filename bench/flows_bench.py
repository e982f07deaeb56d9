"""Benchmark: decoding speed of ``kubectl netgen flows`` against tcpdump and tshark.

Writes a synthetic capture of >= 1,000,000 packets (see ``synthetic.py``: TCP
handshakes, data and teardowns, UDP request/response, DNS with CNAME chains, on
Ethernet and Linux cooked v2), then times, in this one session and on the same
files:

* ``kubectl-netgen flows FILES -o json``  (the whole command, start-up included)
* ``tcpdump -nn -r FILE``                 (output to /dev/null)
* ``tshark -r FILE -T fields -e ip.src -e ip.dst``

and prints packets per second for each, the ratios, the peak memory (RSS) of
kubectl-netgen, and its start-up time for ``--version``, ``--help`` and
``flows`` on a small capture. Targets (issue: foundation): flows >= 3x
tcpdump's rate, peak memory < 150 MB, start-up well under a second.

Usage: python3 bench/flows_bench.py [--packets N] [--dir DIR] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, write_capture

NETGEN = [sys.executable, "-m", "kubectl_netgen"]


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` with stdout to /dev/null; return (wall seconds, peak RSS in MB) of that process."""
    with open(os.devnull, "wb") as devnull:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=devnull, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024


def best(cmd: list[str], repeat: int) -> tuple[float, float]:
    runs = [timed(cmd) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="where to write the captures (default: a temporary directory)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the fastest counts")
    args = parser.parse_args()

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="netgen-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    eth, sll2 = workdir / "bench-ethernet.pcap", workdir / "bench-sll2.pcap"
    t = time.perf_counter()
    n_eth = write_capture(eth, LINKTYPE_ETHERNET, args.packets * 6 // 10, 1)
    n_sll2 = write_capture(sll2, LINKTYPE_LINUX_SLL2, args.packets - n_eth, 2)
    packets = n_eth + n_sll2
    size = (eth.stat().st_size + sll2.stat().st_size) / 1e6
    print(f"capture: {packets:,} packets ({n_eth:,} Ethernet + {n_sll2:,} SLL2), {size:.0f} MB, "
          f"written in {time.perf_counter() - t:.1f} s")

    results: dict[str, tuple[float, float]] = {}
    results["kubectl netgen flows"] = best([*NETGEN, "flows", str(eth), str(sll2), "-o", "json"], args.repeat)
    for tool, extra in (("tcpdump", ["-nn", "-r"]), ("tshark", [])):
        if shutil.which(tool) is None:
            print(f"{tool}: not installed, skipped (apt-get install {tool})")
            continue
        wall = mem = 0.0
        for f in (eth, sll2):
            cmd = [tool, *extra, str(f)] if tool == "tcpdump" else [
                tool, "-r", str(f), "-T", "fields", "-e", "ip.src", "-e", "ip.dst"]
            w, m = best(cmd, args.repeat if tool == "tcpdump" else 1)
            wall, mem = wall + w, max(mem, m)
        results[f"{tool} -r"] = (wall, mem)

    print(f"\n{'tool':<24}{'seconds':>9}{'packets/s':>14}{'peak MB':>9}")
    for name, (wall, mem) in results.items():
        print(f"{name:<24}{wall:>9.2f}{packets / wall:>14,.0f}{mem:>9.0f}")
    ours = packets / results["kubectl netgen flows"][0]
    print()
    for name, (wall, _) in results.items():
        if name != "kubectl netgen flows":
            print(f"flows vs {name}: {ours / (packets / wall):.2f}x")
    print(f"flows peak memory: {results['kubectl netgen flows'][1]:.0f} MB (target < 150 MB)")

    small = workdir / "small.pcap"
    write_capture(small, LINKTYPE_ETHERNET, 200, 3)
    print("\nstart-up (median of 5):")
    for label, cmd in (("--version", [*NETGEN, "--version"]), ("--help", [*NETGEN, "--help"]),
                       ("flows small.pcap", [*NETGEN, "flows", str(small), "-o", "json"]),
                       ("dns small.pcap", [*NETGEN, "dns", str(small), "-o", "json"])):
        print(f"  {label:<18}{statistics.median(timed(cmd)[0] for _ in range(5)):.3f} s")
    if args.dir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
