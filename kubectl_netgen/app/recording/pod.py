"""One pod's capture: add the container, wait for it, follow and decode its stream, write its files."""


from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubectl_netgen import capturedir
from kubectl_netgen.app.recording.model import (
    GRACE_SECONDS,
    POLL_SECONDS,
    REPORT_SECONDS,
    PodOutcome,
    PodProgress,
    PodRef,
    PodState,
)
from kubectl_netgen.capturing import plan
from kubectl_netgen.capturing.stream import StreamDecoder, merge_pcaps
from kubectl_netgen.errors import (
    ClusterError,
    ForbiddenError,
    NetgenError,
    NotFoundError,
    PodSecurityError,
)


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
        profiles = plan.profiles_to_try(self.settings.profile)
        tried: list[str] = []
        base = self.outcome.container
        while True:
            failure, profiles = self._add_container(profiles, tried)
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
            denied = decoder.privilege_failure()
            if denied is None or not profiles or self.stop.is_set():
                return self._finish(decoder, tried)
            # tcpdump lacked a privilege under this profile (a capability, the switch to its own user):
            # ``auto`` goes on to the next one in a new container, as for a Pod Security refusal.
            tried.append(f"{self.outcome.profile}: {denied}")
            self._drop_parts()
            self.outcome.container = f"{base}-{profiles[0].value}"
            self.report(PodState.STARTING, f"tcpdump failed under profile {self.outcome.profile} ({denied}); "
                        f"trying {profiles[0].value}")

    def _add_container(self, profiles: tuple[plan.Profile, ...],
                       tried: list[str]) -> tuple[str | None, tuple[plan.Profile, ...]]:
        """Add the container with the first of ``profiles`` admitted: (failure or ``None``, profiles left)."""
        from kubectl_netgen import kube

        for i, profile in enumerate(profiles):
            spec = plan.container_spec(self.outcome.container, self.settings, profile)
            try:
                kube.add_ephemeral_container(self.cluster, self.ref.namespace, self.ref.name, spec)
            except PodSecurityError as e:
                tried.append(f"{profile.value}: {e.message}")
                if e.level == "restricted":
                    return (f'namespace "{self.ref.namespace}" enforces Pod Security "restricted", where no in-pod '
                            "capture is possible (tcpdump needs NET_RAW, which restricted forbids); capture "
                            "where the level is baseline or privileged"), ()
                continue
            except NotFoundError as e:
                return f"{e.message}", ()
            except ClusterError as e:
                return e.message, ()
            self.outcome.profile = profile.value
            return None, profiles[i + 1:]
        ran = len(tried) - len(profiles)
        return ("no capability profile worked: " if ran else "Pod Security refused every capability profile: "
                ) + "; ".join(tried), ()

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

    def _drop_parts(self) -> None:
        """Forget what a failed container sent (its pcap parts), before the next profile's container."""
        for channel in self._parts:
            capturedir.part_path(self.root, self.ref.namespace, self.ref.name, channel).unlink(missing_ok=True)
        self._parts = {}

    def _finish(self, decoder: StreamDecoder, tried: list[str]) -> PodOutcome:
        out = self.outcome
        out.packets, out.bytes, out.dropped = decoder.packets, decoder.bytes, decoder.dropped
        out.problems = decoder.problems()
        if out.problems and tried:
            out.problems.append(f"under profile {out.profile}; before it: " + "; ".join(tried))
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
            out.last_lines = list(decoder.messages)[-5:]
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
