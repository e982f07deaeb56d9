"""Property tests of the capture decoder and the DNS reader on random and damaged input.

Whatever the bytes, reading them either works or raises a :class:`~kubectl_netgen.errors.NetgenError`
(a one-line message and an exit code), never anything else; folding what was read into flows never
fails; and a classic pcap cut anywhere gives back exactly the records that are whole.

The seed captures are built here with struct and dnspython (no scapy: hypothesis runs them thousands
of times), from documentation and cluster test addresses only.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Sequence
from ipaddress import ip_address

import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kubectl_netgen.dns import DnsNames
from kubectl_netgen.errors import InputError, NetgenError
from kubectl_netgen.flows import flows
from kubectl_netgen.model import Flow
from kubectl_netgen.pcap import CaptureReport, Scanner

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

T0 = 1_700_000_000
ETHERNET, NULL, RAW, LINUX_SLL2 = 1, 0, 101, 276
C4, S4, DNS4 = (ip_address(a).packed for a in ("10.244.1.10", "10.244.2.20", "10.96.0.10"))
C6, S6 = (ip_address(a).packed for a in ("2001:db8::10", "2001:db8::20"))

# --- packets ----------------------------------------------------------------------------------------


def tcp(sport: int, dport: int, flags: int, seq: int = 0, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 0x50, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, *, ident: int = 1, frag: int = 0,
         options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), ident, frag, 64, proto, 0,
                         src, dst)
    return header + options + payload


def ipv6(src: bytes, dst: bytes, nh: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64, src, dst) + payload


def dns_answer(qname: str, records: Sequence[tuple[str, str, str]], *, rcode: int = dns.rcode.NOERROR,
               qtype: str = "A", ident: int = 1) -> bytes:
    query = dns.message.make_query(qname, qtype, use_edns=0)
    query.id = ident
    reply = dns.message.make_response(query)
    reply.set_rcode(rcode)
    for name, kind, value in records:
        reply.answer.append(dns.rrset.from_text(name, 30, "IN", kind, value))
    return reply.to_wire()


DNS_MESSAGES = [
    dns_answer("api.example.com.", [("api.example.com.", "CNAME", "api.edge.example.net."),
                                    ("api.edge.example.net.", "CNAME", "lb-7.cdn.example.org."),
                                    ("lb-7.cdn.example.org.", "A", "203.0.113.10")]),
    dns_answer("api.example.com.", [("api.example.com.", "AAAA", "2001:db8::10")], qtype="AAAA", ident=2),
    dns_answer("api.example.com.default.svc.cluster.local.", [], rcode=dns.rcode.NXDOMAIN, ident=3),
    dns_answer("mail.example.com.", [
        ("mail.example.com.", "MX", "10 mx.example.com."),
        ("mail.example.com.", "TXT", '"v=spf1 -all"'),
        ("_sip._tcp.example.com.", "SRV", "0 5 5060 sip.example.com."),
    ], ident=4),
    dns.message.make_query("db.example.com.", "A").to_wire(),
]
DNS_WIRE, DNS_AAAA = DNS_MESSAGES[0], DNS_MESSAGES[1]


def framed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


def ip_packets() -> list[bytes]:
    """IP packets of every kind the decoder tells apart."""
    stream = framed(DNS_WIRE) + framed(DNS_AAAA)
    big_udp = udp(40002, 9999, b"x" * 100)
    return [
        ipv4(C4, S4, 6, tcp(40000, 8080, 0x02, 100)),
        ipv4(S4, C4, 6, tcp(8080, 40000, 0x12, 900)),
        ipv4(C4, S4, 6, tcp(40000, 8080, 0x18, 101, b"0123456789")),
        ipv4(DNS4, C4, 17, udp(53, 40100, DNS_WIRE)),
        ipv4(DNS4, C4, 17, udp(53, 40101, DNS_AAAA), options=b"\x94\x04\x00\x00"),
        ipv4(DNS4, C4, 6, tcp(53, 40200, 0x12, 5000)),
        ipv4(DNS4, C4, 6, tcp(53, 40200, 0x18, 5001, stream[:7])),
        ipv4(DNS4, C4, 6, tcp(53, 40200, 0x18, 5008, stream[7:])),
        ipv4(C4, S4, 17, big_udp[:64], ident=7, frag=0x2000),  # first fragment
        ipv4(C4, S4, 17, big_udp[64:], ident=7, frag=8),  # the later one
        ipv4(C4, S4, 1, struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"abcdefgh"),
        ipv4(C4, S4, 132, struct.pack("!HHIIBBH", 40000, 38412, 0, 0, 1, 0, 20) + b"\0" * 16),  # SCTP INIT
        ipv6(C6, S6, 17, udp(40001, 9999, b"ping")),
        ipv6(C6, S6, 0, struct.pack("!BB6x", 60, 0) + struct.pack("!BB6x", 44, 0)
             + struct.pack("!BBHI", 6, 0, 1, 0xABCD) + tcp(40000, 443, 0x02)),
        ipv6(C6, S6, 58, struct.pack("!BBHHH", 128, 0, 0, 0x42, 1) + b"abcdefgh"),
        ipv6(S6, C6, 6, tcp(53, 40300, 0x18, 1, framed(DNS_AAAA))),
    ]


def link(linktype: int, ip: bytes) -> bytes:
    v6 = ip[0] >> 4 == 6
    if linktype == ETHERNET:
        return bytes.fromhex("02000000001402000000000a") + (b"\x86\xdd" if v6 else b"\x08\x00") + ip
    if linktype == LINUX_SLL2:
        return struct.pack(">HHIHBB8s", 0x86DD if v6 else 0x0800, 0, 3, 1, 0, 6, b"\x02\0\0\0\0\x0a") + ip
    if linktype == NULL:
        return struct.pack("<I", 10 if v6 else 2) + ip
    return ip


def classic(frames: Sequence[bytes], linktype: int, *, endian: str = "<", nano: bool = False) -> bytes:
    out = [struct.pack(endian + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for i, frame in enumerate(frames):
        out.append(struct.pack(endian + "IIII", T0 + i, i * 1000, len(frame), len(frame)) + frame)
    return b"".join(out)


def block(btype: int, body: bytes, endian: str) -> bytes:
    body += b"\0" * (-len(body) % 4)
    size = struct.pack(endian + "I", 12 + len(body))
    return struct.pack(endian + "I", btype) + size + body + size


def pcapng(endian: str) -> bytes:
    linktypes = [ETHERNET, LINUX_SLL2, RAW, NULL]
    out = [block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1), endian)]
    for n, linktype in enumerate(linktypes):
        tsresol = bytes((6 + n, 0, 0, 0))
        options = struct.pack(endian + "HH", 9, 1) + tsresol + struct.pack(endian + "HH", 0, 0)
        out.append(block(1, struct.pack(endian + "HHI", linktype, 0, 262144) + options, endian))
    for i, ip in enumerate(ip_packets()):
        iface = i % len(linktypes)
        frame = link(linktypes[iface], ip)
        ticks = T0 * 10**6 + i
        if i % 5 == 3:
            out.append(block(3, struct.pack(endian + "I", len(frame)) + frame, endian) if iface == 0 else
                       block(2, struct.pack(endian + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                            len(frame), len(frame)) + frame, endian))
        else:
            out.append(block(6, struct.pack(endian + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF,
                                            len(frame), len(frame)) + frame, endian))
    return b"".join(out)


def seeds() -> dict[str, bytes]:
    packets = ip_packets()
    found = {
        "pcap-le-ethernet": classic([link(ETHERNET, p) for p in packets], ETHERNET),
        "pcap-be-ns-sll2": classic([link(LINUX_SLL2, p) for p in packets], LINUX_SLL2, endian=">", nano=True),
        "pcap-le-ns-raw": classic(packets, RAW, nano=True),
        "pcap-be-null": classic([link(NULL, p) for p in packets], NULL, endian=">"),
        "pcapng-le": pcapng("<"),
        "pcapng-be": pcapng(">"),
    }
    found["pcap.gz"] = gzip.compress(found["pcap-le-ethernet"], mtime=0)
    found["pcapng.gz"] = gzip.compress(found["pcapng-le"], mtime=0)
    return found


SEEDS = seeds()

# --- running the decoder ----------------------------------------------------------------------------


def scan(data: bytes, names: DnsNames | None = None) -> tuple[Scanner, CaptureReport | None]:
    """Scan ``data``; a NetgenError is an accepted outcome (no report), anything else fails the test."""
    scanner = Scanner(names.feed if names is not None else None)
    try:
        return scanner, scanner.scan(io.BytesIO(data), "x")
    except NetgenError:
        return scanner, None


def folded(scanner: Scanner) -> list[Flow]:
    result = flows(scanner.table)
    for f in result:
        assert f.packets >= 1 and f.connections >= 1 and f.bytes >= 0
        # Either no packet of the flow had a valid time, or both ends are set and ordered.
        assert (f.first_seen == 0) == (f.last_seen == 0)
        assert f.first_seen <= f.last_seen
    return result


def test_seeds_are_whole_captures() -> None:
    # The properties below start from these; they must read cleanly to begin with.
    for name, data in SEEDS.items():
        names = DnsNames()
        scanner, report = scan(data, names)
        assert report is not None and report.damage is None, name
        assert report.packets == len(ip_packets()), name
        assert (report.short, report.unsupported, report.fragments_unmatched) == (0, {}, 0), name
        assert len(folded(scanner)) == 10, name
        assert {str(ip): sorted(v) for ip, v in names.names.items()} == {
            "203.0.113.10": ["api.edge.example.net", "api.example.com", "lb-7.cdn.example.org"],
            "2001:db8::10": ["api.example.com"],
        }, name


# --- (a) random bytes -------------------------------------------------------------------------------

HEADS = [
    b"",
    struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, ETHERNET),
    struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, LINUX_SLL2),
    struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 96, RAW),
    struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 96, NULL),
    b"\x0a\x0d\x0d\x0a",
    block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1), "<"),
    block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1), "<")
    + block(1, struct.pack("<HHI", ETHERNET, 0, 0), "<"),
    b"\x1f\x8b",
    gzip.compress(b"", mtime=0)[:10],
]


@FUZZ
@given(head=st.sampled_from(HEADS), tail=st.binary(max_size=2048))
def test_random_bytes_raise_only_netgen_errors(head: bytes, tail: bytes) -> None:
    scanner, _ = scan(head + tail)
    folded(scanner)


def ethernet_like(ethertype: bytes, first: int, rest: bytes) -> bytes:
    return bytes.fromhex("02000000001402000000000a") + ethertype + bytes((first,)) + rest


@FUZZ
@given(
    records=st.lists(
        st.tuples(
            st.sampled_from([b"\x08\x00", b"\x86\xdd", b"\x81\x00", b"\x88\xa8", b"\x91\x00", b"\x08\x06"]),
            st.sampled_from([0x45, 0x46, 0x4F, 0x40, 0x60, 0x61, 0x00]),
            st.binary(max_size=120),
            st.integers(min_value=0, max_value=70000),
        ),
        max_size=30,
    ),
    linktype=st.sampled_from([ETHERNET, 12, 14, RAW, 228, 229, NULL, 108, 113, LINUX_SLL2, 105]),
)
def test_random_packets_behind_valid_headers(records: list[tuple[bytes, int, bytes, int]],
                                             linktype: int) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for ethertype, first, rest, orig in records:
        frame = ethernet_like(ethertype, first, rest)
        if linktype != ETHERNET:
            frame = frame[12:] if linktype in (NULL, 108) else frame[14:]
        out.append(struct.pack("<IIII", T0, 0, len(frame), orig) + frame)
    scanner, report = scan(b"".join(out))
    assert report is not None and report.packets == len(records)
    folded(scanner)


# --- (b) mutations of valid captures ----------------------------------------------------------------

Mutation = tuple[str, int, bytes]


def mutate(data: bytes, mutations: Sequence[Mutation]) -> bytes:
    buf = bytearray(data)
    for kind, where, value in mutations:
        at = where % (len(buf) + 1)
        if kind == "flip" and buf:
            buf[at % len(buf)] ^= value[0] or 0xFF
        elif kind == "set" and buf:
            buf[at % len(buf)] = value[0]
        elif kind == "truncate":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = value
        elif kind == "delete":
            del buf[at : at + len(value)]
    return bytes(buf)


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]),
              st.integers(min_value=0, max_value=1 << 16), st.binary(min_size=1, max_size=12)),
    min_size=1, max_size=6,
)


outer_mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "truncate"]), st.integers(min_value=0, max_value=1 << 16),
              st.binary(min_size=1, max_size=1)),
    max_size=1,
)


@FUZZ
@given(seed=st.sampled_from(sorted(SEEDS)), changes=mutations, compress=st.booleans(), outer=outer_mutations)
def test_mutated_captures_raise_only_netgen_errors(seed: str, changes: list[Mutation], compress: bool,
                                                   outer: list[Mutation]) -> None:
    data = mutate(SEEDS[seed], changes)
    if compress and not seed.endswith(".gz"):
        data = mutate(gzip.compress(data, mtime=0), outer)
    scanner, _ = scan(data)
    folded(scanner)


A_RECORD = bytes.fromhex("00010001" "0000001e" "0004" "cb00710a")  # A, IN, TTL 30, 203.0.113.10
A_CLASS = DNS_WIRE.index(A_RECORD) + 3
"""Where the low byte of the A record's class is in ``DNS_WIRE``."""


