"""``kubectl netgen neighbors`` on the bundled example: exact JSON peers, determinism, the table, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run

SHOP = ROOT / "examples" / "shop"
A_PCAP = sorted((SHOP / "pcaps" / "shop").glob("*.pcap"))[0]


def peer(kind: str, *, namespace: str | None = None, workload: tuple[str, str] | None = None,
         service: str | None = None, ip: str | None = None, node: str | None = None,
         names: list[str] | None = None) -> dict[str, Any]:
    return {"kind": kind, "namespace": namespace,
            "workload": None if workload is None else {"kind": workload[0], "name": workload[1]},
            "service": service, "ip": ip, "node": node, "names": names or []}


def entry(p: dict[str, Any], protocol: str, port: int | None, service_port: int | None,
          connections: int, packets: int, size: int) -> dict[str, Any]:
    return {"peer": p, "protocol": protocol, "port": port, "service_port": service_port,
            "connections": connections, "packets": packets, "bytes": size}


def untimed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries without first/last seen (checked on their own below)."""
    return [{k: v for k, v in e.items() if k not in ("first_seen", "last_seen")} for e in entries]


def neighbors_json(*args: str) -> list[dict[str, Any]]:
    result = run("neighbors", SHOP, *args)
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def test_json_is_the_default_off_a_terminal_and_sorted_by_workload() -> None:
    result = run("neighbors", SHOP)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == run("neighbors", SHOP, "-o", "json").stdout
    assert result.stdout == run("neighbors", SHOP).stdout  # byte-for-byte deterministic
    data = json.loads(result.stdout)
    assert [(w["workload"]["namespace"], w["workload"]["kind"], w["workload"]["name"]) for w in data] == [
        ("kube-system", "Deployment", "coredns"),
        ("payments", "Deployment", "gateway"),
        ("payments", "Deployment", "notifier"),
        ("shop", "CronJob", "smoke"),
        ("shop", "Deployment", "cache"),
        ("shop", "Deployment", "cart"),
        ("shop", "Deployment", "catalog"),
        ("shop", "Deployment", "checkout"),
        ("shop", "Deployment", "frontend"),
        ("shop", "Deployment", "shop-operator"),
        ("shop", "Deployment", "statsd"),
        ("shop", "StatefulSet", "db"),
    ]
    assert result.stderr == ("12 workload(s): 26 egress and 32 ingress neighbours from 69 flows and 3367 packets "
                             "in 13 capture(s)\n")


def test_frontend_exact() -> None:
    [frontend] = [w for w in neighbors_json() if w["workload"]["name"] == "frontend"]
    assert frontend["workload"] == {"namespace": "shop", "kind": "Deployment", "name": "frontend"}
    assert frontend["pods"] == ["frontend-7lgxpl29pv-jsshd", "frontend-7lgxpl29pv-s58x6"]
    # Both pods' flows are summed per peer; Services are resolved to their backends' workload and targetPort.
    assert untimed(frontend["egress"]) == [
        entry(peer("pod", namespace="kube-system", workload=("Deployment", "coredns"), service="kube-system/kube-dns"),
              "UDP", 53, 53, 36, 144, 13356),
        entry(peer("pod", namespace="shop", workload=("Deployment", "cart"), service="shop/cart"),
              "TCP", 8080, 8080, 9, 90, 6129),
        entry(peer("pod", namespace="shop", workload=("Deployment", "catalog"), service="shop/catalog"),
              "TCP", 8080, 8080, 9, 90, 6156),
        entry(peer("pod", namespace="shop", workload=("Deployment", "checkout"), service="shop/checkout"),
              "TCP", 8080, 8080, 9, 90, 6165),
        entry(peer("pod", namespace="shop", workload=("Deployment", "statsd"), service="shop/statsd"),
              "UDP", 9125, 8125, 9, 18, 972),
    ]
    # Kubelet probes from each pod's own node are kept (kind own-node), though generate writes no rule for them.
    assert untimed(frontend["ingress"]) == [
        entry(peer("own-node", ip="10.250.0.11", node="node-a"), "TCP", 8080, None, 5, 50, 3475),
        entry(peer("own-node", ip="10.250.0.12", node="node-b"), "TCP", 8080, None, 5, 50, 3475),
        entry(peer("pod", namespace="shop", workload=("CronJob", "smoke")), "TCP", 8080, None, 3, 30, 2055),
    ]


