"""A small lab of Linux network namespaces in which tests make real traffic and record it with tcpdump.

A :class:`Lab` is a "node" namespace holding a Linux bridge, and host namespaces each joined to the
bridge by a veth pair. Nothing in a lab has a link or a route to the machine's own network: every
interface is created inside a lab namespace (never in the caller's), hosts route only to the bridge
subnet, and an nftables output chain in every lab namespace drops packets to any address outside the
documentation and cluster prefixes in :data:`ALLOWED_NETWORKS` (and, by default, all IP multicast, so
captures hold only the traffic a test makes). Every traffic helper is bounded in count and time.

Namespaces are named ``ngt-<pid>-<lab>-<name>`` so parallel or aborted runs never collide; a new lab
removes leftovers of an earlier process that had the same pid, and nothing else. ``Lab.close`` (also
run by ``with`` and at interpreter exit) stops every process and capture the lab started and deletes
its namespaces.

Typical use::

    with Lab() as lab:
        a = lab.add_host("a", ipv4="10.244.1.10")
        b = lab.add_host("b", ipv4="10.244.1.11")
        server = lab.tcp_server(b, 8080, connections=2)
        with lab.capture(a, "eth0", tmp / "a.pcap"):
            lab.tcp_client(a, b.ipv4, 8080, count=2)
        server.wait()
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

ALLOWED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.244.0.0/16",  # pods
        "10.96.0.0/12",  # services
        "192.0.2.0/24",  # TEST-NET-1: "external" hosts
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "2001:db8::/32",  # IPv6 documentation
        "fd00:10:244::/64",  # IPv6 pods (ULA)
    )
)
"""The only networks a lab may address or send to."""

PREFIX = f"ngt-{os.getpid()}-"
"""Prefix of every namespace this process creates."""

PING_BYTES = 14
"""ICMP echo payload bytes of each request :meth:`Lab.ping` sends (``netlab-echo-NN``)."""

PYTHON = sys.executable
"""The interpreter that runs the helper scripts (it has dnspython)."""

_labs: weakref.WeakSet[Lab] = weakref.WeakSet()
_lab_counter = 0
_stale_cleaned = False


class LabError(RuntimeError):
    """A lab step failed: a command exited badly, a process did not get ready, a capture did not start."""


def check_address(address: str) -> str:
    """Refuse an address outside :data:`ALLOWED_NETWORKS`.

    Args:
        address: An IPv4 or IPv6 address, optionally with a ``/prefix``.

    Returns:
        The address as given.

    Raises:
        ValueError: The address is not in an allowed network.
    """
    ip = ipaddress.ip_interface(address).ip
    if not any(ip.version == net.version and ip in net for net in ALLOWED_NETWORKS):
        raise ValueError(f"{address} is outside the lab's allowed networks")
    return address


def _family(address: str) -> int:
    return ipaddress.ip_address(address).version


@dataclass(frozen=True)
class Host:
    """One host namespace joined to the lab's bridge."""

    name: str
    """The short name the test gave it."""
    netns: str
    """The namespace's name (``ngt-<pid>-<lab>-<name>``)."""
    ipv4: str
    """Its IPv4 address on ``eth0`` (no prefix length)."""
    ipv6: str | None
    """Its IPv6 address on ``eth0``, if it has one."""
    mac: str
    """The MAC address of its ``eth0``."""
    iface: str = "eth0"
    """Its interface into the bridge."""


Where = Host | str
"""A host, or the name of a lab namespace."""


def _netns(where: Where) -> str:
    return where.netns if isinstance(where, Host) else where


