"""Capture files -> traffic tables, fast and in constant memory.

Reads classic pcap (either byte order, micro- or nanosecond timestamps) and
pcapng (several sections, interfaces with their own link types and timestamp
resolutions), plain or gzip-compressed, from a file or a stream (stdin).

Only the header fields that flows need are decoded, straight from the bytes:
scapy's per-packet dissection is about a hundred times too slow for captures
of millions of packets, so it is used only to write test captures. Packets are
folded as they are read into one counter row per direction of each 5-tuple
(:class:`~kubectl_netgen.flows.TrafficTable`), so memory grows with the number
of distinct 5-tuples, never with the file size. DNS messages on port 53 (UDP,
and TCP reassembled per stream) are handed to a sink as they complete.

A damaged file yields every packet before the damage and a report saying where
reading stopped; deciding whether that is fatal (``--strict``) is the caller's.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from kubectl_netgen.errors import InputError
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

CHUNK = 1 << 20
"""Bytes read at a time: large enough to amortise reads, small enough to keep memory flat."""
MAX_SNAPLEN = 262144
"""tcpdump's largest snapshot length; a classic record claiming more is taken as corruption."""
MAX_TIME_NS = 253402300799 * 1_000_000_000
"""The last nanosecond of year 9999: later pcapng timestamps are taken as invalid."""
MAX_BLOCK = 16 << 20
"""Largest pcapng block accepted before the file is taken as corrupt."""

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_DLT12 = 12
LINKTYPE_RAW_DLT14 = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
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
    105: "IEEE802_11",
    127: "IEEE802_11_RADIOTAP",
    **{147 + n: f"USER{n}" for n in range(16)},
}
RAW_LINKTYPES = frozenset({LINKTYPE_RAW_DLT12, LINKTYPE_RAW_DLT14, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6})
SUPPORTED_LINKTYPES = RAW_LINKTYPES | {
    LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
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

MAGIC_GZIP = b"\x1f\x8b"
MAGIC_PCAPNG = b"\x0a\x0d\x0d\x0a"
PCAPNG_MIN_BLOCK = {1: 20, 2: 32, 3: 16, 6: 32, 0x0A0D0D0A: 28}
"""Smallest valid total length of the pcapng blocks we read (IDB, PB, SPB, EPB, SHB)."""
CLASSIC_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}

DnsSink = Callable[[bytes], None]
"""Receives each whole DNS message seen on port 53 (UDP payload, or one TCP-framed message)."""
Handler = Callable[[bytes, int, int], None]


class Readable(Protocol):
    """A binary stream: a file, stdin's buffer, a gzip stream."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes; ``b""`` at the end."""
        ...


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
    unsupported: dict[int, int] = field(default_factory=dict)
    """Packets skipped per unsupported link type."""
    dns_messages: int = 0
    """DNS messages handed to the DNS sink."""
    dns_incomplete: int = 0
    """DNS messages lost to the snapshot length or to gaps in a TCP stream."""
    damage: str | None = None
    """Where and why reading stopped early (truncated or corrupt file); ``None`` when whole."""


