"""The capture decoder on small captures built packet by packet with scapy (and raw struct where scapy can't).

Each test writes a capture into ``tmp_path`` and runs the real ``kubectl netgen flows`` / ``dns``
in-process, then checks every field of every flow (and every name) against what was built. Packets
use documentation and cluster-internal test addresses only, and nothing is ever sent: only files are
written.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, IPOption_Router_Alert, UDPerror, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    fragment6,
)
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP, SCTPChunkData, SCTPChunkInit, SCTPChunkInitAck
from scapy.packet import Packet, Raw
from scapy.utils import EDecimal, wrpcap, wrpcapng

from tests.conftest import Result, run

Flow = dict[str, Any]
Frames = Sequence[tuple[int, bytes]]
"""(time in nanoseconds since the epoch, frame bytes) per packet."""

# --- addresses (documentation and test ranges only) and times ---------------------------------------

C4, S4 = "10.244.1.10", "10.244.2.20"
C6, S6 = "2001:db8::10", "2001:db8::20"
DNS4 = "10.96.0.10"
ROUTER4 = "192.0.2.1"
MAC_C, MAC_S = "02:00:00:00:00:0a", "02:00:00:00:00:14"

T0 = 1_700_000_000
"""2023-11-14T22:13:20Z, the capture's start."""

ETHERNET, NULL, RAW, LOOP, LINUX_SLL, IPV4, IPV6, LINUX_SLL2 = 1, 0, 101, 108, 113, 228, 229, 276
IEEE802_11, USER0 = 105, 147


def ns(us: int) -> int:
    """Nanoseconds since the epoch of ``us`` microseconds after ``T0``."""
    return (T0 * 1_000_000 + us) * 1000


def stamp(us: int, extra_ns: int = 0) -> str:
    """RFC 3339 of ``us`` µs (plus ``extra_ns``) after ``T0`` (under 40 s), as the tool prints it."""
    seconds, micro = divmod(us, 1_000_000)
    fraction = f"{micro * 1000 + extra_ns:09d}" if extra_ns else f"{micro:06d}"
    return f"2023-11-14T22:13:{20 + seconds:02d}.{fraction}Z"


def flow(protocol: str, src: str, dst: str, port: int | None, *, packets: int, nbytes: int,
         first: str | None, last: str | None, connections: int = 1, kind: str = "connection",
         direction: str = "handshake") -> Flow:
    return {
        "protocol": protocol, "src": src, "dst": dst, "dst_port": port, "kind": kind,
        "connections": connections, "packets": packets, "bytes": nbytes,
        "first_seen": first, "last_seen": last, "direction": direction,
    }


# --- capture writers --------------------------------------------------------------------------------


def pcap_records(records: Sequence[tuple[int, int, bytes, int]], linktype: int = ETHERNET, *,
                 endian: str = "<", nano: bool = False, snaplen: int = 262144) -> bytes:
    """A classic pcap from (seconds, fraction, captured bytes, original length) records."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, orig in records:
        out.append(struct.pack(endian + "IIII", sec, frac, len(data), orig) + data)
    return b"".join(out)


def pcap(frames: Frames, linktype: int = ETHERNET, *, endian: str = "<", nano: bool = False,
         snaplen: int = 262144) -> bytes:
    """A classic pcap of ``frames``, cut to ``snaplen`` like tcpdump -s does."""
    records = []
    for t, frame in frames:
        sec, rest = divmod(t, 1_000_000_000)
        if not nano:
            assert rest % 1000 == 0, "a microsecond pcap cannot hold this time"
        records.append((sec, rest if nano else rest // 1000, frame[:snaplen], len(frame)))
    return pcap_records(records, linktype, endian=endian, nano=nano, snaplen=snaplen)


def block(btype: int, body: bytes, endian: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    size = struct.pack(endian + "I", 12 + len(body))
    return struct.pack(endian + "I", btype) + size + body + size


def shb(endian: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)


def option(code: int, value: bytes, endian: str = "<") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def idb(linktype: int, endian: str = "<", *, tsresol: int | None = None, snaplen: int = 262144) -> bytes:
    options = b""
    if tsresol is not None:
        options = option(2, b"eth0", endian) + option(9, bytes((tsresol,)), endian) + option(0, b"", endian)
    return block(1, struct.pack(endian + "HHI", linktype, 0, snaplen) + options, endian)


def epb(iface: int, ticks: int, frame: bytes, endian: str = "<") -> bytes:
    header = struct.pack(endian + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
    return block(6, header + frame, endian)


def spb(frame: bytes, endian: str = "<") -> bytes:
    return block(3, struct.pack(endian + "I", len(frame)) + frame, endian)


def pb(iface: int, ticks: int, frame: bytes, endian: str = "<") -> bytes:
    header = struct.pack(endian + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
    return block(2, header + frame, endian)


def pcapng(frames: Frames, linktype: int = ETHERNET) -> bytes:
    """A one-interface pcapng (microsecond timestamps) of ``frames``."""
    return shb() + idb(linktype) + b"".join(epb(0, t // 1000, frame) for t, frame in frames)


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# --- link layers ------------------------------------------------------------------------------------


def eth(ip: Packet) -> bytes:
    return bytes(Ether(src=MAC_C, dst=MAC_S) / ip)


def ethertype(ip: bytes) -> int:
    return 0x0800 if ip[0] >> 4 == 4 else 0x86DD


def vlan(ip: Packet) -> bytes:
    return bytes(Ether(src=MAC_C, dst=MAC_S) / Dot1Q(vlan=100) / ip)


def qinq(ip: Packet) -> bytes:
    return bytes(Ether(src=MAC_C, dst=MAC_S) / Dot1AD(vlan=200) / Dot1Q(vlan=300) / ip)


def qinq_9100(ip: Packet) -> bytes:
    return bytes(Ether(src=MAC_C, dst=MAC_S, type=0x9100) / Dot1Q(vlan=200) / Dot1Q(vlan=300) / ip)


def sll(ip: Packet) -> bytes:
    raw = bytes(ip)
    return struct.pack(">HHH8sH", 0, 1, 6, bytes.fromhex("02000000000a"), ethertype(raw)) + raw


def sll2(ip: Packet) -> bytes:
    raw = bytes(ip)
    return struct.pack(">HHIHBB8s", ethertype(raw), 0, 3, 1, 0, 6, bytes.fromhex("02000000000a")) + raw


def bare(ip: Packet) -> bytes:
    return bytes(ip)


def null(endian: str, inet6: int) -> Callable[[Packet], bytes]:
    def wrap(ip: Packet) -> bytes:
        raw = bytes(ip)
        family = 2 if raw[0] >> 4 == 4 else inet6
        return struct.pack(endian + "I", family) + raw
    return wrap


# --- the traffic most tests use ---------------------------------------------------------------------


def tcp_exchange(client: str = C4, server: str = S4, cport: int = 40000, sport: int = 8080) -> list[Packet]:
    """A TCP handshake and one 10-byte request: 4 packets, 170 IP bytes, Don't Fragment set as Linux does."""
    out, back = IP(src=client, dst=server, flags="DF"), IP(src=server, dst=client, flags="DF")
    return [
        out / TCP(sport=cport, dport=sport, flags="S", seq=100),
        back / TCP(sport=sport, dport=cport, flags="SA", seq=900, ack=101),
        out / TCP(sport=cport, dport=sport, flags="A", seq=101, ack=901),
        out / TCP(sport=cport, dport=sport, flags="PA", seq=101, ack=901) / b"0123456789",
    ]


