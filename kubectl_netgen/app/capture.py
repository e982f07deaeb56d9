"""``capture``: run tcpdump in an ephemeral container in every pod behind the targets; write a capture directory.

For each pod (in parallel, bounded): add the capture container (``pods/ephemeralcontainers``; nothing
restarts), wait for it to run (giving up after the start timeout), follow its log and decode the framed
base64 stream as it arrives (:mod:`kubectl_netgen.capturing.stream`), writing each tcpdump's bytes to disk
at once, then merge them into ``pcaps/<ns>/<pod>.pcap`` and write the socket tables. A pod's failure is its
own outcome; the others go on. On Ctrl-C every stream is closed, what arrived is written, and the result
says it was interrupted. The inventory is read at the start and again at the end (``cluster.json``).

Progress goes to a :class:`CaptureProgress` the CLI passes in; nothing here prints.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import enum
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from kubectl_netgen import __version__, capturedir
from kubectl_netgen.app.captures import Warn
from kubectl_netgen.app.cluster import LiveCluster
from kubectl_netgen.capturing import plan
from kubectl_netgen.capturing.stream import StreamDecoder, merge_pcaps
from kubectl_netgen.capturing.targets import POD, Target, owned_by, parse_target, pod_selector
from kubectl_netgen.errors import (
    ClusterError,
    ForbiddenError,
    InputError,
    NetgenError,
    NotFoundError,
    PodSecurityError,
)

POLL_SECONDS = 0.5
GRACE_SECONDS = 30.0
"""How long after the capture's duration a stream may still run before it is cut (tcpdump ends by itself)."""
REPORT_SECONDS = 0.25
"""At most this often a pod's packet counts are reported while it captures."""


class PodState(str, enum.Enum):
    """Where one pod's capture stands."""

    PENDING = "pending"
    STARTING = "starting"
    CAPTURING = "capturing"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class PodProgress:
    """One report about a pod's capture."""

    namespace: str
    pod: str
    state: PodState
    packets: int = 0
    bytes: int = 0
    detail: str = ""
    """Why it failed, which profile it uses, what it waits for."""


class CaptureProgress(Protocol):
    """Receives progress reports (from several threads: implementations serialize)."""

    def update(self, progress: PodProgress) -> None:
        """A pod's state or counts changed."""


@dataclass(frozen=True)
class CaptureRequest:
    """What ``kubectl netgen capture`` was asked to do."""

    targets: tuple[str, ...]
    settings: plan.Settings
    namespace: str | None = None
    all_namespaces: bool = False
    selector: str | None = None
    output: Path | None = None
    """The capture directory; ``None``: ``./netgen-capture-<UTC timestamp>``."""
    max_pods: int | None = None
    """Pods captured per target at most (``None``: all running pods)."""
    parallel: int = 8
    start_timeout: float = 60.0
    live: LiveCluster = field(default_factory=LiveCluster)


@dataclass(frozen=True)
class PodRef:
    """A pod chosen for capture."""

    namespace: str
    name: str
    target: str
    """The target that chose it (``deployment/web``, ``-l app=web``)."""
    phase: str
    ready: bool


@dataclass
class PodOutcome:
    """How one pod's capture ended."""

    namespace: str
    pod: str
    target: str
    state: PodState = PodState.PENDING
    container: str = ""
    profile: str | None = None
    packets: int = 0
    bytes: int = 0
    reason: str | None = None
    """Why it failed (one line)."""
    problems: list[str] = field(default_factory=list)
    """What is missing from what arrived (empty: a complete capture)."""
    last_lines: list[str] = field(default_factory=list)
    """The container's last messages, when it failed."""
    exit_code: int | None = None
    pcap: str | None = None
    """The capture file, relative to the capture directory."""
    sockets: bool = False
    dropped: int = 0

    @property
    def ok(self) -> bool:
        """The pod was captured completely."""
        return self.state is PodState.DONE


@dataclass(frozen=True)
class CaptureResult:
    """What a capture wrote."""

    directory: Path
    pods: list[PodOutcome]
    interrupted: bool
    started: str
    ended: str

    @property
    def succeeded(self) -> int:
        """Pods captured completely."""
        return sum(p.ok for p in self.pods)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_directory() -> Path:
    """``./netgen-capture-<UTC timestamp>``."""
    return Path(f"netgen-capture-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}")


# ----------------------------------------------------------------------------- choosing pods


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _ref(pod: dict[str, Any], target: str) -> PodRef:
    meta = pod.get("metadata") or {}
    return PodRef(str(meta.get("namespace") or ""), str(meta.get("name")), target,
                  str((pod.get("status") or {}).get("phase") or "Unknown"), _is_ready(pod))


def _pods_of(cluster: Any, target: Target, obj: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    from kubectl_netgen import kube

    if target.kind is POD:
        return [obj]
    if target.kind.kind == "CronJob":
        jobs = [j for j in kube.list_objects(cluster, "batch/v1", "jobs", namespace)
                if owned_by(j, "CronJob", {target.name})]
        names = {str(j["metadata"]["name"]) for j in jobs}
        if not names:
            return []
        pods = kube.list_objects(cluster, "v1", "pods", namespace)
        return [p for p in pods if owned_by(p, "Job", names)]
    selector = pod_selector(target, obj)
    if selector is None:
        return []
    pods = kube.list_objects(cluster, "v1", "pods", namespace, selector)
    if target.kind.kind == "Deployment":
        rs = [r for r in kube.list_objects(cluster, "apps/v1", "replicasets", namespace, selector)
              if owned_by(r, "Deployment", {target.name})]
        owners = {str(r["metadata"]["name"]) for r in rs}
        return [p for p in pods if owned_by(p, "ReplicaSet", owners)]
    if target.kind.kind in ("StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [p for p in pods if owned_by(p, target.kind.kind, {target.name})]
    return pods  # a Service selects by labels alone


def _objects_named(cluster: Any, target: Target, namespace: str | None) -> list[tuple[str, dict[str, Any]]]:
    from kubectl_netgen import kube

    if namespace is not None:
        return [(namespace, kube.get_object(cluster, target.kind.api_version, target.kind.plural, namespace,
                                            target.name))]
    found = [(str(o["metadata"].get("namespace")), o)
             for o in kube.list_objects(cluster, target.kind.api_version, target.kind.plural, None)
             if o.get("metadata", {}).get("name") == target.name]
    if not found:
        raise NotFoundError(f'{target.kind.plural} "{target.name}" not found in any namespace')
    return found


def choose_pods(cluster: Any, request: CaptureRequest, namespace: str | None, warn: Warn) -> list[PodRef]:
    """The pods behind the targets and the selector, each once, sorted by namespace and name.

    Pods that are not running are kept (their capture fails with the reason); ``max_pods`` keeps the first
    running and ready pods of each target.

    Raises:
        InputError: A target cannot be parsed, or nothing was asked for.
        NotFoundError: A named target does not exist, or no pod is behind any target.
        ClusterError: The cluster cannot be read (ForbiddenError names the permission).
    """
    from kubectl_netgen import kube

    if not request.targets and not request.selector:
        raise InputError("nothing to capture: give targets (deploy/NAME, pod/NAME, svc/NAME, …) or -l SELECTOR")
    targets = [parse_target(t) for t in request.targets]
    chosen: dict[tuple[str, str], PodRef] = {}

    def keep(label: str, pods: list[dict[str, Any]]) -> None:
        refs = sorted((_ref(p, label) for p in pods), key=lambda r: (not (r.phase == "Running" and r.ready),
                                                                      r.namespace, r.name))
        if not refs:
            warn(f"{label}: no pods")
            return
        if request.max_pods is not None:
            refs = refs[:request.max_pods]
        for ref in refs:
            chosen.setdefault((ref.namespace, ref.name), ref)

    for target in targets:
        for ns, obj in _objects_named(cluster, target, namespace):
            label = str(target) if namespace is not None else f"{ns}/{target}"
            keep(label, _pods_of(cluster, target, obj, ns))
    if request.selector:
        keep(f"-l {request.selector}", kube.list_objects(cluster, "v1", "pods", namespace, request.selector))
    if not chosen:
        where = "in any namespace" if namespace is None else f'in namespace "{namespace}"'
        raise NotFoundError(f"no pods to capture {where}: the targets select none")
    return [chosen[k] for k in sorted(chosen)]


# ----------------------------------------------------------------------------- one pod


class PodCapture:
    """Captures one pod: add the container, wait for it, follow and decode its log, write the files."""

    def __init__(self, cluster: Any, ref: PodRef, settings: plan.Settings, container: str, root: Path,
                 start_timeout: float, report: Callable[[PodProgress], None], stop: threading.Event) -> None:
        """Prepare; :meth:`run` does the work (on a worker thread)."""
        self.cluster, self.ref, self.settings, self.root = cluster, ref, settings, root
        self.start_timeout, self._report, self.stop = start_timeout, report, stop
        self.outcome = PodOutcome(ref.namespace, ref.name, ref.target, container=container)
        self._stream: Any = None
        self._lock = threading.Lock()
        self._parts: dict[str, Any] = {}
        self._last_report = 0.0

    def abort(self) -> None:
        """Stop waiting and reading (from another thread): what arrived is still written."""
        self.stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def report(self, state: PodState, detail: str = "", decoder: StreamDecoder | None = None) -> None:
        """Tell the progress sink."""
        self.outcome.state = state
        packets, size = (decoder.packets, decoder.bytes) if decoder else (self.outcome.packets, self.outcome.bytes)
        self._report(PodProgress(self.ref.namespace, self.ref.name, state, packets, size, detail))

    def fail(self, reason: str, state: PodState = PodState.FAILED) -> PodOutcome:
        """End this pod's capture with ``reason``."""
        self.outcome.reason = reason
        self.report(state, reason)
        return self.outcome

    def run(self) -> PodOutcome:
        """Capture the pod; every failure becomes the outcome's reason, never an exception."""
        try:
            return self._run()
        except NetgenError as e:
            return self.fail(e.message)

    def _run(self) -> PodOutcome:
        ref = self.ref
        self.report(PodState.STARTING, "adding the capture container")
        if ref.phase != "Running":
            return self.fail(f"pod is not running (phase {ref.phase})")
        failure = self._add_container()
        if failure:
            return self.fail(failure)
        failure = self._wait_running()
        if failure:
            return self.fail(failure, PodState.INTERRUPTED if self.stop.is_set() else PodState.FAILED)
        decoder = StreamDecoder(self._write_part)
        try:
            self._follow(decoder)
        finally:
            self._close_parts()
        return self._finish(decoder)

    def _add_container(self) -> str | None:
        from kubectl_netgen import kube

        tried: list[str] = []
        for profile in plan.profiles_to_try(self.settings.profile):
            spec = plan.container_spec(self.outcome.container, self.settings, profile)
            try:
                kube.add_ephemeral_container(self.cluster, self.ref.namespace, self.ref.name, spec)
            except PodSecurityError as e:
                tried.append(f"{profile.value}: {e.message}")
                if e.level == "restricted":
                    return (f'namespace "{self.ref.namespace}" enforces Pod Security "restricted", where no in-pod '
                            "capture is possible (tcpdump needs NET_RAW, which restricted forbids); capture "
                            "where the level is baseline or privileged")
                continue
            except NotFoundError as e:
                return f"{e.message}"
            except ClusterError as e:
                return e.message
            self.outcome.profile = profile.value
            return None
        return "Pod Security refused every capability profile: " + "; ".join(tried)

    def _container_state(self) -> tuple[str, dict[str, Any]] | None:
        """("waiting"|"running"|"terminated", details) of the capture container; ``None`` if the pod is gone."""
        from kubectl_netgen import kube

        pod = kube.read_pod(self.cluster, self.ref.namespace, self.ref.name)
        if pod is None:
            return None
        for status in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []:
            if status.get("name") == self.outcome.container:
                state = status.get("state") or {}
                for key in ("terminated", "running", "waiting"):
                    if key in state:
                        return key, dict(state[key] or {})
        return "waiting", {"reason": "ContainerCreating"}

    def _wait_running(self) -> str | None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while True:
            state = self._container_state()
            if state is None:
                return "pod was deleted before the capture started"
            kind, details = state
            if kind in ("running", "terminated"):
                return None
            reason = str(details.get("reason") or "ContainerCreating")
            message = str(details.get("message") or "")
            last = f"{reason}: {message}" if message else reason
            if time.monotonic() >= deadline:
                if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"):
                    return (f"image {self.settings.image} cannot be pulled ({last}); gave up after "
                            f"{self.start_timeout:g}s (--start-timeout); use --image with an image the nodes can pull")
                return f"the capture container did not start within {self.start_timeout:g}s (--start-timeout): {last}"
            self.report(PodState.STARTING, last)
            if self.stop.wait(POLL_SECONDS / 4):
                return "interrupted before the capture started"

    def _follow(self, decoder: StreamDecoder) -> None:
        from kubectl_netgen import kube

        stream = None
        deadline = time.monotonic() + 10
        while stream is None:
            try:
                stream = kube.follow_log(self.cluster, self.ref.namespace, self.ref.name, self.outcome.container)
            except NotFoundError:
                return
            except ForbiddenError:
                raise
            except ClusterError:
                # BadRequest while the status lags behind the container: retry briefly.
                if time.monotonic() > deadline or self.stop.wait(POLL_SECONDS):
                    raise
        with self._lock:
            self._stream = stream
        if self.stop.is_set():
            stream.close()
        watchdog = threading.Timer(self.settings.duration + GRACE_SECONDS, stream.close)
        watchdog.daemon = True
        watchdog.start()
        self.report(PodState.CAPTURING, self.outcome.profile or "", decoder)
        try:
            for chunk in stream:
                decoder.feed(chunk)
                now = time.monotonic()
                if now - self._last_report >= REPORT_SECONDS:
                    self._last_report = now
                    self.report(PodState.CAPTURING, self.outcome.profile or "", decoder)
        finally:
            watchdog.cancel()
            stream.close()
            decoder.finish()

    def _write_part(self, channel: str, data: bytes) -> None:
        part = self._parts.get(channel)
        if part is None:
            part = capturedir.open_private(capturedir.part_path(self.root, self.ref.namespace, self.ref.name,
                                                                channel))
            self._parts[channel] = part
        part.write(data)

    def _close_parts(self) -> None:
        for part in self._parts.values():
            part.close()

    def _finish(self, decoder: StreamDecoder) -> PodOutcome:
        out = self.outcome
        out.packets, out.bytes, out.dropped = decoder.packets, decoder.bytes, decoder.dropped
        out.problems = decoder.problems()
        self._write_files(decoder)
        state = None if self.stop.is_set() else self._final_state()
        if self.stop.is_set():
            out.reason = "interrupted: kept what arrived"
            self.report(PodState.INTERRUPTED, out.reason, decoder)
            return out
        if state is None:
            return self.fail(f"pod was deleted during the capture; kept {out.packets} packets that arrived")
        kind, details = state
        code = details.get("exitCode")
        out.exit_code = int(code) if isinstance(code, int) else None
        if kind == "terminated" and out.exit_code not in (0, None):
            out.last_lines = list(decoder.messages)[-5:]
            tail = " | ".join(out.last_lines) or "no output"
            return self.fail(f"capture container terminated early (exit code {out.exit_code}, "
                             f"{details.get('reason') or 'Error'}); its last lines: {tail}")
        if not decoder.begun:
            out.last_lines = list(decoder.messages)[-5:]
            tail = " | ".join(out.last_lines) or "none"
            return self.fail(f"{out.problems[0]}; the container's last lines: {tail}")
        if out.problems:
            return self.fail("incomplete capture: " + "; ".join(out.problems))
        self.report(PodState.DONE, f"{out.packets} packets", decoder)
        return out

    def _final_state(self) -> tuple[str, dict[str, Any]] | None:
        # The log ends just before kubelet reports the container terminated: wait for the status, briefly.
        deadline = time.monotonic() + 10
        while True:
            state = self._container_state()
            if state is None or state[0] == "terminated" or time.monotonic() >= deadline:
                return state
            time.sleep(POLL_SECONDS / 2)

    def _write_files(self, decoder: StreamDecoder) -> None:
        ns, pod, root = self.ref.namespace, self.ref.name, self.root
        parts = [capturedir.part_path(root, ns, pod, c) for c in sorted(decoder.channels)]
        parts = [p for p in parts if p.is_file()]
        if parts:
            target = capturedir.pcap_path(root, ns, pod)
            with contextlib.ExitStack() as stack:
                streams = [(p.name, stack.enter_context(p.open("rb"))) for p in parts]
                output = stack.enter_context(capturedir.open_private(target))
                merged = merge_pcaps(streams, output)
            self.outcome.problems += list(merged.skipped)
            self.outcome.pcap = str(target.relative_to(root))
            for part in parts:
                part.unlink()
        for (moment, table), text in sorted(decoder.tables.items()):
            if moment in capturedir.SOCKET_MOMENTS and table in capturedir.SOCKET_TABLES:
                capturedir.write_private(capturedir.sockets_path(root, ns, pod, moment, table), bytes(text))
                self.outcome.sockets = True


# ----------------------------------------------------------------------------- the use case


def _snapshot(cluster: Any, namespace: str | None, warn: Warn) -> dict[str, Any]:
    try:
        document: dict[str, Any] = cluster.snapshot(None, warn)
        return document
    except ForbiddenError as e:
        if namespace is None:
            raise
        warn(f"{e.message}; cluster.json holds namespace {namespace} only")
        document = cluster.snapshot(namespace, warn)
        return document


def _prepare(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InputError(f"{directory} already exists and is not empty; choose another -o DIR")
    capturedir.make_private_dirs(directory / capturedir.PCAPS_DIR)


def _metadata(request: CaptureRequest, result: CaptureResult, capture_id: str, namespace: str | None,
              profiles: dict[str, str | None]) -> dict[str, Any]:
    settings = request.settings
    return {
        "apiVersion": "netgen.io/v1alpha1", "kind": "Capture",
        "id": capture_id,
        "tool": {"name": "kubectl-netgen", "version": __version__},
        "targets": list(request.targets), "selector": request.selector,
        "namespace": namespace, "allNamespaces": request.all_namespaces,
        "window": {"start": result.started, "end": result.ended, "durationSeconds": settings.duration},
        "image": settings.image, "profile": settings.profile.value, "full": settings.full,
        "userFilter": settings.user_filter,
        "streams": [{"channel": c, "filter": f, "snaplen": s} for c, (f, s) in settings.streams.items()],
        "interrupted": result.interrupted,
        "pods": [{"namespace": p.namespace, "name": p.pod, "target": p.target, "container": p.container,
                  "profile": profiles.get(p.pod), "outcome": p.state.value, "reason": p.reason,
                  "problems": p.problems, "packets": p.packets, "bytes": p.bytes, "exitCode": p.exit_code,
                  "droppedByKernel": p.dropped, "pcap": p.pcap, "sockets": p.sockets, "lastLines": p.last_lines}
                 for p in result.pods],
    }


def capture(request: CaptureRequest, progress: CaptureProgress, warn: Warn) -> CaptureResult:
    """Capture every pod behind the targets and write the capture directory.

    Args:
        request: What to capture and how.
        progress: Receives each pod's state and counts.
        warn: Receives one line per warning.

    Returns:
        The directory and each pod's outcome (``interrupted`` after Ctrl-C: what arrived is written).

    Raises:
        InputError: Bad targets or options, or the directory exists and is not empty.
        ClusterError: The cluster cannot be used, a target is missing (NotFoundError) or cannot be read
            (ForbiddenError). Failures of single pods are outcomes, not errors.
    """
    from kubectl_netgen import kube

    if request.namespace is not None and request.all_namespaces:
        raise InputError("-n/--namespace and -A/--all-namespaces cannot be given together")
    if request.parallel < 1:
        raise InputError("--parallel must be at least 1")
    if request.max_pods is not None and request.max_pods < 1:
        raise InputError("--max-pods must be at least 1")
    directory = request.output or default_directory()
    cluster = kube.connect(request.live.kubeconfig, request.live.context)
    try:
        namespace = None if request.all_namespaces else (request.namespace or cluster.namespace)
        pods = choose_pods(cluster, request, namespace, warn)
        _prepare(directory)
        start_snapshot = _snapshot(cluster, namespace, warn)
        capture_id = uuid.uuid4().hex[:8]
        container = f"netgen-{capture_id}"
        started = _now()
        stop = threading.Event()
        lock = threading.Lock()

        def report(update: PodProgress) -> None:
            with lock:
                progress.update(update)

        runners = [PodCapture(cluster, ref, request.settings, container, directory, request.start_timeout,
                              report, stop) for ref in pods]
        for runner in runners:
            report(PodProgress(runner.ref.namespace, runner.ref.name, PodState.PENDING))
        interrupted = _run_all(runners, request.parallel, stop)
        ended = _now()
        try:
            end_snapshot = _snapshot(cluster, namespace, warn)
        except ClusterError as e:
            warn(f"cannot refresh the inventory at the end ({e.message}); cluster.json is the one from the start")
            end_snapshot = start_snapshot
        except KeyboardInterrupt:
            end_snapshot, interrupted = start_snapshot, True
        capturedir.write_private(directory / capturedir.CLUSTER_FILE,
                                 (json.dumps(kube.merge_snapshots(start_snapshot, end_snapshot), indent=2,
                                             sort_keys=True) + "\n").encode())
        outcomes = [r.outcome for r in runners]
        result = CaptureResult(directory, outcomes, interrupted, started, ended)
        profiles = {r.ref.name: r.outcome.profile for r in runners}
        metadata = _metadata(request, result, capture_id, namespace, profiles)
        capturedir.write_private(directory / capturedir.METADATA_FILE,
                                 (json.dumps(metadata, indent=2) + "\n").encode())
        return result
    finally:
        cluster.close()


def _run_all(runners: list[PodCapture], parallel: int, stop: threading.Event) -> bool:
    """Run the captures on at most ``parallel`` threads; on Ctrl-C abort them all. Return whether interrupted."""
    interrupted = False
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="capture")
    try:
        futures = [pool.submit(r.run) for r in runners]
        pending = set(futures)
        while pending:
            try:
                _, pending = concurrent.futures.wait(pending, timeout=0.2)
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                for runner in runners:
                    runner.abort()
        for future in futures:
            error = future.exception()
            if error is not None:
                raise error  # a bug: every expected failure is an outcome
        return interrupted
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for runner, future in zip(runners, futures, strict=False):
            if future.cancelled():
                runner.outcome.state, runner.outcome.reason = PodState.INTERRUPTED, "interrupted before it started"
