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

from tests.cluster.apiserver import ApiServer
from tests.cluster.seed import seed_list
from tests.cluster.test_apiserver import kubectl, raw


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
