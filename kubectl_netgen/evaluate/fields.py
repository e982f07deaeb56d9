"""Reading policy manifests field by field, with the path of every field for error messages.

Manifests arrive as plain dicts (loaded from YAML or JSON by the caller). Everything is checked here,
at the edge, the way the API server validates it, so the engine never meets a malformed value; a
problem becomes one :class:`~kubectl_netgen.errors.InputError` line naming the object and the field,
e.g. ``NetworkPolicy shop/x: spec.ingress[0].from[1].ipBlock.cidr 'foo' is not a CIDR``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from kubectl_netgen.errors import InputError, cut
from kubectl_netgen.model import LabelSelector, Protocol, SelectorRequirement, labels_of

IPNetwork = IPv4Network | IPv6Network

POLICY_PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)
"""The protocols a policy port may name (the API server rejects the others)."""

_PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_CIDR = re.compile(r"[0-9A-Fa-f.:]+/[0-9]{1,3}")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Field:
    """A value inside one manifest, with the path that leads to it."""

    owner: str
    """The object, as messages name it: ``NetworkPolicy shop/x``."""
    path: str
    """Dotted path from the object's root: ``spec.ingress[0].from[1]``."""
    value: Any
    present: bool = True
    """False when the key is missing altogether (``value`` is then ``None``)."""

    def fail(self, problem: str) -> InputError:
        """An error about this field: ``<owner>: <path> <problem>``."""
        return InputError(f"{self.owner}: {self.path} {problem}")

    def mapping(self, allowed: Collection[str] | None) -> Mapping[str, Any]:
        """The value as an object (``{}`` when absent or null), refusing keys not in ``allowed`` (if given).

        Unknown keys are refused because a misspelt key (``form`` for ``from``) would otherwise change
        what a policy means without a word, as the API server's strict field validation also refuses.
        """
        if self.value is None:
            return {}
        if not isinstance(self.value, Mapping):
            raise self.fail(f"must be an object, not {_show(self.value)}")
        for key in self.value:
            if allowed is not None and key not in allowed:
                raise self.child(str(key)).fail(f"is not a known field (expected one of: {', '.join(allowed)})")
        return self.value

    def child(self, key: str) -> Field:
        """The field ``key`` of this object (absent keys give a field with ``present=False``)."""
        value = self.value if isinstance(self.value, Mapping) else {}
        return Field(self.owner, f"{self.path}.{key}" if self.path else key, value.get(key), key in value)

    def items(self) -> list[Field] | None:
        """The entries of a list, or ``None`` when the list is absent or null."""
        if self.value is None:
            return None
        if not isinstance(self.value, list):
            raise self.fail(f"must be a list, not {_show(self.value)}")
        return [Field(self.owner, f"{self.path}[{i}]", v) for i, v in enumerate(self.value)]

    def string(self) -> str:
        """The value as a non-empty string."""
        if not isinstance(self.value, str) or not self.value:
            problem = "is missing" if self.value is None else f"must be a non-empty string, not {_show(self.value)}"
            raise self.fail(problem)
        return self.value

    def integer(self, low: int, high: int) -> int:
        """The value as an integer in ``[low, high]``."""
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail("is missing" if self.value is None else f"{_show(self.value)} is not an integer")
        if not low <= self.value <= high:
            raise self.fail(f"{self.value} is not between {low} and {high}")
        return self.value

    def only_one(self, keys: Collection[str]) -> str:
        """The one key of ``keys`` this object sets (exactly one must be set)."""
        given = [k for k in keys if self.child(k).value is not None]
        if len(given) != 1:
            found = f"got {', '.join(given)}" if given else "got none"
            raise self.fail(f"must set exactly one of {', '.join(keys)} ({found})")
        return given[0]


def _show(value: Any) -> str:
    return cut(repr(value), 60)


def selector(field: Field) -> LabelSelector:
    """A label selector (``matchLabels`` and ``matchExpressions``); absent or null is the empty one."""
    raw = field.mapping(("matchLabels", "matchExpressions"))
    labels = field.child("matchLabels")
    for key, value in labels.mapping(None).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise labels.child(str(key)).fail(f"must be a string, not {_show(value)}")
    requirements = []
    for expr in field.child("matchExpressions").items() or ():
        expr.mapping(("key", "operator", "values"))
        key, operator = expr.child("key").string(), expr.child("operator").string()
        if operator not in _OPERATORS:
            raise expr.child("operator").fail(f"{operator!r} is not one of {', '.join(_OPERATORS)}")
        values = []
        for value in expr.child("values").items() or ():
            values.append(value.string())
        if operator in ("In", "NotIn") and not values:
            raise expr.child("values").fail(f"must not be empty for {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise expr.child("values").fail(f"must be empty for {operator}")
        requirements.append(SelectorRequirement(key, operator, tuple(sorted(set(values)))))
    requirements.sort(key=lambda r: (r.key, r.operator, r.values))
    return LabelSelector(labels_of(dict(raw.get("matchLabels") or {})), tuple(requirements))


def cidr(field: Field) -> IPNetwork:
    """A CIDR such as ``10.0.0.0/8`` or ``fd00::/8``; host bits may be set, as Go's ParseCIDR allows."""
    text = field.string()
    if _CIDR.fullmatch(text):
        try:
            return ip_network(text, strict=False)
        except ValueError:
            pass
    raise field.fail(f"{text!r} is not a CIDR")


def protocol(field: Field) -> Protocol:
    """A policy port's protocol: TCP (the default), UDP or SCTP."""
    if field.value is None:
        return Protocol.TCP
    if field.value not in [p.value for p in POLICY_PROTOCOLS]:
        raise field.fail(f"{_show(field.value)} is not one of TCP, UDP, SCTP")
    return Protocol(field.value)


def port_number(field: Field) -> int:
    """A port number, 1 to 65535."""
    return field.integer(1, 65535)


def port_name(field: Field) -> str:
    """A named port (an IANA service name: up to 15 lowercase letters, digits and inner dashes)."""
    name = field.string()
    if not (len(name) <= 15 and _PORT_NAME.fullmatch(name) and "--" not in name and re.search("[a-z]", name)):
        raise field.fail(f"{name!r} is not a port number or a port name")
    return name
