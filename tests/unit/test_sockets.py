"""Socket tables -> flows, on real tables from a namespace lab and on hand-written rows.

``tests/data/sockets/lab/`` holds the tables ``tests/data/sockets/make_tables.py`` copied from
``/proc/net`` of two lab namespaces (its docstring lists the sockets it made); the expectations below
come from that list. Hand-written rows cover what the lab does not make on its own.
"""

from __future__ import annotations

import os
import shutil
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubectl_netgen.model import Direction, Flow, Protocol
from kubectl_netgen.sockets import (
    TABLES,
    Socket,
    SocketState,
    parse_table,
    socket_flows,
)
from tests import netlab
from tests.conftest import DATA, need

LAB = DATA / "sockets" / "lab"
S = SocketState

# --- helpers ---------------------------------------------------------------------------------------


def read(host: str, *moments: str, root: Path = LAB) -> list[Socket]:
    """The sockets of ``host`` at ``moments`` (default start and end); no row may be malformed."""
    sockets: list[Socket] = []
    for moment in moments or ("start", "end"):
        for table in TABLES:
            parsed = parse_table((root / host / moment / table).read_text(), table)
            assert parsed.malformed == 0, (host, moment, table)
            sockets += parsed.sockets
    return sockets


def show(socket: Socket) -> str:
    def end(ip: IPv4Address | IPv6Address, port: int) -> str:
        return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"

    return f"{socket.protocol.value} {end(socket.local, socket.local_port)} " \
           f"{end(socket.remote, socket.remote_port)} {socket.state.name}"


def shown(sockets: list[Socket]) -> list[str]:
    return sorted(show(s) for s in sockets)


def brief(flows: tuple[Flow, ...]) -> list[tuple[str, str, str, int | None, int]]:
    return [(f.protocol.value, str(f.src), str(f.dst), f.dst_port, f.connections) for f in flows]


TCP_HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
              "                                                     ")
TCP6_HEADER = ("  sl  local_address                         remote_address                        st tx_queue "
               "rx_queue tr tm->when retrnsmt   uid  timeout inode")
UDP_HEADER = ("   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode "
              "ref pointer drops            ")


def row(n: int, local: str, remote: str, state: str, inode: int = 1000) -> str:
    """A row as the kernel prints it, from hex ``ADDRESS:PORT`` fields and a hex state."""
    return (f"{n:4}: {local} {remote} {state} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 "
            f"0000000000000000 20 0 0 10 -1")


def table(header: str, *rows: str) -> str:
    return "\n".join((header, *rows)) + "\n"


def hex_address(ip: IPv4Address | IPv6Address) -> str:
    """The kernel's spelling: each 32-bit word of the network-order address printed in host (little) order."""
    packed = ip.packed
    return "".join(f"{int.from_bytes(packed[i:i + 4], 'little'):08X}" for i in range(0, len(packed), 4))


# --- the lab's real tables -------------------------------------------------------------------------

POD_START = [
    "TCP 0.0.0.0:8080 0.0.0.0:0 LISTEN",
    "TCP 10.244.1.10:40001 10.244.1.11:5432 ESTABLISHED",
    "TCP 10.244.1.10:40002 10.244.1.11:5432 ESTABLISHED",
    "TCP 10.244.1.10:8080 10.244.1.11:41001 ESTABLISHED",
    "TCP 10.244.1.10:8080 10.244.1.11:41002 ESTABLISHED",
    "TCP 10.244.1.10:9090 0.0.0.0:0 LISTEN",
    "TCP 127.0.0.1:40007 127.0.0.1:8080 ESTABLISHED",
    "TCP 127.0.0.1:8080 127.0.0.1:40007 ESTABLISHED",
    "TCP [::1]:40008 [::1]:8443 ESTABLISHED",
    "TCP [::1]:8443 [::1]:40008 ESTABLISHED",
    "TCP [::]:8443 [::]:0 LISTEN",
    "TCP [fd00:10:244::10]:40006 [fd00:10:244::11]:50051 ESTABLISHED",
    "UDP 0.0.0.0:9999 0.0.0.0:0 CLOSE",
    "UDP 10.244.1.10:40053 10.244.1.11:53 ESTABLISHED",
    "UDP [::1]:9998 [::]:0 CLOSE",
]

