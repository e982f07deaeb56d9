"""The decoder on captures that the real tcpdump records of real traffic in a namespace lab.

The captures are recorded once per session by ``tests/data/make_captures.py`` (a lab of network
namespaces, see ``tests/netlab.py``), then ``kubectl netgen flows`` and ``dns`` must find exactly the
flows and names of the traffic that was sent. Counts that the traffic fixes (UDP datagrams, echo
requests, fragments) are derived from what was sent; a TCP connection's packets vary from run to run
(delayed ACKs), so those are counted in the file by tcpdump itself with a filter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests import netlab
from tests.conftest import need, run
from tests.data import make_captures as mc

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("root_netns")]

Flow = dict[str, Any]

FIELDS = {"protocol", "src", "dst", "dst_port", "connections", "packets", "bytes", "first_seen", "last_seen",
          "direction", "kind"}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
CLOCK_SLACK = 1.0  # seconds between the tests' clock readings and the kernel's packet time stamps


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, mc.Recording]]:
    # Session-scoped, so it checks for itself what `root_netns` checks for each test.
    need(os.geteuid() == 0, "needs root for network namespaces")
    for tool in ("ip", "tcpdump", "nft"):
        need(shutil.which(tool) is not None, f"needs {tool}")
    need(Path("/dev/net/tun").exists(), "needs /dev/net/tun (TUN/TAP devices)")
    yield mc.record_all(tmp_path_factory.mktemp("real-captures"))
    assert netlab.labs_namespaces() == [], "the lab left namespaces behind"


# --- helpers ---------------------------------------------------------------------------------------


def flows_of(path: Path) -> list[Flow]:
    result = run("flows", str(path), "-o", "json")
    assert result.exit_code == 0, result.stderr
    flows = json.loads(result.stdout)
    assert isinstance(flows, list)
    return flows


def check_shape(flows: list[Flow], recording: mc.Recording) -> None:
    """Every flow has every field, of the right type, seen within the recording's time."""
    for flow in flows:
        assert FIELDS <= set(flow), flow
        assert flow["protocol"] in ("TCP", "UDP", "SCTP", "ICMP", "ICMPv6")
        assert flow["kind"] in ("connection", "echo")
        assert flow["direction"] in ("handshake", "guess")
        for key in ("connections", "packets", "bytes"):
            assert isinstance(flow[key], int) and flow[key] > 0, flow
        seen = []
        for key in ("first_seen", "last_seen"):
            assert RFC3339_UTC.match(flow[key]), flow[key]
            seen.append(datetime.fromisoformat(flow[key].replace("Z", "+00:00")).timestamp())
        assert recording.started - CLOCK_SLACK <= seen[0] <= seen[1] <= recording.stopped + CLOCK_SLACK


def without_times(flows: list[Flow]) -> list[Flow]:
    trimmed = [{k: v for k, v in f.items() if k not in ("first_seen", "last_seen")} for f in flows]
    return sorted(trimmed, key=lambda f: (f["protocol"], f["src"], f["dst"], f["dst_port"] or 0))


def decoded(recording: mc.Recording) -> list[Flow]:
    """The flows of a recording, checked for shape, without their times, in a fixed order."""
    flows = flows_of(recording.path)
    check_shape(flows, recording)
    return without_times(flows)


