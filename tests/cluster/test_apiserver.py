"""The test API server speaks the Kubernetes protocol well enough for the real kubectl and the Python client."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.cluster.apiserver import ApiServer, rfc3339_nano
from tests.cluster.seed import seed_list
from tests.conftest import need

T = TypeVar("T")
SHOP_PODS = ["db-0", "frontend-7d9c-abcde", "frontend-7d9c-fghij"]
RESTRICTED_SC = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 65534,
                 "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                 "seccompProfile": {"type": "RuntimeDefault"}}


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer(seed_list()) as api:
        yield api


@pytest.fixture
def kubeconfig(server: ApiServer, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")


@pytest.fixture
def core(kubeconfig: Path) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


def kubectl(kubeconfig: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kubectl")
    need(exe is not None, "needs the kubectl binary on PATH")
    assert exe is not None
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def raw(server: ApiServer, method: str, path: str, body: Any = None, content_type: str = "application/json",
        token: str | None = None) -> tuple[int, Any]:
    """One request with the stdlib, for what neither client exposes; returns (status, parsed JSON or text)."""
    context = ssl.create_default_context(cadata=server.ca_pem.decode())
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    headers = {"Authorization": f"Bearer {server.token if token is None else token}", "Content-Type": content_type}
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode()


def wait_for(check: Callable[[], T | None], timeout: float = 10, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def debug(core: client.CoreV1Api, pod: str, container: dict[str, Any], namespace: str = "shop") -> Any:
    body = {"spec": {"ephemeralContainers": [container]}}
    return core.patch_namespaced_pod_ephemeralcontainers(pod, namespace, body)


def ephemeral_state(server: ApiServer, pod: str, name: str, namespace: str = "shop") -> dict[str, Any]:
    obj = server.get_object("pods", pod, namespace) or {}
    for status in obj.get("status", {}).get("ephemeralContainerStatuses", []):
        if status["name"] == name:
            return dict(status["state"])
    return {}


def terminated(server: ApiServer, pod: str, name: str) -> dict[str, Any]:
    return wait_for(lambda: ephemeral_state(server, pod, name).get("terminated"), what=f"{name} to terminate")


def error_body(e: ApiException) -> dict[str, Any]:
    return dict(json.loads(e.body))


# -------------------------------------------------------------------------------------------- discovery


def test_discovery_documents(server: ApiServer) -> None:
    assert raw(server, "GET", "/version")[1]["gitVersion"] == "v1.37.0"
    assert raw(server, "GET", "/api")[1]["versions"] == ["v1"]
    groups = {g["name"] for g in raw(server, "GET", "/apis")[1]["groups"]}
    assert groups == {"apps", "batch", "networking.k8s.io", "discovery.k8s.io", "rbac.authorization.k8s.io",
                      "authorization.k8s.io"}
    core_names = {r["name"] for r in raw(server, "GET", "/api/v1")[1]["resources"]}
    assert {"pods", "pods/log", "pods/ephemeralcontainers", "namespaces", "nodes", "services"} <= core_names
    apps = raw(server, "GET", "/apis/apps/v1")[1]
    assert apps["kind"] == "APIResourceList" and {r["kind"] for r in apps["resources"]} == {
        "ReplicaSet", "Deployment", "StatefulSet", "DaemonSet"}
    status, body = raw(server, "GET", "/apis/nope/v1/things")
    assert (status, body["reason"]) == (404, "NotFound")


def test_bad_token_is_401(server: ApiServer) -> None:
    status, body = raw(server, "GET", "/api/v1/pods", token="wrong")
    assert status == 401 and body["reason"] == "Unauthorized" and body["kind"] == "Status"


def test_plain_http_serves_the_python_client(tmp_path: Path) -> None:
    # kubectl will not send a bearer token over plain http (it gets 401), hence TLS by default.
    with ApiServer(seed_list(), tls=False) as server:
        assert server.url.startswith("http://")
        api_client = config.new_client_from_config(config_file=str(server.write_kubeconfig(tmp_path / "kc")))
        assert len(client.CoreV1Api(api_client).list_namespace().items) == 3
        api_client.close()


def test_kubectl_get_all_pods_as_json(kubeconfig: Path) -> None:
    result = kubectl(kubeconfig, "get", "pods", "-A", "-o", "json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["kind"] == "List"
    assert sorted(p["metadata"]["name"] for p in listing["items"] if p["metadata"]["namespace"] == "shop") == SHOP_PODS
    assert {p["kind"] for p in listing["items"]} == {"Pod"}


def test_kubectl_reads_every_seeded_kind(kubeconfig: Path) -> None:
    kinds = ("namespaces,pods,services,endpointslices,nodes,replicasets,deployments,statefulsets,daemonsets,jobs,"
             "cronjobs")
    result = kubectl(kubeconfig, "get", kinds, "-A", "-o", "json")
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    assert len(items) == len(seed_list()["items"])
    selected = kubectl(kubeconfig, "get", "pods", "-l", "app=frontend", "--field-selector", "spec.nodeName=node-b",
                       "-o", "name")
    assert selected.stdout.split() == ["pod/frontend-7d9c-fghij"], selected.stderr
    resources = kubectl(kubeconfig, "api-resources", "-o", "name")
    assert "networkpolicies.networking.k8s.io" in resources.stdout.split(), resources.stderr


def test_kubectl_label_patches_and_errors(server: ApiServer, kubeconfig: Path) -> None:
    result = kubectl(kubeconfig, "label", "pod", "db-0", "tier=data")
    assert result.returncode == 0, result.stderr
    assert (server.get_object("pods", "db-0", "shop") or {})["metadata"]["labels"]["tier"] == "data"
    missing = kubectl(kubeconfig, "get", "pod", "nope")
    assert missing.returncode == 1 and 'Error from server (NotFound): pods "nope" not found' in missing.stderr
    server.deny("get", "pods", namespace="shop")
    denied = kubectl(kubeconfig, "get", "pod", "db-0")
    assert ('Error from server (Forbidden): pods "db-0" is forbidden: User "netgen-test" cannot get resource "pods" '
            'in API group "" in the namespace "shop"') in denied.stderr


# ------------------------------------------------------------------------------------- list, selectors


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=frontend", ["frontend-7d9c-abcde", "frontend-7d9c-fghij"]),
    ("app==db", ["db-0"]),
    ("app!=frontend", ["coredns-5c8f-xk2lp", "db-0"]),
    ("app in (db, frontend),pod-template-hash", ["frontend-7d9c-abcde", "frontend-7d9c-fghij"]),
    ("app notin (frontend)", ["coredns-5c8f-xk2lp", "db-0"]),
    ("app", ["db-0", "frontend-7d9c-abcde", "frontend-7d9c-fghij"]),
    ("!app", ["coredns-5c8f-xk2lp"]),
])
def test_label_selectors(core: client.CoreV1Api, selector: str, expected: list[str]) -> None:
    pods = core.list_pod_for_all_namespaces(label_selector=selector)
    assert sorted(p.metadata.name for p in pods.items) == expected


@pytest.mark.parametrize(("selector", "expected"), [
    ("metadata.name=db-0", ["db-0"]),
    ("metadata.namespace=kube-system", ["coredns-5c8f-xk2lp"]),
    ("spec.nodeName=node-a,metadata.namespace!=kube-system", ["db-0", "frontend-7d9c-abcde"]),
    ("status.phase=Running,metadata.name!=db-0", ["coredns-5c8f-xk2lp", "frontend-7d9c-abcde",
                                                  "frontend-7d9c-fghij"]),
    ("status.phase=Pending", []),
])
def test_field_selectors(core: client.CoreV1Api, selector: str, expected: list[str]) -> None:
    pods = core.list_pod_for_all_namespaces(field_selector=selector)
    assert sorted(p.metadata.name for p in pods.items) == expected
    assert int(pods.metadata.resource_version) > 0


def test_unsupported_field_is_400(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod("shop", field_selector="spec.hostname=x")
    assert e.value.status == 400 and "field label not supported" in error_body(e.value)["message"]


# ----------------------------------------------------------------------------------------------- writes


def test_create_conflicts_and_patch_flavours(server: ApiServer, core: client.CoreV1Api) -> None:
    body = {"metadata": {"name": "probe", "labels": {"a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    created = core.create_namespaced_pod("shop", body)
    assert created.metadata.uid and created.metadata.creation_timestamp and created.metadata.generation == 1
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("shop", body)
    assert e.value.status == 409 and error_body(e.value)["reason"] == "AlreadyExists"
    rv = int(created.metadata.resource_version)
    status, pod = raw(server, "PATCH", "/api/v1/namespaces/shop/pods/probe",
                      {"metadata": {"labels": {"a": None, "b": "2"}}}, "application/merge-patch+json")
    assert status == 200 and pod["metadata"]["labels"] == {"b": "2"} and int(pod["metadata"]["resourceVersion"]) > rv
    status, pod = raw(server, "PATCH", "/api/v1/namespaces/shop/pods/probe",
                      [{"op": "add", "path": "/metadata/labels/c", "value": "3"},
                       {"op": "remove", "path": "/metadata/labels/b"}], "application/json-patch+json")
    assert status == 200 and pod["metadata"]["labels"] == {"c": "3"}
    status, pod = raw(server, "PATCH", "/api/v1/namespaces/shop/pods/probe",
                      {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}, {"name": "d", "image": "x"}]}},
                      "application/strategic-merge-patch+json")
    assert [c["image"] for c in pod["spec"]["containers"]] == ["busybox:1.37", "x"]
    stale = {"metadata": {"resourceVersion": str(rv), "labels": {"z": "1"}}}
    status, conflict = raw(server, "PATCH", "/api/v1/namespaces/shop/pods/probe", stale, "application/merge-patch+json")
    assert status == 409 and conflict["reason"] == "Conflict"
    assert conflict["message"].startswith('Operation cannot be fulfilled on pods "probe": the object has been modified')
    core.delete_namespaced_pod("probe", "shop")
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("probe", "shop")
    assert e.value.status == 404 and error_body(e.value)["message"] == 'pods "probe" not found'


def test_spec_change_bumps_generation(kubeconfig: Path) -> None:
    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    apps = client.AppsV1Api(api_client)
    before = apps.read_namespaced_deployment("frontend", "shop")
    after = apps.patch_namespaced_deployment("frontend", "shop", {"spec": {"replicas": 3}})
    assert after.metadata.generation == before.metadata.generation + 1
    relabelled = apps.patch_namespaced_deployment("frontend", "shop", {"metadata": {"labels": {"x": "y"}}})
    assert relabelled.metadata.generation == after.metadata.generation
    api_client.close()


def test_watch_streams_changes(server: ApiServer, core: client.CoreV1Api) -> None:
    start = core.list_namespaced_pod("shop").metadata.resource_version
    got: list[tuple[str, str]] = []

    def follow() -> None:
        for event in watch.Watch().stream(core.list_namespaced_pod, "shop", resource_version=start,
                                          label_selector="app=frontend", timeout_seconds=3):
            got.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                return

    thread = threading.Thread(target=follow)
    thread.start()
    core.patch_namespaced_pod("db-0", "shop", {"metadata": {"labels": {"seen": "no"}}})
    core.patch_namespaced_pod("frontend-7d9c-abcde", "shop", {"metadata": {"labels": {"seen": "yes"}}})
    server.delete_pod("shop", "frontend-7d9c-fghij")
    thread.join(timeout=10)
    assert got == [("MODIFIED", "frontend-7d9c-abcde"), ("DELETED", "frontend-7d9c-fghij")]
    initial = [e["type"] for e in watch.Watch().stream(core.list_namespaced_pod, "shop", timeout_seconds=1)]
    assert initial == ["ADDED", "ADDED"]


# ------------------------------------------------------------------------------- ephemeral containers


def test_ephemeral_container_runs_and_logs(server: ApiServer, core: client.CoreV1Api, kubeconfig: Path) -> None:
    pod = debug(core, "frontend-7d9c-abcde", {"name": "dbg", "image": "busybox",
                                              "command": ["sh", "-c", "echo hello; echo oops >&2; exit 3"]})
    assert [c.name for c in pod.spec.ephemeral_containers] == ["dbg"]

    def exit_code() -> int | None:
        status = core.read_namespaced_pod("frontend-7d9c-abcde", "shop").status
        for s in status.ephemeral_container_statuses or []:
            if s.name == "dbg" and s.state.terminated is not None:
                return int(s.state.terminated.exit_code)
        return None

    assert wait_for(exit_code, what="dbg to terminate") == 3
    final = core.read_namespaced_pod("frontend-7d9c-abcde", "shop").status.ephemeral_container_statuses[0]
    assert final.state.terminated.reason == "Error" and final.container_id.startswith("containerd://")
    assert final.ready is False and final.restart_count == 0 and final.image == "busybox"
    log = core.read_namespaced_pod_log("frontend-7d9c-abcde", "shop", container="dbg")
    assert sorted(log.splitlines()) == ["hello", "oops"]
    states = [next(iter(s["state"])) for e in server.events("pods")
              if e.obj["metadata"]["name"] == "frontend-7d9c-abcde"
              for s in e.obj.get("status", {}).get("ephemeralContainerStatuses", [])]
    assert states[0] == "waiting" and "running" in states and states[-1] == "terminated"
    result = kubectl(kubeconfig, "logs", "frontend-7d9c-abcde", "-c", "dbg")
    assert result.returncode == 0 and sorted(result.stdout.splitlines()) == ["hello", "oops"], result.stderr


def test_kubectl_debug_and_watch(server: ApiServer, kubeconfig: Path) -> None:
    # --profile=general: busybox runs as root, which restricted's runAsNonRoot refuses (the runtime says so,
    # CreateContainerConfigError, as kubelet does)
    result = kubectl(kubeconfig, "debug", "db-0", "--image=busybox", "-c", "kdbg", "--profile=general", "--",
                     "sh", "-c", "echo from-kubectl-debug")
    assert result.returncode == 0, result.stderr
    assert terminated(server, "db-0", "kdbg")["exitCode"] == 0
    logs = kubectl(kubeconfig, "logs", "db-0", "-c", "kdbg")
    assert logs.stdout == "from-kubectl-debug\n", logs.stderr
    timer = threading.Timer(0.5, lambda: server.delete_pod("shop", "frontend-7d9c-fghij"))
    timer.start()
    watched = kubectl(kubeconfig, "get", "pods", "--watch-only", "--request-timeout=2s", "-o", "name")
    timer.join()
    assert watched.stdout.split() == ["pod/frontend-7d9c-fghij"], watched.stderr


def test_put_ephemeralcontainers(server: ApiServer, core: client.CoreV1Api) -> None:
    pod = core.read_namespaced_pod_ephemeralcontainers("db-0", "shop")
    pod.spec.ephemeral_containers = [client.V1EphemeralContainer(name="put", image="busybox", args=["true"])]
    core.replace_namespaced_pod_ephemeralcontainers("db-0", "shop", pod)
    assert terminated(server, "db-0", "put")["reason"] == "Completed"
    with pytest.raises(ApiException) as e:  # the resourceVersion read above is stale now
        core.replace_namespaced_pod_ephemeralcontainers("db-0", "shop", pod)
    assert e.value.status == 409 and error_body(e.value)["reason"] == "Conflict"


def test_rbac_denial(server: ApiServer, core: client.CoreV1Api, kubeconfig: Path) -> None:
    server.deny("patch", "pods", "ephemeralcontainers", "shop")
    with pytest.raises(ApiException) as e:
        debug(core, "frontend-7d9c-abcde", {"name": "dbg", "image": "busybox", "command": ["true"]})
    body = error_body(e.value)
    assert e.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('pods "frontend-7d9c-abcde" is forbidden: User "netgen-test" cannot patch resource '
                               '"pods/ephemeralcontainers" in API group "" in the namespace "shop"')
    assert core.read_namespaced_pod("frontend-7d9c-abcde", "shop").spec.ephemeral_containers is None
    server.deny("list", "pods")
    with pytest.raises(ApiException) as e:
        core.list_pod_for_all_namespaces()
    assert error_body(e.value)["message"] == ('pods is forbidden: User "netgen-test" cannot list resource "pods" in '
                                              'API group "" at the cluster scope')
    server.allow_all()
    debug(core, "frontend-7d9c-abcde", {"name": "dbg", "image": "busybox", "command": ["true"]})


def test_invalid_ephemeral_containers(server: ApiServer, core: client.CoreV1Api) -> None:
    first = {"name": "netgen-abc", "image": "busybox", "command": ["true"]}
    debug(core, "db-0", first)
    terminated(server, "db-0", "netgen-abc")
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod_ephemeralcontainers(
            "db-0", "shop", [{"op": "add", "path": "/spec/ephemeralContainers/-", "value": first}])
    body = error_body(e.value)
    assert e.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"] == 'Pod "db-0" is invalid: spec.ephemeralContainers[1].name: Duplicate value: "netgen-abc"'
    assert body["details"]["causes"][0]["field"] == "spec.ephemeralContainers[1].name"
    with pytest.raises(ApiException) as e:
        debug(core, "db-0", {"name": "netgen-abc", "image": "alpine", "command": ["true"]})
    assert 'existing ephemeral containers "netgen-abc" may not be changed' in error_body(e.value)["message"]
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod_ephemeralcontainers(
            "db-0", "shop", [{"op": "remove", "path": "/spec/ephemeralContainers/0"}])
    assert 'existing ephemeral containers "netgen-abc" may not be removed' in error_body(e.value)["message"]
    with pytest.raises(ApiException) as e:
        debug(core, "db-0", {"name": "postgres", "image": "busybox", "command": ["true"]})
    assert e.value.status == 422 and 'Duplicate value: "postgres"' in error_body(e.value)["message"]


def test_pod_security_restricted(server: ApiServer, core: client.CoreV1Api) -> None:
    core.patch_namespace("shop", {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    with pytest.raises(ApiException) as e:
        debug(core, "db-0", {"name": "cap", "image": "busybox", "command": ["true"],
                             "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}})
    body = error_body(e.value)
    assert e.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods "db-0" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "cap" must set securityContext.allowPrivilegeEscalation=false), '
        'non-default capabilities (container "cap" must not include "NET_ADMIN", "NET_RAW" in '
        'securityContext.capabilities.add), '
        'unrestricted capabilities (container "cap" must set securityContext.capabilities.drop=["ALL"]; container '
        '"cap" must not include "NET_ADMIN", "NET_RAW" in securityContext.capabilities.add), '
        'runAsNonRoot != true (pod or container "cap" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "cap" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
        '"Localhost")')
    privileged = {**RESTRICTED_SC, "privileged": True}
    with pytest.raises(ApiException) as e:
        debug(core, "db-0", {"name": "priv", "image": "busybox", "command": ["true"], "securityContext": privileged})
    assert error_body(e.value)["message"].endswith(
        'privileged (container "priv" must not set securityContext.privileged=true)')
    debug(core, "db-0", {"name": "ok", "image": "busybox", "command": ["true"], "securityContext": RESTRICTED_SC})
    assert terminated(server, "db-0", "ok")["exitCode"] == 0


# ------------------------------------------------------------------------------------------------ faults


def test_image_pull_failure(server: ApiServer, core: client.CoreV1Api, kubeconfig: Path) -> None:
    server.fail_image_pull("registry.example/missing:1")
    debug(core, "db-0", {"name": "pull", "image": "registry.example/missing:1", "command": ["true"]})
    wait_for(lambda: ephemeral_state(server, "db-0", "pull").get("waiting", {}).get("reason") == "ImagePullBackOff",
             what="ImagePullBackOff")
    reasons = [s["state"]["waiting"]["reason"] for e in server.events("pods")
               for s in e.obj.get("status", {}).get("ephemeralContainerStatuses", []) if "waiting" in s["state"]]
    assert list(dict.fromkeys(reasons)) == ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"]
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod_log("db-0", "shop", container="pull")
    message = 'container "pull" in pod "db-0" is waiting to start: trying and failing to pull image'
    assert e.value.status == 400 and error_body(e.value)["message"] == message
    result = kubectl(kubeconfig, "logs", "db-0", "-c", "pull")
    assert result.returncode == 1 and message in result.stderr


def test_kill_container(server: ApiServer, core: client.CoreV1Api) -> None:
    debug(core, "db-0", {"name": "sleeper", "image": "busybox", "command": ["sleep", "30"]})
    wait_for(lambda: "running" in ephemeral_state(server, "db-0", "sleeper"), what="sleeper to run")
    server.kill("shop", "db-0", "sleeper")
    state = terminated(server, "db-0", "sleeper")
    assert (state["exitCode"], state["reason"]) == (137, "Error")


def test_delete_pod_mid_run(server: ApiServer, core: client.CoreV1Api) -> None:
    debug(core, "db-0", {"name": "tail", "image": "busybox", "command": ["sh", "-c", "echo start; sleep 30"]})
    wait_for(lambda: "running" in ephemeral_state(server, "db-0", "tail"), what="tail to run")
    response = core.read_namespaced_pod_log("db-0", "shop", container="tail", follow=True, _preload_content=False)
    received: list[bytes] = []

    def drain() -> None:
        received.extend(response.stream(64))

    reader = threading.Thread(target=drain)
    reader.start()
    wait_for(lambda: b"start" in b"".join(received), what="the first line")
    began = time.monotonic()
    server.delete_pod("shop", "db-0")
    reader.join(timeout=5)
    assert not reader.is_alive() and time.monotonic() - began < 5
    response.release_conn()
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("db-0", "shop")
    assert e.value.status == 404
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod_log("db-0", "shop", container="tail")
    assert e.value.status == 404


# -------------------------------------------------------------------------------------------------- logs


def test_follow_streams_lines_as_produced(server: ApiServer, core: client.CoreV1Api) -> None:
    script = "for i in 1 2 3; do echo line$i; sleep 0.4; done"
    debug(core, "db-0", {"name": "slow", "image": "busybox", "command": ["sh", "-c", script]})
    wait_for(lambda: "running" in ephemeral_state(server, "db-0", "slow") or "terminated" in ephemeral_state(
        server, "db-0", "slow"), what="slow to start")
    response = core.read_namespaced_pod_log("db-0", "shop", container="slow", follow=True, _preload_content=False)
    arrivals: list[tuple[float, bytes]] = [(time.monotonic(), chunk) for chunk in response.stream(1024)]
    response.release_conn()
    assert b"".join(c for _, c in arrivals) == b"line1\nline2\nline3\n"
    assert arrivals[-1][0] - arrivals[0][0] > 0.5  # the first line came long before the last one was written


def test_log_options(server: ApiServer, core: client.CoreV1Api, kubeconfig: Path) -> None:
    old = time.time_ns() - 3600 * 1_000_000_000
    server.append_log("shop", "db-0", "postgres", "old one\nold two\n", ts_ns=old)
    server.append_log("shop", "db-0", "postgres", "new one\nnew two\n")

    def read(**options: Any) -> str:
        return str(core.read_namespaced_pod_log("db-0", "shop", container="postgres", **options))

    assert read() == "old one\nold two\nnew one\nnew two\n"
    assert read(tail_lines=1) == "new two\n"
    assert read(limit_bytes=10) == "old one\nol"
    assert read(since_seconds=60) == "new one\nnew two\n"
    stamped = read(timestamps=True, tail_lines=3).splitlines()
    assert stamped[0] == f"{rfc3339_nano(old)} old two"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z .+", line) for line in stamped)
    assert read(timestamps=True, tail_lines=1, limit_bytes=4) == stamped[-1][:4]
    result = kubectl(kubeconfig, "logs", "db-0", "--tail=2", "--timestamps")
    assert result.returncode == 0 and result.stdout.splitlines() == stamped[1:], result.stderr
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod_log("db-0", "shop", container="nope")
    assert e.value.status == 400 and error_body(e.value)["message"] == "container nope is not valid for pod db-0"


def test_rfc3339_nano_trims_zeros() -> None:
    assert rfc3339_nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert rfc3339_nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_log_rotation(tmp_path: Path) -> None:
    with ApiServer(seed_list(), log_max_bytes=40) as server:
        api_client = config.new_client_from_config(config_file=str(server.write_kubeconfig(tmp_path / "kc")))
        core = client.CoreV1Api(api_client)
        server.append_log("shop", "db-0", "postgres", "line-00\n")
        response = core.read_namespaced_pod_log("db-0", "shop", container="postgres", follow=True,
                                                _preload_content=False)
        received: list[bytes] = []
        expected = b"".join(b"line-%02d\n" % i for i in range(12))

        def drain() -> None:
            for chunk in response.stream(1024):
                received.append(chunk)
                if b"".join(received) == expected:
                    return

        reader = threading.Thread(target=drain)
        reader.start()
        wait_for(lambda: received, what="the follower to start")
        for i in range(1, 12):
            server.append_log("shop", "db-0", "postgres", f"line-{i:02d}\n")
        reader.join(timeout=5)
        response.release_conn()
        assert b"".join(received) == expected  # a follower sees every line across rotations
        log = server.container_log("shop", "db-0", "postgres")
        assert log is not None and log.rotations == 2
        # 8 bytes a line, rotated when the file passes 40 bytes: after lines 0-5 and 6-11; the file is empty.
        assert core.read_namespaced_pod_log("db-0", "shop", container="postgres") == ""
        server.append_log("shop", "db-0", "postgres", "line-12\n")
        assert core.read_namespaced_pod_log("db-0", "shop", container="postgres") == "line-12\n"
        api_client.close()
