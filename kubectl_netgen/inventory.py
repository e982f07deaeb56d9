"""The cluster snapshot: a ``v1 List`` of Kubernetes objects -> :class:`~kubectl_netgen.model.Inventory`.

A snapshot is exactly what ``kubectl get namespaces,pods,services,endpointslices,nodes,replicasets,
deployments,statefulsets,daemonsets,jobs,cronjobs -A -o json`` prints (and what ``kubectl netgen
snapshot`` writes). This module is where that raw JSON becomes model values, once, at the edge: owners
are followed to the top-level workload (pod -> ReplicaSet -> Deployment, pod -> Job -> CronJob, …),
Services are joined to their EndpointSlices, and labels a controller stamps on each pod (hashes,
indexes, job names) are dropped so selectors stay stable across rollouts.

Items that cannot be read are skipped with a warning naming them; a kind missing from the snapshot is
recorded in :attr:`Inventory.missing` so callers can say what cannot be resolved.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

from kubectl_netgen.errors import InputError
from kubectl_netgen.model import (
    ContainerPort,
    EndpointPort,
    Endpoints,
    Inventory,
    IPAddress,
    Labels,
    LabelSelector,
    Namespace,
    Node,
    Pod,
    Protocol,
    SelectorRequirement,
    Service,
    ServicePort,
    Workload,
    WorkloadKind,
    WorkloadRef,
    labels_of,
)

Warn = Callable[[str], None]
Obj = Mapping[str, Any]

KINDS: tuple[str, ...] = (
    "Namespace", "Pod", "Service", "EndpointSlice", "Node", "ReplicaSet", "Deployment", "StatefulSet",
    "DaemonSet", "Job", "CronJob",
)
"""The kinds a snapshot holds, in the order ``kubectl get namespaces,pods,…`` lists them."""

VOLATILE_LABELS: frozenset[str] = frozenset({
    "pod-template-hash",                         # Deployment -> ReplicaSet: changes on every rollout
    "controller-revision-hash",                  # StatefulSet / DaemonSet revision
    "pod-template-generation",                   # DaemonSet (legacy) template generation
    "statefulset.kubernetes.io/pod-name",        # one value per StatefulSet pod
    "apps.kubernetes.io/pod-index",              # StatefulSet ordinal
    "batch.kubernetes.io/controller-uid",        # Job uid: a new one for every run of a CronJob
    "controller-uid",                            # same, legacy spelling
    "job-name",                                  # Job name: a new one for every run of a CronJob
    "batch.kubernetes.io/job-name",              # same, current spelling
    "batch.kubernetes.io/job-completion-index",  # indexed Job completion index
    "job-completion-index",                      # same, legacy spelling
})
"""Labels controllers put on individual pods or runs; a selector or workload label set never uses them,
because they differ between pods of one workload or change with every rollout or run."""

_KNOWN_CONTROLLERS = {"ReplicaSet", "StatefulSet", "DaemonSet", "Job"}


class _MalformedError(ValueError):
    """An item lacks a field it must have, or has one of the wrong type."""


def stable_labels(labels: Mapping[str, str] | None) -> Labels:
    """Labels without :data:`VOLATILE_LABELS`, sorted."""
    return labels_of({k: v for k, v in (labels or {}).items() if k not in VOLATILE_LABELS})


def read_snapshot(path: str, warn: Warn) -> Inventory:
    """Read a snapshot file (``cluster.json``) into an inventory.

    Args:
        path: A JSON file holding a ``v1 List`` (``kubectl get … -o json``, ``kubectl netgen snapshot``).
        warn: Receives one line per skipped item.

    Returns:
        The inventory.

    Raises:
        InputError: The file is missing, unreadable, not JSON or not a ``v1 List``.
    """
    return load_inventory(read_document(path), warn)


def read_document(path: str) -> dict[str, Any]:
    """Read a snapshot file into its ``v1 List``, unconverted (to merge it with others).

    Raises:
        InputError: The file is missing, unreadable, not JSON or not a ``v1 List``.
    """
    hint = "write one with: kubectl netgen snapshot -A > cluster.json"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; give a cluster snapshot ({hint})") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; give a cluster snapshot file ({hint})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from e
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON ({e.msg} at line {e.lineno}); give a cluster snapshot ({hint})") from e
    except RecursionError as e:
        raise InputError(f"{path}: nested too deeply to be a cluster snapshot; give one ({hint})") from e
    if not isinstance(document, dict) or document.get("kind") != "List" or not isinstance(document.get("items"), list):
        raise InputError(f"{path}: not a Kubernetes v1 List; give a cluster snapshot ({hint})")
    return document


def merge_snapshots(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``v1 List`` of several snapshots, oldest first: for each object the newest copy, none dropped.

    Objects are the same when kind, namespace and name agree; an object that only an older snapshot
    holds (a pod replaced since, the Job of last night's CronJob run) stays in, so its traffic still
    has a name. Items that are not objects with a kind and a name are kept as they are, for
    :func:`load_inventory` to report.
    """
    merged: dict[tuple[str, str, str], Any] = {}
    odd: list[Any] = []
    for document in documents:
        for item in document.get("items") or ():
            meta = item.get("metadata") if isinstance(item, Mapping) else None
            if not isinstance(meta, Mapping) or not isinstance(item.get("kind"), str) or not meta.get("name"):
                odd.append(item)
                continue
            key = (item["kind"], str(meta.get("namespace") or ""), str(meta["name"]))
            merged[key] = item
    order = {kind: index for index, kind in enumerate(KINDS)}
    items = sorted(merged.items(), key=lambda kv: (order.get(kv[0][0], len(order)), *kv[0]))
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": [item for _, item in items] + odd}


