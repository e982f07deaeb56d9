"""A pod's socket tables -> flows: connections that were open before (or after) the packets we saw.

Pure: text in, values out. A capture copies ``/proc/net/{tcp,tcp6,udp,udp6}`` from the pod's network
namespace at its start and its end (see :mod:`kubectl_netgen.capturedir`). A connection opened before
tcpdump started never shows its handshake - a database or gRPC connection pool may send nothing at
all during the capture - but it stands in these tables. This module owns reading them
(:func:`parse_table`) and turning one pod's sockets into :class:`~kubectl_netgen.model.Flow` values
(:func:`socket_flows`).

The tables are parsed as Linux prints them: addresses are the raw network-order words printed as
host-order hex (so ``0100007F`` is 127.0.0.1 on a little-endian machine - every node kubectl-netgen
supports: x86-64, arm64), ports are plain hex numbers. IPv4-mapped IPv6 addresses (a dual-stack
socket's IPv4 peers, ``::ffff:a.b.c.d``) become IPv4.

Which side is the server is decided by the pod's own listening sockets, not by guessing from ports: a
connection whose local port the pod listens on (on its local address, or on the wildcard address) was
accepted by the pod; any other connection the pod opened.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from kubectl_netgen.model import Direction, Flow, IPAddress, Protocol

TABLES = {"tcp": (Protocol.TCP, 4), "tcp6": (Protocol.TCP, 6), "udp": (Protocol.UDP, 4), "udp6": (Protocol.UDP, 6)}
"""The tables this module reads, by file name under ``/proc/net``: (protocol, IP version)."""


class SocketState(enum.IntEnum):
    """A socket's state as the kernel numbers it (``include/net/tcp_states.h``); UDP uses two of them."""

    ESTABLISHED = 0x01
    """Connected (also a UDP socket after ``connect()``)."""
    SYN_SENT = 0x02
    SYN_RECV = 0x03
    FIN_WAIT1 = 0x04
    FIN_WAIT2 = 0x05
    TIME_WAIT = 0x06
    CLOSE = 0x07
    """Closed (also an unconnected, bound UDP socket)."""
    CLOSE_WAIT = 0x08
    LAST_ACK = 0x09
    LISTEN = 0x0A
    CLOSING = 0x0B
    NEW_SYN_RECV = 0x0C


@dataclass(frozen=True)
class Socket:
    """One row of a socket table."""

    protocol: Protocol
    """``TCP`` or ``UDP``."""
    local: IPAddress
    """Local address; ``0.0.0.0`` or ``::`` for a socket bound to every address."""
    local_port: int
    """Local port."""
    remote: IPAddress
    """Peer address; all zeroes when the socket has no peer (listening, or an unconnected UDP socket)."""
    remote_port: int
    """Peer port; 0 when the socket has no peer."""
    state: SocketState
    """Kernel socket state."""
    inode: int
    """Socket inode (0 for sockets no process holds any more, such as ``TIME_WAIT``)."""

    @property
    def has_peer(self) -> bool:
        """Tell whether the socket is connected (or connecting) to a remote address and port."""
        return not self.remote.is_unspecified and self.remote_port != 0


@dataclass(frozen=True)
class SocketTable:
    """What :func:`parse_table` read from one table."""

    sockets: tuple[Socket, ...]
    """Every well-formed row, in file order."""
    malformed: int
    """Rows that could not be read (skipped); the header and blank lines do not count."""


Connection = tuple[Protocol, IPAddress, int, IPAddress, int]
"""One connection of a socket table: (protocol, client address, client port, server address, server port)."""


@dataclass(frozen=True)
class SocketFlows:
    """What :func:`socket_flows` made of one pod's sockets."""

    flows: tuple[Flow, ...]
    """One flow per (protocol, client, server, server port), sorted by :meth:`Flow.order`."""
    listening: frozenset[tuple[Protocol, int]]
    """(protocol, port) of every listening TCP socket and bound, unconnected UDP socket, on any address."""
    sockets: int
    """Sockets looked at, listening ones included."""
    connections: frozenset[Connection] = frozenset()
    """Every connection, client end first: it decides the direction of the captured packets of the same
    connection, ahead of any guess from ports."""



def _address(text: str, version: int) -> IPAddress:
    """Decode a kernel-printed address: 32-bit words of network-order bytes, printed as host-order hex."""
    if len(text) != (8 if version == 4 else 32):
        raise ValueError(f"address {text!r} has the wrong length for IPv{version}")
    raw = bytes.fromhex(text)
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if version == 4:
        return IPv4Address(packed)
    v6 = IPv6Address(packed)
    return v6.ipv4_mapped or v6


_ROW = re.compile(
    r"\s*\d+:\s+(?P<local>[0-9A-F]+):(?P<lport>[0-9A-F]{4})\s+(?P<remote>[0-9A-F]+):(?P<rport>[0-9A-F]{4})"
    r"\s+(?P<state>[0-9A-F]{2})(?:\s+\S+){5}\s+(?P<inode>\d+)(?:\s|$)",
    re.IGNORECASE | re.ASCII,
)
"""A row: ``sl: local remote st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...``."""


