"""``flows``, ``dns`` and ``snapshot``: what captures and the cluster hold."""

from __future__ import annotations

from typing import Any, TextIO

from kubectl_netgen.app import FlowsResult, NamesResult, SnapshotResult
from kubectl_netgen.model import Flow
from kubectl_netgen.render.common import _console, _size, dump_json, rfc3339
from kubectl_netgen.render.escape import cell, one_line


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
        table.add_row(*(cell(v) for v in (f.protocol.value, f.src, f.dst, port, f.connections, f.packets,
                                          _size(f.bytes), rfc3339(f.first_seen), rfc3339(f.last_seen),
                                          f.direction.value)))
    _console(out).print(table)


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
        table.add_row(cell(ip), cell(", ".join(names), limit=None))
    _console(out).print(table)


def names_summary(result: NamesResult) -> str:
    """One line for stderr: how many addresses were named."""
    messages = sum(r.dns_messages for r in result.reports)
    return (f"{len(result.names)} addresses named by {result.responses} DNS responses "
            f"({messages} DNS messages on port 53) in {len(result.reports)} capture(s)")


def snapshot_summary(result: SnapshotResult) -> str:
    """One line for stderr: what the snapshot holds, per kind."""
    scope = "all namespaces" if result.namespace is None else f'namespace "{result.namespace}"'
    counts = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in result.counts.items())
    return one_line(f"snapshot of {scope}: {counts}")