def load_inventory(document: Mapping[str, Any], warn: Warn) -> Inventory:
    """Turn a ``v1 List`` of cluster objects into an inventory.

    Args:
        document: The parsed ``v1 List``; items of other kinds are ignored.
        warn: Receives one line per malformed item (which is skipped).

    Returns:
        The inventory; kinds of :data:`KINDS` absent from the list are in ``missing``.
    """
    by_kind: dict[str, list[Obj]] = {kind: [] for kind in KINDS}
    for index, item in enumerate(document.get("items") or ()):
        if not isinstance(item, Mapping):
            warn(f"snapshot item #{index} is not an object; skipped")
            continue
        kind = item.get("kind")
        if isinstance(kind, str) and kind in by_kind:
            by_kind[kind].append(item)
    missing = [kind for kind in KINDS if not by_kind[kind]]

    def each(kind: str, convert: Callable[[Obj], Any]) -> list[Any]:
        out = []
        for item in by_kind[kind]:
            try:
                out.append(convert(item))
            except (_MalformedError, ValueError, TypeError, KeyError, AttributeError) as e:
                warn(f"{_describe(kind, item)}: malformed ({e}); skipped")
        return out

    controllers = _Controllers(
        {_key(o): o for o in each("ReplicaSet", _checked)},
        {_key(o): o for o in each("Job", _checked)},
        {_key(o): o for kind in ("Deployment", "StatefulSet", "DaemonSet", "CronJob") for o in each(kind, _checked)},
    )
    workloads: dict[WorkloadRef, Workload] = {}

    def pod(item: Obj) -> Pod:
        ref, workload = controllers.workload_of(item)
        result = _pod(item, ref)
        workloads.setdefault(ref, workload)  # only once the pod is known to be well-formed
        return result

    slices = each("EndpointSlice", _slice)
    endpoints: dict[tuple[str, str], list[Endpoints]] = {}
    for service_key, eps in slices:
        if service_key is not None:
            endpoints.setdefault(service_key, []).extend(eps)
    return Inventory.create(
        namespaces=each("Namespace", _namespace),
        nodes=each("Node", _node),
        pods=each("Pod", pod),
        workloads=workloads.values(),
        services=each("Service", lambda o: _service(o, endpoints)),
        missing=missing,
    )


# ----------------------------------------------------------------------------- helpers on raw objects