POD_END = sorted([
    *(s for s in POD_START if "40002" not in s and "41002" not in s),
    "TCP 10.244.1.10:40003 10.244.1.11:6379 ESTABLISHED",
    "TCP 10.244.1.10:40004 10.244.1.11:8000 TIME_WAIT",
    "TCP 10.244.1.10:8080 10.244.1.11:41002 CLOSE_WAIT",
    "TCP 10.244.1.10:9090 10.244.1.11:41003 ESTABLISHED",
    "TCP 10.244.1.10:8443 10.244.1.11:41004 ESTABLISHED",  # in tcp6, as ::ffff:10.244.1.10
    "UDP [::1]:40300 [::1]:9998 ESTABLISHED",
])

POD_FLOWS = [
    ("TCP", "10.244.1.11", "10.244.1.10", 8080, 2),
    ("TCP", "10.244.1.11", "10.244.1.10", 8443, 1),
    ("TCP", "10.244.1.11", "10.244.1.10", 9090, 1),
    ("TCP", "10.244.1.10", "10.244.1.11", 5432, 2),
    ("TCP", "10.244.1.10", "10.244.1.11", 6379, 1),
    ("TCP", "10.244.1.10", "10.244.1.11", 8000, 1),
    ("TCP", "127.0.0.1", "127.0.0.1", 8080, 1),
    ("TCP", "::1", "::1", 8443, 1),
    ("TCP", "fd00:10:244::10", "fd00:10:244::11", 50051, 1),
    ("UDP", "10.244.1.10", "10.244.1.11", 53, 1),
    ("UDP", "::1", "::1", 9998, 1),
]


def test_lab_pod_tables_parse_to_the_sockets_made() -> None:
    assert shown(read("pod", "start")) == sorted(POD_START)
    assert shown(read("pod", "end")) == POD_END


def test_lab_inodes_are_zero_only_for_time_wait() -> None:
    for socket in read("pod"):
        assert (socket.inode == 0) == (socket.state is S.TIME_WAIT), socket


def test_lab_ipv4_mapped_peer_of_a_dual_stack_listener_is_ipv4() -> None:
    parsed = parse_table((LAB / "pod" / "end" / "tcp6").read_text(), "tcp6")
    [mapped] = [s for s in parsed.sockets if s.remote_port == 41004]
    assert (mapped.local, mapped.remote) == (IPv4Address("10.244.1.10"), IPv4Address("10.244.1.11"))


def test_lab_pod_flows() -> None:
    result = socket_flows(read("pod"), seen_at=1_700_000_000_000_000_000)
    assert brief(result.flows) == POD_FLOWS
    assert result.listening == {(Protocol.TCP, 8080), (Protocol.TCP, 9090), (Protocol.TCP, 8443),
                                (Protocol.UDP, 9999), (Protocol.UDP, 9998)}
    assert result.sockets == len(POD_START) + len(POD_END)
    for flow in result.flows:
        assert (flow.packets, flow.bytes, flow.kind, flow.direction) == (0, 0, "connection", Direction.SOCKET)
        assert flow.first_seen == flow.last_seen == 1_700_000_000_000_000_000


def test_lab_start_table_alone_misses_what_opened_later() -> None:
    result = socket_flows(read("pod", "start"))
    assert brief(result.flows) == [
        ("TCP", "10.244.1.11", "10.244.1.10", 8080, 2),
        ("TCP", "10.244.1.10", "10.244.1.11", 5432, 2),
        ("TCP", "127.0.0.1", "127.0.0.1", 8080, 1),
        ("TCP", "::1", "::1", 8443, 1),
        ("TCP", "fd00:10:244::10", "fd00:10:244::11", 50051, 1),
        ("UDP", "10.244.1.10", "10.244.1.11", 53, 1),
    ]
    assert all(f.first_seen == 0 for f in result.flows)


