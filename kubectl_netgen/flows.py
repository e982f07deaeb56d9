"""Packet aggregates -> flows: who opened what, to whom, on which port.

Pure: the decoder (:mod:`kubectl_netgen.pcap`) fills a :class:`TrafficTable`
with one counter row per direction of each 5-tuple; this module pairs the two
directions, decides which side is the client, and folds connections into
:class:`~kubectl_netgen.model.Flow` values.

Direction, in order of evidence:

* TCP: a SYN without ACK names its sender the client; a SYN+ACK alone (a
  capture that began mid-handshake) names its receiver. SCTP: INIT / INIT ACK
  likewise. ICMP echo: the requester.
* A connection the pod's socket tables list: their client end (the side that
  does not own a LISTEN socket on its port), ahead of every guess below.
* UDP: the side that sent first, when the other side answered and the ports
  do not say otherwise (a request/response pair).
* Otherwise a guess from ports: a port seen accepting a handshake elsewhere in
  the capture (a listening port), then a well-known service port, then
  ephemeral-range ports (the client side), then the lower port.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from ipaddress import ip_address

from kubectl_netgen.model import Direction, Flow, IPAddress, Protocol

# Counter row of one direction of a 5-tuple: [packets, bytes, first_ns, last_ns, opens, accepts].
# ``opens`` counts SYN (no ACK) / SCTP INIT / ICMP echo requests; ``accepts`` SYN+ACK / INIT ACK / echo replies.
# A time of -1 means no packet of the row had a valid timestamp.
PACKETS, BYTES, FIRST, LAST, OPENS, ACCEPTS = range(6)

IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, IPPROTO_SCTP = 1, 6, 17, 58, 132
PROTOCOLS = {
    IPPROTO_TCP: Protocol.TCP,
    IPPROTO_UDP: Protocol.UDP,
    IPPROTO_SCTP: Protocol.SCTP,
    IPPROTO_ICMP: Protocol.ICMP,
    IPPROTO_ICMPV6: Protocol.ICMPV6,
}
IP_PROTOCOLS = {protocol: number for number, protocol in PROTOCOLS.items()}
"""Protocol -> IP protocol number."""

# ICMP rows use the port fields for (type, identifier-or-code).
ICMP_ECHO = {IPPROTO_ICMP: (8, 0), IPPROTO_ICMPV6: (128, 129)}
ICMP_NAMES = {
    IPPROTO_ICMP: {3: "destination-unreachable", 4: "source-quench", 5: "redirect", 11: "time-exceeded",
                   12: "parameter-problem", 13: "timestamp", 14: "timestamp-reply"},
    IPPROTO_ICMPV6: {1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded",
                     4: "parameter-problem", 133: "router-solicitation", 134: "router-advertisement",
                     135: "neighbor-solicitation", 136: "neighbor-advertisement", 137: "redirect",
                     143: "mld-report"},
}

# Ports that identify a server even without a handshake (IANA service ports common in clusters).
WELL_KNOWN_PORTS = frozenset({
    20, 21, 22, 23, 25, 53, 67, 69, 80, 88, 110, 111, 119, 123, 135, 137, 138, 139, 143, 161, 162,
    179, 389, 443, 445, 465, 514, 515, 543, 587, 631, 636, 853, 873, 989, 990, 993, 995,
    1433, 1521, 1883, 2049, 2379, 2380, 3000, 3306, 3478, 4222, 4317, 4318, 4789, 5000, 5044, 5060,
    5222, 5349, 5353, 5432, 5601, 5671, 5672, 5984, 6379, 6443, 6650, 7000, 7001, 7199, 7473, 7474,
    7687, 8000, 8008, 8080, 8081, 8086, 8088, 8123, 8200, 8443, 8500, 8888, 9000, 9042, 9090, 9092,
    9093, 9100, 9200, 9300, 9411, 9418, 9443, 10250, 10255, 10256, 11211, 15672, 27017, 50051,
})
CLIENT_PORTS = frozenset({68, 546})
"""Ports only clients use (DHCP and DHCPv6 clients), though they are below 1024."""
EPHEMERAL_LOW = 32768
"""Start of Linux's default ephemeral port range (``net.ipv4.ip_local_port_range``)."""

