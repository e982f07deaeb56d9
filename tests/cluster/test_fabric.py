"""The local cluster fabric really carries pod, Service, DNS and external traffic, and describes itself."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import netlab
from tests.cluster.fabric import ALLOWED_NETWORKS, ETC_NETNS, PYTHON, Fabric, Pod
from tests.conftest import need, run

pytestmark = pytest.mark.root

CHECKOUT_IP = "10.96.100.20"
FRONTEND_IP = "10.96.100.10"
DNS_IP = "10.96.0.10"

_CONNECT = r"""
import socket, sys
host, port, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
c = socket.create_connection((host, port), timeout=3)
local_port = c.getsockname()[1]
c.sendall(payload)
got = b""
while chunk := c.recv(65536):
    got += chunk
c.close()
print(local_port)
print(got.decode(errors="replace").splitlines()[0] if got else "")
"""

_DIG = r"""
import json, sys
import dns.message, dns.query, dns.rcode
server, transport, questions = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ask = dns.query.tcp if transport == "tcp" else dns.query.udp
for name, rdtype in questions:
    response = ask(dns.message.make_query(name, rdtype), server, timeout=3)
    records = [rr.to_text() for rrset in response.answer for rr in rrset]
    types = [(rrset.name.to_text(), rrset.rdtype.name) for rrset in response.answer]
    print(json.dumps([dns.rcode.to_text(response.rcode()), records, types]), flush=True)