def test_lab_peer_sees_the_same_connections_from_the_other_side() -> None:
    peer = socket_flows(read("peer"))
    assert peer.listening == {(Protocol.TCP, 5432), (Protocol.TCP, 6379), (Protocol.TCP, 8000),
                              (Protocol.TCP, 50051), (Protocol.UDP, 53)}
    # The peer's end of the TIME_WAIT connection (:8000) closed last and left its table; its UDP :53
    # socket is unconnected, so that flow is only in the pod's tables.
    pod_between_hosts = [f for f in POD_FLOWS if "127.0.0.1" not in f and "::1" not in f]
    assert brief(peer.flows) == [f for f in pod_between_hosts if f[3] not in (8000, 53)]


@pytest.mark.root
@pytest.mark.slow
def test_make_tables_records_the_committed_sockets(tmp_path: Path) -> None:
    need(os.geteuid() == 0, "needs root for network namespaces")
    for tool in ("ip", "nft"):
        need(shutil.which(tool) is not None, f"needs {tool}")
    from tests.data.sockets import make_tables

    make_tables.record(tmp_path)
    assert netlab.labs_namespaces() == [], "the lab left namespaces behind"
    for host in ("pod", "peer"):
        for moment in ("start", "end"):
            assert shown(read(host, moment, root=tmp_path)) == shown(read(host, moment)), (host, moment)


# --- hand-written rows -----------------------------------------------------------------------------

POD = "0A00F40A"  # 10.244.0.10: the word 0x0AF4000A printed in little-endian host order
POD2 = "0B00F40A"  # 10.244.0.11: a second address of the same pod
PEER = "1400F40A"  # 10.244.0.20
ANY4 = "00000000:0000"
ANY6 = "00000000000000000000000000000000:0000"


def test_ipv4_address_words_are_printed_in_host_order() -> None:
    [s] = parse_table(table(TCP_HEADER, row(0, f"{POD}:1F90", f"{PEER}:C350", "01")), "tcp").sockets
    assert s == Socket(Protocol.TCP, IPv4Address("10.244.0.10"), 8080, IPv4Address("10.244.0.20"), 50000,
                       S.ESTABLISHED, 1000)
    [lo] = parse_table(table(TCP_HEADER, row(0, "0100007F:0050", ANY4, "0A")), "tcp").sockets
    assert (lo.local, lo.local_port, lo.state) == (IPv4Address("127.0.0.1"), 80, S.LISTEN)


def test_ipv6_address_is_four_host_order_words() -> None:
    # 2001:db8::1 -> words 20010db8 00000000 00000000 00000001, each printed little-endian.
    text = table(TCP6_HEADER, row(0, "B80D0120000000000000000001000000:01BB",
                                  "B80D0120000000000000000002000000:D431", "01"))
    [s] = parse_table(text, "tcp6").sockets
    assert (s.local, s.local_port, s.remote, s.remote_port) == (
        IPv6Address("2001:db8::1"), 443, IPv6Address("2001:db8::2"), 54321)


def test_ipv4_mapped_ipv6_becomes_ipv4() -> None:
    text = table(TCP6_HEADER, row(0, f"0000000000000000FFFF0000{POD}:1F90", f"0000000000000000FFFF0000{PEER}:C350",
                                  "01"))
    [s] = parse_table(text, "udp6").sockets
    assert (s.protocol, s.local, s.remote) == (Protocol.UDP, IPv4Address("10.244.0.10"), IPv4Address("10.244.0.20"))


