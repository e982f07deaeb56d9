"""The capture container's real program, tcpdump and filters, on real traffic in a namespace lab.

``capture`` runs :func:`kubectl_netgen.capturing.plan.container_command` in an ephemeral container. Here
that exact command runs with ``sh`` inside a lab host namespace (``tests/netlab.py``: veth pairs on a
bridge, no route out of the lab, only pod and documentation addresses), while the host sends a non-DNS UDP
request, opens a TCP connection and asks a DNS question. Its log stream is decoded with the plugin's own
:class:`~kubectl_netgen.capturing.stream.StreamDecoder` and each tcpdump's pcap read back with
``kubectl netgen flows``: the headers capture must hold the UDP and TCP flows and no DNS, the DNS capture
the lookup. A filter that lost a protocol (say ``udp`` dropped from ``HEADERS_FILTER``) fails here, which
no test of hand-packed pcaps can notice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from kubectl_netgen.capturing import plan
from kubectl_netgen.capturing.stream import StreamDecoder
from tests import netlab
from tests.conftest import run

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.usefixtures("root_netns")]

POD, PEER, EXTERNAL = "10.244.1.10", "10.244.1.20", "192.0.2.7"
DURATION = 4
"""Seconds each tcpdump runs; the traffic takes well under one."""


def _flows(path: Path) -> list[dict[str, Any]]:
    result = run("flows", str(path), "-o", "json")
    assert result.exit_code == 0, result.stderr
    flows = json.loads(result.stdout)
    assert isinstance(flows, list)
    return flows


def _keys(flows: list[dict[str, Any]]) -> set[tuple[str, str, str, int | None]]:
    return {(f["protocol"], f["src"], f["dst"], f["dst_port"]) for f in flows}


def _wait_listening(proc: netlab.Proc, count: int, timeout: float = 10.0) -> None:
    """Wait until ``count`` tcpdumps said on stderr that they listen."""
    deadline = time.monotonic() + timeout
    while sum("listening on" in line for line in list(proc.errors)) < count:
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise netlab.LabError(f"the capture's tcpdumps did not start: {proc.describe()}")
        time.sleep(0.02)


def test_the_capture_command_records_udp_tcp_and_dns(tmp_path: Path) -> None:
    settings = plan.Settings(DURATION)
    command = plan.container_command(settings)
    with netlab.Lab(subnet6=None) as lab:
        pod = lab.add_host("pod", ipv4=POD)
        peer = lab.add_host("peer", ipv4=PEER)
        # The "external" host is an address of the peer that the pod reaches through it.
        lab.ip(peer, "addr", "add", f"{EXTERNAL}/32", "dev", "eth0")
        lab.ip(pod, "route", "add", f"{EXTERNAL}/32", "via", PEER)
        udp_server = lab.udp_server(peer, 5000, datagrams=1, bind="0.0.0.0")
        tcp_server = lab.tcp_server(peer, 8080, connections=1, bind="0.0.0.0")
        dns_server = lab.dns_server(peer, {"A": {"svc.example.com.": [EXTERNAL]}}, queries=1)

        capture = lab.spawn(pod, *command, name="capture container")
        _wait_listening(capture, len(settings.streams))
        started = time.monotonic()
        assert lab.udp_client(pod, EXTERNAL, 5000, count=1) == ["got 32"]
        assert lab.tcp_client(pod, PEER, 8080, count=1) == ["got 4"]
        [answer] = lab.dns_lookups(pod, PEER, [("svc.example.com.", "A")])
        assert answer.records == (EXTERNAL,), answer
        sent_within = time.monotonic() - started
        assert sent_within < DURATION - 1, f"the traffic took {sent_within:.1f}s, too close to the capture's end"
        for server in (udp_server, tcp_server, dns_server):
            server.wait()
        capture.wait(timeout=DURATION + 10)

    pcaps: dict[str, bytearray] = {}
    decoder = StreamDecoder(lambda channel, data: pcaps.setdefault(channel, bytearray()).extend(data))
    # The log API merges the container's stdout and stderr; their order does not matter to the decoder.
    decoder.feed("".join(f"{line}\n" for line in [*capture.lines, *capture.errors]).encode())
    decoder.finish()
    assert decoder.problems() == [], decoder.messages
    assert set(pcaps) == set(settings.streams) == {"H", "U", "V", "D"}
    for channel, data in pcaps.items():
        (tmp_path / f"{channel}.pcap").write_bytes(bytes(data))

    headers = _keys(_flows(tmp_path / "H.pcap")) | _keys(_flows(tmp_path / "U.pcap"))
    assert ("UDP", POD, EXTERNAL, 5000) in headers, f"the headers captures lost the UDP request: {headers}"
    assert ("TCP", POD, PEER, 8080) in headers, f"the headers captures lost the TCP connection: {headers}"
    assert not {k for k in headers if k[3] == 53}, f"DNS belongs to the other capture: {headers}"

    dns = _keys(_flows(tmp_path / "D.pcap"))
    assert dns == {("UDP", POD, PEER, 53)}, f"the DNS capture holds: {dns}"
    assert netlab.labs_namespaces() == [], "the lab left namespaces behind"


SECRET = b"password=hunter2"
_SEND_SECRET = r"""
import socket, sys
host, port, closed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
payload = b"GET password=hunter2 " * 4
with socket.socket(family, socket.SOCK_DGRAM) as s:
    s.settimeout(2)
    s.sendto(payload, (host, port))
    print("got", len(s.recvfrom(4096)[0]))
    s.sendto(payload, (host, closed))  # no one listens: the peer answers ICMP port unreachable, quoting it
    try:
        s.recvfrom(4096)
    except (ConnectionRefusedError, socket.timeout):
        print("refused")
