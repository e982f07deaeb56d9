"""``contracts``: group contracts read from a file, turned into policies, applied, tested and cleaned up.

The policies come from the pure :mod:`kubectl_netgen.contracts`; this module reads the document, writes
the test pods, and talks to the cluster through :mod:`kubectl_netgen.kube` (imported only when a cluster
is used). Everything netgen creates carries ``app.kubernetes.io/managed-by=kubectl-netgen`` and a name
with a netgen prefix (``netgen-group-``, ``netgen-test-``), which is what :func:`cleanup` deletes.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from kubectl_netgen.app.captures import Warn
from kubectl_netgen.app.cluster import LiveCluster
from kubectl_netgen.contracts import POLICY_PREFIX, ContractSet, contract_policies, parse_contracts
from kubectl_netgen.errors import InputError
from kubectl_netgen.synth import MANAGED_BY

TEST_POD_PREFIX = "netgen-test-"
TEST_POD_UNGROUPED = f"{TEST_POD_PREFIX}ungrouped"
"""The test pod in no group: every contract policy should keep it out."""
TEST_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.52"
"""Kubernetes' own e2e test image: ``pause`` idles, ``connect HOST:PORT`` probes (REFUSED: allowed, TIMEOUT: denied)."""
MANAGED_SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())


class DryRun(str, enum.Enum):
    """``--dry-run``: where a change stops."""

    NONE = "none"
    """Change the cluster."""
    SERVER = "server"
    """Send every write with ``dryRun=All``: the API server checks and admits it, and persists nothing."""
    CLIENT = "client"
    """Send no write at all (``apply`` and ``create`` send no request; ``cleanup`` only lists)."""


@dataclass(frozen=True)
class Change:
    """One object written (or that would be) in the cluster."""

    resource: str
    """``networkpolicy.networking.k8s.io`` or ``pod``, as kubectl names it in its output."""
    namespace: str
    name: str
    action: str
    """``created``, ``configured``, ``unchanged`` or ``deleted`` (``applied`` with a client dry run)."""
    dry_run: DryRun = DryRun.NONE


@dataclass(frozen=True)
class ContractsPlan:
    """What a contracts document asks for."""

    contracts: ContractSet
    policies: list[dict[str, Any]]
    """NetworkPolicy manifests, sorted by namespace and name."""
    test_pods: list[dict[str, Any]]
    """One pod per group and namespace, labelled into its group, and one ungrouped pod per namespace."""


def read_contracts(source: str, *, label_key: str, symmetric: bool, stdin: BinaryIO | None,
                   warn: Warn) -> ContractsPlan:
    """Read a contracts document (a YAML or JSON file, or ``-`` for stdin) into policies and test pods.

    Warnings (source ports and established flags, which NetworkPolicy cannot honour) go to ``warn``.

    Raises:
        InputError: The file is missing or unreadable, is not one YAML/JSON mapping, or the document is
            malformed (the message names the file and the contract or field).
    """
    from kubectl_netgen import manifests

    documents = manifests.read([source], stdin)
    name = "stdin" if source == "-" else source
    if len(documents) != 1:
        raise InputError(f"{name}: expected one contracts document (namespaces, contracts, expose), "
                         f"found {len(documents)}")
    try:
        contracts = parse_contracts(documents[0])
        policies = contract_policies(contracts, label_key=label_key, symmetric=symmetric)
    except InputError as e:
        raise InputError(f"{name}: {e.message}") from e
    for line in contracts.warnings:
        warn(f"{name}: {line}")
    return ContractsPlan(contracts, policies, test_pods(contracts, label_key))


def test_pods(contracts: ContractSet, label_key: str) -> list[dict[str, Any]]:
    """One idle pod per group and namespace carrying the group label, and one without it per namespace.

    From inside them, ``kubectl exec netgen-test-web -- /agnhost connect --timeout=3s ADDRESS:PORT`` tells
    whether the policies let a connection through (``REFUSED``: it reached the pod) or not (``TIMEOUT``).

    Raises:
        InputError: A group's test pod would have the ungrouped pod's name.
    """
    pods = []
    for namespace in contracts.namespaces:
        for group in contracts.groups:
            name = f"{TEST_POD_PREFIX}{group.lower()}"
            if name == TEST_POD_UNGROUPED:
                raise InputError(f"group {group!r}: its test pod would be named like the ungrouped one "
                                 f"({TEST_POD_UNGROUPED}); rename the group")
            pods.append(_pod(namespace, name, {label_key: group}))
        pods.append(_pod(namespace, TEST_POD_UNGROUPED, {}))
    pods.sort(key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    return pods


def _pod(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    # Admitted under Pod Security "restricted": netgen should not need a laxer namespace than its users.
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {**MANAGED_BY, **labels}},
        "spec": {
            "containers": [{
                "name": "agnhost", "image": TEST_IMAGE, "args": ["pause"],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "terminationGracePeriodSeconds": 0,
        },
    }


def _resource(obj: dict[str, Any]) -> str:
    return "pod" if obj["kind"] == "Pod" else "networkpolicy.networking.k8s.io"


def apply_manifests(objects: Sequence[dict[str, Any]], *, live: LiveCluster, dry_run: DryRun) -> list[Change]:
    """Create the objects in the cluster, or bring existing ones up to date, in order.

    With ``DryRun.CLIENT`` no request is made (each object is reported ``applied``).

    Raises:
        InputError: The kubeconfig does not exist.
        ClusterError: A write failed (ForbiddenError names the verb and resource to grant); the objects
            before it were written.
    """
    if dry_run is DryRun.CLIENT:
        return [Change(_resource(o), o["metadata"]["namespace"], o["metadata"]["name"], "applied", dry_run)
                for o in objects]
    from kubectl_netgen import kube

    cluster = live.connect()
    try:
        return [Change(_resource(o), o["metadata"]["namespace"], o["metadata"]["name"],
                       kube.apply_object(cluster, o, dry_run is DryRun.SERVER), dry_run) for o in objects]
    finally:
        cluster.close()


def cleanup_contracts(namespaces: Sequence[str], *, live: LiveCluster, dry_run: DryRun) -> list[Change]:
    """Delete what ``contracts`` created in these namespaces: its policies and its test pods.

    That is every NetworkPolicy named ``netgen-group-*`` and every pod named ``netgen-test-*`` that carries
    ``app.kubernetes.io/managed-by=kubectl-netgen`` (a group since removed from the document included);
    other netgen policies (``generate``, ``baseline``) are left alone. ``DryRun.CLIENT`` lists them and
    deletes nothing.

    Raises:
        InputError: The kubeconfig does not exist.
        ClusterError: A list or delete failed (ForbiddenError names the verb and resource to grant).
    """
    from kubectl_netgen import kube

    cluster = live.connect()
    changes = []
    try:
        for namespace in sorted(set(namespaces)):
            for kind, prefix in (("NetworkPolicy", POLICY_PREFIX), ("Pod", TEST_POD_PREFIX)):
                found = kube.list_managed(cluster, kind, namespace, MANAGED_SELECTOR)
                for obj in sorted(found, key=lambda o: str(o["metadata"]["name"])):
                    if not str(obj["metadata"]["name"]).startswith(prefix):
                        continue
                    if dry_run is not DryRun.CLIENT and not kube.delete_object(cluster, obj,
                                                                                dry_run is DryRun.SERVER):
                        continue  # gone meanwhile
                    changes.append(Change(_resource(obj), namespace, obj["metadata"]["name"], "deleted", dry_run))
    finally:
        cluster.close()
    return changes
