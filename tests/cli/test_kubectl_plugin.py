"""The real ``kubectl`` finds ``kubectl-netgen`` on the PATH and runs it as ``kubectl netgen``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kubectl_netgen import __version__
from tests.conftest import need

pytestmark = pytest.mark.kubectl


def _kubectl(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    need(kubectl is not None, "needs the kubectl binary on PATH")
    need(shutil.which("kubectl-netgen") is not None, "needs kubectl-netgen on PATH (pip install .)")
    assert kubectl is not None
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        # A kubeconfig that does not exist: nothing here may reach a real cluster.
        "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"),
    }
    return subprocess.run(
        [kubectl, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False
    )


def test_help_through_kubectl(tmp_path: Path) -> None:
    result = _kubectl("netgen", "--help", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: kubectl netgen" in result.stdout
    assert "flows" in result.stdout


def test_version_through_kubectl(tmp_path: Path) -> None:
    result = _kubectl("netgen", "--version", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"kubectl-netgen {__version__}\n"


def test_plugin_list_shows_netgen(tmp_path: Path) -> None:
    # Exits non-zero when other plugins on the PATH draw warnings (e.g. shadowed copies), so only the
    # output counts.
    result = _kubectl("plugin", "list", tmp_path=tmp_path)
    listed = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
    assert shutil.which("kubectl-netgen") in listed, result.stdout + result.stderr
