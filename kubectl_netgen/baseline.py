"""A safe starting point for namespaces without traffic: default deny, DNS, and optional guards.

Pure: options in, manifests (plain dicts) out. Per namespace, :func:`baseline_policies` writes:

* ``netgen-default-deny``: selects every pod and isolates it for the chosen directions, allowing nothing;
* ``netgen-allow-dns``: when egress is denied, egress to the cluster DNS pods on UDP and TCP 53;
* ``netgen-allow-same-namespace`` (optional): traffic between pods of the namespace, in the denied directions;
* ``netgen-deny-metadata`` (optional): egress anywhere but the cloud metadata service, see below.

NetworkPolicies only ever add what is allowed, so a "deny" guard has to be written as "allow
everything except". How ``deny_metadata`` combines with the default deny:

* when egress is denied (``Mode.BOTH``, ``Mode.EGRESS``), nothing allows the metadata addresses in the
  first place (the DNS rule names pods, not addresses), so the guard is already in force and no policy
  is written: an allow-all-but-metadata policy would undo the egress default deny;
* when only ingress is denied (``Mode.INGRESS``), ``netgen-deny-metadata`` isolates every pod for egress
  and allows egress to every pod in the cluster and to every address except ``169.254.169.254/32`` and
  ``fd00:ec2::254/128``: the one thing it takes away is the metadata service.

:func:`kyverno_policy` puts the same policies into a Kyverno ``ClusterPolicy`` whose generate rules
create them in every existing and future namespace but ``kube-system`` and the exclusions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from kubectl_netgen.errors import InputError
from kubectl_netgen.model import LabelSelector
from kubectl_netgen.synth import DNS_PORTS, MANAGED_BY, NAMESPACE_NAME_LABEL, Mode, PolicyPeer, selector_manifest

KUBE_DNS = PolicyPeer("kube-system", LabelSelector((("k8s-app", "kube-dns"),)))
"""The cluster DNS pods where kubeadm, kind, k3s, EKS, GKE and AKS put them (CoreDNS keeps the label)."""
ALWAYS_EXCLUDED = ("kube-system",)
"""Never baselined: a default deny there cuts the cluster off from DNS and the control-plane add-ons."""
METADATA_BLOCKS = (("0.0.0.0/0", "169.254.169.254/32"), ("::/0", "fd00:ec2::254/128"))
"""(everything, except the metadata service) for IPv4 and IPv6 (AWS's IPv6 metadata address)."""
DEFAULT_DENY = "netgen-default-deny"
ALLOW_DNS = "netgen-allow-dns"
ALLOW_SAME_NAMESPACE = "netgen-allow-same-namespace"
DENY_METADATA = "netgen-deny-metadata"
KYVERNO_POLICY_NAME = "netgen-baseline"
NAMESPACE_VARIABLE = "{{request.object.metadata.name}}"
"""Kyverno's variable for the name of the Namespace that triggered a generate rule."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAMESPACE_PATTERN = re.compile(r"^[-a-z0-9*?]+$")


def selected_namespaces(names: Sequence[str], exclude: Sequence[str] = (), dns: PolicyPeer | None = KUBE_DNS
                        ) -> list[str]:
    """The namespaces to baseline out of ``names`` (e.g. every namespace, for ``-A``), sorted.

    ``kube-system``, the DNS namespace and the names in ``exclude`` are left out; exclusions may use the
    wildcards ``*`` and ``?``, as in the Kyverno policy.
    """
    skip = {*ALWAYS_EXCLUDED, *((dns.namespace,) if dns is not None and dns.namespace else ()), *exclude}
    return sorted({n for n in names if not any(fnmatchcase(n, pattern) for pattern in skip)})


def baseline_policies(
    namespaces: Sequence[str],
    *,
    mode: Mode = Mode.BOTH,
    dns: PolicyPeer | None = KUBE_DNS,
    deny_metadata: bool = False,
    allow_same_namespace: bool = False,
) -> list[dict[str, Any]]:
    """The baseline NetworkPolicies of each namespace (see the module docstring).

    Args:
        namespaces: Where to put them; duplicates are ignored.
        mode: Which directions the default deny covers.
        dns: The cluster DNS pods (namespace and selector), allowed on UDP and TCP 53 when egress is
            denied; ``None`` for no DNS rule.
        deny_metadata: Keep pods off the cloud metadata service (a policy only with ``Mode.INGRESS``,
            as the egress default deny already does it).
        allow_same_namespace: Allow traffic between the pods of a namespace in the denied directions.

    Returns:
        NetworkPolicy manifests, sorted by namespace and name.

    Raises:
        InputError: A namespace is not a valid name, or is ``kube-system`` or the DNS namespace (a default
            deny there breaks DNS for the whole cluster).
    """
    protected = {*ALWAYS_EXCLUDED, *((dns.namespace,) if dns is not None and dns.namespace else ())}
    policies = []
    for namespace in sorted(set(namespaces)):
        if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
            raise InputError(f"{namespace!r} is not a namespace name (a DNS-1123 label)")
        if namespace in protected:
            raise InputError(f"will not baseline namespace {namespace}: a default deny there cuts every pod off "
                             "from cluster DNS; leave it out (or --exclude it)")
        for name, spec in _specs(mode, dns, deny_metadata, allow_same_namespace):
            policies.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                             "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
                             "spec": spec})
    return policies


def _specs(mode: Mode, dns: PolicyPeer | None, deny_metadata: bool,
           allow_same_namespace: bool) -> list[tuple[str, dict[str, Any]]]:
    """(name, spec) of each baseline policy, sorted by name; the same for every namespace."""
    ingress = mode in (Mode.BOTH, Mode.INGRESS)
    egress = mode in (Mode.BOTH, Mode.EGRESS)
    types = [t for t, on in (("Ingress", ingress), ("Egress", egress)) if on]
    specs: list[tuple[str, dict[str, Any]]] = [(DEFAULT_DENY, {"podSelector": {}, "policyTypes": list(types)})]
    if egress and dns is not None:
        # Always with a namespaceSelector, even in the DNS namespace itself: the spec is the same in every
        # namespace, which the Kyverno generate rule needs.
        peer = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: dns.namespace}},
                "podSelector": selector_manifest(dns.selector)}
        specs.append((ALLOW_DNS, {
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [peer], "ports": [{"protocol": p.value, "port": n} for p, n in DNS_PORTS]}],
        }))
    if allow_same_namespace:
        spec: dict[str, Any] = {"podSelector": {}, "policyTypes": list(types)}
        if ingress:
            spec["ingress"] = [{"from": [{"podSelector": {}}]}]
        if egress:
            spec["egress"] = [{"to": [{"podSelector": {}}]}]
        specs.append((ALLOW_SAME_NAMESPACE, spec))
    if deny_metadata and not egress:
        # ipBlocks match pod addresses in most implementations but not in all: every pod is named as well.
        peers: list[dict[str, Any]] = [{"namespaceSelector": {}}]
        peers += [{"ipBlock": {"cidr": cidr, "except": [hole]}} for cidr, hole in METADATA_BLOCKS]
        specs.append((DENY_METADATA, {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": peers}]}))
    return sorted(specs)


def kyverno_policy(
    *,
    mode: Mode = Mode.BOTH,
    dns: PolicyPeer | None = KUBE_DNS,
    deny_metadata: bool = False,
    allow_same_namespace: bool = False,
    exclude: Sequence[str] = (),
    name: str = KYVERNO_POLICY_NAME,
) -> dict[str, Any]:
    """A Kyverno ``ClusterPolicy`` (``kyverno.io/v1``) that creates the baseline in every namespace.

    One generate rule per baseline policy (a rule generates one resource), triggered by Namespaces,
    with ``generateExisting: true`` (existing namespaces get it too) and ``synchronize: true`` (Kyverno
    puts back a generated policy that was changed or deleted, and removes it with the policy). The
    generated NetworkPolicies are those of :func:`baseline_policies` for the same options. Kyverno's
    background controller needs RBAC to manage NetworkPolicies (a ClusterRole carrying the label
    ``rbac.kyverno.io/aggregate-to-background-controller: "true"``); the policy does not grant it.

    Args:
        mode: Which directions the default deny covers.
        dns: The cluster DNS pods; ``None`` for no DNS rule.
        deny_metadata: See :func:`baseline_policies`.
        allow_same_namespace: See :func:`baseline_policies`.
        exclude: Namespaces left alone besides ``kube-system`` and the DNS namespace (Kyverno wildcards
            ``*`` and ``?`` allowed).
        name: The ClusterPolicy's name.

    Returns:
        The ClusterPolicy manifest.

    Raises:
        InputError: An exclusion is not a namespace name or pattern.
    """
    for pattern in exclude:
        if len(pattern) > 63 or not _NAMESPACE_PATTERN.match(pattern):
            raise InputError(f"--exclude {pattern!r} is not a namespace name (or a pattern with * and ?)")
    skipped = sorted({*ALWAYS_EXCLUDED, *((dns.namespace,) if dns is not None and dns.namespace else ()), *exclude})
    rules = []
    for policy, spec in _specs(mode, dns, deny_metadata, allow_same_namespace):
        rules.append({
            "name": f"generate-{policy}",
            "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
            "exclude": {"any": [{"resources": {"names": list(skipped)}}]},
            "generate": {
                "generateExisting": True,
                "synchronize": True,
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "name": policy,
                "namespace": NAMESPACE_VARIABLE,
                "data": {"metadata": {"labels": dict(MANAGED_BY)}, "spec": spec},
            },
        })
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": name,
            "labels": dict(MANAGED_BY),
            "annotations": {
                "policies.kyverno.io/title": "NetworkPolicy baseline for every namespace",
                "policies.kyverno.io/subject": "NetworkPolicy",
                "policies.kyverno.io/description": (
                    "Generated by kubectl-netgen baseline: in every namespace but "
                    f"{', '.join(skipped)}, " + _summary(mode, dns, deny_metadata, allow_same_namespace) + "."),
            },
        },
        "spec": {"rules": rules},
    }


def _summary(mode: Mode, dns: PolicyPeer | None, deny_metadata: bool, allow_same_namespace: bool) -> str:
    egress = mode in (Mode.BOTH, Mode.EGRESS)
    parts = [f"deny all {'ingress and egress' if mode is Mode.BOTH else mode.value}"]
    if egress and dns is not None:
        parts.append(f"allow DNS to {dns.namespace} pods")
    if allow_same_namespace:
        parts.append("allow traffic within the namespace")
    if deny_metadata:
        parts.append("keep pods off the cloud metadata service")
    return ", ".join(parts)