Packed = bytes
"""One direction of a 5-tuple as packed bytes: source address, destination address, source port,
destination port (2 bytes each, big-endian): 12 bytes for IPv4, 36 for IPv6 - exactly as the fields
stand in an IPv4 header without options followed by TCP/UDP, so the decoder can slice keys straight
from packets. For ICMP the ports are the message type and the echo identifier (or the code)."""


def split(key: Packed) -> tuple[bytes, bytes, int, int]:
    """(source address, destination address, source port, destination port) of a packed key."""
    n = 4 if len(key) == 12 else 16
    return key[:n], key[n : 2 * n], key[2 * n] << 8 | key[2 * n + 1], key[2 * n + 2] << 8 | key[2 * n + 3]


def reverse(key: Packed) -> Packed:
    """The packed key of the opposite direction."""
    n = 4 if len(key) == 12 else 16
    return key[n : 2 * n] + key[:n] + key[2 * n + 2 :] + key[2 * n : 2 * n + 2]


def pack(src: bytes, dst: bytes, sport: int, dport: int) -> Packed:
    """Pack one direction of a 5-tuple (see :data:`Packed`)."""
    return src + dst + bytes((sport >> 8, sport & 0xFF, dport >> 8, dport & 0xFF))


def merge_row(mine: list[int], row: list[int]) -> None:
    """Add counter ``row`` into ``mine`` (same 5-tuple direction)."""
    mine[PACKETS] += row[PACKETS]
    mine[BYTES] += row[BYTES]
    if row[FIRST] >= 0 and (mine[FIRST] < 0 or row[FIRST] < mine[FIRST]):
        mine[FIRST] = row[FIRST]
    mine[LAST] = max(mine[LAST], row[LAST])
    mine[OPENS] += row[OPENS]
    mine[ACCEPTS] += row[ACCEPTS]


@dataclass
class TrafficTable:
    """Counter rows per IP protocol and direction of each 5-tuple: what the decoder learned, mergeable."""

    rows: dict[int, dict[Packed, list[int]]] = field(default_factory=dict)

    def adopt(self, proto: int, rows: dict[Packed, list[int]]) -> None:
        """Merge a decoder's rows for ``proto``; takes ownership of ``rows`` (no copy when new)."""
        mine = self.rows.get(proto)
        if not mine:
            self.rows[proto] = rows
            return
        for key, row in rows.items():
            have = mine.get(key)
            if have is None:
                mine[key] = row
            else:
                merge_row(have, row)


Listening = set[tuple[bytes, int, int]]
"""(address, IP protocol, port) of servers seen accepting a handshake."""
KnownListening = AbstractSet[tuple[bytes, int, int]]
"""Listening sockets learnt elsewhere (a pod's socket tables), as a set or frozenset."""
KnownConnections = AbstractSet[tuple[int, Packed]]
"""Connections learnt elsewhere (a pod's socket tables): (IP protocol, packed client -> server key)."""


def listening_ports(table: TrafficTable) -> Listening:
    """(address, protocol, port) of every server seen accepting a TCP or SCTP handshake."""
    found: Listening = set()
    for proto in (IPPROTO_TCP, IPPROTO_SCTP):
        for key, row in table.rows.get(proto, {}).items():
            if row[OPENS] or row[ACCEPTS]:
                src, dst, sport, dport = split(key)
                if row[OPENS]:
                    found.add((dst, proto, dport))
                if row[ACCEPTS]:
                    found.add((src, proto, sport))
    return found


class _LazyListening:
    """:func:`listening_ports`, computed on first use (most captures never need it), plus what the caller knows.

    ``known`` holds listening sockets learnt elsewhere (a pod's socket tables), for any protocol.
    """

    def __init__(self, table: TrafficTable, known: KnownListening = frozenset()) -> None:
        self.table = table
        self.known = known
        self.found: Listening | None = None

    def __contains__(self, item: tuple[bytes, int, int]) -> bool:
        if item in self.known:
            return True
        if item[1] == IPPROTO_UDP:
            return False  # handshakes are TCP and SCTP only
        if self.found is None:
            self.found = listening_ports(self.table)
        return item in self.found


