"""The capture directory: where ``kubectl netgen capture`` writes and ``generate`` reads.

Layout (a contract: users' scripts rely on it; add to it, never rename)::

    <dir>/
      cluster.json                      the inventory: a v1 List, as `kubectl netgen snapshot` prints it
      capture.json                      optional: capture metadata (targets, times, image, filter, …)
      pcaps/<namespace>/<pod>.pcap      one capture per pod (also .pcapng, .pcap.gz, .pcapng.gz)
      sockets/<namespace>/<pod>/        optional: the pod's socket tables, read at the start and the end
        start/{tcp,tcp6,udp,udp6}       of the capture (copies of /proc/net/*), for connections that
        end/{tcp,tcp6,udp,udp6}         were open before the capture began

A directory holding only ``pcaps/`` and ``cluster.json`` is complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, cast

from kubectl_netgen.errors import InputError

CLUSTER_FILE = "cluster.json"
METADATA_FILE = "capture.json"
PCAPS_DIR = "pcaps"
SOCKETS_DIR = "sockets"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")
"""File endings of pod captures, longest match first when stripping."""
SOCKET_TABLES = ("tcp", "tcp6", "udp", "udp6")
SOCKET_MOMENTS = ("start", "end")


@dataclass(frozen=True)
class PodCapture:
    """The capture of one pod inside a capture directory."""

    namespace: str
    pod: str
    pcap: Path
    sockets: Path | None = None
    """The pod's ``sockets/<namespace>/<pod>`` directory, when the capture recorded one."""


@dataclass(frozen=True)
class CaptureDir:
    """A capture directory as found on disk."""

    root: Path
    cluster: Path
    """``cluster.json``: the inventory the capture was taken against."""
    pods: tuple[PodCapture, ...]
    """Every pod capture, sorted by namespace and pod."""
    metadata: Path | None = None
    """``capture.json`` when present."""


def pcap_path(root: Path, namespace: str, pod: str, suffix: str = ".pcap") -> Path:
    """Where the capture of ``namespace/pod`` goes in the directory ``root``."""
    return root / PCAPS_DIR / namespace / f"{pod}{suffix}"


def sockets_path(root: Path, namespace: str, pod: str, moment: str, table: str) -> Path:
    """Where a socket table (``tcp``, ``udp6``, …) read at ``start`` or ``end`` goes."""
    return root / SOCKETS_DIR / namespace / pod / moment / table


PRIVATE_FILE = 0o600
"""Captures hold other people's traffic: files are readable by their owner only."""
PRIVATE_DIR = 0o700


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and each missing parent, owner-only.

    ``mkdir(parents=True)`` gives the parents it makes the default mode: the directories made for a
    capture would be world-readable.
    """
    missing = []
    for directory in (path, *path.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            if not directory.is_dir():
                raise
        else:
            os.chmod(directory, PRIVATE_DIR)  # mkdir's mode is masked by the umask, never widened: be exact


def open_private(path: Path, mode: str = "wb") -> BinaryIO:
    """Open a file for writing that only its owner can read (created with mode 0600, never wider)."""
    make_private_dirs(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return cast(BinaryIO, os.fdopen(fd, mode))


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600), creating its directories."""
    with open_private(path) as out:
        out.write(data)


def part_path(root: Path, namespace: str, pod: str, channel: str) -> Path:
    """Where one tcpdump's stream of a pod is kept while it arrives (hidden from :func:`read_capture_dir`)."""
    return root / PCAPS_DIR / namespace / f".{pod}.{channel}.part"


def is_capture_dir(path: Path) -> bool:
    """Tell whether ``path`` looks like a capture directory (it has ``pcaps/``)."""
    return path.is_dir() and (path / PCAPS_DIR).is_dir()


def _pod_name(filename: str) -> str | None:
    for suffix in sorted(CAPTURE_SUFFIXES, key=len, reverse=True):
        if filename.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return None