def _run(args: Sequence[str], *, timeout: float = 10.0, check: bool = True,
         stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            list(args), input=None if stdin is None else stdin.decode(), capture_output=True, text=True,
            timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timed out after {timeout}s: {' '.join(args)}") from e
    if check and done.returncode != 0:
        raise LabError(
            f"exit {done.returncode}: {' '.join(args)}\n"
            f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
        )
    return done


class Proc:
    """A process running in a lab namespace, with its stdout read line by line in the background."""

    def __init__(self, netns: str, args: Sequence[str], *, stdin: bool = False, name: str = "",
                 read: bool = True) -> None:
        """Start ``args`` in ``netns`` (in a new session, so it can be killed as a group).

        Args:
            netns: The namespace to run in.
            args: The command and its arguments.
            stdin: Give the process a pipe on stdin (see :meth:`send`); otherwise /dev/null.
            name: A label for error messages.
            read: Read its stdout and stderr as lines; otherwise the caller reads them.
        """
        self.name = name or args[0]
        self.args = list(args)
        self.popen = subprocess.Popen(
            ["ip", "netns", "exec", netns, *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._readers: list[threading.Thread] = []
        if read:
            self._readers += [
                threading.Thread(target=self._read, args=(self.popen.stdout, self.lines, self._queue),
                                 daemon=True),
                threading.Thread(target=self._read, args=(self.popen.stderr, self.errors, None), daemon=True),
            ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str], lines: queue.Queue[str | None] | None) -> None:
        assert stream is not None
        for raw in stream:  # type: ignore[attr-defined]
            line = raw.decode(errors="replace").rstrip("\n")
            into.append(line)
            if lines is not None:
                lines.put(line)
        if lines is not None:
            lines.put(None)

    @property
    def pid(self) -> int:
        """The process id (``ip netns exec`` execs the command, so it is the command's)."""
        return self.popen.pid

    def describe(self) -> str:
        """Say what the process printed, for error messages."""
        return (f"{self.name} (exit {self.popen.poll()}):\nstdout: {self.lines[-20:]}\n"
                f"stderr: {self.errors[-20:]}")

    def expect(self, pattern: str, timeout: float = 5.0) -> str:
        """Wait for a stdout line matching the regular expression ``pattern``.

        Args:
            pattern: Searched for in each new line.
            timeout: Seconds to wait.

        Returns:
            The first matching line.

        Raises:
            LabError: The process ended, or the time ran out, before such a line.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(f"no line matching {pattern!r} within {timeout}s from {self.describe()}")
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.popen.wait(timeout=2)
                raise LabError(f"ended before printing {pattern!r}: {self.describe()}")
            if re.search(pattern, line):
                return line

    def send(self, line: str) -> None:
        """Write one line to the process's stdin."""
        assert self.popen.stdin is not None, "started without stdin=True"
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        """Close the process's stdin (it reads end of file)."""
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            self.popen.stdin.close()

    def wait(self, timeout: float = 10.0, *, check: bool = True) -> int:
        """Wait for the process to end on its own.

        Args:
            timeout: Seconds to wait before killing it.
            check: Raise if it exited with a non-zero status.

        Returns:
            Its exit status.

        Raises:
            LabError: It did not end in time (it is killed), or failed and ``check`` is set.
        """
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.kill()
            raise LabError(f"did not end within {timeout}s: {self.describe()}") from e
        for reader in self._readers:
            reader.join(timeout=2)
        if check and code != 0:
            raise LabError(f"failed: {self.describe()}")
        return code

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process alone, if it still runs."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signum)

    def kill(self) -> None:
        """Kill the process and its group at once, and reap it."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        self.close_stdin()

    def stop(self, timeout: float = 2.0) -> None:
        """End the process: SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


_LISTENING = re.compile(r"listening on (\S+), link-type (\S+)")
_CAPTURED = re.compile(r"^(\d+) packets? captured")
_DROPPED = re.compile(r"^(\d+) packets? dropped by kernel")


class Capture:
    """A real tcpdump recording one interface of a lab namespace (use :meth:`Lab.capture`)."""

    def __init__(self, proc: Proc, path: Path | None) -> None:
        """Wrap a started tcpdump; call :meth:`wait_ready` before making traffic."""
        self.proc = proc
        self.path = path
        """The file written, or ``None`` when writing to stdout (see :attr:`data`)."""
        self.link_type = ""
        """The link type tcpdump announced (``EN10MB``, ``LINUX_SLL2``, …)."""
        self.captured: int | None = None
        """How many packets tcpdump said it captured, once stopped."""
        self.dropped: int | None = None
        """How many packets tcpdump said the kernel dropped (its ring was full), once stopped."""
        self._chunks: list[bytes] = []
        self._ready = threading.Event()
        self._stopped = False
        # tcpdump announces itself on stderr; the pcap bytes of `-w -` come on stdout.
        err = threading.Thread(target=self._read_stderr, daemon=True)
        out = threading.Thread(target=self._read_stdout, daemon=True)
        proc._readers.extend([err, out])
        err.start()
        out.start()

    def _read_stderr(self) -> None:
        assert self.proc.popen.stderr is not None
        for raw in self.proc.popen.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.proc.errors.append(line)
            match = _LISTENING.search(line)
            if match:
                self.link_type = match.group(2)
                self._ready.set()
            match = _CAPTURED.search(line)
            if match:
                self.captured = int(match.group(1))
            match = _DROPPED.search(line)
            if match:
                self.dropped = int(match.group(1))
        self._ready.set()

    def _read_stdout(self) -> None:
        assert self.proc.popen.stdout is not None
        while True:
            chunk = self.proc.popen.stdout.read1(65536)  # type: ignore[attr-defined]
            if not chunk:
                return
            self._chunks.append(chunk)

    @property
    def data(self) -> bytes:
        """The pcap bytes tcpdump wrote to stdout (``path=None``), complete once stopped."""
        return b"".join(self._chunks)

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Wait until tcpdump says "listening on": from then on, packets are recorded.

        Raises:
            LabError: tcpdump failed or did not get ready in time.
        """
        if not self._ready.wait(timeout) or not self.link_type:
            self.proc.kill()
            raise LabError(f"tcpdump did not start listening within {timeout}s: {self.proc.describe()}")

    def stop(self, timeout: float = 5.0, settle: float = 0.2) -> None:
        """Stop tcpdump with SIGINT, so it flushes the file, and wait for it.

        Args:
            timeout: Seconds to wait for tcpdump to end before killing it.
            settle: Seconds to wait first, so packets still in flight are recorded.

        Raises:
            LabError: tcpdump had to be killed, reported an error, or lost packets (the recording
                would then not hold all the traffic the test made).
        """
        if self._stopped:
            return
        self._stopped = True
        time.sleep(settle)
        self.proc.signal(signal.SIGINT)
        try:
            code = self.proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.proc.kill()
            raise LabError(f"tcpdump did not stop within {timeout}s: {self.proc.describe()}") from e
        for reader in self.proc._readers:
            reader.join(timeout=5)
        # tcpdump ends with 0 on SIGINT; -SIGINT if it had not installed its handler yet.
        if code not in (0, -signal.SIGINT):
            raise LabError(f"tcpdump failed: {self.proc.describe()}")
        if self.dropped:
            raise LabError(f"tcpdump lost packets: {self.proc.describe()}")

    def __enter__(self) -> Capture:
        """Return the (ready) capture."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Stop the capture; on an error, only kill it."""
        if exc is None:
            self.stop()
        else:
            self.proc.kill()


def link_type(path: Path) -> str:
    """Tell the link type of a capture file, as tcpdump names it (``EN10MB``, ``LINUX_SLL2``, ``RAW``, …).

    Raises:
        LabError: tcpdump cannot read the file.
    """
    done = _run(["tcpdump", "-r", str(path), "-c1", "-nn"], check=False)
    match = re.search(r"link-type (\S+)", done.stderr)
    if not match:
        raise LabError(f"tcpdump cannot read {path}: {done.stderr.strip()}")
    return match.group(1)


def read_text(path: Path, *options: str) -> list[str]:
    """Decode a capture with ``tcpdump -nn -r`` (plus ``options``, such as ``-e``) and return its lines."""
    done = _run(["tcpdump", "-nn", "-r", str(path), *options])
    return done.stdout.splitlines()


# Helper programs, run as `python3 -c SCRIPT ARGS…` inside a namespace. Each one is bounded: a fixed
# number of connections, datagrams or queries, and socket timeouts; each prints "ready" once it listens.

_TCP_SERVER = r"""
import socket, sys
host, port, count, reply, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(
    sys.argv[5])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(64)
s.settimeout(timeout)
print("ready", flush=True)
for _ in range(count):
    conn, peer = s.accept()
    with conn:
        conn.settimeout(timeout)
        data = conn.recv(65536)
        conn.sendall(reply.encode())
    print("served", peer[0], len(data), flush=True)
"""

_TCP_CLIENT = r"""
import socket, sys
host, port, count, payload, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(
    sys.argv[5])
for _ in range(count):
    with socket.create_connection((host, port), timeout=timeout) as c:
        c.sendall(payload.encode())
        got = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
    print("got", len(got), flush=True)
"""

_UDP_SERVER = r"""
import socket, sys
host, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, port))
s.settimeout(timeout)
print("ready", flush=True)
for _ in range(count):
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
    print("echoed", peer[0], len(data), flush=True)
"""

_UDP_CLIENT = r"""
import socket, sys
host, port, count, size, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(
    sys.argv[5])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(timeout)
for i in range(count):
    s.sendto(bytes((i + j) % 256 for j in range(size)), (host, port))
    data, _ = s.recvfrom(65535)
    print("got", len(data), flush=True)
"""

# Not the `ping` binary: it is not installed everywhere. A raw socket sends the same echo requests and
# the kernel of the other namespace answers them.
_PING = r"""
import os, socket, struct, sys, time
dst, count, timeout, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
v6 = ":" in dst
if v6:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    request, reply = 128, 129
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    request, reply = 8, 0
def checksum(b):
    b += b"\0" * (len(b) % 2)
    total = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF
ident = os.getpid() & 0xFFFF
answered = 0
for seq in range(1, count + 1):
    if seq > 1:
        time.sleep(interval)
    body = b"netlab-echo-%02d" % seq
    header = struct.pack("!BBHHH", request, 0, 0, ident, seq)
    if not v6:  # the kernel fills in the ICMPv6 checksum itself
        header = struct.pack("!BBHHH", request, 0, checksum(header + body), ident, seq)
    s.sendto(header + body, (dst, 0))
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        if not v6:
            data = data[(data[0] & 15) * 4:]
        kind, _, _, got_ident, got_seq = struct.unpack("!BBHHH", data[:8])
        if kind == reply and got_ident == ident and got_seq == seq:
            answered += 1
            break
print("answered", answered, "of", count, flush=True)
sys.exit(0 if answered == count else 1)
"""

_DNS_SERVER = r"""
import json, socket, struct, sys, threading, time
import dns.flags, dns.message, dns.name, dns.rcode, dns.rdatatype, dns.rrset
host, limit, timeout, zone = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
cnames = {k.lower(): v.lower() for k, v in zone.get("CNAME", {}).items()}
tables = {dns.rdatatype.A: zone.get("A", {}), dns.rdatatype.AAAA: zone.get("AAAA", {})}
known = set(cnames) | set(zone.get("A", {})) | set(zone.get("AAAA", {}))
soa_zone = zone.get("SOA", "cluster.local.")

def answer(wire):
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    question = query.question[0]
    name = question.name.to_text().lower()
    for _ in range(8):  # follow the CNAME chain, bounded
        if name not in cnames or question.rdtype == dns.rdatatype.CNAME:
            break
        response.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", cnames[name]))
        name = cnames[name]
    values = tables.get(question.rdtype, {}).get(name)
    if values:
        rdtype = dns.rdatatype.to_text(question.rdtype)
        response.answer.append(dns.rrset.from_text(name, 300, "IN", rdtype, *values))
    elif name not in known:
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(dns.rrset.from_text(
            soa_zone, 30, "IN", "SOA",
            "ns.dns." + soa_zone + " hostmaster." + soa_zone + " 1 7200 1800 86400 30"))
    return response.to_wire()

served = 0
lock = threading.Lock()
done = threading.Event()

def count_one():
    global served
    with lock:
        served += 1
        if served >= limit:
            done.set()

def serve_udp(sock):
    sock.settimeout(0.2)
    while not done.is_set():
        try:
            wire, peer = sock.recvfrom(65535)
        except socket.timeout:
            continue
        sock.sendto(answer(wire), peer)
        count_one()

def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data

def serve_tcp(sock):
    sock.settimeout(0.2)
    while not done.is_set():
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        with conn:
            conn.settimeout(timeout)
            while (head := recv_exact(conn, 2)) is not None:
                wire = recv_exact(conn, struct.unpack("!H", head)[0])
                if wire is None:
                    break
                reply = answer(wire)
                conn.sendall(struct.pack("!H", len(reply)) + reply)
                count_one()

family = socket.AF_INET6 if ":" in host else socket.AF_INET
udp = socket.socket(family, socket.SOCK_DGRAM)
udp.bind((host, 53))
tcp = socket.socket(family, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((host, 53))
tcp.listen(16)
for target, sock in ((serve_udp, udp), (serve_tcp, tcp)):
    threading.Thread(target=target, args=(sock,), daemon=True).start()
print("ready", flush=True)
done.wait(timeout)
print("served", served, flush=True)
"""

_DNS_CLIENT = r"""
import json, sys
import dns.message, dns.query, dns.rcode
server, transport, timeout, questions = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
ask = dns.query.tcp if transport == "tcp" else dns.query.udp
for name, rdtype in questions:
    response = ask(dns.message.make_query(name, rdtype), server, timeout=timeout)
    records = [rr.to_text() for rrset in response.answer for rr in rrset]
    print(json.dumps([name, rdtype, dns.rcode.to_text(response.rcode()), records]), flush=True)
"""

_CHAT_SERVER = r"""
import socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(1)
s.settimeout(timeout)
print("ready", flush=True)
conn, peer = s.accept()
conn.settimeout(timeout)
print("accepted", peer[0], peer[1], flush=True)
for line in sys.stdin:
    message = line.rstrip("\n").encode()
    conn.sendall(message)
    got = b""
    while len(got) < len(message):
        chunk = conn.recv(65536)
        if not chunk:
            raise SystemExit("peer closed")
        got += chunk
    print("echoed", len(got), flush=True)
conn.close()
"""

_CHAT_CLIENT = r"""
import socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = socket.create_connection((host, port), timeout=timeout)
print("connected", c.getsockname()[1], flush=True)
while chunk := c.recv(65536):
    c.sendall(chunk)
c.close()
"""


_FORWARDER_LIFETIME = 600.0
"""Seconds a VLAN or tunnel forwarder runs at most (the lab kills it at teardown anyway)."""

# A TAP device's frames <-> 802.1Q/QinQ-tagged frames on a parent interface (see Lab.add_vlan).
_VLAN_FORWARDER = r"""
import fcntl, json, os, select, socket, struct, sys, time
tap, parent, tags, lifetime = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", tap.encode(), 0x0002 | 0x1000))  # TUNSETIFF: TAP, no PI
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
sock.setsockopt(263, 8, 1)  # SOL_PACKET, PACKET_AUXDATA: tags the kernel moved out of the frame
sock.bind((parent, 0))
header = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags)
wanted = [tuple(tag) for tag in tags]
print("ready", flush=True)
deadline = time.monotonic() + lifetime
while (left := deadline - time.monotonic()) > 0:
    readable, _, _ = select.select([fd, sock], [], [], min(left, 1.0))
    if fd in readable:
        frame = os.read(fd, 65536)
        sock.send(frame[:12] + header + frame[12:])
    if sock in readable:
        frame, ancillary, _, address = sock.recvmsg(65536, socket.CMSG_SPACE(20))
        if address[2] == socket.PACKET_OUTGOING:
            continue
        found = []
        for level, kind, data in ancillary:
            if level == 263 and kind == 8:
                status, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", data[:20])
                if status & 0x10:  # TP_STATUS_VLAN_VALID (TPID valid: 0x40)
                    found.append((tpid if status & 0x40 else 0x8100, tci & 0xFFF))
        body = frame[12:]
        while len(body) >= 4 and body[:2] in (b"\x81\x00", b"\x88\xa8"):
            tpid, tci = struct.unpack("!HH", body[:4])
            found.append((tpid, tci & 0xFFF))
            body = body[4:]
        if found == wanted:
            os.write(fd, frame[:12] + body)
"""

# A TUN device's IP packets <-> UDP datagrams to the other end's forwarder (see Lab.add_tunnel).
_TUN_FORWARDER = r"""
import fcntl, os, select, socket, struct, sys, time
tun, local, remote = sys.argv[1], sys.argv[2], sys.argv[3]
port, lifetime = int(sys.argv[4]), float(sys.argv[5])
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", tun.encode(), 0x0001 | 0x1000))  # TUNSETIFF: TUN, no PI
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((local, port))
print("ready", flush=True)
deadline = time.monotonic() + lifetime
while (left := deadline - time.monotonic()) > 0:
    readable, _, _ = select.select([fd, sock], [], [], min(left, 1.0))
    if fd in readable:
        sock.sendto(os.read(fd, 65536), (remote, port))
    if sock in readable:
        packet, peer = sock.recvfrom(65536)
        if peer == (remote, port):
            os.write(fd, packet)
"""


@dataclass(frozen=True)
class DnsAnswer:
    """What the DNS client got for one question."""

    name: str
    rdtype: str
    rcode: str
    records: tuple[str, ...]
    """The answer section's records in zone-file form."""


@dataclass(eq=False)  # compared and hashed by identity: labs are kept in a weak set
class Lab:
    """An isolated set of namespaces: a node with a bridge, and hosts attached to it.

    Args:
        subnet4: The bridge's IPv4 subnet; the node's bridge takes its first address.
        subnet6: The bridge's IPv6 subnet, or ``None`` for IPv4 only.
        mtu: The MTU of every veth (and so of the bridge).
        quiet: Drop all IP multicast the namespaces would send (MLD and IGMP reports, router
            solicitations), so captures hold only the tests' traffic. IPv6 neighbours are then
            entered statically.
    """

    subnet4: str = "10.244.1.0/24"
    subnet6: str | None = "fd00:10:244::/64"
    mtu: int = 1500
    quiet: bool = True
    prefix: str = field(init=False)
    node: str = field(init=False)
    """The node namespace's name; its bridge is ``br0``."""
    gateway4: str = field(init=False)
    gateway6: str | None = field(init=False)
    hosts: dict[str, Host] = field(init=False, default_factory=dict)
    namespaces: list[str] = field(init=False, default_factory=list)
    procs: list[Proc] = field(init=False, default_factory=list)
    _closed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        """Create the node namespace and its bridge."""
        global _lab_counter
        _cleanup_stale()
        _lab_counter += 1
        self.prefix = f"{PREFIX}{_lab_counter}-"
        net4 = ipaddress.ip_network(self.subnet4)
        check_address(str(net4))
        self.gateway4 = str(next(net4.hosts()))
        self.gateway6 = None
        if self.subnet6 is not None:
            net6 = ipaddress.ip_network(self.subnet6)
            check_address(str(net6))
            self.gateway6 = str(next(net6.hosts()))
        _labs.add(self)
        try:
            self.node = self._namespace("node")
            self.ip(self.node, "link", "add", "br0", "address", "02:4e:47:ff:00:01", "type", "bridge",
                    "mcast_snooping", "0", "stp_state", "0")
            self.ip(self.node, "addr", "add", f"{self.gateway4}/{net4.prefixlen}", "dev", "br0")
            if self.gateway6 is not None:
                self.ip(self.node, "-6", "addr", "add", f"{self.gateway6}/{net6.prefixlen}", "dev", "br0",
                        "nodad")
            self.ip(self.node, "link", "set", "br0", "mtu", str(self.mtu), "up")
        except BaseException:
            self.close()
            raise

    # --- namespaces and commands -------------------------------------------------------------------

    def _namespace(self, name: str) -> str:
        netns = f"{self.prefix}{name}"
        _run(["ip", "netns", "add", netns])
        self.namespaces.append(netns)
        # Settings for every interface created later in this namespace: no IPv6 autoconfiguration,
        # no duplicate address detection (addresses are usable at once), no router solicitations.
        self.sysctl(netns, {
            "net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0",
            "net.ipv6.conf.all.dad_transmits": "0", "net.ipv6.conf.default.dad_transmits": "0",
            "net.ipv6.conf.all.accept_ra": "0", "net.ipv6.conf.default.accept_ra": "0",
            "net.ipv6.conf.all.router_solicitations": "0", "net.ipv6.conf.default.router_solicitations": "0",
        })
        self._guard(netns)
        self.ip(netns, "link", "set", "lo", "up")
        return netns

    def _guard(self, netns: str) -> None:
        """Install the output filter: only allowed destinations (and no multicast when quiet)."""
        if shutil.which("nft") is None:
            raise LabError("a lab needs nftables (nft): it filters what each namespace may send")
        v4 = ", ".join(str(n) for n in ALLOWED_NETWORKS if n.version == 4)
        v6 = ", ".join(str(n) for n in ALLOWED_NETWORKS if n.version == 6)
        quiet = "ip daddr 224.0.0.0/4 drop\n ip6 daddr ff00::/8 drop\n" if self.quiet else ""
        rules = (
            "table inet netlab {\n chain output {\n  type filter hook output priority 0; policy accept;\n"
            f' oifname "lo" accept\n {quiet}'
            f" ip6 daddr ff00::/8 accept\n ip6 daddr fe80::/10 accept\n"
            f" meta nfproto ipv4 ip daddr != {{ {v4}, 224.0.0.0/4, 255.255.255.255 }} drop\n"
            f" meta nfproto ipv6 ip6 daddr != {{ {v6} }} drop\n }}\n}}\n"
        )
        self.exec(netns, "nft", "-f", "-", stdin=rules.encode())

    def sysctl(self, where: Where, settings: dict[str, str]) -> None:
        """Set sysctls inside a namespace (``net.*`` settings are per namespace)."""
        self.exec(where, "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items()))

    def ip(self, where: Where, *args: str) -> None:
        """Run ``ip -n NETNS ARGS…``: iproute2 acting inside the namespace."""
        _run(["ip", "-n", _netns(where), *args])

    def exec(self, where: Where, *args: str, timeout: float = 10.0, check: bool = True,
             stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command to completion inside a namespace.

        Args:
            where: A host or namespace name.
            args: The command and its arguments.
            timeout: Seconds before it is killed and :class:`LabError` raised.
            check: Raise :class:`LabError` on a non-zero exit.
            stdin: Bytes for its standard input.

        Returns:
            The finished process, with text stdout and stderr.
        """
        return _run(["ip", "netns", "exec", _netns(where), *args], timeout=timeout, check=check,
                    stdin=stdin)

    def python(self, where: Where, script: str, *args: object, timeout: float = 10.0) -> list[str]:
        """Run a Python script (``python3 -c``) to completion in a namespace; return its stdout lines."""
        done = self.exec(where, PYTHON, "-c", script, *(str(a) for a in args), timeout=timeout)
        return done.stdout.splitlines()

    def spawn(self, where: Where, *args: str, stdin: bool = False, name: str = "", read: bool = True) -> Proc:
        """Start a process in a namespace; it is killed at :meth:`close` if still running."""
        self._check_open()
        proc = Proc(_netns(where), args, stdin=stdin, name=name, read=read)
        self.procs.append(proc)
        return proc

    def spawn_python(self, where: Where, script: str, *args: object, stdin: bool = False,
                     name: str = "", ready: str | None = "ready") -> Proc:
        """Start a Python script in a namespace and wait for its ``ready`` line (if any)."""
        proc = self.spawn(where, PYTHON, "-c", script, *(str(a) for a in args), stdin=stdin, name=name)
        if ready is not None:
            proc.expect(ready)
        return proc

    def _check_open(self) -> None:
        if self._closed:
            raise LabError("the lab is closed")

    # --- topology ----------------------------------------------------------------------------------

    def add_host(self, name: str, *, ipv4: str, ipv6: str | None = None, mtu: int | None = None) -> Host:
        """Create a host namespace attached to the bridge by a veth pair.

        The host's ``eth0`` gets ``ipv4`` (and ``ipv6``) in the bridge's subnets, a default route via
        the bridge, and (in a quiet lab) static IPv6 neighbour entries for every other host.

        Args:
            name: A short name (letters and digits, at most 12 characters).
            ipv4: Its IPv4 address, inside ``subnet4``.
            ipv6: Its IPv6 address, inside ``subnet6``.
            mtu: The MTU of its veth pair (default: the lab's).

        Returns:
            The new host.
        """
        self._check_open()
        if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", name) or name in self.hosts or name == "node":
            raise ValueError(f"bad or duplicate host name {name!r}")
        net4 = ipaddress.ip_network(self.subnet4)
        if ipaddress.ip_address(check_address(ipv4)) not in net4:
            raise ValueError(f"{ipv4} is not in {net4}")
        if ipv6 is not None:
            if self.subnet6 is None or ipaddress.ip_address(check_address(ipv6)) not in ipaddress.ip_network(
                    self.subnet6):
                raise ValueError(f"{ipv6} is not in the lab's IPv6 subnet {self.subnet6}")
            ipv6 = str(ipaddress.ip_address(ipv6))
        index = len(self.hosts) + 1
        mac = f"02:4e:47:00:{index >> 8:02x}:{index & 0xFF:02x}"
        netns = self._namespace(name)
        host = Host(name=name, netns=netns, ipv4=ipv4, ipv6=ipv6, mac=mac)
        port = f"v-{name}"
        mtu = mtu or self.mtu
        self.ip(self.node, "link", "add", port, "mtu", str(mtu), "type", "veth", "peer", "name", "eth0",
                "netns", netns, "address", mac, "mtu", str(mtu))
        self.ip(self.node, "link", "set", port, "master", "br0", "up")
        self.ip(host, "addr", "add", f"{ipv4}/{net4.prefixlen}", "dev", "eth0")
        if ipv6 is not None:
            prefixlen = ipaddress.ip_network(self.subnet6 or "").prefixlen
            self.ip(host, "-6", "addr", "add", f"{ipv6}/{prefixlen}", "dev", "eth0", "nodad")
        self.ip(host, "link", "set", "eth0", "up")
        self.ip(host, "route", "add", "default", "via", self.gateway4)
        if ipv6 is not None and self.gateway6 is not None:
            self.ip(host, "-6", "route", "add", "default", "via", self.gateway6)
        self.hosts[name] = host
        if self.quiet:
            self._static_neighbours()
        return host

    def _static_neighbours(self) -> None:
        # Multicast is dropped in quiet labs, so IPv6 neighbour discovery cannot work: enter the
        # neighbours by hand (IPv4 keeps ARP, which is not IP and so no noise in flows).
        for host in self.hosts.values():
            if host.ipv6 is None:
                continue
            for other in self.hosts.values():
                if other is not host and other.ipv6 is not None:
                    self.ip(host, "-6", "neigh", "replace", other.ipv6, "lladdr", other.mac, "dev", "eth0",
                            "nud", "permanent")
            if self.gateway6 is not None:
                self.ip(host, "-6", "neigh", "replace", self.gateway6, "lladdr", "02:4e:47:ff:00:01", "dev",
                        "eth0", "nud", "permanent")

    def add_vlan(self, a: Host, b: Host, vid: int, addr_a: str, addr_b: str, *, outer_vid: int | None = None,
                 prefixlen: int = 24) -> str:
        """Join two hosts by an 802.1Q VLAN whose tagged frames cross the bridge on their ``eth0``.

        With ``outer_vid`` the VLAN is QinQ: frames carry an outer 802.1ad S-tag ``outer_vid`` and an inner
        802.1Q C-tag ``vid``. A capture on ``eth0`` (the VLAN's parent) shows the tagged frames.

        Linux VLAN devices need ``CONFIG_VLAN_8021Q``, which some kernels (such as the CI's) lack, so the
        VLAN interface is a TAP device and a small bounded forwarder in each host tags what the host's
        stack sends on it and writes it to ``eth0`` with a packet socket, and gives back to the TAP
        device the frames arriving on ``eth0`` with exactly these tags. What crosses the wire is the same.

        Args:
            a: One host.
            b: The other host.
            vid: The (inner) 802.1Q VLAN id.
            addr_a: ``a``'s IPv4 address on the VLAN.
            addr_b: ``b``'s IPv4 address on the VLAN.
            outer_vid: The 802.1ad service VLAN id, for QinQ.
            prefixlen: The VLAN subnet's prefix length.

        Returns:
            The VLAN interface's name (the same in both hosts): ``vl<vid>`` or ``vl<outer>x<vid>``.
        """
        self._check_open()
        tags = [(0x8100, vid)] if outer_vid is None else [(0x88A8, outer_vid), (0x8100, vid)]
        name = f"vl{vid}" if outer_vid is None else f"vl{outer_vid}x{vid}"
        for host, address in ((a, addr_a), (b, addr_b)):
            check_address(address)
            mac = "02:4e:56:" + host.mac[-8:]  # like its eth0's, unique in the lab
            self.ip(host, "tuntap", "add", "mode", "tap", "name", name)
            self.spawn_python(host, _VLAN_FORWARDER, name, host.iface, json.dumps(tags), _FORWARDER_LIFETIME,
                              name=f"vlan forwarder {name}")
            self.sysctl(host, {f"net.ipv6.conf.{name}.disable_ipv6": "1"})
            self.ip(host, "link", "set", name, "address", mac, "mtu", str(self.mtu - 4 * len(tags)), "up")
            self.ip(host, "addr", "add", f"{address}/{prefixlen}", "dev", name)
        return name

    def add_tunnel(self, a: Host, b: Host, addrs_a: Sequence[str], addrs_b: Sequence[str], *,
                   port: int = 4790) -> str:
        """Join two hosts by a point-to-point IP tunnel (TUN devices) carried in UDP across the bridge.

        A capture on the tunnel device has link type RAW: bare IPv4 and IPv6 packets, no link layer.
        (Kernel ipip/sit devices would do as well, but not every kernel has them.)

        Args:
            a: One end.
            b: The other end.
            addrs_a: ``a``'s inner addresses (IPv4 and/or IPv6), each paired with the same position
                in ``addrs_b``.
            addrs_b: ``b``'s inner addresses.
            port: The UDP port of the encapsulation, on both hosts' ``eth0``.

        Returns:
            The tunnel device's name (the same in both hosts).
        """
        self._check_open()
        name = f"tun{port}"
        for local, remote, mine, theirs in ((a, b, addrs_a, addrs_b), (b, a, addrs_b, addrs_a)):
            self.ip(local, "tuntap", "add", "mode", "tun", "name", name)
            self.spawn_python(local, _TUN_FORWARDER, name, local.ipv4, remote.ipv4, port, _FORWARDER_LIFETIME,
                              name=f"tunnel forwarder {name}")
            self.ip(local, "link", "set", name, "mtu", str(self.mtu - 28), "up")
            for address, peer in zip(mine, theirs, strict=True):
                check_address(address)
                check_address(peer)
                if _family(address) == 6:
                    self.ip(local, "-6", "addr", "add", f"{address}/128", "peer", f"{peer}/128", "dev", name,
                            "nodad")
                else:
                    self.ip(local, "addr", "add", f"{address}/32", "peer", f"{peer}/32", "dev", name)
        return name

    # --- captures ----------------------------------------------------------------------------------

    def capture(self, where: Where, iface: str, path: Path | None, *, snaplen: int | None = None,
                bpf: str | None = None, link: str | None = None, immediate: bool = True,
                buffer_kib: int = 32768, timeout: float = 5.0) -> Capture:
        """Start the real tcpdump on an interface of a namespace, and wait until it listens.

        Runs ``tcpdump -i IFACE -w FILE -U -nn -B KIB [--immediate-mode] [-s SNAP] [-y LINK] [FILTER]``.
        ``-i any`` records Linux cooked v2 (``LINUX_SLL2``); ``link="LINUX_SLL"`` asks for cooked v1.

        Args:
            where: The namespace.
            iface: The interface (``any`` for all).
            path: The file to write, or ``None`` to write to stdout (see :attr:`Capture.data`).
            snaplen: Bytes kept of each packet.
            bpf: A capture filter expression.
            link: A data link type for ``-y``.
            immediate: Deliver each packet at once (``--immediate-mode``).
            buffer_kib: The kernel capture buffer (``-B``), in KiB.
            timeout: Seconds to wait for tcpdump to say it listens.

        Returns:
            The running capture; stop it with :meth:`Capture.stop` or a ``with`` block.
        """
        self._check_open()
        # -B: libpcap sizes ring frames by the snapshot length on links other than Ethernet (256 KiB
        # each by default), so its default 2 MiB buffer holds only 8 packets there, and a busy machine
        # drops packets. 32 MiB holds 128.
        args = ["tcpdump", "-Z", "root", "-i", iface, "-w", "-" if path is None else str(path), "-U", "-nn",
                "-B", str(buffer_kib)]
        if immediate:
            args.append("--immediate-mode")
        if snaplen is not None:
            args += ["-s", str(snaplen)]
        if link is not None:
            args += ["-y", link]
        if bpf:
            args.append(bpf)
        proc = self.spawn(where, *args, name=f"tcpdump -i {iface}", read=False)
        capture = Capture(proc, path)
        capture.wait_ready(timeout)
        return capture

    # --- traffic -----------------------------------------------------------------------------------

    def tcp_server(self, host: Host, port: int, *, connections: int, bind: str = "::",
                   reply: str = "pong", timeout: float = 10.0) -> Proc:
        """Start a TCP server that answers ``reply`` to each of ``connections`` connections, then ends.

        It listens on ``bind`` (default ``::``: every IPv4 and IPv6 address of the host).
        """
        return self.spawn_python(host, _TCP_SERVER, bind, port, connections, reply, timeout,
                                 name=f"tcp server :{port}")

    def tcp_client(self, host: Host, server: str, port: int, *, count: int, payload: str = "ping",
                   timeout: float = 5.0) -> list[str]:
        """Connect ``count`` times to ``server:port``, send ``payload``, read the reply until closed."""
        check_address(server)
        return self.python(host, _TCP_CLIENT, server, port, count, payload, timeout,
                           timeout=timeout * count + 5)

    def udp_server(self, host: Host, port: int, *, datagrams: int, bind: str = "::",
                   timeout: float = 10.0) -> Proc:
        """Start a UDP echo server on ``bind`` that echoes ``datagrams`` datagrams, then ends."""
        return self.spawn_python(host, _UDP_SERVER, bind, port, datagrams, timeout,
                                 name=f"udp server :{port}")

    def udp_client(self, host: Host, server: str, port: int, *, count: int, size: int = 32,
                   timeout: float = 2.0) -> list[str]:
        """Send ``count`` datagrams of ``size`` bytes from one socket, waiting for each echo."""
        check_address(server)
        return self.python(host, _UDP_CLIENT, server, port, count, size, timeout, timeout=timeout * count + 5)

    def ping(self, host: Host, dst: str, *, count: int = 2, timeout: float = 1.0,
             interval: float = 0.05) -> None:
        """Send ``count`` ICMP (or ICMPv6) echo requests and require every reply (like ``ping -c -W``)."""
        check_address(dst)
        self.python(host, _PING, dst, count, timeout, interval, timeout=(timeout + interval) * count + 5)

    def dns_server(self, host: Host, zone: dict[str, dict[str, object]], *, queries: int,
                   timeout: float = 15.0) -> Proc:
        """Start a DNS server (dnspython) on UDP and TCP port 53 of ``host``.

        Args:
            host: Where it runs.
            zone: ``{"CNAME": {name: target}, "A": {name: [ip…]}, "AAAA": {name: [ip…]}}`` with
                absolute lower-case names (trailing dot). Other names get NXDOMAIN with an SOA.
            queries: It ends after answering this many queries (or after ``timeout`` seconds).
            timeout: Seconds it runs at most.

        Returns:
            The running server.
        """
        for table in ("A", "AAAA"):
            for values in zone.get(table, {}).values():
                for value in values:  # type: ignore[attr-defined]
                    check_address(value)
        return self.spawn_python(host, _DNS_SERVER, host.ipv4, queries, timeout, json.dumps(zone),
                                 name="dns server")

    def dns_lookups(self, host: Host, server: str, questions: Sequence[tuple[str, str]], *,
                    tcp: bool = False, timeout: float = 2.0) -> list[DnsAnswer]:
        """Ask ``server`` (and only it) each question with dnspython, over UDP or TCP.

        Every query goes out on a new socket (so a new source port, or a new TCP connection).

        Returns:
            The answers, in order.
        """
        check_address(server)
        lines = self.python(host, _DNS_CLIENT, server, "tcp" if tcp else "udp", timeout,
                            json.dumps([list(q) for q in questions]), timeout=timeout * len(questions) + 5)
        answers = []
        for line in lines:
            name, rdtype, rcode, records = json.loads(line)
            answers.append(DnsAnswer(name, rdtype, rcode, tuple(records)))
        return answers

    def chat(self, client: Host, server: Host, server_ip: str, port: int,
             timeout: float = 15.0) -> Chat:
        """Open a long-lived TCP connection from ``client`` to ``server_ip:port`` (on ``server``).

        The server then sends whatever :meth:`Chat.say` is given, and the client echoes it back; the
        first packet after the handshake can so come from the server.

        Returns:
            The established conversation; end it with :meth:`Chat.close`.
        """
        check_address(server_ip)
        listener = self.spawn_python(server, _CHAT_SERVER, "::" if ":" in server_ip else "0.0.0.0", port,
                                     timeout, stdin=True, name=f"chat server :{port}")
        talker = self.spawn_python(client, _CHAT_CLIENT, server_ip, port, timeout, ready="connected",
                                   name="chat client")
        line = listener.expect("accepted")
        return Chat(listener, talker, int(line.split()[2]))

    # --- teardown ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process the lab started and delete its namespaces (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self.procs):
            proc.kill()
        for netns in reversed(self.namespaces):
            # Anything still inside one of our namespaces was started by this lab: end it by pid.
            pids = _run(["ip", "netns", "pids", netns], check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _run(["ip", "netns", "del", netns], check=False)
        _labs.discard(self)

    def __enter__(self) -> Lab:
        """Return the lab."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Tear the lab down."""
        self.close()



@dataclass
class Chat:
    """A long-lived TCP connection between two lab hosts (see :meth:`Lab.chat`)."""

    server: Proc
    client: Proc
    client_port: int
    """The client's (ephemeral) port."""

    def say(self, message: str, timeout: float = 5.0) -> None:
        """Have the server send ``message`` and wait until the client echoed it back."""
        self.server.send(message)
        self.server.expect("echoed", timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Close the connection (the server closes first) and wait for both ends."""
        self.server.close_stdin()
        self.server.wait(timeout)
        self.client.wait(timeout)


def labs_namespaces() -> list[str]:
    """List the namespaces of this process (``ngt-<pid>-…``) that exist now."""
    listing = _run(["ip", "netns", "list"]).stdout.split("\n")
    return sorted(line.split()[0] for line in listing if line.startswith(PREFIX))


def _cleanup_stale() -> None:
    # Leftovers of an earlier process that had our pid (pids are reused): only our own prefix.
    global _stale_cleaned
    if _stale_cleaned:
        return
    _stale_cleaned = True
    for netns in labs_namespaces():
        _run(["ip", "netns", "del", netns], check=False)


@atexit.register
def _close_all() -> None:
    for lab in list(_labs):
        lab.close()

