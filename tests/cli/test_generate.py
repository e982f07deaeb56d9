"""``kubectl netgen generate`` on the bundled example and on bad input: golden YAML, semantics, errors.

Refresh the golden files deliberately, never silently: ``NETGEN_UPDATE_GOLDEN=1 python3 -m pytest
tests/cli/test_generate.py`` rewrites them; review the diff before committing.
"""

from __future__ import annotations

import json
import os
import shutil
from ipaddress import ip_address
from pathlib import Path

import pytest
import yaml

from kubectl_netgen.errors import ExitStatus
from kubectl_netgen.evaluate import Evaluator, parse_policies
from kubectl_netgen.flows import flows as fold
from kubectl_netgen.inventory import read_snapshot
from kubectl_netgen.model import Pod, PolicyDirection, Protocol
from kubectl_netgen.pcap import Scanner
from tests.conftest import ROOT, need, run

SHOP = ROOT / "examples" / "shop"
A_PCAP = sorted((SHOP / "pcaps" / "shop").glob("*.pcap"))[0]
GOLDEN = ROOT / "tests" / "golden"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("NETGEN_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with NETGEN_UPDATE_GOLDEN=1 to write it, then review it"
    assert text == path.read_text(), f"{name} differs from the golden file (NETGEN_UPDATE_GOLDEN=1 refreshes it)"


@pytest.mark.parametrize(("args", "name"), [
    ((), "shop.yaml"),
    (("--mode", "ingress"), "shop-ingress.yaml"),
    (("--mode", "egress", "--no-dns-rule"), "shop-egress-no-dns.yaml"),
    (("--include-system",), "shop-include-system.yaml"),
])
def test_shop_golden(args: tuple[str, ...], name: str) -> None:
    result = run("generate", SHOP, *args)
    assert result.exit_code == 0, result.stderr
    # The shop's capture includes the cluster DNS: kube-system gets no policy and says so, or with
    # --include-system the DNS server admits every pod and says so; nothing else warns.
    expected = ("warning: kube-system/coredns: TCP/53, UDP/53 admit pods in every namespace: it serves cluster DNS "
                "(kube-system/kube-dns)") if "--include-system" in args else (
                "warning: 1 kube-system workload(s) serve the whole cluster and get no policy (--include-system "
                "writes them): kube-system/coredns")
    assert [line for line in result.stderr.splitlines() if "warning" in line] == [expected]
    golden(name, result.stdout)
    assert run("generate", SHOP, *args).stdout == result.stdout  # byte-for-byte deterministic


def test_json_is_a_v1_list_of_the_same_policies() -> None:
    as_yaml = list(yaml.safe_load_all(run("generate", SHOP).stdout))
    as_json = json.loads(run("generate", SHOP, "-o", "json").stdout)
    assert as_json["apiVersion"] == "v1" and as_json["kind"] == "List"
    assert as_json["items"] == as_yaml


def test_every_observed_flow_is_allowed() -> None:
    """Semantics of the golden output: each flow each captured pod had is allowed on its side."""
    from kubectl_netgen.identity import PeerKind, resolve_flows

    policies = list(yaml.safe_load_all(run("generate", SHOP).stdout))
    inventory = read_snapshot(str(SHOP / "cluster.json"), lambda m: None)
    evaluator = Evaluator(parse_policies(policies), inventory)

    def allows(own: Pod, direction: str, remote_ip: str, protocol: str, port: int) -> bool:
        """The evaluation engine's answer for ``own``'s side of the flow."""
        answer = evaluator.allows(PolicyDirection(direction), own.ips[0], ip_address(remote_ip), Protocol(protocol),
                                  port)
        assert answer is not None, f"{own.name} is not a pod to the engine"
        return answer

    checked = 0
    for pcap in sorted((SHOP / "pcaps").glob("*/*.pcap")):
        own = inventory.pods_by_name[(pcap.parent.name, pcap.stem)]
        scanner = Scanner()
        with pcap.open("rb") as fh:
            scanner.scan(fh, str(pcap))
        for resolved in resolve_flows(inventory, own, fold(scanner.table)):
            for peer in resolved.peers:
                if peer.kind.ignored or peer.kind is PeerKind.OWN_NODE:
                    continue
                port = peer.port if resolved.direction == "egress" else resolved.flow.dst_port
                assert port is not None
                assert allows(own, resolved.direction, str(peer.ip), resolved.flow.protocol.value, port), (
                    own.name, resolved, peer)
                checked += 1
    assert checked > 50
    # And least privilege: something never observed is denied.
    checkout, frontend, gateway, notifier, operator, db = (
        next(p for p in inventory.pods if p.name.startswith(prefix))
        for prefix in ("checkout-", "frontend-", "gateway-", "notifier-", "shop-operator-", "db-0"))
    # Checkout never calls the frontend.
    assert not allows(checkout, "egress", frontend.ips[0].compressed, "TCP", 8080)
    # Policies see the gateway's targetPort, never the Service port checkout dialed.
    assert allows(checkout, "egress", gateway.ips[0].compressed, "TCP", 8080)
    assert not allows(checkout, "egress", gateway.ips[0].compressed, "TCP", 80)
    # The payments namespace reaches checkout, but not the shop's database.
    assert allows(checkout, "ingress", notifier.ips[0].compressed, "TCP", 8080)
    assert not allows(db, "ingress", notifier.ips[0].compressed, "TCP", 5432)
    # The operator (on node-b) reaches the API server on its endpoint (node-a:6443), and nothing else there;
    # its own node is always reachable (NetworkPolicies never block a pod's traffic with its node).
    assert allows(operator, "egress", "10.250.0.11", "TCP", 6443)
    assert not allows(operator, "egress", "10.250.0.11", "TCP", 10250)
    assert allows(operator, "egress", "10.250.0.12", "TCP", 10250)


def test_pcap_files_with_pod_option(tmp_path: Path) -> None:
    [frontend] = sorted((SHOP / "pcaps" / "shop").glob("frontend-*.pcap"))[:1]
    result = run("generate", frontend, "--pod", f"shop/{frontend.stem}", "--cluster", SHOP / "cluster.json")
    assert result.exit_code == 0, result.stderr
    [policy] = list(yaml.safe_load_all(result.stdout))
    assert policy["metadata"]["name"] == "frontend-netgen"


@pytest.mark.parametrize(("args", "message"), [
    ((str(A_PCAP),), "1 pcap file(s) but 0 --pod option(s)"),
    ((str(A_PCAP), "--pod", "nopod"), "--pod 'nopod' is not NAMESPACE/NAME"),
    (("x.pcap",), "x.pcap: no such file or directory"),
    ((str(SHOP / "pcaps"),), "is not a capture directory: it has no pcaps/ folder"),
    ((str(SHOP), str(A_PCAP)), "is a file but"),
])
def test_input_errors(args: tuple[str, ...], message: str) -> None:
    result = run("generate", *args)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_unknown_pod_and_missing_cluster_file(tmp_path: Path) -> None:
    shutil.copytree(SHOP / "pcaps", tmp_path / "pcaps")
    no_cluster = run("generate", tmp_path)
    assert no_cluster.exit_code == 3 and "has no cluster.json" in no_cluster.stderr
    snapshot = json.loads((SHOP / "cluster.json").read_text())
    snapshot["items"] = [i for i in snapshot["items"] if i["metadata"]["name"] != "db-0"]
    (tmp_path / "cluster.json").write_text(json.dumps(snapshot))
    result = run("generate", tmp_path)
    assert result.exit_code == 3
    assert "pod shop/db-0" in result.stderr and "is not in" in result.stderr


@pytest.mark.parametrize("name", ["shop.yaml", "shop-ingress.yaml", "shop-egress-no-dns.yaml"])
def test_golden_output_is_valid_against_the_kubernetes_schema(name: str) -> None:
    """Every generated manifest validates strictly against the Kubernetes OpenAPI schema (no unknown fields)."""
    try:
        import kubernetes_validate
    except ImportError:
        kubernetes_validate = None
    need(kubernetes_validate is not None, "needs kubernetes-validate (pip install -e '.[test]')")
    assert kubernetes_validate is not None
    for document in yaml.safe_load_all((GOLDEN / name).read_text()):
        kubernetes_validate.validate(document, "1.33", strict=True)


def _syn_pcap(path: Path, src: str, dst: str, sport: int, dport: int) -> Path:
    import struct

    def frame(a: str, b: str, pa: int, pb: int, flags: int) -> bytes:
        tcp = struct.pack("!HHIIBBHHH", pa, pb, 1, 0, 0x50, flags, 1000, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0x4000, 64, 6, 0, ip_address(a).packed, ip_address(b).packed)
        return b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00" + ip + tcp

    records = b""
    for n, data in enumerate([frame(src, dst, sport, dport, 0x02), frame(dst, src, dport, sport, 0x12)]):
        records += struct.pack("<IIII", 1_700_000_000 + n, 0, len(data), len(data)) + data
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1) + records)
    return path