def test_malformed_rows_are_counted_and_skipped() -> None:
    good = row(0, f"{POD}:1F90", ANY4, "0A")
    text = table(
        TCP_HEADER,
        good,
        "",  # blank lines are not rows
        "   1: 0A00F40A:1F90 00000000:0000 0A",  # cut short
        row(2, "0A00F4ZZ:1F90", ANY4, "0A"),  # not hex
        row(3, f"{POD}:1F90:00", ANY4, "0A"),  # a port of the wrong width
        row(4, f"0000000000000000FFFF0000{POD}:1F90", ANY4, "0A"),  # an IPv6 address in the IPv4 table
        row(5, f"{POD}1F90", ANY4, "0A"),  # no port separator
        row(6, f"{POD}:1F90", ANY4, "0D"),  # no such state
        row(7, f"{POD}:1F90", ANY4, "0A").replace(" 1000 ", " inode "),  # inode not a number
        row(8, f"{POD}:1F90", ANY4, "0A").replace("   8:", "   x:"),  # no slot number
        "garbage",
    )
    parsed = parse_table(text, "tcp")
    assert parsed.malformed == 9
    assert shown(list(parsed.sockets)) == ["TCP 10.244.0.10:8080 0.0.0.0:0 LISTEN"]


def test_empty_table_and_header_only() -> None:
    assert parse_table("", "udp").sockets == () and parse_table("", "udp").malformed == 0
    assert parse_table(table(UDP_HEADER), "udp").malformed == 0


def test_unknown_table_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown socket table 'raw'"):
        parse_table("", "raw")


def test_time_wait_is_a_connection() -> None:
    sockets = parse_table(table(TCP_HEADER, row(0, f"{POD}:9C40", f"{PEER}:1538", "06", inode=0)), "tcp").sockets
    assert brief(socket_flows(sockets).flows) == [("TCP", "10.244.0.10", "10.244.0.20", 5432, 1)]


def test_a_connection_in_both_tables_counts_once() -> None:
    start = parse_table(table(TCP_HEADER, row(0, f"{POD}:9C40", f"{PEER}:1538", "01")), "tcp").sockets
    end = parse_table(table(TCP_HEADER, row(0, f"{POD}:9C40", f"{PEER}:1538", "08"),
                            row(1, f"{POD}:9C41", f"{PEER}:1538", "01", inode=1001)), "tcp").sockets
    result = socket_flows([*start, *end])
    assert brief(result.flows) == [("TCP", "10.244.0.10", "10.244.0.20", 5432, 2)]
    assert result.sockets == 3


def test_listener_on_one_address_serves_only_there() -> None:
    text = table(
        TCP_HEADER,
        row(0, f"{POD}:2382", ANY4, "0A"),  # listens on 10.244.0.10:9090 only
        row(1, f"{POD}:2382", f"{PEER}:C350", "01"),  # accepted there: the pod serves
        row(2, f"{POD2}:2382", "1E00F40A:01BB", "01"),  # 10.244.0.11:9090 -> 10.244.0.30:443: the pod is the client
    )
    result = socket_flows(parse_table(text, "tcp").sockets)
    assert brief(result.flows) == [
        ("TCP", "10.244.0.20", "10.244.0.10", 9090, 1),
        ("TCP", "10.244.0.11", "10.244.0.30", 443, 1),
    ]
    assert result.listening == {(Protocol.TCP, 9090)}


def test_wildcard_listener_serves_every_address_of_either_family() -> None:
    tcp6 = parse_table(table(TCP6_HEADER, row(0, f"{ANY6[:-5]}:1F90", ANY6, "0A")), "tcp6").sockets  # [::]:8080
    tcp = parse_table(table(TCP_HEADER, row(0, f"{POD2}:1F90", f"{PEER}:C350", "01"),
                            row(1, "0100007F:1F90", "0100007F:C351", "03")), "tcp").sockets
    result = socket_flows([*tcp6, *tcp])
    assert brief(result.flows) == [
        ("TCP", "10.244.0.20", "10.244.0.11", 8080, 1),
        ("TCP", "127.0.0.1", "127.0.0.1", 8080, 1),  # loopback stays; SYN_RECV counts
    ]


