"""The krew release: the manifest in plugin.yaml and the archive krew/build.py makes for it."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from kubectl_netgen import __version__
from tests.conftest import ROOT, need

MANIFEST = ROOT / "plugin.yaml"
BUILD = ROOT / "krew" / "build.py"
PLATFORMS = {("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64")}
URI = (
    f"https://github.com/kubectl-netgen/kubectl-netgen/releases/download/"
    f"v{__version__}/kubectl-netgen_v{__version__}.tar.gz"
)
COMPILED = re.compile(r"\.(so|pyd|dylib|dll)(\.[0-9]+)*$")
# What pip says when it cannot reach an index; anything else is a failure of the build itself.
OFFLINE = re.compile(
    r"No matching distribution|Could not find a version|NewConnectionError|Network is unreachable"
    r"|Temporary failure in name resolution|Max retries exceeded|ConnectTimeout|ReadTimeout"
)


@pytest.fixture(scope="module")
def build() -> ModuleType:
    """krew/build.py, imported as a module (krew/ is not a package)."""
    spec = importlib.util.spec_from_file_location("netgen_krew_build", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and typing look modules up here
    spec.loader.exec_module(module)
    return module


def _plugin() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _isolated_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LC_ALL": "C.UTF-8"}


# --- the manifest ----------------------------------------------------------------------------------------


def test_manifest_header() -> None:
    plugin = _plugin()
    assert plugin["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert plugin["kind"] == "Plugin"
    assert plugin["metadata"] == {"name": "netgen"}


def test_manifest_spec() -> None:
    spec = _plugin()["spec"]
    assert spec["version"] == f"v{__version__}"
    assert spec["homepage"] == "https://github.com/kubectl-netgen/kubectl-netgen"
    assert 0 < len(spec["shortDescription"]) <= 60
    assert "\n" not in spec["shortDescription"]
    description = spec["description"]
    assert len(description.splitlines()) > 5
    for word in ("ephemeral", "tcpdump", "NetworkPolic", "flows", "dns", "generate", "capture"):
        assert word in description
    caveats = spec["caveats"]
    for word in ("python3 >= 3.10", "ephemeralcontainers", "pods/log", "1.25"):
        assert word in caveats


def test_manifest_platforms_share_one_archive() -> None:
    platforms = _plugin()["spec"]["platforms"]
    assert len(platforms) == 4
    labels = [p["selector"]["matchLabels"] for p in platforms]
    assert {(label["os"], label["arch"]) for label in labels} == PLATFORMS
    for platform in platforms:
        assert platform["selector"] == {"matchLabels": platform["selector"]["matchLabels"]}
        assert platform["uri"] == URI
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"]), platform["sha256"]
        assert platform["bin"] == "kubectl-netgen"
        assert platform["files"] == [{"from": "kubectl-netgen", "to": "."}, {"from": "LICENSE", "to": "."}]
    assert len({p["sha256"] for p in platforms}) == 1
    assert platforms[0]["sha256"] != "0" * 64, "run python3 krew/build.py to fill in the sha256"


def test_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text


# --- build.py's steps, on tiny inputs ------------------------------------------------------------------


def test_update_manifest_edits_values_only(build: ModuleType, tmp_path: Path) -> None:
    manifest = tmp_path / "plugin.yaml"
    original = MANIFEST.read_text(encoding="utf-8")
    manifest.write_text(original.replace(f"v{__version__}", "v0.0.1"), encoding="utf-8")

    build.update_manifest(manifest, "9.8.7", "ab" * 32)

    text = manifest.read_text(encoding="utf-8")
    expected = re.sub(r"sha256: [0-9a-f]{64}", f"sha256: {'ab' * 32}", original).replace(
        f"v{__version__}", "v9.8.7"
    )
    assert text == expected
    spec = yaml.safe_load(text)["spec"]
    assert spec["version"] == "v9.8.7"
    assert {p["uri"] for p in spec["platforms"]} == {URI.replace(f"v{__version__}", "v9.8.7")}


def test_update_manifest_refuses_a_manifest_without_fields(build: ModuleType, tmp_path: Path) -> None:
    manifest = tmp_path / "plugin.yaml"
    manifest.write_text("kind: Plugin\nspec:\n  homepage: x\n", encoding="utf-8")
    with pytest.raises(build.BuildError, match=r"expected one 'version: v\.\.\.'"):
        build.update_manifest(manifest, "1.0.0", "0" * 64)


def test_prune_keeps_fallbacks_and_refuses_compiled_only_modules(build: ModuleType, tmp_path: Path) -> None:
    site = tmp_path / "site"
    files = {
        "charset_normalizer/md.py": "",
        "charset_normalizer/md.cpython-310-x86_64-linux-gnu.so": "",
        "81d243bd2c585b0f4821__mypyc.cpython-310-x86_64-linux-gnu.so": "",
        "yaml/__init__.py": "",
        "yaml/_yaml.cpython-310-darwin.so": "",
        "yaml/_yaml.pyx": "",
        "yaml/__pycache__/x.cpython-311.pyc": "",
        "pyyaml.libs/libyaml-0.so.2": "",
        "websocket/tests/test_x.py": "",
        "bin/kubectl-netgen": "",
        "pkg-1.0.dist-info/RECORD": "",
        "pkg-1.0.dist-info/direct_url.json": "",
        "pkg-1.0.dist-info/METADATA": "",
        "pkg-1.0.dist-info/licenses/LICENSE": "",
        "pkg/__init__.pyi": "",
    }
    for name, content in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(content)

    removed = build.prune_site(site)

    assert removed == ["81d243bd2c585b0f4821__mypyc", "charset_normalizer.md", "yaml._yaml"]
    left = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    assert left == [
        "charset_normalizer/md.py",
        "pkg-1.0.dist-info/METADATA",
        "pkg-1.0.dist-info/licenses/LICENSE",
        "yaml/__init__.py",
    ]

    (site / "pydantic_core").mkdir()
    (site / "pydantic_core/__init__.py").write_text("")
    (site / "pydantic_core/_pydantic_core.cpython-310-x86_64-linux-gnu.so").write_text("")
    with pytest.raises(build.BuildError, match=r"pydantic_core\._pydantic_core"):
        build.prune_site(site)


def _tiny_site(root: Path) -> Path:
    site = root / "site"
    (site / "kubectl_netgen").mkdir(parents=True)
    (site / "kubectl_netgen" / "__init__.py").write_text("")
    cli = "def main():\n    print('hello from the zip')\n    return 3\n"
    (site / "kubectl_netgen" / "cli.py").write_text(cli)
    return site


def test_zipapp_is_reproducible_and_keeps_the_exit_status(build: ModuleType, tmp_path: Path) -> None:
    site = _tiny_site(tmp_path)
    first, second = tmp_path / "a" / "kubectl-netgen", tmp_path / "b" / "kubectl-netgen"
    build.write_zipapp(site, first, epoch=1_700_000_000)
    os.utime(site / "kubectl_netgen" / "cli.py", (0, 0))  # file times must not matter
    build.write_zipapp(site, second, epoch=1_700_000_000)

    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert first.stat().st_mode & 0o777 == 0o755
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == ["__main__.py", "kubectl_netgen/", "kubectl_netgen/__init__.py",
                                      "kubectl_netgen/cli.py"]  # fmt: skip
        assert {info.date_time for info in archive.infolist()} == {(2023, 11, 14, 22, 13, 20)}
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(first)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (3, "hello from the zip\n")


def test_archive_is_reproducible(build: ModuleType, tmp_path: Path) -> None:
    executable, license_file = tmp_path / "exe", tmp_path / "LICENSE"
    executable.write_bytes(b"#!/usr/bin/env python3\n")
    license_file.write_text("Apache License\n")
    executable.chmod(0o700)

    sha = build.write_archive(executable, license_file, tmp_path / "one.tar.gz", epoch=1_700_000_000)
    os.utime(executable, (0, 0))
    again = build.write_archive(executable, license_file, tmp_path / "two.tar.gz", epoch=1_700_000_000)

    assert sha == again == hashlib.sha256((tmp_path / "one.tar.gz").read_bytes()).hexdigest()
    with tarfile.open(tmp_path / "one.tar.gz") as tar:
        members = [(m.name, m.mode, m.uid, m.gid, m.mtime) for m in tar.getmembers()]
    assert members == [
        ("LICENSE", 0o644, 0, 0, 1_700_000_000),
        ("kubectl-netgen", 0o755, 0, 0, 1_700_000_000),
    ]


# --- the real build ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_build_release_archive(build: ModuleType, tmp_path: Path) -> None:
    manifest = tmp_path / "plugin.yaml"
    shutil.copyfile(MANIFEST, manifest)
    out, work = tmp_path / "dist", tmp_path / "work"

    done = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out), "--manifest", str(manifest), "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    if done.returncode != 0 and OFFLINE.search(done.stderr):
        need(False, f"pip could not reach a package index:\n{done.stderr[-2000:]}")
    assert done.returncode == 0, done.stderr

    # stdout: one sha256sum line
    sha, path = done.stdout.split()
    archive = Path(path)
    assert archive == out / f"kubectl-netgen_v{__version__}.tar.gz"
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == sha

    # the manifest copy now points at this archive, and kept its comments
    text = manifest.read_text(encoding="utf-8")
    assert text.splitlines()[0] == MANIFEST.read_text(encoding="utf-8").splitlines()[0]
    platforms = yaml.safe_load(text)["spec"]["platforms"]
    assert {p["sha256"] for p in platforms} == {sha}
    assert {p["uri"] for p in platforms} == {URI}

    # the archive: the executable zipapp and the licence
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["LICENSE", "kubectl-netgen"]
        assert tar.getmember("kubectl-netgen").mode == 0o755
        member = tar.extractfile("kubectl-netgen")
        licence = tar.extractfile("LICENSE")
        assert member is not None and licence is not None
        executable = tmp_path / "kubectl-netgen"
        executable.write_bytes(member.read())
        assert licence.read() == (ROOT / "LICENSE").read_bytes()
    with zipfile.ZipFile(executable) as zipapp:
        names = zipapp.namelist()
    assert [n for n in names if COMPILED.search(n)] == []
    for name in ("__main__.py", "kubectl_netgen/cli/__init__.py", "yaml/__init__.py", "kubernetes/__init__.py"):
        assert name in names

    # it runs on an interpreter that sees no site-packages
    home = tmp_path / "home"
    home.mkdir()
    run = [sys.executable, "-I", "-S", str(executable)]
    version = subprocess.run(
        [*run, "--version"], capture_output=True, text=True, env=_isolated_env(home), timeout=120, check=False
    )
    assert (version.returncode, version.stdout) == (0, f"kubectl-netgen {__version__}\n"), version.stderr
    usage = subprocess.run(
        [*run, "--help"], capture_output=True, text=True, env=_isolated_env(home), timeout=120, check=False
    )
    assert usage.returncode == 0, usage.stderr
    assert "flows" in usage.stdout

    # packaging the same installed packages again gives the same bytes
    again, again_sha = build.package(
        work / "site", ROOT / "LICENSE", tmp_path / "again", build.project_version(), sys.executable
    )
    assert again_sha == sha
    assert again.read_bytes() == archive.read_bytes()
