"""Group-based policy: provider/consumer contracts between labelled groups of pods -> NetworkPolicies.

Pure: a contracts document (as loaded from YAML or JSON) in, ``networking.k8s.io/v1`` NetworkPolicy
manifests (plain dicts) out. Network teams think in groups and contracts (Cisco ACI EPGs), not in pod
selectors; this module translates one into the other:

* a pod joins group ``web`` by carrying the label ``mms_network_tag=web`` (the key is configurable);
* a contract names the groups that *provide* a service, the groups that *consume* it, and its ports;
* ``expose`` opens a group to address blocks (an ``ipBlock`` with ``except``) on given ports.

The document::

    namespaces: [mms]
    networks: [web, db]            # optional: when given, every group named below must be in it
    contracts:
      web-to-db: {provide_networks: [db], consume_networks: [web], ports: [{protocol: TCP, port: "3306"}]}
    expose:
      - {network: web, cidr: 0.0.0.0/0, except: [], ports: [{protocol: TCP, port: "80"}]}

A port is a number (``"3306"`` or ``3306``), a range (``"8000-8010"``, written as ``port``/``endPort``) or
absent (every port of the protocol). Without a ``networks`` list the contracts declare the groups, and an
``expose`` naming a group no contract mentions is taken for a typo.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from kubectl_netgen.errors import InputError
from kubectl_netgen.model import Protocol
from kubectl_netgen.synth import MANAGED_BY, NAMESPACE_NAME_LABEL

DEFAULT_LABEL_KEY = "mms_network_tag"
POLICY_PREFIX = "netgen-group-"
CONTRACTS_ANNOTATION = "netgen.io/contracts"
"""On each policy: the contracts (comma-separated) that gave it rules, for people reading it in the cluster."""

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PROTOCOLS = {p.value.upper(): p for p in (Protocol.TCP, Protocol.UDP, Protocol.SCTP)}
_CONTRACT_KEYS = {"provide_networks", "consume_networks", "ports", "description"}
_EXPOSE_KEYS = {"network", "cidr", "except", "ports", "description"}
_PORT_KEYS = {"protocol", "port", "endPort", "end_port"}
_SOURCE_PORT_KEYS = {"source_port", "source_ports", "src_port", "sport", "sourcePort"}
_ESTABLISHED_KEYS = {"established", "stateful", "tcp_established"}

Network = IPv4Network | IPv6Network


@dataclass(frozen=True)
class ContractPort:
    """Destination ports of one protocol: one port, a range, or all of them."""

    protocol: Protocol
    port: int | None = None
    """The first (or only) port; ``None`` for every port of the protocol."""
    end_port: int | None = None
    """The last port of a range (``endPort``), else ``None``."""

    def manifest(self) -> dict[str, Any]:
        """The port as it stands in a NetworkPolicy rule."""
        out: dict[str, Any] = {"protocol": self.protocol.value}
        if self.port is not None:
            out["port"] = self.port
        if self.end_port is not None:
            out["endPort"] = self.end_port
        return out

    def sort_key(self) -> tuple[str, int, int]:
        """Protocol, then port, then end of range; "every port" first."""
        return (self.protocol.value, -1 if self.port is None else self.port,
                -1 if self.end_port is None else self.end_port)


@dataclass(frozen=True)
class Contract:
    """Consumers may reach providers on the contract's ports."""

    name: str
    providers: tuple[str, ...]
    """Normalised group names, sorted."""
    consumers: tuple[str, ...]
    """Normalised group names, sorted."""
    ports: tuple[ContractPort, ...]
    """Sorted; never empty."""


@dataclass(frozen=True)
class Exposure:
    """Addresses outside the groups that may reach a group on some ports."""

    group: str
    cidr: str
    """Canonical CIDR (``0.0.0.0/0``)."""
    except_: tuple[str, ...]
    """Canonical CIDRs inside ``cidr``, sorted."""
    ports: tuple[ContractPort, ...]