def udp6_exchange() -> list[Packet]:
    """A UDP request and its reply over IPv6: 2 packets, 104 IP bytes."""
    return [
        IPv6(src=C6, dst=S6) / UDP(sport=40001, dport=9999) / b"ping",
        IPv6(src=S6, dst=C6) / UDP(sport=9999, dport=40001) / b"pong",
    ]


TCP_FLOW = flow("TCP", C4, S4, 8080, packets=4, nbytes=170, first=stamp(0), last=stamp(3))
UDP6_FLOW = flow("UDP", C6, S6, 9999, packets=2, nbytes=104, first=stamp(10), last=stamp(11))


def timed(packets: Sequence[Packet], wrap: Callable[[Packet], bytes], start_us: int = 0
          ) -> list[tuple[int, bytes]]:
    """Frames one microsecond apart from ``start_us``."""
    return [(ns(start_us + i), wrap(p)) for i, p in enumerate(packets)]


# --- running the tool -------------------------------------------------------------------------------


def warnings(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def flows_of(*paths: str, stdin: bytes = b"") -> tuple[list[Flow], list[str]]:
    result = run("flows", *paths, "-o", "json", stdin=stdin)
    assert result.exit_code == 0, result.stderr
    assert "error:" not in result.stderr
    return json.loads(result.stdout), warnings(result)


def names_of(*paths: str) -> tuple[dict[str, list[str]], list[str]]:
    result = run("dns", *paths, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), warnings(result)


def summary(result: Result) -> str:
    return result.stderr.splitlines()[-1]


# --- formats ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["wrpcap", "wrpcapng"])
def test_scapy_writers(tmp_path: Path, writer: str) -> None:
    packets = [Ether(src=MAC_C, dst=MAC_S) / p for p in tcp_exchange()]
    for i, p in enumerate(packets):
        p.time = EDecimal(T0) + EDecimal(i) / 4  # quarter seconds: exact in wrpcapng's float arithmetic
    path = str(tmp_path / f"scapy.{writer}")
    (wrpcap if writer == "wrpcap" else wrpcapng)(path, packets)
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        flow("TCP", C4, S4, 8080, packets=4, nbytes=170, first="2023-11-14T22:13:20.000000Z",
             last="2023-11-14T22:13:20.750000Z"),
    ]
    assert result.stderr == "1 flows (0 with a guessed direction) from 4 packets in 1 capture(s)\n"


