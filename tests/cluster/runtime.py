"""Container runtimes for the test API server: how an ephemeral container's command actually runs.

The API server (:mod:`tests.cluster.apiserver`) owns pod state and logs; a :class:`ContainerRuntime`
only runs processes and reports what happens through a :class:`ContainerEvents` sink, the way kubelet
reports to the API server. :class:`ProcessRuntime` runs each container as a local process made by an
injected ``spawn`` function, so the lead can run it inside a pod's network namespace instead.

What a kubelet with containerd would do, :class:`ProcessRuntime` does too:

* the image decides which programs exist: the command runs with a ``PATH`` holding only the image's
  tools (:mod:`tests.cluster.images`); an image the registry does not hold never starts (``ErrImagePull``,
  then ``ImagePullBackOff``);
* the securityContext decides the capabilities (:func:`capabilities`: containerd's default set for a root
  container, ``drop``/``add`` on top, every capability when ``privileged``), applied with ``setpriv`` to
  the bounding, inheritable and ambient sets; a root process keeps its bounding set as effective and
  permitted capabilities, a non-root one none (Kubernetes sets no ambient capabilities);
* ``runAsUser``/``runAsGroup`` (else the image's user) and ``runAsNonRoot``: a container that would run
  as root with ``runAsNonRoot`` never starts (``CreateContainerConfigError``, as kubelet reports it);
* ``allowPrivilegeEscalation: false`` sets no_new_privs.

Only the container's own securityContext is read (the runtime is not given the pod's).

Faults a test can inject: :meth:`ProcessRuntime.fail_image_pull` (the container never starts and
stays ``ErrImagePull`` then ``ImagePullBackOff``) and :meth:`ProcessRuntime.kill` (SIGKILL, reported
as exit code 137, reason ``Error``, as kubelet does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tests.cluster.images import Image, ImageError, Registry, parse_reference

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


DEFAULT_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE",
    "NET_RAW", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE", "SETFCAP",
})
"""What containerd gives a container that asks for nothing."""


class ConfigError(Exception):
    """The container cannot be created from its spec (kubelet's ``CreateContainerConfigError``)."""


def _cap_name(name: str) -> str:
    name = str(name).upper()
    return name[4:] if name.startswith("CAP_") else name


def capabilities(container: Mapping[str, Any]) -> frozenset[str] | None:
    """The capability set (names without ``CAP_``) a container gets; ``None``: every one (privileged).

    containerd's default set, then ``drop`` (``ALL`` empties it), then ``add`` (``ALL`` gives every one).
    """
    sc = container.get("securityContext") or {}
    if sc.get("privileged"):
        return None
    caps = sc.get("capabilities") or {}
    drop = {_cap_name(c) for c in caps.get("drop") or []}
    add = {_cap_name(c) for c in caps.get("add") or []}
    if "ALL" in add:
        return None
    kept = set() if "ALL" in drop else set(DEFAULT_CAPABILITIES) - drop
    return frozenset(kept | add)


def identity(container: Mapping[str, Any], image: Image, pod: str = "", namespace: str = "") -> tuple[int, int]:
    """(uid, gid) the container runs as: ``runAsUser``/``runAsGroup``, else the image's user.

    Raises:
        ConfigError: ``runAsNonRoot`` with a root user, the message kubelet gives.
    """
    sc = container.get("securityContext") or {}
    uid = int(sc["runAsUser"]) if sc.get("runAsUser") is not None else image.user
    gid = int(sc["runAsGroup"]) if sc.get("runAsGroup") is not None else (image.group if sc.get("runAsUser") is None
                                                                          else 0)
    if sc.get("runAsNonRoot") and uid == 0:
        where = f'(pod: "{pod}_{namespace}", container: {container.get("name")})'
        if sc.get("runAsUser") is not None:
            raise ConfigError(f"container's runAsUser breaks non-root policy {where}")
        raise ConfigError(f"container has runAsNonRoot and image will run as root {where}")
    return uid, gid


def setpriv_argv(container: Mapping[str, Any], uid: int, gid: int) -> list[str]:
    """``setpriv`` and its options: the container's user, capability sets and no_new_privs."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise OSError("the test runtime needs setpriv (util-linux)")
    argv = [setpriv]
    caps = capabilities(container)
    if caps is not None:
        argv.append("--bounding-set=" + ",".join(["-all", *(f"+{c.lower()}" for c in sorted(caps))]))
    argv += ["--inh-caps=-all", "--ambient-caps=-all"]
    if (uid, gid) != (0, 0):
        argv += [f"--regid={gid}", f"--reuid={uid}", "--clear-groups"]
    sc = container.get("securityContext") or {}
    if sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged"):
        argv.append("--no-new-privs")
    return argv


def exit_code_of(returncode: int) -> int:
    """Map a Popen return code to a container exit code (killed by signal N -> 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    threads: list[threading.Thread] = field(default_factory=list)


class ProcessRuntime:
    """Runs each container as a process made by ``spawn(namespace, pod, argv, env)``."""

    def __init__(self, spawn: Spawn | None = None, pull_backoff_seconds: float = 0.3,
                 registry: Registry | None = None) -> None:
        """Use ``spawn`` (default :func:`local_spawn`); ``pull_backoff_seconds`` until ``ImagePullBackOff``.

        ``registry`` (default: :data:`tests.cluster.images.DEFAULT_IMAGES`) holds the images that can be pulled.
        """
        self._spawn: Spawn = spawn or local_spawn
        self.registry = registry if registry is not None else Registry()
        self._pull_backoff = pull_backoff_seconds
        self._failing_images: set[str] = set()
        self._ignored_caps: set[str] = set()
        self._running: dict[tuple[str, str, str], _Running] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def ignore_added_capabilities(self, names: set[str]) -> None:
        """Silently leave ``names`` out of every later container's ``capabilities.add`` (empty: stop).

        A node or policy that strips what a pod asks for (as OpenShift's SCCs or a hardened runtime
        config do): the container starts, and its program finds the privilege missing.
        """
        self._ignored_caps = {_cap_name(n) for n in names}

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
        found = None if image in self._failing_images else self.registry.find(image)
        if found is None:
            if image in self._failing_images:
                message = f'Failed to pull image "{image}": {PULL_FAILURE_MESSAGE}'
            else:
                ref = parse_reference(image)
                message = (f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and '
                           f'unpack image "{ref}": failed to resolve reference "{ref}": {ref}: not found')
            events.waiting("ErrImagePull", message)
            time.sleep(self._pull_backoff)
            events.waiting("ImagePullBackOff", f'Back-off pulling image "{image}": ErrImagePull: {message}')
            return
        try:
            uid, gid = identity(container, found, pod, namespace)
        except ConfigError as e:
            events.waiting("CreateContainerConfigError", str(e))
            return
        try:
            argv = self._argv(container, found, uid, gid, pod)
            process = self._spawn(namespace, pod, argv, {})
            # Read from pipes of our own: the spawner may close its file objects when it kills the pod,
            # which must not pull a pipe from under a reader thread.
            streams = [(label, _own(stream)) for label, stream in (("stdout", process.stdout),
                                                                   ("stderr", process.stderr))]
        except (OSError, ValueError, ImageError) as e:
            events.waiting("RunContainerError", str(e))
            return
        running = _Running(process)
        with self._lock:
            self._running[(namespace, pod, name)] = running
        events.started(f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}", f"{image}@sha256:" + "0" * 64)
        for stream_name, stream in streams:
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

    def _argv(self, container: Mapping[str, Any], image: Image, uid: int, gid: int, pod: str) -> list[str]:
        """``env -i`` (the image's PATH and the container's env only), ``setpriv``, then the command."""
        env = shutil.which("env")
        if env is None:
            raise OSError("the test runtime needs env (coreutils)")
        sc = container.get("securityContext") or {}
        added = (sc.get("capabilities") or {}).get("add")
        if self._ignored_caps and added:
            caps = {**sc["capabilities"], "add": [a for a in added if _cap_name(a) not in self._ignored_caps]}
            container = {**container, "securityContext": {**sc, "capabilities": caps}}
        variables = {"PATH": str(self.registry.path_of(image)), "HOSTNAME": pod,
                     "HOME": "/root" if uid == 0 else "/", **container_env(container)}
        return [env, "-i", *(f"{k}={v}" for k, v in variables.items()), *setpriv_argv(container, uid, gid),
                *container_argv(container)]

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
        self.registry.close()


def _own(stream: Any) -> Any:
    """A file object of our own on a duplicate of ``stream``'s pipe (``None`` stays ``None``)."""
    if stream is None:
        return None
    own = None
    with contextlib.suppress(ValueError, OSError):
        own = os.fdopen(os.dup(stream.fileno()), "rb")
    stream.close()
    return own


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()