def _port_score(address: bytes, proto: int, port: int, listening: _LazyListening) -> int:
    """How server-like an (address, port) end looks; higher is more server-like."""
    if (address, proto, port) in listening:
        return 3
    if port in CLIENT_PORTS:
        return 0
    if port in WELL_KNOWN_PORTS or port < 1024:
        return 2
    if port >= EPHEMERAL_LOW:
        return 0
    return 1


def _first(row: list[int] | None) -> int:
    """First-seen time for ordering; rows without a valid time sort last."""
    return row[FIRST] if row is not None and row[FIRST] >= 0 else 1 << 63


def _client_is_sender(proto: int, key: Packed, a: bytes, b: bytes, pa: int, pb: int, row: list[int],
                      back: list[int] | None, listening: _LazyListening,
                      known: KnownConnections) -> tuple[bool, Direction]:
    """Decide whether ``a``, the sender of ``row`` (``key``: a:pa -> b:pb), is the client, and on what evidence."""
    if proto == IPPROTO_TCP or proto == IPPROTO_SCTP:
        if row[OPENS] or (back is not None and back[ACCEPTS]):
            return True, Direction.HANDSHAKE
        if row[ACCEPTS] or (back is not None and back[OPENS]):
            return False, Direction.HANDSHAKE
    if known:
        if (proto, key) in known:
            return True, Direction.SOCKET
        if (proto, reverse(key)) in known:
            return False, Direction.SOCKET
    score_a = _port_score(a, proto, pa, listening)
    score_b = _port_score(b, proto, pb, listening)
    if proto == IPPROTO_UDP:
        if back is None:
            if score_a == score_b:
                return True, Direction.GUESS  # one-way datagrams: the sender is the client
            return score_b > score_a, Direction.GUESS
        sender_first = _first(row) <= _first(back)
        if score_a == score_b or sender_first == (score_b > score_a):
            # The first sender asked and the other side answered: a request/response pair.
            return sender_first, Direction.HANDSHAKE
        return score_b > score_a, Direction.GUESS
    if score_a == score_b:
        return pb < pa or (pa == pb and a <= b), Direction.GUESS  # the lower port is the server's
    return score_b > score_a, Direction.GUESS


@dataclass
class FlowSum:
    """Counters of one flow while its rows are folded (times -1 until a row had a valid one)."""

    connections: int = 0
    packets: int = 0
    bytes: int = 0
    first: int = -1
    last: int = -1
    handshake: bool = False
    socket: bool = False
    """Some connection's direction came from the pod's socket tables."""

    def add(self, row: list[int] | None, back: list[int] | None = None) -> None:
        """Add the counters of one connection's rows (either direction may be missing)."""
        for r in (row, back):
            if r is None:
                continue
            self.packets += r[PACKETS]
            self.bytes += r[BYTES]
            if r[FIRST] >= 0 and (self.first < 0 or r[FIRST] < self.first):
                self.first = r[FIRST]
            if r[LAST] > self.last:
                self.last = r[LAST]


FlowKey = tuple[int, bytes, bytes, int | None, str]
"""(IP protocol, client address, server address, server port or ``None`` for ICMP, kind), addresses packed."""


def _connections(table: TrafficTable, sums: dict[FlowKey, FlowSum], known: KnownListening,
                 connections: KnownConnections) -> None:
    """Fold TCP, UDP and SCTP rows: pair both directions, orient, sum per flow."""
    listening = _LazyListening(table, known)
    for proto, rows in table.rows.items():
        if proto in ICMP_ECHO:
            continue
        pending = dict(rows)  # directions not yet folded; each pair is folded once
        for key, row in rows.items():
            if pending.pop(key, None) is None:
                continue  # folded as the back direction of an earlier key
            n = 4 if len(key) == 12 else 16
            src, dst, sport, dport = key[:n], key[n : 2 * n], key[2 * n : 2 * n + 2], key[2 * n + 2 :]
            back = pending.pop(dst + src + dport + sport, None)
            sp, dp = sport[0] << 8 | sport[1], dport[0] << 8 | dport[1]
            if (proto == IPPROTO_TCP or proto == IPPROTO_SCTP) and row[OPENS] and not row[ACCEPTS]:
                sender_is_client, direction = True, Direction.HANDSHAKE  # the common case, decided at once
            else:
                sender_is_client, direction = _client_is_sender(proto, key, src, dst, sp, dp, row, back, listening,
                                                                connections)
            flow_key = (proto, src, dst, dp, "connection") if sender_is_client else (proto, dst, src, sp, "connection")
            s = sums.get(flow_key)
            if s is None:
                s = sums[flow_key] = FlowSum()
            s.connections += 1
            if direction is Direction.HANDSHAKE:
                s.handshake = True
            elif direction is Direction.SOCKET:
                s.socket = True
            # FlowSum.add, inlined: this loop runs once per connection of a capture.
            for r in (row, back) if back is not None else (row,):
                s.packets += r[PACKETS]
                s.bytes += r[BYTES]
                if r[FIRST] >= 0 and (s.first < 0 or r[FIRST] < s.first):
                    s.first = r[FIRST]
                if r[LAST] > s.last:
                    s.last = r[LAST]


