"""inventory: a v1 List (the seed snapshot plus the odd cases) -> Inventory."""

from __future__ import annotations

import copy
import json
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from kubectl_netgen.errors import InputError
from kubectl_netgen.inventory import KINDS, VOLATILE_LABELS, load_inventory, merge_snapshots, read_snapshot
from kubectl_netgen.model import (
    ContainerPort,
    EndpointPort,
    Endpoints,
    Inventory,
    LabelSelector,
    Protocol,
    SelectorRequirement,
    ServicePort,
    WorkloadKind,
    WorkloadRef,
)
from tests.cluster.seed import seed_list

Obj = dict[str, Any]


def _pod(namespace: str, name: str, labels: dict[str, str], ip: str | None, owner: Obj | None = None,
         **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [{**owner, "controller": True}]
    status: Obj = {"phase": "Running"}
    if ip:
        status.update(podIP=ip, podIPs=[{"ip": ip}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "node-a", **spec},
            "status": status}


def _owner(kind: str, name: str) -> Obj:
    return {"apiVersion": "batch/v1" if kind in ("Job", "CronJob") else "apps/v1", "kind": kind, "name": name,
            "uid": f"uid-{name}"}


def extended_list() -> Obj:
    """The seed snapshot plus: a DaemonSet with a hostNetwork pod, a CronJob -> Job -> pod, a standalone
    Job, a ReplicaSet without Deployment, a bare pod, a pod of an unknown controller, default/kubernetes
    (selectorless, with its EndpointSlice) and a LoadBalancer Service with external IPs."""
    doc = seed_list()
    items: list[Obj] = doc["items"]
    job_labels = {"app": "report", "batch.kubernetes.io/controller-uid": "uid-report-29000",
                  "controller-uid": "uid-report-29000", "batch.kubernetes.io/job-name": "report-29000",
                  "job-name": "report-29000"}
    items += [
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "agent", "namespace": "kube-system"},
         "spec": {"selector": {"matchLabels": {"app": "agent"}},
                  "template": {"metadata": {"labels": {"app": "agent", "controller-revision-hash": "abc"}}}}},
        _pod("kube-system", "agent-x1", {"app": "agent", "controller-revision-hash": "abc",
                                         "pod-template-generation": "1"},
             "10.250.0.2", _owner("DaemonSet", "agent"), hostNetwork=True),
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": "shop"},
         "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {
             "metadata": {"labels": {"app": "report"}}}}}}},
        {"apiVersion": "batch/v1", "kind": "Job",
         "metadata": {"name": "report-29000", "namespace": "shop", "labels": job_labels,
                      "ownerReferences": [{**_owner("CronJob", "report"), "controller": True}]},
         "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-report-29000"}},
                  "template": {"metadata": {"labels": job_labels}}}},
        _pod("shop", "report-29000-q9x", dict(job_labels), "10.244.1.40", _owner("Job", "report-29000")),
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "shop"},
         "spec": {"selector": {"matchLabels": {"controller-uid": "uid-migrate"}},
                  "template": {"metadata": {"labels": {"app": "migrate", "controller-uid": "uid-migrate",
                                                       "job-name": "migrate"}}}}},
        _pod("shop", "migrate-abc", {"app": "migrate", "controller-uid": "uid-migrate", "job-name": "migrate"},
             "10.244.1.41", _owner("Job", "migrate")),
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "legacy-55f", "namespace": "shop"},
         "spec": {"selector": {"matchLabels": {"app": "legacy", "pod-template-hash": "55f"},
                               "matchExpressions": [{"key": "tier", "operator": "In",
                                                     "values": ["web", "api"]}]},
                  "template": {"metadata": {"labels": {"app": "legacy", "tier": "web",
                                                       "pod-template-hash": "55f"}}}}},
        _pod("shop", "legacy-55f-zz", {"app": "legacy", "tier": "web", "pod-template-hash": "55f"}, "10.244.0.42",
             _owner("ReplicaSet", "legacy-55f")),
        _pod("shop", "debug", {"run": "debug", "pod-template-hash": "x"}, "10.244.0.43"),
        _pod("shop", "vm-1", {"kubevirt.io": "vm"}, "10.244.0.44",
             {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "name": "vm-1", "uid": "u"}),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default"},
         "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                  "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {"name": "kubernetes", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": "kubernetes"}},
         "endpoints": [{"addresses": ["10.250.0.2"], "conditions": {"ready": True}}],
         "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-lb", "namespace": "shop"},
         "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.50.5"], "externalIPs": ["198.51.100.7"],
                  "selector": {"app": "frontend"},
                  "ports": [{"port": 443, "targetPort": "8080", "nodePort": 30443}]},
         "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}}},
    ]
    return doc


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    warnings: list[str] = []
    inv = load_inventory(extended_list(), warnings.append)
    assert warnings == []
    return inv


