"""The Kubernetes objects describing a fabric, as ``kubectl get … -A -o json`` would list them.

:class:`Describer` reads a running :class:`~tests.cluster.fabric.lab.Fabric` (its layout, the pods that
exist now and their endpoints) and builds Namespaces, Nodes, Pods, Services, EndpointSlices and the
controllers with their owner chains. Names, uids and labels come from :mod:`.layout`, the same rules the
lab used to name what it built, so objects and namespaces always match.
"""

from __future__ import annotations

import copy
import hashlib
from typing import TYPE_CHECKING, Any

from tests.cluster.fabric import services
from tests.cluster.fabric.layout import (
    CRON_SCHEDULE,
    EPOCH,
    JOB_KINDS,
    Controller,
    NodeSpec,
    Pod,
    ServiceSpec,
    job_labels,
    job_name,
    suffix,
    template_hash,
    uid,
)

if TYPE_CHECKING:
    from tests.cluster.fabric.lab import Fabric

Obj = dict[str, Any]


class Describer:
    """Turns a fabric's state into Kubernetes objects."""

    def __init__(self, fabric: Fabric) -> None:
        """Describe ``fabric`` as it is now; every object is created at the fabric's creation time."""
        self.f = fabric
        self.ts = fabric.created

    def meta(self, kind: str, namespace: str | None, name: str, labels: dict[str, str] | None = None,
             owner: tuple[str, str, str] | None = None, **extra: Any) -> Obj:
        meta: Obj = {"name": name, "uid": uid(kind, namespace or "", name), "creationTimestamp": self.ts,
                     "resourceVersion": "1"}
        if namespace is not None:
            meta["namespace"] = namespace
        if labels:
            meta["labels"] = dict(labels)
        if owner is not None:
            api, owner_kind, owner_name = owner
            meta["ownerReferences"] = [{"apiVersion": api, "kind": owner_kind, "name": owner_name,
                                        "uid": uid(owner_kind, namespace or "", owner_name),
                                        "controller": True, "blockOwnerDeletion": True}]
        meta.update(extra)
        return meta

    def objects(self) -> list[Obj]:
        out: list[Obj] = []
        namespaces = sorted({"default", "kube-system", "kube-public", "kube-node-lease",
                             *(c.namespace for c in self.f.controllers), *(s.namespace for s in self.f.services)})
        for ns in namespaces:
            out.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": self.meta("Namespace", None, ns, {"kubernetes.io/metadata.name": ns}),
                        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        out += [self.node(n) for n in self.f.nodes.values()]
        out += [self.pod(p) for p in sorted(self.f.pods.values(), key=lambda p: (p.namespace, p.name))]
        for svc in self.f.services:
            out.append(self.service(svc))
            out.append(self.endpoint_slice(svc))
        for ctl in self.f.controllers:
            out += self.controller(ctl)
        return out

    def node(self, node: NodeSpec) -> Obj:
        labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        if node.name == "node-a":
            labels["node-role.kubernetes.io/control-plane"] = ""
        return {"apiVersion": "v1", "kind": "Node", "metadata": self.meta("Node", None, node.name, labels),
                "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
                "status": {"addresses": [{"type": "InternalIP", "address": node.ip},
                                         {"type": "Hostname", "address": node.name}],
                           "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                           "lastHeartbeatTime": self.ts, "lastTransitionTime": self.ts}],
                           "nodeInfo": {"kubeletVersion": "v1.30.0", "containerRuntimeVersion": "containerd://1.7",
                                        "operatingSystem": "linux", "architecture": "amd64"}}}

    def template_spec(self, ctl: Controller) -> Obj:
        container: Obj = {"name": ctl.name, "image": ctl.image, "imagePullPolicy": "IfNotPresent"}
        if ctl.ports:
            container["ports"] = [{"name": p.name, "containerPort": p.port, "protocol": p.protocol,
                                   **({"hostPort": p.port} if ctl.host_network else {})} for p in ctl.ports]
        if ctl.readiness_port:
            container["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": ctl.readiness_port,
                                                       "scheme": "HTTP"}, "periodSeconds": 1}
        spec: Obj = {"containers": [container], "restartPolicy": "Never" if ctl.kind in JOB_KINDS else "Always",
                     "dnsPolicy": "ClusterFirstWithHostNet" if ctl.host_network else "ClusterFirst",
                     "serviceAccountName": "default"}
        if ctl.host_network:
            spec["hostNetwork"] = True
        if ctl.kind == "DaemonSet":
            spec["nodeSelector"] = {"kubernetes.io/hostname": ctl.pods[0][0]}
        return spec

    def pod(self, pod: Pod) -> Obj:
        ctl = pod.controller
        api = "batch/v1" if pod.owner_kind == "Job" else "apps/v1"
        spec = self.template_spec(ctl)
        spec["nodeName"] = pod.node
        node_ip = self.f.nodes[pod.node].ip
        container_id = "containerd://" + hashlib.sha256(f"{pod.namespace}/{pod.name}".encode()).hexdigest()
        conditions = [{"type": t, "status": "True", "lastTransitionTime": self.ts}
                      for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                "PodScheduled")]
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": self.meta("Pod", pod.namespace, pod.name, pod.labels, (api, pod.owner_kind, pod.owner_name),
                                  generateName=pod.name.rsplit("-", 1)[0] + "-"),
            "spec": spec,
            "status": {"phase": "Running", "hostIP": node_ip, "hostIPs": [{"ip": node_ip}], "podIP": pod.ip,
                       "podIPs": [{"ip": pod.ip}], "startTime": self.ts, "qosClass": "BestEffort",
                       "conditions": conditions,
                       "containerStatuses": [{"name": ctl.name, "image": ctl.image, "imageID": "",
                                              "containerID": container_id, "ready": True, "started": True,
                                              "restartCount": 0,
                                              "state": {"running": {"startedAt": self.ts}}}]},
        }

    def service(self, svc: ServiceSpec) -> Obj:
        labels = {"component": "apiserver", "provider": "kubernetes"} if svc.selector is None else {}
        if svc.namespace == "kube-system" and svc.name == "kube-dns":
            labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
        spec: Obj = {"type": "ClusterIP", "clusterIP": svc.cluster_ip or "None",
                     "clusterIPs": [svc.cluster_ip or "None"], "ipFamilies": ["IPv4"],
                     "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                     "internalTrafficPolicy": "Cluster",
                     "ports": [{"name": name, "port": port, "targetPort": target, "protocol": proto}
                               for name, port, target, proto in svc.ports]}
        if svc.selector is not None:
            spec["selector"] = dict(svc.selector)
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": self.meta("Service", svc.namespace, svc.name, labels), "spec": spec,
                "status": {"loadBalancer": {}}}

    def endpoint_slice(self, svc: ServiceSpec) -> Obj:
        endpoints = []
        ports: dict[str, tuple[int, str]] = {}
        for pod, addr, resolved in services.endpoints(svc, self.f.pods.values()):
            ports.update(resolved)
            endpoint: Obj = {"addresses": [addr], "conditions": {"ready": True, "serving": True,
                                                                 "terminating": False}}
            if pod is not None:
                endpoint["nodeName"] = pod.node
                endpoint["targetRef"] = {"kind": "Pod", "namespace": pod.namespace, "name": pod.name,
                                         "uid": uid("Pod", pod.namespace, pod.name)}
            endpoints.append(endpoint)
        labels = {"kubernetes.io/service-name": svc.name,
                  "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
        if svc.selector is None:
            labels["endpointslice.kubernetes.io/managed-by"] = "endpointslicemirroring-controller.k8s.io"
        name = svc.name if svc.selector is None else f"{svc.name}-{suffix(svc.namespace + '/' + svc.name, 5)}"
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": self.meta("EndpointSlice", svc.namespace, name, labels, ("v1", "Service", svc.name)),
                "addressType": "IPv4", "endpoints": endpoints,
                "ports": [{"name": name, "port": port, "protocol": proto}
                          for name, (port, proto) in sorted(ports.items())]}

    def controller(self, ctl: Controller) -> list[Obj]:
        pods = self.f.pods_of(ctl.namespace, ctl.name)
        template = {"metadata": {"labels": dict(ctl.labels)}, "spec": self.template_spec(ctl)}
        selector = {"matchLabels": dict(ctl.labels)}
        count = len(pods)
        out: list[Obj] = []
        if ctl.kind == "Deployment":
            hashed = template_hash(ctl)
            out.append({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": self.meta("Deployment", ctl.namespace, ctl.name, ctl.labels),
                        "spec": {"replicas": len(ctl.pods), "selector": selector, "template": template},
                        "status": {"replicas": count, "readyReplicas": count, "availableReplicas": count,
                                   "updatedReplicas": count}})
            rs_labels = {**ctl.labels, "pod-template-hash": hashed}
            rs_template = copy.deepcopy(template)
            rs_template["metadata"]["labels"] = dict(rs_labels)
            out.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "metadata": self.meta("ReplicaSet", ctl.namespace, f"{ctl.name}-{hashed}", rs_labels,
                                              ("apps/v1", "Deployment", ctl.name)),
                        "spec": {"replicas": len(ctl.pods), "selector": {"matchLabels": rs_labels},
                                 "template": rs_template},
                        "status": {"replicas": count, "readyReplicas": count, "availableReplicas": count}})
        elif ctl.kind == "StatefulSet":
            headless = [s.name for s in self.f.services if s.namespace == ctl.namespace and s.cluster_ip is None
                        and s.selector is not None and all(ctl.labels.get(k) == v for k, v in s.selector.items())]
            out.append({"apiVersion": "apps/v1", "kind": "StatefulSet",
                        "metadata": self.meta("StatefulSet", ctl.namespace, ctl.name, ctl.labels),
                        "spec": {"replicas": len(ctl.pods), "serviceName": headless[0] if headless else ctl.name,
                                 "selector": selector, "template": template, "podManagementPolicy": "OrderedReady"},
                        "status": {"replicas": count, "readyReplicas": count, "availableReplicas": count}})
        elif ctl.kind == "DaemonSet":
            out.append({"apiVersion": "apps/v1", "kind": "DaemonSet",
                        "metadata": self.meta("DaemonSet", ctl.namespace, ctl.name, ctl.labels),
                        "spec": {"selector": selector, "template": template},
                        "status": {"desiredNumberScheduled": len(ctl.pods), "currentNumberScheduled": count,
                                   "numberReady": count, "numberAvailable": count, "numberMisscheduled": 0}})
        elif ctl.kind == "Job":
            out.append(self.job(ctl, template, count))
        elif ctl.kind == "CronJob":
            job = self.job(ctl, template, count, scheduled=True)
            job_spec = {key: job["spec"][key] for key in ("parallelism", "completions", "backoffLimit")}
            out.append({"apiVersion": "batch/v1", "kind": "CronJob",
                        "metadata": self.meta("CronJob", ctl.namespace, ctl.name, ctl.labels),
                        "spec": {"schedule": CRON_SCHEDULE, "concurrencyPolicy": "Forbid", "suspend": False,
                                 "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                                 "jobTemplate": {"metadata": {"labels": dict(ctl.labels)},
                                                 "spec": {**job_spec, "template": template}}},
                        "status": {"active": [{"apiVersion": "batch/v1", "kind": "Job",
                                               "namespace": ctl.namespace, "name": job["metadata"]["name"],
                                               "uid": job["metadata"]["uid"]}],
                                   "lastScheduleTime": EPOCH}})
            out.append(job)
        return out

    def job(self, ctl: Controller, template: Obj, count: int, *, scheduled: bool = False) -> Obj:
        """The Job running ``ctl``'s pods: ``ctl`` itself, or (``scheduled``) the one its CronJob last created."""
        name = job_name(ctl)
        labels = job_labels(ctl.namespace, name)
        match = {"batch.kubernetes.io/controller-uid": labels["batch.kubernetes.io/controller-uid"]}
        job_template = copy.deepcopy(template)
        job_template["metadata"]["labels"].update(labels)
        owner = ("batch/v1", "CronJob", ctl.name) if scheduled else None
        extra: Obj = {"annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": EPOCH}} if scheduled else {}
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": self.meta("Job", ctl.namespace, name, ctl.labels, owner, **extra),
                "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 0,
                         "selector": {"matchLabels": match}, "template": job_template},
                "status": {"active": count, "startTime": self.ts}}
