"""The HTTP side: the request handler, bearer-token check, URL routing to the REST verbs, discovery
documents, and streaming (watches, followed logs) as chunked responses.

Errors raised as :class:`~.errors.ApiError` become ``Status`` answers; anything else is a 500 with the
traceback printed, as a bug in this server.
"""

from __future__ import annotations

import contextlib
import json
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.cluster.apiserver import protobuf
from tests.cluster.apiserver.errors import ApiError, bad_request
from tests.cluster.apiserver.faults import THROTTLE_BODY
from tests.cluster.apiserver.formats import parse_bool
from tests.cluster.apiserver.patches import PATCHERS
from tests.cluster.apiserver.resources import GROUPS, RESOURCES, REVIEWS, SERVER_VERSION, VERBS, Obj, resource_at

if TYPE_CHECKING:
    from tests.cluster.apiserver.rbac import User
    from tests.cluster.apiserver.server import ApiServer


def _is_discovery(parts: list[str]) -> bool:
    return (parts in (["api"], ["apis"], ["api", "v1"]) or parts[:2] == ["openapi", "v3"]
            or (len(parts) == 2 and parts[0] == "apis" and any(g == parts[1] for g, _ in GROUPS))
            or (len(parts) == 3 and parts[0] == "apis" and (parts[1], parts[2]) in GROUPS))

