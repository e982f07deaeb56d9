"""The decoder against third-party captures (../shared/captures) and tcpdump's reference decodings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import run

# (protocol, client, server, port, kind, connections, packets, bytes, first_seen, last_seen, direction)
EXPECTED_FLOWS: dict[str, list[tuple[object, ...]]] = {
    "gopacket/test201-le.pcapng": [
        # DHCP offer from the server's port 67 to the client's 68: the client port never serves.
        ("UDP", "192.168.0.10", "192.168.0.1", 67, "connection", 1, 1, 328,
         "2012-06-29T07:28:25.298858Z", "2012-06-29T07:28:25.298858Z", "guess"),
        ("UDP", "0.0.0.0", "255.255.255.255", 67, "connection", 1, 2, 600,
         "2012-06-29T07:28:25.298858Z", "2012-06-29T07:28:25.298858Z", "guess"),
        # The Dropbox LAN-sync packet sits on a NULL interface of the third section.
        ("UDP", "192.168.1.139", "255.255.255.255", 17500, "connection", 1, 1, 164,
         "2012-06-29T07:28:25.301858Z", "2012-06-29T07:28:25.301858Z", "guess"),
    ],
    "packetnet/LinuxCookedCapture.pcap": [
        ("TCP", "192.168.1.102", "216.34.181.60", 443, "connection", 1, 1, 60,
         "2010-01-21T01:14:51.580894Z", "2010-01-21T01:14:51.580894Z", "handshake"),
        ("UDP", "192.168.1.102", "66.189.0.29", 53, "connection", 1, 1, 56,
         "2010-01-21T01:14:51.186493Z", "2010-01-21T01:14:51.186493Z", "guess"),
    ],
    "packetnet/LinuxCookedCapturev2.pcap": [
        ("TCP", "192.168.178.46", "192.168.178.1", 80, "connection", 1, 1, 129,
         "2023-07-22T20:17:45.531229Z", "2023-07-22T20:17:45.531229Z", "guess"),
        ("UDP", "192.168.178.26", "224.0.0.251", 5353, "connection", 1, 1, 140,
         "2023-07-22T20:17:45.570992Z", "2023-07-22T20:17:45.570992Z", "guess"),
    ],
    "pcapplusplus/many_interfaces-1.pcapng": [
        ("TCP", "192.168.1.139", "74.125.228.227", 443, "connection", 2, 32, 4749,
         "2015-08-16T19:35:27.931522Z", "2015-08-16T19:35:28.290414Z", "handshake"),
        ("UDP", "192.168.1.139", "17.253.12.253", 123, "connection", 1, 2, 152,
         "2015-08-16T19:35:26.191168Z", "2015-08-16T19:35:26.289699Z", "handshake"),
        ("UDP", "192.168.1.139", "74.125.228.227", 443, "connection", 1, 8, 7849,
         "2015-08-16T19:35:28.038904Z", "2015-08-16T19:35:28.292345Z", "handshake"),
        ("UDP", "192.168.1.139", "173.194.121.54", 443, "connection", 1, 1, 53,
         "2015-08-16T19:35:28.290642Z", "2015-08-16T19:35:28.290642Z", "guess"),
        # QUIC: the server spoke first (a connection older than the capture); port 443 decides.
        ("UDP", "192.168.1.139", "173.194.204.189", 443, "connection", 1, 3, 212,
         "2015-08-16T19:35:26.473384Z", "2015-08-16T19:35:26.728143Z", "guess"),
        ("UDP", "192.168.1.139", "192.168.1.1", 53, "connection", 7, 14, 1407,
         "2015-08-16T19:35:26.191167Z", "2015-08-16T19:35:27.931170Z", "handshake"),
        ("UDP", "192.168.1.139", "192.168.1.255", 17500, "connection", 1, 2, 328,
         "2015-08-16T19:35:25.701822Z", "2015-08-16T19:35:25.701855Z", "guess"),
        ("UDP", "192.168.1.139", "255.255.255.255", 17500, "connection", 1, 2, 328,
         "2015-08-16T19:35:25.701568Z", "2015-08-16T19:35:25.701607Z", "guess"),
    ],
    "pcapplusplus/nanosecs_big_endian.pcap": [
        ("TCP", "127.0.0.1", "127.0.0.1", 8000, "connection", 1, 10, 2058,
         "2025-12-22T00:05:26.167647291Z", "2025-12-22T00:05:26.168451894Z", "handshake"),
    ],
    "tcpdump/LINKTYPE_RAW_ipv4.pcap": [
        ("UDP", "192.168.1.100", "9.9.9.9", 53, "connection", 1, 1, 57,
         "2025-07-08T17:59:11.951226Z", "2025-07-08T17:59:11.951226Z", "guess"),
    ],
    "tcpdump/LINKTYPE_RAW_ipv6.pcap": [
        ("UDP", "2001:db8::1", "2620:fe::9", 53, "connection", 1, 1, 77,
         "2025-07-08T17:59:17.215270Z", "2025-07-08T17:59:17.215270Z", "guess"),
    ],
    "tcpdump/dns-badcookie.pcap": [
        ("UDP", "127.0.0.1", "127.0.0.1", 53, "connection", 2, 4, 395,
         "2019-02-13T01:16:43.306396Z", "2019-02-13T01:16:43.307171Z", "handshake"),
    ],
    "tcpdump/dns_tcp_8053.pcap": [
        ("TCP", "192.168.1.11", "209.87.249.18", 8053, "connection", 1, 11, 752,
         "2020-03-02T15:44:09.947213Z", "2020-03-02T15:44:10.381475Z", "handshake"),
    ],
    "tcpdump/dns_udp_8053.pcap": [
        ("UDP", "192.168.1.11", "209.87.249.18", 8053, "connection", 1, 2, 320,
         "2020-03-02T15:42:50.464436Z", "2020-03-02T15:42:50.613154Z", "handshake"),
    ],
    "tcpdump/empty.pcap": [],
    "tcpdump/empty.pcapng": [],
    "tcpdump/ipv4_tcp_http_xml.pcap": [
        ("TCP", "10.114.101.120", "10.21.11.94", 80, "connection", 1, 1, 645,
         "2014-03-18T20:12:03.342266Z", "2014-03-18T20:12:03.342266Z", "guess"),
    ],
    "tcpdump/ipv6-routing-header.pcap": [
        ("ICMPv6", "2200::244:212:3fff:feae:22f7", "2200::211:2:0:0:2", None, "echo", 1, 1, 88,
         "2007-01-30T16:51:32.803243Z", "2007-01-30T16:51:32.803243Z", "handshake"),
        ("ICMPv6", "2200::244:212:3fff:feae:22f7", "2200::240:2:0:0:4", None, "echo", 1, 1, 72,
         "2007-01-30T16:51:31.766766Z", "2007-01-30T16:51:31.766766Z", "handshake"),
        ("UDP", "2200::244:212:3fff:feae:22f7", "2200::211:2:0:0:2", 5642, "connection", 1, 1, 88,
         "2007-01-30T16:51:34.608086Z", "2007-01-30T16:51:34.608086Z", "guess"),
        ("UDP", "2200::244:212:3fff:feae:22f7", "2200::240:2:0:0:4", 5642, "connection", 1, 1, 72,
         "2007-01-30T16:51:33.575585Z", "2007-01-30T16:51:33.575585Z", "guess"),
    ],
    "tcpdump/tcp_rst_diag_payload-trunc.pcap": [
        ("TCP", "192.0.2.1", "192.168.0.1", 8080, "connection", 1, 1, 48,
         "2026-04-19T17:04:04.220818Z", "2026-04-19T17:04:04.220818Z", "guess"),
    ],
    "tcpdump/timestamp_invalid_nano.pcap": [
        # Packets 2 and 3 have fractions >= 10^9: counted, but they do not move the times.
        ("TCP", "131.155.215.69", "137.116.81.94", 80, "connection", 1, 3, 172,
         "2014-12-09T17:16:09.999999999Z", "2014-12-09T17:16:09.999999999Z", "handshake"),
    ],
    "tcpdump/unsupported-link-type-160.pcap": [],
    "zeek/dns-edns-cookie.pcap": [
        ("TCP", "192.168.0.9", "208.80.154.238", 53, "connection", 2, 20, 1374,
         "2020-08-15T14:26:43.801767Z", "2020-08-15T14:26:51.633417Z", "handshake"),
    ],
    "zeek/dns-long-connection.pcap": [
        ("UDP", "192.168.170.8", "192.168.170.20", 53, "connection", 1, 22, 1744,
         "2005-03-30T08:47:50.501268Z", "2005-03-30T08:52:17.733384Z", "handshake"),
    ],
}
EXPECTED_FLOWS["gopacket/test201-be.pcapng"] = EXPECTED_FLOWS["gopacket/test201-le.pcapng"]

EXPECTED_NAMES: dict[str, dict[str, list[str]]] = {
    "zeek/dns-long-connection.pcap": {
        # MX glue (additional section), PTR, CNAME-only, empty and NXDOMAIN answers name nothing.
        "204.152.184.88": ["www.isc.org"],
        "204.152.190.12": ["www.netbsd.org"],
        "2001:4f8:0:2::d": ["www.isc.org"],
        "2001:4f8:4:7:2e0:81ff:fe52:9a6b": ["www.netbsd.org"],
    },
    "zeek/dns-edns-cookie.pcap": {"208.80.154.224": ["wikipedia.org"]},
    "pcapplusplus/many_interfaces-1.pcapng": {
        f"74.125.228.{n}": ["clients.l.google.com", "clients6.google.com"]
        for n in (224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 238)
    },
    # Port 8053 is not DNS, even though these carry DNS answers.
    "tcpdump/dns_udp_8053.pcap": {},
    "tcpdump/dns_tcp_8053.pcap": {},
    "packetnet/LinuxCookedCapturev2.pcap": {},  # mDNS on 5353
    "tcpdump/dns-badcookie.pcap": {},  # BADCOOKIE, then an SOA answer: no addresses
    "tcpdump/LINKTYPE_RAW_ipv4.pcap": {},  # a query only
}

WARNINGS = {
    "tcpdump/unsupported-link-type-160.pcap": "unsupported link type 160 (USER13)",
    "tcpdump/timestamp_invalid_nano.pcap": "2 packet(s) have an invalid timestamp",
}


def _rows(stdout: str) -> list[tuple[object, ...]]:
    return [
        (f["protocol"], f["src"], f["dst"], f["dst_port"], f["kind"], f["connections"], f["packets"], f["bytes"],
         f["first_seen"], f["last_seen"], f["direction"])
        for f in json.loads(stdout)
    ]


def test_every_shared_capture_is_covered(shared_captures: Path) -> None:
    files = {str(p.relative_to(shared_captures)) for p in shared_captures.glob("*/*.pcap*")}
    assert files == set(EXPECTED_FLOWS)


@pytest.mark.parametrize("name", sorted(EXPECTED_FLOWS))
def test_flows_field_by_field(shared_captures: Path, name: str) -> None:
    result = run("flows", shared_captures / name, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert _rows(result.stdout) == EXPECTED_FLOWS[name]
    if name in WARNINGS:
        assert WARNINGS[name] in result.stderr
        assert result.stderr.count("warning:") == 1
    else:
        assert "warning:" not in result.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_dns_answers(shared_captures: Path, name: str) -> None:
    result = run("dns", shared_captures / name, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == EXPECTED_NAMES[name]


# "IP 1.2.3.4.5 > 6.7.8.9.10:" - with -v the addresses start the next line, after the IP header details.
_TCPDUMP_LINE = re.compile(
    r"(?:IP6? |^\s+)(?P<src>[0-9a-f.:]+?)\.(?P<sport>\d+) > (?P<dst>[0-9a-f.:]+?)\.(?P<dport>\d+):", re.MULTILINE
)


@pytest.mark.parametrize("out", ["dns_udp_8053.out", "dns_tcp_8053.out", "LINKTYPE_RAW_ipv4.out",
                                 "LINKTYPE_RAW_ipv6.out", "dns-badcookie.out", "ipv4_tcp_http_xml.out",
                                 "tcp_rst_diag_payload-trunc.out"])
def test_flows_agree_with_tcpdump_reference(shared_captures: Path, out: str) -> None:
    """Every endpoint pair tcpdump printed is one of our flows, in one direction or the other."""
    text = (shared_captures / "tcpdump" / out).read_text()
    pairs = {
        frozenset({(m["src"], int(m["sport"])), (m["dst"], int(m["dport"]))})
        for m in _TCPDUMP_LINE.finditer(text)
    }
    assert pairs, f"no packets parsed from {out}"
    flows = json.loads(run("flows", shared_captures / "tcpdump" / out.replace(".out", ".pcap"), "-o", "json").stdout)
    for pair in pairs:
        (a, pa), (b, pb) = sorted(pair) if len(pair) == 2 else (next(iter(pair)),) * 2
        assert any(
            {f["src"], f["dst"]} == {a, b} and f["dst_port"] in (pa, pb) for f in flows
        ), f"{pair} from {out} is missing in {flows}"


def test_pcapng_byte_orders_agree(shared_captures: Path) -> None:
    le = run("flows", shared_captures / "gopacket/test201-le.pcapng", "-o", "json")
    be = run("flows", shared_captures / "gopacket/test201-be.pcapng", "-o", "json")
    assert le.stdout == be.stdout


def test_truncated_slice_keeps_complete_packets(shared_captures: Path, tmp_path: Path) -> None:
    data = (shared_captures / "tcpdump/dns_tcp_8053.pcap").read_bytes()[:-10]
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data)
    result = run("flows", cut, "-o", "json")
    assert result.exit_code == 0
    [flow] = json.loads(result.stdout)
    assert flow["packets"] == 10
    assert "truncated at byte" in result.stderr and "packet 11 is cut off" in result.stderr
    assert "using the 10 packets read before it" in result.stderr
    strict = run("flows", cut, "--strict", "-o", "json")
    assert strict.exit_code == 4
    assert strict.stdout == ""
    assert strict.stderr.startswith("error: ") and strict.stderr.count("\n") == 1
