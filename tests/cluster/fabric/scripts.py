"""The programs that run inside the namespaces, as Python source passed to ``python3 -c``.

* :data:`WORKLOAD`: one per pod, external host and node prober: servers on its ports until its lifetime
  ends, and a bounded client loop calling names through glibc (so through the pod's ``resolv.conf``):
  ``iterations`` rounds, or with ``iterations`` 0 one every ``interval`` until the lifetime ends.
* :data:`DNS_SERVER`: the cluster DNS (dnspython), answering from the zone file the lab writes.

They are strings, not modules, so each runs in a fresh interpreter inside ``ip netns exec`` with nothing
of the test process but its configuration on the command line.
"""

from __future__ import annotations

import sys

PYTHON = sys.executable
"""The interpreter that runs every script (the one running the tests, so dnspython is there)."""

# One program per pod: servers on its ports until its lifetime ends, and a bounded client loop calling
# names through glibc (so the pod's resolv.conf). It prints one line per thing it did.
WORKLOAD = r"""
import json, socket, sys, threading, time
cfg = json.loads(sys.argv[1])
deadline = time.monotonic() + float(cfg["lifetime"])
REPLY = {"http": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
         "tls": b"\x16\x03\x03\x00\x06server", "pg": b"R\x00\x00\x00\x08\x00\x00\x00\x00",
         "redis": b"+PONG\r\n"}
def request(kind, host):
    if kind == "http":
        path = cfg.get("path", "/")
        agent = cfg.get("agent", "netgen-client/1")
        return ("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n" % (path, host, agent)).encode()
    return {"tls": b"\x16\x03\x01\x00\x06client", "pg": b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            "redis": b"*1\r\n$4\r\nPING\r\n"}[kind]
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
            c.sendto(target.get("payload", "shop.checkout.requests:1|c").encode(), address)
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
    rounds, done = int(cfg.get("iterations", 10)), 0
    while rounds == 0 or done < rounds:  # 0: until the lifetime ends (or teardown kills it)
        done += 1
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
DNS_SERVER = r"""
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
