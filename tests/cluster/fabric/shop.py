"""The cluster ``examples/shop`` is recorded in: a microservices shop across two namespaces.

:func:`default_layout` stays small because the fabric's own tests depend on it; this one is what a
reader of the example should recognise from a real cluster (see ``examples/shop/record.py``):

* ``shop``: a ``frontend`` (Deployment, 2 replicas on both nodes, Service port 80 -> named targetPort
  ``http``) calling ``catalog``, ``cart`` and ``checkout``; ``catalog`` and ``cart`` read a Redis-like
  ``cache`` (Service port 6379 -> named targetPort ``redis``); ``catalog`` and ``checkout`` query a
  Postgres-like ``db`` StatefulSet through its headless Service; ``checkout`` calls the payments
  ``gateway`` in the other namespace; ``frontend`` and ``checkout`` send statsd counters over UDP to a
  ``statsd`` exporter (Service port 8125 -> 9125); a ``shop-operator`` watches the Kubernetes API
  through ``kubernetes.default`` (10.96.0.1:443 -> the API server on node-a, 10.250.0.11:6443); a
  ``smoke`` CronJob calls the frontend;
* ``payments``: the ``gateway`` (Service port 80 -> 8080) calls the external payments API over HTTPS
  and the external ledger database, both behind CNAME chains (:data:`~.layout.EXTERNALS`), and sends
  statsd counters to ``statsd.shop``; a ``notifier`` worker polls the gateway and posts to checkout's
  webhook in ``shop``;
* ``kube-system``: cluster DNS (every name above is resolved through it, search domains included) and a
  hostNetwork node-exporter.

The kubelet-like prober on each node checks the readiness port of every HTTP-serving pod on it.
"""

from __future__ import annotations

from typing import Any

from tests.cluster.fabric.layout import Controller, Port, ServiceSpec, slow_rounds, system_controllers, system_services

INTERVAL = 1.0
"""Seconds between two rounds of a client loop: the example's captures stay small."""