def test_service_port_differs_from_target_port_and_pod_names() -> None:
    by_name = {w["workload"]["name"]: w for w in neighbors_json()}
    [to_frontend] = [e for e in by_name["smoke"]["egress"] if e["peer"]["service"] == "shop/frontend"]
    assert (to_frontend["port"], to_frontend["service_port"]) == (8080, 80)  # a named targetPort
    [to_cache] = [e for e in by_name["cart"]["egress"] if e["peer"]["service"] == "shop/cache"]
    assert (to_cache["port"], to_cache["service_port"]) == (6379, 6379)  # a named targetPort, the same number
    [to_statsd] = [e for e in by_name["checkout"]["egress"] if e["peer"]["service"] == "shop/statsd"]
    assert (to_statsd["protocol"], to_statsd["port"], to_statsd["service_port"]) == ("UDP", 9125, 8125)
    # A headless Service's DNS name names the pod peer it was answered for.
    assert {e["peer"]["workload"]["name"]: e["peer"]["names"] for e in by_name["checkout"]["egress"]
            if e["peer"]["kind"] == "pod"} == {"coredns": [], "gateway": [], "cart": [], "statsd": [],
                                               "db": ["db.shop.svc.cluster.local"]}


def test_cross_namespace_externals_and_the_api_server() -> None:
    by_name = {w["workload"]["name"]: w for w in neighbors_json()}
    gateway = by_name["gateway"]
    # Called from the other namespace through its Service (port 80 -> 8080), and from its own.
    assert [(e["peer"]["namespace"], e["peer"]["workload"]["name"], e["port"]) for e in gateway["ingress"]
            if e["peer"]["kind"] == "pod"] == [("payments", "notifier", 8080), ("shop", "checkout", 8080)]
    # External peers are named by the DNS answers the pod saw, CNAME chains included.
    assert [(e["peer"]["ip"], e["port"], e["peer"]["names"]) for e in gateway["egress"]
            if e["peer"]["kind"] == "external"] == [
        ("198.51.100.20", 5432, ["ledger-db.example.com", "pg-primary.ledger.example.net"]),
        ("203.0.113.10", 443, ["api.payments.example.com", "edge.payments.example.net"]),
    ]
    # kubernetes.default (10.96.0.1:443) has no selector: its endpoint, the API server on node-a, is the peer.
    [api] = [e for e in by_name["shop-operator"]["egress"] if e["peer"]["service"] == "default/kubernetes"]
    assert untimed([api]) == [entry(peer("service-endpoint-ip", service="default/kubernetes", ip="10.250.0.11",
                                         node="node-a"), "TCP", 6443, 443, 5, 51, 2842)]


def test_pcap_files_with_pod_option() -> None:
    [frontend] = sorted((SHOP / "pcaps" / "shop").glob("frontend-*.pcap"))[:1]
    result = run("neighbors", frontend, "--pod", f"shop/{frontend.stem}", "--cluster", SHOP / "cluster.json")
    assert result.exit_code == 0, result.stderr
    [workload] = json.loads(result.stdout)
    assert workload["pods"] == [frontend.stem]
    assert [e["connections"] for e in workload["egress"]] == [16, 4, 4, 4, 4]


def test_table_on_a_terminal() -> None:
    result = run("neighbors", SHOP, tty=True)
    assert result.exit_code == 0, result.stderr
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    start = lines.index("shop/frontend (Deployment), pods: frontend-7lgxpl29pv-jsshd, frontend-7lgxpl29pv-s58x6")
    table = [line.split() for line in lines[start + 1:start + 10]]
    assert table[0] == ["DIRECTION", "PEER", "KIND", "PROTO", "PORT", "CONNS"]
    assert table[1:] == [
        "egress kube-system/coredns (Deployment) via Service kube-system/kube-dns:53 pod UDP 53 36".split(),
        "egress shop/cart (Deployment) via Service shop/cart:8080 pod TCP 8080 9".split(),
        "egress shop/catalog (Deployment) via Service shop/catalog:8080 pod TCP 8080 9".split(),
        "egress shop/checkout (Deployment) via Service shop/checkout:8080 pod TCP 8080 9".split(),
        "egress shop/statsd (Deployment) via Service shop/statsd:8125 pod UDP 9125 9".split(),
        "ingress node node-a own-node TCP 8080 5".split(),
        "ingress node node-b own-node TCP 8080 5".split(),
        "ingress shop/smoke (CronJob) pod TCP 8080 3".split(),
    ]
    assert lines[start + 10] == ""  # the table ends there
    start = lines.index("shop/shop-operator (Deployment), pods: shop-operator-4pcnwd9lbd-sj7cm")
    assert lines[start + 3].split() == (
        "egress node node-a via Service default/kubernetes:443 service-endpoint-ip TCP 6443 5".split())
    assert not result.stdout.lstrip().startswith("[")
    assert "neighbours from 69 flows" in result.stderr
    assert run("neighbors", SHOP, "-o", "json", tty=True).stdout == run("neighbors", SHOP).stdout


