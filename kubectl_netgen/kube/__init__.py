"""The live cluster through the official ``kubernetes`` client: the only package that imports it.

:func:`connect` finds the cluster as kubectl does (``--kubeconfig``, else ``KUBECONFIG``, else
``~/.kube/config``, else the in-cluster service account). :mod:`.client` reads it (the snapshot kinds
into the same ``v1 List`` that ``kubectl get … -o json`` prints, the applied policies), :mod:`.pods`
does what a capture needs (ephemeral containers, log streams), :mod:`.objects` writes (apply, delete).

``kubernetes`` costs about a second to import, so it is imported inside the functions that use it; the
CLI's ``--help`` never pays for it. Client exceptions become :class:`~kubectl_netgen.errors.ClusterError`
and its subclasses, with server payloads cut short and RBAC refusals naming the permission to grant.
"""

from kubectl_netgen.kube.client import POLICY_RESOURCES, RESOURCES, Cluster, Resource, connect, snapshot
from kubectl_netgen.kube.objects import apply_object, delete_object, list_managed, list_namespaces
from kubectl_netgen.kube.pods import (
    LogStream,
    add_ephemeral_container,
    follow_log,
    get_object,
    list_objects,
    read_pod,
)

__all__ = [
    "POLICY_RESOURCES", "RESOURCES", "Cluster", "LogStream", "Resource", "add_ephemeral_container", "apply_object",
    "connect", "delete_object", "follow_log", "get_object", "list_managed", "list_namespaces", "list_objects",
    "read_pod", "snapshot",
]
