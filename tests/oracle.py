"""An independent judge of generated NetworkPolicies: network-config-analyzer against hand-written tables.

The scenario tests in ``tests/cli/test_generate_scenarios.py`` judge ``generate``'s output with
``kubectl_netgen.evaluate``, the same engine ``generate`` runs as its self-check, so a mistake shared by the
two passes both. This module asks a third party instead: `network-config-analyzer
<https://github.com/IBM/network-config-analyzer>`_ (``nca``, IBM's NetworkPolicy analyser) computes the
connectivity map of the policies over the snapshot's pods and namespaces, and :func:`expect_connectivity`
holds it against a table a person wrote: which (source, destination, protocol, port) must be allowed and
which denied. Nothing here imports ``kubectl_netgen``.

nca applies the NetworkPolicy rules themselves: a connection is allowed when the source pod's egress
policies and the destination pod's ingress policies both allow it, an unselected side is open, and an
``ipBlock`` matches addresses outside the pods (pods are matched by selectors). So in a table a pod is named
``namespace/name`` and anything else (a node, an external host, an address no pod has) by its address.
hostNetwork pods are left out of nca's pod list: to a policy they are their node's address.

nca runs as ``python3 -m nca`` in a subprocess (about a second each), so its state never leaks between
tests, and its text output (``txt_no_fw_rules``, one ``src => dst : connections`` line per pair) is parsed
strictly: anything it does not recognise fails the test rather than being read as "allowed" or "denied".
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import need

NCA_TIMEOUT = 60.0
"""Seconds one nca run may take (it takes about one)."""

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Row:
    """One line of an expected-connectivity table."""

    src: str
    """``namespace/pod`` or an IP address."""
    dst: str
    """``namespace/pod`` or an IP address."""
    protocol: str
    """``TCP``, ``UDP`` or ``SCTP``."""
    port: int
    """The destination port (after a Service's DNAT: the port the packet reaches the pod on)."""
    allowed: bool
    why: str = ""
    """What the row stands for, printed when it fails."""

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "denied"
        note = f"  ({self.why})" if self.why else ""
        return f"{self.src} -> {self.dst} {self.protocol}/{self.port} must be {verdict}{note}"


def allow(src: str, dst: str, protocol: str, port: int, why: str = "") -> Row:
    """A row that must be allowed."""
    return Row(src, dst, protocol, port, True, why)


def deny(src: str, dst: str, protocol: str, port: int, why: str = "") -> Row:
    """A row that must be denied."""
    return Row(src, dst, protocol, port, False, why)


# ----------------------------------------------------------------------------- nca's connection sets

_PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True)
class Connections:
    """A set of (protocol, destination port) as nca prints it, e.g. ``{protocols:TCP,dst_ports:80,8000-8002}``.

    ``cubes`` holds (protocols, port ranges or ``None`` for every port); ``negated`` is nca's ``All but …``.
    """

    cubes: tuple[tuple[frozenset[str], tuple[tuple[int, int], ...] | None], ...]
    everything: bool = False
    negated: bool = False

    def __contains__(self, item: tuple[str, int]) -> bool:
        protocol, port = item
        if self.everything:
            return True
        hit = any(protocol in protocols and (ports is None or any(lo <= port <= hi for lo, hi in ports))
                  for protocols, ports in self.cubes)
        return hit != self.negated


def _ports(text: str) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        ranges.append((int(lo), int(hi or lo)))
    return tuple(ranges)


def parse_connections(text: str) -> Connections:
    """Read nca's text for a connection set.

    Raises:
        ValueError: A form this reader does not know (so a test fails instead of guessing).
    """
    text = text.strip()
    if text == "All connections":
        return Connections((), everything=True)
    if text == "No connections":
        return Connections(())
    negated = text.startswith("All but ")
    if negated:
        text = text[len("All but "):]
    cubes = []
    for body in re.findall(r"\{([^{}]*)\}", text):
        items = dict(item.split(":", 1) for item in re.split(r",(?=[a-z_]+:)", body))
        if not set(items) <= {"protocols", "dst_ports"}:
            raise ValueError(f"nca connection dimension(s) this oracle does not read: {sorted(items)} in {text!r}")
        protocols = frozenset(p.strip() for p in items["protocols"].split(","))
        if not protocols <= set(_PROTOCOLS):
            raise ValueError(f"nca protocols this oracle does not read: {sorted(protocols)} in {text!r}")
        cubes.append((protocols, _ports(items["dst_ports"]) if "dst_ports" in items else None))
    if not cubes or re.sub(r"\{[^{}]*\}|,", "", text):
        raise ValueError(f"unreadable nca connection set: {text!r}")
    return Connections(tuple(cubes), negated=negated)


# ----------------------------------------------------------------------------- nca's endpoints

@dataclass(frozen=True)
class Endpoint:
    """One side of an nca line: a pod (``namespace/name``) or IP ranges (``a-b,c,d-e``)."""

    pod: str | None
    ranges: tuple[tuple[Address, Address], ...] = ()

    def matches(self, name: str) -> bool:
        if self.pod is not None:
            return self.pod == name
        if "/" in name:
            return False
        address = ipaddress.ip_address(name)
        return any(lo.version == address.version and lo <= address <= hi for lo, hi in self.ranges)


def _endpoint(text: str) -> Endpoint:
    ranges = []
    try:
        for part in text.split(","):
            if "/" in part:
                net = ipaddress.ip_network(part, strict=False)
                ranges.append((net[0], net[-1]))
            else:
                lo, _, hi = part.partition("-")
                ranges.append((ipaddress.ip_address(lo), ipaddress.ip_address(hi or lo)))
    except ValueError:
        if text.count("/") != 1:
            raise ValueError(f"unreadable nca endpoint: {text!r}") from None
        return Endpoint(text)
    return Endpoint(None, tuple(ranges))


