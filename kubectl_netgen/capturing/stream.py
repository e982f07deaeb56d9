"""The capture container's log stream -> pcap bytes and socket tables, verified; pcap parts -> one capture.

What the container (:data:`~.plan.SCRIPT`) writes, one line each, on stdout::

    NETGEN 1 begin
    S start tcp -                 a socket table follows (present even when empty)
    S start tcp <base64>          its text, up to 2,720 characters of base64 a line
    H <base64>                    bytes of the headers capture (TCP/SCTP openings), whole base64 quads
    U <base64>                    bytes of the IPv4 datagram capture (UDP and ICMP, cut at their header)
    V <base64>                    bytes of the IPv6 datagram capture
    D <base64>                    bytes of the DNS capture
    H . 123456                    channel H ended; 123456 base64 characters were sent in all
    S end tcp …
    NETGEN 1 end

and on stderr ``NETGEN H exit 124`` (tcpdump's exit status; 124: ``timeout`` ended it, as intended) and
tcpdump's own messages. The log API merges both streams; lines of neither kind are kept as the container's
messages, to explain a failure. Every data line is whole base64 quads, so each decodes on its own.

:class:`StreamDecoder` takes the stream in arbitrary chunks and checks it as it goes: a channel is complete
when its end line arrived and the character count matches, and the pcap bytes are whole records
(:class:`PcapTracker`); whatever is missing is reported in words (:meth:`StreamDecoder.problems`).
"""

from __future__ import annotations

import binascii
import heapq
import re
import struct
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",  # microseconds
    b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">",  # nanoseconds
}
GLOBAL_HEADER = 24
RECORD_HEADER = 16
MAX_RECORD = 16 * 1024 * 1024
"""A record longer than this is corruption, not a packet."""
TIMEOUT_EXIT = 124
"""``timeout``'s exit status when the duration ran out: the normal end of a capture."""

CHANNEL_NAMES = {"H": "packet capture", "U": "IPv4 datagram capture", "V": "IPv6 datagram capture",
                 "D": "DNS capture"}
"""What each channel of :attr:`kubectl_netgen.capturing.plan.Settings.streams` carries, in words."""

_DROPPED = re.compile(rb"(\d+) packets? dropped by kernel")
_INFORMATIONAL = re.compile(r"^tcpdump: (listening on|data link type|verbose output suppressed)")
_PRIVILEGE = re.compile(r"Operation not permitted|Couldn't change to|You don't have permission|Permission denied|"
                        r"capabilit", re.IGNORECASE)


class PcapTracker:
    """Follows a classic pcap byte stream record by record without keeping it: packets, bytes, damage."""

    def __init__(self) -> None:
        """Expect the 24-byte global header first."""
        self.header = b""
        self.order = "<"
        self.packets = 0
        self.bytes = 0
        self.error: str | None = None
        self._pending = b""
        self._skip = 0

    @property
    def missing(self) -> int:
        """Bytes still needed to finish the last record (0 when the stream ends on a record boundary)."""
        if self._skip:
            return self._skip
        return RECORD_HEADER - len(self._pending) if self._pending and len(self.header) == GLOBAL_HEADER else 0

    def feed(self, data: bytes) -> None:
        """Account for the next bytes of the stream."""
        self.bytes += len(data)
        if self.error:
            return
        view = memoryview(data)
        if len(self.header) < GLOBAL_HEADER:
            need = GLOBAL_HEADER - len(self.header)
            self.header += bytes(view[:need])
            view = view[need:]
            if len(self.header) < GLOBAL_HEADER:
                return
            order = PCAP_MAGICS.get(self.header[:4])
            if order is None:
                self.error = f"not a pcap stream (magic {self.header[:4].hex()})"
                return
            self.order = order
        while view:
            if self._skip:
                step = min(self._skip, len(view))
                self._skip -= step
                view = view[step:]
                continue
            need = RECORD_HEADER - len(self._pending)
            self._pending += bytes(view[:need])
            view = view[need:]
            if len(self._pending) < RECORD_HEADER:
                return
            incl = struct.unpack(self.order + "I", self._pending[8:12])[0]
            self._pending = b""
            if incl > MAX_RECORD:
                self.error = f"corrupt record after packet {self.packets} (length {incl})"
                return
            self.packets += 1
            self._skip = incl


@dataclass
class Channel:
    """One tcpdump's stream within the log."""

    name: str
    tracker: PcapTracker = field(default_factory=PcapTracker)
    chars: int = 0
    """Base64 characters received."""
    declared: int | None = None
    """Characters the container said it sent (its end line), ``None`` before that line arrives."""
    exit_code: int | None = None
    dropped: int = 0
    """Packets tcpdump said the kernel dropped."""
    bad_lines: int = 0