def _discovery_list(group: str, version: str) -> Obj:
    resources: list[Obj] = []
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        entry: Obj = {"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                      "kind": r.kind, "verbs": list(r.verbs or VERBS)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        resources.append(entry)
        for sub, verbs in r.subresources:
            resources.append({"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                              "kind": r.kind, "verbs": list(verbs)})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


def _openapi_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _openapi_root() -> Obj:
    """``/openapi/v3``: where each group-version's document is."""
    versions = [("", "v1"), *GROUPS]
    return {"paths": {_openapi_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_openapi_path(g, v)}?hash=0"}
                      for g, v in versions}}


def _openapi_document(group: str, version: str) -> Obj:
    """A group-version's OpenAPI v3 document, just enough for kubectl: each object path's PATCH names its kind
    and takes ``fieldValidation``, so ``kubectl apply``'s default ``--validate=strict`` leaves validation to
    the server instead of asking for the (unserved) OpenAPI v2 schema."""
    paths: Obj = {}
    for r in RESOURCES:
        if (r.group, r.version) != (group, version) or r.verbs:
            continue
        prefix = "/" + _openapi_path(group, version)
        scope = "/namespaces/{namespace}" if r.namespaced else ""
        paths[f"{prefix}{scope}/{r.plural}/{{name}}"] = {"patch": {
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths}


def handler_for(server: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        api = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read their own output."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing

    def _send_json(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, content_type: str, chunks: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        with contextlib.suppress(OSError):  # the client went away (reset, broken pipe, TLS EOF)
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        self.close_connection = True

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        raw = self._body()
        try:
            self._route(method, raw)
        except ApiError as e:
            self._send_json(e.code, e.status())
        except OSError:
            self.close_connection = True
        except Exception as e:
            # A bug in this server: answer like the real one does (500 InternalError) and show the traceback.
            traceback.print_exc()
            self._send_json(500, ApiError(500, "InternalError", f"Internal error occurred: {e!r}").status())

    def _route(self, method: str, raw: bytes) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        parts = [p for p in url.path.split("/") if p]
        self.api.record(method, self.path)
        if parts in (["version"], ["healthz"], ["livez"], ["readyz"]):
            self._send_json(200, SERVER_VERSION) if parts == ["version"] else self._send_text(b"ok")
            return
        user = self.api.authenticate(self.headers.get("Authorization", ""))
        if method == "GET" and _is_discovery(parts) and self._faulted("get", ""):
            return
        if method == "GET" and _is_discovery(parts):
            self.api.check_path(user, url.path)
            self._discovery(parts)
            return
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _no_route()
        self._rest(user, method, group, version, rest, query, raw)

    def _faulted(self, verb: str, resource: str) -> bool:
        """Act out a switched-on fault for this request, if one fires; return whether one did."""
        fault = self.api.fault_for(verb, resource)
        if fault is None:
            return False
        if fault.action == "throttle":
            self.send_response(429)
            self.send_header("Retry-After", str(fault.retry_after))
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Length", str(len(THROTTLE_BODY)))
            self.end_headers()
            self.wfile.write(THROTTLE_BODY)
            return True
        if fault.action == "hang":
            self.api.wait_closed()
        self.close_connection = True  # drop (or a hang let go): close without a byte of reply
        return True

    def _typed_body(self, raw: bytes, kind: str) -> Any:
        """A body in JSON, or in protobuf as kubectl sends typed objects (access reviews only)."""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type == protobuf.CONTENT_TYPE:
            return protobuf.decode_review(raw, kind)
        return _json(raw)

    def _send_text(self, data: bytes, code: int = 200) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _discovery(self, parts: list[str]) -> bool:
        # Aggregated discovery (Accept: ...;as=APIGroupDiscoveryList) gets the legacy JSON with a plain
        # application/json content type, which client-go takes as "not supported" and falls back.
        if parts == ["api"]:
            host = f"127.0.0.1:{self.api.port}"
            self._send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        elif parts == ["apis"]:
            groups = [{"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                       "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in GROUPS]
            self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        elif parts == ["api", "v1"]:
            self._send_json(200, _discovery_list("", "v1"))
        elif len(parts) == 2 and parts[0] == "apis" and any(g == parts[1] for g, _ in GROUPS):
            version = dict(GROUPS)[parts[1]]
            self._send_json(200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                                  "versions": [{"groupVersion": f"{parts[1]}/{version}", "version": version}],
                                  "preferredVersion": {"groupVersion": f"{parts[1]}/{version}", "version": version}})
        elif len(parts) == 3 and parts[0] == "apis" and (parts[1], parts[2]) in GROUPS:
            self._send_json(200, _discovery_list(parts[1], parts[2]))
        elif parts == ["openapi", "v3"]:
            self._send_json(200, _openapi_root())
        elif parts[:2] == ["openapi", "v3"] and parts[2:] in (["api", "v1"], *(["apis", g, v] for g, v in GROUPS)):
            group, version = ("", "v1") if parts[2] == "api" else (parts[3], parts[4])
            self._send_json(200, _openapi_document(group, version))
        else:
            return False
        return True

    def _rest(self, user: User, method: str, group: str, version: str, rest: list[str], query: dict[str, str],
              raw: bytes) -> None:
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not 1 <= len(rest) <= 3:
            raise _no_route()
        res = resource_at(group, version, rest[0])
        if res is None or (namespace is not None and not res.namespaced):
            raise _no_route()
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and (sub not in dict(res.subresources) or sub in self.api.unserved):
            raise _no_route()
        if res.namespaced and name is not None and namespace is None:
            raise _no_route()
        api = self.api
        watching = parse_bool(query.get("watch", ""))
        verb = {"GET": "watch" if watching else ("get" if name else "list"), "POST": "create", "PUT": "update",
                "PATCH": "patch", "DELETE": "delete"}[method]
        if self._faulted(verb, f"{res.plural}/{sub}" if sub else res.plural):
            return
        api._check_access(user, verb, res, sub, namespace, name)
        dry_run = _dry_run(query) if method in ("POST", "PUT", "PATCH", "DELETE") else False
        if name is None:
            if method == "GET" and watching:
                events = api.rest_watch(res, namespace, query)
                self._stream("application/json", (json.dumps(e).encode() + b"\n" for e in events))
            elif method == "GET":
                self._send_json(200, api.rest_list(res, namespace, query))
            elif method == "POST" and res.plural in REVIEWS:
                self._send_json(201, api.review(user, res, self._typed_body(raw, res.kind)))
            elif method == "POST":
                self._send_json(201, api.rest_create(res, namespace, _json(raw), dry_run=dry_run))
            else:
                raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested "
                               f"resource ({method})")
            return
        if sub == "log":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                               "resource")
            chunks = api.stream_log(namespace or "", name, query)
            if parse_bool(query.get("follow", "")):
                self._stream("text/plain", chunks)
            else:
                self._send_text(b"".join(chunks))
            return
        if method == "GET":
            self._send_json(200, api.rest_get(res, namespace, name))
        elif method == "DELETE":
            self._send_json(200, api.rest_delete(res, namespace, name, dry_run=dry_run))
        elif method == "PUT":
            body = _json(raw)
            self._send_json(200, api.rest_update(res, namespace, name, sub, lambda _current: body,
                                                 dry_run=dry_run))
        elif method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            patcher = PATCHERS.get(content_type)
            if patcher is None:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                               f"accepted media types include: {', '.join(PATCHERS)}")
            patch = _json(raw)
            self._send_json(200, api.rest_update(res, namespace, name, sub,
                                                 lambda current: patcher(current, patch), dry_run=dry_run))
        else:
            raise _no_route()


def _dry_run(query: dict[str, str]) -> bool:
    """``dryRun=All``: check and admit the write, persist nothing (the only value upstream accepts)."""
    value = query.get("dryRun")
    if value is None:
        return False
    if value != "All":
        raise bad_request(f"Invalid dry run value: {value}: dryRun must be 'All'")
    return True


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError as e:
        raise bad_request(f"the body of the request was in an unknown format: {e}") from e


def _no_route() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})
