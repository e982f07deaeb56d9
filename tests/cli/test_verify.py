"""``kubectl netgen verify`` and ``explain``: captured flows judged against policies, policies told in words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_netgen.errors import ExitStatus
from tests.conftest import ROOT, run

SHOP = ROOT / "examples" / "shop"


@pytest.fixture(scope="module")
def generated() -> list[dict[str, Any]]:
    result = run("generate", SHOP, "--no-reverse-dns")
    assert result.exit_code == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def _write(path: Path, policies: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(policies, sort_keys=False))
    return path


def test_generated_policies_allow_every_captured_flow(generated: list[dict[str, Any]]) -> None:
    policies = yaml.safe_dump_all(generated, sort_keys=False).encode()
    result = run("verify", SHOP, "--policies", "-", stdin=policies)
    assert result.exit_code == ExitStatus.OK, result.stderr
    flows = json.loads(result.stdout)
    assert flows and all(f["verdict"] == "allowed" for f in flows)
    assert set(flows[0]) >= {"src_ip", "dst_ip", "src", "dst", "protocol", "port", "verdict", "reason"}
    # A Service is judged on its backend and target port, and says which Service was dialed.
    statsd = next(f for f in flows if f["service"] == "shop/statsd:8125")
    assert (statsd["protocol"], statsd["port"], statsd["dst"].startswith("shop/statsd-")) == ("UDP", 9125, True)
    assert "allowed by shop/statsd-netgen ingress[" in statsd["reason"]
    # Probes from a pod's own node are allowed by the spec itself; external peers have no pod.
    assert any(f["src"] is None and "from its own node" in f["reason"] for f in flows)
    gateway = next(f for f in flows if f["dst_ip"] == "203.0.113.10")
    assert gateway["dst"] is None and gateway["ingress"] is None and gateway["port"] == 443
    assert result.stderr.startswith(f"{len(flows)} flow(s) allowed, 0 would be denied, by 11 policies")


def test_a_missing_rule_is_a_denied_flow_and_exit_8(generated: list[dict[str, Any]], tmp_path: Path) -> None:
    trimmed = json.loads(json.dumps(generated))
    cache = next(p for p in trimmed if p["metadata"]["name"] == "cache-netgen")
    kept = []
    for rule in cache["spec"]["ingress"]:  # catalog may share its rule with other peers on the same ports
        peers = [p for p in rule["from"] if p.get("podSelector", {}).get("matchLabels") != {"app": "catalog"}]
        if peers:
            kept.append({**rule, "from": peers})
    cache["spec"]["ingress"] = kept
    result = run("verify", SHOP, "--policies", _write(tmp_path / "p.yaml", trimmed))
    assert result.exit_code == ExitStatus.DENIED
    denied = [f for f in json.loads(result.stdout) if f["verdict"] == "denied"]
    assert len(denied) == 1 and denied[0]["port"] == 6379 and denied[0]["src"].startswith("shop/catalog-")
    assert denied[0]["egress"]["allowed"] and not denied[0]["ingress"]["allowed"]
    assert "isolated for ingress by shop/cache-netgen and no rule matches" in denied[0]["reason"]
    assert ", 1 would be denied," in result.stderr
    table = run("verify", SHOP, "--policies", tmp_path / "p.yaml", "-o", "table")
    assert table.exit_code == ExitStatus.DENIED and table.stdout.lstrip().startswith("VERDICT")
    assert table.stdout.splitlines()[1].startswith("DENIED")  # denied flows come first


def test_directory_of_policies_and_other_kinds_are_left_out(generated: list[dict[str, Any]],
                                                            tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    _write(folder / "a.yaml", generated[:6])
    (folder / "b.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": generated[6:]}))
    (folder / "c.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: shop}\n")
    (folder / "notes.txt").write_text("not read")
    result = run("verify", SHOP, "--policies", folder)
    assert result.exit_code == ExitStatus.OK, result.stderr
    assert "warning: not a policy, left out: v1 ConfigMap" in result.stderr


def test_bare_pcap_is_judged_by_resolving_both_ends(generated: list[dict[str, Any]], tmp_path: Path) -> None:
    """A pcap with no pod named (as if taken on a node): both ends resolved against the inventory."""
    policies = _write(tmp_path / "p.yaml", generated)
    [checkout] = (SHOP / "pcaps" / "shop").glob("checkout-*.pcap")
    bare = run("verify", checkout, "--cluster", SHOP / "cluster.json", "--policies", policies)
    assert bare.exit_code == ExitStatus.OK, bare.stderr
    flows = json.loads(bare.stdout)
    db = next(f for f in flows if f["port"] == 5432 and f["dst"] == "shop/db-0")
    assert db["src"].startswith("shop/checkout-") and db["verdict"] == "allowed"


def test_what_if_reports_what_is_allowed_but_never_observed(tmp_path: Path) -> None:
    """A hand-written policy opening the db to the whole namespace: every other shop workload is exposure."""
    open_db = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "db-open", "namespace": "shop"},
               "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
                        "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 5432}]}]}}
    result = run("verify", SHOP, "--policies", _write(tmp_path / "p.yaml", [open_db]), "--what-if")
    assert result.exit_code == ExitStatus.OK, result.stderr
    assert "exposure:" in result.stderr
    assert "shop/db ingress:" in result.stderr  # the count per workload and direction
    lines = [line.split() for line in result.stderr.splitlines()]
    exposed = {row[2] for row in lines if row[:2] == ["shop/db", "ingress"]}
    assert "shop/frontend" in exposed and "shop/cart" in exposed  # never talked to the db, yet allowed
    assert "shop/catalog" not in exposed and "shop/checkout" not in exposed  # observed: not a gap


def test_live_policies_from_the_cluster(generated: list[dict[str, Any]], tmp_path: Path) -> None:
    from tests.cluster.apiserver import ApiServer

    document = json.loads((SHOP / "cluster.json").read_text())
    document["items"] += generated
    with ApiServer(document) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        live = run("verify", SHOP, "--live-policies", "--kubeconfig", kubeconfig)
        explained = run("explain", "--live-policies", "--kubeconfig", kubeconfig)
        api.deny("list", "networkpolicies")
        denied = run("verify", SHOP, "--live-policies", "--kubeconfig", kubeconfig)
    assert live.exit_code == ExitStatus.OK, live.stderr
    assert ", 0 would be denied, by 11 policies" in live.stderr
    assert "shop/db-netgen applies to pods with app=db in shop." in explained.stdout
    assert ("from pods with app=catalog in namespace shop or pods with app=checkout in namespace shop on TCP 5432"
            in explained.stdout)
    assert denied.exit_code == ExitStatus.FORBIDDEN
    assert 'grant verb "list" on resource "networkpolicies"' in denied.stderr


def test_explain_in_plain_words(tmp_path: Path) -> None:
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "db", "namespace": "shop"},
              "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                       "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "web"}},
                                              "podSelector": {"matchExpressions": [
                                                  {"key": "tier", "operator": "In", "values": ["api"]}]}},
                                             {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                                    "ports": [{"port": 5432}, {"protocol": "UDP", "port": 8000, "endPort": 8010}]}],
                       "egress": []}}
    result = run("explain", "--policies", _write(tmp_path / "p.yaml", [policy]))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "shop/db applies to pods with app=db in shop.\n"
        "  Ingress: allowed\n"
        "    - from pods with tier in (api) in namespaces with team=web or addresses in 10.0.0.0/8 except 10.1.0.0/16 "
        "on TCP 5432, UDP 8000-8010\n"
        "  Egress: not restricted by this policy.\n")


@pytest.mark.parametrize(("args", "code", "message"), [
    ((str(SHOP),), ExitStatus.INPUT, "no policies to verify: give --policies"),
    ((str(SHOP), "--policies", "/nonexistent.yaml"), ExitStatus.INPUT, "/nonexistent.yaml: no such file"),
    (("-", "--policies", "-"), ExitStatus.INPUT, "'-' (stdin) can be the policies or a capture, not both"),
])
def test_input_errors(args: tuple[str, ...], code: int, message: str) -> None:
    result = run("verify", *args)
    assert result.exit_code == code and result.stdout == ""
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_a_malformed_policy_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                                     "metadata: {name: x, namespace: shop}\n"
                                     "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: foo}}]}]}\n")
    result = run("verify", SHOP, "--policies", tmp_path / "p.yaml")
    assert result.exit_code == ExitStatus.INPUT
    assert "NetworkPolicy shop/x: spec.ingress[0].from[0].ipBlock.cidr 'foo' is not a CIDR" in result.stderr
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    result = run("verify", SHOP, "--policies", tmp_path / "bad.yaml")
    assert result.exit_code == ExitStatus.INPUT and "bad.yaml: not valid YAML or JSON (line" in result.stderr
