"""The ``local_cluster`` fixture: one local test cluster per test session (root only)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Pods as network namespaces behind a Kubernetes API server; torn down at the end of the session."""
    need(os.geteuid() == 0, "the local cluster needs root (network namespaces)")
    for tool in ("ip", "nft", "tcpdump"):
        need(shutil.which(tool) is not None, f"the local cluster needs {tool}")
    from tests.cluster.cluster import LocalCluster

    workdir: Path = tmp_path_factory.mktemp("cluster")
    with LocalCluster(workdir) as cluster:
        yield cluster