@dataclass(frozen=True)
class ContractSet:
    """A checked contracts document."""

    namespaces: tuple[str, ...]
    """Where the groups live (each gets one policy per group), sorted."""
    groups: tuple[str, ...]
    """Every group, normalised and sorted."""
    contracts: tuple[Contract, ...]
    """Sorted by name."""
    exposures: tuple[Exposure, ...]
    """In document order."""
    warnings: tuple[str, ...] = ()
    """What was read but ignored (source ports, established flags), one line each, for the user."""


def normalise_group(name: str) -> str:
    """A group name as a label value: ``_`` becomes ``-``, surrounding blanks go; case is kept.

    Raises:
        InputError: The result is not a valid label value (at most 63 characters of letters, digits,
            ``-``, ``_`` and ``.``, starting and ending with a letter or digit).
    """
    value = name.strip().replace("_", "-")
    if not value or len(value) > 63 or not _LABEL_VALUE.match(value):
        raise InputError(f"group {name!r} cannot be a label value (up to 63 letters, digits, '-' and '.', "
                         "starting and ending with a letter or digit)")
    return value


def policy_name(group: str) -> str:
    """``netgen-group-<group>``, lowercased: a group name must not differ from another by case alone."""
    return f"{POLICY_PREFIX}{group.lower()}"


# ----------------------------------------------------------------------------- reading the document


def parse_contracts(document: Mapping[str, Any]) -> ContractSet:
    """Check a contracts document and turn it into a :class:`ContractSet`.

    Args:
        document: The document as loaded from YAML or JSON (see the module docstring).

    Returns:
        The contracts, with ``warnings`` for fields that NetworkPolicy cannot honour and were ignored.

    Raises:
        InputError: The document is malformed; the message names the contract or ``expose`` entry and
            the field (``contract web-to-db: port 'x' is not a port number``).
    """
    if not isinstance(document, Mapping):
        raise InputError(f"a contracts document is a mapping with namespaces, contracts and expose, not "
                         f"{type(document).__name__}")
    unknown = sorted(set(document) - {"namespaces", "networks", "contracts", "expose"})
    if unknown:
        raise InputError(f"contracts document: unknown field {unknown[0]!r} (expected namespaces, networks, "
                         "contracts, expose)")
    warnings: list[str] = []
    namespaces = _namespaces(document.get("namespaces"))
    declared = None
    if document.get("networks") is not None:
        declared = {normalise_group(g) for g in _strings(document["networks"], "networks")}
    raw_contracts = document.get("contracts") or {}
    if not isinstance(raw_contracts, Mapping):
        raise InputError("contracts: expected a mapping of contract name to {provide_networks, consume_networks, "
                         "ports}")
    contracts = [_contract(str(name), body, declared, warnings) for name, body in raw_contracts.items()]
    contracts.sort(key=lambda c: c.name)
    groups = set(declared or ())
    for c in contracts:
        groups.update(c.providers, c.consumers)
    raw_expose = document.get("expose") or []
    if not isinstance(raw_expose, list):
        raise InputError("expose: expected a list of {network, cidr, except, ports}")
    exposures = [_exposure(i, body, groups, declared is not None, warnings) for i, body in enumerate(raw_expose)]
    by_policy: dict[str, str] = {}
    for group in sorted(groups):
        if not _DNS_SUBDOMAIN.match(policy_name(group)):
            raise InputError(f"group {group!r} cannot name a policy ({policy_name(group)!r} is not a DNS-1123 "
                             "subdomain: dots must sit between letters or digits)")
        other = by_policy.setdefault(policy_name(group), group)
        if other != group:
            raise InputError(f"groups {other!r} and {group!r} differ only by case: their policies would have "
                             "the same name")
    if not groups:
        raise InputError("contracts document: no groups (give contracts, or networks)")
    return ContractSet(tuple(namespaces), tuple(sorted(groups)), tuple(contracts), tuple(exposures),
                       tuple(warnings))


