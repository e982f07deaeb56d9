"""The few protobuf bodies the server reads: the access reviews ``kubectl auth can-i`` sends.

kubectl sends typed objects as ``application/vnd.kubernetes.protobuf``: the ``k8s\\x00`` magic, then a
``runtime.Unknown`` (``typeMeta`` = 1, ``raw`` = 2) whose ``raw`` is the object's own message. Only the
fields of ``SelfSubjectAccessReview`` and ``SelfSubjectRulesReview`` specs are decoded (field numbers
from ``k8s.io/api/authorization/v1/generated.proto``); kubectl sends every other write as JSON.
"""

from __future__ import annotations

from tests.cluster.apiserver.errors import bad_request
from tests.cluster.apiserver.resources import Obj

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource",
                        7: "name"}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise bad_request("the body of the request was in an unknown format: truncated protobuf")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """The fields of one message: number -> values (bytes for length-delimited, int for varints)."""
    found: dict[int, list[bytes | int]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: bytes | int
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = int.from_bytes(data[pos:pos + size], "little"), pos + size
        else:
            raise bad_request(f"the body of the request was in an unknown format: protobuf wire type {wire}")
        found.setdefault(number, []).append(value)
    return found


def _message(found: dict[int, list[bytes | int]], number: int) -> dict[int, list[bytes | int]] | None:
    values = found.get(number)
    return fields(values[-1]) if values and isinstance(values[-1], bytes) else None


def _strings(message: dict[int, list[bytes | int]], names: dict[int, str]) -> Obj:
    out: Obj = {}
    for number, name in names.items():
        values = message.get(number)
        if values and isinstance(values[-1], bytes) and values[-1]:
            out[name] = values[-1].decode()
    return out


def decode_review(body: bytes, kind: str) -> Obj:
    """The JSON form of a protobuf ``SelfSubjectAccessReview`` or ``SelfSubjectRulesReview`` body."""
    if not body.startswith(MAGIC):
        raise bad_request("the body of the request was in an unknown format: no protobuf magic")
    envelope = fields(body[len(MAGIC):])
    raw = envelope.get(2)
    if not raw or not isinstance(raw[-1], bytes):
        raise bad_request("the body of the request was in an unknown format: no object in the protobuf envelope")
    spec = _message(fields(raw[-1]), 2) or {}
    if kind == "SelfSubjectRulesReview":
        return {"spec": _strings(spec, {1: "namespace"})}
    out: Obj = {}
    resource = _message(spec, 1)
    if resource is not None:
        out["resourceAttributes"] = _strings(resource, _RESOURCE_ATTRIBUTES)
    non_resource = _message(spec, 2)
    if non_resource is not None:
        out["nonResourceAttributes"] = _strings(non_resource, _NON_RESOURCE_ATTRIBUTES)
    return {"spec": out}

