"""What ``generate`` and ``neighbors`` read, and how they name what they find.

Which pod each capture belongs to, the inventory to resolve against (a snapshot file, or the live
cluster), and names for external addresses (reverse DNS).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from kubectl_netgen import flows as flowfold
from kubectl_netgen import sockets
from kubectl_netgen.app.captures import Warn, read_captures
from kubectl_netgen.app.cluster import LiveCluster, live_inventory, read_cluster, read_clusters
from kubectl_netgen.capturedir import CaptureDir, read_capture_dir, read_socket_tables, taken_at
from kubectl_netgen.errors import InputError
from kubectl_netgen.identity import PeerKind
from kubectl_netgen.model import Flow, Inventory, IPAddress, Pod, PolicyDirection, Protocol
from kubectl_netgen.observe import known_connections, listening_addresses
from kubectl_netgen.pcap import CaptureReport
from kubectl_netgen.sockets import SocketFlows, parse_table

if TYPE_CHECKING:
    from kubectl_netgen.dns import AddressResolver


@dataclass(frozen=True)
class PodCapture:
    """One capture and the pod it was taken in."""

    namespace: str
    pod: str
    path: str
    sockets: Path | None = None
    """The pod's socket tables (``sockets/<namespace>/<pod>`` of a capture directory), if recorded."""


def pod_captures(sources: Sequence[str], pods: Sequence[str], cluster: str | None) -> tuple[
        list[PodCapture], tuple[str, ...]]:
    """Which pod each capture belongs to, and the cluster snapshots to resolve them against, oldest first.

    Capture directories bring their own ``cluster.json``; several directories (runs taken at different
    times) are read as one, their snapshots ordered by :func:`~kubectl_netgen.capturedir.taken_at` and
    then by their order on the command line. ``cluster`` (``--cluster FILE``) replaces them all.

    Raises:
        InputError: No sources, a path that does not exist, directories mixed with files, ``--pod`` with
            capture directories, or not one ``--pod`` per pcap file.
    """
    if not sources:
        raise InputError("give a capture directory or pcap files (with --pod NS/NAME for each)")
    directories = capture_dirs(sources)
    if directories:
        if pods:
            raise InputError("--pod is for pcap files; a capture directory says which pod each capture is")
        captures = [PodCapture(p.namespace, p.pod, str(p.pcap), p.sockets) for d in directories for p in d.pods]
        if cluster is not None:
            return captures, (cluster,)
        by_age = sorted(enumerate(directories), key=lambda found: (taken_at(found[1]), found[0]))
        return captures, tuple(str(d.cluster) for _, d in by_age)
    if len(pods) != len(sources):
        raise InputError(f"{len(sources)} pcap file(s) but {len(pods)} --pod option(s): give one --pod NS/NAME "
                         "per file, in the same order, or a capture directory")
    out = []
    for path, pod in zip(sources, pods, strict=True):
        namespace, sep, name = pod.partition("/")
        if not sep or not namespace or not name:
            raise InputError(f"--pod {pod!r} is not NAMESPACE/NAME")
        out.append(PodCapture(namespace, name, path))
    return out, (cluster,) if cluster is not None else ()


def capture_dirs(sources: Sequence[str]) -> list[CaptureDir]:
    """The capture directories among ``sources`` (each once); none when they are pcap files (or ``-``).

    Raises:
        InputError: A path does not exist, is not a capture directory, or directories and files are mixed.
    """
    directories: dict[Path, CaptureDir] = {}
    files = []
    for source in sources:
        path = Path(source)
        try:
            is_dir = path.is_dir()
        except OSError as e:  # a parent that cannot be searched
            raise InputError(f"cannot read {source}: {e.strerror or e}; check its permissions") from e
        if is_dir:
            directories.setdefault(path.resolve(), read_capture_dir(path))
        elif source == "-" or path.exists():
            files.append(source)
        else:
            raise InputError(f"{source}: no such file or directory; give capture directories "
                             "(from 'kubectl netgen capture') or pcap files")
    if directories and files:
        raise InputError(f"{files[0]} is a file but {next(iter(directories.values())).root} is a directory: give "
                         "capture directories, or pcap files with --pod NS/NAME each, not both")
    return list(directories.values())


def inventory_for(snapshots: Sequence[str], live: LiveCluster | None, warn: Warn) -> tuple[Inventory, str]:
    """The inventory from the ``snapshots`` (files, oldest first), else from the live cluster.

    Returns the inventory and where it came from, for messages.

    Raises:
        InputError: No file and no live cluster to read, or a bad file.
        ClusterError: The live cluster cannot be read.
    """
    if len(snapshots) == 1:
        return read_cluster(snapshots[0], warn), snapshots[0]
    if snapshots:
        return read_clusters(snapshots, warn), f"the snapshots ({', '.join(snapshots)})"
    if live is None:
        raise InputError("no cluster inventory: pass --cluster FILE (from 'kubectl netgen snapshot -A > FILE')")
    return live_inventory(live, warn), "the cluster"


def captured_pod(inventory: Inventory, where: str, capture: PodCapture) -> Pod:
    """The pod a capture was taken in.

    Raises:
        InputError: The inventory does not know it.
    """
    own = inventory.pods_by_name.get((capture.namespace, capture.pod))
    if own is None:
        raise InputError(f"pod {capture.namespace}/{capture.pod} (capture {capture.path}) is not in {where}; "
                         "take the snapshot while the pod exists, or fix --pod")
    return own