def _workload_of(inv: Inventory, namespace: str, pod: str) -> WorkloadRef:
    return inv.pods_by_name[(namespace, pod)].workload


def test_volatile_labels_are_documented() -> None:
    assert {"pod-template-hash", "controller-revision-hash", "job-name", "controller-uid",
            "statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index"} <= VOLATILE_LABELS
    assert len(VOLATILE_LABELS) == 11


def test_pod_to_replicaset_to_deployment(inventory: Inventory) -> None:
    ref = WorkloadRef(WorkloadKind.DEPLOYMENT, "shop", "frontend")
    assert _workload_of(inventory, "shop", "frontend-7d9c-abcde") == ref
    assert _workload_of(inventory, "shop", "frontend-7d9c-fghij") == ref
    workload = inventory.workloads_by_ref[ref]
    assert workload.selector == LabelSelector((("app", "frontend"),))
    assert workload.labels == (("app", "frontend"),)
    dns = inventory.workloads_by_ref[_workload_of(inventory, "kube-system", "coredns-5c8f-xk2lp")]
    assert dns.ref == WorkloadRef(WorkloadKind.DEPLOYMENT, "kube-system", "coredns")
    assert dns.selector == LabelSelector((("k8s-app", "kube-dns"),))


def test_statefulset_pod_index_labels_are_dropped(inventory: Inventory) -> None:
    ref = _workload_of(inventory, "shop", "db-0")
    assert ref == WorkloadRef(WorkloadKind.STATEFULSET, "shop", "db")
    assert inventory.workloads_by_ref[ref].selector == LabelSelector((("app", "db"),))
    # The pod keeps its own labels as they are: only workload selectors drop volatile ones.
    assert ("apps.kubernetes.io/pod-index", "0") in inventory.pods_by_name[("shop", "db-0")].labels


def test_replicaset_without_deployment_keeps_expressions(inventory: Inventory) -> None:
    ref = _workload_of(inventory, "shop", "legacy-55f-zz")
    assert ref == WorkloadRef(WorkloadKind.REPLICASET, "shop", "legacy-55f")
    workload = inventory.workloads_by_ref[ref]
    assert workload.selector == LabelSelector((("app", "legacy"),),
                                              (SelectorRequirement("tier", "In", ("api", "web")),))
    assert workload.labels == (("app", "legacy"), ("tier", "web"))


def test_daemonset_host_network_pod(inventory: Inventory) -> None:
    pod = inventory.pods_by_name[("kube-system", "agent-x1")]
    assert pod.host_network
    assert pod.workload == WorkloadRef(WorkloadKind.DAEMONSET, "kube-system", "agent")
    assert ip_address("10.250.0.2") not in inventory.pods_by_ip  # the node's address, not a pod's
    assert inventory.nodes_by_ip[ip_address("10.250.0.2")].name == "node-a"
    assert inventory.workloads_by_ref[pod.workload].labels == (("app", "agent"),)


def test_job_owned_by_a_cronjob(inventory: Inventory) -> None:
    ref = _workload_of(inventory, "shop", "report-29000-q9x")
    assert ref == WorkloadRef(WorkloadKind.CRONJOB, "shop", "report")
    workload = inventory.workloads_by_ref[ref]
    assert workload.selector == LabelSelector((("app", "report"),))
    assert workload.labels == (("app", "report"),)


