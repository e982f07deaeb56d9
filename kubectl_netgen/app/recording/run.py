"""Running a capture: every pod in parallel, the inventory before and after, the capture directory."""



from __future__ import annotations

import concurrent.futures
import json
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kubectl_netgen import __version__, capturedir, inventory
from kubectl_netgen.app.captures import Warn
from kubectl_netgen.app.recording.model import (
    CaptureProgress,
    CaptureRequest,
    CaptureResult,
    PodProgress,
    PodState,
)
from kubectl_netgen.app.recording.pod import PodCapture
from kubectl_netgen.app.recording.selection import choose_pods
from kubectl_netgen.errors import (
    ClusterError,
    ForbiddenError,
    InputError,
)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_directory() -> Path:
    """``./netgen-capture-<UTC timestamp>``."""
    return Path(f"netgen-capture-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}")


# ----------------------------------------------------------------------------- choosing pods


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
                                 (json.dumps(inventory.merge_snapshots([start_snapshot, end_snapshot]), indent=2,
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

