"""A small Kubernetes-shaped network built of Linux namespaces, whose pods really run and talk.

:class:`Fabric` builds, in a few seconds:

* an "underlay" namespace holding a bridge that joins two node namespaces (``node-a`` 10.250.0.11,
  ``node-b`` 10.250.0.12) and the "external" hosts (203.0.113.10 TLS-like on 443, 198.51.100.20
  Postgres-like on 5432);
* in each node, a bridge ``cni0`` for its pod CIDR (10.244.1.0/24, 10.244.2.0/24), routes to the other
  node's pod CIDR and to the external /32s (no NAT between pods; traffic to the externals is masqueraded
  to the node IP, as on most clusters), and kube-proxy-like nftables rules
  (``table ip netgen_kubeproxy``: ClusterIP -> ``numgen random`` -> DNAT to a backend pod), so a pod
  sees traffic to the ClusterIP exactly as on a real cluster;
* one namespace per pod, with a veth into its node's bridge. A pod's ``eth0`` holds its IP as a /32 and
  routes everything, even same-node pod traffic, via the bridge address: the node then routes (and
  conntrack un-DNATs) every reply, which on a real bridge CNI ``br_netfilter`` does;
* a cluster DNS pod (``kube-system/coredns``, Service ``kube-dns`` 10.96.0.10, UDP and TCP 53) running a
  dnspython server: Service names, headless pod IPs, NXDOMAIN for other ``cluster.local`` names, CNAME
  chains for a few external names. Each namespace gets ``/etc/netns/<netns>/resolv.conf`` (and ``hosts``,
  ``nsswitch.conf``), so glibc in ``ip netns exec`` resolves through it, search domains and ndots included;
* workloads: every pod runs a small bounded process (servers on its container ports, client loops
  calling Services by DNS name every half second, a UDP exchange); a hostNetwork DaemonSet pod on node-b;
  a kubelet-like prober per node hitting pods' readiness ports from the node IP every second;
* :attr:`Fabric.objects`: the Kubernetes objects describing exactly what runs, as ``kubectl get … -A -o
  json`` would list them.

Safety: nothing has a link or a route to the machine's network; an nftables guard in every namespace drops
IPv6, multicast and any IPv4 destination outside :data:`ALLOWED_NETWORKS`. Namespaces are named
``ngf-<pid>-<n>-…``; :meth:`Fabric.close` (also run by ``with`` and at exit) kills every process the
fabric started, deletes its namespaces and ``/etc/netns`` entries and its temporary files.

Run ``python3 tests/cluster/fabric.py`` to build one by hand; it prints what it built and waits for Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.netlab import LabError, Proc

ALLOWED_NETWORKS = ("10.244.0.0/16", "10.96.0.0/12", "10.250.0.0/24", "192.0.2.0/24", "198.51.100.0/24",
                    "203.0.113.0/24")
"""The only IPv4 networks any fabric namespace may send to (pods, services, nodes, documentation)."""

PREFIX = f"ngf-{os.getpid()}-"
"""Prefix of every namespace (and ``/etc/netns`` entry) this process creates."""

ETC_NETNS = Path("/etc/netns")
PYTHON = sys.executable
DNS_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
EPOCH = "2026-01-01T00:00:00Z"

_fabrics: weakref.WeakSet[Fabric] = weakref.WeakSet()
_counter = 0
_stale_cleaned = False

Obj = dict[str, Any]


def _run(args: Sequence[str], *, stdin: str | None = None, timeout: float = 10.0,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timed out after {timeout}s: {' '.join(args)}") from e
    if check and done.returncode != 0:
        raise LabError(f"exit {done.returncode}: {' '.join(args)}\nstdin: {(stdin or '')[:2000]}\n"
                       f"stderr: {done.stderr[-2000:]}")
    return done


def _check(address: str) -> str:
    ip = ipaddress.ip_interface(address).ip
    if not any(ip in ipaddress.ip_network(n) for n in ALLOWED_NETWORKS):
        raise ValueError(f"{address} is outside the fabric's allowed networks")
    return address


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "netgen-fabric/" + "/".join(parts)))


def _suffix(seed: str, length: int) -> str:
    # Like Kubernetes' random name suffixes (no vowels), but deterministic.
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


# --- the cluster's layout ------------------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    """A container port."""

    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class NodeSpec:
    """A node: a namespace with a bridge for its pod CIDR."""

    name: str
    ip: str
    pod_cidr: str

    @property
    def gateway(self) -> str:
        """The bridge's address: the pods' default gateway."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))


@dataclass(frozen=True)
class ExternalSpec:
    """An "external" host outside the cluster, behind the nodes."""

    name: str
    ip: str
    port: int
    kind: str
    """What its server speaks: ``tls`` or ``pg`` (see the workload script)."""


@dataclass
class Controller:
    """A Deployment, StatefulSet, DaemonSet or Job and its pods."""

    kind: str
    namespace: str
    name: str
    labels: dict[str, str]
    image: str
    ports: tuple[Port, ...]
    pods: list[tuple[str, str]]
    """(node, pod IP) per replica; the pod IP is ignored for hostNetwork pods."""
    workload: dict[str, Any]
    """What its processes do: ``{"servers": [...], "clients": [...]}`` or ``{"dns": True}``."""
    host_network: bool = False
    readiness_port: str | None = None
    """A named container port the node's prober GETs every second."""


@dataclass(frozen=True)
class ServiceSpec:
    """A Service: ports are (name, port, targetPort, protocol)."""

    namespace: str
    name: str
    cluster_ip: str | None
    selector: dict[str, str] | None
    ports: tuple[tuple[str, int, int | str, str], ...]
    endpoints: tuple[str, ...] = ()
    """Addresses of a Service without selector (``default/kubernetes``)."""


@dataclass
class Pod:
    """A pod that exists now."""

    namespace: str
    name: str
    node: str
    ip: str
    controller: Controller
    netns: str
    owner_kind: str
    owner_name: str
    labels: dict[str, str]
    procs: list[Proc] = field(default_factory=list)
    popens: list[subprocess.Popen[bytes]] = field(default_factory=list)


NODES = (NodeSpec("node-a", "10.250.0.11", "10.244.1.0/24"), NodeSpec("node-b", "10.250.0.12", "10.244.2.0/24"))
EXTERNALS = (ExternalSpec("payments-edge", "203.0.113.10", 443, "tls"),
             ExternalSpec("ledger-db", "198.51.100.20", 5432, "pg"))
