"""A small, realistic cluster snapshot to seed the test API server.

:func:`seed_list` returns what ``kubectl get namespaces,pods,services,endpointslices,nodes,replicasets,
deployments,statefulsets,daemonsets,jobs,cronjobs -A -o json`` prints for a tiny cluster: a ``v1 List``
whose items carry ``apiVersion`` and ``kind``. Addresses follow kind's defaults: pods in 10.244.0.0/16,
ClusterIPs in 10.96.0.0/12, nodes in 10.250.0.0/24.

Namespace ``shop``: Deployment ``frontend`` -> ReplicaSet ``frontend-7d9c`` -> pods ``frontend-7d9c-abcde``
and ``frontend-7d9c-fghij`` (app=frontend), StatefulSet ``db`` -> pod ``db-0``, Service ``frontend``
(port 80 -> targetPort ``http``) with its EndpointSlice. Namespace ``kube-system``: Deployment/ReplicaSet
``coredns`` with one pod and Service ``kube-dns``. Nodes ``node-a`` and ``node-b``.
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]

CREATED = "2026-01-05T09:00:00Z"


def _meta(name: str, uid: str, namespace: str | None = None, **extra: Any) -> Obj:
    meta: Obj = {"name": name, "uid": uid, "creationTimestamp": CREATED, "resourceVersion": "1"}
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def _owner(api_version: str, kind: str, name: str, uid: str) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": True,
            "blockOwnerDeletion": True}


def _namespace(name: str, uid: str, labels: dict[str, str] | None = None) -> Obj:
    all_labels = {"kubernetes.io/metadata.name": name, **(labels or {})}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(name, uid, labels=all_labels),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def _node(name: str, uid: str, ip: str, pod_cidr: str) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": _meta(name, uid, labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}),
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": CREATED, "lastTransitionTime": CREATED}],
            "nodeInfo": {"architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://2.1.0",
                         "kernelVersion": "6.8.0", "kubeProxyVersion": "", "kubeletVersion": "v1.37.0",
                         "machineID": "", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12",
                         "systemUUID": ""},
        },
    }


def _container(name: str, image: str, ports: list[Obj]) -> Obj:
    return {"name": name, "image": image, "ports": ports, "imagePullPolicy": "IfNotPresent",
            "resources": {}, "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File"}


def _pod(name: str, uid: str, namespace: str, labels: dict[str, str], owner: Obj, node: str, ip: str,
         container: Obj, host_ip: str) -> Obj:
    image = container["image"]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": _meta(name, uid, namespace, labels=labels, ownerReferences=[owner], generation=1),
        "spec": {"containers": [container], "nodeName": node, "restartPolicy": "Always",
                 "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "schedulerName": "default-scheduler",
                 "terminationGracePeriodSeconds": 30, "securityContext": {}},
        "status": {
            "phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}],
            "qosClass": "BestEffort", "startTime": CREATED,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": CREATED}
                           for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                     "PodScheduled")],
            "containerStatuses": [{
                "name": container["name"], "image": image, "imageID": f"{image.split(':')[0]}@sha256:" + "0" * 64,
                "containerID": f"containerd://{uid.replace('-', '')}", "ready": True, "restartCount": 0,
                "started": True, "state": {"running": {"startedAt": CREATED}},
            }],
        },
    }


def _template(labels: dict[str, str], container: Obj) -> Obj:
    return {"metadata": {"labels": labels}, "spec": {"containers": [container], "restartPolicy": "Always"}}


def seed_list() -> Obj:
    """Return the seed snapshot as a ``v1 List`` (a fresh deep copy on every call)."""
    web = _container("web", "nginx:1.27", [{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    pg = _container("postgres", "postgres:16", [{"name": "pg", "containerPort": 5432, "protocol": "TCP"}])
    dns = _container("coredns", "registry.k8s.io/coredns/coredns:v1.11.3",
                     [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                      {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}])
    fe_labels = {"app": "frontend", "pod-template-hash": "7d9c"}
    dns_labels = {"k8s-app": "kube-dns", "pod-template-hash": "5c8f"}
    deploy_uid, rs_uid, sts_uid = "a1000000-0000-4000-8000-000000000001", "a1000000-0000-4000-8000-000000000002", \
        "a1000000-0000-4000-8000-000000000003"
    dns_deploy_uid, dns_rs_uid = "a1000000-0000-4000-8000-000000000011", "a1000000-0000-4000-8000-000000000012"
    rs_owner = _owner("apps/v1", "ReplicaSet", "frontend-7d9c", rs_uid)
    items: list[Obj] = [
        _namespace("default", "c0000000-0000-4000-8000-000000000000"),
        _namespace("kube-system", "c0000000-0000-4000-8000-000000000001"),
        _namespace("shop", "c0000000-0000-4000-8000-000000000002", {"team": "shop"}),
        _node("node-a", "d0000000-0000-4000-8000-00000000000a", "10.250.0.2", "10.244.0.0/24"),
        _node("node-b", "d0000000-0000-4000-8000-00000000000b", "10.250.0.3", "10.244.1.0/24"),
        _pod("frontend-7d9c-abcde", "b0000000-0000-4000-8000-000000000001", "shop", dict(fe_labels), rs_owner,
             "node-a", "10.244.0.11", copy.deepcopy(web), "10.250.0.2"),
        _pod("frontend-7d9c-fghij", "b0000000-0000-4000-8000-000000000002", "shop", dict(fe_labels), rs_owner,
             "node-b", "10.244.1.12", copy.deepcopy(web), "10.250.0.3"),
        _pod("db-0", "b0000000-0000-4000-8000-000000000003", "shop",
             {"app": "db", "apps.kubernetes.io/pod-index": "0", "statefulset.kubernetes.io/pod-name": "db-0"},
             _owner("apps/v1", "StatefulSet", "db", sts_uid), "node-a", "10.244.0.13", copy.deepcopy(pg),
             "10.250.0.2"),
        _pod("coredns-5c8f-xk2lp", "b0000000-0000-4000-8000-000000000011", "kube-system", dict(dns_labels),
             _owner("apps/v1", "ReplicaSet", "coredns-5c8f", dns_rs_uid), "node-a", "10.244.0.2",
             copy.deepcopy(dns), "10.250.0.2"),
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": _meta("frontend", "e0000000-0000-4000-8000-000000000001", "shop", labels={"app": "frontend"}),
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                     "selector": {"app": "frontend"}, "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]},
            "status": {"loadBalancer": {}},
        },
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": _meta("db", "e0000000-0000-4000-8000-000000000002", "shop", labels={"app": "db"}),
            "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"},
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                     "ports": [{"name": "pg", "port": 5432, "protocol": "TCP", "targetPort": 5432}]},
            "status": {"loadBalancer": {}},
        },
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": _meta("kube-dns", "e0000000-0000-4000-8000-000000000011", "kube-system",
                              labels={"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}),
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "selector": {"k8s-app": "kube-dns"}, "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "sessionAffinity": "None",
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]},
            "status": {"loadBalancer": {}},
        },
        {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": _meta("frontend-x7k2p", "f0000000-0000-4000-8000-000000000001", "shop",
                              generateName="frontend-",
                              labels={"kubernetes.io/service-name": "frontend",
                                      "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                              ownerReferences=[_owner("v1", "Service", "frontend",
                                                      "e0000000-0000-4000-8000-000000000001")]),
            "endpoints": [
                {"addresses": ["10.244.0.11"], "conditions": {"ready": True, "serving": True, "terminating": False},
                 "nodeName": "node-a",
                 "targetRef": {"kind": "Pod", "name": "frontend-7d9c-abcde", "namespace": "shop",
                               "uid": "b0000000-0000-4000-8000-000000000001"}},
                {"addresses": ["10.244.1.12"], "conditions": {"ready": True, "serving": True, "terminating": False},
                 "nodeName": "node-b",
                 "targetRef": {"kind": "Pod", "name": "frontend-7d9c-fghij", "namespace": "shop",
                               "uid": "b0000000-0000-4000-8000-000000000002"}},
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        },
        {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta("frontend", deploy_uid, "shop", labels={"app": "frontend"}, generation=1),
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "frontend"}},
                     "template": _template({"app": "frontend"}, copy.deepcopy(web)),
                     "strategy": {"type": "RollingUpdate"}},
            "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 2,
                       "observedGeneration": 1},
        },
        {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": _meta("frontend-7d9c", rs_uid, "shop", labels=dict(fe_labels), generation=1,
                              ownerReferences=[_owner("apps/v1", "Deployment", "frontend", deploy_uid)]),
            "spec": {"replicas": 2, "selector": {"matchLabels": dict(fe_labels)},
                     "template": _template(dict(fe_labels), copy.deepcopy(web))},
            "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": 1},
        },
        {
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": _meta("db", sts_uid, "shop", labels={"app": "db"}, generation=1),
            "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": _template({"app": "db"}, copy.deepcopy(pg))},
            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1},
        },
        {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta("coredns", dns_deploy_uid, "kube-system", labels={"k8s-app": "kube-dns"}, generation=1),
            "spec": {"replicas": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                     "template": _template({"k8s-app": "kube-dns"}, copy.deepcopy(dns))},
            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1,
                       "observedGeneration": 1},
        },
        {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": _meta("coredns-5c8f", dns_rs_uid, "kube-system", labels=dict(dns_labels), generation=1,
                              ownerReferences=[_owner("apps/v1", "Deployment", "coredns", dns_deploy_uid)]),
            "spec": {"replicas": 1, "selector": {"matchLabels": dict(dns_labels)},
                     "template": _template(dict(dns_labels), copy.deepcopy(dns))},
            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1},
        },
    ]
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}