def socket_flows(capture: PodCapture, warn: Warn) -> SocketFlows | None:
    """The connections and listening ports in a pod's socket tables; ``None`` when none were recorded.

    Raises:
        InputError: A table cannot be read.
    """
    if capture.sockets is None:
        return None
    rows: list[sockets.Socket] = []
    for moment, name, text in read_socket_tables(capture.sockets):
        table = parse_table(text, name)
        if table.malformed:
            warn(f"{capture.sockets / moment / name}: skipped {table.malformed} malformed line(s)")
        rows.extend(table.sockets)
    return sockets.socket_flows(rows)


def pod_flows(table: flowfold.TrafficTable, own: Pod, tables: SocketFlows | None) -> list[Flow]:
    """The flows of a pod's capture and of its socket tables (a connection in both counts once), sorted."""
    found = flowfold.flows(table, listening_addresses(own, tables), known_connections(tables))
    if tables is not None and tables.flows:
        seen = {(f.protocol, f.src, f.dst, f.dst_port) for f in found}
        found += [f for f in tables.flows if (f.protocol, f.src, f.dst, f.dst_port) not in seen]
        found.sort(key=Flow.order)
    return found


@dataclass(frozen=True)
class ReverseDns:
    """How to name external addresses that no DNS answer in the captures named: reverse (PTR) lookups."""

    enabled: bool = True
    """``--no-reverse-dns`` turns lookups off."""
    server: str | None = None
    """``--dns-server IP[:PORT]``; ``None`` uses the system's resolver configuration."""
    resolver: AddressResolver | None = None
    """An injected resolver (tests); overrides ``server``."""

    def check(self) -> None:
        """Reject a bad ``--dns-server`` whatever the captures hold (it is the user's error).

        Raises:
            InputError: The server is not ``IP[:PORT]``.
        """
        from kubectl_netgen.dns import parse_server

        if self.server is not None:
            parse_server(self.server)

    def name(self, addresses: Iterable[IPAddress], names: dict[IPAddress, list[str]],
             warn: Warn) -> dict[IPAddress, list[str]]:
        """Add PTR names for the ``addresses`` that ``names`` (the captures' DNS answers) leaves unnamed."""
        from kubectl_netgen.dns import ReverseResolver, merge_names

        unnamed = sorted({ip for ip in addresses if not names.get(ip)}, key=lambda ip: (ip.version, int(ip)))
        if not self.enabled or not unnamed:
            return names
        try:
            resolver = ReverseResolver(self.resolver, server=self.server)
        except InputError as e:
            warn(f"reverse DNS is not available ({e.message}); external addresses stay unnamed "
                 "(pass --dns-server IP or --no-reverse-dns)")
            return names
        found = resolver.lookup(unnamed)
        stats = resolver.stats
        if stats.failed or stats.timed_out or stats.abandoned:
            warn(stats.summary())  # it starts with "reverse DNS:"
        return merge_names(names, found)


def _external_peers(inventory: Inventory, decoded: list[tuple[Pod, list[Flow]]]) -> set[IPAddress]:
    """The remote addresses of the flows that resolve to external peers."""
    from kubectl_netgen.identity import Lookups, Resolver, direction_of

    lookups = Lookups(inventory)
    found: set[IPAddress] = set()
    for own, flows in decoded:
        # Whether a peer is external depends on its address alone, not its port: each distinct remote once.
        remotes: set[tuple[IPAddress, Protocol, bool]] = set()
        for flow in flows:
            direction = direction_of(own, flow)
            if direction is PolicyDirection.EGRESS:
                remotes.add((flow.dst, flow.protocol, True))
            elif direction is PolicyDirection.INGRESS:
                remotes.add((flow.src, flow.protocol, False))
        who = Resolver(inventory, own, lookups=lookups)
        for ip, protocol, services in remotes:
            found.update(peer.ip for peer in who.resolve(ip, None, protocol, services=services)
                         if peer.kind is PeerKind.EXTERNAL)
    return found


@dataclass(frozen=True)
class DecodedPods:
    """Every pod capture decoded into flows, with what is needed to resolve them."""

    inventory: Inventory
    pods: list[tuple[Pod, list[Flow]]]
    """(the captured pod, its flows) per capture, in capture order."""
    names: dict[IPAddress, list[str]]
    """Names of addresses: the captures' DNS answers, then reverse DNS for unnamed external peers."""
    reports: list[CaptureReport]
    """One report per capture."""


def decode_pods(
    sources: Sequence[str], pods: Sequence[str], cluster: str | None, *, live: LiveCluster | None = None,
    stdin: BinaryIO | None, strict: bool, warn: Warn, reverse: ReverseDns | None = None,
) -> DecodedPods:
    """Read the inventory and decode every pod capture into flows (all of them held in memory).

    Raises:
        InputError: Bad sources, no inventory, a pod the inventory does not know.
        ClusterError: The live cluster cannot be read.
        DecodeError: A damaged capture with ``strict``.
    """
    from kubectl_netgen.dns import DnsNames

    reverse = reverse or ReverseDns()
    reverse.check()
    captures, snapshots = pod_captures(sources, pods, cluster)
    inventory, where = inventory_for(snapshots, live, warn)
    names = DnsNames()
    decoded: list[tuple[Pod, list[Flow]]] = []
    reports = []
    for capture in captures:
        own = captured_pod(inventory, where, capture)
        scanner, [report] = read_captures([capture.path], stdin=stdin, strict=strict, warn=warn,
                                          dns_sink=names.feed)
        reports.append(report)
        decoded.append((own, pod_flows(scanner.table, own, socket_flows(capture, warn))))
    mapping = names.mapping()
    if reverse.enabled:
        mapping = reverse.name(_external_peers(inventory, decoded), mapping, warn)
    return DecodedPods(inventory, decoded, mapping, reports)