def _icmp(table: TrafficTable, sums: dict[FlowKey, FlowSum]) -> None:
    """Fold ICMP rows: echo requests and replies pair up by identifier; other messages stand alone."""
    for proto, (request, reply) in ICMP_ECHO.items():
        rows = table.rows.get(proto, {})
        for key, row in rows.items():
            src, dst, kind, ident = split(key)
            if kind == request:
                s = sums.setdefault((proto, src, dst, None, "echo"), FlowSum())
                s.connections += 1
                s.handshake = True
                s.add(row, rows.get(pack(dst, src, reply, ident)))
            elif kind == reply:
                if pack(dst, src, request, ident) in rows:
                    continue  # counted with its request
                s = sums.setdefault((proto, dst, src, None, "echo"), FlowSum())
                s.connections += 1
                s.add(row)
            else:
                name = ICMP_NAMES[proto].get(kind, f"type-{kind}")
                s = sums.setdefault((proto, src, dst, None, name), FlowSum())
                s.connections += 1
                s.handshake = True
                s.add(row)


def fold(table: TrafficTable, listening: KnownListening = frozenset(),
         connections: KnownConnections = frozenset()) -> dict[FlowKey, FlowSum]:
    """Fold a traffic table into flows, as packed keys and counters (no :class:`Flow` values, unsorted).

    For callers that only need who talked to whom over a large capture; :func:`flows` builds on it.
    ``listening`` adds (address, IP protocol, port) of sockets known to listen and ``connections`` the
    connections known with their client end (both from socket tables): they decide the direction of
    connections whose opening was not captured, ``connections`` ahead of every guess from ports.
    """
    sums: dict[FlowKey, FlowSum] = {}
    _connections(table, sums, listening, connections)
    _icmp(table, sums)
    return sums


def flows(table: TrafficTable, listening: KnownListening = frozenset(),
          connections: KnownConnections = frozenset()) -> list[Flow]:
    """Fold a traffic table into flows, sorted by protocol, server, port and client.

    Args:
        table: Counter rows per direction of each 5-tuple, as the decoder filled them.
        listening: (address, IP protocol, port) of sockets known to listen (see :func:`fold`).
        connections: (IP protocol, packed client -> server key) of known connections (see :func:`fold`).

    Returns:
        One :class:`Flow` per (protocol, client, server, server port) - or per ICMP
        (client, server, kind) - with connections counted as distinct 5-tuples.
    """
    addresses: dict[bytes, IPAddress] = {}  # a pod's own address is in every flow: convert each address once

    def address(packed: bytes) -> IPAddress:
        found = addresses.get(packed)
        if found is None:
            found = addresses[packed] = ip_address(packed)
        return found

    result = [
        Flow(
            protocol=PROTOCOLS[proto],
            src=address(client),
            dst=address(server),
            dst_port=port,
            connections=s.connections,
            packets=s.packets,
            bytes=s.bytes,
            first_seen=max(s.first, 0),
            last_seen=max(s.last, 0),
            direction=(Direction.HANDSHAKE if s.handshake else Direction.SOCKET if s.socket else Direction.GUESS),
            kind=kind,
        )
        for (proto, client, server, port, kind), s in fold(table, listening, connections).items()
    ]
    result.sort(key=Flow.order)
    return result
