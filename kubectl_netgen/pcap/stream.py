"""Byte streams under the capture readers: sniffing a prefix back, and gzip that keeps what it can.

Python's own gzip reader drops everything it decompressed in a read that then meets damage; for a
capture, that loses up to a buffer of whole packets. :class:`Gunzip` inflates members itself so
the readers get every good byte first, and the damage after.
"""

from __future__ import annotations

import struct
import zlib
from typing import Protocol

CHUNK = 1 << 20
"""Bytes read at a time: large enough to amortise reads, small enough to keep memory flat."""


class Readable(Protocol):
    """A binary stream: a file, stdin's buffer, a gzip stream."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes; ``b""`` at the end."""
        ...


class Prefixed:
    """A stream that first gives back bytes already read from it (for format sniffing)."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        """Give back ``head`` first, then the rest of ``rest``."""
        self.head = head
        self.rest = rest

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` bytes (all with -1); ``b""`` at the end."""
        if self.head:
            if size < 0 or size >= len(self.head):
                data, self.head = self.head, b""
                more = self.rest.read(-1 if size < 0 else size - len(data))
                return data + more
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.rest.read(size)


class Gunzip:
    """A gzip stream decompressed as it is read, keeping every good byte before any damage.

    ``gzip.GzipFile`` drops all it decompressed in a ``read`` that then meets the end of a cut
    file or a bad CRC; for a capture that loses up to a buffer of whole packets. This inflates
    each member raw, in small steps, checks the trailer (CRC-32 and size) itself, and records
    damage in :attr:`damage` after handing out everything that decompressed.
    """

    STEP = 16 << 10
    """Compressed bytes inflated at a time: what a corrupt spot can cost at most."""

    def __init__(self, raw: Readable) -> None:
        """Decompress ``raw``, a stream positioned at a gzip header."""
        self.raw = raw
        self.pending = b""
        self.out = bytearray()
        self.inflate: zlib._Decompress | None = None
        self.crc = 0
        self.size = 0
        self.members = 0
        self.done = False
        self.damage: str | None = None

    def read(self, size: int = -1, /) -> bytes:
        """Read up to ``size`` decompressed bytes (all with -1); ``b""`` at the end or at damage."""
        while not self.done and (size < 0 or len(self.out) < size):
            self._step()
        size = len(self.out) if size < 0 else min(size, len(self.out))
        data = bytes(self.out[:size])
        del self.out[:size]
        return data

    def _fill(self, n: int) -> bool:
        while len(self.pending) < n:
            more = self.raw.read(max(CHUNK, n - len(self.pending)))
            if not more:
                return False
            self.pending += more
        return True

    def _fail(self, damage: str) -> None:
        self.damage = damage
        self.done = True

    def _step(self) -> None:
        if self.inflate is None:
            self._header()
            return
        if not self.pending and not self._fill(1):
            self._fail("the gzip stream ends early (truncated .gz file)")
            return
        step, self.pending = self.pending[: self.STEP], self.pending[self.STEP :]
        try:
            data = self.inflate.decompress(step)
        except zlib.error as e:
            self._fail(f"corrupt gzip data ({e})")
            return
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self.out += data
        if self.inflate.eof:
            self.pending = self.inflate.unused_data + self.pending
            self.inflate = None
            if not self._fill(8):
                self._fail("the gzip stream ends early (its trailer is cut off)")
                return
            crc, size = struct.unpack_from("<II", self.pending)
            self.pending = self.pending[8:]
            if crc != self.crc or size != self.size & 0xFFFFFFFF:
                self._fail("corrupt gzip data (CRC or length check failed)")

    def _header(self) -> None:
        if not self._fill(10):
            if self.members and not self.pending.strip(b"\0"):
                self.done = True  # the end, perhaps after zero padding as tape archives leave it
            elif self.members:
                self._fail("unexpected bytes after the gzip data were ignored")
            else:
                self._fail("the gzip stream ends early (truncated .gz file)")
            return
        if self.pending[:3] != b"\x1f\x8b\x08":
            if self.members and not self.pending.strip(b"\0"):
                self.done = True
            else:
                self._fail("unexpected bytes after the gzip data were ignored" if self.members
                           else "corrupt gzip header")
            return
        flags = self.pending[3]
        pos = 10
        if flags & 0x04:  # FEXTRA
            if not self._fill(pos + 2):
                self._fail("the gzip stream ends early (in its header)")
                return
            pos += 2 + int.from_bytes(self.pending[pos : pos + 2], "little")
        for bit in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated
            if flags & bit:
                while (end := self.pending.find(b"\0", pos)) < 0:
                    if not self._fill(len(self.pending) + 1):
                        self._fail("the gzip stream ends early (in its header)")
                        return
                pos = end + 1
        if flags & 0x02:  # FHCRC
            pos += 2
        if not self._fill(pos):
            self._fail("the gzip stream ends early (in its header)")
            return
        self.pending = self.pending[pos:]
        self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self.crc = self.size = 0
        self.members += 1


def read_exactly(stream: Readable, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at the end of ``stream``."""
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data
