"""Benchmark: ``kubectl netgen generate`` on a large cluster and a million flows.

Writes a synthetic capture directory (``cluster.json`` + ``pcaps/<namespace>/<pod>.pcap``) and times
``python3 -m kubectl_netgen generate DIR --no-reverse-dns -o yaml`` on it (stdout to /dev/null),
reporting wall time and peak RSS of that process (``os.wait4``), at full scale and at 1/4 and 1/2 of
it, with the ratios between scales to show how the cost grows.

Full scale (issue: generate, Scale):

* ``cluster.json``: a ``v1 List`` as ``kubectl netgen snapshot -A`` writes it: 20 namespaces, 10
  nodes with podCIDRs, 2,000 Deployments -> ReplicaSets -> 5 pods each (10,000 pods with
  ``pod-template-hash`` labels), one Service per Deployment (2,000, ``kube-system/kube-dns`` among
  them) with an EndpointSlice - except every 40th, whose backends come from its selector - and a
  named ``targetPort`` on every third.
* 200 captured pods (one per tenth Deployment), each with 5,000 flows: 999 to Service ClusterIPs,
  one to kube-dns, 1,500 straight to pod IPs, 1,500 to external addresses in the documentation
  ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) and 1,000 from distinct client pods:
  1,000,000 flows, each one connection written as a SYN and a SYN/ACK (2,000,000 packets).

The cluster and the number of captured pods scale together; flows per pod stay the same.
Target: full scale in under 20 s and 1 GB.

Usage: python3 bench/generate_bench.py [--scale F] [--dir DIR] [--repeat K] [--keep]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

NETGEN = [sys.executable, "-m", "kubectl_netgen"]

PODS, SERVICES, CAPTURED = 10_000, 2_000, 200
"""Full scale: pods, Services (one per Deployment, 5 pods each) and captured pods."""
NAMESPACES, NODES = 20, 10
SERVICE_FLOWS, POD_FLOWS, EXTERNAL_FLOWS, INGRESS_FLOWS = 999, 1_500, 1_500, 1_000
"""Flows per captured pod by kind (plus one to kube-dns): 5,000."""
EXTERNAL_NETS = ((192, 0, 2), (198, 51, 100), (203, 0, 113))
EXTERNAL_PORTS = (443, 80, 8443, 5432, 6379)
HTTP_PORT, METRICS_PORT = 8080, 9090
"""Container ports of every app pod (``http`` and ``metrics``); Services expose them on 80 and 9090."""
T0 = "2026-01-01T00:00:00Z"


def pod_ip(index: int) -> IPv4Address:
    """Pod ``index`` lives on node ``index % NODES``, whose podCIDR is 10.244.<16*node>.0/20."""
    node, slot = index % NODES, index // NODES + 2
    return IPv4Address(f"10.244.{16 * node + slot // 256}.{slot % 256}")


def cluster_ip(index: int) -> IPv4Address:
    return IPv4Address(f"10.96.{index // 250}.{index % 250 + 2}")


def _meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{namespace}-{name}", "resourceVersion": "1",
                            "creationTimestamp": T0}
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def _owner(kind: str, name: str, api: str = "apps/v1") -> list[dict[str, Any]]:
    return [{"apiVersion": api, "kind": kind, "name": name, "uid": f"uid-{name}", "controller": True,
             "blockOwnerDeletion": True}]


class Cluster:
    """The synthetic cluster at one scale: the ``v1 List`` and what the traffic generator needs of it."""

    def __init__(self, scale: float) -> None:
        self.deployments = max(2, round(SERVICES * scale))
        self.items: list[dict[str, Any]] = []
        self.pod_ips: list[IPv4Address] = []
        self.pod_names: list[tuple[str, str]] = []
        self.service_ports: list[tuple[IPv4Address, int]] = []
        self.dns_ip = cluster_ip(0)
        namespaces = ["kube-system"] + [f"team-{i:02d}" for i in range(1, NAMESPACES)]
        for ns in namespaces:
            self.items.append({"apiVersion": "v1", "kind": "Namespace",
                               "metadata": _meta(ns, labels={"kubernetes.io/metadata.name": ns}),
                               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        for n in range(NODES):
            self.items.append({
                "apiVersion": "v1", "kind": "Node",
                "metadata": _meta(f"node-{n}", labels={"kubernetes.io/hostname": f"node-{n}",
                                                       "kubernetes.io/os": "linux"}),
                "spec": {"podCIDR": f"10.244.{16 * n}.0/20", "podCIDRs": [f"10.244.{16 * n}.0/20"]},
                "status": {"addresses": [{"type": "InternalIP", "address": f"172.18.0.{n + 2}"},
                                         {"type": "Hostname", "address": f"node-{n}"}]}})
        for d in range(self.deployments):
            # Deployment 0 is CoreDNS behind kube-system/kube-dns; the rest are apps spread over the namespaces.
            ns = "kube-system" if d == 0 else namespaces[1 + d % (NAMESPACES - 1)]
            self._deployment(d, ns)

    def _deployment(self, d: int, ns: str) -> None:
        dns = d == 0
        app = "coredns" if dns else f"app-{d:05d}"
        key, value = ("k8s-app", "kube-dns") if dns else ("app.kubernetes.io/name", app)
        labels = {key: value} if dns else {key: value, "app.kubernetes.io/part-of": f"shop-{d % 7}", "tier": "backend"}
        if dns:
            ports = [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                     {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}]
            svc_ports = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                         {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]
        else:
            ports = [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                     {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]
            svc_ports = [{"name": "http", "port": 80, "protocol": "TCP",
                          "targetPort": "http" if d % 3 == 0 else HTTP_PORT},
                         {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT}]
        template_hash = f"{d * 7919 % 10**10:010d}"[:10]
        rs = f"{app}-{template_hash}"
        container = {"name": app, "image": f"registry.example.com/{app}:1.{d % 40}.0", "ports": ports,
                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                     "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}
        template = {"metadata": {"labels": labels}, "spec": {"containers": [container]}}
        self.items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                           "metadata": _meta(app, ns, labels=labels, generation=1),
                           "spec": {"replicas": 5, "selector": {"matchLabels": {key: value}}, "template": template},
                           "status": {"replicas": 5, "readyReplicas": 5}})
        rs_template = {"metadata": {"labels": {**labels, "pod-template-hash": template_hash}},
                       "spec": template["spec"]}
        self.items.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                           "metadata": _meta(rs, ns, labels={**labels, "pod-template-hash": template_hash},
                                             ownerReferences=_owner("Deployment", app)),
                           "spec": {"replicas": 5, "selector": {"matchLabels": {key: value,
                                                                                "pod-template-hash": template_hash}},
                                    "template": rs_template},
                           "status": {"replicas": 5}})
        endpoints = []
        for r in range(5):
            index = len(self.pod_ips)
            ip = pod_ip(index)
            name = f"{rs}-{r:05d}"
            node = f"node-{index % NODES}"
            self.pod_ips.append(ip)
            self.pod_names.append((ns, name))
            self.items.append({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": _meta(name, ns, labels={**labels, "pod-template-hash": template_hash},
                                  ownerReferences=_owner("ReplicaSet", rs)),
                "spec": {"nodeName": node, "containers": [container], "restartPolicy": "Always",
                         "serviceAccountName": "default"},
                "status": {"phase": "Running", "hostIP": f"172.18.0.{index % NODES + 2}", "podIP": str(ip),
                           "podIPs": [{"ip": str(ip)}], "startTime": T0,
                           "conditions": [{"type": "Ready", "status": "True"}]}})
            endpoints.append({"addresses": [str(ip)], "conditions": {"ready": True, "serving": True},
                              "nodeName": node, "targetRef": {"kind": "Pod", "namespace": ns, "name": name}})
        service = "kube-dns" if dns else app
        ip = cluster_ip(d)
        self.items.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(service, ns, labels=labels),
                           "spec": {"type": "ClusterIP", "clusterIP": str(ip), "clusterIPs": [str(ip)],
                                    "selector": {key: value}, "ports": svc_ports}})
        if not dns:
            self.service_ports += [(ip, p["port"]) for p in svc_ports]
        if d % 40 == 39:
            return  # no EndpointSlice: the backends come from the Service's selector
        self.items.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": _meta(f"{service}-abcde", ns, labels={"kubernetes.io/service-name": service},
                              ownerReferences=_owner("Service", service, "v1")),
            "ports": [{"name": p["name"], "port": c["containerPort"], "protocol": p["protocol"]}
                      for p, c in zip(svc_ports, ports, strict=True)],
            "endpoints": endpoints})

    def write(self, path: Path) -> None:
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                                    "items": self.items}, indent=1))


class PcapWriter:
    """A classic little-endian pcap of Ethernet frames holding a TCP SYN and SYN/ACK per connection."""

    _record = struct.Struct("<IIII")
    _frame = struct.Struct("!6s6sH BBHHHBBH4s4s HHIIBBHHH")

    def __init__(self, path: Path) -> None:
        self.fh = path.open("wb")
        self.fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.chunks: list[bytes] = []
        self.usec = 0

    def _packet(self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int) -> None:
        frame = self._frame.pack(b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02", 0x0800,
                                 0x45, 0, 40, 0, 0x4000, 64, 6, 0, src, dst,
                                 sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
        self.usec += 37
        self.chunks.append(self._record.pack(1_767_225_600 + self.usec // 1_000_000, self.usec % 1_000_000,
                                             len(frame), len(frame)))
        self.chunks.append(frame)

    def connection(self, client: bytes, server: bytes, sport: int, dport: int) -> None:
        """A handshake's first two packets: enough to tell the client from the server."""
        seq = (sport * 2654435761) & 0xFFFFFFFF
        self._packet(client, server, sport, dport, seq, 0, 0x02)
        self._packet(server, client, dport, sport, seq ^ 0x5A5A5A5A, (seq + 1) & 0xFFFFFFFF, 0x12)
        if len(self.chunks) >= 8192:
            self.flush()

    def flush(self) -> None:
        self.fh.write(b"".join(self.chunks))
        self.chunks.clear()

    def close(self) -> None:
        self.flush()
        self.fh.close()