@pytest.mark.parametrize(("args", "message"), [
    ((str(A_PCAP),), "1 pcap file(s) but 0 --pod option(s)"),
    ((str(A_PCAP), "--pod", "nopod"), "--pod 'nopod' is not NAMESPACE/NAME"),
    (("x.pcap",), "x.pcap: no such file or directory"),
    ((str(SHOP / "pcaps"),), "is not a capture directory: it has no pcaps/ folder"),
    ((str(SHOP), str(A_PCAP)), "is a file but"),
    ((str(SHOP), "--pod", "shop/x"), "--pod is for pcap files"),
])
def test_input_errors(args: tuple[str, ...], message: str) -> None:
    result = run("neighbors", *args)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_no_sources_is_a_usage_error() -> None:
    result = run("neighbors")
    assert result.exit_code == 2
    assert result.stdout == ""


def test_without_a_cluster_file_the_live_cluster_is_read(tmp_path: Path) -> None:
    from tests.cluster.apiserver import ApiServer

    pcaps = sorted((SHOP / "pcaps").rglob("*.pcap"))
    args = [str(p) for p in pcaps] + [arg for p in pcaps for arg in ("--pod", f"{p.parent.name}/{p.stem}")]
    with ApiServer(json.loads((SHOP / "cluster.json").read_text())) as api:
        live = run("neighbors", *args, "--kubeconfig", api.write_kubeconfig(tmp_path / "kubeconfig"), "-o", "json",
                   "--no-reverse-dns")
    assert live.exit_code == 0, live.stderr
    assert live.stdout == run("neighbors", SHOP, "-o", "json", "--no-reverse-dns").stdout


RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(\d{3})?Z")


def test_every_entry_has_first_and_last_seen() -> None:
    """The earliest first_seen and latest last_seen of the entry's flows, as ``flows -o json`` writes them."""
    data = neighbors_json()
    entries = [e for w in data for e in w["egress"] + w["ingress"]]
    assert entries and all(RFC3339.fullmatch(e["first_seen"]) and RFC3339.fullmatch(e["last_seen"])
                           and e["first_seen"] <= e["last_seen"] for e in entries)
    [frontend] = [w for w in data if w["workload"]["name"] == "frontend"]
    pcaps = sorted((SHOP / "pcaps" / "shop").glob("frontend-*.pcap"))
    flows = json.loads(run("flows", *pcaps, "-o", "json").stdout)
    dns = [f for f in flows if (f["dst"], f["protocol"], f["dst_port"]) == ("10.96.0.10", "UDP", 53)]
    [to_dns] = [e for e in frontend["egress"] if e["peer"]["service"] == "kube-system/kube-dns"]
    assert len(dns) > 1 and sum(f["connections"] for f in dns) == to_dns["connections"]
    assert (to_dns["first_seen"], to_dns["last_seen"]) == (min(f["first_seen"] for f in dns),
                                                            max(f["last_seen"] for f in dns))


def test_first_and_last_seen_span_the_flows_of_an_entry(tmp_path: Path) -> None:
    from tests.cli.test_generate_scenarios import DB0_4, DB1_4, NODE_B, WEB4, WEB_POD, base_cluster, capture_dir, tcp

    # Each frame is one second later than the one before (write_pcap), from 1_700_000_000.
    root = capture_dir(tmp_path, base_cluster(), {f"shop/{WEB_POD}": [
        tcp(WEB4, DB0_4, 5432), tcp(WEB4, DB1_4, 5432, 40001), tcp(NODE_B, WEB4, 8081, 40002)]})
    result = run("neighbors", root, "--no-reverse-dns", "-o", "json")
    assert result.exit_code == 0, result.stderr
    [web] = [w for w in json.loads(result.stdout) if w["workload"]["name"] == "web"]
    [db] = [e for e in web["egress"] if e["peer"]["kind"] == "pod" and e["peer"]["workload"]["name"] == "db"]
    assert (db["connections"], db["first_seen"], db["last_seen"]) == (
        2, "2023-11-14T22:13:20.000000Z", "2023-11-14T22:13:23.000000Z")
    [node] = web["ingress"]
    assert (node["peer"]["node"], node["first_seen"], node["last_seen"]) == (
        "node-b", "2023-11-14T22:13:24.000000Z", "2023-11-14T22:13:25.000000Z")
