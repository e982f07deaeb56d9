"""The declarative cluster layout: nodes, externals, controllers, Services, and how pods are named.

Nothing here touches the machine. It owns the address plan (:data:`ALLOWED_NETWORKS`, the nodes' pod
CIDRs, the cluster DNS address), the specs the rest of the package builds from, the suggested cluster
(:func:`default_layout`), and the deterministic naming rules that both the running lab and its
Kubernetes objects must agree on (uids, random-looking suffixes, pod-template hashes, Job names and labels).
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.netlab import Proc

ALLOWED_NETWORKS = ("10.244.0.0/16", "10.96.0.0/12", "10.250.0.0/24", "192.0.2.0/24", "198.51.100.0/24",
                    "203.0.113.0/24")
"""The only IPv4 networks any fabric namespace may send to (pods, services, nodes, documentation)."""

DNS_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
EPOCH = "2026-01-01T00:00:00Z"
"""A fixed point in time: when CronJobs last ran (so their Jobs' names stay the same from run to run)."""

JOB_KINDS = ("Job", "CronJob")
"""Controllers whose pods run to completion, owned by a Job."""

CRON_SCHEDULE = "0 0 1 1 *"
"""The schedule of every CronJob: yearly, so :data:`EPOCH` is its last scheduled time all year."""


def check_address(address: str) -> str:
    """Return ``address`` (an IP or interface) if it lies in :data:`ALLOWED_NETWORKS`; raise ValueError if not."""
    ip = ipaddress.ip_interface(address).ip
    if not any(ip in ipaddress.ip_network(n) for n in ALLOWED_NETWORKS):
        raise ValueError(f"{address} is outside the fabric's allowed networks")
    return address


def uid(*parts: str) -> str:
    """A uid that is the same for the same object every time (kind, namespace, name)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "netgen-fabric/" + "/".join(parts)))


def suffix(seed: str, length: int) -> str:
    """Like Kubernetes' random name suffixes (no vowels), but deterministic."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


# --- the cluster's layout ------------------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    """A container port."""

    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class NodeSpec:
    """A node: a namespace with a bridge for its pod CIDR."""

    name: str
    ip: str
    pod_cidr: str

    @property
    def gateway(self) -> str:
        """The bridge's address: the pods' default gateway."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))


@dataclass(frozen=True)
class ExternalSpec:
    """An "external" host outside the cluster, behind the nodes."""

    name: str
    ip: str
    port: int
    kind: str
    """What its server speaks: ``tls`` or ``pg`` (see the workload script)."""


@dataclass
class Controller:
    """A Deployment, StatefulSet, DaemonSet, Job or CronJob and its pods.

    A CronJob's pods belong to the one Job it last scheduled (see :func:`job_name`).
    """

    kind: str
    namespace: str
    name: str
    labels: dict[str, str]
    image: str
    ports: tuple[Port, ...]
    pods: list[tuple[str, str]]
    """(node, pod IP) per replica; the pod IP is ignored for hostNetwork pods."""
    workload: dict[str, Any]
    """What its processes do: ``{"servers": [...], "clients": [...]}`` or ``{"dns": True}``."""
    host_network: bool = False
    readiness_port: str | None = None
    """A named container port the node's prober GETs every second."""


@dataclass(frozen=True)
class ServiceSpec:
    """A Service: ports are (name, port, targetPort, protocol)."""

    namespace: str
    name: str
    cluster_ip: str | None
    selector: dict[str, str] | None
    ports: tuple[tuple[str, int, int | str, str], ...]
    endpoints: tuple[str, ...] = ()
    """Addresses of a Service without selector (``default/kubernetes``)."""


@dataclass
class Pod:
    """A pod that exists now."""

    namespace: str
    name: str
    node: str
    ip: str
    controller: Controller
    netns: str
    owner_kind: str
    owner_name: str
    labels: dict[str, str]
    procs: list[Proc] = field(default_factory=list)
    popens: list[subprocess.Popen[bytes]] = field(default_factory=list)


NODES = (NodeSpec("node-a", "10.250.0.11", "10.244.1.0/24"), NodeSpec("node-b", "10.250.0.12", "10.244.2.0/24"))
EXTERNALS = (ExternalSpec("payments-edge", "203.0.113.10", 443, "tls"),
             ExternalSpec("ledger-db", "198.51.100.20", 5432, "pg"))
EXTERNAL_NAMES: dict[str, dict[str, str]] = {
    "CNAME": {"api.payments.example.com.": "edge.payments.example.net.",
              "ledger-db.example.com.": "pg-primary.ledger.example.net."},
    "A": {"edge.payments.example.net.": "203.0.113.10", "pg-primary.ledger.example.net.": "198.51.100.20"},
}
API_SERVER = ("10.250.0.11", 6443)


def system_controllers() -> list[Controller]:
    """What every layout runs in kube-system: cluster DNS, and a hostNetwork DaemonSet on node-b."""
    return [
        Controller("Deployment", "kube-system", "coredns", {"k8s-app": "kube-dns"},
                   "registry.k8s.io/coredns/coredns:v1.11.1",
                   (Port("dns", 53, "UDP"), Port("dns-tcp", 53)), [("node-a", "10.244.1.2")], {"dns": True}),
        Controller("DaemonSet", "kube-system", "node-exporter", {"app": "node-exporter"},
                   "quay.io/prometheus/node-exporter:v1.8.0", (Port("metrics", 9100),), [("node-b", "")],
                   {"servers": [{"port": 9100, "kind": "http"}]}, host_network=True),
    ]


def system_services() -> list[ServiceSpec]:
    """The Services every cluster has: ``default/kubernetes`` (the API server) and ``kube-system/kube-dns``."""
    return [
        ServiceSpec("default", "kubernetes", "10.96.0.1", None, (("https", 443, API_SERVER[1], "TCP"),),
                    endpoints=(API_SERVER[0],)),
        ServiceSpec("kube-system", "kube-dns", DNS_IP, {"k8s-app": "kube-dns"},
                    (("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP"))),
    ]


def slow_rounds(iterations: int) -> int:
    """A quarter of the rounds for the slower clients (2 s apart); 0 ("until the lifetime ends") stays 0."""
    return 0 if iterations == 0 else max(1, iterations // 4)


def default_layout(iterations: int) -> tuple[list[Controller], list[ServiceSpec]]:
    """The suggested cluster: shop (frontend, checkout, db, a smoke CronJob) and kube-system (DNS, exporter).

    Args:
        iterations: How many rounds each client loop makes (one every half second); 0: until the lifetime
            ends.
    """
    http = Port("http", 8080)
    controllers = [
        Controller("Deployment", "shop", "frontend", {"app": "frontend"}, "registry.example/shop/frontend:1.4",
                   (http,), [("node-a", "10.244.1.10"), ("node-b", "10.244.2.10")],
                   {"servers": [{"port": 8080, "kind": "http"}],
                    "clients": [{"kind": "http", "host": "checkout", "port": 8080},
                                {"kind": "tls", "host": "api.payments.example.com", "port": 443}],
                    "iterations": iterations}, readiness_port="http"),
        Controller("Deployment", "shop", "checkout", {"app": "checkout"}, "registry.example/shop/checkout:2.0",
                   (http,), [("node-b", "10.244.2.11")],
                   {"servers": [{"port": 8080, "kind": "http"}],
                    "clients": [{"kind": "pg", "host": "db", "port": 5432},
                                {"kind": "pg", "host": "ledger-db.example.com", "port": 5432},
                                {"kind": "udp", "host": "db", "port": 8125}],
                    "iterations": iterations}, readiness_port="http"),
        Controller("StatefulSet", "shop", "db", {"app": "db"}, "registry.example/postgres:16",
                   (Port("postgres", 5432), Port("statsd", 8125, "UDP")), [("node-a", "10.244.1.11")],
                   {"servers": [{"port": 5432, "kind": "pg"}, {"port": 8125, "kind": "udp"}]}),
        Controller("CronJob", "shop", "smoke", {"app": "smoke"}, "registry.example/shop/smoke:1.0", (),
                   [("node-b", "10.244.2.12")],
                   {"clients": [{"kind": "http", "host": "frontend", "port": 80}],
                    "iterations": slow_rounds(iterations), "interval": 2.0}),
        *system_controllers(),
    ]
    services = [
        *system_services(),
        ServiceSpec("shop", "frontend", "10.96.100.10", {"app": "frontend"}, (("http", 80, "http", "TCP"),)),
        ServiceSpec("shop", "checkout", "10.96.100.20", {"app": "checkout"}, (("http", 8080, 8080, "TCP"),)),
        ServiceSpec("shop", "db", None, {"app": "db"}, (("postgres", 5432, 5432, "TCP"),)),
    ]
    return controllers, services


# --- names the lab and its objects share ---------------------------------------------------------


def template_hash(ctl: Controller) -> str:
    """The controller's pod-template hash (a ReplicaSet's name suffix, a revision hash)."""
    return suffix(f"{ctl.namespace}/{ctl.name}/template", 10)


def job_name(ctl: Controller) -> str:
    """The Job that runs a Job's or CronJob's pods.

    A CronJob names each Job after its scheduled time in minutes since 1970, as the CronJob controller
    does (``smoke-29453760``); here that time is always :data:`EPOCH`.
    """
    if ctl.kind != "CronJob":
        return ctl.name
    scheduled = datetime.fromisoformat(EPOCH.replace("Z", "+00:00"))
    return f"{ctl.name}-{int(scheduled.timestamp()) // 60}"


def job_labels(namespace: str, job: str) -> dict[str, str]:
    """The labels the Job controller puts on a Job's pods (and its selector matches on)."""
    job_uid = uid("Job", namespace, job)
    return {"batch.kubernetes.io/controller-uid": job_uid, "batch.kubernetes.io/job-name": job,
            "controller-uid": job_uid, "job-name": job}


def pod_identity(ctl: Controller, ordinal: int, node: str) -> tuple[str, str, str, dict[str, str]]:
    """(pod name, owner kind, owner name, labels) of replica ``ordinal`` of ``ctl``, as its controller names it.

    Raises:
        ValueError: ``ctl.kind`` is not a kind this fabric knows.
    """
    labels = dict(ctl.labels)
    hashed = template_hash(ctl)
    if ctl.kind == "Deployment":
        owner_kind, owner = "ReplicaSet", f"{ctl.name}-{hashed}"
        labels["pod-template-hash"] = hashed
        name = f"{owner}-{suffix(f'{ctl.namespace}/{ctl.name}/{ordinal}', 5)}"
    elif ctl.kind == "StatefulSet":
        owner_kind, owner, name = "StatefulSet", ctl.name, f"{ctl.name}-{ordinal}"
        labels["controller-revision-hash"] = f"{ctl.name}-{hashed}"
        labels["statefulset.kubernetes.io/pod-name"] = name
        labels["apps.kubernetes.io/pod-index"] = str(ordinal)
    elif ctl.kind == "DaemonSet":
        owner_kind, owner = "DaemonSet", ctl.name
        name = f"{ctl.name}-{suffix(f'{ctl.namespace}/{ctl.name}/{node}', 5)}"
        labels["controller-revision-hash"] = hashed
        labels["pod-template-generation"] = "1"
    elif ctl.kind in JOB_KINDS:
        owner_kind, owner = "Job", job_name(ctl)
        name = f"{owner}-{suffix(f'{ctl.namespace}/{owner}/{ordinal}', 5)}"
        labels.update(job_labels(ctl.namespace, owner))
    else:
        raise ValueError(f"unknown controller kind {ctl.kind}")
    return name, owner_kind, owner, labels