def test_udp_connected_sockets_client_and_server() -> None:
    text = table(
        UDP_HEADER,
        row(0, f"{POD}:9C40", "0A00600A:0035", "01"),  # connected to 10.96.0.10:53: a client
        row(1, f"{ANY4[:-5]}:1388", ANY4, "07"),  # bound 0.0.0.0:5000
        row(2, f"{POD}:1388", f"{PEER}:1770", "01"),  # connected from :5000 to 10.244.0.20:6000: the pod serves
        row(3, f"{ANY4[:-5]}:0000", ANY4, "07"),  # not even bound: nothing
    )
    result = socket_flows(parse_table(text, "udp").sockets)
    assert brief(result.flows) == [
        ("UDP", "10.244.0.10", "10.96.0.10", 53, 1),
        ("UDP", "10.244.0.20", "10.244.0.10", 5000, 1),
    ]
    assert result.listening == {(Protocol.UDP, 5000)}


def test_sockets_without_a_peer_are_no_flows() -> None:
    text = table(
        TCP_HEADER,
        row(0, f"{POD}:1F90", ANY4, "0A"),
        row(1, f"{POD}:9C40", ANY4, "07"),  # bound, never connected
        row(2, f"{POD}:9C41", f"{PEER}:0000", "02"),  # port 0: no peer
        row(3, f"{POD}:9C42", f"{PEER}:1538", "02"),  # SYN_SENT: an attempt still needs the policy
    )
    result = socket_flows(parse_table(text, "tcp").sockets)
    assert brief(result.flows) == [("TCP", "10.244.0.10", "10.244.0.20", 5432, 1)]
    assert result.sockets == 4


def test_no_sockets_no_flows() -> None:
    result = socket_flows([])
    assert (result.flows, result.listening, result.sockets) == ((), frozenset(), 0)


# --- properties ------------------------------------------------------------------------------------

addresses4 = st.ip_addresses(v=4)
addresses6 = st.ip_addresses(v=6)
ports = st.integers(0, 65535)
states = st.sampled_from(SocketState)


@given(st.data(), st.sampled_from(sorted(TABLES)))
def test_rows_printed_as_the_kernel_does_parse_back(data: st.DataObject, name: str) -> None:
    protocol, version = TABLES[name]
    addresses = addresses4 if version == 4 else addresses6
    rows = data.draw(st.lists(st.tuples(addresses, ports, addresses, ports, states, st.integers(0, 2**32)),
                              max_size=5))
    text = table(TCP_HEADER, *(row(n, f"{hex_address(la)}:{lp:04X}", f"{hex_address(ra)}:{rp:04X}",
                                   f"{state:02X}", inode)
                               for n, (la, lp, ra, rp, state, inode) in enumerate(rows)))
    parsed = parse_table(text, name)
    assert parsed.malformed == 0

    def unmapped(ip: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
        return (ip.ipv4_mapped or ip) if isinstance(ip, IPv6Address) else ip

    assert parsed.sockets == tuple(Socket(protocol, unmapped(la), lp, unmapped(ra), rp, state, inode)
                                   for la, lp, ra, rp, state, inode in rows)


@given(st.text(alphabet="0123456789ABCDEF:x \n", max_size=300), st.sampled_from(sorted(TABLES)))
def test_any_text_parses_without_raising(text: str, name: str) -> None:
    parsed = parse_table(text, name)
    rows = [line for line in text.splitlines() if line.split() and line.split()[0] != "sl"]
    assert len(parsed.sockets) + parsed.malformed == len(rows)


def test_hex_address_helper_agrees_with_the_lab() -> None:
    assert hex_address(ip_address("10.244.1.10")) == "0A01F40A"
    assert hex_address(ip_address("fd00:10:244::10")) == "100000FD000044020000000010000000"
