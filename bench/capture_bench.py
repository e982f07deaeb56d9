"""Capture overhead and privacy: bytes through the log stream per short TCP connection, CPU seconds, payload kept.

Runs the real capture container command (the one ``kubectl netgen capture`` puts in an ephemeral container)
inside a pod of the local test fabric, with the default filter, while a bounded client in another pod opens
N short TCP connections to it (and a little DNS) and sends it a few UDP datagrams with a payload. Prints the
bytes the container wrote (what travels through the container log), per connection, the CPU seconds of
tcpdump and of the whole container (``container_cpu_seconds``: every process of the container, the encoding
included), and ``udp_payload_bytes_kept``: bytes beyond the UDP or ICMP header of every non-DNS datagram in
the captures (0: headers only).

Targets (issue 12): container_cpu_seconds <= 0.2 and packet_stream_bytes_per_connection <= 300 for
``--connections 3000``; udp_payload_bytes_kept == 0.

Needs root (network namespaces). ``sudo python3 bench/capture_bench.py [--connections 2000]``.
Traffic stays inside the fabric's namespaces (10.244.0.0/16); every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubectl_netgen.capturing import plan
from kubectl_netgen.capturing.stream import StreamDecoder
from tests.cluster.fabric import Fabric

CLIENT = r"""
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + 120
for _ in range(n):
    if time.monotonic() > deadline:
        break
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        while s.recv(4096):
            pass
print("done", flush=True)
"""

UDP_CLIENT = r"""
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    for i in range(n):
        s.sendto(b"password=hunter2 " * 6, (host, port))
print("done", flush=True)
"""
UDP_DATAGRAMS = 50
METER = r"""
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
used = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"METER {used.ru_utime + used.ru_stime:.4f}", file=sys.stderr, flush=True)
sys.exit(code)
"""
"""Runs the container's command and says on stderr the CPU seconds of it and all its descendants: only the
container's processes are counted (the bench's other children, the fabric's, are not)."""


def _payload_kept(pcap: bytes) -> int:
    """Bytes beyond the UDP (or ICMP) header of each non-DNS datagram in a classic pcap of link type SLL2."""
    kept, offset = 0, 24
    while offset + 16 <= len(pcap):
        incl = struct.unpack("<I", pcap[offset + 8:offset + 12])[0]
        packet = pcap[offset + 16:offset + 16 + incl]
        offset += 16 + incl
        ethertype = struct.unpack("!H", packet[0:2])[0] if len(packet) >= 20 else 0
        ip = packet[20:]
        if ethertype == 0x0800 and len(ip) >= 20:
            proto, start = ip[9], (ip[0] & 0xF) * 4
        elif ethertype == 0x86DD and len(ip) >= 40:
            proto, start = ip[6], 40
        else:
            continue
        if proto in (1, 17, 58):
            ports = struct.unpack("!HH", ip[start:start + 4]) if proto == 17 and len(ip) >= start + 4 else ()
            if 53 not in ports:
                kept += max(0, len(ip) - start - 8)
    return kept


def _tcpdump_cpu(session: int) -> tuple[int, float]:
    """(processes, CPU seconds (user + system) so far) of the tcpdump processes in the container's session."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = found = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if name == "tcpdump" and int(fields[3]) == session:  # field 6 (session id), 0-based after the name
            total += int(fields[11]) + int(fields[12])  # utime, stime
            found += 1
    return found, total / ticks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=20, help="seconds the capture runs (bounds the client)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    with Fabric(iterations=1) as fabric:
        time.sleep(3)  # let the fabric's own short client loops finish (iterations=1)
        server = fabric.pods_of("shop", "checkout")[0]
        client = fabric.pods_of("shop", "frontend")[0]
        settings = plan.Settings(args.duration)
        container = fabric.spawn_in_pod("shop", server.name,
                                        [sys.executable, "-c", METER, *plan.container_command(settings)])
        time.sleep(plan.ATTACH_SECONDS + 1.5)  # tcpdump is listening
        started = time.monotonic()
        probe = fabric.run_in_pod("shop", client.name, [sys.executable, "-c", CLIENT, server.ip, "8080",
                                                        str(args.connections)], timeout=150)
        assert "done" in probe.stdout
        elapsed = time.monotonic() - started
        udp = fabric.run_in_pod("shop", client.name, [sys.executable, "-c", UDP_CLIENT, server.ip, "9999",
                                                      str(UDP_DATAGRAMS)], timeout=30)
        assert "done" in udp.stdout
        tcpdumps, tcpdump_cpu = _tcpdump_cpu(container.pid)
        out, err = container.communicate(timeout=args.duration + 30)
    pcaps: dict[str, bytearray] = {}
    decoder = StreamDecoder(lambda c, b: pcaps.setdefault(c, bytearray()).extend(b))
    decoder.feed(out + b"".join(line + b"\n" for line in err.splitlines() if not line.startswith(b"METER ")))
    decoder.finish()
    stream_bytes = len(out)
    pcap_lines = sum(len(line) + 1 for line in out.split(b"\n") if line[:2] in (b"H ", b"D "))
    table_lines = sum(len(line) + 1 for line in out.split(b"\n") if line[:2] == b"S ")
    meter = [line for line in err.splitlines() if line.startswith(b"METER ")]
    cpu = float(meter[-1].split()[1]) if meter else float("nan")
    figures = {
        "connections": args.connections,
        "packets_captured": decoder.packets,
        "capture_bytes": decoder.bytes,
        "log_stream_bytes": stream_bytes,
        "log_bytes_per_connection": round(stream_bytes / args.connections, 1),
        "packet_stream_bytes_per_connection": round(pcap_lines / args.connections, 1),
        "socket_table_bytes": table_lines,
        "client_seconds": round(elapsed, 2),
        "tcpdump_processes": tcpdumps,
        "tcpdump_cpu_seconds": round(tcpdump_cpu, 3),
        "container_cpu_seconds": round(cpu, 3),
        "udp_datagrams_sent": UDP_DATAGRAMS,
        "udp_payload_bytes_kept": sum(_payload_kept(bytes(d)) for c, d in pcaps.items() if c != "D"),
        "streams": {c: {"snaplen": snaplen, "bytes": len(pcaps.get(c, b""))}
                    for c, (_, snaplen) in settings.streams.items()},
        "problems": decoder.problems(),
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
