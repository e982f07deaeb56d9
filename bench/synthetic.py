"""Write large synthetic captures for the benchmarks.

The traffic mimics what ``kubectl netgen capture`` records on a busy pod:
many short TCP connections (handshake, data, FIN), long-lived connections
that only show data, UDP request/response pairs and DNS lookups with real
DNS wire messages. Frames are cut at a header-sized snap length, as in a
real netgen capture, except DNS, which is kept whole.

Two classic pcap files are written, one per link type (Ethernet and Linux
cooked v2), because libpcap - and so tcpdump and tshark - refuse a single
pcapng file whose interfaces have different link types.
"""

from __future__ import annotations

import argparse
import random
import struct
from pathlib import Path

import dns.message
import dns.rrset

SNAPLEN = 128
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL2 = 276


def _checksum_free_ipv4(src: bytes, dst: bytes, proto: int, payload_len: int, ident: int) -> bytes:
    total = 20 + payload_len
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, proto, 0, src, dst)


def _tcp(sport: int, dport: int, seq: int, ack: int, flags: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 64240, 0, 0)


def _udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


class Writer:
    """A classic little-endian microsecond pcap writer for one link type."""

    def __init__(self, path: Path, linktype: int) -> None:
        self.fh = path.open("wb")
        self.linktype = linktype
        self.fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        self.count = 0
        self.chunks: list[bytes] = []

    def frame(self, ip_packet: bytes, wire_extra: int, ts: float, keep_all: bool, outgoing: bool) -> None:
        if self.linktype == LINKTYPE_ETHERNET:
            link = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
        else:
            # SLL2: protocol, reserved, ifindex, hatype, pkttype, addrlen, addr[8]
            pkttype = 4 if outgoing else 0
            link = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, pkttype, 6, b"\x02\x00\x00\x00\x00\x01\x00\x00")
        data = link + ip_packet
        wire = len(data) + wire_extra
        if not keep_all:
            data = data[:SNAPLEN]
        sec = int(ts)
        usec = int((ts - sec) * 1_000_000)
        self.chunks.append(struct.pack("<IIII", sec, usec, len(data), wire) + data)
        self.count += 1
        if len(self.chunks) >= 4096:
            self.flush()

    def flush(self) -> None:
        self.fh.write(b"".join(self.chunks))
        self.chunks.clear()

    def close(self) -> None:
        self.flush()
        self.fh.close()


def _dns_pair(rng: random.Random, name: str, ip: str) -> tuple[bytes, bytes]:
    query = dns.message.make_query(name, "A")
    query.id = rng.randrange(65536)
    response = dns.message.make_response(query)
    cname = f"edge-{rng.randrange(10)}.cdn.example.net."
    response.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", cname))
    response.answer.append(dns.rrset.from_text(cname, 60, "IN", "A", ip))
    return query.to_wire(), response.to_wire()