def test_reverse_dns_names_unnamed_external_peers(tmp_path: Path) -> None:
    """An external address no DNS answer named gets its PTR name, from a DNS server this test runs."""
    import dns.reversename

    from tests.unit.test_reverse_dns import PtrServer

    inventory = read_snapshot(str(SHOP / "cluster.json"), lambda m: None)
    frontend = next(p for p in inventory.pods if p.name.startswith("frontend"))
    pcap = _syn_pcap(tmp_path / "f.pcap", str(frontend.ips[0]), "192.0.2.77", 40000, 8443)
    server = PtrServer()
    server.ptr[dns.reversename.from_address("192.0.2.77")] = ["Legacy-Billing.example.com."]
    server.start()
    try:
        args = ("generate", pcap, "--pod", f"shop/{frontend.name}", "--cluster", SHOP / "cluster.json")
        named = run(*args, "--dns-server", server.server)
        plain = run(*args, "--no-reverse-dns")
    finally:
        server.stop()
    assert named.exit_code == 0 and "warning" not in named.stderr, named.stderr
    assert "cidr: 192.0.2.77/32  # legacy-billing.example.com\n" in named.stdout
    assert "cidr: 192.0.2.77/32\n" in plain.stdout
    assert server.queries, "the lookup went to the test's server"
    bad = run(*args, "--dns-server", "not-an-ip")
    assert bad.exit_code == 2 and "Invalid value for --dns-server: DNS server" in bad.stderr  # a usage error