@FUZZ
@example(seed="pcap-le-ethernet", changes=[
    ("set", SEEDS["pcap-le-ethernet"].index(DNS_WIRE) + A_CLASS, b"\x04"),  # class HS
])
@given(seed=st.sampled_from(sorted(SEEDS)), changes=mutations)
def test_mutated_captures_with_the_dns_reader_raise_only_netgen_errors(seed: str,
                                                                       changes: list[Mutation]) -> None:
    names = DnsNames()
    scanner, _ = scan(mutate(SEEDS[seed], changes), names)
    folded(scanner)
    names.mapping()


@FUZZ
@given(seed=st.sampled_from(sorted(name for name in SEEDS if not name.endswith(".gz"))), changes=mutations)
def test_mutated_captures_read_the_same_in_any_chunking(seed: str, changes: list[Mutation]) -> None:
    # The same bytes read whole and one byte at a time (a slow pipe) give the same traffic and report.
    # Not for gzip: where corrupt deflate data is noticed depends on how much is fed at once.
    data = mutate(SEEDS[seed], changes)
    whole, report = scan(data)

    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            return super().read(1 if size is None or size < 0 else min(size, 1))

    trickled = Scanner()
    try:
        trickled_report: CaptureReport | None = trickled.scan(Trickle(data), "x")
    except NetgenError:
        trickled_report = None
    assert (report is None) == (trickled_report is None)
    assert flows(whole.table) == flows(trickled.table)
    assert report == trickled_report