def tally(path: Path, bpf: str) -> tuple[int, int]:
    """Count the packets tcpdump matches with ``bpf`` in a file, and add up their IP lengths."""
    out = subprocess.run(["tcpdump", "-nn", "-v", "-r", str(path), bpf], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    packets = len(re.findall(r"^\d\d:\d\d:\d\d\.\d+ ", out, re.MULTILINE))
    v4 = [int(n) for n in re.findall(r"\bIP \(tos [^\n]*?, length (\d+)\)", out)]
    v6 = [int(n) + 40 for n in re.findall(r"\bIP6 \([^\n]*?payload length: (\d+)\)", out)]
    assert packets == len(v4) + len(v6) > 0, out
    return packets, sum(v4) + sum(v6)


def flow(protocol: str, src: str, dst: str, dst_port: int | None, *, connections: int, packets: int,
         bytes_: int, direction: str = "handshake") -> Flow:
    return {
        "protocol": protocol, "src": src, "dst": dst, "dst_port": dst_port,
        "kind": "echo" if protocol.startswith("ICMP") else "connection",
        "connections": connections, "packets": packets, "bytes": bytes_, "direction": direction,
    }


def tcp(path: Path, src: str, dst: str, port: int, connections: int, *, bpf: str = "",
        direction: str = "handshake") -> Flow:
    packets, size = tally(path, f"{bpf} tcp port {port}".strip())
    return flow("TCP", src, dst, port, connections=connections, packets=packets, bytes_=size,
                direction=direction)


def ip_header(address: str) -> int:
    return 40 if ":" in address else 20


def udp_echo(src: str, dst: str, port: int, datagrams: int, size: int) -> Flow:
    """One socket sending ``datagrams`` datagrams of ``size`` bytes, each echoed back."""
    return flow("UDP", src, dst, port, connections=1, packets=2 * datagrams,
                bytes_=2 * datagrams * (ip_header(src) + 8 + size))


def echo(src: str, dst: str, requests: int = mc.PINGS) -> Flow:
    protocol = "ICMPv6" if ":" in src else "ICMP"
    return flow(protocol, src, dst, None, connections=1, packets=2 * requests,
                bytes_=2 * requests * (ip_header(src) + 8 + netlab.PING_BYTES))


def fragments(size: int, mtu: int, ipv6: bool) -> tuple[int, int]:
    """How many fragments, and how many IP bytes, a UDP datagram of ``size`` payload bytes makes."""
    data = size + 8
    header = 40 + 8 if ipv6 else 20  # IPv6 adds a fragment header to each fragment
    per_fragment = (mtu - header) // 8 * 8
    count = -(-data // per_fragment)
    return count, data + count * header


# --- the captures themselves -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(mc.LINK_TYPES))
def test_tcpdump_wrote_the_expected_link_type(recordings: dict[str, mc.Recording], name: str) -> None:
    recording = recordings[name]
    assert netlab.link_type(recording.path) == mc.LINK_TYPES[name]
    assert recording.captured is not None and recording.captured > 0


def test_vlan_captures_hold_tagged_frames(recordings: dict[str, mc.Recording]) -> None:
    vlan = [line for line in netlab.read_text(recordings["vlan.pcap"].path, "-e") if "IPv4" in line]
    assert vlan and all("802.1Q (0x8100), length" in line and f"vlan {mc.VLAN_ID}," in line for line in vlan)
    qinq = [line for line in netlab.read_text(recordings["qinq.pcap"].path, "-e") if "IPv4" in line]
    assert qinq and all(
        "802.1Q-QinQ (0x88a8), length" in line and f"vlan {mc.QINQ_OUTER}," in line
        and f"ethertype 802.1Q (0x8100), vlan {mc.QINQ_INNER}," in line
        for line in qinq
    )


def test_snaplen_capture_is_truncated(recordings: dict[str, mc.Recording]) -> None:
    header = recordings["snap64.pcap"].path.read_bytes()[:24]
    assert struct.unpack("<I", header[16:20])[0] == 64
    assert any("[|tcp]" in line for line in netlab.read_text(recordings["snap64.pcap"].path))


# --- flows -----------------------------------------------------------------------------------------


def test_ethernet(recordings: dict[str, mc.Recording]) -> None:
    rec = recordings["ethernet.pcap"]
    assert decoded(rec) == [
        echo(mc.A4, mc.B4),
        tcp(rec.path, mc.A4, mc.B4, mc.TCP_PORT, 3),
        udp_echo(mc.A4, mc.B4, mc.UDP_PORT, 2, 32),
    ]


@pytest.mark.parametrize("name", ["sll2.pcap", "sll.pcap"])
def test_linux_cooked(recordings: dict[str, mc.Recording], name: str) -> None:
    rec = recordings[name]
    assert decoded(rec) == [
        echo(mc.B4, mc.A4),  # b pinged a: b is the client of the echo flow
        tcp(rec.path, mc.A4, mc.B4, mc.TCP_PORT, 2),
        udp_echo(mc.A4, mc.B4, mc.UDP_PORT, 2, 32),
    ]


def test_raw_ipv4(recordings: dict[str, mc.Recording]) -> None:
    rec = recordings["raw4.pcap"]
    assert decoded(rec) == [echo(mc.TUN_A4, mc.TUN_B4), tcp(rec.path, mc.TUN_A4, mc.TUN_B4, mc.TCP_PORT, 2)]


def test_raw_ipv6(recordings: dict[str, mc.Recording]) -> None:
    rec = recordings["raw6.pcap"]
    assert decoded(rec) == [echo(mc.TUN_A6, mc.TUN_B6), tcp(rec.path, mc.TUN_A6, mc.TUN_B6, mc.TCP_PORT, 2)]


def test_vlan_8021q(recordings: dict[str, mc.Recording]) -> None:
    rec = recordings["vlan.pcap"]
    assert decoded(rec) == [
        tcp(rec.path, mc.VLAN_A, mc.VLAN_B, mc.TCP_PORT, 2, bpf=f"vlan {mc.VLAN_ID} and"),
        udp_echo(mc.VLAN_A, mc.VLAN_B, mc.UDP_PORT, 2, 32),
    ]


def test_qinq(recordings: dict[str, mc.Recording]) -> None:
    rec = recordings["qinq.pcap"]
    assert decoded(rec) == [
        echo(mc.QINQ_A, mc.QINQ_B),
        tcp(rec.path, mc.QINQ_A, mc.QINQ_B, mc.TCP_PORT, 2,
            bpf=f"vlan {mc.QINQ_OUTER} and vlan {mc.QINQ_INNER} and"),
    ]


def test_ipv6(recordings: dict[str, mc.Recording]) -> None:
    rec = recordings["ipv6.pcap"]
    assert decoded(rec) == [
        echo(mc.A6, mc.B6),
        tcp(rec.path, mc.A6, mc.B6, mc.TCP_PORT, 2),
        udp_echo(mc.A6, mc.B6, mc.UDP_PORT, 2, 32),
    ]


@pytest.mark.parametrize(("name", "src", "dst"), [("frag4.pcap", mc.A4, mc.B4), ("frag6.pcap", mc.A6, mc.B6)])
def test_fragments_count_towards_the_udp_flow(recordings: dict[str, mc.Recording], name: str, src: str,
                                              dst: str) -> None:
    count, size = fragments(mc.BIG_DATAGRAM, mc.MTU, ipv6=":" in src)
    assert count == 3
    datagrams = 2 * 2  # two requests, each echoed
    assert decoded(recordings[name]) == [
        flow("UDP", src, dst, mc.UDP_PORT, connections=1, packets=datagrams * count, bytes_=datagrams * size),
    ]


def test_capture_started_mid_connection_guesses_the_server_by_port(
        recordings: dict[str, mc.Recording]) -> None:
    rec = recordings["midstream.pcap"]
    first = netlab.read_text(rec.path, "-c1")[0]
    assert f"{mc.B4}.{mc.LONG_PORT} > {mc.A4}." in first, "the server must speak first in this capture"
    assert decoded(rec) == [tcp(rec.path, mc.A4, mc.B4, mc.LONG_PORT, 1, direction="guess")]


def test_snaplen_truncated_capture_gives_the_same_flows(recordings: dict[str, mc.Recording]) -> None:
    full, truncated = recordings["full.pcap"], recordings["snap64.pcap"]
    expected = [
        echo(mc.A4, mc.B4),
        tcp(full.path, mc.A4, mc.B4, mc.TCP_PORT, 2),
        udp_echo(mc.A4, mc.B4, mc.UDP_PORT, 2, 300),
    ]
    assert decoded(full) == expected
    assert decoded(truncated) == expected


def test_capture_on_stdin(recordings: dict[str, mc.Recording]) -> None:
    rec = recordings["stdin.pcap"]  # written by `tcpdump -w -`
    result = run("flows", "-", "-o", "json", stdin=rec.path.read_bytes())
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == flows_of(rec.path)
    assert decoded(rec) == [
        tcp(rec.path, mc.A4, mc.B4, mc.TCP_PORT, 1),
        udp_echo(mc.A4, mc.B4, mc.UDP_PORT, 1, 32),
    ]


# --- DNS -------------------------------------------------------------------------------------------


def test_dns_flows(recordings: dict[str, mc.Recording]) -> None:
    rec = recordings["dns.pcap"]
    udp_packets, udp_bytes = tally(rec.path, "udp port 53")
    assert udp_packets == 2 * len(mc.DNS_UDP_QUESTIONS)
    assert decoded(rec) == [
        tcp(rec.path, mc.A4, mc.NS4, mc.DNS_PORT, len(mc.DNS_TCP_QUESTIONS)),
        flow("UDP", mc.A4, mc.NS4, mc.DNS_PORT, connections=len(mc.DNS_UDP_QUESTIONS), packets=udp_packets,
             bytes_=udp_bytes),
    ]


def test_dns_names_follow_cname_chains_and_skip_nxdomain(recordings: dict[str, mc.Recording]) -> None:
    result = run("dns", str(recordings["dns.pcap"].path), "-o", "json")
    assert result.exit_code == 0, result.stderr
    api = ["api.edge.example.net", "api.example.com", "lb-7.cdn.example.org"]
    assert json.loads(result.stdout) == {
        "203.0.113.10": api,  # over UDP
        "2001:db8::10": api,
        "198.51.100.7": ["registry.example.org"],
        "198.51.100.8": ["registry.example.org"],
        "198.51.100.20": ["db.example.com", "db.internal.example.net"],  # over TCP
    }


def test_dns_names_ignore_other_traffic(recordings: dict[str, mc.Recording]) -> None:
    result = run("dns", str(recordings["ethernet.pcap"].path), "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {}


def test_recorded_times_are_utc(recordings: dict[str, mc.Recording]) -> None:
    # A sanity check of the clock the window checks above rely on.
    rec = recordings["ethernet.pcap"]
    first = min(f["first_seen"] for f in flows_of(rec.path))
    seen = datetime.fromisoformat(first.replace("Z", "+00:00"))
    assert seen.tzinfo == timezone.utc
    assert abs(seen.timestamp() - rec.started) < 10
