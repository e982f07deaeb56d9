"""Input that exists but cannot be read, and input that holds nothing: one line each, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, need, run

SHOP = ROOT / "examples" / "shop"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory whose modes are restored before it is removed."""
    path = Path(tempfile.mkdtemp(prefix="netgen-unreadable-"))
    try:
        yield path
    finally:
        for sub in path.rglob("*"):
            if sub.is_dir():
                os.chmod(sub, 0o755)
        shutil.rmtree(path)


@pytest.mark.root
def test_an_unreadable_pcaps_directory_is_one_line(shared_dir: Path) -> None:
    need(os.geteuid() == 0, "needs root to run the plugin as another user")
    exe, setpriv = shutil.which("kubectl-netgen"), shutil.which("setpriv")
    need(exe is not None and setpriv is not None, "needs kubectl-netgen on PATH and setpriv (util-linux)")
    assert exe is not None and setpriv is not None
    capture = shared_dir / "capture"
    shutil.copytree(SHOP, capture)
    for path in (capture, *capture.rglob("*")):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    os.chmod(capture / "pcaps", 0o000)
    # root without the capabilities that override file modes: the modes hold, as for any user
    done = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search", exe, "generate", str(capture),
                           "--no-reverse-dns"], capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": os.environ["PATH"], "HOME": str(shared_dir)})
    assert done.returncode == 3, done.stderr
    assert done.stderr == f"error: cannot read {capture / 'pcaps'}: Permission denied; check its permissions\n"
    assert done.stdout == ""


def test_explain_without_policies_says_so() -> None:
    result = run("explain", "--policies", "-", stdin=b"")
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == ("warning: no policies in standard input: nothing to explain (give NetworkPolicy, "
                             "AdminNetworkPolicy or BaselineAdminNetworkPolicy manifests, e.g. from "
                             "'kubectl netgen generate')\n")
