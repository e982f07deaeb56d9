"""``verify`` and ``explain``: verdicts per flow, exposure, and policies in plain words."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from kubectl_netgen.render.common import _console, dump_json
from kubectl_netgen.render.escape import cell, one_line

if TYPE_CHECKING:
    from kubectl_netgen.app.verify import Judged, VerifyResult
    from kubectl_netgen.evaluate import PolicyPeer as EvaluatedPeer
    from kubectl_netgen.evaluate import PolicySet
    from kubectl_netgen.evaluate import Rule as EvaluatedRule
    from kubectl_netgen.model import LabelSelector


def _endpoint_text(pod: str | None, ip: Any) -> str:
    return f"{pod} ({ip})" if pod is not None else str(ip)


def judged_record(j: Judged) -> dict[str, Any]:
    """One flow as ``verify -o json`` prints it."""
    v = j.verdict
    return {
        "src_ip": str(j.src_ip),
        "dst_ip": str(j.dst_ip),
        "src": j.src,
        "dst": j.dst,
        "protocol": j.protocol.value,
        "port": j.port,
        "service": j.service,
        "connections": j.connections,
        "verdict": "allowed" if v.allowed else "denied",
        "reason": v.reason,
        "egress": None if v.egress is None else {"allowed": v.egress.allowed, "isolated": v.egress.isolated,
                                                  "decided_by": [str(r) for r in v.egress.decided_by]},
        "ingress": None if v.ingress is None else {"allowed": v.ingress.allowed, "isolated": v.ingress.isolated,
                                                    "decided_by": [str(r) for r in v.ingress.decided_by]},
    }


def verify_json(result: VerifyResult) -> str:
    """The ``verify -o json`` document: an array of flows with their verdicts."""
    return dump_json([judged_record(j) for j in result.flows])


def verify_table(result: VerifyResult, out: TextIO) -> None:
    """Every flow with its verdict and the deciding policy rule, denied ones first."""
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("VERDICT", "SOURCE", "DESTINATION", "PROTO", "PORT", "VIA", "REASON"):
        table.add_column(column, overflow="fold")
    for j in result.flows:
        allowed = j.verdict.allowed
        table.add_row(cell("allowed" if allowed else "DENIED", "green" if allowed else "bold red"),
                      cell(_endpoint_text(j.src, j.src_ip)), cell(_endpoint_text(j.dst, j.dst_ip)),
                      cell(j.protocol.value), cell(j.port), cell(j.service or ""), cell(j.verdict.reason, limit=None))
    _console(out).print(table)


def verify_summary(result: VerifyResult) -> str:
    """One line for stderr: how many flows the policies allow and deny."""
    denied = len(result.denied)
    policies = len(result.policies.network) + len(result.policies.admin) + (result.policies.baseline is not None)
    return (f"{len(result.flows) - denied} flow(s) allowed, {denied} would be denied, by {policies} "
            f"polic{'y' if policies == 1 else 'ies'} ({result.decoded} flows in {len(result.reports)} capture(s))")


def exposure_report(result: VerifyResult, out: TextIO) -> None:
    """``--what-if``: per workload, how much the policies allow that was never observed, then the list."""
    from rich.table import Table

    console = _console(out)
    gap = result.exposure or []
    if not gap:
        console.print("exposure: the policies allow nothing between workloads beyond what was observed")
        return
    counts: dict[tuple[str, str], int] = {}
    for e in gap:
        key = (f"{e.workload.namespace}/{e.workload.name}", e.direction.value)
        counts[key] = counts.get(key, 0) + 1
    console.print(cell(f"exposure: {len(gap)} allowed but never observed "
                       f"({', '.join(f'{w} {d}: {n}' for (w, d), n in counts.items())})", "bold", limit=None))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("WORKLOAD", "DIRECTION", "PEER", "PROTO", "PORT"):
        table.add_column(column)
    for e in gap:
        table.add_row(cell(f"{e.workload.namespace}/{e.workload.name}"), cell(e.direction.value),
                      cell(f"{e.peer.namespace}/{e.peer.name}"), cell(e.protocol.value), cell(e.port))
    console.print(table)


def _selector_words(selector: LabelSelector | None, everything: str) -> str:
    if selector is None or (not selector.match_labels and not selector.match_expressions):
        return everything
    words = [f"{k}={v}" for k, v in selector.match_labels]
    for r in selector.match_expressions:
        values = ", ".join(r.values)
        words.append({"In": f"{r.key} in ({values})", "NotIn": f"{r.key} not in ({values})",
                      "Exists": f"{r.key} set", "DoesNotExist": f"{r.key} not set"}.get(r.operator, r.key))
    return " and ".join(words)


def _peer_words(peer: EvaluatedPeer, namespace: str) -> str:
    if peer.ip_block is not None:
        text = f"addresses in {peer.ip_block.cidr}"
        if peer.ip_block.except_:
            text += f" except {', '.join(str(c) for c in peer.ip_block.except_)}"
        return text
    pods = _selector_words(peer.pod_selector, "all pods")
    pods = pods if pods == "all pods" else f"pods with {pods}"
    selector = peer.namespace_selector
    if selector is None:
        return f"{pods} in namespace {namespace}"
    named = dict(selector.match_labels).get("kubernetes.io/metadata.name")
    if named is not None and len(selector.match_labels) == 1 and not selector.match_expressions:
        return f"{pods} in namespace {named}"
    words = _selector_words(selector, "")
    return f"{pods} in {f'namespaces with {words}' if words else 'every namespace'}"


def _ports_words(rule: EvaluatedRule) -> str:
    if rule.ports is None:
        return "on every port"
    parts = []
    for spec in rule.ports:
        protocol = spec.protocol.value if spec.protocol is not None else ""
        if spec.port is None:
            parts.append(f"every {protocol} port".replace("every  port", "every port"))
        elif spec.end_port is not None:
            parts.append(f"{protocol} {spec.port}-{spec.end_port}")
        else:
            parts.append(f"{protocol} {spec.port}".strip())
    return "on " + ", ".join(parts)


def explain_text(policies: PolicySet) -> str:
    """Each NetworkPolicy in plain words: whom it selects, who may reach them and whom they may reach.

    Names and labels come from the policies read, so each line is escaped to one printable line.
    """
    from kubectl_netgen.model import PolicyDirection

    lines: list[str] = []
    for policy in policies.network:
        selected = _selector_words(policy.pod_selector, "every pod")
        lines.append(f"{policy.key} applies to {'' if selected == 'every pod' else 'pods with '}{selected} "
                     f"in {policy.namespace}.")
        for direction, verb, side in ((PolicyDirection.INGRESS, "Ingress", "from"),
                                      (PolicyDirection.EGRESS, "Egress", "to")):
            if direction not in policy.policy_types:
                lines.append(f"  {verb}: not restricted by this policy.")
                continue
            rules = policy.rules(direction)
            if not rules:
                lines.append(f"  {verb}: nothing is allowed (unless another policy allows it).")
                continue
            lines.append(f"  {verb}: allowed")
            for rule in rules:
                peers = ("anyone" if rule.peers is None
                         else " or ".join(_peer_words(p, policy.namespace) for p in rule.peers))
                lines.append(f"    - {side} {peers} {_ports_words(rule)}")
        lines.append("")
    for admin in policies.admin:
        lines.append(f"AdminNetworkPolicy {admin.name} (priority {admin.priority}) is evaluated before "
                     "NetworkPolicies and is not explained in detail here.")
    if policies.baseline is not None:
        lines.append("BaselineAdminNetworkPolicy default applies where no NetworkPolicy isolates a pod.")
    return "\n".join(map(one_line, lines)).rstrip("\n") + "\n" if lines else ""
