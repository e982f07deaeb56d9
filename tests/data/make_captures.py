"""Record a set of small, real captures with tcpdump, in a lab of network namespaces (``tests/netlab.py``).

Each capture holds known traffic between lab hosts, on one kind of link: Ethernet (a veth), Linux cooked
v1 and v2 (``-i any``), raw IP (a TUN tunnel), 802.1Q and QinQ VLANs; and known cases: IPv6,
IPv4 and IPv6 fragments, DNS over UDP and TCP with CNAME chains and NXDOMAIN search expansions, a
capture started in the middle of a connection, a snaplen-truncated capture, and ``tcpdump -w -``. The
addresses, ports and counts below are what the tests expect back from the decoder.

Needs root, iproute2, nftables, tcpdump, /dev/net/tun and dnspython. Run it as a script to keep the files::

    sudo python3 tests/data/make_captures.py OUTDIR
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the `tests` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.netlab import Capture, Host, Lab, LabError, link_type

# The lab: client "a", server "b" and DNS server "ns" on one bridge, MTU 1400 (for fragments).
MTU = 1400
A4, B4, NS4 = "10.244.1.10", "10.244.1.11", "10.244.1.53"
A6, B6 = "fd00:10:244::10", "fd00:10:244::11"
VLAN_ID, VLAN_A, VLAN_B = 100, "10.244.100.10", "10.244.100.11"
QINQ_OUTER, QINQ_INNER, QINQ_A, QINQ_B = 200, 300, "10.244.101.10", "10.244.101.11"
TUN_A4, TUN_B4 = "10.244.250.1", "10.244.250.2"
TUN_A6, TUN_B6 = "2001:db8:6::1", "2001:db8:6::2"

TCP_PORT = 8080
UDP_PORT = 9999
LONG_PORT = 5432
"""The server port of the long-lived connection in ``midstream.pcap`` (below the client's port)."""
DNS_PORT = 53
BIG_DATAGRAM = 3000
"""UDP payload bytes of each datagram in the fragment captures (over MTU 1400)."""
PINGS = 2
MIDSTREAM_MESSAGES = 3

ZONE: dict[str, dict[str, object]] = {
    "CNAME": {
        "api.example.com.": "api.edge.example.net.",
        "api.edge.example.net.": "lb-7.cdn.example.org.",
        "db.example.com.": "db.internal.example.net.",
    },
    "A": {
        "lb-7.cdn.example.org.": ["203.0.113.10"],
        "db.internal.example.net.": ["198.51.100.20"],
        "registry.example.org.": ["198.51.100.7", "198.51.100.8"],
    },
    "AAAA": {"lb-7.cdn.example.org.": ["2001:db8::10"]},
}
SEARCH = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")
"""A pod's resolv.conf search list: a resolver with ndots:5 tries these expansions first."""
DNS_UDP_QUESTIONS: tuple[tuple[str, str], ...] = (
    *((f"api.example.com.{domain}", rdtype) for domain in SEARCH for rdtype in ("A", "AAAA")),
    ("api.example.com", "A"),
    ("api.example.com", "AAAA"),
    ("registry.example.org", "A"),
)
DNS_TCP_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("db.example.com.default.svc.cluster.local", "A"),
    ("db.example.com", "A"),
)

LINK_TYPES = {
    "ethernet.pcap": "EN10MB",
    "sll2.pcap": "LINUX_SLL2",
    "sll.pcap": "LINUX_SLL",
    "raw4.pcap": "RAW",
    "raw6.pcap": "RAW",
    "vlan.pcap": "EN10MB",
    "qinq.pcap": "EN10MB",
    "ipv6.pcap": "EN10MB",
    "frag4.pcap": "EN10MB",
    "frag6.pcap": "EN10MB",
    "dns.pcap": "EN10MB",
    "midstream.pcap": "EN10MB",
    "full.pcap": "EN10MB",
    "snap64.pcap": "EN10MB",
    "stdin.pcap": "EN10MB",
}
"""Every capture recorded, and the link type tcpdump must have written."""


@dataclass(frozen=True)
class Recording:
    """One capture file and when it was recorded."""

    path: Path
    link_type: str
    """The link type of the file, as ``tcpdump -r`` names it."""
    started: float
    """Wall-clock time (seconds since the epoch) just before tcpdump started."""
    stopped: float
    """Wall-clock time just after tcpdump stopped."""
    captured: int | None
    """Packets tcpdump said it captured."""


