"""Packets -> counter rows: link layers, IP, transport headers, fragments and DNS payloads.

Only the header fields that flows need are decoded, straight from the bytes: scapy's per-packet
dissection is about a hundred times too slow for captures of millions of packets, so it is used
only to write test captures. Each packet is folded at once into one counter row per direction of
its 5-tuple (:class:`~kubectl_netgen.flows.TrafficTable`), so memory grows with the number of
distinct 5-tuples, never with the capture's length. DNS messages on port 53 (UDP, and TCP
reassembled per stream) are handed to a sink as they complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kubectl_netgen.flows import (
    ACCEPTS,
    FIRST,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    LAST,
    OPENS,
    Packed,
    TrafficTable,
)

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_DLT12 = 12
LINKTYPE_RAW_DLT14 = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_NFLOG = 239
LINKTYPE_LINUX_SLL2 = 276
NFULA_PAYLOAD = 9
"""The NFLOG TLV holding the logged packet (its IP header first)."""
LINKTYPE_NAMES = {
    LINKTYPE_NULL: "NULL",
    LINKTYPE_ETHERNET: "EN10MB",
    LINKTYPE_RAW_DLT12: "RAW",
    LINKTYPE_RAW_DLT14: "RAW",
    LINKTYPE_RAW: "RAW",
    LINKTYPE_LOOP: "LOOP",
    LINKTYPE_LINUX_SLL: "LINUX_SLL",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
    LINKTYPE_NFLOG: "NFLOG",
    105: "IEEE802_11",
    127: "IEEE802_11_RADIOTAP",
    **{147 + n: f"USER{n}" for n in range(16)},
}
RAW_LINKTYPES = frozenset({LINKTYPE_RAW_DLT12, LINKTYPE_RAW_DLT14, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6})
SUPPORTED_LINKTYPES = RAW_LINKTYPES | {
    LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_NFLOG,
}

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
FAST_LINKTYPES = {LINKTYPE_ETHERNET: (12, 14), LINKTYPE_LINUX_SLL: (14, 16), LINKTYPE_LINUX_SLL2: (0, 20)}
"""Link types with a fixed header: (offset of the EtherType, offset of the IP header)."""
VLAN_TAGS = frozenset({0x8100, 0x88A8, 0x9100})
NULL_AF_INET = 2
NULL_AF_INET6 = frozenset({10, 24, 28, 30})  # Linux, and the BSDs/macOS (values differ by OS)

# IPv6 extension headers whose length is (byte 1 + 1) * 8; AH (51) counts in 4-byte units.
IPV6_EXT_HEADERS = frozenset({0, 43, 60, 135, 139, 140, 253, 254})
IPV6_FRAGMENT, IPV6_AH, IPV6_NO_NEXT = 44, 51, 59

DNS_PORT = 53
FRAGMENT_MEMORY = 4096
"""Fragmented datagrams remembered at once (first fragment <-> identification)."""
DNS_STREAMS = 1024
"""TCP DNS streams reassembled at once; the oldest is dropped beyond this."""
DNS_STREAM_BYTES = 2 + 65535
"""A TCP DNS stream never needs more than one whole message buffered."""

DnsSink = Callable[[bytes], None]
"""Receives each whole DNS message seen on port 53 (UDP payload, or one TCP-framed message)."""
Handler = Callable[[bytes, int, int], None]




@dataclass
class CaptureReport:
    """What reading one capture found, besides its traffic: counts, skips and damage."""

    name: str
    """The file name as given (``-`` for stdin)."""
    format: str = ""
    """``pcap``, ``pcap (nanosecond)``, ``pcapng``; with ``, gzip`` when compressed."""
    packets: int = 0
    """Packet records read."""
    non_ip: int = 0
    """Packets that carried something other than IPv4/IPv6 (ARP, LLDP, …)."""
    short: int = 0
    """Packets cut by the snapshot length before the headers a flow needs."""
    other_protocols: int = 0
    """IP packets of protocols other than TCP, UDP, SCTP and ICMP (GRE, ESP, IGMP, …)."""
    fragments_unmatched: int = 0
    """Non-first IP fragments whose first fragment was never seen."""
    invalid_timestamps: int = 0
    """Packets whose timestamp fraction is out of range; they do not move first/last seen."""
    short_lengths: int = 0
    """Records whose original (wire) length is below their captured length: the captured length is used."""
    unsupported: dict[int, int] = field(default_factory=dict)
    """Packets skipped per unsupported link type."""
    dns_messages: int = 0
    """DNS messages handed to the DNS sink."""
    dns_incomplete: int = 0
    """DNS messages lost to the snapshot length or to gaps in a TCP stream."""
    damage: str | None = None
    """Where and why reading stopped early (truncated or corrupt file); ``None`` when whole."""


class Interface:
    """Per-interface decoding state: link type and the hot counter tables, one per IP protocol.

    Tables are keyed by :data:`~kubectl_netgen.flows.Packed` keys sliced straight from
    the packets; times are nanoseconds since the epoch, -1 where a packet had none.
    """

    def __init__(self, linktype: int) -> None:
        """Start with empty tables for ``linktype``."""
        self.linktype = linktype
        self.rows: dict[int, dict[Packed, list[int]]] = {
            proto: {} for proto in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_ICMP, IPPROTO_ICMPV6)
        }

    def fold(self, table: TrafficTable) -> None:
        """Hand this interface's rows over to ``table``."""
        for proto, rows in self.rows.items():
            if rows:
                table.adopt(proto, rows)
        self.rows = {}