"""

_GETADDRINFO = r"""
import json, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
print(json.dumps(sorted({info[4][0] for info in socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)})))
"""


@pytest.fixture(scope="module")
def fabric() -> Iterator[Fabric]:
    need(os.geteuid() == 0, "needs root for network namespaces")
    need(shutil.which("ip") is not None and shutil.which("nft") is not None, "needs iproute2 and nftables")
    need(shutil.which("tcpdump") is not None, "needs tcpdump")
    with Fabric(iterations=30, lifetime=120, probe_iterations=120) as built:
        yield built


def on_node(fabric: Fabric, controller: str, node: str) -> Pod:
    return next(p for p in fabric.pods_of("shop", controller) if p.node == node)


def in_pod(fabric: Fabric, pod: Pod, script: str, *args: str) -> list[str]:
    done = fabric.run_in_pod(pod.namespace, pod.name, [PYTHON, "-c", script, *args], timeout=15)
    return done.stdout.splitlines()


def dig(fabric: Fabric, pod: Pod, questions: list[tuple[str, str]], transport: str = "udp") -> list[Any]:
    return [json.loads(line) for line in in_pod(fabric, pod, _DIG, DNS_IP, transport, json.dumps(questions))]


def capture(netns: str, path: Path, bpf: str = "") -> netlab.Capture:
    # -B: a 32 MiB buffer; the default holds only a few packets on "any" at this snaplen (drops under load).
    args = ["tcpdump", "-Z", "root", "-i", "any", "-B", "32768", "-w", str(path), "-U", "-nn", "--immediate-mode"]
    cap = netlab.Capture(netlab.Proc(netns, [*args, *([bpf] if bpf else [])], read=False), path)
    cap.wait_ready()
    return cap


def wait_for_line(fabric: Fabric, pod: Pod, needle: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(needle in line for line in fabric.logs(pod.namespace, pod.name)):
            return
        time.sleep(0.2)
    pytest.fail(f"{pod.name} never logged {needle!r}: {fabric.logs(pod.namespace, pod.name)[-10:]}")


def objects_by(fabric: Fabric, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in fabric.objects
            if o["kind"] == kind}


def test_pod_to_cluster_ip_is_dnated_to_the_backend(fabric: Fabric, root_netns: None, tmp_path: Path) -> None:
    client = on_node(fabric, "frontend", "node-a")
    backend = fabric.pods_of("shop", "checkout")[0]
    assert backend.node == "node-b"  # crosses nodes: routed by node-a and node-b, no NAT but the DNAT
    client_pcap, backend_pcap = tmp_path / "client.pcap", tmp_path / "backend.pcap"
    with capture(client.netns, client_pcap, "tcp port 8080"), capture(backend.netns, backend_pcap, "tcp port 8080"):
        local_port, status = in_pod(fabric, client, _CONNECT, CHECKOUT_IP, "8080", "GET /cart HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 200 OK"
    seen_by_client = netlab.read_text(client_pcap)
    assert any(f"{client.ip}.{local_port} > {CHECKOUT_IP}.8080: Flags [S]" in line for line in seen_by_client)
    assert any(f"{CHECKOUT_IP}.8080 > {client.ip}.{local_port}: Flags [S.]" in line for line in seen_by_client)
    assert not any(f"{backend.ip}.8080" in line for line in seen_by_client), "the pod must not see the backend IP"
    seen_by_backend = netlab.read_text(backend_pcap)
    assert any(f"{client.ip}.{local_port} > {backend.ip}.8080: Flags [S]" in line for line in seen_by_backend)
    wait_for_line(fabric, backend, f"served tcp 8080 {client.ip}")

    flows = json.loads(run("flows", str(client_pcap), "-o", "json").stdout)
    assert {"protocol": "TCP", "src": client.ip, "dst": CHECKOUT_IP, "dst_port": 8080}.items() <= next(
        f for f in flows if f["dst"] == CHECKOUT_IP and f["src"] == client.ip).items()


def test_named_target_port(fabric: Fabric, root_netns: None) -> None:
    service = objects_by(fabric, "Service")[("shop", "frontend")]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    slices = [o for o in fabric.objects if o["kind"] == "EndpointSlice"
              and o["metadata"]["labels"]["kubernetes.io/service-name"] == "frontend"]
    assert [s["ports"] for s in slices] == [[{"name": "http", "port": 8080, "protocol": "TCP"}]]
    client = fabric.pods_of("shop", "checkout")[0]
    _, status = in_pod(fabric, client, _CONNECT, FRONTEND_IP, "80", "GET / HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 200 OK"
    frontends = fabric.pods_of("shop", "frontend")
    deadline = time.monotonic() + 5
    while not any(f"served tcp 8080 {client.ip}" in line for p in frontends for line in fabric.logs("shop", p.name)):
        assert time.monotonic() < deadline, "no frontend pod served the checkout pod on 8080"
        time.sleep(0.2)
    rules = fabric.kubeproxy_rules()
    assert f"ip daddr {FRONTEND_IP} tcp dport 80 goto" in rules
    assert all(f"dnat to {p.ip}:8080" in rules for p in frontends)


def test_headless_service_resolves_to_pod_ips(fabric: Fabric, root_netns: None) -> None:
    db = fabric.pods_of("shop", "db")[0]
    client = fabric.pods_of("shop", "checkout")[0]
    answers = dig(fabric, client, [("db.shop.svc.cluster.local.", "A"), ("db-0.db.shop.svc.cluster.local.", "A"),
                                   ("checkout.shop.svc.cluster.local.", "A")])
    assert answers[0][:2] == ["NOERROR", [db.ip]]
    assert answers[1][:2] == ["NOERROR", [db.ip]]
    assert answers[2][:2] == ["NOERROR", [CHECKOUT_IP]]
    assert json.loads(in_pod(fabric, client, _GETADDRINFO, "db", "5432")[0]) == [db.ip]


def test_dns_answers_external_cname_chains_over_udp_and_tcp(fabric: Fabric, root_netns: None) -> None:
    pod = on_node(fabric, "frontend", "node-b")
    for transport in ("udp", "tcp"):
        answers = dig(fabric, pod, [("api.payments.example.com.", "A"), ("nosuch.shop.svc.cluster.local.", "A"),
                                    ("ledger-db.example.com.", "A")], transport)
        rcode, records, types = answers[0]
        assert rcode == "NOERROR"
        assert records == ["edge.payments.example.net.", "203.0.113.10"]
        assert types == [["api.payments.example.com.", "CNAME"], ["edge.payments.example.net.", "A"]]
        assert answers[1][:2] == ["NXDOMAIN", []]
        assert answers[2][:2] == ["NOERROR", ["pg-primary.ledger.example.net.", "198.51.100.20"]]


def test_glibc_resolves_through_search_domains(fabric: Fabric, root_netns: None) -> None:
    pod = on_node(fabric, "frontend", "node-a")
    resolv = (ETC_NETNS / pod.netns / "resolv.conf").read_text()
    assert resolv.splitlines() == [f"nameserver {DNS_IP}", "search shop.svc.cluster.local svc.cluster.local "
                                   "cluster.local", "options ndots:5"]
    assert json.loads(in_pod(fabric, pod, _GETADDRINFO, "checkout", "8080")[0]) == [CHECKOUT_IP]
    assert json.loads(in_pod(fabric, pod, _GETADDRINFO, "kube-dns.kube-system", "53")[0]) == [DNS_IP]
    assert json.loads(in_pod(fabric, pod, _GETADDRINFO, "api.payments.example.com", "443")[0]) == ["203.0.113.10"]
    getent = fabric.run_in_pod(pod.namespace, pod.name, ["getent", "hosts", "checkout"]).stdout.split()
    assert getent[0] == CHECKOUT_IP


def test_workloads_talk_by_service_name(fabric: Fabric, root_netns: None) -> None:
    front = on_node(fabric, "frontend", "node-a")
    checkout = fabric.pods_of("shop", "checkout")[0]
    db = fabric.pods_of("shop", "db")[0]
    wait_for_line(fabric, front, f"ok http checkout:8080 {CHECKOUT_IP}")
    wait_for_line(fabric, front, "ok tls api.payments.example.com:443 203.0.113.10")
    wait_for_line(fabric, checkout, f"ok pg db:5432 {db.ip}")
    wait_for_line(fabric, checkout, "ok pg ledger-db.example.com:5432 198.51.100.20")
    wait_for_line(fabric, checkout, f"ok udp db:8125 {db.ip}")
    wait_for_line(fabric, db, f"served udp 8125 {checkout.ip}")
    wait_for_line(fabric, fabric.pods_of("shop", "smoke")[0], f"ok http frontend:80 {FRONTEND_IP}")
    # Leaving the cluster, pod traffic is masqueraded to the node's IP.
    edge = fabric.system_procs["external-payments-edge"].lines
    assert any(f"served tcp 443 {fabric.node_ip('node-a')}" in line for line in edge)
    assert not any(f"served tcp 443 {front.ip}" in line for line in edge)


def test_kubernetes_default_reaches_the_api_server_endpoint(fabric: Fabric, root_netns: None) -> None:
    # 10.96.0.1:443 is DNAT'ed to node-a's 10.250.0.11:6443, where the fabric runs a TLS-like listener.
    checkout = fabric.pods_of("shop", "checkout")[0]
    assert checkout.node == "node-b"  # routed to the other node, without masquerading
    _, reply = in_pod(fabric, checkout, _CONNECT, "kubernetes.default", "443", "client hello")
    assert reply.endswith("server")  # the listener's TLS-like record
    served = fabric.system_procs["apiserver-node-a"].lines  # read as the listener prints them
    deadline = time.monotonic() + 5
    while not any(f"served tcp 6443 {checkout.ip}" in line for line in served) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(f"served tcp 6443 {checkout.ip}" in line for line in served), served[-5:]


def test_prober_comes_from_the_node_ip(fabric: Fabric, root_netns: None, tmp_path: Path) -> None:
    pod = on_node(fabric, "frontend", "node-a")
    node_ip = fabric.node_ip("node-a")
    pcap = tmp_path / "probe.pcap"
    with capture(pod.netns, pcap, f"src host {node_ip} and tcp dst port 8080 and tcp[tcpflags] & tcp-syn != 0"):
        time.sleep(2.5)
    syns = netlab.read_text(pcap)
    assert syns and all(f"{node_ip}." in line and f"> {pod.ip}.8080" in line for line in syns)
    wait_for_line(fabric, pod, f"served tcp 8080 {node_ip}")


def test_host_network_pod_lives_in_its_node(fabric: Fabric, root_netns: None) -> None:
    [exporter] = [p for p in fabric.pods.values() if p.controller.name == "node-exporter"]
    assert fabric.pod_netns("kube-system", exporter.name) == fabric.node_netns("node-b")
    assert exporter.ip == fabric.node_ip("node-b")
    obj = objects_by(fabric, "Pod")[("kube-system", exporter.name)]
    assert obj["spec"]["hostNetwork"] is True
    assert obj["status"]["podIP"] == obj["status"]["hostIP"] == "10.250.0.12"
    client = on_node(fabric, "frontend", "node-a")
    _, status = in_pod(fabric, client, _CONNECT, exporter.ip, "9100", "GET /metrics HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 200 OK"
    wait_for_line(fabric, exporter, f"served tcp 9100 {client.ip}")
    # From the node's namespace, Services work by name too (nftables output chain), from the node IP.
    checkout = fabric.pods_of("shop", "checkout")[0]
    resolv = (ETC_NETNS / exporter.netns / "resolv.conf").read_text()
    assert "search kube-system.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert json.loads(in_pod(fabric, exporter, _GETADDRINFO, "checkout.shop", "8080")[0]) == [CHECKOUT_IP]
    _, status = in_pod(fabric, exporter, _CONNECT, "checkout.shop", "8080", "GET / HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 200 OK"
    wait_for_line(fabric, checkout, f"served tcp 8080 {exporter.ip}")


def test_nothing_leads_out_of_the_lab(fabric: Fabric, root_netns: None) -> None:
    allowed = [ipaddress.IPv4Network(n) for n in ALLOWED_NETWORKS]
    guard_set = "ip daddr != { " + ", ".join(sorted(ALLOWED_NETWORKS, key=ipaddress.ip_network)) + " } drop"
    our_links: set[str] = set()
    for netns in fabric.namespaces:
        guard = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet", "netgen_guard"],
                               capture_output=True, text=True, check=True, timeout=10).stdout
        assert guard.count(guard_set) == 2 and guard.count("meta nfproto ipv6 drop") == 2, guard
        routes = json.loads(subprocess.run(["ip", "-n", netns, "-j", "-4", "route", "show"], capture_output=True,
                                           text=True, check=True, timeout=10).stdout)
        for route in routes:
            if route["dst"] == "default":  # pods only: via their node's bridge
                assert ipaddress.ip_address(route["gateway"]) in ipaddress.ip_network("10.244.0.0/16"), netns
            else:
                assert any(ipaddress.IPv4Network(route["dst"], strict=False).subnet_of(n) for n in allowed), route
        links = json.loads(subprocess.run(["ip", "-n", netns, "-j", "link", "show"], capture_output=True,
                                          text=True, check=True, timeout=10).stdout)
        our_links |= {link["ifname"] for link in links if link["ifname"].startswith(("vp", "u-"))}
    assert {"u-node-a", "u-node-b", "u-ext0", "u-ext1"} <= our_links
    root_links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                                           check=True, timeout=10).stdout)
    assert not our_links & {link["ifname"] for link in root_links}, "a fabric link ended up in the host namespace"


def _eth0_address(netns: str) -> str:
    shown = json.loads(subprocess.run(["ip", "-n", netns, "-j", "-4", "addr", "show", "dev", "eth0"],
                                      capture_output=True, text=True, check=True, timeout=10).stdout)
    return str(shown[0]["addr_info"][0]["local"])


def test_objects_describe_what_runs(fabric: Fabric, root_netns: None, tmp_path: Path) -> None:
    objects = fabric.objects
    assert all(o.get("apiVersion") and o.get("kind") for o in objects)
    index = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects}
    nodes = {name: o for (kind, _, name), o in index.items() if kind == "Node"}
    assert {n: o["status"]["addresses"][0]["address"] for n, o in nodes.items()} == {
        "node-a": "10.250.0.11", "node-b": "10.250.0.12"}
    for (kind, ns, name), obj in index.items():
        if kind == "Namespace":
            assert obj["metadata"]["labels"] == {"kubernetes.io/metadata.name": name}
        for ref in obj["metadata"].get("ownerReferences", []):
            owner = index[(ref["kind"], ns, ref["name"])]
            assert owner["metadata"]["uid"] == ref["uid"]
        if kind != "Pod":
            continue
        pod = fabric.pod(ns, name)
        status = obj["status"]
        assert status["phase"] == "Running" and status["podIPs"] == [{"ip": status["podIP"]}]
        assert status["hostIP"] == fabric.node_ip(obj["spec"]["nodeName"])
        if obj["spec"].get("hostNetwork"):
            assert _eth0_address(pod.netns) == status["podIP"] == status["hostIP"]
        else:
            assert _eth0_address(pod.netns) == status["podIP"]
            cidr = nodes[obj["spec"]["nodeName"]]["spec"]["podCIDR"]
            assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network(cidr)
        assert all(c["ready"] for c in status["containerStatuses"])
    pods = [o for o in objects if o["kind"] == "Pod"]
    assert sum(1 for p in pods if p["metadata"]["labels"].get("pod-template-hash")) == 4
    for svc in (o for o in objects if o["kind"] == "Service"):
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        [eps] = [o for o in objects if o["kind"] == "EndpointSlice" and o["metadata"]["namespace"] == ns
                 and o["metadata"]["labels"]["kubernetes.io/service-name"] == name]
        addresses = sorted(a for e in eps["endpoints"] for a in e["addresses"])
        selector = svc["spec"].get("selector")
        if selector is None:
            assert (ns, name, addresses) == ("default", "kubernetes", ["10.250.0.11"])
            assert eps["ports"] == [{"name": "https", "port": 6443, "protocol": "TCP"}]
            continue
        selected = [p for p in pods if p["metadata"]["namespace"] == ns
                    and selector.items() <= p["metadata"]["labels"].items()]
        assert addresses == sorted(p["status"]["podIP"] for p in selected)
        assert {e["targetRef"]["name"] for e in eps["endpoints"]} == {p["metadata"]["name"] for p in selected}
        assert all(isinstance(p["port"], int) for p in eps["ports"])
        assert {p["name"] for p in eps["ports"]} == {p["name"] for p in svc["spec"]["ports"]}
    assert index[("Service", "shop", "db")]["spec"]["clusterIP"] == "None"
    assert index[("Service", "kube-system", "kube-dns")]["spec"]["clusterIP"] == DNS_IP
    for kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
        assert all("selector" in o["spec"] for o in objects if o["kind"] == kind)
    for pod_obj in pods:  # one controller each, up to a top-level workload
        chain, obj = [], pod_obj
        while refs := obj["metadata"].get("ownerReferences"):
            [ref] = [r for r in refs if r.get("controller")]
            chain.append(ref["kind"])
            obj = index[(ref["kind"], pod_obj["metadata"]["namespace"], ref["name"])]
        assert chain in (["ReplicaSet", "Deployment"], ["StatefulSet"], ["DaemonSet"], ["Job", "CronJob"]), chain
    assert_cronjob_owns_its_job(fabric, index)
    written = json.loads(fabric.write_objects(tmp_path / "cluster.json").read_text())
    assert (written["apiVersion"], written["kind"], len(written["items"])) == ("v1", "List", len(objects))


def assert_cronjob_owns_its_job(fabric: Fabric, index: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    # CronJob shop/smoke -> Job smoke-<scheduled minute> -> pod, named and labelled as the real controllers do.
    cron = index[("CronJob", "shop", "smoke")]
    [smoke] = fabric.pods_of("shop", "smoke")
    pod_obj = index[("Pod", "shop", smoke.name)]
    [pod_ref] = pod_obj["metadata"]["ownerReferences"]
    job = index[("Job", "shop", pod_ref["name"])]
    job_name, job_uid = job["metadata"]["name"], job["metadata"]["uid"]
    assert re.fullmatch(r"smoke-\d+", job_name), job_name
    assert pod_obj["metadata"]["name"].startswith(f"{job_name}-")
    assert (pod_ref["apiVersion"], pod_ref["kind"], pod_ref["uid"], pod_ref["controller"]) == (
        "batch/v1", "Job", job_uid, True)
    assert job["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "smoke",
                                                   "uid": cron["metadata"]["uid"], "controller": True,
                                                   "blockOwnerDeletion": True}]
    labels = pod_obj["metadata"]["labels"]
    assert {k: labels[k] for k in ("job-name", "batch.kubernetes.io/job-name")} == {
        "job-name": job_name, "batch.kubernetes.io/job-name": job_name}
    assert {k: labels[k] for k in ("controller-uid", "batch.kubernetes.io/controller-uid")} == {
        "controller-uid": job_uid, "batch.kubernetes.io/controller-uid": job_uid}
    assert job["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert cron["spec"]["jobTemplate"]["metadata"]["labels"].items() <= job["metadata"]["labels"].items()
    assert cron["status"]["active"] == [{"apiVersion": "batch/v1", "kind": "Job", "namespace": "shop",
                                         "name": job_name, "uid": job_uid}]
    assert pod_obj["spec"]["restartPolicy"] == "Never"
    assert [name for kind, _, name in index if kind == "Job"] == [job_name]


def test_delete_pod_and_teardown_leave_nothing(root_netns: None, fabric: Fabric) -> None:
    tables_before = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10).stdout
    small = Fabric(iterations=2, lifetime=30, probe_iterations=2)
    with small:
        namespaces = list(small.namespaces)
        assert [n for n in netlab_list() if n.startswith(small.prefix)] == sorted(namespaces)
        db = small.pods_of("shop", "db")[0]
        sleeper = small.spawn_in_pod("shop", db.name, ["sleep", "30"])
        small.delete_pod("shop", db.name)
        assert sleeper.poll() is not None
        assert db.netns not in netlab_list() and not (ETC_NETNS / db.netns).exists()
        assert f"{db.ip}:" not in small.kubeproxy_rules()
        [eps] = [o for o in small.objects if o["kind"] == "EndpointSlice"
                 and o["metadata"]["labels"]["kubernetes.io/service-name"] == "db"]
        assert eps["endpoints"] == []
        checkout = small.pods_of("shop", "checkout")[0]
        assert dig(small, checkout, [("db.shop.svc.cluster.local.", "A")])[0][:2] == ["NXDOMAIN", []]
        other = small.spawn_in_pod("shop", checkout.name, ["sleep", "30"])
        pids = [p.pid for p in small.procs] + [other.pid]
    assert other.poll() is not None
    assert [n for n in netlab_list() if n.startswith(small.prefix)] == []
    assert not ETC_NETNS.is_dir() or not any(ETC_NETNS.glob(f"{small.prefix}*"))
    assert not small.tmp.exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    tables_after = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10).stdout
    assert tables_after == tables_before and "netgen" not in tables_after
    # The module's fabric still works.
    assert fabric.pods_of("shop", "checkout")


def netlab_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=10).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())