_LINE = re.compile(r"^(\S+) => (\S+) : (.+)$")


@dataclass(frozen=True)
class ConnectivityMap:
    """nca's answer: every (source, destination, connections) with some connection allowed."""

    lines: tuple[tuple[Endpoint, Endpoint, Connections, str], ...]
    text: str

    def allowed(self, src: str, dst: str, protocol: str, port: int) -> bool:
        return any(s.matches(src) and d.matches(dst) and (protocol, port) in conns
                   for s, d, conns, _ in self.lines)

    def between(self, src: str, dst: str) -> list[str]:
        """nca's lines about ``src`` -> ``dst``, for failure messages."""
        return [line for s, d, _, line in self.lines if s.matches(src) and d.matches(dst)]


def parse_map(text: str) -> ConnectivityMap:
    """Read nca's ``txt_no_fw_rules`` output (other lines, such as its summary, are skipped)."""
    lines = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            lines.append((_endpoint(match[1]), _endpoint(match[2]), parse_connections(match[3]), line))
    return ConnectivityMap(tuple(lines), text)


# ----------------------------------------------------------------------------- running nca

def nca_available() -> bool:
    return importlib.util.find_spec("nca") is not None


def _dump(path: Path, documents: Iterable[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": list(documents)}, sort_keys=False))


def connectivity(policies: Sequence[dict[str, Any]], cluster_items: Sequence[dict[str, Any]]) -> ConnectivityMap:
    """nca's connectivity map of ``policies`` over the Pods and Namespaces among ``cluster_items``."""
    need(nca_available(), "needs network-config-analyzer (pip install -e '.[test]')")
    pods = [i for i in cluster_items if i.get("kind") == "Pod" and not i.get("spec", {}).get("hostNetwork")]
    namespaces = [i for i in cluster_items if i.get("kind") == "Namespace"]
    assert pods and namespaces, "the cluster needs pods and namespaces for nca"
    with tempfile.TemporaryDirectory(prefix="netgen-nca-") as tmp:
        root = Path(tmp)
        _dump(root / "policies.yaml", policies)
        _dump(root / "pods.yaml", pods)
        _dump(root / "namespaces.yaml", namespaces)
        done = subprocess.run(
            [sys.executable, "-m", "nca", "--connectivity", str(root / "policies.yaml"),
             "--pod_list", str(root / "pods.yaml"), "--ns_list", str(root / "namespaces.yaml"),
             "--output_format", "txt_no_fw_rules", "--output_endpoints", "pods", "--print_ipv6"],
            capture_output=True, text=True, timeout=NCA_TIMEOUT, check=False)
    # nca exits 0 when it computed the map; on a policy it cannot read it says "Error: …" and exits non-zero.
    assert done.returncode == 0 and "Error" not in done.stderr, (
        f"nca failed (exit {done.returncode}):\n{done.stderr}\n{done.stdout}")
    found = parse_map(done.stdout)
    assert found.lines, f"nca printed no connectivity:\n{done.stdout}\n{done.stderr}"
    return found


def expect_connectivity(policies: Sequence[dict[str, Any]] | str, cluster_items: Sequence[dict[str, Any]],
                        table: Sequence[Row]) -> ConnectivityMap:
    """Judge ``policies`` with nca and assert every row of ``table``: allowed rows allowed, denied rows denied.

    Args:
        policies: NetworkPolicy documents, or the YAML text ``generate`` printed.
        cluster_items: The snapshot's items (its Pods and Namespaces are what nca needs).
        table: The expected connectivity, written by hand.

    Returns:
        nca's connectivity map, for further questions.
    """
    if isinstance(policies, str):
        policies = [d for d in yaml.safe_load_all(policies) if d]
    assert table, "an empty table checks nothing"
    pods = {f"{i['metadata']['namespace']}/{i['metadata']['name']}": i for i in cluster_items if i.get("kind") == "Pod"}
    pod_ips = {ip["ip"]: key for key, i in pods.items() if not i["spec"].get("hostNetwork")
               for ip in i.get("status", {}).get("podIPs", [])}
    for row in table:
        for side in (row.src, row.dst):
            if "/" in side:
                assert side in pods, f"{row}: no pod {side} in the cluster"
                assert not pods[side]["spec"].get("hostNetwork"), f"{row}: name hostNetwork pod {side} by address"
            else:
                ipaddress.ip_address(side)
                assert side not in pod_ips, f"{row}: {side} is pod {pod_ips[side]}: name it so"
    found = connectivity(list(policies), cluster_items)
    wrong = []
    for row in table:
        if found.allowed(row.src, row.dst, row.protocol, row.port) != row.allowed:
            lines = found.between(row.src, row.dst) or ["(nothing)"]
            verdict = "denied" if row.allowed else "allowed"
            wrong.append(f"  {row.src} -> {row.dst} {row.protocol}/{row.port} must be "
                         f"{'allowed' if row.allowed else 'denied'}, but nca says {verdict}"
                         + (f" ({row.why})" if row.why else "") + f"; nca allows {row.src} -> {row.dst}: "
                         + "; ".join(line.rsplit(" : ", 1)[-1] for line in lines))
    policies_text = yaml.safe_dump_all(list(policies), sort_keys=False)
    assert not wrong, (f"{len(wrong)} of {len(table)} rows disagree with nca:\n" + "\n".join(wrong)
                       + f"\n\nthe policies:\n{policies_text}\nnca's map:\n{found.text}")
    return found
