"""Which pods a capture takes: the running, ready pods behind each target, bounded per workload."""


from __future__ import annotations

from typing import Any

from kubectl_netgen.app.captures import Warn
from kubectl_netgen.app.recording.model import (
    CaptureRequest,
    PodRef,
)
from kubectl_netgen.capturing.targets import POD, Target, owned_by, parse_target, pod_selector
from kubectl_netgen.errors import (
    InputError,
    NotFoundError,
)


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def is_host_network(pod: dict[str, Any]) -> bool:
    """A pod in its node's network namespace.

    A capture there would record the node's traffic, and no NetworkPolicy applies to it.
    """
    return (pod.get("spec") or {}).get("hostNetwork") is True


def _ref(pod: dict[str, Any], target: str) -> PodRef:
    meta = pod.get("metadata") or {}
    return PodRef(str(meta.get("namespace") or ""), str(meta.get("name")), target,
                  str((pod.get("status") or {}).get("phase") or "Unknown"), _is_ready(pod))


def _pods_of(cluster: Any, target: Target, obj: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    from kubectl_netgen import kube

    if target.kind is POD:
        return [obj]
    if target.kind.kind == "CronJob":
        jobs = [j for j in kube.list_objects(cluster, "batch/v1", "jobs", namespace)
                if owned_by(j, "CronJob", {target.name})]
        names = {str(j["metadata"]["name"]) for j in jobs}
        if not names:
            return []
        pods = kube.list_objects(cluster, "v1", "pods", namespace)
        return [p for p in pods if owned_by(p, "Job", names)]
    selector = pod_selector(target, obj)
    if selector is None:
        return []
    pods = kube.list_objects(cluster, "v1", "pods", namespace, selector)
    if target.kind.kind == "Deployment":
        rs = [r for r in kube.list_objects(cluster, "apps/v1", "replicasets", namespace, selector)
              if owned_by(r, "Deployment", {target.name})]
        owners = {str(r["metadata"]["name"]) for r in rs}
        return [p for p in pods if owned_by(p, "ReplicaSet", owners)]
    if target.kind.kind in ("StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [p for p in pods if owned_by(p, target.kind.kind, {target.name})]
    return pods  # a Service selects by labels alone


def _objects_named(cluster: Any, target: Target, namespace: str | None) -> list[tuple[str, dict[str, Any]]]:
    from kubectl_netgen import kube

    if namespace is not None:
        return [(namespace, kube.get_object(cluster, target.kind.api_version, target.kind.plural, namespace,
                                            target.name))]
    found = [(str(o["metadata"].get("namespace")), o)
             for o in kube.list_objects(cluster, target.kind.api_version, target.kind.plural, None)
             if o.get("metadata", {}).get("name") == target.name]
    if not found:
        raise NotFoundError(f'{target.kind.plural} "{target.name}" not found in any namespace')
    return found


def choose_pods(cluster: Any, request: CaptureRequest, namespace: str | None, warn: Warn) -> list[PodRef]:
    """The pods behind the targets and the selector, each once, sorted by namespace and name.

    Pods that are not running are kept (their capture fails with the reason); ``max_pods`` keeps the first
    running and ready pods of each target.

    Raises:
        InputError: A target cannot be parsed, or nothing was asked for.
        NotFoundError: A named target does not exist, or no pod is behind any target.
        ClusterError: The cluster cannot be read (ForbiddenError names the permission).
    """
    from kubectl_netgen import kube

    if not request.targets and not request.selector:
        raise InputError("nothing to capture: give targets (deploy/NAME, pod/NAME, svc/NAME, …) or -l SELECTOR")
    targets = [parse_target(t) for t in request.targets]
    chosen: dict[tuple[str, str], PodRef] = {}

    skipped: dict[tuple[str, str], None] = {}

    def keep(label: str, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            if is_host_network(pod):
                meta = pod.get("metadata") or {}
                skipped[(str(meta.get("namespace") or ""), str(meta.get("name")))] = None
        refs = sorted((_ref(p, label) for p in pods if not is_host_network(p)),
                      key=lambda r: (not (r.phase == "Running" and r.ready), r.namespace, r.name))
        if not refs:
            warn(f"{label}: no pods" + (" but hostNetwork ones" if pods else ""))
            return
        if request.max_pods is not None:
            refs = refs[:request.max_pods]
        for ref in refs:
            chosen.setdefault((ref.namespace, ref.name), ref)

    for target in targets:
        for ns, obj in _objects_named(cluster, target, namespace):
            label = str(target) if namespace is not None else f"{ns}/{target}"
            keep(label, _pods_of(cluster, target, obj, ns))
    if request.selector:
        keep(f"-l {request.selector}", kube.list_objects(cluster, "v1", "pods", namespace, request.selector))
    if skipped:
        warn(f"skipped {len(skipped)} hostNetwork pod(s) ({', '.join(f'{ns}/{name}' for ns, name in skipped)}): "
             "they share their node's network, so a capture would record the node's traffic, and no "
             "NetworkPolicy applies to them")
    if not chosen:
        where = "in any namespace" if namespace is None else f'in namespace "{namespace}"'
        raise NotFoundError(f"no pods to capture {where}: the targets select none"
                            + (" but hostNetwork pods" if skipped else ""))
    return [chosen[k] for k in sorted(chosen)]


# ----------------------------------------------------------------------------- one pod
