"""Container runtimes for the test API server: how an ephemeral container's command actually runs.

The API server (:mod:`tests.cluster.apiserver`) owns pod state and logs; a :class:`ContainerRuntime`
only runs processes and reports what happens through a :class:`ContainerEvents` sink, the way kubelet
reports to the API server. :class:`ProcessRuntime` runs each container as a local process made by an
injected ``spawn`` function, so the lead can run it inside a pod's network namespace instead.

Faults a test can inject: :meth:`ProcessRuntime.fail_image_pull` (the container never starts and
stays ``ErrImagePull`` then ``ImagePullBackOff``) and :meth:`ProcessRuntime.kill` (SIGKILL, reported
as exit code 137, reason ``Error``, as kubelet does).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Spawn = Callable[[str, str, list[str], dict[str, str]], "subprocess.Popen[bytes]"]

PULL_FAILURE_MESSAGE = "trying and failing to pull image"


class ContainerEvents(Protocol):
    """What a runtime reports about one container (implemented by the API server)."""

    def waiting(self, reason: str, message: str = "") -> None:
        """The container is not running yet (``ContainerCreating``, ``ErrImagePull``, ...)."""

    def started(self, container_id: str, image_id: str) -> None:
        """The process is running."""

    def output(self, stream: str, line: bytes) -> None:
        """One line (with its newline, if any) the process wrote to ``stdout`` or ``stderr``."""

    def terminated(self, exit_code: int) -> None:
        """The process ended; all of its output was reported before this call."""


class ContainerRuntime(Protocol):
    """Runs containers of pods; the API server calls it when an ephemeral container is added."""

    def start(self, namespace: str, pod: str, container: Mapping[str, Any], events: ContainerEvents) -> None:
        """Start ``container`` (a Kubernetes container spec) and report to ``events``; return at once."""

    def kill(self, namespace: str, pod: str, container: str) -> None:
        """SIGKILL one running container."""

    def kill_pod(self, namespace: str, pod: str) -> None:
        """SIGKILL every container of a pod (the pod is being deleted)."""

    def close(self) -> None:
        """Kill everything still running and wait for the reporting threads."""


def local_spawn(namespace: str, pod: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Run ``argv`` as a local process with piped stdout and stderr (the default ``spawn``)."""
    del namespace, pod
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **env}, start_new_session=True)


def container_argv(container: Mapping[str, Any]) -> list[str]:
    """Return the argv a container runs: ``command`` + ``args`` (the image's entrypoint is not modelled)."""
    command = [str(a) for a in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    argv = command + args
    if not argv:
        raise ValueError(f"container {container.get('name')!r} has neither command nor args")
    return argv


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """Return the literal ``env`` values of a container (``valueFrom`` is not modelled)."""
    return {str(e["name"]): str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}


def exit_code_of(returncode: int) -> int:
    """Map a Popen return code to a container exit code (killed by signal N -> 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    threads: list[threading.Thread] = field(default_factory=list)


class ProcessRuntime:
    """Runs each container as a process made by ``spawn(namespace, pod, argv, env)``."""

    def __init__(self, spawn: Spawn | None = None, pull_backoff_seconds: float = 0.3) -> None:
        """Use ``spawn`` (default :func:`local_spawn`); ``pull_backoff_seconds`` until ``ImagePullBackOff``."""
        self._spawn: Spawn = spawn or local_spawn
        self._pull_backoff = pull_backoff_seconds
        self._failing_images: set[str] = set()
        self._running: dict[tuple[str, str, str], _Running] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def fail_image_pull(self, image: str) -> None:
        """Make every later container with exactly this ``image`` fail to pull."""
        self._failing_images.add(image)

    def start(self, namespace: str, pod: str, container: Mapping[str, Any], events: ContainerEvents) -> None:
        """Start the container on a background thread that reports to ``events``."""
        thread = threading.Thread(target=self._run, args=(namespace, pod, dict(container), events),
                                  name=f"runtime-{namespace}-{pod}-{container.get('name')}", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _run(self, namespace: str, pod: str, container: dict[str, Any], events: ContainerEvents) -> None:
        name = str(container.get("name"))
        image = str(container.get("image", ""))
        events.waiting("ContainerCreating")
        if image in self._failing_images:
            message = f'Failed to pull image "{image}": {PULL_FAILURE_MESSAGE}'
            events.waiting("ErrImagePull", message)
            time.sleep(self._pull_backoff)
            events.waiting("ImagePullBackOff", f'Back-off pulling image "{image}": ErrImagePull: {message}')
            return
        try:
            process = self._spawn(namespace, pod, container_argv(container), container_env(container))
        except (OSError, ValueError) as e:
            events.waiting("RunContainerError", str(e))
            return
        running = _Running(process)
        with self._lock:
            self._running[(namespace, pod, name)] = running
        events.started(f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}", f"{image}@sha256:" + "0" * 64)
        for stream_name, stream in (("stdout", process.stdout), ("stderr", process.stderr)):
            if stream is None:
                continue
            reader = threading.Thread(target=self._pump, args=(stream_name, stream, events), daemon=True)
            running.threads.append(reader)
            reader.start()
        process.wait()
        for reader in running.threads:
            reader.join()
        with self._lock:
            self._running.pop((namespace, pod, name), None)
        events.terminated(exit_code_of(process.returncode))

    @staticmethod
    def _pump(stream_name: str, stream: Any, events: ContainerEvents) -> None:
        with stream:
            for line in iter(stream.readline, b""):
                events.output(stream_name, line)

    def kill(self, namespace: str, pod: str, container: str) -> None:
        """SIGKILL one container's process (its status becomes terminated, exit code 137)."""
        with self._lock:
            running = self._running.get((namespace, pod, container))
        if running is not None:
            _kill(running.process)

    def kill_pod(self, namespace: str, pod: str) -> None:
        """SIGKILL every process of a pod."""
        with self._lock:
            victims = [r for (ns, p, _), r in self._running.items() if (ns, p) == (namespace, pod)]
        for running in victims:
            _kill(running.process)

    def close(self) -> None:
        """Kill every process and wait (bounded) for the reporting threads."""
        with self._lock:
            victims = list(self._running.values())
            threads = list(self._threads)
        for running in victims:
            _kill(running.process)
        for thread in threads:
            thread.join(timeout=5)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