# --- (c) DNS messages -------------------------------------------------------------------------------


def feed_all(messages: Sequence[bytes]) -> DnsNames:
    names = DnsNames()
    for message in messages:
        names.feed(message)
    for ip, found in names.mapping().items():
        assert found and all(isinstance(name, str) for name in found), ip
    return names


@FUZZ
@given(st.lists(st.binary(max_size=600), max_size=5))
def test_dns_random_messages_never_raise(messages: list[bytes]) -> None:
    feed_all(messages)


def as_answer(message: bytes, count: bytes) -> bytes:
    """``message`` with a header that says "a NOERROR response with answers", so the full parser runs."""
    head = bytearray(message[:12].ljust(12, b"\0"))
    head[2] |= 0x80
    head[3] &= 0xF0
    head[6:8] = count if any(count) else b"\0\1"
    return bytes(head) + message[12:]


@FUZZ
@example(seed=DNS_WIRE, changes=[("set", A_CLASS, b"\xff")], count=b"\0\3")  # class ANY
@given(seed=st.sampled_from(DNS_MESSAGES), changes=mutations, count=st.binary(min_size=2, max_size=2))
def test_dns_mutated_messages_never_raise(seed: bytes, changes: list[Mutation], count: bytes) -> None:
    mutated = mutate(seed, changes)
    feed_all([mutated, as_answer(mutated, count)])


