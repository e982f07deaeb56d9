"""The object store: objects by key, the one global ``resourceVersion``, the change log watches read, and the
resource-generic REST verbs over them (get, list, watch, create, the generic part of update).

All state is guarded by one condition variable, which also wakes watches (and log followers, see
:mod:`.logs`) when something changes.
"""

from __future__ import annotations

import base64
import bisect
import copy
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.cluster.apiserver.errors import ApiError, Cause, bad_request, invalid, not_found, status_details
from tests.cluster.apiserver.formats import rfc3339
from tests.cluster.apiserver.resources import Obj, Resource, find_resource
from tests.cluster.apiserver.selectors import matches_selectors, parse_field_selector, parse_label_selector

DEFAULT_WATCH_TIMEOUT = 1800.0


@dataclass(frozen=True)
class WatchEvent:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``obj`` a snapshot after the change."""

    rv: int
    type: str
    resource: Resource
    obj: Obj


Key = tuple[str, str, str]  # (qualified resource, namespace or "", name)


class ObjectStore:
    """Objects in memory with resourceVersions and watch events; the base of :class:`~.server.ApiServer`."""

    def __init__(self) -> None:
        """Start empty, at resourceVersion 0."""
        self._cond = threading.Condition()
        self._objects: dict[Key, Obj] = {}
        self._events: list[WatchEvent] = []
        self._rv = 0
        self._compacted = -1
        self._closing = False

    # -- state accessors for tests

    def load(self, items: Mapping[str, Any]) -> None:
        """Add every item of a ``v1 List`` (or one object) as it is, with a fresh resourceVersion."""
        for obj in items.get("items", [items]) if items.get("kind", "").endswith("List") else [items]:
            self.put_object(obj)

    def put_object(self, obj: Mapping[str, Any]) -> Obj:
        """Create or replace an object (no validation, no admission); return the stored copy."""
        res = find_resource(str(obj["kind"]))
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", rfc3339())
        with self._cond:
            key = self._key(res, meta.get("namespace") if res.namespaced else None, meta["name"])
            self._store(res, key, stored, "MODIFIED" if key in self._objects else "ADDED")
        return copy.deepcopy(stored)

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        """Copies of the stored objects of a kind/plural (optionally in one namespace), sorted by namespace/name."""
        res = find_resource(kind)
        with self._cond:
            found = [copy.deepcopy(o) for (q, ns, _), o in sorted(self._objects.items())
                     if q == res.qualified and (namespace is None or ns == namespace)]
        return found

    def get_object(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """A copy of one stored object, or None."""
        res = find_resource(kind)
        with self._cond:
            obj = self._objects.get(self._key(res, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def events(self, kind: str | None = None) -> list[WatchEvent]:
        """Every change recorded so far (optionally of one kind)."""
        with self._cond:
            return [e for e in self._events if kind is None or e.resource == find_resource(kind)]

    def resource_version(self) -> str:
        """The current global resourceVersion."""
        with self._cond:
            return str(self._rv)

    # -- internals (call with self._cond held unless stated)

    @staticmethod
    def _key(res: Resource, namespace: str | None, name: str) -> Key:
        return (res.qualified, (namespace or "") if res.namespaced else "", name)

    def _store(self, res: Resource, key: Key, obj: Obj, event: str) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        self._objects[key] = obj
        self._events.append(WatchEvent(self._rv, event, res, copy.deepcopy(obj)))
        self._cond.notify_all()

    def _remove(self, res: Resource, key: Key) -> Obj:
        obj = self._objects.pop(key)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._events.append(WatchEvent(self._rv, "DELETED", res, copy.deepcopy(obj)))
        self._cond.notify_all()
        return obj

    # -- REST verbs (called by the handler; raise ApiError)

    def rest_get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        with self._cond:
            obj = self._objects.get(self._key(res, namespace, name))
            if obj is None:
                raise not_found(res, name)
            return copy.deepcopy(obj)

    def rest_list(self, res: Resource, namespace: str | None, query: Mapping[str, str]) -> Obj:
        """A list, in pages when ``limit`` is given: ``metadata.continue`` resumes after the last item returned
        (``remainingItemCount`` too when no selector is used, as upstream); a token older than
        :meth:`compact` is 410 Expired."""
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(res, query.get("fieldSelector", ""))
        limit = _limit(query.get("limit", ""))
        start: tuple[str, str] = ("", "")
        rv_at: int | None = None
        if query.get("continue"):
            start, rv_at = self._continue_from(query["continue"])
        with self._cond:
            keys: list[tuple[Key, Obj]] = []
            for key, obj in sorted(self._objects.items()):
                q, ns, name = key
                if (q == res.qualified and (namespace is None or ns == namespace) and (ns, name) > start
                        and matches_selectors(obj, labels, fields)):
                    keys.append((key, obj))
            page = keys[:limit] if limit else keys
            items = []
            for _, obj in page:
                item = copy.deepcopy(obj)
                item.pop("apiVersion", None)
                item.pop("kind", None)
                items.append(item)
            rv = str(self._rv) if rv_at is None else str(rv_at)
        meta: Obj = {"resourceVersion": rv}
        if limit and len(keys) > limit:
            (_, last_ns, last_name), _ = page[-1]
            meta["continue"] = _continue_token(int(rv), last_ns, last_name)
            if not labels and not fields:
                meta["remainingItemCount"] = len(keys) - limit
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": items}

    def compact(self) -> None:
        """Forget history as etcd compaction does: every ``continue`` token issued so far is expired."""
        with self._cond:
            self._compacted = self._rv
            self._rv += 1

    def _continue_from(self, token: str) -> tuple[tuple[str, str], int]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
            ns, _, name = str(data["start"]).partition("/")
            start, rv = (ns, name), int(data["rv"])
        except (ValueError, KeyError, TypeError) as e:
            raise bad_request(f"continue key is not valid: {e}") from e
        with self._cond:
            expired = rv <= self._compacted
        if expired:
            raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                           "list result. You can start a new list without the continue parameter.")
        return start, rv

    def rest_watch(self, res: Resource, namespace: str | None, query: Mapping[str, str]) -> Iterator[Obj]:
        """Yield watch events until ``timeoutSeconds``, the server closes, or the client goes away."""
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(res, query.get("fieldSelector", ""))
        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        deadline = time.monotonic() + timeout
        since = query.get("resourceVersion", "")

        def wanted(r: Resource, obj: Obj) -> bool:
            ns = obj.get("metadata", {}).get("namespace")
            return r == res and (namespace is None or ns == namespace) and matches_selectors(obj, labels, fields)

        with self._cond:
            if since in ("", "0"):
                position = self._rv
                initial = [copy.deepcopy(o) for (q, ns, _), o in sorted(self._objects.items())
                           if q == res.qualified and wanted(res, o)]
            else:
                position, initial = int(since), []
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        while True:
            with self._cond:
                while True:
                    start = bisect.bisect_right([e.rv for e in self._events], position)
                    pending = self._events[start:]
                    remaining = deadline - time.monotonic()
                    if pending or self._closing or remaining <= 0:
                        break
                    self._cond.wait(min(remaining, 0.5))
                if not pending:
                    return
                position = pending[-1].rv
            for event in pending:
                if wanted(event.resource, event.obj):
                    yield {"type": event.type, "object": event.obj}

    def rest_create(self, res: Resource, namespace: str | None, body: Obj, *, dry_run: bool = False) -> Obj:
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise bad_request("the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if not meta.get("name"):
            raise invalid(res.kind, "", [Cause("FieldValueRequired", "metadata.name",
                                               "Required value: name or generateName is required")])
        if res.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339()
        if "spec" in obj:
            meta["generation"] = 1
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        with self._cond:
            key = self._key(res, meta.get("namespace"), meta["name"])
            if key in self._objects:
                raise ApiError(409, "AlreadyExists", f'{res.qualified} "{meta["name"]}" already exists',
                               status_details(res, meta["name"]))
            if dry_run:
                return copy.deepcopy(obj)
            self._store(res, key, obj, "ADDED")
            return copy.deepcopy(obj)

    @staticmethod
    def _general_update(res: Resource, current: Obj, new: Obj) -> Obj:
        meta = new.setdefault("metadata", {})
        for fixed in ("name", "namespace", "uid", "creationTimestamp"):
            if fixed in current["metadata"]:
                meta[fixed] = current["metadata"][fixed]
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        if res.plural == "pods":
            # Pod status belongs to the kubelet and ephemeral containers to their subresource.
            new["status"] = current.get("status", {})
            spec = new.setdefault("spec", {})
            spec.pop("ephemeralContainers", None)
            if "ephemeralContainers" in current.get("spec", {}):
                spec["ephemeralContainers"] = current["spec"]["ephemeralContainers"]
        if new.get("spec") != current.get("spec") and "spec" in current:
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        return new


def _limit(text: str) -> int:
    """``limit``: 0 or absent for everything (upstream ignores a negative one too)."""
    try:
        return max(0, int(text)) if text else 0
    except ValueError as e:
        raise bad_request(f"invalid limit {text!r}: {e}") from e


def _continue_token(rv: int, namespace: str, name: str) -> str:
    """An opaque token as upstream's (base64 of ``{"v", "rv", "start"}``), resuming after namespace/name."""
    body = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{namespace}/{name}"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