def _calls(iterations: int, *clients: dict[str, Any], servers: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    """A workload serving ``servers`` and calling ``clients`` every :data:`INTERVAL` seconds."""
    return {"servers": list(servers), "clients": list(clients), "iterations": iterations, "interval": INTERVAL}


def _http(host: str, port: int) -> dict[str, Any]:
    return {"kind": "http", "host": host, "port": port}


def _statsd(host: str, metric: str) -> dict[str, Any]:
    return {"kind": "udp", "host": host, "port": 8125, "payload": f"{metric}:1|c"}


def shop_layout(iterations: int) -> tuple[list[Controller], list[ServiceSpec]]:
    """The example's cluster: ``shop`` and ``payments`` (eleven workloads, eight Services) and kube-system.

    Args:
        iterations: How many rounds each client loop makes (one every :data:`INTERVAL` seconds); 0: until
            the lifetime ends.
    """
    http = Port("http", 8080)
    serve_http = ({"port": 8080, "kind": "http"},)
    shop = [
        Controller("Deployment", "shop", "frontend", {"app": "frontend"}, "registry.example/shop/frontend:1.4",
                   (http,), [("node-a", "10.244.1.10"), ("node-b", "10.244.2.10")],
                   _calls(iterations, _http("catalog", 8080), _http("cart", 8080), _http("checkout", 8080),
                          _statsd("statsd", "shop.frontend.requests"), servers=serve_http),
                   readiness_port="http"),
        Controller("Deployment", "shop", "catalog", {"app": "catalog"}, "registry.example/shop/catalog:3.2",
                   (http,), [("node-a", "10.244.1.12")],
                   _calls(iterations, {"kind": "redis", "host": "cache", "port": 6379},
                          {"kind": "pg", "host": "db", "port": 5432}, servers=serve_http),
                   readiness_port="http"),
        Controller("Deployment", "shop", "cart", {"app": "cart"}, "registry.example/shop/cart:1.9",
                   (http,), [("node-b", "10.244.2.13")],
                   _calls(iterations, {"kind": "redis", "host": "cache", "port": 6379}, servers=serve_http),
                   readiness_port="http"),
        Controller("Deployment", "shop", "checkout", {"app": "checkout"}, "registry.example/shop/checkout:2.0",
                   (http,), [("node-b", "10.244.2.11")],
                   _calls(iterations, _http("cart", 8080), {"kind": "pg", "host": "db", "port": 5432},
                          _http("gateway.payments", 80), _statsd("statsd", "shop.checkout.orders"),
                          servers=serve_http),
                   readiness_port="http"),
        Controller("Deployment", "shop", "cache", {"app": "cache"}, "registry.example/redis:7.2",
                   (Port("redis", 6379),), [("node-a", "10.244.1.13")],
                   {"servers": [{"port": 6379, "kind": "redis"}]}),
        Controller("StatefulSet", "shop", "db", {"app": "db"}, "registry.example/postgres:16",
                   (Port("postgres", 5432),), [("node-a", "10.244.1.11")],
                   {"servers": [{"port": 5432, "kind": "pg"}]}),
        Controller("Deployment", "shop", "statsd", {"app": "statsd"}, "registry.example/prom/statsd-exporter:v0.26",
                   (Port("statsd", 9125, "UDP"), Port("metrics", 9102)), [("node-b", "10.244.2.14")],
                   {"servers": [{"port": 9125, "kind": "udp"}, {"port": 9102, "kind": "http"}]},
                   readiness_port="metrics"),
        Controller("Deployment", "shop", "shop-operator", {"app": "shop-operator"},
                   "registry.example/shop/operator:0.7", (Port("healthz", 8081),), [("node-b", "10.244.2.15")],
                   _calls(iterations, {"kind": "tls", "host": "kubernetes.default", "port": 443},
                          servers=({"port": 8081, "kind": "http"},)),
                   readiness_port="healthz"),
        Controller("CronJob", "shop", "smoke", {"app": "smoke"}, "registry.example/shop/smoke:1.0", (),
                   [("node-b", "10.244.2.12")],
                   {"clients": [_http("frontend", 80)], "iterations": slow_rounds(iterations), "interval": 2.0}),
    ]
    payments = [
        Controller("Deployment", "payments", "gateway", {"app": "gateway"}, "registry.example/payments/gateway:5.1",
                   (http,), [("node-a", "10.244.1.20")],
                   _calls(iterations, {"kind": "tls", "host": "api.payments.example.com", "port": 443},
                          {"kind": "pg", "host": "ledger-db.example.com", "port": 5432},
                          _statsd("statsd.shop", "payments.gateway.charges"), servers=serve_http),
                   readiness_port="http"),
        Controller("Deployment", "payments", "notifier", {"app": "notifier"},
                   "registry.example/payments/notifier:1.3", (http,), [("node-b", "10.244.2.20")],
                   _calls(iterations, _http("gateway", 80), _http("checkout.shop", 8080), servers=serve_http),
                   readiness_port="http"),
    ]
    system = system_controllers()
    services = [
        *system_services(),
        ServiceSpec("shop", "frontend", "10.96.100.10", {"app": "frontend"}, (("http", 80, "http", "TCP"),)),
        ServiceSpec("shop", "checkout", "10.96.100.20", {"app": "checkout"}, (("http", 8080, 8080, "TCP"),)),
        ServiceSpec("shop", "catalog", "10.96.100.30", {"app": "catalog"}, (("http", 8080, 8080, "TCP"),)),
        ServiceSpec("shop", "cart", "10.96.100.40", {"app": "cart"}, (("http", 8080, 8080, "TCP"),)),
        ServiceSpec("shop", "cache", "10.96.100.50", {"app": "cache"}, (("redis", 6379, "redis", "TCP"),)),
        ServiceSpec("shop", "db", None, {"app": "db"}, (("postgres", 5432, 5432, "TCP"),)),
        ServiceSpec("shop", "statsd", "10.96.100.60", {"app": "statsd"}, (("statsd", 8125, 9125, "UDP"),)),
        ServiceSpec("payments", "gateway", "10.96.101.10", {"app": "gateway"}, (("http", 80, 8080, "TCP"),)),
    ]
    return shop + payments + system, services