def _namespaces(raw: object) -> list[str]:
    names = sorted(set(_strings(raw, "namespaces")))
    if not names:
        raise InputError("namespaces: list at least one namespace the groups live in")
    for name in names:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            raise InputError(f"namespaces: {name!r} is not a namespace name (a DNS-1123 label)")
    return names


def _strings(raw: object, where: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str) or not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise InputError(f"{where}: expected a list of names, got {raw!r}")
    return list(raw)


def _groups(raw: object, where: str, field: str, declared: set[str] | None) -> tuple[str, ...]:
    try:
        names = [normalise_group(g) for g in _strings(raw, f"{where}: {field}")]
    except InputError as e:
        raise InputError(f"{where}: {field}: {e.message}") from e
    if not names:
        raise InputError(f"{where}: {field} names no group")
    if declared is not None:
        for name in names:
            if name not in declared:
                raise InputError(f"{where}: {field}: unknown group {name!r} (not in networks: "
                                 f"{', '.join(sorted(declared))})")
    return tuple(sorted(set(names)))


def _contract(name: str, body: object, declared: set[str] | None, warnings: list[str]) -> Contract:
    where = f"contract {name}"
    if not isinstance(body, Mapping):
        raise InputError(f"{where}: expected {{provide_networks, consume_networks, ports}}, got {body!r}")
    _ignored(body, where, warnings)
    unknown = sorted(set(body) - _CONTRACT_KEYS - _SOURCE_PORT_KEYS - _ESTABLISHED_KEYS)
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r} (expected provide_networks, consume_networks, "
                         "ports)")
    providers = _groups(body.get("provide_networks"), where, "provide_networks", declared)
    consumers = _groups(body.get("consume_networks"), where, "consume_networks", declared)
    return Contract(name, providers, consumers, _ports(body.get("ports"), where, warnings))


def _exposure(index: int, body: object, groups: set[str], declared: bool, warnings: list[str]) -> Exposure:
    where = f"expose[{index}]"
    if not isinstance(body, Mapping):
        raise InputError(f"{where}: expected {{network, cidr, except, ports}}, got {body!r}")
    if isinstance(body.get("network"), str):
        where = f"expose[{index}] (network {body['network']})"
    _ignored(body, where, warnings)
    unknown = sorted(set(body) - _EXPOSE_KEYS - _SOURCE_PORT_KEYS - _ESTABLISHED_KEYS)
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r} (expected network, cidr, except, ports)")
    raw_group = body.get("network")
    if not isinstance(raw_group, str):
        raise InputError(f"{where}: network: expected a group name, got {raw_group!r}")
    try:
        group = normalise_group(raw_group)
    except InputError as e:
        raise InputError(f"{where}: {e.message}") from e
    if group not in groups:
        known = "networks" if declared else "any contract"
        raise InputError(f"{where}: unknown group {group!r} (not in {known}: {', '.join(sorted(groups)) or 'none'})")
    cidr = _network(body.get("cidr"), where, "cidr")
    holes = sorted({_network(h, where, "except") for h in _strings(body.get("except"), f"{where}: except")},
                   key=_network_key)
    for hole in holes:
        if hole.version != cidr.version or not hole.subnet_of(cidr) or hole == cidr:  # type: ignore[arg-type]
            raise InputError(f"{where}: except {hole} is not strictly inside cidr {cidr}")
    return Exposure(group, str(cidr), tuple(str(h) for h in holes), _ports(body.get("ports"), where, warnings))


def _network(raw: object, where: str, field: str) -> Network:
    if not isinstance(raw, str):
        raise InputError(f"{where}: {field}: expected a CIDR such as 10.0.0.0/8, got {raw!r}")
    try:
        return ip_network(raw.strip())
    except ValueError as e:
        raise InputError(f"{where}: {field} {raw!r} is not a CIDR ({e})") from e


