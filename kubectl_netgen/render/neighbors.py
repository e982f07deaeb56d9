"""``neighbors``: who each captured workload talks to, as JSON or tables."""

from __future__ import annotations

from typing import Any, TextIO

from kubectl_netgen.app import Neighbor, NeighborsResult
from kubectl_netgen.render.common import _console, dump_json, rfc3339
from kubectl_netgen.render.escape import cell


def neighbor_record(n: Neighbor) -> dict[str, Any]:
    """One neighbour as the JSON object ``neighbors -o json`` prints in ``egress``/``ingress``.

    ``first_seen``/``last_seen`` are RFC 3339 UTC over the neighbour's flows, ``null`` when unknown.
    """
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
        "first_seen": rfc3339(n.first_seen),
        "last_seen": rfc3339(n.last_seen),
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

    console = _console(out)
    for i, w in enumerate(result.workloads):
        if i:
            console.print()
        ref = w.workload
        console.print(cell(f"{ref.namespace}/{ref.name} ({ref.kind.value}), pods: {', '.join(w.pods)}", "bold",
                           limit=None))
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column, justify in (("DIRECTION", "left"), ("PEER", "left"), ("KIND", "left"), ("PROTO", "left"),
                                ("PORT", "right"), ("CONNS", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for n in [*w.egress, *w.ingress]:
            table.add_row(cell(n.direction.value), cell(_neighbor_peer(n)), cell(n.kind.value), cell(n.protocol.value),
                          cell(n.port), cell(n.connections))
        console.print(table)


def neighbors_summary(result: NeighborsResult) -> str:
    """One line for stderr: what ``neighbors`` read and found."""
    packets = sum(r.packets for r in result.reports)
    egress = sum(len(w.egress) for w in result.workloads)
    ingress = sum(len(w.ingress) for w in result.workloads)
    return (f"{len(result.workloads)} workload(s): {egress} egress and {ingress} ingress neighbours from "
            f"{result.flows} flows and {packets} packets in {len(result.reports)} capture(s)")
