"""Fixtures shared by every test: running the real program in-process, shared captures."""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubectl_netgen.cli import Environment, main

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHARED_CAPTURES = ROOT.parent / "shared" / "captures"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false, except in CI, where a missing prerequisite fails the test."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@dataclass
class Result:
    """What one run of ``kubectl netgen`` did."""

    exit_code: int
    stdout: str
    stderr: str




def run(*args: str, stdin: bytes = b"", tty: bool = False) -> Result:
    """Run ``kubectl netgen ARGS`` in-process and capture what it printed."""
    out, err = io.StringIO(), io.StringIO()
    env = Environment(
        stdin=io.TextIOWrapper(io.BytesIO(stdin)), stdout=out, stderr=err, stdout_isatty=tty
    )
    code = main([str(a) for a in args], env)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def shared_captures() -> Path:
    """The third-party captures in ../shared/captures (required in CI)."""
    need(SHARED_CAPTURES.is_dir(), f"{SHARED_CAPTURES} is missing")
    return SHARED_CAPTURES


@pytest.fixture
def root_netns() -> None:
    """Require root, iproute2 and tcpdump for tests that build network namespaces."""
    need(os.geteuid() == 0, "needs root for network namespaces")
    need(shutil.which("ip") is not None, "needs iproute2 (ip)")
    need(shutil.which("tcpdump") is not None, "needs tcpdump")
