"""Container logs: lines as the CRI log file keeps them, kubelet-like rotation, and ``pods/log`` with its
query options (``container``, ``follow``, ``limitBytes``, ``sinceSeconds``, ``tailLines``, ``timestamps``).

:class:`PodLogs` adds the logs to the object store: one :class:`ContainerLog` per (namespace, pod, pod uid,
container), closed when the pod is deleted so followers end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from tests.cluster.apiserver.errors import bad_request, not_found
from tests.cluster.apiserver.formats import parse_bool, rfc3339_nano
from tests.cluster.apiserver.resources import Obj, Resource, find_resource
from tests.cluster.apiserver.store import Key, ObjectStore


@dataclass
class LogLine:
    """One line a container wrote, as the CRI log file keeps it."""

    ts_ns: int
    stream: str
    data: bytes


@dataclass
class ContainerLog:
    """A container's log, with kubelet-like rotation.

    ``lines`` holds everything written; ``file_start`` is the first line of the *current* log file. When the
    current file grows past ``max_bytes`` (kubelet's ``containerLogMaxSize``) it is rotated: ``file_start``
    moves to the end, so a later non-follow request sees only what was written since (kubelet serves only
    the current file). A follower keeps its own position in ``lines`` and so, like kubelet's follow, which
    reopens the new file after a rotation, sees every line. Old lines stay in memory for such followers.
    """

    max_bytes: int | None = None
    lines: list[LogLine] = field(default_factory=list)
    file_start: int = 0
    file_bytes: int = 0
    closed: bool = False
    rotations: int = 0

    def append(self, stream: str, data: bytes, ts_ns: int | None = None) -> None:
        """Add a line and rotate when the current file is over ``max_bytes``."""
        self.lines.append(LogLine(time.time_ns() if ts_ns is None else ts_ns, stream, data))
        self.file_bytes += len(data)
        if self.max_bytes is not None and self.file_bytes > self.max_bytes:
            self.file_start, self.file_bytes = len(self.lines), 0
            self.rotations += 1


@dataclass(frozen=True)
class LogOptions:
    """The ``pods/log`` query parameters."""

    follow: bool = False
    timestamps: bool = False
    limit_bytes: int | None = None
    since_seconds: int | None = None
    tail_lines: int | None = None


def _format_line(line: LogLine, timestamps: bool) -> bytes:
    return (rfc3339_nano(line.ts_ns).encode() + b" " + line.data) if timestamps else line.data


class PodLogs(ObjectStore):
    """The object store plus container logs; the base of :class:`~.server.ApiServer`."""

    def __init__(self, log_max_bytes: int | None = None) -> None:
        """Rotate each container's log at ``log_max_bytes`` (None: never rotate)."""
        super().__init__()
        self.log_max_bytes = log_max_bytes
        self._logs: dict[tuple[str, str, str, str], ContainerLog] = {}  # (ns, pod, pod uid, container)

    def append_log(self, namespace: str, pod: str, container: str, text: str, stream: str = "stdout",
                   ts_ns: int | None = None) -> None:
        """Add lines to any container's log (e.g. a seeded one the runtime does not run), stamped ``ts_ns``/now."""
        with self._cond:
            stored = self._objects.get(self._key(find_resource("pods"), namespace, pod))
            if stored is None:
                raise not_found(find_resource("pods"), pod)
            uid = stored["metadata"]["uid"]
        for line in text.splitlines(keepends=True):
            self._append_log(namespace, pod, uid, container, stream, line.encode(), ts_ns)

    def container_log(self, namespace: str, pod: str, container: str) -> ContainerLog | None:
        """The log object of a container of the current pod of that name, if any."""
        with self._cond:
            stored = self._objects.get(self._key(find_resource("pods"), namespace, pod))
            if stored is None:
                return None
            return self._logs.get((namespace, pod, stored["metadata"]["uid"], container))

    # -- internals (call with self._cond held unless stated)

    def _remove(self, res: Resource, key: Key) -> Obj:
        obj = super()._remove(res, key)
        if res.plural == "pods":
            for log_key, log in self._logs.items():
                if log_key[:3] == (key[1], key[2], obj["metadata"]["uid"]):
                    log.closed = True
        return obj

    def _log_for(self, namespace: str, pod: str, uid: str, container: str) -> ContainerLog:
        key = (namespace, pod, uid, container)
        if key not in self._logs:
            self._logs[key] = ContainerLog(self.log_max_bytes)
        return self._logs[key]

    def _append_log(self, namespace: str, pod: str, uid: str, container: str, stream: str, data: bytes,
                    ts_ns: int | None = None) -> None:
        """Runtime thread: add a line (dropped if the pod is gone)."""
        with self._cond:
            log = self._log_for(namespace, pod, uid, container)
            if not log.closed:
                log.append(stream, data, ts_ns)
                self._cond.notify_all()

    def _close_log(self, namespace: str, pod: str, uid: str, container: str) -> None:
        with self._cond:
            self._log_for(namespace, pod, uid, container).closed = True
            self._cond.notify_all()

    # -- pods/log (called by the handler; raise ApiError)

    def stream_log(self, namespace: str, pod: str, query: Mapping[str, str]) -> Iterator[bytes]:
        """Check a ``pods/log`` request (raising ApiError) and return the generator of its body chunks."""
        res = find_resource("pods")
        obj = self.rest_get(res, namespace, pod)
        spec = obj.get("spec", {})
        regular = [c["name"] for c in spec.get("containers", [])]
        init = [c["name"] for c in spec.get("initContainers", []) or []]
        ephemeral = [c["name"] for c in spec.get("ephemeralContainers", []) or []]
        container = query.get("container", "")
        if not container:
            if len(regular) != 1:
                raise bad_request(f"a container name must be specified for pod {pod}, choose one of: "
                                  f"[{' '.join(regular)}]")
            container = regular[0]
        if container not in regular + init + ephemeral:
            raise bad_request(f"container {container} is not valid for pod {pod}")
        status = obj.get("status", {})
        statuses = [*status.get("containerStatuses", []), *status.get("initContainerStatuses", []),
                    *status.get("ephemeralContainerStatuses", [])]
        state = next((s.get("state", {}) for s in statuses if s.get("name") == container), None)
        if container in ephemeral and not state:
            state = {"waiting": {"reason": "ContainerCreating"}}
        if state and "waiting" in state:
            reason = state["waiting"].get("reason", "")
            why = "trying and failing to pull image" if reason in ("ErrImagePull", "ImagePullBackOff") else reason
            raise bad_request(f'container "{container}" in pod "{pod}" is waiting to start: {why}')
        try:
            options = LogOptions(
                follow=parse_bool(query.get("follow", "")),
                timestamps=parse_bool(query.get("timestamps", "")),
                limit_bytes=int(query["limitBytes"]) if "limitBytes" in query else None,
                since_seconds=int(query["sinceSeconds"]) if "sinceSeconds" in query else None,
                tail_lines=int(query["tailLines"]) if "tailLines" in query else None,
            )
        except ValueError as e:
            raise bad_request(str(e)) from e
        with self._cond:
            log = self._log_for(namespace, pod, obj["metadata"]["uid"], container)
        return self._log_chunks(log, options)

    def _log_chunks(self, log: ContainerLog, options: LogOptions) -> Iterator[bytes]:
        with self._cond:
            lines = log.lines[log.file_start:]
            position = len(log.lines)
        if options.since_seconds is not None:
            cutoff = time.time_ns() - options.since_seconds * 1_000_000_000
            lines = [line for line in lines if line.ts_ns >= cutoff]
        if options.tail_lines is not None:
            lines = lines[-options.tail_lines:] if options.tail_lines > 0 else []
        budget = options.limit_bytes

        def emit(batch: list[LogLine]) -> tuple[bytes, bool]:
            nonlocal budget
            data = b"".join(_format_line(line, options.timestamps) for line in batch)
            if budget is None:
                return data, False
            data = data[:budget]
            budget -= len(data)
            return data, budget <= 0

        data, done = emit(lines)
        if data:
            yield data
        if done or not options.follow:
            return
        while True:
            with self._cond:
                while len(log.lines) == position and not log.closed and not self._closing:
                    self._cond.wait(0.5)
                batch = log.lines[position:]
                position = len(log.lines)
                finished = log.closed or self._closing
            data, done = emit(batch)
            if data:
                yield data
            if done or (finished and not batch):
                return
