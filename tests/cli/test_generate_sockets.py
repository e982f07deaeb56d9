"""``generate`` and ``neighbors`` use a capture directory's socket tables: connections opened before the capture.

The tables are the real ones in ``tests/data/sockets/lab`` (made by ``make_tables.py``): pod 10.244.1.10
keeps a connection pool to its peer 10.244.1.11 that sends nothing while the capture runs, so the pcap
here holds no packet at all, and every rule must come from the tables.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, run

TABLES = ROOT / "tests" / "data" / "sockets" / "lab"


def _pod(name: str, ips: list[str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}, "uid": f"uid-{name}"},
            "spec": {"nodeName": "node-a", "containers": [{"name": name, "image": "example/app:1"}]},
            "status": {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]}}


def _capture_dir(root: Path) -> Path:
    items = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"},
         "spec": {"podCIDRs": ["10.244.1.0/24", "fd00:10:244::/64"]},
         "status": {"addresses": [{"type": "InternalIP", "address": "10.250.0.11"}]}},
        _pod("web", ["10.244.1.10", "fd00:10:244::10"]),
        _pod("peer", ["10.244.1.11", "fd00:10:244::11"]),
    ]
    (root / "pcaps" / "shop").mkdir(parents=True)
    (root / "cluster.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    # A valid capture with no packet: everything below comes from the socket tables.
    (root / "pcaps" / "shop" / "web.pcap").write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    shutil.copytree(TABLES / "pod", root / "sockets" / "shop" / "web")
    return root


def _rules(rules: list[dict[str, Any]], side: str) -> set[tuple[str, str, int]]:
    return {(peer["podSelector"]["matchLabels"]["app"], port["protocol"], port["port"])
            for rule in rules for peer in rule[side] for port in rule["ports"]}


def test_socket_tables_become_rules(tmp_path: Path) -> None:
    directory = _capture_dir(tmp_path / "capture")
    result = run("generate", directory, "--no-reverse-dns", "--no-dns-rule")
    assert result.exit_code == 0, result.stderr
    [policy] = yaml.safe_load_all(result.stdout)
    spec = policy["spec"]
    # The pool (5432, one connection still open at the end), connections opened and closed (TIME_WAIT) during
    # the capture, gRPC over IPv6 to the peer's IPv6 address, and a connected UDP socket; loopback needs no rule.
    assert _rules(spec["egress"], "to") == {("peer", "TCP", 5432), ("peer", "TCP", 6379), ("peer", "TCP", 8000),
                                            ("peer", "TCP", 50051), ("peer", "UDP", 53)}
    # Accepted connections: on the wildcard listener, on one address only, and IPv4 into a dual-stack socket.
    assert _rules(spec["ingress"], "from") == {("peer", "TCP", 8080), ("peer", "TCP", 9090), ("peer", "TCP", 8443)}
    assert "flows" in result.stderr


def test_neighbors_show_socket_connections(tmp_path: Path) -> None:
    directory = _capture_dir(tmp_path / "capture")
    result = run("neighbors", directory, "--no-reverse-dns", "-o", "json")
    assert result.exit_code == 0, result.stderr
    [web] = json.loads(result.stdout)
    egress = {(n["peer"]["kind"], n["protocol"], n["port"]) for n in web["egress"]}
    assert ("pod", "TCP", 5432) in egress and ("pod", "UDP", 53) in egress and ("loopback", "TCP", 8080) in egress
    pool = next(n for n in web["egress"] if n["port"] == 5432)
    assert (pool["connections"], pool["packets"]) == (2, 0)  # 40001 and 40002, from the start and end tables


def test_malformed_table_lines_are_warned_and_skipped(tmp_path: Path) -> None:
    directory = _capture_dir(tmp_path / "capture")
    table = directory / "sockets" / "shop" / "web" / "start" / "tcp"
    table.write_text(table.read_text() + "   99: not a socket row\n")
    result = run("generate", directory, "--no-reverse-dns", "--no-dns-rule")
    assert result.exit_code == 0
    assert "start/tcp: skipped 1 malformed line(s)" in result.stderr