def _entries(directory: Path) -> list[Path]:
    """What ``directory`` holds.

    Raises:
        InputError: It cannot be read (permissions), in one line naming it.
    """
    try:
        return list(directory.iterdir())
    except OSError as e:
        raise InputError(f"cannot read {directory}: {e.strerror or e}; check its permissions") from e


def read_capture_dir(root: Path) -> CaptureDir:
    """Find the pieces of a capture directory.

    Args:
        root: The directory ``kubectl netgen capture -o DIR`` wrote.

    Returns:
        Its cluster file, optional metadata and pod captures.

    Raises:
        InputError: ``root`` lacks ``pcaps/`` or ``cluster.json``, or holds no capture at all.
    """
    if not root.is_dir():
        raise InputError(f"{root} is not a directory; give a capture directory or pcap files")
    pcaps = root / PCAPS_DIR
    if not pcaps.is_dir():
        raise InputError(f"{root} is not a capture directory: it has no {PCAPS_DIR}/ folder "
                         f"(expected {PCAPS_DIR}/<namespace>/<pod>.pcap)")
    cluster = root / CLUSTER_FILE
    if not cluster.is_file():
        raise InputError(f"{root} has no {CLUSTER_FILE}; write one with "
                         f"'kubectl netgen snapshot -A > {cluster}' or pass --cluster FILE")
    found: dict[tuple[str, str], PodCapture] = {}
    for namespace_dir in sorted(p for p in _entries(pcaps) if p.is_dir()):
        for file in sorted(p for p in _entries(namespace_dir) if p.is_file()):
            pod = _pod_name(file.name)
            if pod is None:
                continue
            key = (namespace_dir.name, pod)
            if key in found:
                raise InputError(f"{namespace_dir} holds two captures of pod {pod}: "
                                 f"{found[key].pcap.name} and {file.name}; keep one")
            sockets = root / SOCKETS_DIR / namespace_dir.name / pod
            found[key] = PodCapture(namespace_dir.name, pod, file, sockets if sockets.is_dir() else None)
    if not found:
        raise InputError(f"{root} holds no pod captures under {PCAPS_DIR}/<namespace>/ "
                         f"(files ending in {', '.join(CAPTURE_SUFFIXES)})")
    metadata = root / METADATA_FILE
    return CaptureDir(root, cluster, tuple(found[k] for k in sorted(found)),
                      metadata if metadata.is_file() else None)


def taken_at(capture: CaptureDir) -> datetime:
    """When a capture was taken, to tell the newest of several.

    The end of its window in ``capture.json``, else the time ``cluster.json`` was last written (a
    directory put together by hand).
    """
    if capture.metadata is not None:
        try:
            window = json.loads(capture.metadata.read_text(encoding="utf-8")).get("window") or {}
            stamp = window.get("end") or window.get("start")
            if isinstance(stamp, str):
                moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        except (OSError, ValueError, AttributeError):
            pass  # unreadable metadata is not fatal to reading traffic: fall back to the file's time
    try:
        return datetime.fromtimestamp(capture.cluster.stat().st_mtime, timezone.utc)
    except OSError:
        return datetime.min.replace(tzinfo=timezone.utc)


def read_socket_tables(directory: Path) -> list[tuple[str, str, str]]:
    """The socket tables a capture recorded for one pod: (moment, table, text) for each file present.

    Args:
        directory: The pod's ``sockets/<namespace>/<pod>`` directory.

    Raises:
        InputError: A table exists but cannot be read.
    """
    found = []
    for moment in SOCKET_MOMENTS:
        for table in SOCKET_TABLES:
            path = directory / moment / table
            if not path.is_file():
                continue
            try:
                found.append((moment, table, path.read_text(encoding="ascii", errors="replace")))
            except OSError as e:
                raise InputError(f"cannot read {path}: {e.strerror or e}") from e
    return found
