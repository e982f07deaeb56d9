"""Reading a set of policy manifests: NetworkPolicies and the tiered policies, in one :class:`PolicySet`.

:func:`parse_policies` takes the documents of one or more manifests (``networking.k8s.io/v1``
NetworkPolicies, ``policy.networking.k8s.io/v1alpha1`` AdminNetworkPolicies and the
BaselineAdminNetworkPolicy, and ``List`` documents of them), reports what it does not know instead
of failing on it, and refuses the same policy twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_netgen.errors import InputError
from kubectl_netgen.evaluate.admin import (
    POLICY_V1ALPHA1,
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    parse_admin,
    parse_baseline,
)
from kubectl_netgen.evaluate.fields import Field
from kubectl_netgen.evaluate.policies import NETWORKING_V1, NetworkPolicy, Parts, parse_network_policy


@dataclass(frozen=True)
class PolicySet:
    """Every policy the engine evaluates, as read from manifests."""

    network: tuple[NetworkPolicy, ...] = ()
    admin: tuple[AdminNetworkPolicy, ...] = ()
    baseline: BaselineAdminNetworkPolicy | None = None
    skipped: tuple[str, ...] = ()
    """Documents that are not policies the engine knows (``apiVersion kind namespace/name``), to warn about."""


def parse_policies(documents: Iterable[Mapping[str, Any] | None], namespace: str = "default") -> PolicySet:
    """Read policy manifests into a :class:`PolicySet`.

    Args:
        documents: Manifests as loaded from YAML/JSON; ``List`` documents are unpacked, ``None``
            (an empty YAML document) is ignored, and other kinds are listed in ``skipped``.
        namespace: The namespace of a NetworkPolicy without ``metadata.namespace`` (as ``kubectl
            apply -n`` would place it).

    Returns:
        The policies, NetworkPolicies sorted by namespace and name, AdminNetworkPolicies by priority
        and name (the order in which they are evaluated).

    Raises:
        InputError: A policy is malformed (the message names the policy and the field), or defined twice.
    """
    network: dict[tuple[str, str], NetworkPolicy] = {}
    admins: dict[str, AdminNetworkPolicy] = {}
    baselines: list[BaselineAdminNetworkPolicy] = []
    skipped: list[str] = []
    parts = Parts()
    for doc in _unpacked(documents):
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if (api_version, kind) == (NETWORKING_V1, "NetworkPolicy"):
            policy = parse_network_policy(doc, namespace, parts)
            if (policy.namespace, policy.name) in network:
                raise InputError(f"NetworkPolicy {policy.key}: defined twice")
            network[policy.namespace, policy.name] = policy
        elif (api_version, kind) == (POLICY_V1ALPHA1, "AdminNetworkPolicy"):
            anp = parse_admin(doc)
            if anp.name in admins:
                raise InputError(f"AdminNetworkPolicy {anp.name}: defined twice")
            admins[anp.name] = anp
        elif (api_version, kind) == (POLICY_V1ALPHA1, "BaselineAdminNetworkPolicy"):
            baselines.append(parse_baseline(doc))
            if len(baselines) > 1:
                raise InputError("BaselineAdminNetworkPolicy default: defined twice")
        else:
            skipped.append(_describe(doc))
    return PolicySet(
        network=tuple(network[k] for k in sorted(network)),
        admin=tuple(sorted(admins.values(), key=lambda a: (a.priority, a.name))),
        baseline=baselines[0] if baselines else None,
        skipped=tuple(skipped),
    )


def _unpacked(documents: Iterable[Mapping[str, Any] | None]) -> Iterable[Mapping[str, Any]]:
    for n, doc in enumerate(documents):
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise InputError(f"document {n + 1} is not an object but {type(doc).__name__}")
        kind = doc.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
            items = Field(f"{kind} (document {n + 1})", "items", doc.get("items")).items() or []
            yield from _unpacked(item.value for item in items)
        else:
            yield doc


def _describe(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name = "/".join(str(meta[k]) for k in ("namespace", "name") if meta.get(k))
    return " ".join(str(p) for p in (doc.get("apiVersion") or "(no apiVersion)", doc.get("kind") or "(no kind)", name)
                    if p)


