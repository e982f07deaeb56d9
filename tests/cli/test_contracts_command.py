"""``kubectl netgen contracts``: the worked example through the CLI, and --apply/--test-pods/--cleanup against
the test API server (HTTPS, token auth, RBAC denials, dryRun=All)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_netgen.errors import ExitStatus
from kubectl_netgen.evaluate import Evaluator, parse_policies
from kubectl_netgen.model import Inventory, Namespace, Protocol, labels_of
from tests.cluster.apiserver import ApiServer
from tests.cluster.seed import seed_list
from tests.conftest import run
from tests.unit.test_contracts import EXTERNAL, PODS, WORKED_EXAMPLE

INVENTORY = Inventory.create(namespaces=[Namespace(n, labels_of({"kubernetes.io/metadata.name": n}))
                                         for n in ("mms", "other")], pods=PODS.values())
SHOP = {"namespaces": ["shop"], "contracts": WORKED_EXAMPLE["contracts"], "expose": WORKED_EXAMPLE["expose"]}


@pytest.fixture
def document(tmp_path: Path) -> Path:
    path = tmp_path / "contracts.yaml"
    path.write_text(yaml.safe_dump(WORKED_EXAMPLE))
    return path


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.json"
    path.write_text(json.dumps(SHOP))
    return path


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer(seed_list()) as api:
        yield api


@pytest.fixture
def kubeconfig(server: ApiServer, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")


def names(server: ApiServer, kind: str, namespace: str = "shop") -> list[str]:
    return [o["metadata"]["name"] for o in server.objects(kind, namespace)]


# ----------------------------------------------------------------------------- printing


@pytest.mark.parametrize(("src", "dst", "port", "expected"), [
    ("web", "db", 3306, True), ("web", "db", 22, False), ("db", "web", 22, True), (EXTERNAL, "web", 80, True),
    (EXTERNAL, "web", 81, False), (EXTERNAL, "db", 3306, False), ("plain", "db", 3306, False),
    ("other-ns-web", "db", 3306, False),
])
def test_worked_example(document: Path, src: str, dst: str, port: int, expected: bool) -> None:
    result = run("contracts", document)
    assert result.exit_code == 0, result.stderr
    manifests = list(yaml.safe_load_all(result.stdout))
    assert [m["metadata"]["name"] for m in manifests] == ["netgen-group-db", "netgen-group-web"]
    ip = {k: str(p.ips[0]) for k, p in PODS.items()}
    verdict = Evaluator(parse_policies(manifests), INVENTORY).evaluate(ip.get(src, src), ip.get(dst, dst),
                                                                        Protocol.TCP, port)
    assert verdict.allowed is expected
    assert result.stderr == "2 NetworkPolicies for 2 group(s) and 1 contract(s) in 1 namespace(s)\n"


def test_json_stdin_and_symmetric(document: Path) -> None:
    as_json = run("contracts", document, "-o", "json")
    assert as_json.exit_code == 0
    listed = json.loads(as_json.stdout)
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert listed["items"] == list(yaml.safe_load_all(run("contracts", document).stdout))
    piped = run("contracts", "-", "-o", "json", stdin=json.dumps(WORKED_EXAMPLE).encode())
    assert piped.stdout == as_json.stdout
    symmetric = json.loads(run("contracts", document, "--symmetric", "-o", "json").stdout)["items"]
    web = symmetric[1]["spec"]["ingress"][1]
    assert web["ports"] == [{"protocol": "TCP", "port": 3306}]
    key = json.loads(run("contracts", document, "--label-key", "example.com/net", "-o", "json").stdout)["items"]
    assert key[0]["spec"]["podSelector"] == {"matchLabels": {"example.com/net": "db"}}


def test_ignored_fields_are_warned_about(tmp_path: Path) -> None:
    doc = json.loads(json.dumps(WORKED_EXAMPLE))
    doc["contracts"]["web-to-db"]["established"] = True
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = run("contracts", path)
    assert result.exit_code == 0
    assert result.stderr.startswith(f"warning: {path}: contract web-to-db: established ignored (NetworkPolicy is "
                                    "stateful")


@pytest.mark.parametrize(("content", "message"), [
    ("namespaces: [mms]\ncontracts:\n  web-to-db: {provide_networks: [db], consume_networks: [web], "
     "ports: [{port: 'x'}]}\n", "contract web-to-db: port 'x' is not a port number"),
    ("namespaces: [mms]\ncontracts: {c: {provide_networks: [db], consume_networks: [web], ports: [{port: 1}]}}\n"
     "expose: [{network: wbe, cidr: 0.0.0.0/0, ports: [{port: 80}]}]\n",
     "expose[0] (network wbe): unknown group 'wbe'"),
    ("namespaces: [mms]\ncontracts: {c: {provide_networks: [db], consume_networks: [web], ports: [{port: 1}]}}\n"
     "expose: [{network: web, cidr: 10.0.0.1/8, ports: [{port: 80}]}]\n", "cidr '10.0.0.1/8' is not a CIDR"),
    ("a: [\n", "not valid YAML or JSON"),
    ("- 1\n", "a contracts document is a mapping"),
    ("namespaces: [a]\n---\nnamespaces: [b]\n", "expected one contracts document"),
])
def test_bad_input_is_one_line_exit_3(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = run("contracts", path)
    assert result.exit_code == ExitStatus.INPUT
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_missing_file_exits_3(tmp_path: Path) -> None:
    result = run("contracts", tmp_path / "nope.yaml")
    assert (result.exit_code, result.stderr) == (ExitStatus.INPUT, f"error: {tmp_path / 'nope.yaml'}: no such file\n")


@pytest.mark.parametrize("args", [["--create"], ["--cleanup", "--apply"], ["--dry-run", "server"],
                                  ["--apply", "--dry-run", "maybe"]])
def test_usage_errors(document: Path, args: list[str]) -> None:
    result = run("contracts", document, *args)
    assert result.exit_code == ExitStatus.USAGE
    assert result.stdout == ""


def test_test_pods_are_printed(document: Path) -> None:
    result = run("contracts", document, "--test-pods")
    assert result.exit_code == 0
    pods = list(yaml.safe_load_all(result.stdout))
    assert [(p["metadata"]["name"], p["metadata"]["labels"]) for p in pods] == [
        ("netgen-test-db", {"app.kubernetes.io/managed-by": "kubectl-netgen", "mms_network_tag": "db"}),
        ("netgen-test-ungrouped", {"app.kubernetes.io/managed-by": "kubectl-netgen"}),
        ("netgen-test-web", {"app.kubernetes.io/managed-by": "kubectl-netgen", "mms_network_tag": "web"}),
    ]
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"registry.k8s.io/e2e-test-images/agnhost:2.52"}
    assert result.stderr == "3 test pods for 2 group(s) and 1 contract(s) in 1 namespace(s)\n"


# ----------------------------------------------------------------------------- the cluster


def test_apply_creates_then_leaves_alone_then_configures(server: ApiServer, kubeconfig: Path, shop: Path,
                                                         tmp_path: Path) -> None:
    result = run("contracts", shop, "--apply", "--kubeconfig", kubeconfig)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[1:] == ["networkpolicy.networking.k8s.io/netgen-group-db created",
                                              "networkpolicy.networking.k8s.io/netgen-group-web created"]
    printed = list(yaml.safe_load_all(result.stdout))
    stored = server.objects("networkpolicies", "shop")
    assert [s["spec"] for s in stored] == [p["spec"] for p in printed]
    again = run("contracts", shop, "--apply", "--kubeconfig", kubeconfig)
    assert again.stderr.splitlines()[1:] == ["networkpolicy.networking.k8s.io/netgen-group-db unchanged",
                                             "networkpolicy.networking.k8s.io/netgen-group-web unchanged"]
    symmetric = run("contracts", shop, "--apply", "--symmetric", "--kubeconfig", kubeconfig)
    assert symmetric.stderr.splitlines()[1:] == ["networkpolicy.networking.k8s.io/netgen-group-db unchanged",
                                                 "networkpolicy.networking.k8s.io/netgen-group-web configured"]
    web = server.get_object("networkpolicies", "netgen-group-web", "shop")
    assert web is not None and web["spec"]["ingress"][1]["ports"] == [{"protocol": "TCP", "port": 3306}]


def test_server_dry_run_leaves_nothing(server: ApiServer, kubeconfig: Path, shop: Path) -> None:
    before = server.resource_version()
    result = run("contracts", shop, "--apply", "--test-pods", "--create", "--dry-run=server",
                 "--kubeconfig", kubeconfig)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[1:] == [
        "networkpolicy.networking.k8s.io/netgen-group-db created (server dry run)",
        "networkpolicy.networking.k8s.io/netgen-group-web created (server dry run)",
        "pod/netgen-test-db created (server dry run)",
        "pod/netgen-test-ungrouped created (server dry run)",
        "pod/netgen-test-web created (server dry run)",
    ]
    assert server.resource_version() == before
    assert names(server, "networkpolicies") == [] and not any(n.startswith("netgen") for n in names(server, "pods"))


def test_server_dry_run_still_meets_rbac(server: ApiServer, kubeconfig: Path, shop: Path) -> None:
    server.deny("create", "networkpolicies")
    result = run("contracts", shop, "--apply", "--dry-run=server", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.FORBIDDEN


def test_client_dry_run_makes_no_request(server: ApiServer, kubeconfig: Path, shop: Path) -> None:
    server.deny("*", "networkpolicies")
    server.deny("*", "pods")
    before = server.resource_version()
    server.close()  # nothing listens any more: any request would fail
    result = run("contracts", shop, "--apply", "--test-pods", "--create", "--dry-run=client",
                 "--kubeconfig", kubeconfig)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[1:] == [
        "networkpolicy.networking.k8s.io/netgen-group-db applied (dry run)",
        "networkpolicy.networking.k8s.io/netgen-group-web applied (dry run)",
        "pod/netgen-test-db applied (dry run)",
        "pod/netgen-test-ungrouped applied (dry run)",
        "pod/netgen-test-web applied (dry run)",
    ]
    assert server.resource_version() == before


def test_test_pods_create_then_cleanup_leaves_nothing(server: ApiServer, kubeconfig: Path, shop: Path) -> None:
    pods_before = names(server, "pods")
    # a policy netgen generate wrote and one nobody's: cleanup must leave both alone
    foreign: dict[str, Any] = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                               "metadata": {"name": "netgen-web", "namespace": "shop",
                                            "labels": {"app.kubernetes.io/managed-by": "kubectl-netgen"}},
                               "spec": {"podSelector": {}}}
    server.put_object(foreign)
    server.put_object({**foreign, "metadata": {"name": "netgen-group-theirs", "namespace": "shop"}})
    created = run("contracts", shop, "--apply", "--test-pods", "--create", "--kubeconfig", kubeconfig)
    assert created.exit_code == 0, created.stderr
    assert "pod/netgen-test-web created" in created.stderr
    pod = server.get_object("pods", "netgen-test-web", "shop")
    assert pod is not None and pod["metadata"]["labels"]["mms_network_tag"] == "web"
    assert names(server, "networkpolicies") == ["netgen-group-db", "netgen-group-theirs", "netgen-group-web",
                                                "netgen-web"]
    dry = run("contracts", shop, "--cleanup", "--dry-run=server", "--kubeconfig", kubeconfig)
    assert dry.exit_code == 0 and "(server dry run)" in dry.stderr
    assert len(names(server, "networkpolicies")) == 4
    cleaned = run("contracts", shop, "--cleanup", "--kubeconfig", kubeconfig)
    assert cleaned.exit_code == 0, cleaned.stderr
    assert cleaned.stdout == ""
    assert cleaned.stderr.splitlines() == [
        "networkpolicy.networking.k8s.io/netgen-group-db deleted",
        "networkpolicy.networking.k8s.io/netgen-group-web deleted",
        "pod/netgen-test-db deleted",
        "pod/netgen-test-ungrouped deleted",
        "pod/netgen-test-web deleted",
        "5 object(s) deleted in shop",
    ]
    assert names(server, "pods") == pods_before
    assert names(server, "networkpolicies") == ["netgen-group-theirs", "netgen-web"]
    assert run("contracts", shop, "--cleanup", "--kubeconfig", kubeconfig).stderr == \
        "nothing of netgen contracts to delete in shop\n"


@pytest.mark.parametrize(("deny", "args", "message"), [
    (("get", "networkpolicies"), ["--apply"],
     'error: forbidden: cannot get networkpolicies.networking.k8s.io in namespace "shop" (RBAC: grant verb "get" on '
     'resource "networkpolicies" in API group "networking.k8s.io"); ask your cluster admin for it\n'),
    (("create", "networkpolicies"), ["--apply"],
     'error: forbidden: cannot create networkpolicies.networking.k8s.io in namespace "shop" (RBAC: grant verb '
     '"create" on resource "networkpolicies" in API group "networking.k8s.io"); ask your cluster admin for it\n'),
    (("create", "pods"), ["--test-pods", "--create"],
     'error: forbidden: cannot create pods in namespace "shop" (RBAC: grant verb "create" on resource "pods"); '
     "ask your cluster admin for it\n"),
    (("list", "pods"), ["--cleanup"],
     'error: forbidden: cannot list pods in namespace "shop" (RBAC: grant verb "list" on resource "pods"); '
     "ask your cluster admin for it\n"),
])
def test_rbac_denial_names_verb_and_resource(server: ApiServer, kubeconfig: Path, shop: Path,
                                             deny: tuple[str, str], args: list[str], message: str) -> None:
    server.deny(*deny)
    result = run("contracts", shop, *args, "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.FORBIDDEN
    assert result.stderr.splitlines()[-1] + "\n" == message


def test_delete_denied(server: ApiServer, kubeconfig: Path, shop: Path) -> None:
    assert run("contracts", shop, "--apply", "--kubeconfig", kubeconfig).exit_code == 0
    server.deny("delete", "networkpolicies")
    result = run("contracts", shop, "--cleanup", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.FORBIDDEN
    assert 'grant verb "delete" on resource "networkpolicies"' in result.stderr


def test_no_cluster_exits_5(shop: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = run("contracts", shop, "--apply")
    assert result.exit_code == ExitStatus.CLUSTER
    assert result.stderr.splitlines()[-1].startswith("error: no kubeconfig found")