def _bump(rows: dict[Packed, list[int]], key: Packed, nbytes: int, ts: int) -> list[int]:
    row = rows.get(key)
    if row is None:
        row = rows[key] = [1, nbytes, ts, ts, 0, 0]
    else:
        row[0] += 1
        row[1] += nbytes
        if ts > row[LAST]:
            row[LAST] = ts
        if row[FIRST] < 0 <= ts:
            row[FIRST] = ts
    return row


class PacketDecoder:
    """Decodes packets into :attr:`table`; the capture readers (:mod:`.files`) feed it.

    Args:
        dns_sink: Called with every DNS message on port 53; ``None`` skips DNS work.
    """

    def __init__(self, dns_sink: DnsSink | None = None) -> None:
        """Start with an empty table."""
        self.table = TrafficTable()
        self.dns_sink = dns_sink
        self._interfaces: list[Interface] = []
        self._report = CaptureReport("")
        # (addresses, identification, protocol) of fragmented datagrams -> where later fragments count.
        self._fragments: dict[tuple[bytes, int, int], tuple[dict[Packed, list[int]], Packed]] = {}
        self._dns_streams: dict[bytes, list[object]] = {}

    def interface(self, linktype: int) -> Handler:
        """Make the per-packet handler of one interface (its link type fixed)."""
        iface = Interface(linktype)
        self._interfaces.append(iface)
        report = self._report
        if linktype not in SUPPORTED_LINKTYPES:
            def skip(pkt: bytes, ts: int, orig: int) -> None:
                report.unsupported[linktype] = report.unsupported.get(linktype, 0) + 1
            return skip

        tcp, udp = iface.rows[IPPROTO_TCP], iface.rows[IPPROTO_UDP]
        general = self._general
        dns_on = self.dns_sink is not None
        udp_dns, tcp_dns = self._udp_dns, self._tcp_dns
        vlan_tags = VLAN_TAGS
        ethernet = linktype == LINKTYPE_ETHERNET
        sll2 = linktype == LINKTYPE_LINUX_SLL2
        sll = linktype == LINKTYPE_LINUX_SLL
        raw = linktype in RAW_LINKTYPES
        nflog = linktype == LINKTYPE_NFLOG

        def handle(pkt: bytes, ts: int, orig: int) -> None:
            # The hot path, inlined for speed: IPv4 without options (not a fragment) or IPv6
            # without extension headers, carrying TCP or UDP. Everything else goes through
            # ``general``. Indexing past the end of a packet cut by the snapshot length raises
            # IndexError, which counts it as short; UDP checks the length its key needs for the
            # same reason (TCP reads its flags, beyond the key, first).
            try:
                if ethernet:
                    et = pkt[12] << 8 | pkt[13]
                    ip = 14
                    while et in vlan_tags:
                        et = pkt[ip + 2] << 8 | pkt[ip + 3]
                        ip += 4
                elif sll2:
                    et = pkt[0] << 8 | pkt[1]
                    ip = 20
                elif sll:
                    et = pkt[14] << 8 | pkt[15]
                    ip = 16
                elif raw:
                    ip = 0
                    version = pkt[0] >> 4
                    et = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
                elif nflog:  # what `tcpdump -i nflog:N` writes on nodes: the packet is one of the TLVs
                    ip, size = _nflog_payload(pkt)
                    orig = min(orig, ip + size)  # the record's length counts the TLVs around the packet
                    version = pkt[ip] >> 4 if ip else 0
                    et = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
                else:  # NULL (the writer's host byte order) or LOOP (network byte order)
                    family = int.from_bytes(pkt[0:4], "big")
                    if family > 0xFFFF:
                        family = int.from_bytes(pkt[0:4], "little")
                    ip = 4
                    et = ETH_IPV4 if family == NULL_AF_INET else ETH_IPV6 if family in NULL_AF_INET6 else 0
                if et == ETH_IPV4:
                    if pkt[ip] != 0x45 or pkt[ip + 6] & 0x3F or pkt[ip + 7]:  # options or a fragment
                        general(iface, pkt, ip, 4, ts, orig)
                        return
                    proto = pkt[ip + 9]
                    key = pkt[ip + 12 : ip + 24]
                    l4 = ip + 20
                elif et == ETH_IPV6:
                    proto = pkt[ip + 6]
                    key = pkt[ip + 8 : ip + 44]
                    l4 = ip + 40
                else:
                    report.non_ip += 1
                    return
                if proto == IPPROTO_TCP:
                    flags = pkt[l4 + 13]
                    rows = tcp
                elif proto == IPPROTO_UDP:
                    flags = 0
                    rows = udp
                    if len(pkt) < l4 + 4:  # the ports (the end of the key) were cut off
                        raise IndexError
                else:
                    general(iface, pkt, ip, 4 if et == ETH_IPV4 else 6, ts, orig)
                    return
                row = rows.get(key)
                if row is None:
                    row = rows[key] = [1, orig - ip, ts, ts, 0, 0]
                else:
                    row[0] += 1
                    row[1] += orig - ip
                    if ts > row[3]:
                        row[3] = ts
                        if row[2] < 0:  # the first packet had no valid time
                            row[2] = ts
                if flags & 0x02:
                    row[ACCEPTS if flags & 0x10 else OPENS] += 1
                if dns_on and (key[-4:-2] == b"\x00\x35" or key[-2:] == b"\x00\x35"):
                    if proto == IPPROTO_TCP:
                        tcp_dns(pkt, ip, l4, key, flags)
                    else:
                        udp_dns(pkt, ip, l4)
            except IndexError:
                report.short += 1

        return handle

    def _general(self, iface: Interface, pkt: bytes, ip: int, version: int, ts: int, orig: int) -> None:
        """Decode what the hot path leaves: IPv4 options and fragments, IPv6 extension headers, SCTP, ICMP.

        Raises:
            IndexError: The packet is cut short before the headers needed.
        """
        nbytes = orig - ip
        first_of: tuple[bytes, int, int] | None = None
        if version == 4:
            if pkt[ip] >> 4 != 4:
                self._report.non_ip += 1
                return
            ihl = (pkt[ip] & 0x0F) * 4
            proto = pkt[ip + 9]
            addrs = pkt[ip + 12 : ip + 20]
            if len(addrs) < 8 or ihl < 20:
                raise IndexError
            frag = (pkt[ip + 6] & 0x1F) << 8 | pkt[ip + 7]
            ident = (addrs, pkt[ip + 4] << 8 | pkt[ip + 5], proto)
            if frag:
                self._later_fragment(ident, nbytes, ts)
                return
            if pkt[ip + 6] & 0x20:
                first_of = ident
            l4 = ip + ihl
        else:
            if pkt[ip] >> 4 != 6:
                self._report.non_ip += 1
                return
            addrs = pkt[ip + 8 : ip + 40]
            if len(addrs) < 32:
                raise IndexError
            proto = pkt[ip + 6]
            l4 = ip + 40
            while True:
                if proto in IPV6_EXT_HEADERS:
                    proto, l4 = pkt[l4], l4 + (pkt[l4 + 1] + 1) * 8
                elif proto == IPV6_AH:
                    proto, l4 = pkt[l4], l4 + (pkt[l4 + 1] + 2) * 4
                elif proto == IPV6_FRAGMENT:
                    ident = (addrs, int.from_bytes(pkt[l4 + 4 : l4 + 8], "big"), -1)
                    if (pkt[l4 + 2] << 8 | pkt[l4 + 3]) >> 3:
                        self._later_fragment(ident, nbytes, ts)
                        return
                    if pkt[l4 + 3] & 1:
                        first_of = ident
                    proto, l4 = pkt[l4], l4 + 8
                else:
                    break
        opens = accepts = 0
        if proto == IPPROTO_TCP or proto == IPPROTO_UDP or proto == IPPROTO_SCTP:
            ports = pkt[l4 : l4 + 4]
            if len(ports) < 4:
                raise IndexError
            key = addrs + ports
            if proto == IPPROTO_TCP:
                flags = pkt[l4 + 13]
                if flags & 0x02:
                    opens, accepts = (0, 1) if flags & 0x10 else (1, 0)
            elif proto == IPPROTO_SCTP:
                chunk = pkt[l4 + 12] if len(pkt) > l4 + 12 else 0
                opens, accepts = int(chunk == 1), int(chunk == 2)  # INIT, INIT ACK
        elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            kind = pkt[l4]
            echo = kind in (8, 0) if proto == IPPROTO_ICMP else kind in (128, 129)
            detail = pkt[l4 + 4 : l4 + 6] if echo else bytes((0, pkt[l4 + 1]))
            if len(detail) < 2:
                raise IndexError
            key = addrs + bytes((0, kind)) + detail
        else:
            self._report.other_protocols += 1
            return
        rows = iface.rows[proto]
        row = _bump(rows, key, nbytes, ts)
        row[OPENS] += opens
        row[ACCEPTS] += accepts
        if first_of is not None:
            self._first_fragment(first_of, rows, key)
        if self.dns_sink is not None and proto != IPPROTO_SCTP and DNS_PORT in (
            key[-4] << 8 | key[-3], key[-2] << 8 | key[-1]
        ):
            if proto == IPPROTO_UDP:
                self._udp_dns(pkt, ip, l4)
            elif proto == IPPROTO_TCP:
                self._tcp_dns(pkt, ip, l4, key, pkt[l4 + 13])

    def _first_fragment(
        self, frag: tuple[bytes, int, int], rows: dict[Packed, list[int]], key: Packed
    ) -> None:
        if len(self._fragments) >= FRAGMENT_MEMORY:
            del self._fragments[next(iter(self._fragments))]
        self._fragments[frag] = (rows, key)

    def _later_fragment(self, frag: tuple[bytes, int, int], nbytes: int, ts: int) -> None:
        # Ports live in the first fragment only: count later ones towards its flow.
        found = self._fragments.get(frag)
        if found is None:
            self._report.fragments_unmatched += 1
            return
        rows, key = found
        _bump(rows, key, nbytes, ts)

    # ----------------------------------------------------------------------------- DNS payloads

    def _ip_end(self, pkt: bytes, ip: int) -> int:
        """End of the IP packet inside ``pkt`` (excludes Ethernet padding), as the header says."""
        if pkt[ip] >> 4 == 4:
            return ip + (pkt[ip + 2] << 8 | pkt[ip + 3])
        return ip + 40 + (pkt[ip + 4] << 8 | pkt[ip + 5])

    def _udp_dns(self, pkt: bytes, ip: int, l4: int) -> None:
        assert self.dns_sink is not None
        end = l4 + (pkt[l4 + 4] << 8 | pkt[l4 + 5])
        kept = min(self._ip_end(pkt, ip), len(pkt))
        if end > kept:  # a first fragment, or cut by the snapshot length: the answers wholly kept still count
            self._report.dns_incomplete += 1
            end = kept
        self._report.dns_messages += 1
        self.dns_sink(pkt[l4 + 8 : end])

    def _tcp_dns(self, pkt: bytes, ip: int, l4: int, key: bytes, flags: int) -> None:
        """Reassemble DNS-over-TCP (2-byte length prefix) per direction and emit whole messages."""
        assert self.dns_sink is not None
        streams = self._dns_streams
        seq = int.from_bytes(pkt[l4 + 4 : l4 + 8], "big")
        start = l4 + (pkt[l4 + 12] >> 4) * 4
        end = self._ip_end(pkt, ip)
        state = streams.get(key)
        if flags & 0x02:  # SYN: the stream starts at seq + 1
            streams.pop(key, None)
            if len(streams) >= DNS_STREAMS:
                del streams[next(iter(streams))]
            streams[key] = [(seq + 1) & 0xFFFFFFFF, bytearray()]
            return
        if end > len(pkt):
            if end > start:
                self._report.dns_incomplete += 1
                streams.pop(key, None)
            return
        payload = pkt[start:end]
        if state is None:
            if not payload:
                return
            # Joined mid-stream: assume the segment starts a message, as is usual for DNS.
            if len(streams) >= DNS_STREAMS:
                del streams[next(iter(streams))]
            state = streams[key] = [seq, bytearray()]
        expected = state[0]
        buffer = state[1]
        assert isinstance(expected, int) and isinstance(buffer, bytearray)
        gap = (seq - expected) & 0xFFFFFFFF
        if payload:
            if gap >= 0x80000000:  # retransmission overlapping what we already have
                overlap = (expected - seq) & 0xFFFFFFFF
                payload = payload[overlap:]
                gap = 0
            if gap:
                self._report.dns_incomplete += 1  # a segment was not captured
                streams.pop(key, None)
                return
            buffer += payload
            state[0] = (expected + len(payload)) & 0xFFFFFFFF
            while len(buffer) >= 2:
                size = buffer[0] << 8 | buffer[1]
                if len(buffer) < 2 + size:
                    break
                self._report.dns_messages += 1
                self.dns_sink(bytes(buffer[2 : 2 + size]))
                del buffer[: 2 + size]
            if len(buffer) > DNS_STREAM_BYTES:
                streams.pop(key, None)
        if flags & 0x05:  # FIN or RST
            if buffer:
                self._report.dns_incomplete += 1
            streams.pop(key, None)


def _nflog_payload(pkt: bytes) -> tuple[int, int]:
    """Where the logged packet starts in an NFLOG record, and its length ((0, 0) when it holds none).

    After a 4-byte header (family, version, resource id) come TLVs: a 2-byte length (of the TLV, the
    4-byte TLV header included) and a 2-byte type, both in the host order of the machine that logged,
    little-endian on every common one, each padded to 4 bytes.
    """
    at, end = 4, len(pkt)
    while at + 4 <= end:
        length = pkt[at] | pkt[at + 1] << 8
        kind = (pkt[at + 2] | pkt[at + 3] << 8) & 0x7FFF  # the top bit marks a nested TLV
        if length < 4:
            return 0, 0
        if kind == NFULA_PAYLOAD:
            return at + 4, length - 4
        at += (length + 3) & ~3
    return 0, 0


def linktype_name(linktype: int) -> str:
    """``160 (USER13)`` style name of a link type for messages."""
    name = LINKTYPE_NAMES.get(linktype)
    return f"{linktype} ({name})" if name else str(linktype)