@pytest.mark.parametrize("endian", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
def test_classic_pcap_byte_orders_and_precisions(tmp_path: Path, endian: str, nano: bool) -> None:
    extra = 789 if nano else 0  # nanoseconds a microsecond file cannot hold
    frames = [(t + extra, frame) for t, frame in timed(tcp_exchange(), eth, 123_456)]
    frames += timed(udp6_exchange(), eth, 10)
    path = write(tmp_path, "x.pcap", pcap(frames, endian=endian, nano=nano))
    found, warned = flows_of(path)
    assert found == [
        flow("TCP", C4, S4, 8080, packets=4, nbytes=170, first=stamp(123_456, extra),
             last=stamp(123_459, extra)),
        UDP6_FLOW,
    ]
    assert warned == []
    if nano:
        assert found[0]["first_seen"] == "2023-11-14T22:13:20.123456789Z"


def test_nanosecond_times_keep_nine_digits_only_when_needed(tmp_path: Path) -> None:
    frames = [
        (T0 * 10**9 + 1, eth(IP(src=C4, dst=S4) / UDP(sport=40000, dport=9999) / b"a")),
        (T0 * 10**9 + 999_999_999, eth(IP(src=C4, dst=S4) / UDP(sport=40000, dport=9999) / b"b")),
        (T0 * 10**9 + 5_000, eth(IP(src=C4, dst=S4) / UDP(sport=40001, dport=9998) / b"c")),
        (T0 * 10**9 + 6_000, eth(IP(src=C4, dst=S4) / UDP(sport=40001, dport=9998) / b"d")),
    ]
    path = write(tmp_path, "ns.pcap", pcap(frames, nano=True, endian=">"))
    found, _ = flows_of(path)
    assert found == [
        flow("UDP", C4, S4, 9998, packets=2, nbytes=58, first="2023-11-14T22:13:20.000005Z",
             last="2023-11-14T22:13:20.000006Z", direction="guess"),
        flow("UDP", C4, S4, 9999, packets=2, nbytes=58, first="2023-11-14T22:13:20.000000001Z",
             last="2023-11-14T22:13:20.999999999Z", direction="guess"),
    ]


def test_pcapng_sections_interfaces_tsresol_spb_and_pb(tmp_path: Path) -> None:
    c, s = "10.244.3.10", "10.244.3.20"
    syn, synack, ack, data = tcp_exchange()
    request = IP(src=c, dst=s) / UDP(sport=40010, dport=9999) / b"q"
    reply = IP(src=s, dst=c) / UDP(sport=9999, dport=40010) / b"r"
    ping = IP(src=C4, dst=s) / ICMP(type=8, id=7, seq=1) / b"abcdefgh"
    pong = IP(src=s, dst=C4) / ICMP(type=0, id=7, seq=1) / b"abcdefgh"
    ipv6_request, ipv6_reply = udp6_exchange()
    section1 = b"".join([
        shb("<"),
        idb(ETHERNET),  # 0: microseconds (no if_tsresol)
        idb(RAW, tsresol=9),  # 1: nanoseconds
        idb(LINUX_SLL2, tsresol=0x80 | 20),  # 2: 2^-20 s
        idb(USER0, tsresol=6),  # 3: unsupported link type
        block(4, struct.pack("<HH", 0, 0)),  # a name resolution block: skipped
        epb(0, ns(0) // 1000, eth(syn)),
        epb(1, ns(1000) + 123, bare(request)),
        epb(0, ns(1) // 1000, eth(synack)),
        spb(eth(ack)),  # interface 0, no timestamp
        pb(1, ns(3000) + 7, bare(reply)),  # obsolete packet block
        epb(2, (T0 << 20) + (1 << 19), sll2(ping)),  # T0 + 0.5 s
        epb(2, (T0 << 20) + (1 << 19) + (1 << 18), sll2(pong)),  # T0 + 0.75 s
        epb(3, ns(0) // 1000, b"\x00" * 30),
        epb(3, ns(0) // 1000, b"\x00" * 30),
        block(5, struct.pack("<IIII", 0, 0, 0, 0)),  # an interface statistics block: skipped
        epb(0, ns(3) // 1000, eth(data)),
    ])
    section2 = b"".join([  # big-endian; interface numbers start again at 0
        shb(">"),
        idb(RAW, ">", tsresol=3),  # milliseconds
        epb(0, T0 * 1000 + 10, bare(ipv6_request), ">"),
        epb(0, T0 * 1000 + 11, bare(ipv6_reply), ">"),
    ])
    path = write(tmp_path, "multi.pcapng", section1 + section2)
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        flow("ICMP", C4, s, None, kind="echo", packets=2, nbytes=72, first="2023-11-14T22:13:20.500000Z",
             last="2023-11-14T22:13:20.750000Z"),
        TCP_FLOW,
        flow("UDP", c, s, 9999, packets=2, nbytes=58, first=stamp(1000, 123), last=stamp(3000, 7)),
        flow("UDP", C6, S6, 9999, packets=2, nbytes=104, first=stamp(10_000), last=stamp(11_000)),
    ]
    assert warnings(result) == [
        f"warning: {path}: skipped 2 packet(s) with unsupported link type 147 (USER0)",
    ]
    assert summary(result) == "4 flows (0 with a guessed direction) from 12 packets in 1 capture(s)"


def test_pcapng_simple_packet_blocks_only_have_no_times(tmp_path: Path) -> None:
    data = shb() + idb(ETHERNET, snaplen=65535) + b"".join(spb(eth(p)) for p in tcp_exchange())
    found, warned = flows_of(write(tmp_path, "spb.pcapng", data))
    assert found == [flow("TCP", C4, S4, 8080, packets=4, nbytes=170, first=None, last=None)]
    assert warned == []


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip_compressed(tmp_path: Path, kind: str) -> None:
    frames = timed(tcp_exchange(), eth) + timed(udp6_exchange(), eth, 10)
    data = pcap(frames) if kind == "pcap" else pcapng(frames)
    path = write(tmp_path, f"x.{kind}.gz", gzip.compress(data, mtime=0))
    found, warned = flows_of(path)
    assert found == [TCP_FLOW, UDP6_FLOW]
    assert warned == []


@pytest.mark.parametrize("kind", ["pcap", "pcapng", "pcap.gz"])
def test_stdin(kind: str) -> None:
    frames = timed(tcp_exchange(), eth) + timed(udp6_exchange(), eth, 10)
    data = pcapng(frames) if kind == "pcapng" else pcap(frames)
    if kind.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    found, warned = flows_of("-", stdin=data)
    assert found == [TCP_FLOW, UDP6_FLOW]
    assert warned == []


def test_stdin_given_twice_is_an_input_error() -> None:
    result = run("flows", "-", "-", "-o", "json", stdin=pcap([]))
    assert result.exit_code == 3
    assert result.stderr == "error: '-' (stdin) can be given only once\n"


# --- link types -------------------------------------------------------------------------------------

LINKS = {
    "ethernet": (ETHERNET, eth, "46"),
    "802.1q": (ETHERNET, vlan, "46"),
    "802.1ad-qinq": (ETHERNET, qinq, "46"),
    "9100-qinq": (ETHERNET, qinq_9100, "46"),
    "linux-sll": (LINUX_SLL, sll, "46"),
    "linux-sll2": (LINUX_SLL2, sll2, "46"),
    "raw-101": (RAW, bare, "46"),
    "raw-dlt12": (12, bare, "46"),
    "raw-dlt14": (14, bare, "46"),
    "ipv4-228": (IPV4, bare, "4"),
    "ipv6-229": (IPV6, bare, "6"),
    "null-little-endian-linux": (NULL, null("<", 10), "46"),
    "null-big-endian-linux": (NULL, null(">", 10), "46"),
    "null-little-endian-bsd": (NULL, null("<", 24), "46"),
    "null-little-endian-freebsd": (NULL, null("<", 28), "46"),
    "null-little-endian-macos": (NULL, null("<", 30), "46"),
    "loop": (LOOP, null(">", 24), "46"),
}


@pytest.mark.parametrize("container", ["pcap", "pcapng"])
@pytest.mark.parametrize("link", list(LINKS))
def test_link_types(tmp_path: Path, link: str, container: str) -> None:
    linktype, wrap, families = LINKS[link]
    frames: list[tuple[int, bytes]] = []
    expected = []
    if "4" in families:
        frames += timed(tcp_exchange(), wrap)
        expected.append(TCP_FLOW)
    if "6" in families:
        frames += timed(udp6_exchange(), wrap, 10)
        expected.append(UDP6_FLOW)
    data = pcap(frames, linktype) if container == "pcap" else pcapng(frames, linktype)
    result = run("flows", write(tmp_path, f"{link}.{container}", data), "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == expected
    assert warnings(result) == []


def test_ethernet_padding_counts_as_frame_bytes(tmp_path: Path) -> None:
    # A 54-byte ACK padded to Ethernet's 60-byte minimum: bytes are the frame length minus the link header.
    syn, synack, ack, _ = tcp_exchange()
    frames = [(ns(0), eth(syn) + b"\0" * 6), (ns(1), eth(synack) + b"\0" * 6), (ns(2), eth(ack) + b"\0" * 6)]
    found, _ = flows_of(write(tmp_path, "padded.pcap", pcap(frames)))
    assert found == [flow("TCP", C4, S4, 8080, packets=3, nbytes=138, first=stamp(0), last=stamp(2))]


def test_non_ip_frames_are_not_flows(tmp_path: Path) -> None:
    arp = bytes.fromhex("ffffffffffff02000000000a0806") + b"\0" * 28
    frames = [(ns(0), arp), *timed(tcp_exchange(), eth, 1)]
    found, warned = flows_of(write(tmp_path, "arp.pcap", pcap(frames)))
    assert found == [flow("TCP", C4, S4, 8080, packets=4, nbytes=170, first=stamp(1), last=stamp(4))]
    assert warned == []


@pytest.mark.parametrize("container", ["pcap", "pcapng"])
def test_unsupported_link_type(tmp_path: Path, container: str) -> None:
    frames = [(ns(0), b"\x08\x02" + b"\0" * 40), (ns(1), b"\x08\x02" + b"\0" * 40)]
    data = pcap(frames, IEEE802_11) if container == "pcap" else pcapng(frames, IEEE802_11)
    path = write(tmp_path, f"wifi.{container}", data)
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert result.stdout == "[]\n"
    assert warnings(result) == [
        f"warning: {path}: skipped 2 packet(s) with unsupported link type 105 (IEEE802_11)",
    ]


# --- IP layer: options, fragments, extension headers --------------------------------------------------


def test_ipv4_options(tmp_path: Path) -> None:
    packets = [
        IP(src=C4, dst=S4, options=[IPOption_Router_Alert()]) / TCP(sport=40000, dport=8080, flags="S"),
        IP(src=S4, dst=C4, options=[IPOption_Router_Alert()]) / TCP(sport=8080, dport=40000, flags="SA"),
        IP(src=C4, dst=S4, options=[IPOption_Router_Alert()]) / UDP(sport=40001, dport=9999) / b"ping",
    ]
    found, warned = flows_of(write(tmp_path, "options.pcap", pcap(timed(packets, eth))))
    assert found == [
        flow("TCP", C4, S4, 8080, packets=2, nbytes=88, first=stamp(0), last=stamp(1)),
        flow("UDP", C4, S4, 9999, packets=1, nbytes=36, first=stamp(2), last=stamp(2), direction="guess"),
    ]
    assert warned == []


def test_ipv4_fragments_count_towards_the_first_fragments_flow(tmp_path: Path) -> None:
    datagram = IP(src=C4, dst=S4, id=0x4242) / UDP(sport=40002, dport=9999) / (b"x" * 3000)
    fragments = fragment(datagram, fragsize=1480)
    assert [len(f) for f in fragments] == [1500, 1500, 68]
    reply = IP(src=S4, dst=C4, id=0x0101) / UDP(sport=9999, dport=40002) / b"done"
    # A later fragment of another datagram whose first fragment was not captured.
    orphan = fragment(IP(src=C4, dst=S4, id=0x4343) / UDP(sport=40003, dport=9999) / (b"y" * 2000),
                      fragsize=1480)[1]
    packets = [*fragments, reply, orphan]
    path = write(tmp_path, "fragments.pcap", pcap(timed(packets, eth)))
    found, warned = flows_of(path)
    assert found == [
        flow("UDP", C4, S4, 9999, packets=4, nbytes=1500 + 1500 + 68 + 32, first=stamp(0), last=stamp(3)),
    ]
    assert warned == [
        f"warning: {path}: 1 IP fragment(s) arrived without their first fragment (which carries the ports) "
        "and were skipped",
    ]


def test_ipv6_extension_headers_and_fragments(tmp_path: Path) -> None:
    syn = IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(sport=40000, dport=443,
                                                                                flags="S")
    synack = IPv6(src=S6, dst=C6) / IPv6ExtHdrDestOpt() / TCP(sport=443, dport=40000, flags="SA")
    datagram = (IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
                / IPv6ExtHdrFragment(id=0xABCD) / UDP(sport=40002, dport=9999) / (b"x" * 3000))
    fragments = fragment6(datagram, 1280)
    assert [len(f) for f in fragments] == [1280, 1280, 640]
    orphan = fragment6(IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=0x1111) / UDP(sport=40003, dport=9999)
                       / (b"y" * 2000), 1280)[1]
    packets = [syn, synack, *fragments, orphan]
    path = write(tmp_path, "ipv6.pcap", pcap(timed(packets, eth)))
    found, warned = flows_of(path)
    assert found == [
        flow("TCP", C6, S6, 443, packets=2, nbytes=(40 + 16 + 20) + (40 + 8 + 20), first=stamp(0),
             last=stamp(1)),
        flow("UDP", C6, S6, 9999, packets=3, nbytes=3200, first=stamp(2), last=stamp(4), direction="guess"),
    ]
    assert warned == [
        f"warning: {path}: 1 IP fragment(s) arrived without their first fragment (which carries the ports) "
        "and were skipped",
    ]


# --- transports and directions ----------------------------------------------------------------------


def test_sctp_init_and_init_ack_give_the_direction(tmp_path: Path) -> None:
    c2 = "10.244.1.11"
    packets = [
        IP(src=C4, dst=S4) / SCTP(sport=40000, dport=38412) / SCTPChunkInit(),
        IP(src=S4, dst=C4) / SCTP(sport=38412, dport=40000) / SCTPChunkInitAck(),
        IP(src=C4, dst=S4) / SCTP(sport=40000, dport=38412) / SCTPChunkData(data=b"x"),
        # Only the INIT ACK of another association: its receiver is the client, whatever the ports say.
        IP(src=S4, dst=c2) / SCTP(sport=50000, dport=1000) / SCTPChunkInitAck(),
        IP(src=c2, dst=S4) / SCTP(sport=1000, dport=50000) / SCTPChunkData(data=b"x"),
    ]
    found, _ = flows_of(write(tmp_path, "sctp.pcap", pcap(timed(packets, eth))))
    assert found == [
        flow("SCTP", C4, S4, 38412, packets=3, nbytes=52 * 3, first=stamp(0), last=stamp(2)),
        flow("SCTP", c2, S4, 50000, packets=2, nbytes=52 * 2, first=stamp(3), last=stamp(4)),
    ]


def test_icmp_and_icmpv6(tmp_path: Path) -> None:
    payload = b"abcdefgh"
    packets = [
        IP(src=C4, dst=S4) / ICMP(type=8, id=0x1234, seq=1) / payload,
        IP(src=S4, dst=C4) / ICMP(type=0, id=0x1234, seq=1) / payload,
        IP(src=C4, dst=S4) / ICMP(type=8, id=0x1234, seq=2) / payload,
        IP(src=S4, dst=C4) / ICMP(type=0, id=0x1234, seq=2) / payload,
        IP(src=C4, dst=S4) / ICMP(type=8, id=0x1235, seq=1) / payload,  # a second ping, never answered
        IPv6(src=C6, dst=S6) / ICMPv6EchoRequest(id=0x42, seq=1, data=payload),
        IPv6(src=S6, dst=C6) / ICMPv6EchoReply(id=0x42, seq=1, data=payload),
        # A reply whose request was not captured: the receiver asked.
        IP(src=ROUTER4, dst=C4) / ICMP(type=0, id=0x99, seq=1) / payload,
        # Not an echo: kept as its own kind, from its sender.
        IP(src=ROUTER4, dst=C4) / ICMP(type=11, code=0) / IPerror(src=C4, dst="203.0.113.5") / UDPerror(
            sport=40000, dport=33434),
    ]
    found, warned = flows_of(write(tmp_path, "icmp.pcap", pcap(timed(packets, eth))))
    assert found == [
        flow("ICMP", ROUTER4, C4, None, kind="time-exceeded", packets=1, nbytes=56, first=stamp(8),
             last=stamp(8)),
        flow("ICMP", C4, S4, None, kind="echo", connections=2, packets=5, nbytes=36 * 5, first=stamp(0),
             last=stamp(4)),
        flow("ICMP", C4, ROUTER4, None, kind="echo", packets=1, nbytes=36, first=stamp(7), last=stamp(7),
             direction="guess"),
        flow("ICMPv6", C6, S6, None, kind="echo", packets=2, nbytes=56 * 2, first=stamp(5), last=stamp(6)),
    ]
    assert warned == []


def test_tcp_syn_ack_only_names_its_receiver_the_client(tmp_path: Path) -> None:
    # The ports would say the other way round; the SYN+ACK is stronger evidence.
    packets = [
        IP(src=S4, dst=C4) / TCP(sport=45000, dport=443, flags="SA"),
        IP(src=C4, dst=S4) / TCP(sport=443, dport=45000, flags="A"),
        IP(src=C4, dst=S4) / TCP(sport=443, dport=45000, flags="PA") / b"hello",
    ]
    found, _ = flows_of(write(tmp_path, "synack.pcap", pcap(timed(packets, eth))))
    assert found == [flow("TCP", C4, S4, 45000, packets=3, nbytes=125, first=stamp(0), last=stamp(2))]


def test_tcp_without_handshake_guesses_from_ports(tmp_path: Path) -> None:
    listener, c2, c3 = "10.244.2.30", "10.244.1.11", "10.244.1.12"
    packets = [
        # Well-known port 5432 against an ephemeral one; the server happens to speak first.
        IP(src=S4, dst=C4) / TCP(sport=5432, dport=40005, flags="PA") / b"abc",
        IP(src=C4, dst=S4) / TCP(sport=40005, dport=5432, flags="A"),
        # Neither port is known: the lower one is the server's.
        IP(src=S4, dst=C4) / TCP(sport=2345, dport=3456, flags="A"),
        IP(src=C4, dst=S4) / TCP(sport=3456, dport=2345, flags="PA") / b"abc",
        # Port 7777 of `listener` accepts a handshake from c2...
        IP(src=c2, dst=listener) / TCP(sport=40006, dport=7777, flags="S"),
        IP(src=listener, dst=c2) / TCP(sport=7777, dport=40006, flags="SA"),
        # ...so it is the server in a connection caught midway, though the client's port is lower.
        IP(src=listener, dst=c3) / TCP(sport=7777, dport=1500, flags="PA") / b"abc",
        IP(src=c3, dst=listener) / TCP(sport=1500, dport=7777, flags="A"),
    ]
    found, _ = flows_of(write(tmp_path, "midstream.pcap", pcap(timed(packets, eth))))
    assert found == [
        flow("TCP", C4, S4, 2345, packets=2, nbytes=83, first=stamp(2), last=stamp(3), direction="guess"),
        flow("TCP", C4, S4, 5432, packets=2, nbytes=83, first=stamp(0), last=stamp(1), direction="guess"),
        flow("TCP", c2, listener, 7777, packets=2, nbytes=80, first=stamp(4), last=stamp(5)),
        flow("TCP", c3, listener, 7777, packets=2, nbytes=83, first=stamp(6), last=stamp(7),
             direction="guess"),
    ]


def test_udp_request_response_first_sender_is_the_client(tmp_path: Path) -> None:
    packets = [
        # Neither port is known: whoever asked first is the client, even from the lower port.
        IP(src=C4, dst=S4) / UDP(sport=2000, dport=4000) / b"ask",
        IP(src=S4, dst=C4) / UDP(sport=4000, dport=2000) / b"answer",
        # An ephemeral port asks a registered one.
        IP(src=C4, dst=S4) / UDP(sport=40001, dport=9999) / b"ask",
        IP(src=S4, dst=C4) / UDP(sport=9999, dport=40001) / b"answer",
        IP(src=C4, dst=S4) / UDP(sport=40001, dport=9999) / b"ask",
    ]
    found, _ = flows_of(write(tmp_path, "udp.pcap", pcap(timed(packets, eth))))
    assert found == [
        flow("UDP", C4, S4, 4000, packets=2, nbytes=31 + 34, first=stamp(0), last=stamp(1)),
        flow("UDP", C4, S4, 9999, packets=3, nbytes=31 * 2 + 34, first=stamp(2), last=stamp(4)),
    ]


def test_dhcp_client_port_68_is_never_the_server(tmp_path: Path) -> None:
    server, renewing, late = "10.244.0.2", "10.244.1.10", "10.244.1.11"

    def dhcp(src: str, dst: str, sport: int, dport: int, message: str) -> Packet:
        return IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / BOOTP(ciaddr=renewing) / DHCP(
            options=[("message-type", message), "end"])

    packets = [
        dhcp(renewing, server, 68, 67, "request"),
        dhcp(server, renewing, 67, 68, "ack"),
        # Capture started after the request: the server's reply comes first.
        dhcp(server, late, 67, 68, "ack"),
        dhcp(late, server, 68, 67, "request"),
        # A server message alone.
        dhcp(server, "10.244.1.12", 67, 68, "offer"),
    ]
    found, _ = flows_of(write(tmp_path, "dhcp.pcap", pcap(timed(packets, eth))))
    assert found == [
        flow("UDP", renewing, server, 67, packets=2, nbytes=272 * 2, first=stamp(0), last=stamp(1)),
        flow("UDP", late, server, 67, packets=2, nbytes=272 * 2, first=stamp(2), last=stamp(3),
             direction="guess"),
        flow("UDP", "10.244.1.12", server, 67, packets=1, nbytes=272, first=stamp(4), last=stamp(4),
             direction="guess"),
    ]


# --- DNS --------------------------------------------------------------------------------------------


def response(qname: str, rdtype: str, answers: Sequence[tuple[str, str, Sequence[str]]] = (), *,
             rcode: int = dns.rcode.NOERROR, ident: int = 1, additional: Sequence[tuple[str, str, str]] = ()
             ) -> tuple[bytes, bytes]:
    """(query, response) in wire format."""
    query = dns.message.make_query(qname, rdtype)
    query.id = ident
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    for name, kind, values in answers:
        reply.answer.append(dns.rrset.from_text(name, 30, "IN", kind, *values))
    for name, kind, value in additional:
        reply.additional.append(dns.rrset.from_text(name, 30, "IN", kind, value))
    return query.to_wire(), reply.to_wire()


API_CHAIN = [
    ("api.example.com.", "CNAME", ["api.edge.example.net."]),
    ("api.edge.example.net.", "CNAME", ["lb-7.cdn.example.org."]),
]
API_NAMES = ["api.edge.example.net", "api.example.com", "lb-7.cdn.example.org"]


def udp_dns(exchanges: Sequence[tuple[bytes, bytes]], *, server: str = DNS4, port: int = 53,
            first_port: int = 40100, options: bool = False) -> list[Packet]:
    packets = []
    ip_options = [IPOption_Router_Alert()] if options else []
    for i, (query, answer) in enumerate(exchanges):
        out, back = IP(src=C4, dst=server, options=ip_options), IP(src=server, dst=C4, options=ip_options)
        packets.append(out / UDP(sport=first_port + i, dport=port) / Raw(query))
        packets.append(back / UDP(sport=port, dport=first_port + i) / Raw(answer))
    return packets


def test_dns_over_udp_cname_chains_and_search_expansion(tmp_path: Path) -> None:
    exchanges = [
        response("api.example.com.default.svc.cluster.local.", "A", rcode=dns.rcode.NXDOMAIN, ident=1),
        response("api.example.com.svc.cluster.local.", "A", rcode=dns.rcode.NXDOMAIN, ident=2),
        response("api.example.com.cluster.local.", "AAAA", rcode=dns.rcode.NXDOMAIN, ident=3),
        response("api.example.com.", "A", [*API_CHAIN, ("lb-7.cdn.example.org.", "A", ["203.0.113.10"])],
                 ident=4),
        response("api.example.com.", "AAAA",
                 [*API_CHAIN, ("lb-7.cdn.example.org.", "AAAA", ["2001:db8::10"])], ident=5),
        response("registry.example.org.", "A",
                 [("registry.example.org.", "A", ["198.51.100.8", "198.51.100.7"])], ident=6),
        # Glue and records off the question's chain name nothing.
        response("db.example.com.", "A", [("db.example.com.", "A", ["198.51.100.20"]),
                                          ("stray.example.com.", "A", ["192.0.2.99"])],
                 additional=[("ns1.example.net.", "A", "192.0.2.53")], ident=7),
        # A failed lookup whose answer section still carries records.
        response("gone.example.com.", "A", [("gone.example.com.", "A", ["192.0.2.98"])],
                 rcode=dns.rcode.SERVFAIL, ident=8),
    ]
    path = write(tmp_path, "dns.pcap", pcap(timed(udp_dns(exchanges), eth)))
    names, warned = names_of(path)
    assert names == {
        "198.51.100.7": ["registry.example.org"],
        "198.51.100.8": ["registry.example.org"],
        "198.51.100.20": ["db.example.com"],
        "203.0.113.10": API_NAMES,
        "2001:db8::10": API_NAMES,
    }
    assert warned == []
    result = run("dns", path, "-o", "json")
    assert "cluster.local" not in result.stdout
    assert summary(result) == (
        "5 addresses named by 4 DNS responses (16 DNS messages on port 53) in 1 capture(s)"
    )


def test_dns_with_ipv4_options_over_ipv6_and_on_other_links(tmp_path: Path) -> None:
    q1, a1 = response("api.example.com.", "A", [*API_CHAIN, ("lb-7.cdn.example.org.", "A", ["203.0.113.10"])])
    q2, a2 = response("db.example.com.", "AAAA", [("db.example.com.", "AAAA", ["2001:db8::20"])], ident=2)
    v4 = udp_dns([(q1, a1)], options=True)
    v6 = [
        IPv6(src=C6, dst="2001:db8::53") / UDP(sport=40200, dport=53) / Raw(q2),
        IPv6(src="2001:db8::53", dst=C6) / IPv6ExtHdrDestOpt() / UDP(sport=53, dport=40200) / Raw(a2),
    ]
    path = write(tmp_path, "dns-sll2.pcap", pcap(timed([*v4, *v6], sll2), LINUX_SLL2))
    names, warned = names_of(path)
    assert names == {"203.0.113.10": API_NAMES, "2001:db8::20": ["db.example.com"]}
    assert warned == []


def tcp_frame(msg: bytes) -> bytes:
    return struct.pack(">H", len(msg)) + msg


def test_dns_over_tcp_reassembly(tmp_path: Path) -> None:
    q1, a1 = response("db.example.com.", "A", [("db.example.com.", "CNAME", ["db.internal.example.net."]),
                                               ("db.internal.example.net.", "A", ["198.51.100.20"])], ident=1)
    q2, a2 = response("cache.example.com.", "A", [("cache.example.com.", "A", ["198.51.100.30"])], ident=2)
    q3, a3 = response("queue.example.com.", "AAAA", [("queue.example.com.", "AAAA", ["2001:db8::31"])],
                      ident=3)
    first = tcp_frame(a1)
    both = tcp_frame(a2) + tcp_frame(a3)
    queries = tcp_frame(q1), tcp_frame(q2) + tcp_frame(q3)
    cport, c_seq, s_seq = 40300, 1000, 5000

    def to_server(seq: int, payload: bytes = b"", flags: str = "PA") -> Packet:
        return IP(src=C4, dst=DNS4) / TCP(sport=cport, dport=53, flags=flags, seq=seq, ack=s_seq + 1) / Raw(
            payload)

    def to_client(seq: int, payload: bytes = b"", flags: str = "PA") -> Packet:
        return IP(src=DNS4, dst=C4) / TCP(sport=53, dport=cport, flags=flags, seq=seq, ack=c_seq + 1) / Raw(
            payload)

    s = s_seq + 1
    packets = [
        to_server(c_seq, flags="S"),
        to_client(s_seq, flags="SA"),
        to_server(c_seq + 1, flags="A"),
        to_server(c_seq + 1, queries[0]),
        # The first answer in three segments, the length prefix itself split; the second one retransmitted.
        to_client(s, first[:1]),
        to_client(s + 1, first[1:20]),
        to_client(s + 1, first[1:20]),
        to_client(s + 20, first[20:]),
        to_server(c_seq + 1 + len(queries[0]), queries[1]),
        # Two answers in one segment.
        to_client(s + len(first), both),
        to_client(s + len(first) + len(both), flags="FA"),
        to_server(c_seq + 1 + len(queries[0]) + len(queries[1]), flags="FA"),
    ]
    path = write(tmp_path, "dns-tcp.pcap", pcap(timed(packets, eth)))
    names, warned = names_of(path)
    assert names == {
        "198.51.100.20": ["db.example.com", "db.internal.example.net"],
        "198.51.100.30": ["cache.example.com"],
        "2001:db8::31": ["queue.example.com"],
    }
    assert warned == []
    result = run("dns", path, "-o", "json")
    assert summary(result) == (
        "3 addresses named by 3 DNS responses (6 DNS messages on port 53) in 1 capture(s)"
    )


def test_dns_over_tcp_segment_lost_is_reported(tmp_path: Path) -> None:
    _, a1 = response("db.example.com.", "A", [("db.example.com.", "A", ["198.51.100.20"])], ident=1)
    _, a2 = response("cache.example.com.", "A", [("cache.example.com.", "A", ["198.51.100.30"])], ident=2)
    framed = tcp_frame(a1)

    def to_client(seq: int, payload: bytes, sport: int) -> Packet:
        return IP(src=DNS4, dst=C4) / TCP(sport=53, dport=sport, flags="PA", seq=seq) / payload

    packets = [
        to_client(5001, framed[:10], 40400),
        to_client(5001 + 20, framed[20:], 40400),  # bytes 10-20 were never captured
        to_client(7001, tcp_frame(a2), 40401),  # another stream joined midway, at a message boundary
    ]
    path = write(tmp_path, "dns-tcp-gap.pcap", pcap(timed(packets, eth)))
    names, warned = names_of(path)
    assert names == {"198.51.100.30": ["cache.example.com"]}
    assert warned == [
        "warning: 1 DNS message(s) were cut short (snapshot length, IP fragments or missing TCP segments): only their "
        "answers that arrived whole were read",
    ]


def test_dns_response_in_ip_fragments_is_cut_short_and_its_first_fragment_read(tmp_path: Path) -> None:
    many = [f"198.51.100.{i}" for i in range(1, 120)]
    query, answer = response("big.example.com.", "A", [("big.example.com.", "A", many)])
    assert len(answer) > 1480
    packets = [
        IP(src=C4, dst=DNS4) / UDP(sport=40100, dport=53) / Raw(query),
        *fragment(IP(src=DNS4, dst=C4, id=0x77) / UDP(sport=53, dport=40100) / Raw(answer), fragsize=1480),
    ]
    names, warned = names_of(write(tmp_path, "dns-fragments.pcap", pcap(timed(packets, eth))))
    # the answers wholly inside the first fragment name their addresses (tcpdump prints them too)
    assert names and set(names) < set(many) and all(v == ["big.example.com"] for v in names.values())
    assert warned == [
        "warning: 1 DNS message(s) were cut short (snapshot length, IP fragments or missing TCP segments): only their "
        "answers that arrived whole were read",
    ]


def test_dns_answer_of_another_class_is_ignored(tmp_path: Path) -> None:
    query, answer = response("api.example.com.", "A", [("api.example.com.", "A", ["203.0.113.10"])])
    record = bytes.fromhex("00010001" "0000001e" "0004") + bytes((203, 0, 113, 10))  # A, IN, TTL 30
    hesiod = answer.replace(record, bytes.fromhex("00010004" "0000001e" "0004") + bytes((203, 0, 113, 10)))
    assert hesiod != answer
    exchanges = [(query, hesiod), response("registry.example.org.", "A",
                                           [("registry.example.org.", "A", ["198.51.100.7"])], ident=2)]
    result = run("dns", write(tmp_path, "hesiod.pcap", pcap(timed(udp_dns(exchanges), eth))), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"198.51.100.7": ["registry.example.org"]}


@pytest.mark.parametrize("port", [5353, 8053])
def test_dns_on_other_ports_is_ignored(tmp_path: Path, port: int) -> None:
    exchange = response("api.example.com.", "A", [("api.example.com.", "A", ["203.0.113.10"])])
    path = write(tmp_path, "mdns.pcap", pcap(timed(udp_dns([exchange], port=port), eth)))
    result = run("dns", path, "-o", "json")
    assert result.exit_code == 0
    assert result.stdout == "{}\n"
    assert summary(result) == (
        "0 addresses named by 0 DNS responses (0 DNS messages on port 53) in 1 capture(s)"
    )
    found, _ = flows_of(path)
    assert [(f["protocol"], f["src"], f["dst"], f["dst_port"]) for f in found] == [("UDP", C4, DNS4, port)]


def test_dns_response_cut_by_snaplen_keeps_its_whole_answers_with_a_warning(tmp_path: Path) -> None:
    many = [f"198.51.100.{i}" for i in range(100, 120)]
    exchanges = [
        response("big.example.com.", "A", [("big.example.com.", "A", many)], ident=1),
        response("registry.example.org.", "A", [("registry.example.org.", "A", ["198.51.100.7"])], ident=2),
    ]
    packets = udp_dns(exchanges)
    assert [len(eth(p)) > 120 for p in packets] == [False, True, False, False]  # only the big answer is cut
    path = write(tmp_path, "snap.pcap", pcap(timed(packets, eth), snaplen=120))
    names, warned = names_of(path)
    # 78 bytes of the big answer were kept: its header, question and two whole A records
    big = {ip for ip, v in names.items() if v == ["big.example.com"]}
    assert len(big) == 2 and big < set(many)
    assert names["198.51.100.7"] == ["registry.example.org"] and len(names) == 3
    assert warned == [
        "warning: 1 DNS message(s) were cut short (snapshot length, IP fragments or missing TCP segments): only their "
        "answers that arrived whole were read",
    ]
    found, flow_warnings = flows_of(path)
    assert found == [
        flow("UDP", C4, DNS4, 53, connections=2, packets=4,
             nbytes=sum(len(p) for p in packets), first=stamp(0), last=stamp(3)),
    ]
    assert flow_warnings == []


# --- damage and bad input ---------------------------------------------------------------------------


def three_packets() -> bytes:
    """A pcap of a TCP handshake: three 54-byte frames."""
    return pcap(timed(tcp_exchange()[:3], eth))


def test_empty_pcap(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.pcap", pcap([]))
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert result.stdout == "[]\n"
    assert result.stderr == "0 flows (0 with a guessed direction) from 0 packets in 1 capture(s)\n"


def test_truncated_pcap_keeps_the_whole_packets(tmp_path: Path) -> None:
    data = three_packets()
    path = write(tmp_path, "cut.pcap", data[:-10])
    damage = f"truncated at byte {24 + 2 * (16 + 54)}: packet 3 is cut off (60 of 70 bytes)"
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        flow("TCP", C4, S4, 8080, packets=2, nbytes=80, first=stamp(0), last=stamp(1)),
    ]
    assert warnings(result) == [f"warning: {path}: {damage}; using the 2 packets read before it"]

    strict = run("flows", path, "-o", "json", "--strict")
    assert strict.exit_code == 4
    assert strict.stdout == ""
    assert strict.stderr == f"error: {path}: {damage} (without --strict, the packets before it are used)\n"


def test_truncated_record_header(tmp_path: Path) -> None:
    data = three_packets()
    path = write(tmp_path, "cut-header.pcap", data[: 24 + 2 * (16 + 54) + 10])
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert warnings(result) == [
        f"warning: {path}: truncated at byte 164: packet 3 is cut off (10 of the 16 bytes of its record "
        "header); using the 2 packets read before it",
    ]


@pytest.mark.parametrize("size", [4, 10, 23])
def test_truncated_file_header(tmp_path: Path, size: int) -> None:
    path = write(tmp_path, "cut-file-header.pcap", pcap([])[:size])
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert result.stdout == "[]\n"
    assert warnings(result) == [
        f"warning: {path}: the file header is cut off after {size} of 24 bytes; "
        "using the 0 packets read before it",
    ]


def test_truncated_pcapng(tmp_path: Path) -> None:
    frames = timed(tcp_exchange()[:3], eth)
    data = pcapng(frames)
    path = write(tmp_path, "cut.pcapng", data[:-10])
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        flow("TCP", C4, S4, 8080, packets=2, nbytes=80, first=stamp(0), last=stamp(1)),
    ]
    last_block = 32 + 54 + 2
    assert warnings(result) == [
        f"warning: {path}: truncated at byte {len(data) - last_block}: the last block is cut off "
        f"({last_block - 10} bytes left); using the 2 packets read before it",
    ]
    assert run("flows", path, "--strict").exit_code == 4


def gzip_flushed(first: bytes, rest: bytes) -> tuple[bytes, int]:
    """A gzip of ``first + rest`` flushed after ``first``, and the compressed size up to the flush."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as f:
        f.write(first)
        f.flush()
        flushed = out.tell()
        f.write(rest)
    return out.getvalue(), flushed


@pytest.mark.parametrize("damage", ["truncated", "bad-crc"])
def test_damaged_gzip_keeps_the_whole_packets(tmp_path: Path, damage: str) -> None:
    data = three_packets()
    first_two = 24 + 2 * (16 + 54)
    compressed, flushed = gzip_flushed(data[:first_two], data[first_two:])
    if damage == "truncated":  # the trailer and half of the third packet's deflate data are missing
        compressed = compressed[: flushed + (len(compressed) - 8 - flushed) // 2]
        # Every byte that inflated is used: the third packet is there in part, and the report says so.
        packets, message = 2, ("the gzip stream ends early (truncated .gz file): truncated at byte 164: "
                               "packet 3 is cut off (60 of 70 bytes)")
    else:
        crc = struct.unpack_from("<I", compressed, len(compressed) - 8)[0]
        compressed = compressed[:-8] + struct.pack("<I", crc ^ 1) + compressed[-4:]
        packets, message = 3, "corrupt gzip data (CRC or length check failed)"
    path = write(tmp_path, "cut.pcap.gz", compressed)
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert warnings(result) == [f"warning: {path}: {message}; using the {packets} packets read before it"]
    assert json.loads(result.stdout) == [
        flow("TCP", C4, S4, 8080, packets=packets, nbytes=40 * packets, first=stamp(0),
             last=stamp(packets - 1)),
    ]


def test_damaged_gzip_with_strict(tmp_path: Path) -> None:
    data = three_packets()
    path = write(tmp_path, "cut.pcap.gz", gzip.compress(data, mtime=0)[:-10])
    result = run("flows", path, "-o", "json", "--strict")
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr == (f"error: {path}: the gzip stream ends early (truncated .gz file): truncated at "
                             "byte 164: packet 3 is cut off (69 of 70 bytes) (without --strict, the packets "
                             "before it are used)\n")


def test_corrupt_record_length(tmp_path: Path) -> None:
    data = three_packets()
    second = 24 + 16 + 54
    data = data[: second + 8] + struct.pack("<I", 0x7FFFFFFF) + data[second + 12 :]
    path = write(tmp_path, "corrupt.pcap", data)
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        flow("TCP", C4, S4, 8080, packets=1, nbytes=40, first=stamp(0), last=stamp(0)),
    ]
    assert warnings(result) == [
        f"warning: {path}: corrupt record header at byte {second} (packet 2): captured length 2147483647 "
        "exceeds the limit 262144; using the 1 packets read before it",
    ]
    strict = run("flows", path, "--strict")
    assert strict.exit_code == 4
    assert strict.stderr.count("error:") == 1


def test_corrupt_record_length_with_a_huge_header_snaplen(tmp_path: Path) -> None:
    data = pcap(timed(tcp_exchange(), eth), snaplen=0xFFFFFFFF)
    second = 24 + 16 + 54
    data = data[: second + 8] + struct.pack("<I", 0x7FFFFFFF) + data[second + 12 :]
    path = write(tmp_path, "corrupt-huge-snaplen.pcap", data)
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert warnings(result) == [
        f"warning: {path}: corrupt record header at byte {second} (packet 2): captured length 2147483647 "
        "exceeds the limit 262144; using the 1 packets read before it",
    ]


def test_corrupt_pcapng_block(tmp_path: Path) -> None:
    frames = timed(tcp_exchange()[:3], eth)
    good = shb() + idb(ETHERNET) + epb(0, frames[0][0] // 1000, frames[0][1])
    bad = epb(5, frames[1][0] // 1000, frames[1][1])  # interface 5 was never described
    path = write(tmp_path, "corrupt.pcapng", good + bad + epb(0, frames[2][0] // 1000, frames[2][1]))
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        flow("TCP", C4, S4, 8080, packets=1, nbytes=40, first=stamp(0), last=stamp(0)),
    ]
    assert warnings(result) == [
        f"warning: {path}: corrupt block at byte {len(good)} (type 0x00000006, length {len(bad)}); "
        "using the 1 packets read before it",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "{path} is empty, not a capture: expected a pcap or pcapng file"),
        (b"hello, this is text\n", "{path} is not a pcap or pcapng capture (it starts with 0x68656c6c); "
                                   "write captures with tcpdump -w or kubectl netgen capture"),
        (b"PK\x03\x04zip", "{path} is not a pcap or pcapng capture (it starts with 0x504b0304); "
                           "write captures with tcpdump -w or kubectl netgen capture"),
    ],
    ids=["zero-bytes", "text", "zip"],
)
def test_not_a_capture(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, "notes.txt", content)
    for command in ("flows", "dns"):
        result = run(command, path, "-o", "json")
        assert result.exit_code == 3
        assert result.stdout == ""
        assert result.stderr == f"error: {message.format(path=path)}\n"


def test_not_a_capture_inside_gzip(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.gz", gzip.compress(b"hello, this is text\n", mtime=0))
    result = run("flows", path)
    assert result.exit_code == 3
    assert result.stderr == (f"error: {path} is not a pcap or pcapng capture (it starts with 0x68656c6c inside "
                             "its gzip compression); write captures with tcpdump -w or kubectl netgen capture\n")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pcap")
    result = run("flows", missing, "-o", "json")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == f"error: {missing}: no such file; give the path of a pcap or pcapng capture\n"
    result = run("flows", str(tmp_path), "-o", "json")
    assert result.exit_code == 3
    assert result.stderr == f"error: {tmp_path} is a directory; give the capture files inside it\n"


def test_a_bad_file_among_good_ones_fails_the_run(tmp_path: Path) -> None:
    good = write(tmp_path, "good.pcap", pcap(timed(tcp_exchange(), eth)))
    bad = write(tmp_path, "bad.pcap", b"garbage!")
    result = run("flows", good, bad, "-o", "json")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.count("error:") == 1


# --- timestamps -------------------------------------------------------------------------------------


def test_invalid_nanosecond_fraction_is_warned_and_ignored_for_times(tmp_path: Path) -> None:
    frames = [eth(IP(src=C4, dst=S4) / UDP(sport=40000, dport=9999) / b"x") for _ in range(3)]
    records = [
        (T0, 100, frames[0], len(frames[0])),
        (T0 + 5, 1_000_000_000, frames[1], len(frames[1])),  # out of range
        (T0, 200, frames[2], len(frames[2])),
    ]
    path = write(tmp_path, "bad-ns.pcap", pcap_records(records, nano=True))
    found, warned = flows_of(path)
    assert found == [
        flow("UDP", C4, S4, 9999, packets=3, nbytes=29 * 3, first="2023-11-14T22:13:20.000000100Z",
             last="2023-11-14T22:13:20.000000200Z", direction="guess"),
    ]
    assert warned == [
        f"warning: {path}: 1 packet(s) have an invalid timestamp (fraction out of range); their flows are "
        "counted but these packets do not set first/last seen",
    ]


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_first_packet_with_invalid_time_does_not_hide_the_first_seen(tmp_path: Path, transport: str) -> None:
    if transport == "tcp":
        packets = [IP(src=C4, dst=S4) / TCP(sport=40000, dport=8080, flags="A") for _ in range(3)]
    else:
        packets = [IP(src=C4, dst=S4) / UDP(sport=40000, dport=8080) / b"x" for _ in range(3)]
    frames = [eth(p) for p in packets]
    records = [
        (T0, 1_000_000, frames[0], len(frames[0])),  # out of range for microseconds
        (T0, 1, frames[1], len(frames[1])),
        (T0, 2, frames[2], len(frames[2])),
    ]
    found, _ = flows_of(write(tmp_path, "bad-first.pcap", pcap_records(records)))
    assert found == [
        flow(transport.upper(), C4, S4, 8080, packets=3, nbytes=len(packets[0]) * 3, first=stamp(1),
             last=stamp(2), direction="guess"),
    ]


def test_pcapng_timestamp_out_of_range_is_not_a_crash(tmp_path: Path) -> None:
    syn = eth(tcp_exchange()[0])
    path = write(tmp_path, "far.pcapng", shb() + idb(ETHERNET) + epb(0, 0xFFFF_FFFF_FFFF_0000, syn))
    result = run("flows", path, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [
        flow("TCP", C4, S4, 8080, packets=1, nbytes=40, first=None, last=None),
    ]


# --- several captures, determinism --------------------------------------------------------------------


def test_several_files_aggregate_into_one_flow_list(tmp_path: Path) -> None:
    first = write(tmp_path, "a.pcap", pcap(timed(tcp_exchange(cport=40000), eth)))
    in_sll2 = timed([*tcp_exchange(cport=40001), *udp6_exchange()], sll2, 100)
    second = write(tmp_path, "b.pcapng", pcapng(in_sll2, LINUX_SLL2))
    third = gzip.compress(pcap(timed(tcp_exchange(cport=40002), eth, 200), nano=True), mtime=0)
    result = run("flows", first, second, "-", "-o", "json", stdin=third)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        flow("TCP", C4, S4, 8080, connections=3, packets=12, nbytes=510, first=stamp(0), last=stamp(203)),
        flow("UDP", C6, S6, 9999, packets=2, nbytes=104, first=stamp(104), last=stamp(105)),
    ]
    assert summary(result) == "2 flows (0 with a guessed direction) from 14 packets in 3 capture(s)"


def test_same_connection_in_two_files_is_one_connection(tmp_path: Path) -> None:
    packets = timed(tcp_exchange(), eth)
    first = write(tmp_path, "a.pcap", pcap(packets[:2]))
    second = write(tmp_path, "b.pcap", pcap(packets[2:]))
    found, _ = flows_of(first, second)
    assert found == [TCP_FLOW]


def test_output_is_deterministic(tmp_path: Path) -> None:
    servers = ["10.96.0.1", "10.244.9.9", "192.0.2.7", "2001:db8::7", "198.51.100.3"]
    packets: list[Packet] = []
    for i, server in enumerate(reversed(servers)):
        ip = IPv6 if ":" in server else IP
        client = C6 if ":" in server else C4
        for port in (443, 80, 9999):
            packets.append(ip(src=client, dst=server) / TCP(sport=40000 + i, dport=port, flags="S"))
            packets.append(ip(src=client, dst=server) / UDP(sport=40000 + i, dport=port) / b"x")
    first = write(tmp_path, "a.pcap", pcap(timed(packets[::2], eth)))
    second = write(tmp_path, "b.pcapng", pcapng(timed(packets[1::2], bare, 100), RAW))
    outputs = {run("flows", *paths, "-o", "json").stdout for paths in ([first, second], [first, second],
                                                                          [second, first])}
    assert len(outputs) == 1
    found = json.loads(outputs.pop())
    order = [(f["protocol"], f["dst"], f["dst_port"]) for f in found]
    assert order == [(proto, server, port) for proto in ("TCP", "UDP") for server in
                     ["10.96.0.1", "10.244.9.9", "192.0.2.7", "198.51.100.3", "2001:db8::7"]
                     for port in (80, 443, 9999)]
    exchanges = [
        response("b.example.com.", "AAAA", [("b.example.com.", "AAAA", ["2001:db8::b"])], ident=1),
        response("z.example.com.", "A", [("z.example.com.", "A", ["198.51.100.9"])], ident=2),
        response("a.example.com.", "A", [("a.example.com.", "A", ["198.51.100.9", "192.0.2.9"])], ident=3),
    ]
    dns_capture = write(tmp_path, "dns.pcap", pcap(timed(udp_dns(exchanges), eth)))
    names = {run("dns", dns_capture, "-o", "json").stdout for _ in range(2)}
    assert names == {
        '{\n  "192.0.2.9": [\n    "a.example.com"\n  ],\n'
        '  "198.51.100.9": [\n    "a.example.com",\n    "z.example.com"\n  ],\n'
        '  "2001:db8::b": [\n    "b.example.com"\n  ]\n}\n'
    }
