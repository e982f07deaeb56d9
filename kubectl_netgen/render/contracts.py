"""``contracts`` and ``baseline``: manifests other than NetworkPolicies, kubectl-style change lines, summaries."""

from __future__ import annotations

from typing import Any

from kubectl_netgen.app import BaselineResult, Change, ContractsPlan, DryRun
from kubectl_netgen.render.escape import one_line
from kubectl_netgen.render.policies import policies_yaml


def manifests_yaml(manifests: list[dict[str, Any]]) -> str:
    """Any manifests (policies, pods, a Kyverno ClusterPolicy) as multi-document YAML, ``---`` between them."""
    import yaml

    if all(m.get("kind") == "NetworkPolicy" for m in manifests):
        return policies_yaml(manifests)
    return "---\n".join(yaml.safe_dump(m, sort_keys=False) for m in manifests)


_DRY_RUN_NOTE = {DryRun.NONE: "", DryRun.SERVER: " (server dry run)", DryRun.CLIENT: " (dry run)"}


def change_line(change: Change) -> str:
    """One line as kubectl prints it: ``networkpolicy.networking.k8s.io/netgen-group-web created (server dry run)``."""
    return one_line(f"{change.resource}/{change.name} {change.action}{_DRY_RUN_NOTE[change.dry_run]}")


def contracts_summary(plan: ContractsPlan, test_pods: bool) -> str:
    """One line for stderr: what the contracts document gave."""
    groups, namespaces = len(plan.contracts.groups), len(plan.contracts.namespaces)
    what = (f"{len(plan.test_pods)} test pods" if test_pods else f"{len(plan.policies)} NetworkPolicies")
    return (f"{what} for {groups} group(s) and {len(plan.contracts.contracts)} contract(s) "
            f"in {namespaces} namespace(s)")


def cleanup_summary(changes: list[Change], namespaces: tuple[str, ...]) -> str:
    """One line for stderr after ``--cleanup``."""
    where = one_line(", ".join(namespaces))
    if not changes:
        return f"nothing of netgen contracts to delete in {where}"
    return f"{len(changes)} object(s) deleted in {where}{_DRY_RUN_NOTE[changes[0].dry_run]}"


def baseline_summary(result: BaselineResult) -> str:
    """One line for stderr: how many policies for which namespaces."""
    if not result.namespaces:
        return "no namespace to baseline"
    return f"{len(result.policies)} NetworkPolicies for {len(result.namespaces)} namespace(s)"


def left_out_note(result: BaselineResult) -> str | None:
    """One line for stderr naming the namespaces a listing left out, or ``None``."""
    if not result.left_out:
        return None
    return (f"left out: {one_line(', '.join(result.left_out))} (kube-system and the cluster DNS namespace are never "
            "baselined, others by --exclude)")
