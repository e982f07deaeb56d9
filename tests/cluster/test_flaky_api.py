"""A paging, throttling, dropping and hanging API server, and the plugin's side of it (through the real CLI)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from kubectl_netgen.errors import ExitStatus
from tests.cluster.apiserver import ApiServer
from tests.cluster.seed import seed_list
from tests.cluster.test_apiserver import kubectl, raw
from tests.conftest import run


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with ApiServer(seed_list()) as api:
        yield api


@pytest.fixture
def kubeconfig(server: ApiServer, tmp_path: Path) -> Path:
    return server.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")


def _queries(server: ApiServer, path: str) -> list[dict[str, str]]:
    return [{k: v[-1] for k, v in parse_qs(urlsplit(p).query).items()} for m, p in server.requests
            if m == "GET" and urlsplit(p).path == path]


# ------------------------------------------------------------------------------------------ the server


def test_list_pages_with_continue(server: ApiServer) -> None:
    names: list[str] = []
    status, page = raw(server, "GET", "/api/v1/pods?limit=2")
    assert status == 200 and len(page["items"]) == 2
    assert page["metadata"]["remainingItemCount"] == 2
    rv = page["metadata"]["resourceVersion"]
    names += [i["metadata"]["name"] for i in page["items"]]
    while page["metadata"].get("continue"):
        status, page = raw(server, "GET", f"/api/v1/pods?limit=2&continue={page['metadata']['continue']}")
        assert status == 200 and page["metadata"]["resourceVersion"] == rv
        names += [i["metadata"]["name"] for i in page["items"]]
    assert names == ["coredns-5c8f-xk2lp", "db-0", "frontend-7d9c-abcde", "frontend-7d9c-fghij"]
    assert "remainingItemCount" not in page["metadata"]
    status, page = raw(server, "GET", "/api/v1/pods?limit=1&labelSelector=app%3Dfrontend")
    assert page["metadata"]["continue"] and "remainingItemCount" not in page["metadata"]


def test_stale_continue_is_410_expired(server: ApiServer) -> None:
    _, page = raw(server, "GET", "/api/v1/pods?limit=1")
    server.compact()
    status, body = raw(server, "GET", f"/api/v1/pods?limit=1&continue={page['metadata']['continue']}")
    assert (status, body["reason"], body["code"]) == (410, "Expired", 410)
    assert raw(server, "GET", "/api/v1/pods?limit=1&continue=%21%21")[0] == 400


def test_kubectl_pages_through_small_chunks(server: ApiServer, kubeconfig: Path) -> None:
    result = kubectl(kubeconfig, "get", "pods", "-A", "-o", "name", "--chunk-size=1")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 4
    assert len(_queries(server, "/api/v1/pods")) == 4


def test_throttle_answers_429_with_retry_after(server: ApiServer) -> None:
    fault = server.inject("throttle", "list", "pods", nth=2, retry_after=3)
    assert raw(server, "GET", "/api/v1/pods")[0] == 200
    context = ssl.create_default_context(cadata=server.ca_pem.decode())
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    conn.request("GET", "/api/v1/pods", headers={"Authorization": f"Bearer {server.token}"})
    response = conn.getresponse()
    assert response.status == 429 and response.getheader("Retry-After") == "3"
    assert response.read() == b"Too many requests, please try again later.\n"
    conn.close()
    assert raw(server, "GET", "/api/v1/pods")[0] == 200
    assert (fault.seen, fault.fired) == (3, 1)


def test_drop_closes_without_a_reply(server: ApiServer) -> None:
    server.inject("drop", "get", "pods")
    context = ssl.create_default_context(cadata=server.ca_pem.decode())
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain, \
            context.wrap_socket(plain, server_hostname="127.0.0.1") as tls:
        tls.sendall(f"GET /api/v1/namespaces/shop/pods/db-0 HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {server.token}\r\n\r\n".encode())
        assert tls.recv(100) == b""
    assert raw(server, "GET", "/api/v1/namespaces/shop/pods/db-0")[0] == 200


def test_hang_reads_and_never_answers(server: ApiServer) -> None:
    server.inject("hang", times=0)
    context = ssl.create_default_context(cadata=server.ca_pem.decode())
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain, \
            context.wrap_socket(plain, server_hostname="127.0.0.1") as tls:
        tls.sendall(f"GET /api HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n\r\n".encode())
        tls.settimeout(1.5)
        with pytest.raises(TimeoutError):
            tls.recv(100)
    assert json.dumps(server.requests[-1]) == json.dumps(["GET", "/api"])
    started = time.monotonic()
    server.close()  # a hung request does not hold the server up
    assert time.monotonic() - started < 10


# ------------------------------------------------------------------------------------- the plugin's side


def _pod_lists(server: ApiServer) -> int:
    return len(_queries(server, "/api/v1/pods"))


def test_snapshot_retries_a_throttled_read_and_a_dropped_connection(server: ApiServer, kubeconfig: Path) -> None:
    server.inject("throttle", "list", "pods", retry_after=1)
    server.inject("drop", "list", "services")
    started = time.monotonic()
    result = run("snapshot", "-A", "--kubeconfig", kubeconfig)
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["items"]) == len(seed_list()["items"])
    assert time.monotonic() - started >= 1  # Retry-After was honoured
    assert _pod_lists(server) == 2 and len(_queries(server, "/api/v1/services")) == 2


def test_snapshot_gives_up_on_a_throttling_server_after_three_tries(server: ApiServer, kubeconfig: Path) -> None:
    server.inject("throttle", "list", "pods", times=0, retry_after=1)
    result = run("snapshot", "-A", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.CLUSTER, result.stderr
    assert result.stderr == (f"error: the API server at {server.url} is throttling requests (429 Too Many Requests, "
                             "Retry-After 1s) to list pods, still after 3 tries or more waiting than 10s: try again "
                             "later\n")
    assert _pod_lists(server) == 3


def test_snapshot_does_not_wait_for_a_long_retry_after(server: ApiServer, kubeconfig: Path) -> None:
    server.inject("throttle", "list", "pods", times=0, retry_after=60)
    started = time.monotonic()
    result = run("snapshot", "-A", "--kubeconfig", kubeconfig)
    assert time.monotonic() - started < 5
    assert result.exit_code == ExitStatus.CLUSTER and "Retry-After 60s" in result.stderr
    assert _pod_lists(server) == 1


def test_snapshot_gives_up_on_dropped_connections_after_three_tries(server: ApiServer, kubeconfig: Path) -> None:
    server.inject("drop", "list", "pods", times=0)
    result = run("snapshot", "-A", "--kubeconfig", kubeconfig)
    assert result.exit_code == ExitStatus.CLUSTER
    assert result.stderr.startswith(f"error: cannot reach the API server at {server.url}: ")
    assert len(result.stderr.splitlines()) == 1
    assert _pod_lists(server) == 3


def test_a_write_is_not_sent_twice_after_a_dropped_connection(server: ApiServer, kubeconfig: Path) -> None:
    from kubectl_netgen import kube

    server.inject("drop", "delete", "networkpolicies")
    server.put_object({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "p", "namespace": "shop"}, "spec": {"podSelector": {}}})
    cluster = kube.connect(str(kubeconfig), None)
    try:
        with pytest.raises(Exception, match="cannot reach the API server"):
            kube.delete_object(cluster, {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                         "metadata": {"name": "p", "namespace": "shop"}})
    finally:
        cluster.close()
    assert [m for m, p in server.requests if m == "DELETE"] == ["DELETE"]


def test_a_server_that_never_answers_is_given_up_on(server: ApiServer, kubeconfig: Path) -> None:
    from kubectl_netgen import app
    from kubectl_netgen.errors import ClusterError

    server.inject("hang", times=0)
    started = time.monotonic()
    with pytest.raises(ClusterError) as e:
        app.snapshot(kubeconfig=str(kubeconfig), context=None, namespace=None, all_namespaces=True,
                     warn=lambda _: None, request_timeout=1.0)
    assert time.monotonic() - started < 5
    assert e.value.message == (f"the API server at {server.url} did not answer list namespaces within 1s: pass "
                               "--request-timeout to wait longer (0: no limit)")
    assert len(server.requests) == 1  # a timeout is not retried: the server is not answering


@pytest.mark.parametrize("command", [("snapshot", "-A"), ("capture", "deploy/web", "-n", "shop", "-o", "unused"),
                                     ("baseline", "-A"), ("verify", "--live-policies", "unused.pcap")])
def test_every_command_gives_up_after_its_request_timeout(server: ApiServer, kubeconfig: Path, tmp_path: Path,
                                                          command: tuple[str, ...]) -> None:
    """--request-timeout (kubectl's flag) on every command that reads the cluster: one line, fast."""
    server.inject("hang", times=0)
    (tmp_path / "unused.pcap").write_bytes(b"")
    started = time.monotonic()
    result = run(*(str(tmp_path / a) if a.startswith("unused") else a for a in command),
                 "--kubeconfig", kubeconfig, "--request-timeout", "1s")
    assert time.monotonic() - started < 10
    assert result.exit_code == ExitStatus.CLUSTER, result.stderr
    assert result.stderr.startswith(f"error: the API server at {server.url} did not answer ")
    assert result.stderr.endswith(" within 1s: pass --request-timeout to wait longer (0: no limit)\n")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "unused").exists()