# --- (d) any prefix of a classic pcap -----------------------------------------------------------------


@st.composite
def classic_captures(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """A classic pcap of random records (byte order, precision, sizes), and where each record ends."""
    endian = draw(st.sampled_from(["<", ">"]))
    nano = draw(st.booleans())
    real = st.sampled_from([link(ETHERNET, p) for p in ip_packets()])
    frames = draw(st.lists(st.one_of(real, st.binary(max_size=80)), max_size=12))
    ends, at = [], 24
    for frame in frames:
        at += 16 + len(frame)
        ends.append(at)
    return classic(frames, ETHERNET, endian=endian, nano=nano), ends


@FUZZ
@given(capture=classic_captures(), cut=st.integers(min_value=0, max_value=1 << 14))
def test_any_prefix_gives_exactly_its_whole_records(capture: tuple[bytes, list[int]], cut: int) -> None:
    data, ends = capture
    prefix = data[: cut % (len(data) + 1)]
    if len(prefix) < 4:
        with pytest.raises(InputError):
            Scanner().scan(io.BytesIO(prefix), "x")
        return
    report = Scanner().scan(io.BytesIO(prefix), "x")
    assert report.packets == sum(1 for end in ends if end <= len(prefix))
    assert (report.damage is None) == (len(prefix) in (24, *ends))


def gzip_prefix_records(compressed: bytes, ends: list[int]) -> int:
    """Whole records in what a streaming decompressor can give back from a cut .gz."""
    try:
        available = len(zlib.decompressobj(wbits=31).decompress(compressed))
    except zlib.error:
        available = 0
    return sum(1 for end in ends if end <= available)


@FUZZ
@example(capture=(classic([link(ETHERNET, p) for p in ip_packets()[:3]], ETHERNET), [94, 164, 244]), cut=-10)
@given(capture=classic_captures(), cut=st.integers(min_value=-200, max_value=-1))
def test_any_prefix_of_a_gzip_capture_gives_its_whole_records(capture: tuple[bytes, list[int]],
                                                              cut: int) -> None:
    data, ends = capture
    compressed = gzip.compress(data, mtime=0)
    prefix = compressed[:cut]
    try:
        report = Scanner().scan(io.BytesIO(prefix), "x")
    except InputError:
        assert len(prefix) < 10 + 4  # not even the gzip header and the capture's magic number
        return
    assert report.packets == gzip_prefix_records(prefix, ends)