def _network_key(network: Network) -> tuple[int, int, int]:
    return (network.version, int(network.network_address), network.prefixlen)


def _ignored(body: Mapping[str, Any], where: str, warnings: list[str]) -> None:
    """Note source ports and established flags: NetworkPolicy matches destination ports and is stateful."""
    for key in sorted(set(body) & _SOURCE_PORT_KEYS):
        warnings.append(f"{where}: {key} ignored (NetworkPolicy matches destination ports only)")
    for key in sorted(set(body) & _ESTABLISHED_KEYS):
        warnings.append(f"{where}: {key} ignored (NetworkPolicy is stateful: replies are always allowed)")


def _ports(raw: object, where: str, warnings: list[str]) -> tuple[ContractPort, ...]:
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: ports: expected a list such as [{{protocol: TCP, port: \"443\"}}] (a protocol "
                         "without a port allows every port of it)")
    ports = set()
    for item in raw:
        if not isinstance(item, Mapping):
            raise InputError(f"{where}: port entry {item!r} is not a mapping like {{protocol: TCP, port: \"443\"}}")
        _ignored(item, where, warnings)
        unknown = sorted(set(item) - _PORT_KEYS - _SOURCE_PORT_KEYS - _ESTABLISHED_KEYS)
        if unknown:
            raise InputError(f"{where}: unknown port field {unknown[0]!r} (expected protocol, port, endPort)")
        ports.add(_port(item, where))
    return _simplified(ports)


def _port(item: Mapping[str, Any], where: str) -> ContractPort:
    raw_protocol = item.get("protocol", "TCP")
    protocol = _PROTOCOLS.get(raw_protocol.upper()) if isinstance(raw_protocol, str) else None
    if protocol is None:
        raise InputError(f"{where}: protocol {raw_protocol!r} is not TCP, UDP or SCTP (NetworkPolicy knows no other)")
    raw = item.get("port")
    raw_end = item.get("endPort", item.get("end_port"))
    if raw is None:
        if raw_end is not None:
            raise InputError(f"{where}: endPort {raw_end!r} without a port")
        return ContractPort(protocol)
    text = str(raw).strip() if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
    first, sep, last = (text or "").partition("-")
    if sep and raw_end is not None:
        raise InputError(f"{where}: port {raw!r} is a range and endPort is given too")
    port = _port_number(first, raw, where)
    end = _port_number(last, raw, where) if sep else None
    if raw_end is not None:
        end = _port_number(str(raw_end) if not isinstance(raw_end, bool) else "", raw_end, where)
    if end is not None and end < port:
        raise InputError(f"{where}: port range {raw!r} ends before it starts")
    return ContractPort(protocol, port, None if end == port else end)


def _port_number(text: str, raw: object, where: str) -> int:
    text = text.strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InputError(f"{where}: port {raw!r} is not a port number (1-65535, or a range such as 8000-8010)")
    return int(text)


def _simplified(ports: Iterable[ContractPort]) -> tuple[ContractPort, ...]:
    """Sorted; "every port" of a protocol swallows that protocol's single ports and ranges."""
    whole = {p.protocol for p in ports if p.port is None}
    return tuple(sorted((p for p in ports if p.port is None or p.protocol not in whole), key=ContractPort.sort_key))


# ----------------------------------------------------------------------------- writing the policies


def contract_policies(
    contracts: ContractSet, *, label_key: str = DEFAULT_LABEL_KEY, symmetric: bool = False
) -> list[dict[str, Any]]:
    """One ingress NetworkPolicy per group and namespace that allows exactly what the contracts say.

    Each policy selects the group's pods and allows, in this order:

    * the group's own members, on every port;
    * each consumer of a contract the group provides, on the contract's ports;
    * each provider of a contract the group consumes, on every port (the provider is the more trusted
      side), or on the contract's ports when ``symmetric``;
    * the ``expose`` blocks of the group, on their ports.

    Everything else that reaches the group is denied. Group peers match the label in any of the listed
    namespaces (a ``namespaceSelector`` on ``kubernetes.io/metadata.name`` with the label selector): a
    contract is about groups, not namespaces. Egress is left alone.

    Args:
        contracts: From :func:`parse_contracts`.
        label_key: The label that puts a pod into a group.
        symmetric: Restrict providers to the contract's ports too.

    Returns:
        NetworkPolicy manifests, sorted by namespace and name.

    Raises:
        InputError: ``label_key`` is not a valid label key.
    """
    _check_label_key(label_key)
    namespaces = list(contracts.namespaces)
    # Per group: group peer -> ports (None: every port, which wins), ipBlock -> ports, and the contracts behind them.
    from_groups: dict[str, dict[str, set[ContractPort] | None]] = {g: {g: None} for g in contracts.groups}
    from_blocks: dict[str, dict[tuple[str, tuple[str, ...]], set[ContractPort] | None]] = {
        g: {} for g in contracts.groups}
    sources: dict[str, set[str]] = {g: set() for g in contracts.groups}

    def grant(peers: dict[Any, set[ContractPort] | None], peer: Any, ports: Sequence[ContractPort] | None) -> None:
        have = peers.get(peer, set())
        if have is None or ports is None:
            peers[peer] = None
        else:
            peers[peer] = have | set(ports)

    for contract in contracts.contracts:
        for provider in contract.providers:
            for consumer in contract.consumers:
                if provider == consumer:
                    continue  # own members are allowed already
                grant(from_groups[provider], consumer, contract.ports)
                grant(from_groups[consumer], provider, contract.ports if symmetric else None)
                sources[provider].add(contract.name)
                sources[consumer].add(contract.name)
    for exposure in contracts.exposures:
        grant(from_blocks[exposure.group], (exposure.cidr, exposure.except_), exposure.ports)

    policies: list[dict[str, Any]] = []
    for group in contracts.groups:
        rules: list[dict[str, Any]] = []
        peers = from_groups[group]
        for peer in [group, *sorted(p for p in peers if p != group)]:
            rules.append(_rule({"namespaceSelector": _namespaces_selector(namespaces),
                                "podSelector": {"matchLabels": {label_key: peer}}}, peers[peer]))
        blocks = from_blocks[group]
        for cidr, holes in sorted(blocks, key=lambda b: (_network_key(ip_network(b[0])), b[1])):
            block: dict[str, Any] = {"cidr": cidr}
            if holes:
                block["except"] = list(holes)
            rules.append(_rule({"ipBlock": block}, blocks[(cidr, holes)]))
        for namespace in namespaces:
            metadata: dict[str, Any] = {"name": policy_name(group), "namespace": namespace, "labels": dict(MANAGED_BY)}
            if sources[group]:
                metadata["annotations"] = {CONTRACTS_ANNOTATION: ",".join(sorted(sources[group]))}
            policies.append({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata,
                "spec": {"podSelector": {"matchLabels": {label_key: group}}, "policyTypes": ["Ingress"],
                         "ingress": rules},
            })
    policies.sort(key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    return policies


def _namespaces_selector(namespaces: list[str]) -> dict[str, Any]:
    return {"matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": list(namespaces)}]}


def _rule(peer: dict[str, Any], ports: set[ContractPort] | None) -> dict[str, Any]:
    rule: dict[str, Any] = {"from": [peer]}
    if ports is not None:
        rule["ports"] = [p.manifest() for p in _simplified(ports)]
    return rule


def _check_label_key(key: str) -> None:
    prefix, sep, name = key.rpartition("/")
    if (not name or len(name) > 63 or not _LABEL_VALUE.match(name)
            or (sep and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))):
        raise InputError(f"label key {key!r} is not a valid label key (an optional DNS prefix and '/', then up to "
                         "63 letters, digits, '-', '_' and '.')")
