"""The capture-directory layout: found as documented, and bad directories get one clear error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kubectl_netgen.capturedir import is_capture_dir, pcap_path, read_capture_dir, sockets_path, taken_at
from kubectl_netgen.errors import InputError


def make(root: Path, *files: str) -> Path:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return root


def test_layout_is_found_and_sorted(tmp_path: Path) -> None:
    root = make(tmp_path, "cluster.json", "capture.json", "pcaps/shop/web-2.pcap.gz", "pcaps/shop/web-1.pcapng",
                "pcaps/kube-system/coredns-x.pcap", "pcaps/shop/notes.txt",
                "sockets/shop/web-1/start/tcp", "sockets/shop/web-1/end/tcp")
    found = read_capture_dir(root)
    assert is_capture_dir(root)
    assert [(p.namespace, p.pod, p.pcap.name) for p in found.pods] == [
        ("kube-system", "coredns-x", "coredns-x.pcap"),
        ("shop", "web-1", "web-1.pcapng"),
        ("shop", "web-2", "web-2.pcap.gz"),
    ]
    assert found.pods[1].sockets == root / "sockets/shop/web-1"
    assert found.pods[2].sockets is None
    assert found.metadata == root / "capture.json"
    assert found.cluster == root / "cluster.json"


def test_only_pcaps_and_cluster_is_enough(tmp_path: Path) -> None:
    root = make(tmp_path, "cluster.json", "pcaps/shop/web-1.pcap")
    found = read_capture_dir(root)
    assert found.metadata is None and len(found.pods) == 1


def test_paths_match_the_layout(tmp_path: Path) -> None:
    assert pcap_path(tmp_path, "shop", "web-1") == tmp_path / "pcaps/shop/web-1.pcap"
    assert sockets_path(tmp_path, "shop", "web-1", "start", "tcp6") == tmp_path / "sockets/shop/web-1/start/tcp6"


@pytest.mark.parametrize(("files", "message"), [
    ((), "is not a capture directory: it has no pcaps/ folder"),
    (("pcaps/shop/web-1.pcap",), "has no cluster.json; write one with 'kubectl netgen snapshot -A >"),
    (("cluster.json", "pcaps/shop/readme.md"), "holds no pod captures under pcaps/<namespace>/"),
    (("cluster.json", "pcaps/shop/web-1.pcap", "pcaps/shop/web-1.pcapng"), "holds two captures of pod web-1"),
])
def test_bad_directories(tmp_path: Path, files: tuple[str, ...], message: str) -> None:
    root = make(tmp_path, *files)
    if not files:
        root.mkdir(exist_ok=True)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_capture_dir(root)


@pytest.mark.parametrize(("metadata", "expected"), [
    ('{"window": {"start": "2026-12-01T02:00:00Z", "end": "2026-12-01T02:05:00Z"}}', "2026-12-01T02:05:00+00:00"),
    ('{"window": {"start": "2026-12-01T02:00:00Z"}}', "2026-12-01T02:00:00+00:00"),
    ("not json", "2023-11-14T22:13:20+00:00"),                 # unreadable metadata: cluster.json's time
    ('{"window": {"end": "yesterday"}}', "2023-11-14T22:13:20+00:00"),
    (None, "2023-11-14T22:13:20+00:00"),
])
def test_taken_at(tmp_path: Path, metadata: str | None, expected: str) -> None:
    root = make(tmp_path, "cluster.json", "pcaps/shop/web-1.pcap")
    if metadata is not None:
        (root / "capture.json").write_text(metadata)
    os.utime(root / "cluster.json", (1_700_000_000, 1_700_000_000))
    assert taken_at(read_capture_dir(root)).isoformat() == expected


def test_private_dirs_are_owner_only_all_the_way_down(tmp_path: Path) -> None:
    from kubectl_netgen.capturedir import make_private_dirs, write_private

    old = os.umask(0o022)
    try:
        write_private(tmp_path / "runs" / "night-1" / "pcaps" / "shop" / "web-1.pcap", b"x")
    finally:
        os.umask(old)
    for directory in ("runs", "runs/night-1", "runs/night-1/pcaps", "runs/night-1/pcaps/shop"):
        assert stat.S_IMODE((tmp_path / directory).stat().st_mode) == 0o700, directory
    assert stat.S_IMODE((tmp_path / "runs/night-1/pcaps/shop/web-1.pcap").stat().st_mode) == 0o600
    os.chmod(tmp_path / "runs", 0o755)  # an existing directory is the user's: left as it is
    make_private_dirs(tmp_path / "runs" / "night-2")
    assert stat.S_IMODE((tmp_path / "runs").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "runs" / "night-2").stat().st_mode) == 0o700