@dataclass
class StreamDecoder:
    """Decodes the container's log stream incrementally (see the module docstring).

    Args:
        on_pcap: Receives (channel, bytes) of each pcap stream as they arrive, in order.
    """

    on_pcap: Callable[[str, bytes], None]
    begun: bool = False
    ended: bool = False
    version: str | None = None
    channels: dict[str, Channel] = field(default_factory=dict)
    tables: dict[tuple[str, str], bytearray] = field(default_factory=dict)
    """(moment, table) -> the table's text, for every table the container sent."""
    messages: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    """The last lines that were not part of the protocol (tcpdump's and the shell's messages)."""
    bad_table_lines: int = 0
    _rest: bytes = b""

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the log, in chunks of any size."""
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            self._line(line.rstrip(b"\r"))

    def finish(self) -> None:
        """Process a last line without its newline (the log ended)."""
        if self._rest:
            rest, self._rest = self._rest, b""
            self._line(rest)

    def channel(self, name: str) -> Channel:
        """The channel ``name``, created on first use."""
        if name not in self.channels:
            self.channels[name] = Channel(name)
        return self.channels[name]

    def _line(self, line: bytes) -> None:
        head, _, rest = line.partition(b" ")
        if len(head) == 1 and head.isupper() and head != b"S":
            self._data(head.decode(), rest)
        elif head == b"S":
            self._table(rest)
        elif head == b"NETGEN":
            self._control(rest.decode("ascii", "replace").split())
        elif line:
            text = line.decode("utf-8", "replace")
            self.messages.append(text)
            dropped = _DROPPED.search(line)
            if dropped and self.channels:
                # tcpdump prints its statistics as it ends; attribute them to a channel still open.
                open_ = [c for c in self.channels.values() if c.exit_code is None] or list(self.channels.values())
                open_[0].dropped += int(dropped.group(1))

    def _data(self, name: str, payload: bytes) -> None:
        channel = self.channel(name)
        if payload.startswith(b". "):
            try:
                channel.declared = int(payload[2:])
            except ValueError:
                channel.bad_lines += 1
            return
        if len(payload) % 4:
            channel.bad_lines += 1
            return
        try:
            data = binascii.a2b_base64(payload)
        except binascii.Error:
            channel.bad_lines += 1
            return
        channel.chars += len(payload)
        channel.tracker.feed(data)
        self.on_pcap(name, data)

    def _table(self, rest: bytes) -> None:
        parts = rest.split(b" ", 2)
        if len(parts) != 3:
            self.bad_table_lines += 1
            return
        key = (parts[0].decode("ascii", "replace"), parts[1].decode("ascii", "replace"))
        text = self.tables.setdefault(key, bytearray())
        if parts[2] == b"-":
            return
        try:
            text += binascii.a2b_base64(parts[2])
        except binascii.Error:
            self.bad_table_lines += 1

    def _control(self, words: list[str]) -> None:
        if len(words) == 2 and words[1] == "begin":
            self.begun, self.version = True, words[0]
        elif len(words) == 2 and words[1] == "end":
            self.ended = True
        elif len(words) == 3 and words[1] == "exit" and words[2].isdigit():
            self.channel(words[0]).exit_code = int(words[2])

    @property
    def packets(self) -> int:
        """Packets received so far, over every channel."""
        return sum(c.tracker.packets for c in self.channels.values())

    @property
    def bytes(self) -> int:
        """Capture bytes received so far, over every channel."""
        return sum(c.tracker.bytes for c in self.channels.values())

    def problems(self) -> list[str]:
        """What is missing or wrong in the stream received so far, one phrase each (empty: complete)."""
        if not self.begun:
            if self.channels or self.tables:
                return ["the start of the stream is missing (the log rotated before it was read)"]
            return ["the container sent no capture stream"]
        found = []
        failed: dict[int, list[str]] = {}
        for name in sorted(self.channels):
            c = self.channels[name]
            if c.exit_code not in (None, 0, TIMEOUT_EXIT):
                failed.setdefault(c.exit_code, []).append(CHANNEL_NAMES.get(name, f"capture {name}"))
        error = self.tcpdump_error()
        for code, whats in sorted(failed.items()):
            found.append(f"tcpdump ({', '.join(whats)}) exited with status {code}" + (f": {error}" if error else ""))
        for name in sorted(self.channels):
            c = self.channels[name]
            what = CHANNEL_NAMES.get(name, f"capture {name}")
            if c.tracker.error:
                found.append(f"{what}: {c.tracker.error}")
            if c.declared is None:
                found.append(f"{what} ended early (no end marker): {c.tracker.packets} packets kept")
            elif c.declared != c.chars:
                found.append(f"{what}: {c.chars} of {c.declared} base64 characters arrived (lost in the log)")
            if c.tracker.missing:
                found.append(f"{what}: the last packet is cut ({c.tracker.missing} bytes missing), dropped")
            if c.bad_lines:
                found.append(f"{what}: {c.bad_lines} corrupt line(s) skipped")
        if self.bad_table_lines:
            found.append(f"{self.bad_table_lines} corrupt socket-table line(s) skipped")
        if not self.ended and not any("ended early" in f for f in found):
            found.append("the container's stream ended before its end marker")
        return found

    def tcpdump_error(self) -> str | None:
        """The last error line tcpdump wrote (``tcpdump: can't parse filter expression: ...``), if any.

        tcpdump's messages are not tagged with their channel; when several tcpdumps fail, they fail alike
        (the same filter, the same privileges), so the last line speaks for all.
        """
        for text in reversed(self.messages):
            if text.startswith("tcpdump: ") and not _INFORMATIONAL.search(text):
                return text
        return None

    def privilege_failure(self) -> str | None:
        """The error line of a tcpdump that exited for lack of a privilege (a capability, a user switch)."""
        if not any(c.exit_code not in (None, 0, TIMEOUT_EXIT) for c in self.channels.values()):
            return None
        denied = [text for text in self.messages if _PRIVILEGE.search(text)]
        if not denied:
            return None
        # tcpdump puts the system's reason on a line of its own, "(socket: Operation not permitted)", and
        # the lines of several tcpdumps interleave: name tcpdump's line, then the reason.
        said = [text for text in denied if text.startswith("tcpdump: ")]
        reasons = [text for text in denied if text.startswith("(")]
        return " ".join(([said[-1]] if said else []) + reasons[-1:]) or denied[-1]

    @property
    def dropped(self) -> int:
        """Packets tcpdump reported the kernel dropped."""
        return sum(c.dropped for c in self.channels.values())


# ----------------------------------------------------------------------------- merging the parts


@dataclass(frozen=True)
class MergeReport:
    """What merging pcap parts wrote."""

    packets: int
    cut: int
    """Records cut short at the end of a part and left out."""
    skipped: tuple[str, ...]
    """Parts left out, each with why (not a pcap, another link type)."""


def _records(stream: BinaryIO, order: str, counter: list[int]) -> Iterator[tuple[int, int, bytes]]:
    """(seconds, fraction, record) of each whole record of a part positioned after its global header."""
    while True:
        head = stream.read(RECORD_HEADER)
        if not head:
            return
        if len(head) < RECORD_HEADER:
            counter[0] += 1
            return
        sec, frac, incl, _ = struct.unpack(order + "IIII", head)
        if incl > MAX_RECORD:
            counter[0] += 1
            return
        data = stream.read(incl)
        if len(data) < incl:
            counter[0] += 1
            return
        yield sec, frac, head + data


def merge_pcaps(parts: Sequence[tuple[str, BinaryIO]], output: BinaryIO) -> MergeReport:
    """Merge classic pcap parts of one pod (same link type) into one capture, in timestamp order.

    The first readable part decides byte order, timestamp resolution and link type; the snapshot length
    written is the largest. Records cut short at the end of a part (an interrupted stream) are left out.

    Args:
        parts: (name, stream) of each part, positioned at its start.
        output: Where the merged capture goes.
    """
    opened: list[tuple[str, BinaryIO, bytes]] = []
    skipped: list[str] = []
    for name, stream in parts:
        header = stream.read(GLOBAL_HEADER)
        if len(header) < GLOBAL_HEADER:
            if header:
                skipped.append(f"{name}: shorter than a pcap header")
            continue
        if header[:4] not in PCAP_MAGICS:
            skipped.append(f"{name}: not a pcap stream")
            continue
        if opened and (header[:4] != opened[0][2][:4] or header[20:24] != opened[0][2][20:24]):
            skipped.append(f"{name}: another byte order, time resolution or link type than {opened[0][0]}")
            continue
        opened.append((name, stream, header))
    if not opened:
        return MergeReport(0, 0, tuple(skipped))
    first = opened[0][2]
    order = PCAP_MAGICS[first[:4]]
    snaplen = max(struct.unpack(order + "I", h[16:20])[0] for _, _, h in opened)
    output.write(first[:16] + struct.pack(order + "I", snaplen) + first[20:24])
    cut = [0]
    packets = 0
    for _, _, record in heapq.merge(*(_records(s, order, cut) for _, s, _ in opened), key=lambda r: (r[0], r[1])):
        output.write(record)
        packets += 1
    return MergeReport(packets, cut[0], tuple(skipped))
