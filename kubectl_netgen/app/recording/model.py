"""What a live capture is asked to do, reports as it goes, and ends with."""


from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubectl_netgen.app.cluster import LiveCluster
from kubectl_netgen.capturing import plan

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
class CapturePreview:
    """What a capture would do (``--dry-run=client``)."""

    pods: list[PodRef]
    container: dict[str, Any]
    """The ephemeral container it would add to each pod (its name gets the capture's id)."""
    directory: Path


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
