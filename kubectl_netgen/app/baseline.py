"""``baseline``: the namespaces to baseline (given, or listed from the cluster) and their policies.

The policies come from the pure :mod:`kubectl_netgen.baseline`; this module picks the namespaces, reading
the cluster only when they are not given (``-A``, ``-l``), and only its namespaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_netgen.app.cluster import LiveCluster
from kubectl_netgen.baseline import KUBE_DNS, baseline_policies, kyverno_policy, selected_namespaces
from kubectl_netgen.synth import Mode


@dataclass(frozen=True)
class BaselineOptions:
    """What the baseline of each namespace holds (the same for the Kyverno policy)."""

    mode: Mode = Mode.BOTH
    """Which directions the default deny covers."""
    dns_rule: bool = True
    """Allow DNS to the cluster DNS pods when egress is denied."""
    deny_metadata: bool = False
    """Keep pods off the cloud metadata service."""
    allow_same_namespace: bool = False
    """Allow traffic between the pods of a namespace."""


@dataclass(frozen=True)
class BaselineResult:
    """The baseline of the chosen namespaces."""

    policies: list[dict[str, Any]]
    """NetworkPolicy manifests, sorted by namespace and name."""
    namespaces: list[str]
    """The namespaces baselined, sorted."""
    left_out: list[str]
    """Namespaces listed from the cluster but left out (kube-system, the DNS namespace, ``--exclude``), sorted."""


def baseline(*, namespace: str | None, selector: str | None, live: LiveCluster, exclude: Sequence[str],
             options: BaselineOptions) -> BaselineResult:
    """The baseline policies of one namespace (``namespace``: no cluster access), or of the cluster's namespaces.

    Args:
        namespace: ``-n``: baseline this namespace only.
        selector: ``-l``: the namespaces matching this label selector; ``None`` (with no ``namespace``)
            for every namespace (``-A``).
        live: The cluster to list namespaces from when ``namespace`` is not given.
        exclude: Namespaces (or ``*``/``?`` patterns) to leave out of a listing.
        options: What each baseline holds.

    Raises:
        InputError: The namespace is not a name, or is kube-system or the DNS namespace.
        ClusterError: The namespaces cannot be listed (ForbiddenError names ``list`` on ``namespaces``).
    """
    dns = KUBE_DNS if options.dns_rule else None
    if namespace is not None:
        chosen, left_out = [namespace], []
    else:
        from kubectl_netgen import kube

        cluster = live.connect()
        try:
            names = kube.list_namespaces(cluster, selector)
        finally:
            cluster.close()
        chosen = selected_namespaces(names, exclude, KUBE_DNS)
        left_out = sorted(set(names) - set(chosen))
    policies = baseline_policies(chosen, mode=options.mode, dns=dns, deny_metadata=options.deny_metadata,
                                 allow_same_namespace=options.allow_same_namespace)
    return BaselineResult(policies, chosen, left_out)


def baseline_kyverno(*, exclude: Sequence[str], options: BaselineOptions) -> dict[str, Any]:
    """The Kyverno ClusterPolicy that puts the same baseline into every namespace (no cluster access).

    Raises:
        InputError: An exclusion is not a namespace name or pattern.
    """
    return kyverno_policy(mode=options.mode, dns=KUBE_DNS if options.dns_rule else None,
                          deny_metadata=options.deny_metadata, allow_same_namespace=options.allow_same_namespace,
                          exclude=exclude)
