"""Capture files -> a packet decoder: classic pcap, pcapng and gzip, from files or stdin.

Reads classic pcap (either byte order, micro- or nanosecond timestamps) and pcapng (several
sections, interfaces with their own link types and timestamp resolutions), plain or
gzip-compressed. A damaged file yields every packet before the damage and a report saying where
reading stopped; deciding whether that is fatal (``--strict``) is the caller's.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from kubectl_netgen.errors import InputError
from kubectl_netgen.flows import ACCEPTS, IPPROTO_TCP, OPENS
from kubectl_netgen.pcap.packets import FAST_LINKTYPES, CaptureReport, Handler, PacketDecoder
from kubectl_netgen.pcap.stream import CHUNK, Gunzip, Prefixed, Readable, read_exactly

MAX_SNAPLEN = 262144
"""tcpdump's largest snapshot length; a classic record claiming more is taken as corruption."""
MAX_TIME_NS = 253402300799 * 1_000_000_000
"""The last nanosecond of year 9999: later pcapng timestamps are taken as invalid."""
MAX_BLOCK = 16 << 20
"""Largest pcapng block accepted before the file is taken as corrupt."""

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


@dataclass(frozen=True)
class _PcapngInterface:
    """An interface of the current pcapng section: its packet handler, snaplen and time unit."""

    handle: Handler
    snaplen: int
    multiply: int
    divide: int


class Scanner(PacketDecoder):
    """Reads captures into one :class:`~kubectl_netgen.flows.TrafficTable`, a report per capture.

    Args:
        dns_sink: Called with every DNS message on port 53; ``None`` skips DNS work.
    """

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

    def _sniff(self, source: Readable, report: CaptureReport, gunzip: Gunzip | None = None) -> None:
        head = read_exactly(source, 4)
        if head[:2] == MAGIC_GZIP and gunzip is None:
            gunzip = Gunzip(Prefixed(head, source))
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
        header = read_exactly(stream, 20)
        if len(header) < 20:
            report.damage = f"the file header is cut off after {4 + len(header)} of 24 bytes"
            return
        _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(endian + "HHiIII", header)
        linktype = network & 0x0FFFFFFF  # the upper bits may carry FCS information
        scale = 1 if nano else 1000
        fraction_limit = 1_000_000_000 if nano else 1_000_000
        handle = self.interface(linktype)
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
        buf, pos, offset, count, invalid, lengths = b"", 0, 24, 0, 0, 0
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
                    if orig < incl:  # a wire length below what was captured: impossible, use what is there
                        orig = incl
                        lengths += 1
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
            report.short_lengths += lengths

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

    def _wire(self, orig: int, caplen: int) -> int:
        """A record's original length, never below what it captured (counted in the report when it was)."""
        if orig >= caplen:
            return orig
        self._report.short_lengths += 1
        return caplen

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
            iface.handle(buf[pos + 28 : pos + 28 + caplen], self._pcapng_time(iface, hi, lo), self._wire(orig, caplen))
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
            iface.handle(buf[pos + 28 : pos + 28 + caplen], self._pcapng_time(iface, hi, lo), self._wire(orig, caplen))
        elif btype == 1:  # Interface Description Block
            linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", buf, pos + 8)
            multiply, divide = _if_tsresol(buf[pos + 16 : pos + blen - 4], endian)
            ifaces.append(_PcapngInterface(self.interface(linktype), snaplen, multiply, divide))
        return True

    def _pcapng_time(self, iface: _PcapngInterface, hi: int, lo: int) -> int:
        """Nanoseconds since the epoch of a pcapng timestamp; -1 (and counted) when out of range."""
        ns = ((hi << 32) | lo) * iface.multiply // iface.divide
        if ns > MAX_TIME_NS:
            self._report.invalid_timestamps += 1
            return -1
        return ns


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
