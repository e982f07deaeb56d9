"""One capture window: every target pod captured over the same seconds, and the pods that come and go.

All pods start at once, each on its own thread, so their captures cover the same window whatever
``--parallel`` says: ``--parallel`` bounds the API requests in flight (:func:`kubectl_netgen.kube.access.bounded`),
not the captures. A watch on the pods of the namespace (all namespaces with ``-A``) keeps every version
of every pod it sees, so ``cluster.json`` knows the pods that came and went during the window, and pods
of the targets that start during the window are captured too, for what is left of it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubectl_netgen.app.captures import Warn
from kubectl_netgen.app.recording.model import CaptureRequest, PodProgress, PodRef, PodState
from kubectl_netgen.app.recording.pod import PodCapture
from kubectl_netgen.app.recording.selection import choose_pods, is_host_network
from kubectl_netgen.errors import ClusterError

LATE_MIN_SECONDS = 3.0
"""A pod that starts with less than this left of the window is not captured (its container would barely run)."""
DISCOVERY_SECONDS = 1.0
"""At most this often the targets are looked up again after the watch saw a new running pod."""


class Window:
    """The captures of one run, started together and ended together, plus the pods seen meanwhile."""

    def __init__(self, cluster: Any, request: CaptureRequest, namespace: str | None, directory: Path,
                 container: str, report: Callable[[PodProgress], None], warn: Warn) -> None:
        """Prepare; :meth:`run` starts the captures."""
        self.cluster, self.request, self.namespace = cluster, request, namespace
        self.directory, self.container, self._report, self._warn = directory, container, report, warn
        self.stop = threading.Event()
        self.runners: dict[tuple[str, str], PodCapture] = {}
        self.seen: dict[tuple[str, str], dict[str, Any]] = {}
        """The last version of every pod the watch saw, deleted ones included."""
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._candidates: set[tuple[str, str]] = set()
        self._wake = threading.Event()
        self._end = math.inf
        self._watch: Any = None
        self._discovering = True

    # -- running

    def run(self, pods: list[PodRef]) -> bool:
        """Capture ``pods`` and those that join; return whether Ctrl-C ended it (what arrived is kept).

        Raises:
            Exception: A bug in a capture thread (every expected failure is a pod's outcome).
        """
        self._end = time.monotonic() + self.request.settings.duration
        for ref in pods:
            self._report(PodProgress(ref.namespace, ref.name, PodState.PENDING))
        for ref in pods:
            self._add(ref, self.request.settings.duration)
        self._start_watch()
        discovery = threading.Thread(target=self._discover, name="netgen-discovery", daemon=True)
        discovery.start()
        interrupted = False
        try:
            while not self._finished():
                try:
                    self.stop.wait(0.2)
                except KeyboardInterrupt:
                    interrupted = True
                    self._abort()
        finally:
            self._discovering = False
            self._wake.set()
            if self._watch is not None:
                self._watch.close()
            while any(t.is_alive() for t in self._threads):
                try:
                    for thread in self._threads:
                        thread.join()
                except KeyboardInterrupt:
                    interrupted = True
                    self._abort()
        if self._errors:
            raise self._errors[0]
        return interrupted

    def _finished(self) -> bool:
        with self._lock:
            return all(not t.is_alive() for t in self._threads)

    def _abort(self) -> None:
        self.stop.set()
        with self._lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.abort()

    def _add(self, ref: PodRef, seconds: int) -> None:
        settings = dataclasses.replace(self.request.settings, duration=seconds)
        runner = PodCapture(self.cluster, ref, settings, self.container, self.directory, self.request.start_timeout,
                            self._report, self.stop)

        def work() -> None:
            try:
                runner.run()
            except BaseException as e:  # a bug: re-raised by run() on the main thread
                self._errors.append(e)

        thread = threading.Thread(target=work, name=f"capture-{ref.namespace}-{ref.name}", daemon=True)
        with self._lock:
            if (ref.namespace, ref.name) in self.runners or self.stop.is_set():
                return
            self.runners[(ref.namespace, ref.name)] = runner
            self._threads.append(thread)
        thread.start()

    # -- pods that come and go

    def _start_watch(self) -> None:
        from kubectl_netgen.kube.watch import PodWatch

        watch = PodWatch(self.cluster, self.namespace, self._event, self._watch_failed)
        try:
            self._watch = watch.start()
        except ClusterError as e:
            self._watch_failed(e)

    def _watch_failed(self, error: ClusterError) -> None:
        self._discovering = False
        self._warn(f"cannot follow the pods during the capture ({error.message}): pods that start now are not "
                   "captured, and cluster.json lacks pods that come and go between its two reads")

    def _event(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        with self._lock:
            self.seen[key] = pod
            known = key in self.runners
        running = (pod.get("status") or {}).get("phase") == "Running"
        if kind in ("ADDED", "MODIFIED") and running and not known and not is_host_network(pod):
            with self._lock:
                self._candidates.add(key)
            self._wake.set()

    def _discover(self) -> None:
        """Look the targets up again when the watch saw new running pods; capture the new ones of them."""
        while self._discovering and not self.stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if not self._discovering or self.stop.is_set():
                return
            left = self._end - time.monotonic()
            if left < LATE_MIN_SECONDS:
                return
            with self._lock:
                candidates, self._candidates = self._candidates, set()
            try:
                chosen = choose_pods(self.cluster, self.request, self.namespace, lambda _: None)
            except ClusterError as e:
                self._warn(f"cannot look the targets up again ({e.message}): pods that start now are not captured")
                return
            for ref in chosen:
                if (ref.namespace, ref.name) in candidates and ref.phase == "Running":
                    self._warn(f"{ref.namespace}/{ref.name} started during the window: captured for its last "
                               f"{int(left)}s")
                    self._add(ref, int(left))
            self.stop.wait(DISCOVERY_SECONDS)

    def pods_seen(self) -> list[dict[str, Any]]:
        """Every pod the watch saw (the last version of each), for ``cluster.json``."""
        with self._lock:
            return list(self.seen.values())
