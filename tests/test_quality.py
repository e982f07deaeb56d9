"""The code stays as STYLE.md asks: ruff clean, mypy strict clean, layers as declared (import-linter)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(name)
    need(exe is not None, f"{name} is not installed (pip install -e '.[test]')")
    assert exe is not None
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff() -> None:
    result = _tool("ruff", "check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = _tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers() -> None:
    result = _tool("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("command", [["--version"], ["--help"], ["flows", "--help"], ["snapshot", "--help"]])
def test_cli_starts_without_heavy_imports(command: list[str]) -> None:
    """kubernetes and scapy cost ~2 s to import: --help/--version and flows/dns must not pay for them."""
    probe = (
        "import sys\n"
        "from kubectl_netgen.cli import main\n"
        f"code = main({command!r})\n"
        "heavy = sorted(m for m in ('kubernetes', 'scapy', 'yaml') if m in sys.modules)\n"
        "print(heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr
