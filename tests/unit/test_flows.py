"""Pure flow folding: pairing directions and deciding the client, on hand-made traffic tables."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from kubectl_netgen.flows import (
    IPPROTO_ICMP,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TrafficTable,
    flows,
    pack,
    reverse,
    split,
)
from kubectl_netgen.model import Direction, Protocol

POD = ip_address("10.244.1.5").packed
SVC = ip_address("10.244.2.9").packed
EXT = ip_address("203.0.113.7").packed


def row(packets: int = 1, nbytes: int = 60, first: int = 1_000, last: int | None = None,
        opens: int = 0, accepts: int = 0) -> list[int]:
    return [packets, nbytes, first, first if last is None else last, opens, accepts]


def table(*rows: tuple[int, bytes, list[int]]) -> TrafficTable:
    t = TrafficTable()
    for proto, key, r in rows:
        t.adopt(proto, {key: r})
    return t


def test_pack_split_reverse_roundtrip() -> None:
    key = pack(POD, SVC, 40000, 8080)
    assert len(key) == 12
    assert split(key) == (POD, SVC, 40000, 8080)
    assert split(reverse(key)) == (SVC, POD, 8080, 40000)
    v6 = pack(ip_address("2001:db8::1").packed, ip_address("2001:db8::2").packed, 1, 2)
    assert len(v6) == 36 and reverse(reverse(v6)) == v6


def test_syn_sender_is_client_even_on_a_high_port() -> None:
    t = table((IPPROTO_TCP, pack(POD, SVC, 443, 50000), row(3, opens=1)),
              (IPPROTO_TCP, pack(SVC, POD, 50000, 443), row(2, accepts=1)))
    [f] = flows(t)
    assert (str(f.src), str(f.dst), f.dst_port, f.direction) == ("10.244.1.5", "10.244.2.9", 50000,
                                                                   Direction.HANDSHAKE)
    assert (f.packets, f.bytes, f.connections) == (5, 120, 1)


def test_synack_alone_makes_its_receiver_the_client() -> None:
    t = table((IPPROTO_TCP, pack(SVC, POD, 8080, 41000), row(accepts=1)))
    [f] = flows(t)
    assert (str(f.src), f.dst_port, f.direction) == ("10.244.1.5", 8080, Direction.HANDSHAKE)


def test_mid_connection_tcp_uses_a_port_seen_listening() -> None:
    # 10.244.2.9:30000 accepted a handshake elsewhere; a connection without handshake to it is a guess.
    t = table((IPPROTO_TCP, pack(EXT, SVC, 45000, 30000), row(opens=1)),
              (IPPROTO_TCP, pack(SVC, POD, 30000, 31000), row(5)))
    old = [f for f in flows(t) if str(f.src) == "10.244.1.5"]
    assert [(f.dst_port, f.direction) for f in old] == [(30000, Direction.GUESS)]


@pytest.mark.parametrize("proto", [IPPROTO_TCP, IPPROTO_UDP])
def test_known_listening_sockets_orient_connections_without_a_handshake(proto: int) -> None:
    # Both ports ephemeral and the peer spoke first: alone, that makes the pod's 45000 the server's port.
    t = table((proto, pack(POD, SVC, 45000, 50000), row(3, first=2_000)),
              (proto, pack(SVC, POD, 50000, 45000), row(3, first=1_000)))
    [guessed] = flows(t)
    assert (str(guessed.dst), guessed.dst_port) == ("10.244.1.5", 45000)
    [known] = flows(t, frozenset({(SVC, proto, 50000)}))  # the peer's socket table: it listens on 50000
    assert (str(known.src), str(known.dst), known.dst_port) == ("10.244.1.5", "10.244.2.9", 50000)


@pytest.mark.parametrize(("a_port", "b_port", "server_port"), [
    (5432, 51000, 5432),   # well-known beats ephemeral
    (45000, 6379, 6379),
    (20000, 33000, 20000),  # non-ephemeral beats ephemeral
    (20000, 21000, 20000),  # else the lower port
])
def test_guess_by_ports(a_port: int, b_port: int, server_port: int) -> None:
    t = table((IPPROTO_TCP, pack(POD, SVC, a_port, b_port), row()))
    [f] = flows(t)
    assert (f.dst_port, f.direction) == (server_port, Direction.GUESS)


def test_udp_request_response_first_sender_is_client() -> None:
    t = table((IPPROTO_UDP, pack(SVC, POD, 9999, 40000), row(first=2_000)),
              (IPPROTO_UDP, pack(POD, SVC, 40000, 9999), row(first=1_000)))
    [f] = flows(t)
    assert (str(f.src), f.dst_port, f.direction) == ("10.244.1.5", 9999, Direction.HANDSHAKE)


def test_udp_well_known_port_wins_over_who_spoke_first() -> None:
    # A QUIC server talking first (connection older than the capture): 443 is still the server.
    t = table((IPPROTO_UDP, pack(EXT, POD, 443, 52000), row(first=1_000)),
              (IPPROTO_UDP, pack(POD, EXT, 52000, 443), row(first=2_000)))
    [f] = flows(t)
    assert (str(f.src), f.dst_port, f.direction) == ("10.244.1.5", 443, Direction.GUESS)


def test_one_way_udp_sender_is_client_and_dhcp_client_port_never_serves() -> None:
    t = table((IPPROTO_UDP, pack(POD, EXT, 40001, 40002), row()),
              (IPPROTO_UDP, pack(SVC, POD, 67, 68), row()))
    got = {(str(f.src), str(f.dst), f.dst_port) for f in flows(t)}
    assert got == {("10.244.1.5", "203.0.113.7", 40002), ("10.244.1.5", "10.244.2.9", 67)}


def test_connections_and_times_aggregate_per_flow() -> None:
    t = table((IPPROTO_TCP, pack(POD, SVC, 40000, 80), row(first=5, last=9, opens=1)),
              (IPPROTO_TCP, pack(POD, SVC, 40001, 80), row(first=3, last=4, opens=1)),
              (IPPROTO_TCP, pack(SVC, POD, 80, 40001), row(first=-1, last=-1)))
    [f] = flows(t)
    assert (f.connections, f.packets, f.first_seen, f.last_seen) == (2, 3, 3, 9)


def test_sctp_init() -> None:
    t = table((IPPROTO_SCTP, pack(SVC, POD, 3868, 50000), row(accepts=1)))
    [f] = flows(t)
    assert (f.protocol, str(f.src), f.dst_port, f.direction) == (Protocol.SCTP, "10.244.1.5", 3868,
                                                                  Direction.HANDSHAKE)


def test_icmp_echo_pairs_by_identifier_and_errors_stand_alone() -> None:
    t = table((IPPROTO_ICMP, pack(POD, EXT, 8, 77), row(2)),
              (IPPROTO_ICMP, pack(EXT, POD, 0, 77), row(2)),
              (IPPROTO_ICMP, pack(EXT, POD, 0, 99), row(1)),  # a reply whose request was not seen
              (IPPROTO_ICMP, pack(SVC, POD, 3, 3), row(1)))
    got = sorted((f.kind, str(f.src), str(f.dst), f.packets, f.connections, f.direction.value) for f in flows(t))
    assert got == [
        ("destination-unreachable", "10.244.2.9", "10.244.1.5", 1, 1, "handshake"),
        ("echo", "10.244.1.5", "203.0.113.7", 5, 2, "handshake"),
    ]


def test_merge_of_two_tables_adds_rows() -> None:
    t = table((IPPROTO_TCP, pack(POD, SVC, 40000, 80), row(first=10, opens=1)))
    t.adopt(IPPROTO_TCP, {pack(POD, SVC, 40000, 80): row(first=5, last=20)})
    [f] = flows(t)
    assert (f.packets, f.first_seen, f.last_seen, f.connections) == (2, 5, 20, 1)


def test_sorted_and_deterministic() -> None:
    rows = [(IPPROTO_TCP, pack(POD, ip_address(f"10.244.3.{n}").packed, 40000 + n, 80), row(opens=1))
            for n in (9, 1, 5)]
    assert [str(f.dst) for f in flows(table(*rows))] == ["10.244.3.1", "10.244.3.5", "10.244.3.9"]
    assert flows(table(*rows)) == flows(table(*reversed(rows)))
