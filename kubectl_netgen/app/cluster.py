"""The cluster inventory: a snapshot read live from the cluster, or from a file written earlier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubectl_netgen.app.captures import Warn
from kubectl_netgen.errors import InputError
from kubectl_netgen.kube.client import DEFAULT_REQUEST_TIMEOUT
from kubectl_netgen.model import Inventory

if TYPE_CHECKING:
    from kubectl_netgen.kube import Cluster


@dataclass(frozen=True)
class SnapshotResult:
    """A cluster snapshot read from the live cluster."""

    document: dict[str, Any]
    """The ``v1 List``, as ``kubectl get … -o json`` prints it."""
    namespace: str | None
    """The namespace it was restricted to; ``None`` for all namespaces."""
    counts: dict[str, int]
    """Items per kind, in snapshot order (kinds with no items included, as 0)."""


def snapshot(*, kubeconfig: str | None, context: str | None, namespace: str | None, all_namespaces: bool,
             warn: Warn, request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT) -> SnapshotResult:
    """Read the live cluster into a snapshot (the ``v1 List`` that ``--cluster FILE`` reads back).

    Args:
        kubeconfig: ``--kubeconfig``; ``None`` follows kubectl (``KUBECONFIG``, ``~/.kube/config``, in-cluster).
        context: ``--context``; ``None`` for the current context.
        namespace: ``-n``; ``None`` uses the context's namespace (``default`` if it names none).
        all_namespaces: ``-A``: read every namespace (``namespace`` must then be ``None``).
        warn: Receives one line per warning (kinds the server does not serve).
        request_timeout: ``--request-timeout``: seconds each API request may take (``None``: no limit).

    Returns:
        The snapshot and per-kind counts.

    Raises:
        InputError: ``kubeconfig`` does not exist, or both ``namespace`` and ``all_namespaces`` are given.
        ClusterError: The cluster cannot be read (ForbiddenError: RBAC; NotFoundError: no such namespace).
    """
    from kubectl_netgen import kube  # the kubernetes client is imported only when a cluster is read

    if namespace is not None and all_namespaces:
        raise InputError("-n/--namespace and -A/--all-namespaces cannot be given together")
    cluster = kube.connect(kubeconfig, context, request_timeout)
    try:
        scope = None if all_namespaces else (namespace or cluster.namespace)
        document = cluster.snapshot(scope, warn)
    finally:
        cluster.close()
    counts = {res.kind: 0 for res in kube.RESOURCES}
    for item in document["items"]:
        counts[item["kind"]] += 1
    return SnapshotResult(document, scope, counts)


def read_cluster(path: str, warn: Warn) -> Inventory:
    """Read ``--cluster FILE`` (a snapshot) into an inventory, warning about what it lacks.

    Raises:
        InputError: The file is missing, not JSON, or not a ``v1 List``.
    """
    from kubectl_netgen import inventory

    result = inventory.read_snapshot(path, warn)
    _warn_missing(result, path, warn)
    return result


def read_clusters(paths: Sequence[str], warn: Warn) -> Inventory:
    """Read several snapshots, oldest first, as one inventory.

    The newest copy of each object wins, and objects only older snapshots hold stay in (the pods of
    earlier runs of the same workloads).

    Raises:
        InputError: A file is missing, not JSON, or not a ``v1 List``.
    """
    from kubectl_netgen import inventory

    if len(paths) == 1:
        return read_cluster(paths[0], warn)
    result = inventory.load_inventory(inventory.merge_snapshots([inventory.read_document(p) for p in paths]), warn)
    _warn_missing(result, f"the {len(paths)} snapshots", warn)
    return result


def _warn_missing(result: Inventory, where: str, warn: Warn) -> None:
    for kind in result.missing:
        if kind in _MISSING_EFFECT:
            warn(f"{where}: no {kind}s in the snapshot: {_MISSING_EFFECT[kind]}")


_MISSING_EFFECT = {
    "EndpointSlice": "Service backends cannot be resolved",
    "Pod": "pod addresses cannot be resolved to workloads",
    "Service": "Service addresses cannot be resolved",
    "Node": "node addresses and pod networks are unknown",
    "Namespace": "namespace labels are unknown (namespaceSelectors use kubernetes.io/metadata.name)",
}
"""What a kind's absence from a snapshot costs. Controllers are often absent (no CronJobs) and their pods
still resolve (owners fall back to pod labels), so their absence is not worth a warning."""


@dataclass(frozen=True)
class LiveCluster:
    """Which cluster to read when no snapshot file is given: kubectl's kubeconfig rules."""

    kubeconfig: str | None = None
    """``--kubeconfig``; ``None`` follows kubectl (``KUBECONFIG``, ``~/.kube/config``, in-cluster)."""
    context: str | None = None
    """``--context``; ``None`` for the current context."""
    request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT
    """``--request-timeout``: seconds each API request may take; ``None``: no limit."""

    def connect(self) -> Cluster:
        """Connect to this cluster (:func:`kubectl_netgen.kube.connect`; no request is made yet).

        Raises:
            InputError: The kubeconfig does not exist.
            ClusterError: No usable configuration.
        """
        from kubectl_netgen import kube

        return kube.connect(self.kubeconfig, self.context, self.request_timeout)


def live_inventory(live: LiveCluster, warn: Warn) -> Inventory:
    """Read every namespace of the live cluster into an inventory (peers may live in any namespace).

    Raises:
        InputError: The kubeconfig does not exist or names no usable cluster.
        ClusterError: The cluster cannot be read (ForbiddenError names the missing RBAC permission).
    """
    from kubectl_netgen import inventory

    cluster = live.connect()
    try:
        document = cluster.snapshot(None, warn)
    finally:
        cluster.close()
    result = inventory.load_inventory(document, warn)
    _warn_missing(result, "the cluster", warn)
    return result
