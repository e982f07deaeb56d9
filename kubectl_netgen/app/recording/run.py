"""Running a capture: the checks first, one window for every pod, the inventory, the capture directory."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kubectl_netgen import __version__, capturedir, inventory
from kubectl_netgen.app.captures import Warn
from kubectl_netgen.app.recording.model import (
    CapturePreview,
    CaptureProgress,
    CaptureRequest,
    CaptureResult,
    PodProgress,
)
from kubectl_netgen.app.recording.permissions import check_access
from kubectl_netgen.app.recording.pod import PodCapture
from kubectl_netgen.app.recording.selection import choose_pods
from kubectl_netgen.app.recording.window import Window
from kubectl_netgen.capturing import plan
from kubectl_netgen.errors import (
    ClusterError,
    InputError,
)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_directory() -> Path:
    """``./netgen-capture-<UTC timestamp>``."""
    return Path(f"netgen-capture-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}")


# ----------------------------------------------------------------------------- choosing pods


def _snapshot(cluster: Any, namespace: str | None, warn: Warn) -> dict[str, Any]:
    """The inventory for ``cluster.json``: every namespace if the user may read them, else what they may read.

    A user bound to a namespace Role reads the namespace's objects but not the nodes, other namespaces or
    the namespace object itself: one warning says what is missing and what ``generate`` then lacks.
    """
    from kubectl_netgen.kube import RESOURCES

    refused: list[Any] = []
    document: dict[str, Any] = cluster.snapshot(None, warn, refused)
    if refused and namespace is not None and any(r.namespaced for r in refused):
        refused = []
        document = cluster.snapshot(namespace, warn, refused)
        scope = f"namespace {namespace} only"
    else:
        scope = "every namespace"
    if refused:
        kinds = ", ".join(f"{r.plural}" for r in RESOURCES if r in refused)
        warn(f"cluster.json holds {scope}, without {kinds} (you may not read them): generate will see peers "
             "it cannot name as unknown addresses (ipBlocks); 'kubectl netgen rbac --cluster' prints what "
             "a full inventory needs")
    elif scope != "every namespace":
        warn(f"cluster.json holds {scope}: generate will see peers elsewhere as unknown addresses")
    return document


def _prepare(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a directory; choose another -o DIR")
    if directory.is_dir() and any(directory.iterdir()):
        raise InputError(_occupied(directory))
    capturedir.make_private_dirs(directory / capturedir.PCAPS_DIR)


def _occupied(directory: Path) -> str:
    """Why ``directory`` cannot take a capture, and what to do with what it holds."""
    again = (f"to capture again, choose a new -o DIR; 'kubectl netgen generate {directory} NEW_DIR' reads "
             "both as one")
    metadata = directory / capturedir.METADATA_FILE
    try:
        found = json.loads(metadata.read_text(encoding="utf-8")) if metadata.is_file() else None
    except (OSError, ValueError):
        found = None
    if isinstance(found, dict) and isinstance(found.get("pods"), list):
        kept = [p for p in found["pods"] if isinstance(p, dict) and p.get("pcap")]
        packets = sum(int(p.get("packets") or 0) for p in kept)
        how = "an interrupted capture" if found.get("interrupted") else "a capture"
        return (f"{directory} already holds {how} ({len(kept)} of {len(found['pods'])} pod(s) kept, {packets} "
                f"packets): read it with 'kubectl netgen generate {directory}'; {again}")
    if (directory / capturedir.PCAPS_DIR).is_dir():
        return (f"{directory} holds a capture that did not finish (no {capturedir.METADATA_FILE}); the pods whose "
                f"pcaps were written can be read with 'kubectl netgen generate {directory}'; {again}")
    return f"{directory} already exists and is not empty; choose another -o DIR"


def _metadata(request: CaptureRequest, result: CaptureResult, capture_id: str, namespace: str | None,
              runners: list[PodCapture]) -> dict[str, Any]:
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
                  "profile": p.profile, "outcome": p.state.value, "reason": p.reason,
                  "problems": p.problems, "packets": p.packets, "bytes": p.bytes, "exitCode": p.exit_code,
                  "droppedByKernel": p.dropped, "pcap": p.pcap, "sockets": p.sockets, "lastLines": p.last_lines,
                  "durationSeconds": r.settings.duration}
                 for r in runners for p in [r.outcome]],
    }


def capture(request: CaptureRequest, progress: CaptureProgress, warn: Warn) -> CaptureResult:
    """Capture every pod behind the targets over one window and write the capture directory.

    Args:
        request: What to capture and how.
        progress: Receives each pod's state and counts.
        warn: Receives one line per warning.

    Returns:
        The directory and each pod's outcome (``interrupted`` after Ctrl-C: what arrived is written).

    Raises:
        InputError: Bad targets or options, or the directory exists and is not empty.
        ClusterError: The cluster cannot be used, a target is missing (NotFoundError), or a permission the
            capture needs is missing (ForbiddenError names every one). Failures of single pods are outcomes.
    """
    from kubectl_netgen.kube.access import bounded

    _check(request)
    directory = request.output or default_directory()
    cluster = request.live.connect()
    try:
        namespace = None if request.all_namespaces else (request.namespace or cluster.namespace)
        check_access(cluster, namespace, warn)
        pods = choose_pods(cluster, request, namespace, warn)
        _prepare(directory)
        start_snapshot = _snapshot(cluster, namespace, warn)
        _write_cluster(directory, [start_snapshot])  # at once: a run that is killed still leaves its inventory
        capture_id = uuid.uuid4().hex[:8]
        lock = threading.Lock()

        def report(update: PodProgress) -> None:
            with lock:
                progress.update(update)

        # One log stream per pod stays open, plus the watch and the requests in flight.
        session = bounded(cluster, request.parallel, connections=len(pods) * 2 + request.parallel + 4)
        window = Window(session, request, namespace, directory, f"netgen-{capture_id}", report, warn)
        started = _now()
        interrupted = window.run(pods)
        ended = _now()
        try:
            end_snapshot = _snapshot(cluster, namespace, lambda _: None)
        except ClusterError as e:
            warn(f"cannot refresh the inventory at the end ({e.message}); cluster.json is the one from the start")
            end_snapshot = start_snapshot
        except KeyboardInterrupt:
            end_snapshot, interrupted = start_snapshot, True
        seen = {"apiVersion": "v1", "kind": "List", "items": window.pods_seen()}
        _write_cluster(directory, [start_snapshot, seen, end_snapshot])
        runners = sorted(window.runners.values(), key=lambda r: (r.ref.namespace, r.ref.name))
        result = CaptureResult(directory, [r.outcome for r in runners], interrupted, started, ended)
        metadata = _metadata(request, result, capture_id, namespace, runners)
        capturedir.write_private(directory / capturedir.METADATA_FILE, (json.dumps(metadata, indent=2) + "\n").encode())
        return result
    finally:
        cluster.close()


def preview(request: CaptureRequest, warn: Warn) -> CapturePreview:
    """What :func:`capture` would do (``--dry-run=client``): the pods and the container; nothing changes.

    Raises:
        InputError: Bad targets or options.
        ClusterError: As :func:`capture` (the permission check included).
    """
    _check(request)
    cluster = request.live.connect()
    try:
        namespace = None if request.all_namespaces else (request.namespace or cluster.namespace)
        check_access(cluster, namespace, warn)
        pods = choose_pods(cluster, request, namespace, warn)
    finally:
        cluster.close()
    profile = plan.profiles_to_try(request.settings.profile)[0]
    container = plan.container_spec("netgen-<id>", request.settings, profile)
    return CapturePreview(pods, container, request.output or default_directory())


def _check(request: CaptureRequest) -> None:
    if request.namespace is not None and request.all_namespaces:
        raise InputError("-n/--namespace and -A/--all-namespaces cannot be given together")
    if request.parallel < 1:
        raise InputError("--parallel must be at least 1")
    if request.max_pods is not None and request.max_pods < 1:
        raise InputError("--max-pods must be at least 1")


def _write_cluster(directory: Path, snapshots: list[dict[str, Any]]) -> None:
    document = inventory.merge_snapshots(snapshots)
    capturedir.write_private(directory / capturedir.CLUSTER_FILE,
                             (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
