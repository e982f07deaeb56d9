"""Everything kubectl-netgen prints: machine-readable results and tables for people.

JSON is written sorted and indented so the same input gives the same bytes.
Tables use rich, imported only when a table is asked for.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from kubectl_netgen.app import (
    FlowsResult,
    GenerateResult,
    NamesResult,
    Neighbor,
    NeighborsResult,
    SnapshotResult,
)
from kubectl_netgen.model import Flow

if TYPE_CHECKING:
    from rich.console import Console

    from kubectl_netgen.app.capture import CaptureResult, PodProgress
    from kubectl_netgen.app.verify import Judged, VerifyResult
    from kubectl_netgen.evaluate import PolicyPeer as EvaluatedPeer
    from kubectl_netgen.evaluate import PolicySet
    from kubectl_netgen.evaluate import Rule as EvaluatedRule
    from kubectl_netgen.model import LabelSelector


def rfc3339(ns: int) -> str | None:
    """Nanoseconds since the epoch -> RFC 3339 UTC (``…Z``), microseconds unless finer; ``None`` for 0."""
    if ns <= 0:
        return None
    seconds, rest = divmod(ns, 1_000_000_000)
    try:
        stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return None  # beyond what RFC 3339 can say (the decoder already counts such times as invalid)
    fraction = f"{rest:09d}" if rest % 1000 else f"{rest // 1000:06d}"
    return f"{stamp}.{fraction}Z"


def flow_record(flow: Flow) -> dict[str, Any]:
    """One flow as the JSON object ``flows -o json`` prints."""
    return {
        "protocol": flow.protocol.value,
        "src": str(flow.src),
        "dst": str(flow.dst),
        "dst_port": flow.dst_port,
        "kind": flow.kind,
        "connections": flow.connections,
        "packets": flow.packets,
        "bytes": flow.bytes,
        "first_seen": rfc3339(flow.first_seen),
        "last_seen": rfc3339(flow.last_seen),
        "direction": flow.direction.value,
    }


def dump_json(data: Any) -> str:
    """The one JSON writer: two-space indent, a final newline, non-ASCII kept."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def flows_json(result: FlowsResult) -> str:
    """The ``flows -o json`` document: an array of flow objects."""
    return dump_json([flow_record(f) for f in result.flows])