class _Prefixed:
    """A stream that first gives back bytes already read from it (for format sniffing)."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self.head = head
        self.rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if self.head:
            if size < 0 or size >= len(self.head):
                data, self.head = self.head, b""
                more = self.rest.read(-1 if size < 0 else size - len(data))
                return data + more
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.rest.read(size)


class _Gunzip:
    """A gzip stream decompressed as it is read, keeping every good byte before any damage.

    ``gzip.GzipFile`` drops all it decompressed in a ``read`` that then meets the end of a cut
    file or a bad CRC; for a capture that loses up to a buffer of whole packets. This inflates
    each member raw, in small steps, checks the trailer (CRC-32 and size) itself, and records
    damage in :attr:`damage` after handing out everything that decompressed.
    """

    STEP = 16 << 10
    """Compressed bytes inflated at a time: what a corrupt spot can cost at most."""

    def __init__(self, raw: Readable) -> None:
        self.raw = raw
        self.pending = b""
        self.out = bytearray()
        self.inflate: zlib._Decompress | None = None
        self.crc = 0
        self.size = 0
        self.members = 0
        self.done = False
        self.damage: str | None = None

    def read(self, size: int = -1, /) -> bytes:
        while not self.done and (size < 0 or len(self.out) < size):
            self._step()
        size = len(self.out) if size < 0 else min(size, len(self.out))
        data = bytes(self.out[:size])
        del self.out[:size]
        return data

    def _fill(self, n: int) -> bool:
        while len(self.pending) < n:
            more = self.raw.read(max(CHUNK, n - len(self.pending)))
            if not more:
                return False
            self.pending += more
        return True

    def _fail(self, damage: str) -> None:
        self.damage = damage
        self.done = True

    def _step(self) -> None:
        if self.inflate is None:
            self._header()
            return
        if not self.pending and not self._fill(1):
            self._fail("the gzip stream ends early (truncated .gz file)")
            return
        step, self.pending = self.pending[: self.STEP], self.pending[self.STEP :]
        try:
            data = self.inflate.decompress(step)
        except zlib.error as e:
            self._fail(f"corrupt gzip data ({e})")
            return
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self.out += data
        if self.inflate.eof:
            self.pending = self.inflate.unused_data + self.pending
            self.inflate = None
            if not self._fill(8):
                self._fail("the gzip stream ends early (its trailer is cut off)")
                return
            crc, size = struct.unpack_from("<II", self.pending)
            self.pending = self.pending[8:]
            if crc != self.crc or size != self.size & 0xFFFFFFFF:
                self._fail("corrupt gzip data (CRC or length check failed)")

    def _header(self) -> None:
        if not self._fill(10):
            if self.members and not self.pending.strip(b"\0"):
                self.done = True  # the end, perhaps after zero padding as tape archives leave it
            elif self.members:
                self._fail("unexpected bytes after the gzip data were ignored")
            else:
                self._fail("the gzip stream ends early (truncated .gz file)")
            return
        if self.pending[:3] != b"\x1f\x8b\x08":
            if self.members and not self.pending.strip(b"\0"):
                self.done = True
            else:
                self._fail("unexpected bytes after the gzip data were ignored" if self.members
                           else "corrupt gzip header")
            return
        flags = self.pending[3]
        pos = 10
        if flags & 0x04:  # FEXTRA
            if not self._fill(pos + 2):
                self._fail("the gzip stream ends early (in its header)")
                return
            pos += 2 + int.from_bytes(self.pending[pos : pos + 2], "little")
        for bit in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated
            if flags & bit:
                while (end := self.pending.find(b"\0", pos)) < 0:
                    if not self._fill(len(self.pending) + 1):
                        self._fail("the gzip stream ends early (in its header)")
                        return
                pos = end + 1
        if flags & 0x02:  # FHCRC
            pos += 2
        if not self._fill(pos):
            self._fail("the gzip stream ends early (in its header)")
            return
        self.pending = self.pending[pos:]
        self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self.crc = self.size = 0
        self.members += 1


class _Interface:
    """Per-interface decoding state: link type and the hot counter tables, one per IP protocol.

    Tables are keyed by :data:`~kubectl_netgen.flows.Packed` keys sliced straight from
    the packets; times are nanoseconds since the epoch, -1 where a packet had none.
    """

    def __init__(self, linktype: int) -> None:
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


@dataclass(frozen=True)
class _PcapngInterface:
    handle: Handler
    snaplen: int
    multiply: int
    divide: int


class Scanner:
    """Reads captures into one :class:`TrafficTable`, one :class:`CaptureReport` per capture.

    Args:
        dns_sink: Called with every DNS message on port 53; ``None`` skips DNS work.
    """

    def __init__(self, dns_sink: DnsSink | None = None) -> None:
        """Start with an empty table."""
        self.table = TrafficTable()
        self.dns_sink = dns_sink
        self._interfaces: list[_Interface] = []
        self._report = CaptureReport("")
        # (addresses, identification, protocol) of fragmented datagrams -> where later fragments count.
        self._fragments: dict[tuple[bytes, int, int], tuple[dict[Packed, list[int]], Packed]] = {}
        self._dns_streams: dict[bytes, list[object]] = {}

    # ----------------------------------------------------------------------------- containers

    def scan(self, source: Readable, name: str) -> CaptureReport:
        """Read one capture from ``source`` and fold its traffic into :attr:`table`.

        Args:
            source: A binary stream positioned at the start of the capture.
            name: How to call the capture in messages.

        Returns:
            The report; ``damage`` says where reading stopped if the file is damaged.

        Raises:
            InputError: ``source`` is not a pcap or pcapng capture at all, or cannot be read.
        """
        report = self._report = CaptureReport(name)
        self._interfaces = []
        try:
            self._sniff(source, report)
        except OSError as e:
            raise InputError(f"cannot read {name}: {e.strerror or e}") from e
        finally:
            for iface in self._interfaces:
                iface.fold(self.table)
            self._interfaces = []
            self._fragments.clear()
            self._dns_streams.clear()
        return report

    def _sniff(self, source: Readable, report: CaptureReport, gunzip: _Gunzip | None = None) -> None:
        head = _read_exactly(source, 4)
        if head[:2] == MAGIC_GZIP and gunzip is None:
            gunzip = _Gunzip(_Prefixed(head, source))
            try:
                self._sniff(gunzip, report, gunzip)
            finally:
                if gunzip.damage:
                    # The capture inside may be cut because the gzip stream was: say both.
                    report.damage = f"{gunzip.damage}: {report.damage}" if report.damage else gunzip.damage
            return
        suffix = ", gzip" if gunzip is not None else ""
        if gunzip is not None and len(head) < 4:
            if gunzip.damage:
                return  # nothing readable survived the damage; the report says why
            raise InputError(f"{report.name} is gzip-compressed but holds no capture (it is empty inside)")
        if head in CLASSIC_MAGICS:
            endian, nano = CLASSIC_MAGICS[head]
            report.format = ("pcap (nanosecond)" if nano else "pcap") + suffix
            self._classic(source, endian, nano, report)
        elif head == MAGIC_PCAPNG:
            report.format = "pcapng" + suffix
            self._pcapng(source, head, report)
        elif not head:
            raise InputError(f"{report.name} is empty, not a capture: expected a pcap or pcapng file")
        else:
            inside = " inside its gzip compression" if gunzip is not None else ""
            raise InputError(
                f"{report.name} is not a pcap or pcapng capture (it starts with 0x{head.hex()}{inside}); "
                "write captures with tcpdump -w or kubectl netgen capture"
            )

    def _classic(self, stream: Readable, endian: str, nano: bool, report: CaptureReport) -> None:
        header = _read_exactly(stream, 20)
        if len(header) < 20:
            report.damage = f"the file header is cut off after {4 + len(header)} of 24 bytes"
            return
        _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(endian + "HHiIII", header)
        linktype = network & 0x0FFFFFFF  # the upper bits may carry FCS information
        scale = 1 if nano else 1000
        fraction_limit = 1_000_000_000 if nano else 1_000_000
        handle = self._interface(linktype)
        record = struct.Struct(endian + "IIII").unpack_from
        limit = MAX_SNAPLEN  # as libpcap: a header's snaplen does not raise the cap on records
        # Inline fast path for the bulk of real captures: IPv4 without options, not a fragment,
        # carrying TCP, on Ethernet (untagged) or Linux cooked v1/v2. It does what ``handle``
        # does for such packets, without a call and without slicing the packet out first.
        fast = linktype in FAST_LINKTYPES
        ethertype_at, ip_at = FAST_LINKTYPES.get(linktype, (0, 0))
        tcp_min = ip_at + 34  # IPv4 header + TCP up to its flags
        tcp = self._interfaces[-1].rows[IPPROTO_TCP]
        tcp_get = tcp.get
        dns_on = self.dns_sink is not None
        buf, pos, offset, count, invalid = b"", 0, 24, 0, 0
        try:
            while True:
                end = len(buf)
                while pos + 16 <= end:
                    sec, frac, incl, orig = record(buf, pos)
                    if incl > limit:
                        report.damage = (f"corrupt record header at byte {offset + pos} (packet {count + 1}): "
                                         f"captured length {incl} exceeds the limit {limit}")
                        return
                    start = pos + 16
                    nxt = start + incl
                    if nxt > end:
                        break
                    pos = nxt
                    count += 1
                    if frac < fraction_limit:
                        ts = sec * 1_000_000_000 + frac * scale
                    else:
                        invalid += 1
                        ts = -1
                    et = start + ethertype_at
                    if fast and incl >= tcp_min and buf[et] == 8 and not buf[et + 1]:
                        ip = start + ip_at
                        if buf[ip] == 0x45 and buf[ip + 9] == IPPROTO_TCP and not (buf[ip + 6] & 0x3F or buf[ip + 7]):
                            key = buf[ip + 12 : ip + 24]
                            if not (dns_on and (key[8:10] == b"\x00\x35" or key[10:12] == b"\x00\x35")):
                                row = tcp_get(key)
                                if row is None:
                                    row = tcp[key] = [1, orig - ip_at, ts, ts, 0, 0]
                                else:
                                    row[0] += 1
                                    row[1] += orig - ip_at
                                    if ts > row[3]:
                                        row[3] = ts
                                        if row[2] < 0:  # the first packet had no valid time
                                            row[2] = ts
                                flags = buf[ip + 33]
                                if flags & 0x02:
                                    row[ACCEPTS if flags & 0x10 else OPENS] += 1
                                continue
                    handle(buf[start:nxt], ts, orig)
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                offset += pos
                buf = buf[pos:] + chunk
                pos = 0
            if pos < len(buf):
                have = len(buf) - pos
                if have >= 16:
                    what = f"{have} of {16 + record(buf, pos)[2]} bytes"
                else:
                    what = f"{have} of the 16 bytes of its record header"
                report.damage = f"truncated at byte {offset + pos}: packet {count + 1} is cut off ({what})"
        finally:
            report.packets += count
            report.invalid_timestamps += invalid

    def _pcapng(self, stream: Readable, head: bytes, report: CaptureReport) -> None:
        buf, pos, offset = head, 0, 0
        endian = "<"
        u32 = struct.Struct(endian + "I").unpack_from
        epb = struct.Struct(endian + "IIIII").unpack_from
        ifaces: list[_PcapngInterface] = []  # the current section's interfaces
        count = 0
        try:
            while True:
                end = len(buf)
                if pos + 12 <= end:
                    if buf[pos : pos + 4] == MAGIC_PCAPNG:  # Section Header Block: byte order, new interfaces
                        magic = buf[pos + 8 : pos + 12]
                        if magic not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                            report.damage = f"corrupt section header at byte {offset + pos}: bad byte-order magic"
                            return
                        endian = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
                        u32 = struct.Struct(endian + "I").unpack_from
                        epb = struct.Struct(endian + "IIIII").unpack_from
                        ifaces = []
                    btype, blen = u32(buf, pos)[0], u32(buf, pos + 4)[0]
                    if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                        report.damage = f"corrupt block at byte {offset + pos}: impossible block length {blen}"
                        return
                    if pos + blen <= end:
                        if not self._block(btype, blen, buf, pos, endian, epb, ifaces):
                            report.damage = (f"corrupt block at byte {offset + pos} "
                                             f"(type 0x{btype:08x}, length {blen})")
                            return
                        count += btype in (2, 3, 6)
                        pos += blen
                        continue
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                offset += pos
                buf = buf[pos:] + chunk
                pos = 0
            if pos < len(buf):
                report.damage = (f"truncated at byte {offset + pos}: the last block is cut off "
                                 f"({len(buf) - pos} bytes left)")
        finally:
            report.packets += count

    def _block(
        self, btype: int, blen: int, buf: bytes, pos: int, endian: str,
        epb: Callable[[bytes, int], tuple[int, ...]], ifaces: list[_PcapngInterface],
    ) -> bool:
        """Handle one whole pcapng block; ``False`` when it is inconsistent (corrupt)."""
        if blen < PCAPNG_MIN_BLOCK.get(btype, 12):
            return False
        if btype == 6:  # Enhanced Packet Block
            iid, hi, lo, caplen, orig = epb(buf, pos + 8)
            if iid >= len(ifaces) or 28 + caplen > blen - 4:
                return False
            iface = ifaces[iid]
            iface.handle(buf[pos + 28 : pos + 28 + caplen], self._pcapng_time(iface, hi, lo), orig)
        elif btype == 3:  # Simple Packet Block: interface 0, no timestamp
            if not ifaces:
                return False
            orig = struct.unpack_from(endian + "I", buf, pos + 8)[0]
            iface = ifaces[0]
            caplen = min(orig, blen - 16, iface.snaplen or orig)
            iface.handle(buf[pos + 12 : pos + 12 + caplen], -1, orig)
        elif btype == 2:  # obsolete Packet Block
            iid, _drops, hi, lo, caplen, orig = struct.unpack_from(endian + "HHIIII", buf, pos + 8)
            if iid >= len(ifaces) or 28 + caplen > blen - 4:
                return False
            iface = ifaces[iid]
            iface.handle(buf[pos + 28 : pos + 28 + caplen], self._pcapng_time(iface, hi, lo), orig)
        elif btype == 1:  # Interface Description Block
            linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", buf, pos + 8)
            multiply, divide = _if_tsresol(buf[pos + 16 : pos + blen - 4], endian)
            ifaces.append(_PcapngInterface(self._interface(linktype), snaplen, multiply, divide))
        return True

    def _pcapng_time(self, iface: _PcapngInterface, hi: int, lo: int) -> int:
        """Nanoseconds since the epoch of a pcapng timestamp; -1 (and counted) when out of range."""
        ns = ((hi << 32) | lo) * iface.multiply // iface.divide
        if ns > MAX_TIME_NS:
            self._report.invalid_timestamps += 1
            return -1
        return ns

    # ----------------------------------------------------------------------------- packets

    def _interface(self, linktype: int) -> Handler:
        """Make the per-packet handler of one interface (its link type fixed)."""
        iface = _Interface(linktype)
        self._interfaces.append(iface)
        report = self._report
        if linktype not in SUPPORTED_LINKTYPES:
            def skip(pkt: bytes, ts: int, orig: int) -> None:
                report.unsupported[linktype] = report.unsupported.get(linktype, 0) + 1
            return skip

        tcp, udp = iface.rows[IPPROTO_TCP], iface.rows[IPPROTO_UDP]
        tcp_get, udp_get = tcp.get, udp.get
        general = self._general
        dns_on = self.dns_sink is not None
        udp_dns, tcp_dns = self._udp_dns, self._tcp_dns
        vlan_tags = VLAN_TAGS
        ethernet = linktype == LINKTYPE_ETHERNET
        sll2 = linktype == LINKTYPE_LINUX_SLL2
        sll = linktype == LINKTYPE_LINUX_SLL
        raw = linktype in RAW_LINKTYPES

        def handle(pkt: bytes, ts: int, orig: int) -> None:
            # The hot path, inlined for speed: IPv4 without options (not a fragment) or IPv6
            # without extension headers, carrying TCP or UDP. Everything else goes through
            # ``general``. Indexing past the end of a packet cut by the snapshot length raises
            # IndexError, which counts it as short; slices are length-checked for the same reason.
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
                else:  # NULL (the writer's host byte order) or LOOP (network byte order)
                    family = int.from_bytes(pkt[0:4], "big")
                    if family > 0xFFFF:
                        family = int.from_bytes(pkt[0:4], "little")
                    ip = 4
                    et = ETH_IPV4 if family == NULL_AF_INET else ETH_IPV6 if family in NULL_AF_INET6 else 0
                if et == ETH_IPV4:
                    if pkt[ip] == 0x45 and not (pkt[ip + 6] & 0x3F or pkt[ip + 7]):
                        proto = pkt[ip + 9]
                        if proto == IPPROTO_TCP:
                            flags = pkt[ip + 33]
                            key = pkt[ip + 12 : ip + 24]
                            row = tcp_get(key)
                            if row is None:
                                row = tcp[key] = [1, orig - ip, ts, ts, 0, 0]
                            else:
                                row[0] += 1
                                row[1] += orig - ip
                                if ts > row[3]:
                                    row[3] = ts
                                    if row[2] < 0:  # the first packet had no valid time
                                        row[2] = ts
                            if flags & 0x02:
                                row[ACCEPTS if flags & 0x10 else OPENS] += 1
                            if dns_on and (key[8:10] == b"\x00\x35" or key[10:12] == b"\x00\x35"):
                                tcp_dns(pkt, ip, ip + 20, key, flags)
                            return
                        if proto == IPPROTO_UDP:
                            key = pkt[ip + 12 : ip + 24]
                            if len(key) < 12:
                                raise IndexError
                            row = udp_get(key)
                            if row is None:
                                udp[key] = [1, orig - ip, ts, ts, 0, 0]
                            else:
                                row[0] += 1
                                row[1] += orig - ip
                                if ts > row[3]:
                                    row[3] = ts
                                    if row[2] < 0:  # the first packet had no valid time
                                        row[2] = ts
                            if dns_on and (key[8:10] == b"\x00\x35" or key[10:12] == b"\x00\x35"):
                                udp_dns(pkt, ip, ip + 20)
                            return
                    general(iface, pkt, ip, 4, ts, orig)
                elif et == ETH_IPV6:
                    nh = pkt[ip + 6]
                    if nh == IPPROTO_TCP:
                        flags = pkt[ip + 53]
                        rows = tcp
                    elif nh == IPPROTO_UDP:
                        flags = 0
                        rows = udp
                    else:
                        general(iface, pkt, ip, 6, ts, orig)
                        return
                    key = pkt[ip + 8 : ip + 44]
                    if len(key) < 36:
                        raise IndexError
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
                    if dns_on and (key[32:34] == b"\x00\x35" or key[34:36] == b"\x00\x35"):
                        if nh == IPPROTO_TCP:
                            tcp_dns(pkt, ip, ip + 40, key, flags)
                        else:
                            udp_dns(pkt, ip, ip + 40)
                else:
                    report.non_ip += 1
            except IndexError:
                report.short += 1

        return handle

    def _general(self, iface: _Interface, pkt: bytes, ip: int, version: int, ts: int, orig: int) -> None:
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
        if end > self._ip_end(pkt, ip) or end > len(pkt):  # a first fragment, or cut by the snaplen
            self._report.dns_incomplete += 1
            return
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


def _read_exactly(stream: Readable, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data


def _if_tsresol(options: bytes, endian: str) -> tuple[int, int]:
    """(multiply, divide) turning an interface's timestamp ticks into nanoseconds (``if_tsresol``).

    The default resolution is microseconds; the option's top bit selects a power of two.
    """
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and length >= 1 and pos + 4 < len(options):
            value = options[pos + 4]
            exponent = value & 0x7F
            if value & 0x80:
                return 1_000_000_000, 1 << exponent
            if exponent <= 9:
                return 10 ** (9 - exponent), 1
            return 1, 10 ** (exponent - 9)
        pos += 4 + (length + 3) // 4 * 4
    return 1000, 1


def open_capture(path: str, stdin: BinaryIO | None) -> BinaryIO:
    """Open ``path`` for reading (``-`` is ``stdin``), or raise a one-line :class:`InputError`."""
    if path == "-":
        if stdin is None:
            raise InputError("'-' means stdin, but there is no stdin to read")
        return stdin
    try:
        return open(path, "rb")
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file; give the path of a pcap or pcapng capture") from e
    except IsADirectoryError as e:
        raise InputError(f"{path} is a directory; give the capture files inside it") from e
    except PermissionError as e:
        raise InputError(f"{path}: permission denied; check the file's mode or run as its owner") from e
    except OSError as e:
        raise InputError(f"cannot open {path}: {e.strerror or e}") from e


def linktype_name(linktype: int) -> str:
    """``160 (USER13)`` style name of a link type for messages."""
    name = LINKTYPE_NAMES.get(linktype)
    return f"{linktype} ({name})" if name else str(linktype)
