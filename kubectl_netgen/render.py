"""Everything kubectl-netgen prints: machine-readable results and tables for people.

JSON is written sorted and indented so the same input gives the same bytes.
Tables use rich, imported only when a table is asked for.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from kubectl_netgen.app import FlowsResult, GenerateResult, NamesResult, SnapshotResult
from kubectl_netgen.model import Flow

if TYPE_CHECKING:
    from rich.console import Console


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
    import yaml

    docs = []
    for policy in policies:
        text = yaml.safe_dump(policy, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
        if names:
            lines = []
            for line in text.splitlines():
                key, _, value = line.strip().partition(": ")
                if key == "cidr" and value in names:
                    line = f"{line}  # {', '.join(names[value])}"
                lines.append(line)
            text = "\n".join(lines) + "\n"
        docs.append(text)
    return "---\n".join(docs)


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
