"""Record real socket tables (``/proc/net/{tcp,tcp6,udp,udp6}``) of known sockets, in a lab of network namespaces.

Two lab hosts (``tests/netlab.py``) stand in for pods: ``pod`` (10.244.1.10, fd00:10:244::10), whose
tables the tests read, and ``peer`` (10.244.1.11, fd00:10:244::11). A small agent in each namespace
opens, accepts and closes sockets on command and copies its namespace's tables, once at the "start" of
a pretend capture and once at its "end", into ``OUTDIR/<host>/<start|end>/<table>`` - the layout of
``sockets/<namespace>/<pod>/`` in a capture directory. Every client socket is bound to a fixed port,
so the 4-tuples are the same on every run (inodes, queues and timers are not).

Before the start:

* pod listens: TCP 0.0.0.0:8080, TCP 10.244.1.10:9090 (one address only), TCP [::]:8443 (dual-stack),
  UDP 0.0.0.0:9999, UDP [::1]:9998; peer listens: TCP 5432, 6379, 8000, [::]:50051, UDP 53.
* pod -> peer:5432 from 40001 and 40002 (a connection pool), [fd00:10:244::10]:40006 -> peer:50051
  (gRPC over IPv6), 127.0.0.1:40007 -> its own 127.0.0.1:8080, [::1]:40008 -> its own [::1]:8443,
  and a connected UDP socket 40053 -> peer:53.
* peer:41001 and peer:41002 -> pod:8080.

Between start and end:

* pod -> peer:6379 from 40003 (opened, still open at the end).
* pod -> peer:8000 from 40004, closed by the pod first: the pod's socket is in TIME_WAIT at the end.
* pool connection 40002 closed by peer first, then by the pod: gone from the pod's end tables.
* peer:41003 -> pod 10.244.1.10:9090 and peer:41004 -> pod:8443 over IPv4 (an IPv4-mapped socket in
  the pod's tcp6 table).
* peer closes 41002: the pod's accepted socket is in CLOSE_WAIT at the end.
* pod connects UDP [::1]:40300 -> its own [::1]:9998.

Needs root, iproute2 and nftables. Run it as a script to refresh the committed tables::

    sudo python3 tests/data/sockets/make_tables.py            # writes tests/data/sockets/lab/
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the `tests` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.netlab import Host, Lab, Proc

POD4, PEER4 = "10.244.1.10", "10.244.1.11"
POD6, PEER6 = "fd00:10:244::10", "fd00:10:244::11"
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "lab"
TABLES = ("tcp", "tcp6", "udp", "udp6")
SETTLE = 0.3
"""Seconds for FIN/ACK exchanges to finish before the next step (everything is on one bridge)."""

AGENT = r"""
import os, socket, sys
socks = {}
def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET
def new(proto, addr):
    s = socket.socket(family(addr), socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(5)
    if family(addr) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # "::" also takes IPv4, as most servers do
    return s
print("ready", flush=True)
for line in sys.stdin:
    cmd, *a = line.split()
    if cmd == "listen":  # listen NAME tcp|udp ADDR PORT
        name, proto, addr, port = a
        s = socks[name] = new(proto, addr)
        s.bind((addr, int(port)))
        if proto == "tcp":
            s.listen(8)
    elif cmd == "connect":  # connect NAME tcp|udp LOCAL_ADDR LOCAL_PORT REMOTE_ADDR REMOTE_PORT
        name, proto, laddr, lport, raddr, rport = a
        s = socks[name] = new(proto, laddr)
        s.bind((laddr, int(lport)))
        s.connect((raddr, int(rport)))
        if proto == "udp":
            s.send(b"hello")
    elif cmd == "accept":  # accept NAME LISTENER
        socks[a[0]], _ = socks[a[1]].accept()
    elif cmd == "close":  # close NAME
        socks.pop(a[0]).close()
    elif cmd == "dump":  # dump DIR: copy this namespace's tables
        os.makedirs(a[0], exist_ok=True)
        for table in ("tcp", "tcp6", "udp", "udp6"):
            with open("/proc/net/" + table) as src, open(os.path.join(a[0], table), "w") as out:
                out.write(src.read())
    else:
        raise SystemExit("unknown command " + cmd)
    print("ok", line.strip(), flush=True)
"""


class Agent:
    """The agent of one host: each step waits until the agent has done it."""

    def __init__(self, lab: Lab, host: Host) -> None:
        """Start the agent in ``host``'s namespace."""
        self.proc: Proc = lab.spawn_python(host, AGENT, stdin=True, name=f"agent-{host.name}")

    def __call__(self, *words: object) -> None:
        """Run one command (see :data:`AGENT`)."""
        line = " ".join(str(w) for w in words)
        self.proc.send(line)
        self.proc.expect(r"^ok ")

    def stop(self) -> None:
        """End the agent (its sockets close with it)."""
        self.proc.close_stdin()
        self.proc.wait()


def record(outdir: Path) -> None:
    """Build the lab, make the sockets described in the module docstring, and copy both hosts' tables.

    Args:
        outdir: Where ``<host>/<start|end>/<table>`` go; files of the same names are overwritten.

    Raises:
        LabError: A lab step failed (a socket call in an agent, a timeout).
    """
    with Lab() as lab:
        pod = Agent(lab, lab.add_host("pod", ipv4=POD4, ipv6=POD6))
        peer = Agent(lab, lab.add_host("peer", ipv4=PEER4, ipv6=PEER6))
        pod("listen", "l8080", "tcp", "0.0.0.0", 8080)
        pod("listen", "l9090", "tcp", POD4, 9090)
        pod("listen", "l8443", "tcp", "::", 8443)
        pod("listen", "u9999", "udp", "0.0.0.0", 9999)
        pod("listen", "u9998", "udp", "::1", 9998)
        for port in (5432, 6379, 8000):
            peer("listen", f"l{port}", "tcp", "0.0.0.0", port)
        peer("listen", "l50051", "tcp", "::", 50051)
        peer("listen", "u53", "udp", "0.0.0.0", 53)

        for name, port in (("db1", 40001), ("db2", 40002)):
            pod("connect", name, "tcp", POD4, port, PEER4, 5432)
            peer("accept", name, "l5432")
        pod("connect", "grpc", "tcp", POD6, 40006, PEER6, 50051)
        peer("accept", "grpc", "l50051")
        for name, port in (("web1", 41001), ("web2", 41002)):
            peer("connect", name, "tcp", PEER4, port, POD4, 8080)
            pod("accept", name, "l8080")  # accepted at once, so each accept takes the connection just made
        pod("connect", "lo4", "tcp", "127.0.0.1", 40007, "127.0.0.1", 8080)
        pod("accept", "lo4-server", "l8080")
        pod("connect", "lo6", "tcp", "::1", 40008, "::1", 8443)
        pod("accept", "lo6-server", "l8443")
        pod("connect", "dns", "udp", POD4, 40053, PEER4, 53)
        time.sleep(SETTLE)
        pod("dump", outdir / "pod" / "start")
        peer("dump", outdir / "peer" / "start")

        pod("connect", "cache", "tcp", POD4, 40003, PEER4, 6379)
        peer("accept", "cache", "l6379")
        pod("connect", "tw", "tcp", POD4, 40004, PEER4, 8000)
        peer("accept", "tw", "l8000")
        pod("close", "tw")  # the pod closes first: its socket waits in TIME_WAIT
        time.sleep(SETTLE)
        peer("close", "tw")
        peer("close", "db2")  # the peer closes first: the pod's socket leaves the table
        time.sleep(SETTLE)
        pod("close", "db2")
        peer("connect", "metrics", "tcp", PEER4, 41003, POD4, 9090)
        pod("accept", "metrics", "l9090")
        peer("connect", "tls", "tcp", PEER4, 41004, POD4, 8443)
        pod("accept", "tls", "l8443")
        peer("close", "web2")  # the pod does not close its end: CLOSE_WAIT
        pod("connect", "lodns", "udp", "::1", 40300, "::1", 9998)
        time.sleep(SETTLE)
        pod("dump", outdir / "pod" / "end")
        peer("dump", outdir / "peer" / "end")
        pod.stop()
        peer.stop()


def main(argv: list[str] | None = None) -> int:
    """Record the tables into the directory given on the command line (default: ``lab/`` here)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("outdir", type=Path, nargs="?", default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    record(args.outdir.resolve())
    for path in sorted(args.outdir.glob("*/*/*")):
        print(path, len(path.read_text().splitlines()) - 1, "sockets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