def write_capture(path: Path, linktype: int, packets: int, seed: int) -> int:
    """Write about ``packets`` packets of mixed traffic; return the exact count."""
    rng = random.Random(seed)
    writer = Writer(path, linktype)
    pod = bytes([10, 244, 1, 17])
    servers = [bytes([10, 244, 2, i]) for i in range(1, 60)] + [bytes([203, 0, 113, i]) for i in range(1, 40)]
    dns_server = bytes([10, 96, 0, 10])
    server_ports = [80, 443, 5432, 6379, 8080, 9090, 3306, 50051]
    ts = 1_700_000_000.0
    ident = 0
    # Live connections: (client, server, sport, dport, seq_c, seq_s, remaining data segments, stage)
    live: list[list[object]] = []
    while writer.count < packets:
        ts += rng.random() * 0.0002
        ident += 1
        roll = rng.random()
        if roll < 0.02:
            # DNS lookup: query and answer, kept whole.
            name = f"api{rng.randrange(200)}.example.com."
            ip = bytes([198, 51, 100, rng.randrange(1, 255)])
            query, answer = _dns_pair(rng, name, ".".join(map(str, ip)))
            sport = rng.randrange(32768, 61000)
            udp = _udp(sport, 53, query)
            writer.frame(_checksum_free_ipv4(pod, dns_server, 17, len(udp), ident) + udp, 0, ts, True, True)
            udp = _udp(53, sport, answer)
            writer.frame(_checksum_free_ipv4(dns_server, pod, 17, len(udp), ident) + udp, 0, ts + 0.0004, True, False)
            continue
        if roll < 0.08:
            # Plain UDP request/response (metrics, NTP-like).
            server = rng.choice(servers)
            sport = rng.randrange(32768, 61000)
            for src, dst, sp, dp in ((pod, server, sport, 8125), (server, pod, 8125, sport)):
                udp = _udp(sp, dp, bytes(rng.randrange(20, 200)))
                writer.frame(_checksum_free_ipv4(src, dst, 17, len(udp), ident) + udp, 0, ts, False, src == pod)
            continue
        if len(live) < 300 and (not live or roll < 0.15):
            inbound = rng.random() < 0.3
            server = pod if inbound else rng.choice(servers)
            client = rng.choice(servers) if inbound else pod
            live.append([client, server, rng.randrange(32768, 61000), rng.choice(server_ports),
                         rng.randrange(1 << 32), rng.randrange(1 << 32), rng.randrange(2, 40), 0])
            continue
        conn = live[rng.randrange(len(live))]
        client, server, sport, dport, seq_c, seq_s, remaining, stage = conn
        assert isinstance(client, bytes) and isinstance(server, bytes)
        assert isinstance(sport, int) and isinstance(dport, int) and isinstance(seq_c, int)
        assert isinstance(seq_s, int) and isinstance(remaining, int) and isinstance(stage, int)
        if stage == 0:
            pkt = [(client, server, sport, dport, seq_c, 0, 0x02, 0)]
            conn[7] = 1
        elif stage == 1:
            pkt = [(server, client, dport, sport, seq_s, seq_c + 1, 0x12, 0),
                   (client, server, sport, dport, seq_c + 1, seq_s + 1, 0x10, 0)]
            conn[4], conn[5], conn[7] = seq_c + 1, seq_s + 1, 2
        elif remaining > 0:
            size = rng.choice((0, 60, 300, 1200, 1448, 1448))
            to_server = rng.random() < 0.4
            if to_server:
                pkt = [(client, server, sport, dport, seq_c, seq_s, 0x18, size)]
                conn[4] = seq_c + size
            else:
                pkt = [(server, client, dport, sport, seq_s, seq_c, 0x18, size)]
                conn[5] = seq_s + size
            conn[6] = remaining - 1
        else:
            pkt = [(client, server, sport, dport, seq_c, seq_s, 0x11, 0),
                   (server, client, dport, sport, seq_s, seq_c + 1, 0x11, 0),
                   (client, server, sport, dport, seq_c + 1, seq_s + 1, 0x10, 0)]
            live.remove(conn)
        for src, dst, sp, dp, seq, ack, flags, size in pkt:
            tcp = _tcp(sp, dp, seq, ack, flags)
            ip = _checksum_free_ipv4(src, dst, 6, len(tcp) + size, ident) + tcp
            writer.frame(ip, size, ts, False, src == pod)
    writer.close()
    return writer.count


def main() -> None:
    """Command line: write the Ethernet and SLL2 benchmark captures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--packets", type=int, default=1_000_000, help="total packets over both files")
    args = parser.parse_args()
    args.directory.mkdir(parents=True, exist_ok=True)
    eth = write_capture(args.directory / "bench-ethernet.pcap", LINKTYPE_ETHERNET, args.packets * 6 // 10, 1)
    sll2 = write_capture(args.directory / "bench-sll2.pcap", LINKTYPE_LINUX_SLL2, args.packets - eth, 2)
    print(f"wrote {eth} Ethernet and {sll2} SLL2 packets to {args.directory}")


if __name__ == "__main__":
    main()
