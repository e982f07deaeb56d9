"""The test runtime honours what a kubelet with containerd would: images, capabilities, users, no_new_privs.

Each container here runs for real (a local process under ``setpriv``) and reports to an in-memory sink,
as the API server's would; the assertions read what the process itself saw (``/proc/self/status``,
``id``, its ``PATH``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from kubectl_netgen.capturing import plan
from tests.cluster.images import NONROOT_IMAGE, parse_reference
from tests.cluster.runtime import DEFAULT_CAPABILITIES, ProcessRuntime, capabilities, local_spawn
from tests.conftest import need

pytestmark = [pytest.mark.root]

CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7,
            "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13, "SYS_CHROOT": 18, "MKNOD": 27,
            "AUDIT_WRITE": 29, "SETFCAP": 31}


class Sink:
    """Collects what the runtime reports about one container."""

    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []
        self.lines: list[tuple[str, bytes]] = []
        self.exit_code: int | None = None
        self.done = threading.Event()

    def waiting(self, reason: str, message: str = "") -> None:
        self.states.append((reason, message))
        if reason in ("ImagePullBackOff", "CreateContainerConfigError", "RunContainerError"):
            self.done.set()

    def started(self, container_id: str, image_id: str) -> None:
        self.states.append(("Running", image_id))

    def output(self, stream: str, line: bytes) -> None:
        self.lines.append((stream, line))

    def terminated(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self.done.set()

    def text(self, stream: str = "stdout") -> str:
        return b"".join(line for s, line in self.lines if s == stream).decode()

    def status(self) -> dict[str, str]:
        return dict(line.split(":\t", 1) for line in self.text().splitlines() if ":\t" in line)


@pytest.fixture
def runtime() -> Iterator[ProcessRuntime]:
    need(os.geteuid() == 0, "setting capability sets and users needs root")
    for tool in ("busybox", "setpriv", "tcpdump"):
        need(shutil.which(tool) is not None, f"the test runtime needs {tool}")
    rt = ProcessRuntime(pull_backoff_seconds=0.05)
    yield rt
    rt.close()


def start(runtime: ProcessRuntime, image: str, script: str, security: dict[str, Any] | None = None,
          wait: float | None = None) -> Sink:
    sink = Sink()
    container: dict[str, Any] = {"name": "c", "image": image, "command": ["sh", "-c", script]}
    if security is not None:
        container["securityContext"] = security
    runtime.start("shop", "db-0", container, sink)
    if wait is not None:
        sink.done.wait(wait)
        return sink
    assert sink.done.wait(20), sink.states
    return sink


def caps(mask: str) -> set[str]:
    value = int(mask, 16)
    return {name for name, bit in CAP_BITS.items() if value >> bit & 1} | (
        {"OTHER"} if value & ~sum(1 << b for b in CAP_BITS.values()) else set())


SHOW = "echo PATH=$PATH; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; id -u; id -g; command -v tcpdump || true"


def test_the_image_decides_which_tools_exist(runtime: ProcessRuntime) -> None:
    busybox = start(runtime, "busybox:1.37", SHOW)
    assert busybox.exit_code == 0, busybox.lines
    assert "tcpdump" not in busybox.text(), "busybox has no tcpdump"
    [path] = [line for line in busybox.text().splitlines() if line.startswith("PATH=")]
    assert ":" not in path and "/usr/bin" not in path, f"only the image's tools: {path}"
    capture = start(runtime, plan.DEFAULT_IMAGE, SHOW)
    assert capture.exit_code == 0, capture.lines
    assert capture.text().rstrip().endswith("/tcpdump"), capture.text()
    missing = start(runtime, "busybox", "python3 -c 'print(1)'")
    assert missing.exit_code == 127, "the host's python is not in the image"


def test_an_unknown_image_never_starts(runtime: ProcessRuntime) -> None:
    sink = start(runtime, "registry.example/nope/tcpdump:9", "echo ran")
    reasons = [reason for reason, _ in sink.states]
    assert reasons == ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"], sink.states
    assert 'failed to resolve reference "registry.example/nope/tcpdump:9"' in sink.states[1][1]
    assert sink.lines == [] and sink.exit_code is None
    wrong_tag = start(runtime, "busybox:0.1", "echo ran")
    assert [r for r, _ in wrong_tag.states][-1] == "ImagePullBackOff"


def test_references_are_normalised() -> None:
    assert str(parse_reference("busybox")) == "docker.io/library/busybox:latest"
    ref = parse_reference(plan.DEFAULT_IMAGE)
    assert (ref.repository, ref.tag) == ("docker.io/nicolaka/netshoot", "v0.13") and ref.digest
    assert str(parse_reference("localhost:5000/x/y")) == "localhost:5000/x/y:latest"


def test_a_root_container_gets_containerds_default_capabilities(runtime: ProcessRuntime) -> None:
    status = start(runtime, "busybox", SHOW).status()
    assert caps(status["CapEff"]) == caps(status["CapPrm"]) == caps(status["CapBnd"]) == DEFAULT_CAPABILITIES
    assert int(status["CapAmb"], 16) == 0 and int(status["CapInh"], 16) == 0
    assert status["NoNewPrivs"].strip() == "0"


def test_drop_all_add_one(runtime: ProcessRuntime) -> None:
    sink = start(runtime, plan.DEFAULT_IMAGE, SHOW, {"capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]},
                                                     "allowPrivilegeEscalation": False})
    status = sink.status()
    assert caps(status["CapEff"]) == caps(status["CapBnd"]) == {"NET_RAW"}
    assert status["NoNewPrivs"].strip() == "1", "allowPrivilegeEscalation: false sets no_new_privs"
    dropped = start(runtime, "busybox", SHOW, {"capabilities": {"drop": ["NET_RAW", "CAP_KILL"]}}).status()
    assert caps(dropped["CapEff"]) == DEFAULT_CAPABILITIES - {"NET_RAW", "KILL"}
    privileged = start(runtime, "busybox", SHOW, {"privileged": True}).status()
    assert "OTHER" in caps(privileged["CapEff"]) and caps(privileged["CapEff"]) >= DEFAULT_CAPABILITIES


def test_capability_sets_as_containerd_computes_them() -> None:
    assert capabilities({}) == DEFAULT_CAPABILITIES
    assert capabilities({"securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "SETUID"]}}}) == {
        "NET_RAW", "SETUID"}
    assert capabilities({"securityContext": {"privileged": True}}) is None


def test_a_non_root_user_keeps_no_capabilities(runtime: ProcessRuntime) -> None:
    sink = start(runtime, "busybox", SHOW, {"runAsUser": 1000, "runAsGroup": 3000,
                                            "capabilities": {"add": ["NET_ADMIN"]}})
    status = sink.status()
    lines = sink.text().splitlines()
    assert lines[-2:] == ["1000", "3000"], lines
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, "Kubernetes sets no ambient caps"
    nonroot = start(runtime, NONROOT_IMAGE, SHOW, {"runAsNonRoot": True})
    assert nonroot.exit_code == 0 and nonroot.text().splitlines()[-3:-1] == ["65532", "65532"], nonroot.lines


def test_run_as_non_root_with_a_root_image_user_never_starts(runtime: ProcessRuntime) -> None:
    sink = start(runtime, plan.DEFAULT_IMAGE, "echo ran", {"runAsNonRoot": True})
    assert sink.states[-1] == ("CreateContainerConfigError", 'container has runAsNonRoot and image will run as '
                               'root (pod: "db-0_shop", container: c)')
    assert sink.lines == [] and sink.exit_code is None
    explicit = start(runtime, "busybox", "echo ran", {"runAsNonRoot": True, "runAsUser": 0})
    assert explicit.states[-1][0] == "CreateContainerConfigError"
    assert "runAsUser breaks non-root policy" in explicit.states[-1][1]


def test_tcpdump_of_the_capture_image_needs_setuid_to_drop_its_user(runtime: ProcessRuntime) -> None:
    """What the capture profiles rely on: Debian's/Alpine's tcpdump switches to user tcpdump after opening."""
    script = "timeout 2 tcpdump -i lo -p -c 1 -w - 2>&1 >/dev/null; echo exit $?"
    netraw_only = start(runtime, plan.DEFAULT_IMAGE, script, {"capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]}})
    assert "Couldn't change to 'tcpdump' uid" in netraw_only.text(), netraw_only.text()
    no_kill = start(runtime, plan.DEFAULT_IMAGE, script, {"capabilities": {"drop": ["ALL"], "add": [
        "NET_RAW", "SETUID", "SETGID"]}}, wait=4)
    assert no_kill.exit_code is None, "timeout (root without KILL) cannot end tcpdump (user tcpdump)"
    runtime.kill("shop", "db-0", "c")
    profile = plan.security_context(plan.Profile.NETRAW)
    works = start(runtime, plan.DEFAULT_IMAGE, script, profile)
    assert "listening on lo" in works.text() and "packets captured" in works.text(), works.text()
    no_raw = start(runtime, plan.DEFAULT_IMAGE, script, {"capabilities": {"drop": ["NET_RAW"]}})
    assert "Operation not permitted" in no_raw.text(), no_raw.text()


class SlowSink(Sink):
    """A consumer slower than the container (the API server's log store under load)."""

    def output(self, stream: str, line: bytes) -> None:
        super().output(stream, line)
        threading.Event().wait(0.001)


def test_killing_a_pod_never_races_the_reader_threads(runtime: ProcessRuntime) -> None:
    """A spawner that closes its pipes when it kills (as the fabric's ``delete_pod`` does)."""
    popens: list[subprocess.Popen[bytes]] = []

    def spawn(namespace: str, pod: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        popen = local_spawn(namespace, pod, argv, env)
        popens.append(popen)
        return popen

    errors: list[BaseException | None] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        rt = ProcessRuntime(spawn=spawn)
        try:
            for _ in range(2):
                sink = SlowSink()
                rt.start("shop", "db-0", {"name": "c", "image": "busybox", "command": [
                    "sh", "-c", "i=0; while [ $i -lt 200000 ]; do echo line $i; i=$((i+1)); done"]}, sink)
                while not popens or not sink.lines:
                    assert not sink.done.is_set(), sink.states
                    threading.Event().wait(0.005)
                rt.kill_pod("shop", "db-0")
                popen = popens.pop()
                popen.wait(timeout=10)
                for stream in (popen.stdout, popen.stderr):
                    if stream is not None:
                        stream.close()
                assert sink.done.wait(10)
                assert sink.exit_code == 137
        finally:
            rt.close()
    finally:
        threading.excepthook = previous
    assert errors == []