EXTERNAL_NAMES: dict[str, dict[str, str]] = {
    "CNAME": {"api.payments.example.com.": "edge.payments.example.net.",
              "ledger-db.example.com.": "pg-primary.ledger.example.net."},
    "A": {"edge.payments.example.net.": "203.0.113.10", "pg-primary.ledger.example.net.": "198.51.100.20"},
}
API_SERVER = ("10.250.0.11", 6443)


def default_layout(iterations: int) -> tuple[list[Controller], list[ServiceSpec]]:
    """The suggested cluster: shop (frontend, checkout, db, a smoke Job) and kube-system (DNS, exporter).

    Args:
        iterations: How many rounds each client loop makes (one every half second).
    """
    http = Port("http", 8080)
    controllers = [
        Controller("Deployment", "shop", "frontend", {"app": "frontend"}, "registry.example/shop/frontend:1.4",
                   (http,), [("node-a", "10.244.1.10"), ("node-b", "10.244.2.10")],
                   {"servers": [{"port": 8080, "kind": "http"}],
                    "clients": [{"kind": "http", "host": "checkout", "port": 8080},
                                {"kind": "tls", "host": "api.payments.example.com", "port": 443}],
                    "iterations": iterations}, readiness_port="http"),
        Controller("Deployment", "shop", "checkout", {"app": "checkout"}, "registry.example/shop/checkout:2.0",
                   (http,), [("node-b", "10.244.2.11")],
                   {"servers": [{"port": 8080, "kind": "http"}],
                    "clients": [{"kind": "pg", "host": "db", "port": 5432},
                                {"kind": "pg", "host": "ledger-db.example.com", "port": 5432},
                                {"kind": "udp", "host": "db", "port": 8125}],
                    "iterations": iterations}, readiness_port="http"),
        Controller("StatefulSet", "shop", "db", {"app": "db"}, "registry.example/postgres:16",
                   (Port("postgres", 5432), Port("statsd", 8125, "UDP")), [("node-a", "10.244.1.11")],
                   {"servers": [{"port": 5432, "kind": "pg"}, {"port": 8125, "kind": "udp"}]}),
        Controller("Job", "shop", "smoke", {"app": "smoke"}, "registry.example/shop/smoke:1.0", (),
                   [("node-b", "10.244.2.12")],
                   {"clients": [{"kind": "http", "host": "frontend", "port": 80}],
                    "iterations": max(1, iterations // 4), "interval": 2.0}),
        Controller("Deployment", "kube-system", "coredns", {"k8s-app": "kube-dns"},
                   "registry.k8s.io/coredns/coredns:v1.11.1",
                   (Port("dns", 53, "UDP"), Port("dns-tcp", 53)), [("node-a", "10.244.1.2")], {"dns": True}),
        Controller("DaemonSet", "kube-system", "node-exporter", {"app": "node-exporter"},
                   "quay.io/prometheus/node-exporter:v1.8.0", (Port("metrics", 9100),), [("node-b", "")],
                   {"servers": [{"port": 9100, "kind": "http"}]}, host_network=True),
    ]
    services = [
        ServiceSpec("default", "kubernetes", "10.96.0.1", None, (("https", 443, API_SERVER[1], "TCP"),),
                    endpoints=(API_SERVER[0],)),
        ServiceSpec("kube-system", "kube-dns", DNS_IP, {"k8s-app": "kube-dns"},
                    (("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP"))),
        ServiceSpec("shop", "frontend", "10.96.100.10", {"app": "frontend"}, (("http", 80, "http", "TCP"),)),
        ServiceSpec("shop", "checkout", "10.96.100.20", {"app": "checkout"}, (("http", 8080, 8080, "TCP"),)),
        ServiceSpec("shop", "db", None, {"app": "db"}, (("postgres", 5432, 5432, "TCP"),)),
    ]
    return controllers, services


# --- programs run inside the namespaces ------------------------------------------------------------

# One program per pod: servers on its ports until its lifetime ends, and a bounded client loop calling
# names through glibc (so the pod's resolv.conf). It prints one line per thing it did.
_WORKLOAD = r"""
import json, socket, sys, threading, time
cfg = json.loads(sys.argv[1])
deadline = time.monotonic() + float(cfg["lifetime"])
REPLY = {"http": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
         "tls": b"\x16\x03\x03\x00\x06server", "pg": b"R\x00\x00\x00\x08\x00\x00\x00\x00"}
def request(kind, host):
    if kind == "http":
        path = cfg.get("path", "/")
        agent = cfg.get("agent", "netgen-client/1")
        return ("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n" % (path, host, agent)).encode()
    return {"tls": b"\x16\x03\x01\x00\x06client", "pg": b"\x00\x00\x00\x08\x04\xd2\x16\x2f"}[kind]
def log(*words):
    print(*words, flush=True)
def handle(conn, peer, port, kind):
    with conn:
        try:
            conn.settimeout(2.0)
            data = conn.recv(65536)
            conn.sendall(REPLY[kind])
        except OSError as e:
            log("error serve", port, peer[0], e)
            return
    log("served tcp", port, peer[0], len(data))
def tcp_server(port, kind):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((cfg.get("bind", "0.0.0.0"), port))
    s.listen(64)
    s.settimeout(0.5)
    return s, lambda: serve_tcp(s, port, kind)
def serve_tcp(s, port, kind):
    while time.monotonic() < deadline:
        try:
            conn, peer = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(conn, peer, port, kind), daemon=True).start()
def udp_server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((cfg.get("bind", "0.0.0.0"), port))
    s.settimeout(0.5)
    def serve():
        while time.monotonic() < deadline:
            try:
                data, peer = s.recvfrom(65535)
            except socket.timeout:
                continue
            s.sendto(data, peer)
            log("served udp", port, peer[0], len(data))
    return s, serve
def call(target):
    kind, host, port = target["kind"], target["host"], int(target["port"])
    udp = kind == "udp"
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    family, stype, proto, _, address = infos[0]
    with socket.socket(family, stype, proto) as c:
        c.settimeout(2.0)
        if cfg.get("source"):
            c.bind((cfg["source"], 0))
        if udp:
            c.sendto(b"shop.checkout.requests:1|c", address)
            got = c.recv(65535)
        else:
            c.connect(address)
            c.sendall(request(kind, host))
            got = b""
            while len(got) < 65536:
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
                if kind != "http":
                    break
    return address[0], len(got)
threads = []
for server in cfg.get("servers", []):
    sock, loop = udp_server(server["port"]) if server["kind"] == "udp" else tcp_server(server["port"], server["kind"])
    threads.append(threading.Thread(target=loop, daemon=True))
log("ready")
for t in threads:
    t.start()
clients = cfg.get("clients", [])
if clients:
    time.sleep(float(cfg.get("delay", 0.5)))
    for i in range(int(cfg.get("iterations", 10))):
        if time.monotonic() >= deadline:
            break
        for target in clients:
            name = "%s %s:%s" % (target["kind"], target["host"], target["port"])
            try:
                ip, size = call(target)
                log("ok", name, ip, size)
            except OSError as e:
                log("error", name, type(e).__name__, e)
        time.sleep(float(cfg.get("interval", 0.5)))
    log("clients done")
for t in threads:
    t.join(max(0.0, deadline - time.monotonic()))
"""

# The cluster DNS: authoritative for the zone file it re-reads when it changes (a pod deleted), NXDOMAIN
# for everything else. It never forwards anywhere.
_DNS_SERVER = r"""
import json, os, socket, struct, sys, threading, time
import dns.flags, dns.message, dns.rcode, dns.rdatatype, dns.rrset
path, lifetime = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + lifetime
state = {"mtime": None, "zone": None}
lock = threading.Lock()
def zone():
    with lock:
        st = os.stat(path)
        mtime = (st.st_ino, st.st_mtime_ns, st.st_size)  # a new file (os.replace) is a new inode
        if mtime != state["mtime"]:
            with open(path) as f:
                state["zone"] = json.load(f)
            state["mtime"] = mtime
        return state["zone"]
def soa(name):
    labels = name.rstrip(".").split(".")
    origin = "cluster.local." if name.endswith(".cluster.local.") else ".".join(labels[-2:]) + "."
    rdata = "ns.dns.%s hostmaster.%s 1 7200 1800 86400 30" % (origin, origin)
    return dns.rrset.from_text(origin, 30, "IN", "SOA", rdata)
def answer(wire):
    z = zone()
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA | dns.flags.RA
    question = query.question[0]
    name = question.name.to_text().lower()
    asked = name
    for _ in range(8):
        if name not in z["CNAME"] or question.rdtype == dns.rdatatype.CNAME:
            break
        response.answer.append(dns.rrset.from_text(name, 30, "IN", "CNAME", z["CNAME"][name]))
        name = z["CNAME"][name]
    if question.rdtype == dns.rdatatype.CNAME and name in z["CNAME"]:
        response.answer.append(dns.rrset.from_text(name, 30, "IN", "CNAME", z["CNAME"][name]))
    elif question.rdtype == dns.rdatatype.A and z["A"].get(name):
        response.answer.append(dns.rrset.from_text(name, 30, "IN", "A", *z["A"][name]))
    elif name in z["A"] or name in z["CNAME"]:
        response.authority.append(soa(name))
    else:
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(soa(name))
    print("query", asked, dns.rdatatype.to_text(question.rdtype), dns.rcode.to_text(response.rcode()), flush=True)
    return response.to_wire()
def serve_udp(sock):
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            wire, peer = sock.recvfrom(65535)
        except socket.timeout:
            continue
        try:
            sock.sendto(answer(wire), peer)
        except Exception as e:
            print("error", e, flush=True)
def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
def serve_conn(conn):
    with conn:
        conn.settimeout(2.0)
        try:
            while (head := recv_exact(conn, 2)) is not None:
                wire = recv_exact(conn, struct.unpack("!H", head)[0])
                if wire is None:
                    break
                reply = answer(wire)
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass
def serve_tcp(sock):
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve_conn, args=(conn,), daemon=True).start()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 53))
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 53))
tcp.listen(64)
threads = [threading.Thread(target=f, args=(s,), daemon=True) for f, s in ((serve_udp, udp), (serve_tcp, tcp))]
for t in threads:
    t.start()
print("ready", flush=True)
for t in threads:
    t.join(max(0.0, deadline - time.monotonic()))
"""


# --- the fabric ----------------------------------------------------------------------------------


class Fabric:
    """A running local cluster network: nodes, pods, Services, DNS, externals and their processes.

    Args:
        iterations: Rounds each workload client loop makes (every ``interval`` seconds).
        lifetime: Seconds every server and prober runs at most (teardown kills them earlier).
        probe_iterations: How many probes (one a second) each node's prober sends.
        masquerade: SNAT pod traffic leaving the cluster (to the externals) to the node's IP, as most
            clusters do (ip-masq-agent, kind's kindnet). Pod-to-pod and pod-to-node traffic is never NATed.
        layout: Controllers and Services to build instead of :func:`default_layout`.
    """

    def __init__(self, *, iterations: int = 40, lifetime: float = 600.0, probe_iterations: int = 60,
                 masquerade: bool = True, layout: tuple[list[Controller], list[ServiceSpec]] | None = None) -> None:
        """Record the layout; :meth:`start` (or ``with``) builds it."""
        global _counter
        _counter += 1
        self.prefix = f"{PREFIX}{_counter}-"
        self.iterations = iterations
        self.lifetime = lifetime
        self.probe_iterations = probe_iterations
        self.masquerade = masquerade
        self.controllers, self.services = layout or default_layout(iterations)
        self.nodes = {n.name: n for n in NODES}
        self.externals = list(EXTERNALS)
        self.pods: dict[tuple[str, str], Pod] = {}
        self.namespaces: list[str] = []
        self.etc_dirs: list[Path] = []
        self.procs: list[Proc] = []
        self.popens: list[subprocess.Popen[bytes]] = []
        self.system_procs: dict[str, Proc] = {}
        """Processes that are not pods: ``prober-<node>``, ``external-<name>``."""
        self.tmp = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.zone_file = self.tmp / "zone.json"
        self.created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._closed = False
        self._started = False
        _fabrics.add(self)

    # --- names -----------------------------------------------------------------------------------

    def node_netns(self, node: str) -> str:
        """The namespace of ``node``."""
        return f"{self.prefix}{node}"

    @property
    def underlay_netns(self) -> str:
        """The namespace holding the bridge that joins nodes and externals."""
        return f"{self.prefix}underlay"

    def node_ip(self, node: str) -> str:
        """The InternalIP of ``node``."""
        return self.nodes[node].ip

    def pod(self, namespace: str, name: str) -> Pod:
        """The pod ``namespace/name`` (raises KeyError if there is none)."""
        return self.pods[(namespace, name)]

    def pods_of(self, namespace: str, controller: str) -> list[Pod]:
        """The pods of one controller (Deployment, StatefulSet, DaemonSet or Job), sorted by name."""
        return sorted((p for p in self.pods.values()
                       if p.namespace == namespace and p.controller.name == controller), key=lambda p: p.name)

    def pod_netns(self, namespace: str, name: str) -> str:
        """The network namespace of a pod (its node's, for a hostNetwork pod)."""
        return self.pod(namespace, name).netns

    def service(self, namespace: str, name: str) -> ServiceSpec:
        """The Service ``namespace/name``."""
        for svc in self.services:
            if (svc.namespace, svc.name) == (namespace, name):
                return svc
        raise KeyError(f"{namespace}/{name}")

    def logs(self, namespace: str, name: str) -> list[str]:
        """What a pod's workload process printed so far (stdout lines)."""
        return [line for proc in self.pod(namespace, name).procs for line in proc.lines]

    # --- building --------------------------------------------------------------------------------

    def start(self) -> Fabric:
        """Build the namespaces, links, routes, rules and DNS, and start every process.

        Raises:
            LabError: A step failed (everything built so far is torn down).
        """
        if self._started:
            return self
        self._started = True
        _cleanup_stale()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        self._place_pods()
        under = self._namespace(self.underlay_netns, {})
        self._ip(under, ["link add br0 type bridge mcast_snooping 0 stp_state 0", "link set br0 up"])
        for node in self.nodes.values():
            ns = self._namespace(self.node_netns(node.name), {"net.ipv4.ip_forward": "1",
                                                              "net.ipv4.conf.all.send_redirects": "0",
                                                              "net.ipv4.conf.default.send_redirects": "0"})
            # What a ClusterFirstWithHostNet pod of kube-system (the node-exporter) gets; nodes have no
            # other DNS in the lab.
            self._etc(ns, node.name, node.ip, search=f"kube-system.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} "
                                                     f"{CLUSTER_DOMAIN}")
            cmds = [f"link add u-{node.name} type veth peer name eth0 netns {ns}",
                    f"link set u-{node.name} master br0 up"]
            self._ip(under, cmds)
            prefix = ipaddress.ip_network(node.pod_cidr).prefixlen
            cmds = ["link add cni0 type bridge mcast_snooping 0 stp_state 0",
                    f"addr add {node.gateway}/{prefix} dev cni0", "link set cni0 up",
                    f"addr add {node.ip}/24 dev eth0", "link set eth0 up",
                    f"route add 10.96.0.0/12 dev cni0 src {node.ip}"]
            for other in self.nodes.values():
                if other is not node:
                    cmds.append(f"route add {other.pod_cidr} via {other.ip} dev eth0")
            cmds += [f"route add {ext.ip}/32 dev eth0 src {node.ip}" for ext in self.externals]
            self._ip(ns, cmds)
        for i, ext in enumerate(self.externals):
            ns = self._namespace(f"{self.prefix}ext-{ext.name}", {})
            self._etc(ns, ext.name, ext.ip, search="")
            self._ip(under, [f"link add u-ext{i} type veth peer name eth0 netns {ns}",
                             f"link set u-ext{i} master br0 up"])
            cmds = [f"addr add {ext.ip}/32 dev eth0", "link set eth0 up", "route add 10.250.0.0/24 dev eth0"]
            cmds += [f"route add {n.pod_cidr} via {n.ip} dev eth0" for n in self.nodes.values()]
            self._ip(ns, cmds)
        for index, pod in enumerate(sorted(self.pods.values(), key=lambda p: p.ip)):
            if not pod.controller.host_network:
                self._pod_namespace(pod, index)
        self._sync()
        self._start_processes()

    def _place_pods(self) -> None:
        for ctl in self.controllers:
            template_hash = _suffix(f"{ctl.namespace}/{ctl.name}/template", 10)
            for ordinal, (node, ip) in enumerate(ctl.pods):
                labels = dict(ctl.labels)
                if ctl.kind == "Deployment":
                    owner_kind, owner = "ReplicaSet", f"{ctl.name}-{template_hash}"
                    labels["pod-template-hash"] = template_hash
                    name = f"{owner}-{_suffix(f'{ctl.namespace}/{ctl.name}/{ordinal}', 5)}"
                elif ctl.kind == "StatefulSet":
                    owner_kind, owner, name = "StatefulSet", ctl.name, f"{ctl.name}-{ordinal}"
                    labels["controller-revision-hash"] = f"{ctl.name}-{template_hash}"
                    labels["statefulset.kubernetes.io/pod-name"] = name
                    labels["apps.kubernetes.io/pod-index"] = str(ordinal)
                elif ctl.kind == "DaemonSet":
                    owner_kind, owner = "DaemonSet", ctl.name
                    name = f"{ctl.name}-{_suffix(f'{ctl.namespace}/{ctl.name}/{node}', 5)}"
                    labels["controller-revision-hash"] = template_hash
                    labels["pod-template-generation"] = "1"
                elif ctl.kind == "Job":
                    owner_kind, owner = "Job", ctl.name
                    name = f"{ctl.name}-{_suffix(f'{ctl.namespace}/{ctl.name}/{ordinal}', 5)}"
                    job_uid = _uid("Job", ctl.namespace, ctl.name)
                    labels.update({"batch.kubernetes.io/controller-uid": job_uid,
                                   "batch.kubernetes.io/job-name": ctl.name,
                                   "controller-uid": job_uid, "job-name": ctl.name})
                else:
                    raise ValueError(f"unknown controller kind {ctl.kind}")
                if ctl.host_network:
                    ip, netns = self.nodes[node].ip, self.node_netns(node)
                else:
                    _check(ip)
                    if ipaddress.ip_address(ip) not in ipaddress.ip_network(self.nodes[node].pod_cidr):
                        raise ValueError(f"{ip} is not in {node}'s pod CIDR")
                    netns = f"{self.prefix}{ctl.namespace}-{name}"
                self.pods[(ctl.namespace, name)] = Pod(ctl.namespace, name, node, ip, ctl, netns, owner_kind,
                                                       owner, labels)

    def _namespace(self, netns: str, sysctls: dict[str, str]) -> str:
        _run(["ip", "netns", "add", netns])
        self.namespaces.append(netns)
        settings = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1",
                    "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0",
                    "net.ipv4.conf.all.accept_redirects": "0", "net.ipv4.conf.default.accept_redirects": "0",
                    **sysctls}
        _run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items())])
        allowed = ", ".join(ALLOWED_NETWORKS)
        guard = (
            "table inet netgen_guard {\n"
            " chain output {\n  type filter hook output priority 0; policy accept;\n"
            '  oifname "lo" accept\n  meta nfproto ipv6 drop\n'
            f"  meta nfproto ipv4 ip daddr != {{ {allowed} }} drop\n }}\n"
            " chain forward {\n  type filter hook forward priority 0; policy accept;\n  meta nfproto ipv6 drop\n"
            f"  meta nfproto ipv4 ip daddr != {{ {allowed} }} drop\n }}\n}}\n"
        )
        _run(["ip", "netns", "exec", netns, "nft", "-f", "-"], stdin=guard)
        self._ip(netns, ["link set lo up"])
        return netns

    def _ip(self, netns: str, commands: Iterable[str]) -> None:
        _run(["ip", "-n", netns, "-batch", "-"], stdin="\n".join(commands) + "\n")

    def _etc(self, netns: str, hostname: str, ip: str, *, search: str) -> None:
        # `ip netns exec` bind-mounts these over /etc's, so glibc in the namespace asks the cluster DNS
        # (and only it: no nss-resolve, no nscd).
        directory = ETC_NETNS / netns
        for attempt in range(3):  # another fabric may remove an empty /etc/netns in between
            try:
                directory.mkdir(parents=True, exist_ok=True)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        self.etc_dirs.append(directory)
        lines = [f"nameserver {DNS_IP}"]
        if search:
            lines.append(f"search {search}")
        lines.append("options ndots:5" if search else "options ndots:1")
        (directory / "resolv.conf").write_text("\n".join(lines) + "\n")
        (directory / "hosts").write_text(
            f"# Kubernetes-managed hosts file (netgen fabric).\n127.0.0.1\tlocalhost\n{ip}\t{hostname}\n")
        (directory / "nsswitch.conf").write_text("hosts: files dns\n")

    def _pod_namespace(self, pod: Pod, index: int) -> None:
        node = self.nodes[pod.node]
        ns = self._namespace(pod.netns, {})
        search = f"{pod.namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
        self._etc(ns, pod.name, pod.ip, search=search)
        port = f"vp{index}"
        self._ip(self.node_netns(node.name), [f"link add {port} type veth peer name eth0 netns {ns}",
                                              f"link set {port} master cni0 up"])
        # A /32 and a gateway route: every packet, even to a pod on the same bridge, is routed by the
        # node, so conntrack sees both directions of DNAT'ed connections.
        self._ip(ns, [f"addr add {pod.ip}/32 dev eth0", "link set eth0 up",
                      f"route add {node.gateway} dev eth0 scope link",
                      f"route add default via {node.gateway} dev eth0 src {pod.ip}"])

    # --- Services: kube-proxy rules and DNS --------------------------------------------------------

    def _endpoints(self, svc: ServiceSpec) -> list[tuple[Pod | None, str, dict[str, tuple[int, str]]]]:
        """(pod, address, {port name: (resolved target port, protocol)}) per ready endpoint."""
        if svc.selector is None:
            return [(None, addr, {name: (int(target), proto) for name, _, target, proto in svc.ports})
                    for addr in svc.endpoints]
        found: list[tuple[Pod | None, str, dict[str, tuple[int, str]]]] = []
        for pod in sorted(self.pods.values(), key=lambda p: p.name):
            if pod.namespace != svc.namespace or any(pod.labels.get(k) != v for k, v in svc.selector.items()):
                continue
            ports: dict[str, tuple[int, str]] = {}
            for name, _, target, proto in svc.ports:
                if isinstance(target, int):
                    ports[name] = (target, proto)
                else:
                    named = [p.port for p in pod.controller.ports if p.name == target and p.protocol == proto]
                    if named:
                        ports[name] = (named[0], proto)
            found.append((pod, pod.ip, ports))
        return found

    def kubeproxy_rules(self) -> str:
        """The nftables ruleset (kube-proxy nftables mode, in small) loaded into every node."""
        lines = ["table ip netgen_kubeproxy", "delete table ip netgen_kubeproxy", "table ip netgen_kubeproxy {",
                 " chain prerouting {", "  type nat hook prerouting priority dstnat; policy accept;",
                 "  jump services", " }",
                 " chain output {", "  type nat hook output priority -100; policy accept;", "  jump services", " }"]
        services: list[str] = []
        chains: list[str] = []
        for svc in self.services:
            if svc.cluster_ip is None:
                continue
            endpoints = self._endpoints(svc)
            for name, port, _, proto in svc.ports:
                backends = [(addr, ports[name][0]) for _, addr, ports in endpoints if name in ports]
                if not backends:
                    continue
                l4 = proto.lower()
                chain = f"service-{svc.namespace}-{svc.name}-{name}-{l4}"
                services.append(f"  ip daddr {svc.cluster_ip} {l4} dport {port} goto {chain}")
                verdicts = ", ".join(f"{i} : goto {chain}-ep{i}" for i in range(len(backends)))
                chains += [f" chain {chain} {{", f"  numgen random mod {len(backends)} vmap {{ {verdicts} }}", " }"]
                for i, (addr, target) in enumerate(backends):
                    chains += [f" chain {chain}-ep{i} {{", f"  # {addr}:{target}",
                               f"  meta l4proto {l4} dnat to {addr}:{target}", " }"]
        lines += [" chain services {", *services, " }", *chains, "}"]
        return "\n".join(lines) + "\n"

    @staticmethod
    def masquerade_rules() -> str:
        """SNAT of pod traffic to destinations outside pods, Services and nodes (the externals)."""
        return ("table ip netgen_masquerade\ndelete table ip netgen_masquerade\ntable ip netgen_masquerade {\n"
                " chain postrouting {\n  type nat hook postrouting priority srcnat; policy accept;\n"
                "  ip saddr 10.244.0.0/16 ip daddr != { 10.244.0.0/16, 10.96.0.0/12, 10.250.0.0/24 } masquerade\n"
                " }\n}\n")

    def zone(self) -> dict[str, dict[str, Any]]:
        """The cluster DNS zone: Service names, headless pod names and the external names."""
        records: dict[str, list[str]] = {}
        for svc in self.services:
            fqdn = f"{svc.name}.{svc.namespace}.svc.{CLUSTER_DOMAIN}."
            if svc.cluster_ip is not None:
                records[fqdn] = [svc.cluster_ip]
                continue
            # A headless Service without ready endpoints has no records at all (NXDOMAIN), as in CoreDNS.
            if self._endpoints(svc):
                records[fqdn] = sorted(addr for _, addr, _ in self._endpoints(svc))
            for pod, addr, _ in self._endpoints(svc):
                if pod is not None:
                    records[f"{pod.name}.{fqdn}"] = [addr]
        for name, ip in EXTERNAL_NAMES["A"].items():
            records[name] = [ip]
        return {"A": records, "CNAME": dict(EXTERNAL_NAMES["CNAME"])}

    def _sync(self) -> None:
        rules = self.kubeproxy_rules()
        if self.masquerade:
            rules += self.masquerade_rules()
        for node in self.nodes:
            _run(["ip", "netns", "exec", self.node_netns(node), "nft", "-f", "-"], stdin=rules)
        partial = self.zone_file.with_suffix(".tmp")
        partial.write_text(json.dumps(self.zone(), indent=1, sort_keys=True))
        os.replace(partial, self.zone_file)

    # --- processes ---------------------------------------------------------------------------------

    def _spawn(self, netns: str, args: Sequence[str], name: str) -> Proc:
        proc = Proc(netns, args, name=name)
        self.procs.append(proc)
        return proc

    def _start_processes(self) -> None:
        started: list[Proc] = []
        dns_pods = [p for p in self.pods.values() if p.controller.workload.get("dns")]
        for pod in dns_pods:
            proc = self._spawn(pod.netns, [PYTHON, "-c", _DNS_SERVER, str(self.zone_file), str(self.lifetime)],
                               f"dns {pod.name}")
            pod.procs.append(proc)
            started.append(proc)
        for ext in self.externals:
            cfg = {"lifetime": self.lifetime, "servers": [{"port": ext.port, "kind": ext.kind}]}
            proc = self._spawn(f"{self.prefix}ext-{ext.name}", [PYTHON, "-c", _WORKLOAD, json.dumps(cfg)],
                               f"external {ext.name}")
            self.system_procs[f"external-{ext.name}"] = proc
            started.append(proc)
        for pod in sorted(self.pods.values(), key=lambda p: p.ip):
            if pod in dns_pods:
                continue
            cfg = {"lifetime": self.lifetime, "interval": 0.5, **pod.controller.workload}
            proc = self._spawn(pod.netns, [PYTHON, "-c", _WORKLOAD, json.dumps(cfg)], f"pod {pod.name}")
            pod.procs.append(proc)
            started.append(proc)
        for proc in started:
            proc.expect("^ready$", timeout=15)
        for node in self.nodes.values():
            targets = []
            for pod in sorted(self.pods.values(), key=lambda p: p.name):
                ctl = pod.controller
                if pod.node != node.name or ctl.readiness_port is None or ctl.host_network:
                    continue
                port = next(p.port for p in ctl.ports if p.name == ctl.readiness_port)
                targets.append({"kind": "http", "host": pod.ip, "port": port})
            if not targets:
                continue
            cfg = {"lifetime": self.lifetime, "clients": targets, "iterations": self.probe_iterations,
                   "interval": 1.0, "delay": 0.0, "source": node.ip, "path": "/healthz",
                   "agent": "kube-probe/1.30"}
            proc = self._spawn(self.node_netns(node.name), [PYTHON, "-c", _WORKLOAD, json.dumps(cfg)],
                               f"prober {node.name}")
            self.system_procs[f"prober-{node.name}"] = proc
            proc.expect("^ready$", timeout=15)

    def spawn_in_pod(self, namespace: str, name: str, argv: Sequence[str],
                     env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a pod's network namespace (``ip netns exec``), with stdout/stderr pipes.

        The process gets the pod's resolv.conf and hosts; it is killed at :meth:`delete_pod` or
        :meth:`close` if still running.

        Args:
            namespace: The pod's Kubernetes namespace.
            name: The pod's name.
            argv: The command and its arguments.
            env: Extra environment variables.
        """
        self._check_open()
        pod = self.pod(namespace, name)
        popen = subprocess.Popen(
            ["ip", "netns", "exec", pod.netns, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=None if env is None else {**os.environ, **env}, start_new_session=True)
        pod.popens.append(popen)
        self.popens.append(popen)
        return popen

    def run_in_pod(self, namespace: str, name: str, argv: Sequence[str], *,
                   timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion in a pod's namespace; raise LabError if it fails or takes too long."""
        self._check_open()
        return _run(["ip", "netns", "exec", self.pod_netns(namespace, name), *argv], timeout=timeout)

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod: kill its processes, remove its namespace, and drop it from Services and DNS.

        Like a real deletion, its endpoints leave the EndpointSlices, kube-proxy rules and DNS answers;
        no replacement pod is created. A hostNetwork pod only loses its processes.
        """
        self._check_open()
        pod = self.pods.pop((namespace, name))
        _kill(pod.procs, pod.popens)
        if not pod.controller.host_network:
            _delete_netns(pod.netns)
            self.namespaces.remove(pod.netns)
            directory = ETC_NETNS / pod.netns
            shutil.rmtree(directory, ignore_errors=True)
            self.etc_dirs.remove(directory)
        self._sync()

    # --- description -------------------------------------------------------------------------------

    @property
    def objects(self) -> list[Obj]:
        """The Kubernetes objects describing what runs now (``kubectl get … -A -o json`` items)."""
        return _Describer(self).objects()

    def write_objects(self, path: Path | str) -> Path:
        """Write :attr:`objects` as a ``v1 List`` JSON file; return its path."""
        out = Path(path)
        document = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                    "items": self.objects}
        out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        return out

    def summary(self) -> str:
        """A human-readable listing of nodes, pods, Services and externals."""
        lines = ["NODES"]
        lines += [f"  {n.name:8} {n.ip:14} podCIDR {n.pod_cidr:16} netns {self.node_netns(n.name)}"
                  for n in self.nodes.values()]
        lines.append("PODS")
        lines += [f"  {p.namespace + '/' + p.name:40} {p.ip:14} {p.node:8} netns {p.netns}"
                  for p in sorted(self.pods.values(), key=lambda p: (p.namespace, p.name))]
        lines.append("SERVICES")
        for svc in self.services:
            ports = ", ".join(f"{port}->{target}/{proto}" for _, port, target, proto in svc.ports)
            backends = ", ".join(addr for _, addr, _ in self._endpoints(svc))
            lines.append(f"  {svc.namespace + '/' + svc.name:40} {svc.cluster_ip or 'None':14} {ports}  [{backends}]")
        lines.append("EXTERNAL")
        lines += [f"  {e.name:20} {e.ip}:{e.port} ({e.kind})" for e in self.externals]
        return "\n".join(lines)

    # --- teardown ----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LabError("the fabric is closed")

    def close(self) -> None:
        """Kill every process, delete every namespace, ``/etc/netns`` entry and temporary file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        _kill(self.procs, self.popens)
        for netns in reversed(self.namespaces):
            _delete_netns(netns)
        self.namespaces.clear()
        for directory in self.etc_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            ETC_NETNS.rmdir()  # only if empty: others may use it
        shutil.rmtree(self.tmp, ignore_errors=True)
        _fabrics.discard(self)

    def __enter__(self) -> Fabric:
        """Build the fabric."""
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Tear it down."""
        self.close()


def _kill(procs: Iterable[Proc], popens: Iterable[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.kill()
    for popen in popens:
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)
        for stream in (popen.stdout, popen.stderr):
            if stream is not None:
                stream.close()


def _delete_netns(netns: str) -> None:
    # Anything still inside one of our namespaces was started by us: end it by pid.
    for pid in _run(["ip", "netns", "pids", netns], check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _run(["ip", "netns", "del", netns], check=False)


def fabric_namespaces() -> list[str]:
    """The namespaces of this process's fabrics (``ngf-<pid>-…``) that exist now."""
    listing = _run(["ip", "netns", "list"]).stdout.splitlines()
    return sorted(line.split()[0] for line in listing if line.startswith(PREFIX))


def _cleanup_stale() -> None:
    # Leftovers of an earlier process that had our pid (pids are reused): only our own prefix.
    global _stale_cleaned
    if _stale_cleaned:
        return
    _stale_cleaned = True
    for netns in fabric_namespaces():
        _delete_netns(netns)
    if ETC_NETNS.is_dir():
        for directory in ETC_NETNS.glob(f"{PREFIX}*"):
            shutil.rmtree(directory, ignore_errors=True)


@atexit.register
def _close_all() -> None:
    for fabric in list(_fabrics):
        fabric.close()


# --- Kubernetes objects ----------------------------------------------------------------------------


class _Describer:
    """Turns a fabric's state into Kubernetes objects."""

    def __init__(self, fabric: Fabric) -> None:
        self.f = fabric
        self.ts = fabric.created

    def meta(self, kind: str, namespace: str | None, name: str, labels: dict[str, str] | None = None,
             owner: tuple[str, str, str] | None = None, **extra: Any) -> Obj:
        meta: Obj = {"name": name, "uid": _uid(kind, namespace or "", name), "creationTimestamp": self.ts,
                     "resourceVersion": "1"}
        if namespace is not None:
            meta["namespace"] = namespace
        if labels:
            meta["labels"] = dict(labels)
        if owner is not None:
            api, owner_kind, owner_name = owner
            meta["ownerReferences"] = [{"apiVersion": api, "kind": owner_kind, "name": owner_name,
                                        "uid": _uid(owner_kind, namespace or "", owner_name),
                                        "controller": True, "blockOwnerDeletion": True}]
        meta.update(extra)
        return meta

    def objects(self) -> list[Obj]:
        out: list[Obj] = []
        namespaces = sorted({"default", "kube-system", "kube-public", "kube-node-lease",
                             *(c.namespace for c in self.f.controllers), *(s.namespace for s in self.f.services)})
        for ns in namespaces:
            out.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": self.meta("Namespace", None, ns, {"kubernetes.io/metadata.name": ns}),
                        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        out += [self.node(n) for n in self.f.nodes.values()]
        out += [self.pod(p) for p in sorted(self.f.pods.values(), key=lambda p: (p.namespace, p.name))]
        for svc in self.f.services:
            out.append(self.service(svc))
            out.append(self.endpoint_slice(svc))
        for ctl in self.f.controllers:
            out += self.controller(ctl)
        return out

    def node(self, node: NodeSpec) -> Obj:
        labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        if node.name == "node-a":
            labels["node-role.kubernetes.io/control-plane"] = ""
        return {"apiVersion": "v1", "kind": "Node", "metadata": self.meta("Node", None, node.name, labels),
                "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
                "status": {"addresses": [{"type": "InternalIP", "address": node.ip},
                                         {"type": "Hostname", "address": node.name}],
                           "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                           "lastHeartbeatTime": self.ts, "lastTransitionTime": self.ts}],
                           "nodeInfo": {"kubeletVersion": "v1.30.0", "containerRuntimeVersion": "containerd://1.7",
                                        "operatingSystem": "linux", "architecture": "amd64"}}}

    def template_spec(self, ctl: Controller) -> Obj:
        container: Obj = {"name": ctl.name, "image": ctl.image, "imagePullPolicy": "IfNotPresent"}
        if ctl.ports:
            container["ports"] = [{"name": p.name, "containerPort": p.port, "protocol": p.protocol,
                                   **({"hostPort": p.port} if ctl.host_network else {})} for p in ctl.ports]
        if ctl.readiness_port:
            container["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": ctl.readiness_port,
                                                       "scheme": "HTTP"}, "periodSeconds": 1}
        spec: Obj = {"containers": [container], "restartPolicy": "Never" if ctl.kind == "Job" else "Always",
                     "dnsPolicy": "ClusterFirstWithHostNet" if ctl.host_network else "ClusterFirst",
                     "serviceAccountName": "default"}
        if ctl.host_network:
            spec["hostNetwork"] = True
        if ctl.kind == "DaemonSet":
            spec["nodeSelector"] = {"kubernetes.io/hostname": ctl.pods[0][0]}
        return spec

    def pod(self, pod: Pod) -> Obj:
        ctl = pod.controller
        api = "batch/v1" if pod.owner_kind == "Job" else "apps/v1"
        spec = self.template_spec(ctl)
        spec["nodeName"] = pod.node
        node_ip = self.f.nodes[pod.node].ip
        container_id = "containerd://" + hashlib.sha256(f"{pod.namespace}/{pod.name}".encode()).hexdigest()
        conditions = [{"type": t, "status": "True", "lastTransitionTime": self.ts}
                      for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                "PodScheduled")]
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": self.meta("Pod", pod.namespace, pod.name, pod.labels, (api, pod.owner_kind, pod.owner_name),
                                  generateName=pod.name.rsplit("-", 1)[0] + "-"),
            "spec": spec,
            "status": {"phase": "Running", "hostIP": node_ip, "hostIPs": [{"ip": node_ip}], "podIP": pod.ip,
                       "podIPs": [{"ip": pod.ip}], "startTime": self.ts, "qosClass": "BestEffort",
                       "conditions": conditions,
                       "containerStatuses": [{"name": ctl.name, "image": ctl.image, "imageID": "",
                                              "containerID": container_id, "ready": True, "started": True,
                                              "restartCount": 0,
                                              "state": {"running": {"startedAt": self.ts}}}]},
        }

    def service(self, svc: ServiceSpec) -> Obj:
        labels = {"component": "apiserver", "provider": "kubernetes"} if svc.selector is None else {}
        if svc.namespace == "kube-system" and svc.name == "kube-dns":
            labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
        spec: Obj = {"type": "ClusterIP", "clusterIP": svc.cluster_ip or "None",
                     "clusterIPs": [svc.cluster_ip or "None"], "ipFamilies": ["IPv4"],
                     "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                     "internalTrafficPolicy": "Cluster",
                     "ports": [{"name": name, "port": port, "targetPort": target, "protocol": proto}
                               for name, port, target, proto in svc.ports]}
        if svc.selector is not None:
            spec["selector"] = dict(svc.selector)
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": self.meta("Service", svc.namespace, svc.name, labels), "spec": spec,
                "status": {"loadBalancer": {}}}

    def endpoint_slice(self, svc: ServiceSpec) -> Obj:
        endpoints = []
        ports: dict[str, tuple[int, str]] = {}
        for pod, addr, resolved in self.f._endpoints(svc):
            ports.update(resolved)
            endpoint: Obj = {"addresses": [addr], "conditions": {"ready": True, "serving": True,
                                                                 "terminating": False}}
            if pod is not None:
                endpoint["nodeName"] = pod.node
                endpoint["targetRef"] = {"kind": "Pod", "namespace": pod.namespace, "name": pod.name,
                                         "uid": _uid("Pod", pod.namespace, pod.name)}
            endpoints.append(endpoint)
        labels = {"kubernetes.io/service-name": svc.name,
                  "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
        if svc.selector is None:
            labels["endpointslice.kubernetes.io/managed-by"] = "endpointslicemirroring-controller.k8s.io"
        name = svc.name if svc.selector is None else f"{svc.name}-{_suffix(svc.namespace + '/' + svc.name, 5)}"
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": self.meta("EndpointSlice", svc.namespace, name, labels, ("v1", "Service", svc.name)),
                "addressType": "IPv4", "endpoints": endpoints,
                "ports": [{"name": name, "port": port, "protocol": proto}
                          for name, (port, proto) in sorted(ports.items())]}

    def controller(self, ctl: Controller) -> list[Obj]:
        pods = self.f.pods_of(ctl.namespace, ctl.name)
        template = {"metadata": {"labels": dict(ctl.labels)}, "spec": self.template_spec(ctl)}
        selector = {"matchLabels": dict(ctl.labels)}
        count = len(pods)
        out: list[Obj] = []
        if ctl.kind == "Deployment":
            template_hash = _suffix(f"{ctl.namespace}/{ctl.name}/template", 10)
            out.append({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": self.meta("Deployment", ctl.namespace, ctl.name, ctl.labels),
                        "spec": {"replicas": len(ctl.pods), "selector": selector, "template": template},
                        "status": {"replicas": count, "readyReplicas": count, "availableReplicas": count,
                                   "updatedReplicas": count}})
            rs_labels = {**ctl.labels, "pod-template-hash": template_hash}
            rs_template = copy.deepcopy(template)
            rs_template["metadata"]["labels"] = dict(rs_labels)
            out.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "metadata": self.meta("ReplicaSet", ctl.namespace, f"{ctl.name}-{template_hash}", rs_labels,
                                              ("apps/v1", "Deployment", ctl.name)),
                        "spec": {"replicas": len(ctl.pods), "selector": {"matchLabels": rs_labels},
                                 "template": rs_template},
                        "status": {"replicas": count, "readyReplicas": count, "availableReplicas": count}})
        elif ctl.kind == "StatefulSet":
            headless = [s.name for s in self.f.services if s.namespace == ctl.namespace and s.cluster_ip is None
                        and s.selector is not None and all(ctl.labels.get(k) == v for k, v in s.selector.items())]
            out.append({"apiVersion": "apps/v1", "kind": "StatefulSet",
                        "metadata": self.meta("StatefulSet", ctl.namespace, ctl.name, ctl.labels),
                        "spec": {"replicas": len(ctl.pods), "serviceName": headless[0] if headless else ctl.name,
                                 "selector": selector, "template": template, "podManagementPolicy": "OrderedReady"},
                        "status": {"replicas": count, "readyReplicas": count, "availableReplicas": count}})
        elif ctl.kind == "DaemonSet":
            out.append({"apiVersion": "apps/v1", "kind": "DaemonSet",
                        "metadata": self.meta("DaemonSet", ctl.namespace, ctl.name, ctl.labels),
                        "spec": {"selector": selector, "template": template},
                        "status": {"desiredNumberScheduled": len(ctl.pods), "currentNumberScheduled": count,
                                   "numberReady": count, "numberAvailable": count, "numberMisscheduled": 0}})
        elif ctl.kind == "Job":
            job_uid = _uid("Job", ctl.namespace, ctl.name)
            match = {"batch.kubernetes.io/controller-uid": job_uid}
            job_template = copy.deepcopy(template)
            job_template["metadata"]["labels"].update({**match, "batch.kubernetes.io/job-name": ctl.name,
                                                        "controller-uid": job_uid, "job-name": ctl.name})
            out.append({"apiVersion": "batch/v1", "kind": "Job",
                        "metadata": self.meta("Job", ctl.namespace, ctl.name, ctl.labels),
                        "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 0,
                                 "selector": {"matchLabels": match}, "template": job_template},
                        "status": {"active": count, "startTime": self.ts}})
        return out


# --- by hand -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Build a fabric, print it, and wait for Ctrl-C (or SIGTERM), then tear it down."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=240, help="client rounds (every 0.5 s)")
    parser.add_argument("--lifetime", type=float, default=3600.0, help="seconds servers run at most")
    parser.add_argument("--objects", type=Path, help="also write the objects (v1 List JSON) here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Also for SIGINT: a shell starts background jobs with SIGINT ignored, and `kill -INT` must still work.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = time.monotonic()
    with Fabric(iterations=args.iterations, lifetime=args.lifetime,
                probe_iterations=int(args.lifetime)) as fabric:
        print(f"built in {time.monotonic() - started:.1f}s\n{fabric.summary()}", flush=True)
        if args.objects:
            print(f"objects: {fabric.write_objects(args.objects)}", flush=True)
        print("try: ip netns exec <pod netns> getent hosts checkout.shop\nCtrl-C tears it down.", flush=True)
        try:
            deadline = time.monotonic() + args.lifetime
            while time.monotonic() < deadline:
                time.sleep(1)
        except KeyboardInterrupt:
            print("tearing down", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
