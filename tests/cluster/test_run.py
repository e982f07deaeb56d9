"""The test cluster as a tool: ``run.py --workdir DIR`` writes two kubeconfigs and keeps its traffic flowing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.fabric import Fabric
from tests.cluster.test_apiserver import kubectl
from tests.conftest import ROOT, need

pytestmark = pytest.mark.root


def _need_root() -> None:
    need(os.geteuid() == 0, "needs root for network namespaces")
    for tool in ("ip", "nft", "tcpdump"):
        need(shutil.which(tool) is not None, f"needs {tool}")


def _ok_lines(fabric: Fabric, namespace: str, controller: str) -> int:
    pod = fabric.pods_of(namespace, controller)[0]
    return sum(1 for proc in pod.procs for line in list(proc.lines) if line.startswith("ok "))


def test_iterations_zero_means_until_the_lifetime_ends() -> None:
    _need_root()
    with Fabric(iterations=0, lifetime=30, probe_iterations=0) as fabric:
        deadline = time.monotonic() + 20
        first = 0
        while time.monotonic() < deadline and (first := _ok_lines(fabric, "shop", "frontend")) < 2:
            time.sleep(0.5)
        assert first >= 2, "the frontend's client loop never ran"
        time.sleep(3)
        later = _ok_lines(fabric, "shop", "frontend")
        assert later >= first + 4  # still calling, about twice a second
        prober = fabric.system_procs["prober-node-a"]
        assert sum(1 for line in list(prober.lines) if line.startswith("ok ")) >= 2


def test_run_writes_kubeconfigs_and_serves_until_stopped(tmp_path: Path) -> None:
    _need_root()
    workdir = tmp_path / "cluster"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "cluster" / "run.py"), "--workdir", str(workdir),
                             "--layout", "default", "--lifetime", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C to stop."):
                break
        assert lines and lines[-1].startswith("Ctrl-C"), "".join(lines) + proc.stderr.read()  # type: ignore[union-attr]
        admin, editor = workdir / "kubeconfig", workdir / "kubeconfig-shop-editor"
        assert (workdir / "cluster.json").is_file()
        assert kubectl(admin, "get", "nodes", "-o", "name").stdout.split() == ["node/node-a", "node/node-b"]
        mine = kubectl(editor, "get", "pods", "-o", "name")
        assert mine.returncode == 0 and "pod/db-0" in mine.stdout.split(), mine.stderr
        others = kubectl(editor, "get", "pods", "-A")
        assert others.returncode == 1
        assert 'User "shop-editor" cannot list resource "pods" in API group "" at the cluster scope' in others.stderr
        assert kubectl(editor, "auth", "can-i", "list", "nodes").stdout.strip() == "no"
        # Traffic is flowing: the frontend's pod sees its calls to checkout.
        netns = next(m.group(1) for line in lines
                     if (m := re.match(r"\s+shop/frontend-\S+\s+\S+\s+\S+\s+netns (\S+)", line)))
        seen = subprocess.run(["ip", "netns", "exec", netns, "tcpdump", "-n", "-i", "any", "-c", "3",
                               "tcp", "port", "8080"], capture_output=True, text=True, timeout=20, check=False)
        assert seen.returncode == 0 and len(seen.stdout.splitlines()) == 3, seen.stderr
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "torn down" in out
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
        assert netns not in listed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