def test_standalone_job_uses_template_labels_not_its_generated_selector(inventory: Inventory) -> None:
    ref = _workload_of(inventory, "shop", "migrate-abc")
    assert ref == WorkloadRef(WorkloadKind.JOB, "shop", "migrate")
    assert inventory.workloads_by_ref[ref].selector == LabelSelector((("app", "migrate"),))


def test_bare_pod_and_unknown_controller_are_pods(inventory: Inventory) -> None:
    debug = _workload_of(inventory, "shop", "debug")
    assert debug == WorkloadRef(WorkloadKind.POD, "shop", "debug")
    assert inventory.workloads_by_ref[debug].selector == LabelSelector((("run", "debug"),))
    vm = _workload_of(inventory, "shop", "vm-1")
    assert vm == WorkloadRef(WorkloadKind.POD, "shop", "vm-1")
    assert inventory.workloads_by_ref[vm].selector == LabelSelector((("kubevirt.io", "vm"),))


def test_pod_fields(inventory: Inventory) -> None:
    pod = inventory.pods_by_name[("kube-system", "coredns-5c8f-xk2lp")]
    assert pod.ips == (ip_address("10.244.0.2"),)
    assert pod.node == "node-a" and pod.phase == "Running" and not pod.host_network
    assert pod.ports == (ContainerPort(53, Protocol.UDP, "dns"), ContainerPort(53, Protocol.TCP, "dns-tcp"))
    assert inventory.pods_by_ip[ip_address("10.244.1.12")].name == "frontend-7d9c-fghij"


def test_services(inventory: Inventory) -> None:
    services = {(s.namespace, s.name): s for s in inventory.services}
    frontend = services[("shop", "frontend")]
    assert frontend.cluster_ips == (ip_address("10.96.12.34"),) and not frontend.headless
    assert frontend.ports == (ServicePort(80, Protocol.TCP, "http", "http"),)  # a named targetPort
    assert frontend.selector == (("app", "frontend"),)
    assert frontend.endpoints == (
        Endpoints((ip_address("10.244.0.11"),), (EndpointPort(8080, Protocol.TCP, "http"),),
                  ("shop", "frontend-7d9c-abcde"), True),
        Endpoints((ip_address("10.244.1.12"),), (EndpointPort(8080, Protocol.TCP, "http"),),
                  ("shop", "frontend-7d9c-fghij"), True),
    )
    db = services[("shop", "db")]
    assert db.headless and db.cluster_ips == () and db.ports[0].target_port == 5432
    kubernetes = services[("default", "kubernetes")]
    assert kubernetes.selector is None
    assert kubernetes.endpoints == (Endpoints((ip_address("10.250.0.2"),), (EndpointPort(6443, name="https"),)),)
    lb = services[("shop", "shop-lb")]
    assert lb.type == "LoadBalancer"
    assert lb.external_ips == (ip_address("198.51.100.7"), ip_address("203.0.113.9"))
    assert lb.ports == (ServicePort(443, Protocol.TCP, 8080, None),)
    assert inventory.services_by_ip[ip_address("203.0.113.9")] is lb
    assert inventory.services_by_ip[ip_address("10.96.0.10")].name == "kube-dns"


def test_nodes_namespaces_and_pod_cidrs(inventory: Inventory) -> None:
    assert [(n.name, n.addresses, n.pod_cidrs) for n in inventory.nodes] == [
        ("node-a", (ip_address("10.250.0.2"),), ("10.244.0.0/24",)),
        ("node-b", (ip_address("10.250.0.3"),), ("10.244.1.0/24",)),
    ]
    assert inventory.pod_cidrs == ("10.244.0.0/24", "10.244.1.0/24")
    shop = next(n for n in inventory.namespaces if n.name == "shop")
    assert dict(shop.labels) == {"kubernetes.io/metadata.name": "shop", "team": "shop"}


def test_missing_kinds() -> None:
    inv = load_inventory(seed_list(), lambda m: pytest.fail(m))
    assert inv.missing == ("CronJob", "DaemonSet", "Job")
    doc = seed_list()
    doc["items"] = [i for i in doc["items"] if i["kind"] != "EndpointSlice"]
    inv = load_inventory(doc, lambda m: pytest.fail(m))
    assert "EndpointSlice" in inv.missing
    assert all(s.endpoints == () for s in inv.services)
    assert load_inventory({"kind": "List", "items": []}, print).missing == tuple(sorted(KINDS))


def test_node_with_only_pod_cidr() -> None:
    doc = seed_list()
    for item in doc["items"]:
        if item["kind"] == "Node":
            del item["spec"]["podCIDRs"]
    inv = load_inventory(doc, lambda m: pytest.fail(m))
    assert inv.nodes[0].pod_cidrs == ("10.244.0.0/24",)


def test_malformed_items_are_skipped_with_a_warning() -> None:
    doc = seed_list()
    good = copy.deepcopy(doc["items"])
    doc["items"] += [
        "not an object",
        {"kind": "Pod", "metadata": {"namespace": "shop"}},
        {"kind": "Pod", "metadata": {"name": "bad-ip", "namespace": "shop"}, "status": {"podIP": "nope"}},
        {"kind": "Service", "metadata": {"name": "bad-port", "namespace": "shop"},
         "spec": {"ports": [{"port": "eighty"}]}},
        {"kind": "Node", "metadata": {"name": "bad-node"}, "spec": {"podCIDRs": ["10.0.0.0/99"]}},
        {"kind": "Deployment", "metadata": {"name": "bad-sel", "namespace": "shop"},
         "spec": {"selector": {"matchLabels": ["app"]}}},
    ]
    warnings: list[str] = []
    inv = load_inventory(doc, warnings.append)
    assert warnings == [
        "snapshot item #18 is not an object; skipped",
        "Deployment shop/bad-sel: malformed (matchLabels is not an object); skipped",
        "Node bad-node: malformed (podCIDR '10.0.0.0/99' is not a network); skipped",
        "Pod without a name: malformed (metadata.name is missing); skipped",
        "Pod shop/bad-ip: malformed (status.podIP 'nope' is not an IP address); skipped",
        "Service shop/bad-port: malformed (port 'eighty' is not a port number); skipped",
    ], warnings
    assert inv == load_inventory({"kind": "List", "items": good}, print)


def test_deterministic_whatever_the_item_order() -> None:
    doc = extended_list()
    reordered = copy.deepcopy(doc)
    reordered["items"].reverse()
    assert load_inventory(doc, print) == load_inventory(reordered, print)


def test_read_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(seed_list()))
    assert read_snapshot(str(path), print) == load_inventory(seed_list(), print)


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such file"),
    ("{not json", "not JSON"),
    ('{"kind": "Pod"}', "not a Kubernetes v1 List"),
    ("[]", "not a Kubernetes v1 List"),
])
def test_read_snapshot_errors(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "cluster.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as info:
        read_snapshot(str(path), print)
    assert info.value.message.startswith(f"{path}: {expected}")
    assert "kubectl netgen snapshot" in info.value.message and "\n" not in info.value.message


def test_tunnel_addresses_from_cni_annotations() -> None:
    annotations = {"projectcalico.org/IPv4IPIPTunnelAddr": "192.168.77.128",
                   "projectcalico.org/IPv4VXLANTunnelAddr": "192.168.77.129/32",
                   "io.cilium.network.ipv4-cilium-host": "10.244.1.77",
                   "network.cilium.io/ipv4-cilium-host": "10.244.1.77",
                   "network.cilium.io/ipv6-cilium-host": "not an address",
                   "projectcalico.org/IPv4Address": "10.0.0.5/24"}
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "annotations": annotations},
            "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}}
    inventory = load_inventory({"kind": "List", "items": [node]}, print)
    [found] = inventory.nodes
    assert found.tunnel_addresses == (ip_address("192.168.77.128"), ip_address("192.168.77.129"),
                                      ip_address("10.244.1.77"))
    assert all(inventory.nodes_by_gateway[ip] is found for ip in found.tunnel_addresses)
    assert ip_address("10.0.0.5") not in inventory.nodes_by_gateway  # the host address is a node address