class _Recorder:
    """Runs the lab's scenarios, one or more captures each, and collects the recordings."""

    def __init__(self, lab: Lab, outdir: Path) -> None:
        self.lab = lab
        self.outdir = outdir
        self.recordings: dict[str, Recording] = {}

    @contextmanager
    def record(self, host: Host, iface: str, *names: str,
               options: dict[str, dict[str, int | str]] | None = None) -> Iterator[list[Capture]]:
        """Record traffic on ``iface`` of ``host`` into each of ``names`` (one tcpdump each).

        ``options`` gives extra :meth:`Lab.capture` arguments by file name; ``stdin.pcap`` is written
        by ``tcpdump -w -``.
        """
        started = time.time()
        captures: list[Capture] = []
        try:
            for name in names:
                extra: dict[str, object] = dict((options or {}).get(name, {}))
                path = None if name == "stdin.pcap" else self.outdir / name
                captures.append(self.lab.capture(host, iface, path, **extra))  # type: ignore[arg-type]
            yield captures
        except BaseException:
            for capture in captures:
                capture.proc.kill()
            raise
        for capture in captures:
            capture.stop()
        stopped = time.time()
        for name, capture in zip(names, captures, strict=True):
            path = self.outdir / name
            if capture.path is None:
                path.write_bytes(capture.data)
            self.recordings[name] = Recording(path, link_type(path), started, stopped, capture.captured)


