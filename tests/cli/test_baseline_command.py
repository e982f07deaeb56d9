"""``kubectl netgen baseline``: -n without a cluster, -A/-l from the test API server, --kyverno against the golden."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubectl_netgen.baseline import baseline_policies
from kubectl_netgen.errors import ExitStatus
from kubectl_netgen.evaluate import Evaluator, parse_policies
from kubectl_netgen.model import Protocol
from kubectl_netgen.synth import Mode
from tests.cluster.apiserver import ApiServer
from tests.cluster.seed import seed_list
from tests.conftest import run
from tests.unit.test_baseline import INVENTORY, IP

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "baseline-kyverno.yaml"


@pytest.fixture
def server() -> Iterator[ApiServer]:
    seed = seed_list()
    for name, labels in (("team-a", {"tier": "a"}), ("team-b", {"tier": "b"}), ("monitoring", {})):
        seed["items"].append({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}})
    with ApiServer(seed) as api:
        yield api


@pytest.fixture
def kubeconfig(server: ApiServer, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")


def namespaces_of(stdout: str) -> list[str]:
    return sorted({m["metadata"]["namespace"] for m in yaml.safe_load_all(stdout)})


def test_one_namespace_needs_no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    result = run("baseline", "-n", "team-a")
    assert result.exit_code == 0, result.stderr
    manifests = list(yaml.safe_load_all(result.stdout))
    assert manifests == baseline_policies(["team-a"])
    assert result.stderr == "2 NetworkPolicies for 1 namespace(s)\n"
    evaluator = Evaluator(parse_policies(manifests), INVENTORY)
    assert evaluator.evaluate(IP["a1"], IP["dns"], Protocol.UDP, 53).allowed
    assert not evaluator.evaluate(IP["a1"], IP["external"], Protocol.TCP, 443).allowed
    assert not evaluator.evaluate(IP["c1"], IP["a1"], Protocol.TCP, 80).allowed


def test_options_and_json() -> None:
    result = run("baseline", "-n", "team-a", "--mode", "ingress", "--deny-metadata", "--allow-same-namespace",
                 "-o", "json")
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert listed["items"] == baseline_policies(["team-a"], mode=Mode.INGRESS, deny_metadata=True,
                                                allow_same_namespace=True)
    no_dns = run("baseline", "-n", "team-a", "--no-dns-rule")
    assert [m["metadata"]["name"] for m in yaml.safe_load_all(no_dns.stdout)] == ["netgen-default-deny"]


def test_kube_system_is_refused_with_n() -> None:
    result = run("baseline", "-n", "kube-system")
    assert result.exit_code == ExitStatus.INPUT
    assert result.stderr.startswith("error: will not baseline namespace kube-system")


def test_all_namespaces_from_the_cluster(kubeconfig: Path) -> None:
    result = run("baseline", "-A", "--exclude", "mon*", "--kubeconfig", kubeconfig)
    assert result.exit_code == 0, result.stderr
    assert namespaces_of(result.stdout) == ["default", "shop", "team-a", "team-b"]
    assert result.stderr.splitlines() == [
        "left out: kube-system, monitoring (kube-system and the cluster DNS namespace are never baselined, others "
        "by --exclude)",
        "8 NetworkPolicies for 4 namespace(s)",
    ]


def test_selector(kubeconfig: Path) -> None:
    result = run("baseline", "-l", "tier", "--kubeconfig", kubeconfig)
    assert result.exit_code == 0, result.stderr
    assert namespaces_of(result.stdout) == ["team-a", "team-b"]
    assert result.stderr == "4 NetworkPolicies for 2 namespace(s)\n"
    none = run("baseline", "-l", "tier=z", "--kubeconfig", kubeconfig)
    assert (none.exit_code, none.stdout, none.stderr) == (0, "", "no namespace to baseline\n")


def test_rbac_denial(server: ApiServer, kubeconfig: Path) -> None:
    server.deny("list", "namespaces")
    result = run("baseline", "-A", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.FORBIDDEN
    assert result.stdout == ""
    assert result.stderr == ('error: forbidden: cannot list namespaces (cluster-scoped) (RBAC: grant verb "list" on '
                             'resource "namespaces" with a ClusterRole); ask your cluster admin for it, or name the '
                             "namespace with -n\n")


def test_kyverno_matches_the_golden_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    result = run("baseline", "--kyverno", "--deny-metadata", "--allow-same-namespace", "--exclude", "monitoring")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == GOLDEN.read_text()
    as_json = json.loads(run("baseline", "--kyverno", "--deny-metadata", "--allow-same-namespace", "--exclude",
                             "monitoring", "-o", "json").stdout)
    assert as_json["items"] == [yaml.safe_load(GOLDEN.read_text())]


@pytest.mark.parametrize("args", [[], ["-n", "a", "-A"], ["-A", "-l", "x=y"], ["--kyverno", "-A"],
                                  ["-n", "a", "--mode", "sideways"]])
def test_usage_errors(args: list[str]) -> None:
    result = run("baseline", *args)
    assert result.exit_code == ExitStatus.USAGE
    assert result.stdout == ""


def test_bad_exclude_exits_3() -> None:
    result = run("baseline", "--kyverno", "--exclude", "Bad_NS")
    assert result.exit_code == ExitStatus.INPUT
    assert result.stderr == "error: --exclude 'Bad_NS' is not a namespace name (or a pattern with * and ?)\n"