# ----------------------------------------------------------------------------- several snapshots as one

def _list(*items: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}


def test_merge_keeps_every_object_and_the_newest_copy_of_each() -> None:
    old_web = _pod("shop", "web-1", {"app": "web"}, "10.244.1.10")
    gone = _pod("shop", "web-0", {"app": "web"}, "10.244.1.9")
    new_web = _pod("shop", "web-1", {"app": "web", "tier": "front"}, "10.244.1.10")
    added = _pod("shop", "web-2", {"app": "web"}, "10.244.1.11")
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}, "spec": {"podCIDR": "10.244.1.0/24"}}
    merged = merge_snapshots([_list(old_web, gone, node), _list(added, new_web)])
    assert merged["kind"] == "List"
    assert [(i["kind"], i["metadata"]["name"]) for i in merged["items"]] == [
        ("Pod", "web-0"), ("Pod", "web-1"), ("Pod", "web-2"), ("Node", "node-a")]  # kinds in snapshot order
    assert merged["items"][1] is new_web
    inventory = load_inventory(merged, print)
    assert sorted(p.name for p in inventory.pods) == ["web-0", "web-1", "web-2"]


def test_merge_passes_odd_items_on_for_the_loader_to_report() -> None:
    warnings: list[str] = []
    inventory = load_inventory(merge_snapshots([_list("junk", _pod("shop", "a", {"app": "a"}, "10.244.1.5"))]),
                               warnings.append)
    assert [p.name for p in inventory.pods] == ["a"]
    assert warnings == ["snapshot item #1 is not an object; skipped"]


def test_a_reused_address_belongs_to_the_pod_created_last() -> None:
    def created(item: Obj, stamp: str) -> Obj:
        item["metadata"]["creationTimestamp"] = stamp
        return item

    older = created(_pod("shop", "zz-old", {"app": "old"}, "10.244.1.10"), "2026-12-01T09:00:00Z")
    newer = created(_pod("shop", "aa-new", {"app": "new"}, "10.244.1.10"), "2026-12-02T09:00:00Z")
    finished = created(_pod("shop", "mm-done", {"app": "done"}, "10.244.1.10"), "2026-12-03T09:00:00Z")
    finished["status"]["phase"] = "Succeeded"
    for items in ((older, newer, finished), (finished, newer, older)):
        inventory = load_inventory(_list(*items), print)
        assert inventory.pods_by_ip[ip_address("10.244.1.10")].name == "aa-new"  # Running first, then newest
        assert inventory.pods_by_name[("shop", "aa-new")].created == "2026-12-02T09:00:00Z"


def test_read_clusters_merges_oldest_first(tmp_path: Path) -> None:
    from kubectl_netgen.app.cluster import read_clusters

    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(_list(_pod("shop", "web-1", {"app": "web"}, "10.244.1.10"))))
    new.write_text(json.dumps(_list(_pod("shop", "web-1", {"app": "web", "v": "2"}, "10.244.1.10"))))
    assert read_clusters([str(old), str(new)], print).pods_by_name[("shop", "web-1")].labels == (
        ("app", "web"), ("v", "2"))
    assert read_clusters([str(new), str(old)], print).pods_by_name[("shop", "web-1")].labels == (("app", "web"),)
    with pytest.raises(InputError, match="not JSON"):
        (tmp_path / "bad.json").write_text("{")
        read_clusters([str(old), str(tmp_path / "bad.json")], print)


def test_read_cluster_warns_about_kinds_that_matter(tmp_path: Path) -> None:
    from kubectl_netgen.app import read_cluster

    doc = seed_list()
    doc["items"] = [i for i in doc["items"] if i["kind"] != "EndpointSlice"]
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(doc))
    warnings: list[str] = []
    inventory = read_cluster(str(path), warnings.append)
    assert warnings == [f"{path}: no EndpointSlices in the snapshot: Service backends cannot be resolved"]
    assert len(inventory.services) == 3