def _scenarios(rec: _Recorder, a: Host, b: Host, ns: Host) -> list[Callable[[], None]]:
    lab = rec.lab

    def ethernet() -> None:
        tcp = lab.tcp_server(b, TCP_PORT, connections=3)
        udp = lab.udp_server(b, UDP_PORT, datagrams=2)
        with rec.record(a, "eth0", "ethernet.pcap"):
            lab.tcp_client(a, B4, TCP_PORT, count=3)
            lab.udp_client(a, B4, UDP_PORT, count=2)
            lab.ping(a, B4, count=PINGS)
        tcp.wait()
        udp.wait()

    def cooked() -> None:
        # Both cooked link types at once, from the same traffic. The ping goes the other way: b is
        # the client of that flow.
        tcp = lab.tcp_server(b, TCP_PORT, connections=2)
        udp = lab.udp_server(b, UDP_PORT, datagrams=2)
        with rec.record(a, "any", "sll2.pcap", "sll.pcap", options={"sll.pcap": {"link": "LINUX_SLL"}}):
            lab.tcp_client(a, B4, TCP_PORT, count=2)
            lab.udp_client(a, B4, UDP_PORT, count=2)
            lab.ping(b, A4, count=PINGS)
        tcp.wait()
        udp.wait()

    def raw4() -> None:
        tcp = lab.tcp_server(b, TCP_PORT, connections=2)
        with rec.record(a, tunnel, "raw4.pcap"):
            lab.tcp_client(a, TUN_B4, TCP_PORT, count=2)
            lab.ping(a, TUN_B4, count=PINGS)
        tcp.wait()

    def raw6() -> None:
        tcp = lab.tcp_server(b, TCP_PORT, connections=2)
        with rec.record(a, tunnel, "raw6.pcap"):
            lab.tcp_client(a, TUN_B6, TCP_PORT, count=2)
            lab.ping(a, TUN_B6, count=PINGS)
        tcp.wait()

    def vlan() -> None:
        tcp = lab.tcp_server(b, TCP_PORT, connections=2)
        udp = lab.udp_server(b, UDP_PORT, datagrams=2)
        with rec.record(a, "eth0", "vlan.pcap"):
            lab.tcp_client(a, VLAN_B, TCP_PORT, count=2)
            lab.udp_client(a, VLAN_B, UDP_PORT, count=2)
        tcp.wait()
        udp.wait()

    def qinq() -> None:
        tcp = lab.tcp_server(b, TCP_PORT, connections=2)
        with rec.record(a, "eth0", "qinq.pcap"):
            lab.tcp_client(a, QINQ_B, TCP_PORT, count=2)
            lab.ping(a, QINQ_B, count=PINGS)
        tcp.wait()

    def ipv6() -> None:
        tcp = lab.tcp_server(b, TCP_PORT, connections=2)
        udp = lab.udp_server(b, UDP_PORT, datagrams=2)
        with rec.record(a, "eth0", "ipv6.pcap"):
            lab.tcp_client(a, B6, TCP_PORT, count=2)
            lab.udp_client(a, B6, UDP_PORT, count=2)
            lab.ping(a, B6, count=PINGS)
        tcp.wait()
        udp.wait()

    def fragments() -> None:
        for name, server in (("frag4.pcap", B4), ("frag6.pcap", B6)):
            udp = lab.udp_server(b, UDP_PORT, datagrams=2)
            with rec.record(a, "eth0", name):
                lab.udp_client(a, server, UDP_PORT, count=2, size=BIG_DATAGRAM)
            udp.wait()

    def dns() -> None:
        server = lab.dns_server(ns, ZONE, queries=len(DNS_UDP_QUESTIONS) + len(DNS_TCP_QUESTIONS))
        with rec.record(a, "eth0", "dns.pcap"):
            answers = lab.dns_lookups(a, NS4, DNS_UDP_QUESTIONS)
            answers += lab.dns_lookups(a, NS4, DNS_TCP_QUESTIONS, tcp=True)
        server.wait()
        nxdomains = [x.name for x in answers if x.rcode == "NXDOMAIN"]
        if nxdomains != [name for name, _ in (*DNS_UDP_QUESTIONS, *DNS_TCP_QUESTIONS) if "cluster" in name]:
            raise LabError(f"the DNS server answered unexpectedly: {answers}")

    def midstream() -> None:
        chat = lab.chat(a, b, B4, LONG_PORT)  # established before tcpdump starts
        with rec.record(a, "eth0", "midstream.pcap"):
            for i in range(MIDSTREAM_MESSAGES):
                chat.say(f"message {i} from the server")
        chat.close()

    def snaplen() -> None:
        tcp = lab.tcp_server(b, TCP_PORT, connections=2, reply="r" * 300)
        udp = lab.udp_server(b, UDP_PORT, datagrams=2)
        with rec.record(a, "eth0", "full.pcap", "snap64.pcap", options={"snap64.pcap": {"snaplen": 64}}):
            lab.tcp_client(a, B4, TCP_PORT, count=2, payload="p" * 300)
            lab.udp_client(a, B4, UDP_PORT, count=2, size=300)
            lab.ping(a, B4, count=PINGS)
        tcp.wait()
        udp.wait()

    def stdout() -> None:
        tcp = lab.tcp_server(b, TCP_PORT, connections=1)
        udp = lab.udp_server(b, UDP_PORT, datagrams=1)
        with rec.record(a, "eth0", "stdin.pcap"):
            lab.tcp_client(a, B4, TCP_PORT, count=1)
            lab.udp_client(a, B4, UDP_PORT, count=1)
        tcp.wait()
        udp.wait()

    tunnel = lab.add_tunnel(a, b, [TUN_A4, TUN_A6], [TUN_B4, TUN_B6])
    lab.add_vlan(a, b, VLAN_ID, VLAN_A, VLAN_B)
    lab.add_vlan(a, b, QINQ_INNER, QINQ_A, QINQ_B, outer_vid=QINQ_OUTER)
    return [ethernet, cooked, raw4, raw6, vlan, qinq, ipv6, fragments, dns, midstream, snaplen, stdout]


def record_all(outdir: Path) -> dict[str, Recording]:
    """Build a lab, record every capture of :data:`LINK_TYPES` into ``outdir``, and tear the lab down.

    Args:
        outdir: An existing directory; files of the same names are overwritten.

    Returns:
        The recordings by file name.

    Raises:
        LabError: A lab step failed, or tcpdump wrote another link type than expected.
    """
    with Lab(mtu=MTU) as lab:
        a = lab.add_host("a", ipv4=A4, ipv6=A6)
        b = lab.add_host("b", ipv4=B4, ipv6=B6)
        ns = lab.add_host("ns", ipv4=NS4)
        rec = _Recorder(lab, outdir)
        for scenario in _scenarios(rec, a, b, ns):
            scenario()
    for name, expected in LINK_TYPES.items():
        if rec.recordings[name].link_type != expected:
            got = rec.recordings[name].link_type
            raise LabError(f"{name}: tcpdump wrote link type {got}, not {expected}")
    return rec.recordings


def main(argv: list[str] | None = None) -> int:
    """Record the captures into the directory given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("outdir", type=Path, help="where to write the .pcap files")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for name, recording in record_all(args.outdir).items():
        print(f"{name:16} {recording.link_type:11} {recording.captured} packets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