def _describe(kind: str, item: Obj) -> str:
    meta = item.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str):
        return f"{kind} without a name"
    return f"{kind} {namespace}/{name}" if isinstance(namespace, str) and namespace else f"{kind} {name}"


def _mapping(value: Any, what: str) -> Obj:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _MalformedError(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _MalformedError(f"{what} is not a list")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    mapping = _mapping(value, what)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise _MalformedError(f"{what} must map strings to strings")
    return dict(mapping)


def _meta(item: Obj) -> tuple[str, str, Obj]:
    """(namespace, name, metadata) of an item; namespace is "" for cluster-scoped objects."""
    meta = _mapping(item.get("metadata"), "metadata")
    name, namespace = meta.get("name"), meta.get("namespace") or ""
    if not isinstance(name, str) or not name:
        raise _MalformedError("metadata.name is missing")
    if not isinstance(namespace, str):
        raise _MalformedError("metadata.namespace is not a string")
    return namespace, name, meta


def _key(item: Obj) -> tuple[str, str, str]:
    namespace, name, _ = _meta(item)
    return str(item["kind"]), namespace, name


def _checked(item: Obj) -> Obj:
    """A controller object, checked for what owner resolution reads."""
    _meta(item)
    spec = _mapping(item.get("spec"), "spec")
    _selector(spec.get("selector"))
    _owners(item)
    return item


def _ip(value: Any, what: str) -> IPAddress:
    if not isinstance(value, str):
        raise _MalformedError(f"{what} is not a string")
    try:
        return ip_address(value)
    except ValueError:
        raise _MalformedError(f"{what} {value!r} is not an IP address") from None


def _protocol(value: Any) -> Protocol:
    if value is None:
        return Protocol.TCP
    try:
        return Protocol(value)
    except ValueError:
        raise _MalformedError(f"unknown protocol {value!r}") from None


def _port(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise _MalformedError(f"{what} {value!r} is not a port number")
    return value


def _selector(value: Any) -> LabelSelector:
    raw = _mapping(value, "selector")
    requirements = []
    for expr in _list(raw.get("matchExpressions"), "matchExpressions"):
        expr = _mapping(expr, "matchExpressions entry")
        key, operator = expr.get("key"), expr.get("operator")
        values = _list(expr.get("values"), "matchExpressions values")
        if not isinstance(key, str) or operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise _MalformedError(f"bad matchExpressions entry {dict(expr)!r}")
        if not all(isinstance(v, str) for v in values):
            raise _MalformedError("matchExpressions values must be strings")
        requirements.append(SelectorRequirement(key, operator, tuple(sorted(values))))
    requirements.sort(key=lambda r: (r.key, r.operator, r.values))
    return LabelSelector(labels_of(_str_map(raw.get("matchLabels"), "matchLabels")), tuple(requirements))


def _owners(item: Obj) -> Obj | None:
    """The controller ownerReference of an item, if any."""
    _, _, meta = _meta(item)
    for ref in _list(meta.get("ownerReferences"), "ownerReferences"):
        ref = _mapping(ref, "ownerReference")
        if ref.get("controller") is True:
            if not isinstance(ref.get("kind"), str) or not isinstance(ref.get("name"), str):
                raise _MalformedError("controller ownerReference lacks kind or name")
            return ref
    return None


def _template_labels(item: Obj) -> dict[str, str]:
    spec = _mapping(item.get("spec"), "spec")
    template = _mapping(spec.get("template"), "spec.template")
    return _str_map(_mapping(template.get("metadata"), "template metadata").get("labels"), "template labels")


# ----------------------------------------------------------------------------- owners and workloads


class _Controllers:
    """Controllers by (kind, namespace, name), to follow a pod's owners to its top-level workload."""

    def __init__(self, replicasets: dict[tuple[str, str, str], Obj], jobs: dict[tuple[str, str, str], Obj],
                 tops: dict[tuple[str, str, str], Obj]) -> None:
        self.objects = {**replicasets, **jobs, **tops}

    def workload_of(self, pod: Obj) -> tuple[WorkloadRef, Workload]:
        """The workload a pod belongs to, and its selector."""
        namespace, name, meta = _meta(pod)
        owner = _owners(pod)
        if owner is None or owner["kind"] not in _KNOWN_CONTROLLERS:
            ref = WorkloadRef(WorkloadKind.POD, namespace, name)
            labels = stable_labels(_str_map(meta.get("labels"), "labels"))
            return ref, Workload(ref, LabelSelector(labels), labels)
        kind, owner_name = str(owner["kind"]), str(owner["name"])
        controller = self.objects.get((kind, namespace, owner_name))
        if kind in ("ReplicaSet", "Job") and controller is not None:
            parent = _owners(controller)
            top_kind = {"ReplicaSet": "Deployment", "Job": "CronJob"}[kind]
            if parent is not None and parent["kind"] == top_kind:
                top = self.objects.get((top_kind, namespace, str(parent["name"])))
                ref = WorkloadRef(WorkloadKind(top_kind), namespace, str(parent["name"]))
                return ref, self._workload(ref, top, pod)
        ref = WorkloadRef(WorkloadKind(kind), namespace, owner_name)
        return ref, self._workload(ref, controller, pod)

    @staticmethod
    def _workload(ref: WorkloadRef, controller: Obj | None, pod: Obj) -> Workload:
        """Selector and labels of a workload; from the pod's labels when its controller is not in the snapshot."""
        if controller is None:
            labels = stable_labels(_str_map(_meta(pod)[2].get("labels"), "labels"))
            return Workload(ref, LabelSelector(labels), labels)
        if ref.kind is WorkloadKind.CRONJOB:
            spec = _mapping(controller.get("spec"), "spec")
            job_template = _mapping(spec.get("jobTemplate"), "spec.jobTemplate")
            job_spec = _mapping(job_template.get("spec"), "jobTemplate.spec")
            template = _mapping(job_spec.get("template"), "jobTemplate.spec.template")
            labels = stable_labels(_str_map(_mapping(template.get("metadata"), "template metadata").get("labels"),
                                            "template labels"))
            selector = job_spec.get("selector")
            if selector is not None and not _generated(_selector(selector)):
                return Workload(ref, _stable_selector(_selector(selector)), labels)
            return Workload(ref, LabelSelector(labels), labels)
        labels = stable_labels(_template_labels(controller))
        selector = _selector(_mapping(controller.get("spec"), "spec").get("selector"))
        if ref.kind is WorkloadKind.JOB and _generated(selector):
            # A Job's auto-generated selector names its uid: template labels describe the workload instead.
            return Workload(ref, LabelSelector(labels), labels)
        return Workload(ref, _stable_selector(selector), labels)


def _generated(selector: LabelSelector) -> bool:
    """Tell whether a selector uses volatile labels (e.g. a Job's ``controller-uid``)."""
    return any(k in VOLATILE_LABELS for k, _ in selector.match_labels) or any(
        r.key in VOLATILE_LABELS for r in selector.match_expressions)


def _stable_selector(selector: LabelSelector) -> LabelSelector:
    """A selector without volatile labels (a ReplicaSet's ``pod-template-hash``)."""
    return LabelSelector(
        tuple((k, v) for k, v in selector.match_labels if k not in VOLATILE_LABELS),
        tuple(r for r in selector.match_expressions if r.key not in VOLATILE_LABELS),
    )


# ----------------------------------------------------------------------------- the other kinds


def _pod(item: Obj, workload: WorkloadRef) -> Pod:
    namespace, name, meta = _meta(item)
    spec = _mapping(item.get("spec"), "spec")
    status = _mapping(item.get("status"), "status")
    ips: list[IPAddress] = []
    for entry in _list(status.get("podIPs"), "status.podIPs"):
        ip = _ip(_mapping(entry, "status.podIPs entry").get("ip"), "status.podIPs ip")
        if ip not in ips:
            ips.append(ip)
    if not ips and status.get("podIP"):
        ips.append(_ip(status.get("podIP"), "status.podIP"))
    ports: list[ContainerPort] = []
    for container in _list(spec.get("containers"), "spec.containers"):
        for port in _list(_mapping(container, "container").get("ports"), "container ports"):
            port = _mapping(port, "container port")
            port_name = port.get("name")
            ports.append(ContainerPort(_port(port.get("containerPort"), "containerPort"),
                                       _protocol(port.get("protocol")),
                                       port_name if isinstance(port_name, str) else None))
    node = spec.get("nodeName")
    phase = status.get("phase")
    return Pod(
        namespace=namespace, name=name, labels=labels_of(_str_map(meta.get("labels"), "labels")),
        ips=tuple(ips), node=node if isinstance(node, str) and node else None,
        host_network=spec.get("hostNetwork") is True, workload=workload, ports=tuple(ports),
        phase=phase if isinstance(phase, str) else "Unknown",
        created=created if isinstance(created := meta.get("creationTimestamp"), str) else "",
    )


def _cluster_ips(spec: Obj) -> tuple[IPAddress, ...]:
    raw = spec.get("clusterIPs")
    values = _list(raw, "spec.clusterIPs") if raw is not None else [spec.get("clusterIP")]
    return tuple(_ip(v, "clusterIP") for v in values if v not in (None, "", "None"))


def _service(item: Obj, endpoints: Mapping[tuple[str, str], list[Endpoints]]) -> Service:
    namespace, name, _ = _meta(item)
    spec = _mapping(item.get("spec"), "spec")
    status = _mapping(item.get("status"), "status")
    external = [_ip(v, "externalIP") for v in _list(spec.get("externalIPs"), "spec.externalIPs")]
    balancer = _mapping(status.get("loadBalancer"), "status.loadBalancer")
    for ingress in _list(balancer.get("ingress"), "status.loadBalancer.ingress"):
        ip = _mapping(ingress, "loadBalancer ingress").get("ip")
        if ip:
            external.append(_ip(ip, "loadBalancer ingress ip"))
    ports = []
    for port in _list(spec.get("ports"), "spec.ports"):
        port = _mapping(port, "service port")
        target = port.get("targetPort")
        if isinstance(target, bool) or not isinstance(target, (int, str, type(None))):
            raise _MalformedError(f"targetPort {target!r} is neither a number nor a name")
        if isinstance(target, str) and target.isdigit():
            target = int(target)
        port_name = port.get("name")
        ports.append(ServicePort(_port(port.get("port"), "port"), _protocol(port.get("protocol")), target,
                                 port_name if isinstance(port_name, str) and port_name else None))
    selector = spec.get("selector")
    type_ = spec.get("type")
    return Service(
        namespace=namespace, name=name, type=type_ if isinstance(type_, str) else "ClusterIP",
        cluster_ips=_cluster_ips(spec), external_ips=tuple(dict.fromkeys(external)), ports=tuple(ports),
        selector=labels_of(_str_map(selector, "spec.selector")) if selector is not None else None,
        endpoints=tuple(endpoints.get((namespace, name), ())),
    )


def _slice(item: Obj) -> tuple[tuple[str, str] | None, list[Endpoints]]:
    """((namespace, service name) or None, its endpoints) of one EndpointSlice."""
    namespace, _, meta = _meta(item)
    service = _str_map(meta.get("labels"), "labels").get("kubernetes.io/service-name")
    ports = []
    for port in _list(item.get("ports"), "ports"):
        port = _mapping(port, "endpoint port")
        if port.get("port") is None:
            continue  # "all ports" (a selectorless slice without ports): nothing to resolve
        port_name = port.get("name")
        ports.append(EndpointPort(_port(port.get("port"), "port"), _protocol(port.get("protocol")),
                                  port_name if isinstance(port_name, str) and port_name else None))
    ports.sort(key=lambda p: (p.name or "", p.port, p.protocol.value))
    result = []
    for endpoint in _list(item.get("endpoints"), "endpoints"):
        endpoint = _mapping(endpoint, "endpoint")
        addresses = []
        for address in _list(endpoint.get("addresses"), "endpoint addresses"):
            try:
                addresses.append(ip_address(address))
            except ValueError:
                continue  # an FQDN slice: no address to resolve to
        if not addresses:
            continue
        ref = _mapping(endpoint.get("targetRef"), "targetRef")
        pod = None
        if ref.get("kind") == "Pod" and isinstance(ref.get("name"), str):
            pod = (str(ref.get("namespace") or namespace), str(ref["name"]))
        ready = _mapping(endpoint.get("conditions"), "conditions").get("ready")
        result.append(Endpoints(tuple(addresses), tuple(ports), pod, ready is not False))
    return ((namespace, service) if service else None), result


def _node(item: Obj) -> Node:
    _, name, meta = _meta(item)
    spec = _mapping(item.get("spec"), "spec")
    status = _mapping(item.get("status"), "status")
    addresses: list[IPAddress] = []
    for address in _list(status.get("addresses"), "status.addresses"):
        address = _mapping(address, "node address")
        if address.get("type") in ("InternalIP", "ExternalIP"):
            ip = _ip(address.get("address"), f"{address.get('type')} address")
            if ip not in addresses:
                addresses.append(ip)
    cidrs: Iterable[Any] = _list(spec.get("podCIDRs"), "spec.podCIDRs") or (
        [spec["podCIDR"]] if spec.get("podCIDR") else [])
    pod_cidrs = []
    for cidr in cidrs:
        if not isinstance(cidr, str):
            raise _MalformedError("podCIDR is not a string")
        try:
            pod_cidrs.append(str(ip_network(cidr, strict=False)))
        except ValueError:
            raise _MalformedError(f"podCIDR {cidr!r} is not a network") from None
    annotations = meta.get("annotations")
    return Node(name, tuple(addresses), tuple(pod_cidrs),
                _tunnel_addresses(annotations if isinstance(annotations, Mapping) else {}))


TUNNEL_ANNOTATIONS: tuple[str, ...] = (
    "projectcalico.org/IPv4IPIPTunnelAddr",          # Calico: the tunl0 device (IP-in-IP)
    "projectcalico.org/IPv4VXLANTunnelAddr",         # Calico: vxlan.calico
    "projectcalico.org/IPv6VXLANTunnelAddr",         # Calico: vxlan-v6.calico
    "projectcalico.org/IPv4WireguardInterfaceAddr",  # Calico: wireguard.cali
    "projectcalico.org/IPv6WireguardInterfaceAddr",
    "network.cilium.io/ipv4-cilium-host",            # Cilium: the cilium_host router address
    "network.cilium.io/ipv6-cilium-host",
    "io.cilium.network.ipv4-cilium-host",            # Cilium: the same, older spelling
    "io.cilium.network.ipv6-cilium-host",
)
"""Node annotations in which a CNI announces the node's own address inside the pod network: traffic the node
sends to its pods (probes, hairpin, tunnelled node traffic) comes from it. Calico takes these from its IP pools,
outside ``spec.podCIDR``, so only the annotation tells. Flannel's device is the podCIDR's network address,
which :meth:`~kubectl_netgen.model.Node.gateways` covers."""


def _tunnel_addresses(annotations: Mapping[str, Any]) -> tuple[IPAddress, ...]:
    """The addresses in :data:`TUNNEL_ANNOTATIONS` (``IP`` or ``IP/len``).

    A value that is not an address is ignored: it is the CNI's business, not a reason to drop the node.
    """
    found: list[IPAddress] = []
    for key in TUNNEL_ANNOTATIONS:
        value = annotations.get(key)
        try:
            ip = ip_address(value.partition("/")[0].strip()) if isinstance(value, str) else None
        except ValueError:
            continue
        if ip is None:
            continue
        if ip not in found:
            found.append(ip)
    return tuple(found)


def _namespace(item: Obj) -> Namespace:
    _, name, meta = _meta(item)
    return Namespace(name, labels_of(_str_map(meta.get("labels"), "labels")))
