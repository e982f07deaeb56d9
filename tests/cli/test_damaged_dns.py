"""Names from damaged captures: a DNS answer cut by a short snapshot length still names what it holds whole."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import dns.message
import dns.rrset

from tests.cli.test_generate_scenarios import _ip
from tests.conftest import run


def _response(*addresses: str) -> bytes:
    query = dns.message.make_query("api.example.com", "A", id=4242)
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("api.example.com.", 30, "IN", "A", *addresses))
    return response.to_wire()


def _pcap(path: Path, frames: list[bytes], snaplen: int) -> Path:
    """A classic pcap whose records keep at most ``snaplen`` bytes of each frame, as ``tcpdump -s`` does."""
    records = b"".join(struct.pack("<IIII", 1_700_000_000 + n, 0, min(len(f), snaplen), len(f)) + f[:snaplen]
                       for n, f in enumerate(frames))
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1) + records)
    return path


def _datagram(payload: bytes) -> bytes:
    return _ip("10.96.0.10", "10.244.1.10", 17, struct.pack("!HHHH", 53, 41053, 8 + len(payload), 0) + payload)


def test_answers_wholly_inside_a_cut_message_are_read(tmp_path: Path) -> None:
    wire = _response("203.0.113.10", "203.0.113.11", "203.0.113.12")
    frame = _datagram(wire)
    # Ethernet 14 + IPv4 20 + UDP 8, then the message cut in the middle of its third answer
    pcap = _pcap(tmp_path / "cut.pcap", [frame], 14 + 20 + 8 + len(wire) - 6)
    result = run("dns", pcap, "-o", "json")
    assert result.exit_code == 0, result.stderr
    in_wire_order = [r.address for r in dns.message.from_wire(wire).answer[0]]
    assert json.loads(result.stdout) == {ip: ["api.example.com"] for ip in sorted(in_wire_order[:2])}


def test_a_message_cut_before_any_whole_answer_names_nothing(tmp_path: Path) -> None:
    wire = _response("203.0.113.10")
    pcap = _pcap(tmp_path / "cut.pcap", [_datagram(wire)], 14 + 20 + 8 + len(wire) - 2)
    result = run("dns", pcap, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {}