def _row(line: str, protocol: Protocol, version: int) -> Socket:
    match = _ROW.match(line)
    if match is None:
        raise ValueError(f"not a socket table row: {line!r}")
    return Socket(protocol, _address(match["local"], version), int(match["lport"], 16),
                  _address(match["remote"], version), int(match["rport"], 16),
                  SocketState(int(match["state"], 16)), int(match["inode"]))


def parse_table(text: str, table: str) -> SocketTable:
    """Parse the text of ``/proc/net/tcp``, ``tcp6``, ``udp`` or ``udp6``.

    Args:
        text: The table as the kernel printed it (header line included or not).
        table: Which table it is: ``tcp``, ``tcp6``, ``udp`` or ``udp6`` (its file name).

    Returns:
        The sockets of every readable row and the number of unreadable ones.

    Raises:
        ValueError: ``table`` is not one of the four table names.
    """
    if table not in TABLES:
        raise ValueError(f"unknown socket table {table!r}; expected one of {', '.join(TABLES)}")
    protocol, version = TABLES[table]
    sockets: list[Socket] = []
    malformed = 0
    for line in text.splitlines():
        first = line.split(maxsplit=1)[:1]
        if not first or first[0] == "sl":
            continue
        try:
            sockets.append(_row(line, protocol, version))
        except ValueError:  # bad hex, a short row, an unknown state: skip the row, keep the table
            malformed += 1
    return SocketTable(tuple(sockets), malformed)


_LISTENERS = frozenset({(Protocol.TCP, SocketState.LISTEN), (Protocol.UDP, SocketState.CLOSE)})
_NOT_CONNECTIONS = frozenset({SocketState.LISTEN, SocketState.CLOSE})
"""TCP states that hold no connection. Not ``TIME_WAIT``: that connection really happened in the window."""


def _listens(socket: Socket) -> bool:
    return (socket.protocol, socket.state) in _LISTENERS and not socket.has_peer and socket.local_port != 0


def _is_connection(socket: Socket) -> bool:
    return socket.has_peer and (socket.protocol is Protocol.UDP or socket.state not in _NOT_CONNECTIONS)


def socket_flows(sockets: Iterable[Socket], *, seen_at: int = 0) -> SocketFlows:
    """Turn the sockets of one pod (its start and end tables together) into flows.

    The pod is the server of a connection when it listens on the connection's local port, on that
    local address or on the wildcard address (``0.0.0.0`` and ``::`` count as every address of either
    family: a dual-stack ``::`` listener also accepts IPv4); otherwise it is the client. TCP
    connections in every state but ``LISTEN`` and ``CLOSE`` count - ``SYN_SENT`` (an attempt, which a
    policy must allow for it to succeed) and ``TIME_WAIT`` (a connection that closed inside the window)
    included - and so do connected UDP sockets. Loopback connections stay: identity resolution ignores
    loopback peers later, and a pod talking to itself has both ends in its tables, which count as one.

    Args:
        sockets: Parsed rows of the pod's tables; the same connection may appear in several.
        seen_at: When the tables were read, nanoseconds since the Unix epoch (0 when unknown); every
            flow's ``first_seen`` and ``last_seen``.

    Returns:
        Flows with ``connections`` counted as distinct (client, client port, server, server port) -
        so a connection present at the start and at the end counts once - no packets or bytes, and
        :attr:`Direction.SOCKET`; the listening ports; the number of sockets looked at.
    """
    rows = tuple(sockets)
    listeners = {(s.protocol, None if s.local.is_unspecified else s.local, s.local_port) for s in rows if _listens(s)}
    connections: dict[tuple[Protocol, IPAddress, IPAddress, int], set[int]] = {}
    ends: set[Connection] = set()
    for s in rows:
        if not _is_connection(s):
            continue
        server = (s.protocol, s.local, s.local_port) in listeners or (s.protocol, None, s.local_port) in listeners
        if server:
            key, client_port = (s.protocol, s.remote, s.local, s.local_port), s.remote_port
        else:
            key, client_port = (s.protocol, s.local, s.remote, s.remote_port), s.local_port
        connections.setdefault(key, set()).add(client_port)
        ends.add((key[0], key[1], client_port, key[2], key[3]))
    flows = sorted(
        (Flow(protocol=protocol, src=client, dst=server, dst_port=port, connections=len(client_ports), packets=0,
              bytes=0, first_seen=seen_at, last_seen=seen_at, direction=Direction.SOCKET, kind="connection")
         for (protocol, client, server, port), client_ports in connections.items()),
        key=Flow.order,
    )
    return SocketFlows(tuple(flows), frozenset((p, port) for p, _, port in listeners), len(rows), frozenset(ends))