"""


def test_no_byte_of_a_datagram_payload_is_kept(tmp_path: Path) -> None:
    """A datagram with a secret (and the ICMP error that quotes it) leaves no byte of it in any pcap or in
    the log stream, over IPv4 and IPv6, while its flow is still decoded from the headers kept."""
    settings = plan.Settings(DURATION)
    with netlab.Lab() as lab:
        pod = lab.add_host("pod", ipv4=POD, ipv6="fd00:10:244::10")
        peer = lab.add_host("peer", ipv4=PEER, ipv6="fd00:10:244::20")
        servers = [lab.udp_server(peer, 5000, datagrams=2, bind="::")]
        capture = lab.spawn(pod, *plan.container_command(settings), name="capture container")
        _wait_listening(capture, len(settings.streams))
        for address in (PEER, "fd00:10:244::20"):
            assert lab.python(pod, _SEND_SECRET, address, 5000, 5001, timeout=10) == ["got 84", "refused"]
        for server in servers:
            server.wait()
        capture.wait(timeout=DURATION + 10)

    stream = "".join(f"{line}\n" for line in [*capture.lines, *capture.errors]).encode()
    pcaps: dict[str, bytearray] = {}
    decoder = StreamDecoder(lambda channel, data: pcaps.setdefault(channel, bytearray()).extend(data))
    decoder.feed(stream)
    decoder.finish()
    assert decoder.problems() == [], decoder.messages
    for channel, data in pcaps.items():
        assert b"hunter2" not in data and b"GET " not in data, f"capture {channel} kept payload bytes"
        (tmp_path / f"{channel}.pcap").write_bytes(bytes(data))
    assert b"hunter2" not in stream
    v4, v6 = _flows(tmp_path / "U.pcap"), _flows(tmp_path / "V.pcap")
    assert ("UDP", POD, PEER, 5000) in _keys(v4), v4
    assert ("UDP", "fd00:10:244::10", "fd00:10:244::20", 5000) in _keys(v6), v6
    assert {f["protocol"] for f in v4} >= {"UDP", "ICMP"}, "the ICMP error is kept, cut after its header"
    assert {f["protocol"] for f in v6} >= {"UDP", "ICMPv6"}
