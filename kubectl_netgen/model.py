"""Values shared by every layer: flows, protocols and directions.

Frozen dataclasses and enums only; no I/O. Decoders produce these, renderers
and later policy synthesis consume them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

IPAddress = IPv4Address | IPv6Address


class Protocol(str, enum.Enum):
    """Transport protocol of a flow, spelled as Kubernetes spells it where it can."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"
    ICMP = "ICMP"
    ICMPV6 = "ICMPv6"


class Direction(str, enum.Enum):
    """How the client side of a flow was decided."""

    HANDSHAKE = "handshake"
    """Seen: a TCP SYN or SYN+ACK, an SCTP INIT, an ICMP echo request, a UDP request and its reply."""
    GUESS = "guess"
    """Inferred from ports (listening, well-known, lower) because the opening was not captured."""


@dataclass(frozen=True)
class Flow:
    """Traffic from one client IP to one server IP and port, over all its connections."""

    protocol: Protocol
    """Transport protocol."""
    src: IPAddress
    """Client: the side that opened the connection (or sent the request)."""
    dst: IPAddress
    """Server: the side that accepted it."""
    dst_port: int | None
    """Server port; ``None`` for ICMP."""
    connections: int
    """Distinct connections (5-tuples; ICMP echo identifiers) seen."""
    packets: int
    """Packets in both directions."""
    bytes: int
    """IP-layer bytes on the wire in both directions (frame length minus the link header)."""
    first_seen: int
    """First packet, nanoseconds since the Unix epoch (UTC); 0 when no packet had a valid time."""
    last_seen: int
    """Last packet, nanoseconds since the Unix epoch (UTC); 0 when no packet had a valid time."""
    direction: Direction
    """Whether the client side was seen opening the flow or guessed."""
    kind: str = "connection"
    """``connection`` for TCP/UDP/SCTP, ``echo`` for ICMP echo, else the ICMP message name."""
