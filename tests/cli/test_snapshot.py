"""``kubectl netgen snapshot`` against the test API server (HTTPS, token auth, RBAC denials)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_netgen.errors import ExitStatus
from kubectl_netgen.inventory import load_inventory, read_snapshot
from kubectl_netgen.kube import RESOURCES
from tests.cluster.apiserver import ApiServer
from tests.cluster.seed import seed_list
from tests.conftest import need, run

KINDS = [r.kind for r in RESOURCES]


def _key(item: dict[str, object]) -> tuple[int, str, str]:
    meta = item["metadata"]
    assert isinstance(meta, dict)
    return KINDS.index(str(item["kind"])), meta.get("namespace") or "", meta["name"]


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer(seed_list()) as api:
        yield api


@pytest.fixture
def kubeconfig(server: ApiServer, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")


def test_all_namespaces(kubeconfig: Path) -> None:
    result = run("snapshot", "-A", "--kubeconfig", kubeconfig)
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["apiVersion"], document["kind"]) == ("v1", "List")
    got = [_key(i) for i in document["items"]]
    assert got == sorted(got)
    expected = sorted(_key(i) for i in seed_list()["items"])
    assert got == expected
    for item in document["items"]:
        assert item["apiVersion"] == next(r.api_version for r in RESOURCES if r.kind == item["kind"])
    pod = next(i for i in document["items"] if i["metadata"]["name"] == "db-0")
    assert pod["status"]["podIPs"] == [{"ip": "10.244.0.13"}]  # the API's own camelCase JSON
    assert result.stderr == ("snapshot of all namespaces: 3 Namespaces, 4 Pods, 3 Services, 1 EndpointSlice, "
                             "2 Nodes, 2 ReplicaSets, 2 Deployments, 1 StatefulSet, 0 DaemonSets, 0 Jobs, "
                             "0 CronJobs\n")
    assert run("snapshot", "-A", "--kubeconfig", kubeconfig).stdout == result.stdout


def test_one_namespace(kubeconfig: Path) -> None:
    result = run("snapshot", "-n", "kube-system", "--kubeconfig", kubeconfig)
    assert result.exit_code == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    assert {i["metadata"].get("namespace") for i in items if i["kind"] not in ("Namespace", "Node")} == \
        {"kube-system"}
    assert [i["metadata"]["name"] for i in items if i["kind"] == "Namespace"] == ["kube-system"]
    assert len([i for i in items if i["kind"] == "Node"]) == 2  # nodes are cluster-scoped: always read
    assert result.stderr.startswith('snapshot of namespace "kube-system": 1 Namespace, 1 Pod, 1 Service, ')


def test_default_namespace_is_the_contexts(server: ApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    result = run("snapshot", "--kubeconfig", kubeconfig)
    assert result.exit_code == 0
    assert result.stdout == run("snapshot", "-n", "shop", "--kubeconfig", kubeconfig).stdout
    bare = server.write_kubeconfig(tmp_path / "bare", namespace=None)
    result = run("snapshot", "--kubeconfig", bare)
    assert result.exit_code == 0
    assert result.stderr.startswith('snapshot of namespace "default": 1 Namespace, 0 Pods')


def test_context_option(server: ApiServer, tmp_path: Path) -> None:
    first = json.loads(server.write_kubeconfig(tmp_path / "a", context="first", namespace="shop").read_text())
    second = json.loads(server.write_kubeconfig(tmp_path / "b", context="second",
                                                namespace="kube-system").read_text())
    for section in ("clusters", "users", "contexts"):
        first[section] += second[section]
    merged = tmp_path / "merged"
    merged.write_text(json.dumps(first))
    assert run("snapshot", "--kubeconfig", merged).stderr.startswith('snapshot of namespace "shop"')
    result = run("snapshot", "--kubeconfig", merged, "--context", "second")
    assert result.exit_code == 0
    assert result.stderr.startswith('snapshot of namespace "kube-system"')
    missing = run("snapshot", "--kubeconfig", merged, "--context", "third")
    assert missing.exit_code == ExitStatus.CLUSTER
    assert missing.stderr == f"error: no context 'third' in the kubeconfig {merged} (contexts: first, second)\n"


def test_kubeconfig_env(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{kubeconfig}")
    result = run("snapshot", "-A")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == run("snapshot", "-A", "--kubeconfig", kubeconfig).stdout


def test_no_kubeconfig_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = run("snapshot", "-A")
    assert result.exit_code == ExitStatus.CLUSTER
    assert result.stderr.startswith("error: no kubeconfig found")
    absent = run("snapshot", "--kubeconfig", tmp_path / "nope")
    assert absent.exit_code == ExitStatus.INPUT
    assert absent.stderr == f"error: {tmp_path / 'nope'}: no such kubeconfig file; give --kubeconfig the path " \
                            "of a kubeconfig\n"


def test_rbac_denial_exits_6(server: ApiServer, kubeconfig: Path) -> None:
    server.deny("list", "pods")
    result = run("snapshot", "-n", "shop", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.FORBIDDEN
    assert result.stdout == ""
    assert result.stderr == ('error: forbidden: cannot list pods in namespace "shop" (RBAC: grant verb "list" on '
                             'resource "pods"); ask your cluster admin or use --cluster FILE\n')
    server.allow_all()
    server.deny("list", "deployments")
    result = run("snapshot", "-A", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.FORBIDDEN
    assert result.stderr == ('error: forbidden: cannot list deployments.apps in all namespaces (RBAC: grant verb '
                             '"list" on resource "deployments" in API group "apps" with a ClusterRole); ask your '
                             'cluster admin or use --cluster FILE\n')


def test_unknown_namespace_exits_7(kubeconfig: Path) -> None:
    result = run("snapshot", "-n", "nope", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.NOT_FOUND
    assert result.stderr == ('error: namespace "nope" not found; check the name (kubectl get namespaces) '
                             "or use -A for all namespaces\n")


def test_bad_token_exits_5(server: ApiServer, kubeconfig: Path) -> None:
    config = json.loads(kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "wrong"
    kubeconfig.write_text(json.dumps(config))
    result = run("snapshot", "-A", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.CLUSTER
    assert result.stderr.startswith("error: unauthorized: check your kubeconfig credentials")
    assert result.stderr.count("\n") == 1


def test_unreachable_server_exits_5(server: ApiServer, kubeconfig: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # a free port: nothing listens there once the socket is closed
    config = json.loads(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    kubeconfig.write_text(json.dumps(config))
    result = run("snapshot", "-A", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.CLUSTER
    assert result.stderr.startswith(f"error: cannot reach the API server at https://127.0.0.1:{port}: ")
    assert result.stderr.count("\n") == 1


def test_namespace_and_all_namespaces_is_a_usage_error(kubeconfig: Path) -> None:
    result = run("snapshot", "-n", "shop", "-A", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.USAGE
    assert "cannot be given together" in result.stderr


def test_round_trip_through_read_snapshot(kubeconfig: Path, tmp_path: Path) -> None:
    result = run("snapshot", "-A", "--kubeconfig", kubeconfig)
    path = tmp_path / "cluster.json"
    path.write_text(result.stdout)
    warnings: list[str] = []
    inventory = read_snapshot(str(path), warnings.append)
    assert warnings == []
    assert inventory == load_inventory(seed_list(), warnings.append)
    assert len(inventory.pods) == 4 and inventory.missing == ("CronJob", "DaemonSet", "Job")


@pytest.mark.kubectl
def test_through_real_kubectl(kubeconfig: Path) -> None:
    kubectl = shutil.which("kubectl")
    need(kubectl is not None and shutil.which("kubectl-netgen") is not None,
         "needs kubectl and the plugin on PATH (pip install -e .)")
    assert kubectl is not None
    done = subprocess.run([kubectl, "netgen", "snapshot", "-A",
                           "--kubeconfig", str(kubeconfig)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == run("snapshot", "-A", "--kubeconfig", kubeconfig).stdout


def test_kind_the_server_does_not_serve_is_left_out(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cluster.apiserver import handler

    served = handler.resource_at
    monkeypatch.setattr(handler, "resource_at",
                        lambda group, version, plural: None if plural == "cronjobs" else served(group, version, plural))
    result = run("snapshot", "-A", "--kubeconfig", kubeconfig)
    assert result.exit_code == 0
    assert result.stderr.startswith("warning: the API server does not serve batch/v1 cronjobs: CronJobs are left "
                                    "out of the snapshot\nsnapshot of all namespaces: ")


@pytest.mark.parametrize(("content", "message"), [
    ("not yaml: [", "is not YAML (line 1, column 12): fix it or pass --kubeconfig FILE"),
    ("- 1\n- 2\n", "is not a kubeconfig (a mapping of clusters, contexts and users)"),
])
def test_a_kubeconfig_that_is_not_one_is_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    result = run("snapshot", "-A", "--kubeconfig", path)
    assert result.exit_code == 5 and result.stdout == ""
    assert result.stderr.startswith(f"error: the kubeconfig {path} {message}")
    assert result.stderr.count("\n") == 1


def test_insecure_skip_tls_verify_prints_no_warning_per_request(server: ApiServer, tmp_path: Path) -> None:
    """The user asked for it in the kubeconfig; kubectl prints nothing either (urllib3 warned per request)."""
    path = tmp_path / "insecure"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server.url, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": server.token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    exe = shutil.which("kubectl-netgen")
    need(exe is not None, "needs kubectl-netgen on PATH (pip install -e .)")
    assert exe is not None
    done = subprocess.run([exe, "snapshot", "-A", "--kubeconfig", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)  # a real process: Python's warnings reach its stderr
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "InsecureRequest" not in done.stderr
    assert done.stderr.count("\n") == 1  # the summary line only
