"""Label and field selectors: parsing ``labelSelector``/``fieldSelector`` and matching objects against them.

Syntax errors and unsupported fields are answered as upstream does (400 ``BadRequest``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.cluster.apiserver.errors import bad_request
from tests.cluster.apiserver.resources import Obj, Resource

_REQ = re.compile(r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
                  r"(?:(?P<op>==|!=|=|\s+in\s+|\s+notin\s+)\s*(?P<val>\([^)]*\)|[A-Za-z0-9._-]*))?\s*$")


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: ``key op values`` with op in =, !=, in, notin, exists, !."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this term."""
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op in ("=", "in"):
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # != and notin also match a missing key


def _split_terms(text: str) -> list[str]:
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse ``a=b,c!=d,e in (f,g),h notin (i),j,!k``; raise :class:`ApiError` 400 on bad syntax."""
    reqs = []
    for term in _split_terms(text):
        m = _REQ.match(term)
        if m is None or (m["neg"] and m["op"]):
            raise bad_request(f"unable to parse requirement: {term!r}")
        key, op, val = m["key"], (m["op"] or "").strip(), m["val"] or ""
        if m["neg"]:
            reqs.append(Requirement(key, "!"))
        elif not op:
            reqs.append(Requirement(key, "exists"))
        elif op in ("in", "notin"):
            if not val.startswith("("):
                raise bad_request(f"unable to parse requirement: {term!r}")
            reqs.append(Requirement(key, op, tuple(v.strip() for v in val[1:-1].split(",") if v.strip())))
        else:
            reqs.append(Requirement(key, "=" if op in ("=", "==") else "!=", (val,)))
    return reqs


FIELD_SELECTABLE: dict[str, tuple[str, ...]] = {
    "pods": ("metadata.name", "metadata.namespace", "status.phase", "spec.nodeName", "spec.restartPolicy",
             "spec.schedulerName", "spec.serviceAccountName", "status.podIP", "status.nominatedNodeName"),
}


def parse_field_selector(res: Resource, text: str) -> list[tuple[str, str, str]]:
    """Parse ``f=v,f!=v`` into (field, op, value); only the fields upstream supports for ``res``."""
    allowed = FIELD_SELECTABLE.get(res.plural, ("metadata.name", "metadata.namespace"))
    out = []
    for term in _split_terms(text):
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if m is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        if m[1] not in allowed:
            raise bad_request(f'field label not supported: {m[1]}')
        out.append((m[1], "!=" if m[2] == "!=" else "=", m[3]))
    return out


def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def matches_selectors(obj: Obj, labels: list[Requirement], fields: list[tuple[str, str, str]]) -> bool:
    """Whether ``obj`` satisfies every label requirement and every field term."""
    obj_labels = obj.get("metadata", {}).get("labels") or {}
    if not all(r.matches(obj_labels) for r in labels):
        return False
    return all((_field_value(obj, f) == v) == (op == "=") for f, op, v in fields)