def _pcaps_and_pods(root: Path) -> list[str]:
    pcaps = sorted((root / "pcaps").rglob("*.pcap"))
    return [str(p) for p in pcaps] + [arg for p in pcaps for arg in ("--pod", f"{p.parent.name}/{p.stem}")]


def test_without_a_cluster_file_the_live_cluster_is_read(tmp_path: Path) -> None:
    """pcaps + --pod and no --cluster: the inventory comes from the API server, and the policies are the same."""
    from tests.cluster.apiserver import ApiServer

    with ApiServer(json.loads((SHOP / "cluster.json").read_text())) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        live = run("generate", *_pcaps_and_pods(SHOP), "--kubeconfig", kubeconfig, "--no-reverse-dns")
        api.deny("list", "endpointslices")
        denied = run("generate", *_pcaps_and_pods(SHOP), "--kubeconfig", kubeconfig, "--no-reverse-dns")
    assert live.exit_code == 0, live.stderr
    assert live.stdout == run("generate", str(SHOP), "--no-reverse-dns").stdout
    assert denied.exit_code == ExitStatus.FORBIDDEN and denied.stdout == ""
    assert 'grant verb "list" on resource "endpointslices"' in denied.stderr, denied.stderr


def test_without_a_cluster_file_or_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = run("generate", *_pcaps_and_pods(SHOP), "--no-reverse-dns")
    assert result.exit_code == ExitStatus.CLUSTER and result.stdout == ""
    assert "--cluster FILE" in result.stderr and result.stderr.count("\n") == 1


def test_the_self_check_fails_on_policies_that_deny_an_observed_flow() -> None:
    """``generate`` checks its policies with the engine; a policy set missing a rule fails the check."""
    import copy

    from kubectl_netgen.app.policies import SelfCheckError, check_policies
    from kubectl_netgen.observe import Observer

    inventory = read_snapshot(str(SHOP / "cluster.json"), lambda m: None)
    observer = Observer(inventory)
    for pcap in sorted((SHOP / "pcaps").glob("*/*.pcap")):
        scanner = Scanner()
        with pcap.open("rb") as fh:
            scanner.scan(fh, str(pcap))
        observer.add(inventory.pods_by_name[(pcap.parent.name, pcap.stem)], scanner.table)
    policies = list(yaml.safe_load_all(run("generate", SHOP, "--no-reverse-dns").stdout))
    assert check_policies(policies, inventory, observer.samples()) > 40

    broken = copy.deepcopy(policies)
    checkout = next(p for p in broken if p["metadata"]["name"].startswith("checkout"))
    removed = checkout["spec"]["egress"].pop(0)
    with pytest.raises(SelfCheckError) as caught:
        check_policies(broken, inventory, observer.samples())
    message = str(caught.value)
    assert caught.value.exit_code is ExitStatus.ERROR
    assert message.startswith("internal error: the generated policies would deny ")
    assert "egress shop/checkout-" in message and message.endswith("; please report")
    assert any(f"{port['protocol']}/{port['port']}" in message for port in removed["ports"])


def test_self_check_runs_up_to_a_limit_and_says_when_it_did_not(monkeypatch: pytest.MonkeyPatch) -> None:
    import kubectl_netgen.app.policies as policies

    checked: list[int] = []
    real = policies.check_policies
    monkeypatch.setattr(policies, "check_policies", lambda *a: checked.append(real(*a)) or checked[-1])
    default = run("generate", SHOP, "--no-reverse-dns")
    assert default.exit_code == 0 and len(checked) == 1 and checked[0] > 0
    monkeypatch.setattr(policies, "SELF_CHECK_LIMIT", 1)
    over = run("generate", SHOP, "--no-reverse-dns")
    assert len(checked) == 1 and "were not checked against every observed flow" in over.stderr
    assert over.stdout == default.stdout
    forced = run("generate", SHOP, "--no-reverse-dns", "--self-check")
    assert len(checked) == 2 and "not checked" not in forced.stderr
    skipped = run("generate", SHOP, "--no-reverse-dns", "--no-self-check")
    assert len(checked) == 2 and "not checked" not in skipped.stderr