def write_pod_capture(path: Path, cluster: Cluster, captured: int, rng: random.Random) -> int:
    """Write the flows of captured pod ``captured`` (an index into the cluster's pods); return their count."""
    own = cluster.pod_ips[captured].packed
    writer = PcapWriter(path)
    sport = iter(rng.sample(range(32768, 61000), 28000))
    conns: list[tuple[bytes, bytes, int, int]] = []
    for i in rng.sample(range(len(cluster.service_ports)), min(SERVICE_FLOWS, len(cluster.service_ports))):
        ip, port = cluster.service_ports[i]
        conns.append((own, ip.packed, next(sport), port))
    conns.append((own, cluster.dns_ip.packed, next(sport), 53))
    others = [i for i in range(5, len(cluster.pod_ips)) if i != captured]  # not the CoreDNS pods (0-4)
    for i in rng.sample(range(2 * len(others)), min(POD_FLOWS, 2 * len(others))):
        conns.append((own, cluster.pod_ips[others[i // 2]].packed, next(sport), (HTTP_PORT, METRICS_PORT)[i % 2]))
    externals = [bytes((*net, host)) for net in EXTERNAL_NETS for host in range(1, 255)]
    for i in rng.sample(range(len(externals) * len(EXTERNAL_PORTS)), EXTERNAL_FLOWS):
        conns.append((own, externals[i // len(EXTERNAL_PORTS)], next(sport), EXTERNAL_PORTS[i % len(EXTERNAL_PORTS)]))
    for i in rng.sample(others, min(INGRESS_FLOWS, len(others))):
        conns.append((cluster.pod_ips[i].packed, own, rng.randrange(32768, 61000), rng.choice((HTTP_PORT,
                                                                                               METRICS_PORT))))
    rng.shuffle(conns)
    for conn in conns:
        writer.connection(*conn)
    writer.close()
    return len(conns)


def write_capture_dir(root: Path, scale: float) -> tuple[Cluster, int, int]:
    """Write ``cluster.json`` and the pod captures at ``scale``; return the cluster, captured pods and flows."""
    rng = random.Random(20260101)
    cluster = Cluster(scale)
    root.mkdir(parents=True, exist_ok=True)
    cluster.write(root / "cluster.json")
    captured = max(1, round(CAPTURED * scale))
    step = (cluster.deployments - 1) // captured
    flows = 0
    for c in range(captured):
        index = 5 * (1 + c * step)  # the first pod of every step-th app Deployment
        ns, name = cluster.pod_names[index]
        (root / "pcaps" / ns).mkdir(parents=True, exist_ok=True)
        flows += write_pod_capture(root / "pcaps" / ns / f"{name}.pcap", cluster, index, rng)
    return cluster, captured, flows


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` with stdout to /dev/null; return (wall seconds, peak RSS in MB) of that process."""
    with open(os.devnull, "wb") as devnull, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=devnull, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            raise SystemExit(f"benchmark command failed ({code}): {' '.join(cmd)}\n{err.read().decode()[-2000:]}")
        err.seek(0)
        warnings = err.read().decode().count("\n")
    if warnings:
        print(f"  note: {warnings} line(s) on stderr")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    """Command line: write the capture directories, time ``generate`` on each, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="full scale as a fraction of the issue's size")
    parser.add_argument("--dir", type=Path, help="where to write the capture directories (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scale; the fastest counts")
    parser.add_argument("--keep", action="store_true", help="keep the capture directories")
    args = parser.parse_args()

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="netgen-generate-bench-"))
    results: list[tuple[float, int, int, int, float, float]] = []
    for fraction in (0.25, 0.5, 1.0):
        scale = args.scale * fraction
        root = workdir / f"scale-{scale:g}"
        t = time.perf_counter()
        cluster, captured, flows = write_capture_dir(root, scale)
        size = sum(f.stat().st_size for f in (root / "pcaps").rglob("*.pcap")) / 1e6
        print(f"scale {scale:g}: {len(cluster.pod_ips):,} pods, {cluster.deployments:,} Services, "
              f"{captured} captured pods, {flows:,} flows ({2 * flows:,} packets, {size:.0f} MB of pcap), "
              f"written in {time.perf_counter() - t:.1f} s")
        cmd = [*NETGEN, "generate", str(root), "--no-reverse-dns", "-o", "yaml"]
        runs = [timed(cmd) for _ in range(args.repeat)]
        wall, mem = min(r[0] for r in runs), max(r[1] for r in runs)
        results.append((scale, len(cluster.pod_ips), flows, captured, wall, mem))
        if not args.keep:
            shutil.rmtree(root)

    print(f"\n{'scale':>6}{'pods':>9}{'flows':>12}{'seconds':>9}{'flows/s':>11}{'peak MB':>9}")
    for scale, pods, flows, _, wall, mem in results:
        print(f"{scale:>6g}{pods:>9,}{flows:>12,}{wall:>9.2f}{flows / wall:>11,.0f}{mem:>9.0f}")
    print()
    for (s1, _, f1, _, w1, m1), (s2, _, f2, _, w2, m2) in itertools.pairwise(results):
        print(f"{s1:g} -> {s2:g} (x{f2 / f1:.2f} flows): time x{w2 / w1:.2f}, memory x{m2 / m1:.2f}")
    _, _, flows, _, wall, mem = results[-1]
    print(f"\nfull scale: {wall:.1f} s (target < 20 s), {mem:.0f} MB (target < 1024 MB)")
    if args.dir is None and not args.keep:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
