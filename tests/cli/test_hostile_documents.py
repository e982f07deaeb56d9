"""Documents built to exhaust the reader: YAML alias bombs, self-containing aliases, deep nesting.

Each is refused with one line (exit 3) before it is built; the real-world sizes stay readable.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, run

SHOP = ROOT / "examples" / "shop"


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("text", "message"), [
    (_bomb(9), "a document expands to more than 1,000,000 values (YAML aliases nested in aliases); refusing it"),
    (_bomb(30), "a document expands to more than 1,000,000 values"),
    ("&a [*a]\n", "a YAML alias contains itself; refusing it"),
    ("[" * 5000 + "]" * 5000 + "\n", "nested more than 100 levels deep; refusing it"),
    ("a:\n" + "".join("  " * i + "- b:\n" for i in range(1, 400)), "nested more than 100 levels deep"),
])
def test_policies_that_would_exhaust_the_reader_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    for args in (("explain", "--policies", str(path)), ("explain", "--policies", "-")):
        result = run(*args, stdin=text.encode())
        assert result.exit_code == 3, result.stderr
        assert result.stdout == "" and result.stderr.count("\n") == 1
        assert message in result.stderr


def test_ordinary_aliases_and_nesting_are_read(tmp_path: Path) -> None:
    """Anchors shared between two policies, as people write them, are read as before."""
    text = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: &web {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: api}}}]
    ports: &http [{protocol: TCP, port: 8080}]
  - from: [{podSelector: {matchLabels: *web}}]
    ports: *http
"""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    result = run("explain", "--policies", path)
    assert result.exit_code == 0, result.stderr
    assert "shop/web" in result.stdout and "8080" in result.stdout


def test_a_deeply_nested_cluster_file_is_refused(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    shutil.copytree(SHOP, capture)
    (capture / "cluster.json").write_text('{"kind": "List", "items": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = run("generate", capture)
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr == (f"error: {capture / 'cluster.json'}: nested too deeply to be a cluster snapshot; give "
                             "one (write one with: kubectl netgen snapshot -A > cluster.json)\n")