def flows_table(result: FlowsResult, out: TextIO) -> None:
    """Print flows as a table for people."""
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column, justify in (("PROTO", "left"), ("CLIENT", "left"), ("SERVER", "left"), ("PORT", "right"),
                            ("CONNS", "right"), ("PACKETS", "right"), ("BYTES", "right"),
                            ("FIRST SEEN", "left"), ("LAST SEEN", "left"), ("DIRECTION", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for f in result.flows:
        port = str(f.dst_port) if f.dst_port is not None else f.kind
        table.add_row(f.protocol.value, str(f.src), str(f.dst), port, str(f.connections), str(f.packets),
                      _size(f.bytes), rfc3339(f.first_seen) or "-", rfc3339(f.last_seen) or "-",
                      f.direction.value)
    _console(out).print(table)


def _console(out: TextIO) -> Console:
    """A rich console on ``out``; wide enough off a real terminal that rows never wrap."""
    from rich.console import Console

    isatty = getattr(out, "isatty", None)
    return Console(file=out, highlight=False, width=None if isatty and isatty() else 250)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def flows_summary(result: FlowsResult) -> str:
    """One line for stderr: how much was read and found."""
    packets = sum(r.packets for r in result.reports)
    guessed = sum(1 for f in result.flows if f.direction.value == "guess")
    return (f"{len(result.flows)} flows ({guessed} with a guessed direction) from {packets} packets "
            f"in {len(result.reports)} capture(s)")


def names_json(result: NamesResult) -> str:
    """The ``dns -o json`` document: ``{IP: [names]}``."""
    return dump_json({str(ip): names for ip, names in result.names.items()})


def names_table(result: NamesResult, out: TextIO) -> None:
    """Print address -> names as a table for people."""
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ADDRESS")
    table.add_column("NAMES")
    for ip, names in result.names.items():
        table.add_row(str(ip), ", ".join(names))
    _console(out).print(table)


def names_summary(result: NamesResult) -> str:
    """One line for stderr: how many addresses were named."""
    messages = sum(r.dns_messages for r in result.reports)
    return (f"{len(result.names)} addresses named by {result.responses} DNS responses "
            f"({messages} DNS messages on port 53) in {len(result.reports)} capture(s)")


def policies_yaml(policies: list[dict[str, Any]], names: dict[str, list[str]] | None = None) -> str:
    """Manifests as multi-document YAML (``---`` between documents), names commented beside ipBlocks.

    Args:
        policies: NetworkPolicy manifests, already in their final order.
        names: CIDR -> names to show as a comment on each ``cidr:`` line.

    Returns:
        The YAML text, ending in a newline (empty string for no policies).
    """
    writer = _SpecWriter(names or {})
    return "---\n".join(writer.policy(policy) for policy in policies)


@functools.cache
def _dumper() -> Any:
    import yaml

    class Dumper(yaml.SafeDumper):
        """``safe_dump``'s dumper, without anchors and aliases: manifests may share parts (see synth)."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return Dumper


def _safe_dump(data: Any) -> str:
    import yaml

    return yaml.dump(data, Dumper=_dumper(), sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=120)


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
"""Strings PyYAML may write unquoted and never folds (no spaces) nor turns into complex keys (short)."""


@functools.lru_cache(maxsize=65536)
def _plain(text: str) -> bool:
    """Whether PyYAML writes ``text`` as a plain scalar (not ``true``, ``1.0``, ``null``, … which it quotes)."""
    return _PLAIN.fullmatch(text) is not None and _safe_dump(text) == f"{text}\n...\n"


class _NotPlainError(Exception):
    """A value the fast writer does not handle: the policy is written by PyYAML instead."""


def _scalar(value: Any) -> str:
    if isinstance(value, str) and _plain(value):
        return value
    if type(value) is int:
        return str(value)
    raise _NotPlainError


_SHARED_ITEMS = frozenset({"from", "to"})
_SHARED_LISTS = frozenset({"ports"})
"""Keys whose items (peers) or whole lists (ports) synthesis shares between rules: each is written once."""


class _SpecWriter:
    """Writes NetworkPolicies as PyYAML's ``safe_dump`` does, byte for byte, without PyYAML for the ``spec``.

    PyYAML's pure-Python emitter costs ~100 µs per rule, which dominated ``generate`` on large captures.
    A ``spec`` holds only mappings, lists, label-like strings and numbers, so it is written directly;
    everything else (and any value the direct writer cannot prove it writes alike) goes to PyYAML. The
    peers and port lists that synthesis shares between rules (the same objects) are written once.
    """

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.written: dict[tuple[int, int], tuple[Any, str]] = {}
        """(indent, id) -> (the object, its text); holding the object keeps its id from being reused."""

    def policy(self, policy: dict[str, Any]) -> str:
        """One manifest, names commented beside its ``cidr:`` lines."""
        spec = policy.get("spec")
        if list(policy)[-1:] == ["spec"] and isinstance(spec, dict) and spec:
            out = [_safe_dump({k: v for k, v in policy.items() if k != "spec"}) if len(policy) > 1 else "", "spec:\n"]
            try:
                self._block(spec, 2, out)
                return "".join(out)
            except _NotPlainError:
                pass
        return self._commented(_safe_dump(policy))

    def _commented(self, text: str) -> str:
        if not self.names or "cidr: " not in text:
            return text
        lines = []
        for line in text.splitlines():
            key, _, value = line.strip().partition(": ")
            if key == "cidr" and value in self.names:
                line = f"{line}  # {', '.join(self.names[value])}"
            lines.append(line)
        return "\n".join(lines) + "\n"

    def _block(self, value: Any, indent: int, out: list[str], first: str | None = None) -> None:
        """Write a non-empty mapping or list in PyYAML's block style (2-space indent, indentless sequences).

        ``first`` is the prefix of the first line (a sequence item's ``- ``), else it starts on a new line.
        """
        pad = " " * indent
        if isinstance(value, dict):
            for key, item in value.items():
                head = f"{first if first is not None else pad}{_scalar(key)}:"
                first = None
                if isinstance(item, (dict, list)):
                    if not item:
                        out.append(f"{head} {'{}' if isinstance(item, dict) else '[]'}\n")
                        continue
                    out.append(f"{head}\n")
                    if key in _SHARED_LISTS and isinstance(item, list):
                        out.append(self._shared(item, indent))
                    elif key in _SHARED_ITEMS and isinstance(item, list):
                        out.extend(self._shared([peer], indent) for peer in item)
                    else:
                        self._block(item, indent + 2 if isinstance(item, dict) else indent, out)
                elif key == "cidr" and item in self.names:
                    out.append(f"{head} {_scalar(item)}  # {', '.join(self.names[item])}\n")
                else:
                    out.append(f"{head} {_scalar(item)}\n")
            return
        for item in value:
            dash = f"{first if first is not None else pad}- "
            first = None
            if isinstance(item, dict) and item:
                self._block(item, indent + 2, out, dash)
            elif isinstance(item, (dict, list)):
                raise _NotPlainError  # nested or empty sequences: rare, left to PyYAML
            else:
                out.append(f"{dash}{_scalar(item)}\n")

    def _shared(self, items: list[Any], indent: int) -> str:
        """The text of a list written at ``indent``; lists of one shared item are keyed by that item."""
        obj = items[0] if len(items) == 1 and isinstance(items[0], dict) else items
        key = (indent, id(obj))
        found = self.written.get(key)
        if found is None or found[0] is not obj:
            part: list[str] = []
            self._block(items, indent, part)
            found = self.written[key] = (obj, "".join(part))
        return found[1]


def policies_json(policies: list[dict[str, Any]]) -> str:
    """Manifests as one JSON ``v1 List`` (what ``kubectl apply -f -`` also takes)."""
    return dump_json({"apiVersion": "v1", "kind": "List", "items": policies})


def snapshot_summary(result: SnapshotResult) -> str:
    """One line for stderr: what the snapshot holds, per kind."""
    scope = "all namespaces" if result.namespace is None else f'namespace "{result.namespace}"'
    counts = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in result.counts.items())
    return f"snapshot of {scope}: {counts}"


def generate_summary(result: GenerateResult) -> str:
    """One line for stderr: what ``generate`` read and wrote."""
    packets = sum(r.packets for r in result.reports)
    return (f"{len(result.policies)} NetworkPolicies for {result.workloads} workload(s) from {result.flows} flows "
            f"({result.ignored} need no rule) and {packets} packets in {len(result.reports)} capture(s)")


def neighbor_record(n: Neighbor) -> dict[str, Any]:
    """One neighbour as the JSON object ``neighbors -o json`` prints in ``egress``/``ingress``."""
    return {
        "peer": {
            "kind": n.kind.value,
            "namespace": None if n.workload is None else n.workload.namespace,
            "workload": None if n.workload is None else {"kind": n.workload.kind.value, "name": n.workload.name},
            "service": None if n.service is None else "/".join(n.service),
            "ip": None if n.ip is None else str(n.ip),
            "node": n.node,
            "names": list(n.names),
        },
        "protocol": n.protocol.value,
        "port": n.port,
        "service_port": n.service_port,
        "connections": n.connections,
        "packets": n.packets,
        "bytes": n.bytes,
    }


def neighbors_json(result: NeighborsResult) -> str:
    """The ``neighbors -o json`` document: an array of workloads with their egress and ingress peers."""
    return dump_json([
        {
            "workload": {"namespace": w.workload.namespace, "kind": w.workload.kind.value, "name": w.workload.name},
            "pods": w.pods,
            "egress": [neighbor_record(n) for n in w.egress],
            "ingress": [neighbor_record(n) for n in w.ingress],
        }
        for w in result.workloads
    ])


def _neighbor_peer(n: Neighbor) -> str:
    """The PEER cell: the workload, else the node, else the address; its names; the Service it came through."""
    if n.workload is not None:
        text = f"{n.workload.namespace}/{n.workload.name} ({n.workload.kind.value})"
        if n.ip is not None:
            text = f"{text} on {f'node {n.node}' if n.node else n.ip}"
    elif n.node is not None:
        text = f"node {n.node}"
    else:
        text = str(n.ip)
    if n.names:
        text = f"{text} {', '.join(n.names)}"
    if n.service is not None:
        port = "" if n.service_port is None else f":{n.service_port}"
        text = f"{text} via Service {'/'.join(n.service)}{port}"
    return text


def neighbors_table(result: NeighborsResult, out: TextIO) -> None:
    """Print one table per captured workload: its egress peers, then its ingress peers."""
    from rich.table import Table
    from rich.text import Text

    console = _console(out)
    for i, w in enumerate(result.workloads):
        if i:
            console.print()
        ref = w.workload
        console.print(Text(f"{ref.namespace}/{ref.name} ({ref.kind.value}), pods: {', '.join(w.pods)}", style="bold"))
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column, justify in (("DIRECTION", "left"), ("PEER", "left"), ("KIND", "left"), ("PROTO", "left"),
                                ("PORT", "right"), ("CONNS", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for n in [*w.egress, *w.ingress]:
            table.add_row(n.direction.value, Text(_neighbor_peer(n)), n.kind.value, n.protocol.value,
                          "-" if n.port is None else str(n.port), str(n.connections))
        console.print(table)


def neighbors_summary(result: NeighborsResult) -> str:
    """One line for stderr: what ``neighbors`` read and found."""
    packets = sum(r.packets for r in result.reports)
    egress = sum(len(w.egress) for w in result.workloads)
    ingress = sum(len(w.ingress) for w in result.workloads)
    return (f"{len(result.workloads)} workload(s): {egress} egress and {ingress} ingress neighbours from "
            f"{result.flows} flows and {packets} packets in {len(result.reports)} capture(s)")


# ----------------------------------------------------------------------------------------------- verify


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
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("VERDICT", "SOURCE", "DESTINATION", "PROTO", "PORT", "VIA", "REASON"):
        table.add_column(column, overflow="fold")
    for j in result.flows:
        allowed = j.verdict.allowed
        table.add_row(Text("allowed" if allowed else "DENIED", style="green" if allowed else "bold red"),
                      Text(_endpoint_text(j.src, j.src_ip)), Text(_endpoint_text(j.dst, j.dst_ip)), j.protocol.value,
                      "-" if j.port is None else str(j.port), Text(j.service or ""), Text(j.verdict.reason))
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
    from rich.text import Text

    console = _console(out)
    gap = result.exposure or []
    if not gap:
        console.print("exposure: the policies allow nothing between workloads beyond what was observed")
        return
    counts: dict[tuple[str, str], int] = {}
    for e in gap:
        key = (f"{e.workload.namespace}/{e.workload.name}", e.direction.value)
        counts[key] = counts.get(key, 0) + 1
    console.print(Text(f"exposure: {len(gap)} allowed but never observed "
                       f"({', '.join(f'{w} {d}: {n}' for (w, d), n in counts.items())})", style="bold"))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("WORKLOAD", "DIRECTION", "PEER", "PROTO", "PORT"):
        table.add_column(column)
    for e in gap:
        table.add_row(f"{e.workload.namespace}/{e.workload.name}", e.direction.value,
                      f"{e.peer.namespace}/{e.peer.name}", e.protocol.value, str(e.port))
    console.print(table)


def exposure_json(result: VerifyResult) -> str:
    """``--what-if`` exposure as a JSON array (for stderr-free scripting, with ``--exposure-json``)."""
    return dump_json([{"workload": f"{e.workload.namespace}/{e.workload.name}", "direction": e.direction.value,
                       "peer": f"{e.peer.namespace}/{e.peer.name}", "protocol": e.protocol.value, "port": e.port}
                      for e in result.exposure or []])


# ---------------------------------------------------------------------------------------------- explain


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
    """Each NetworkPolicy in plain words: whom it selects, who may reach them and whom they may reach."""
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
    return "\n".join(lines).rstrip("\n") + "\n" if lines else ""


# ----------------------------------------------------------------------------- capture progress and summary


def _pod_line(p: PodProgress) -> str:
    counts = f"{p.packets} packets, {_size(p.bytes)}" if p.packets or p.bytes else ""
    detail = " - ".join(x for x in (counts, p.detail) if x)
    return f"{p.namespace}/{p.pod}: {p.state.value}" + (f" ({detail})" if detail else "")


class CaptureDisplay:
    """Shows each pod's capture on stderr: a live table on a terminal, else one line per state change.

    Implements :class:`kubectl_netgen.app.CaptureProgress`; use it as a context manager.
    """

    def __init__(self, out: TextIO, live: bool) -> None:
        """Write to ``out``; ``live``: redraw a rich table in place (``out`` is a terminal)."""
        self.out, self.live = out, live
        self._pods: dict[tuple[str, str], PodProgress] = {}
        self._last_state: dict[tuple[str, str], Any] = {}
        self._live: Any = None

    def __enter__(self) -> CaptureDisplay:
        """Start the live table, if any."""
        if self.live:
            from rich.live import Live

            self._live = Live(self._table(), console=_console(self.out), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        """Draw the final table and stop."""
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, progress: PodProgress) -> None:
        """A pod's state or counts changed."""
        key = (progress.namespace, progress.pod)
        self._pods[key] = progress
        if self._live is not None:
            self._live.update(self._table())
        elif self._last_state.get(key) != (progress.state, progress.detail) and progress.state.value not in (
                "pending",):
            if not (progress.state.value == "capturing" and self._last_state.get(key, (None,))[0] == progress.state):
                self.out.write(_pod_line(progress) + "\n")
                self.out.flush()
            self._last_state[key] = (progress.state, progress.detail)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("POD", "STATE", "PACKETS", "BYTES", "DETAIL"):
            table.add_column(column, justify="right" if column in ("PACKETS", "BYTES") else "left")
        colors = {"done": "green", "failed": "red", "interrupted": "yellow", "capturing": "cyan"}
        for (ns, pod), p in sorted(self._pods.items()):
            state = p.state.value
            table.add_row(f"{ns}/{pod}", f"[{colors.get(state, 'white')}]{state}[/]", str(p.packets), _size(p.bytes),
                          p.detail)
        return table


def capture_failures(result: CaptureResult) -> list[str]:
    """One line per pod that was not captured completely: the pod and why."""
    lines = []
    for p in result.pods:
        if not p.ok:
            lines.append(f"{p.namespace}/{p.pod}: {p.state.value}: {p.reason or '; '.join(p.problems)}")
    return lines


def capture_summary(result: CaptureResult) -> str:
    """One line: how many pods were captured, how many packets, where."""
    packets = sum(p.packets for p in result.pods)
    size = sum(p.bytes for p in result.pods)
    head = "interrupted: " if result.interrupted else ""
    return (f"{head}captured {result.succeeded} of {len(result.pods)} pod(s), {packets} packets "
            f"({_size(size)}) into {result.directory}")
