"""Reading is streaming: memory grows with distinct flows, never with the capture's length."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

from kubectl_netgen.flows import flows
from kubectl_netgen.pcap import Scanner


def _packet(n: int) -> bytes:
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    tcp = struct.pack("!HHIIBBHHH", 40000 + n % 8, 443, n, 0, 0x50, 0x18, 1000, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + 1000, n & 0xFFFF, 0x4000, 64, 6, 0,
                     bytes([10, 244, 0, 1]), bytes([203, 0, 113, 9]))
    return eth + ip + tcp


class _Capture:
    """A pcap of ``count`` packets produced on the fly, so the test itself holds no big buffer."""

    def __init__(self, count: int) -> None:
        self.head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 96, 1)
        self.record = [struct.pack("<IIII", 1_700_000_000 + n, 0, 54, 1054) + _packet(n) for n in range(8)]
        self.left = count
        self.pending = self.head

    def read(self, size: int = -1, /) -> bytes:
        while len(self.pending) < size and self.left:
            batch = min(self.left, 4096)
            self.pending += b"".join(self.record[i % 8] for i in range(batch))
            self.left -= batch
        data, self.pending = self.pending[:size], self.pending[size:]
        return data


def _peak(count: int) -> tuple[int, int]:
    scanner = Scanner()
    tracemalloc.start()
    try:
        report = scanner.scan(_Capture(count), "synthetic")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.packets == count
    [flow] = flows(scanner.table)
    assert (flow.packets, flow.connections, flow.dst_port) == (count, 8, 443)
    return peak, report.packets


@pytest.mark.slow
def test_memory_does_not_grow_with_packets() -> None:
    # Both captures are several read buffers long (~70 bytes a record, 1 MiB a read).
    small, _ = _peak(40_000)
    large, _ = _peak(200_000)
    # Five times the packets (11 MB more input), the same 8 connections: the peak is a few read
    # buffers whichever way reads happen to align, never the packets.
    assert large < small + 2 * 1024 * 1024, (small, large)
