"""The three PATCH flavours: JSON merge patch (RFC 7386), strategic merge patch (simplified) and JSON patch
(RFC 6902), keyed by content type in :data:`PATCHERS`.

Patches never modify their inputs; a JSON patch that fails answers 422 as upstream does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tests.cluster.apiserver.errors import ApiError, bad_request


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch and return the result (inputs are not modified)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_MERGE_KEYS = ("name", "containerPort", "port", "ip", "type")


def _merge_key(items: list[Any]) -> str | None:
    for key in _MERGE_KEYS:
        if items and all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch, simplified: lists of objects merge by ``name`` (or ``containerPort``, ...).

    Supports ``$patch: delete``/``replace`` on list elements and maps, and drops ``$setElementOrder/...``
    and ``$retainKeys`` directives. Lists of scalars are replaced, as for most upstream fields.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/")) or key in ("$retainKeys", "$patch"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _strategic_list(result[key], value)
        elif isinstance(value, list):
            result[key] = [strategic_merge_patch(None, v) if isinstance(v, dict) else v for v in value
                           if not (isinstance(v, dict) and v.get("$patch") == "delete")]
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _strategic_list(current: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key([p for p in patch if not (isinstance(p, dict) and set(p) == {"$patch"})])
    if key is None or (current and _merge_key(current) != key):
        return copy.deepcopy(patch)
    result = copy.deepcopy(current)
    for item in patch:
        index = next((i for i, c in enumerate(result) if c.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch(None, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch; raise :class:`ApiError` (422 upstream-style) when an operation fails."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    try:
        for op in operations:
            kind, parts = op["op"], _pointer(op["path"])
            if kind in ("add", "replace", "copy", "move"):
                if kind in ("add", "replace"):
                    value = copy.deepcopy(op["value"])
                else:
                    src_parent, src_key = _parent(doc, _pointer(op["from"]))
                    src = src_parent[int(src_key)] if isinstance(src_parent, list) else src_parent[src_key]
                    value = copy.deepcopy(src)
                    if kind == "move":
                        doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                if not parts:
                    doc = value
                    continue
                parent, key = _parent(doc, parts)
                if isinstance(parent, list):
                    if kind == "replace":
                        parent[int(key)] = value
                    else:
                        parent.insert(len(parent) if key == "-" else int(key), value)
                else:
                    if kind == "replace" and key not in parent:
                        raise KeyError(key)
                    parent[key] = value
            elif kind == "remove":
                parent, key = _parent(doc, parts)
                del parent[int(key) if isinstance(parent, list) else key]
            elif kind == "test":
                parent, key = _parent(doc, parts)
                current = parent[int(key)] if isinstance(parent, list) else parent[key]
                if current != op["value"]:
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                                   f"request: testing value {op['path']} failed")
            else:
                raise bad_request(f"Unexpected kind: {kind}")
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                       f"jsonpatch {operations!r}: {e!r}") from e
    return doc


PATCHERS: dict[str, Callable[[Any, Any], Any]] = {
    "application/merge-patch+json": merge_patch,
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": json_patch,
}
