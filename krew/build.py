#!/usr/bin/env python3
"""Build the krew release archive of kubectl-netgen: the one command a release needs.

``python3 krew/build.py`` turns the source tree into ``krew/dist/kubectl-netgen_v<version>.tar.gz`` and
writes the archive's sha256 (and the version) into ``plugin.yaml``. The archive holds ``LICENSE`` and
``kubectl-netgen``, a zipapp that carries the package and all its runtime dependencies and needs
nothing but a ``python3`` >= 3.10 on the PATH, so one archive serves every platform.

The steps:

1. Build a wheel of the project from a snapshot of the tree (setuptools leaves ``build/`` behind, and
   modules deleted since the last build would linger there and end up in the wheel).
2. ``pip install --target`` that wheel and its dependencies, wheels only, resolved for the oldest
   supported Python (3.10) so that its backports come along and no dependency newer than 3.10 allows
   is picked, capped by ``krew/constraints.txt``.
3. Prune: zipimport cannot load compiled extension modules, so they are removed, each one only if a
   pure-Python fallback exists (PyYAML, charset-normalizer); otherwise the build stops and names the
   dependency to cap. Scripts, caches, tests, type stubs and install records go too.
4. Zip the result deterministically (sorted entries, fixed timestamps and modes), with a ``__main__``
   that exits with the program's status, and put the ``#!/usr/bin/env python3`` line in front (zipapp).
5. Smoke-test the zipapp with an isolated interpreter that sees no site-packages.
6. Tar and gzip it with ``LICENSE`` deterministically, so the same inputs give the same sha256.
7. Rewrite ``sha256:``, ``version:`` and the download URIs in the manifest, text only, so its comments
   and layout stay as they are.

The archive path and its sha256 are printed on stdout as one ``sha256sum`` line; progress goes to
stderr. ``SOURCE_DATE_EPOCH`` sets the timestamp stored in the archives (default: 1980-01-01).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipapp
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The source tree: the directory that holds ``pyproject.toml``."""

NAME = "kubectl-netgen"
"""The executable's name, in the archive and on the PATH."""

MIN_PYTHON = "3.10"
"""The oldest Python the zipapp runs on; dependencies are resolved for it."""

DEFAULT_EPOCH = 315532800
"""1980-01-01T00:00:00Z, the earliest time a zip file can store."""

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "kubectl_netgen")
"""What of the tree goes into the wheel; anything else stays out of the snapshot."""

OPTIONAL_EXTENSIONS = {
    "yaml._yaml": "PyYAML falls back to its pure-Python parser and emitter without libyaml",
}
"""Extension modules without a ``.py`` twin that their package can do without, and why."""

PRUNED_DIRS = frozenset({"__pycache__", "tests", "test", "e2e_test"})
"""Directories dropped anywhere below a top-level package."""

PRUNED_TOP_LEVEL = frozenset({"bin", "share"})
"""Console scripts and data files that ``pip --target`` puts next to the packages."""

PRUNED_SUFFIXES = (".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".c", ".h")
"""Byte code, type stubs and the sources of compiled extensions."""

PRUNED_DIST_INFO = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
"""Install records: stale once files are pruned, and ``direct_url.json`` names the build's temp dir."""

COMPILED = re.compile(r"\.(so|pyd|dylib|dll)(\.[0-9]+)*$")
"""Files zipimport cannot load: extension modules and shared libraries."""

ZIP_MAIN = """\
# The entry point of the kubectl-netgen zipapp, written by krew/build.py.
import sys

if sys.version_info < (3, 10):
    sys.exit("kubectl-netgen needs Python >= 3.10; this is %d.%d" % sys.version_info[:2])

from kubectl_netgen.cli import main

sys.exit(main())
"""
"""``__main__.py`` of the zipapp; zipapp's own would drop the exit status that ``main()`` returns."""

SMOKE_TEST = """\
import sys

archive = sys.argv[1]
sys.path.insert(0, archive)

import importlib

for name in sys.argv[2:]:
    module = importlib.import_module(name)
    if not (getattr(module, "__file__", None) or "").startswith(archive):
        sys.exit("%s was not imported from the zipapp but from %s" % (name, module.__file__))

import charset_normalizer
import yaml

assert yaml.safe_load(yaml.safe_dump({"kind": ["NetworkPolicy"]})) == {"kind": ["NetworkPolicy"]}
best = charset_normalizer.from_bytes("Grüße aus dem Cluster".encode("utf-8")).best()
assert best is not None and str(best) == "Grüße aus dem Cluster", best
"""
"""Run by the isolated interpreter: imports from the zipapp, and exercises the pure-Python fallbacks."""

SMOKE_MODULES = (
    "kubectl_netgen.cli",
    "typer",
    "click",
    "rich.console",
    "yaml",
    "charset_normalizer",
    "requests",
    "certifi",
    "kubernetes.client",
    "kubernetes.config",
    "kubernetes.stream",
    "dns.message",
    "dns.resolver",
    "scapy.utils",
)
"""Modules the smoke test imports from the zipapp: the program and each runtime dependency."""


class BuildError(Exception):
    """A build step failed; the message says which and what to do."""


def project_version(root: Path = ROOT) -> str:
    """Read ``__version__`` from the package without importing it.

    Args:
        root: The source tree.

    Returns:
        The version, such as ``0.1.0``.

    Raises:
        BuildError: ``kubectl_netgen/__init__.py`` has no literal ``__version__``.
    """
    init = root / "kubectl_netgen" / "__init__.py"
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise BuildError(f"{init} has no literal __version__ = '...'")


def source_epoch() -> int:
    """Return the timestamp to store in the archives: ``SOURCE_DATE_EPOCH`` or 1980-01-01.

    Raises:
        BuildError: ``SOURCE_DATE_EPOCH`` is not a number of seconds from 1980 on.
    """
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not value:
        return DEFAULT_EPOCH
    if not value.isdigit() or int(value) < DEFAULT_EPOCH:
        raise BuildError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds from 1980 on")
    return int(value)


def _run(command: Sequence[str], what: str, *, env: dict[str, str] | None = None) -> str:
    """Run a command, return its stdout, and turn a failure into a :class:`BuildError`."""
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, check=False, env=env, timeout=900
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"{what} failed: {e}") from e
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise BuildError(f"{what} failed (exit status {done.returncode}):\n{output[-4000:]}")
    return done.stdout


def build_site(root: Path, site: Path, python: str, constraints: Path | None) -> None:
    """Install the project and its runtime dependencies, as wheels, into ``site``.

    Args:
        root: The source tree.
        site: An empty or missing directory to install into.
        python: The interpreter whose pip does the work.
        constraints: A pip constraints file, or ``None``.

    Raises:
        BuildError: pip could not build the wheel or resolve and install the dependencies.
    """
    with tempfile.TemporaryDirectory(prefix="netgen-build-") as tmp:
        snapshot, wheels = Path(tmp) / "src", Path(tmp) / "wheels"
        snapshot.mkdir()
        for name in SOURCES:
            source = root / name
            if source.is_dir():
                shutil.copytree(
                    source, snapshot / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            elif source.is_file():
                shutil.copy2(source, snapshot / name)
        pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        # An absolute path: pip would take a bare relative name for a project on the index.
        _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(snapshot.resolve())], "pip wheel")
        built = sorted(wheels.glob("*.whl"))
        if len(built) != 1:
            raise BuildError(f"pip wheel made {len(built)} wheels instead of one: {built}")
        install = [
            *pip, "install", "--quiet", "--no-compile", "--no-warn-conflicts", "--no-warn-script-location",
            "--target", str(site.resolve()),
            # Resolving for the oldest Python needs wheels only, which also keeps sdist builds (and
            # their compilers) out of the release.
            "--python-version", MIN_PYTHON, "--only-binary=:all:",
        ]  # fmt: skip
        if constraints is not None:
            install += ["--constraint", str(constraints.resolve())]
        _run([*install, str(built[0].resolve())], "pip install")


def _walk(top: Path) -> Iterator[Path]:
    """Yield every path below ``top`` in a stable order, parents before children."""
    for path in sorted(top.iterdir()):
        yield path
        if path.is_dir() and not path.is_symlink():
            yield from _walk(path)


def _module_name(site: Path, path: Path) -> str:
    """Name the module an extension file provides: ``yaml/_yaml.cpython-310-darwin.so`` -> ``yaml._yaml``."""
    parts = path.relative_to(site).parts
    return ".".join([*parts[:-1], parts[-1].split(".", 1)[0]])


def _has_fallback(site: Path, path: Path) -> bool:
    """Tell whether the extension module at ``path`` can be done without."""
    stem = path.name.split(".", 1)[0]
    return (
        (path.parent / f"{stem}.py").is_file()
        or (path.parent / stem / "__init__.py").is_file()
        # mypyc's runtime library: only the compiled modules import it.
        or "__mypyc" in stem
        or _module_name(site, path) in OPTIONAL_EXTENSIONS
    )


def prune_site(site: Path) -> list[str]:
    """Remove what a zipapp cannot use or does not need from an installed ``site``.

    Args:
        site: The directory filled by :func:`build_site`.

    Returns:
        The compiled extension modules removed, as module names.

    Raises:
        BuildError: An extension module has no pure-Python fallback, so the zipapp could not run.
    """
    missing = [
        f"{_module_name(site, p)} ({p.relative_to(site)})"
        for p in _walk(site)
        if p.is_file()
        and COMPILED.search(p.name)
        and not _has_fallback(site, p)
        # Shared libraries bundled by auditwheel/delocate go with the modules that need them.
        and not any(part.endswith(".libs") or part == ".dylibs" for part in p.relative_to(site).parts)
    ]
    if missing:
        raise BuildError(
            "these compiled modules have no pure-Python fallback, so the zipapp could not import them:\n  "
            + "\n  ".join(missing)
            + "\ncap the dependency that brings them in krew/constraints.txt at its last pure-Python release"
        )
    removed: list[str] = []
    for path in list(_walk(site)):
        if not os.path.lexists(path):
            continue  # inside a directory removed earlier in the walk
        relative = path.relative_to(site)
        name = path.name
        if path.is_dir() and (
            (len(relative.parts) == 1 and name in PRUNED_TOP_LEVEL)
            or (len(relative.parts) > 1 and name in PRUNED_DIRS)
            or name.endswith(".libs")
            or name == ".dylibs"
        ):
            shutil.rmtree(path)
        elif path.is_file() and COMPILED.search(name):
            removed.append(_module_name(site, path))
            path.unlink()
        elif path.is_file() and (
            name.endswith(PRUNED_SUFFIXES)
            or (path.parent.name.endswith(".dist-info") and name in PRUNED_DIST_INFO)
        ):
            path.unlink()
    left = [str(p.relative_to(site)) for p in _walk(site) if p.is_file() and COMPILED.search(p.name)]
    if left:
        raise BuildError(f"compiled files survived pruning: {left}")
    return sorted(removed)


def _zip_entry(name: str, date_time: tuple[int, int, int, int, int, int], mode: int) -> zipfile.ZipInfo:
    """Make a zip entry whose metadata depends on nothing but its arguments."""
    info = zipfile.ZipInfo(name, date_time)
    info.create_system = 3  # Unix, so that the mode below is read
    info.external_attr = mode << 16
    if name.endswith("/"):
        info.external_attr |= 0x10  # MS-DOS directory flag
    else:
        info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_zipapp(site: Path, target: Path, epoch: int | None = None) -> None:
    """Zip ``site`` into an executable zipapp at ``target``, byte for byte reproducibly.

    Args:
        site: The pruned directory of packages.
        target: The zipapp to write.
        epoch: The timestamp of every entry; by default :func:`source_epoch`.

    Raises:
        BuildError: ``site`` has a ``__main__.py`` of its own.
    """
    if (site / "__main__.py").exists():
        raise BuildError(f"{site} already has a __main__.py")
    date_time = time.gmtime(source_epoch() if epoch is None else epoch)[:6]
    target.parent.mkdir(parents=True, exist_ok=True)
    plain = target.with_name(target.name + ".zip")
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr(
            _zip_entry("__main__.py", date_time, stat.S_IFREG | 0o644), ZIP_MAIN, compresslevel=9
        )
        for path in _walk(site):
            name = path.relative_to(site).as_posix()
            if path.is_dir():
                archive.writestr(_zip_entry(f"{name}/", date_time, stat.S_IFDIR | 0o755), b"")
            else:
                archive.writestr(
                    _zip_entry(name, date_time, stat.S_IFREG | 0o644), path.read_bytes(), compresslevel=9
                )
    # zipapp copies an existing archive behind the shebang line.
    zipapp.create_archive(plain, target, interpreter="/usr/bin/env python3")
    plain.unlink()
    target.chmod(0o755)


def check_zipapp(zipapp_path: Path, python: str, version: str) -> None:
    """Run the zipapp with an interpreter that sees no site-packages, to prove it is self-contained.

    Args:
        zipapp_path: The zipapp written by :func:`write_zipapp`.
        python: The interpreter to run it with.
        version: The version ``--version`` must print.

    Raises:
        BuildError: The zipapp does not start, lacks a dependency, or prints another version.
    """
    isolated = [python, "-I", "-S"]  # no site-packages, no PYTHON* variables, no user site
    with tempfile.TemporaryDirectory(prefix="netgen-home-") as home:
        # A throwaway HOME: libraries such as scapy create config and cache directories there.
        env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": home, "LC_ALL": "C.UTF-8"}
        printed = _run([*isolated, str(zipapp_path), "--version"], "the zipapp's --version", env=env)
        if printed.strip() != f"{NAME} {version}":
            raise BuildError(f"the zipapp's --version printed {printed.strip()!r}, not '{NAME} {version}'")
        _run([*isolated, str(zipapp_path), "--help"], "the zipapp's --help", env=env)
        smoke = [*isolated, "-c", SMOKE_TEST, str(zipapp_path.resolve()), *SMOKE_MODULES]
        _run(smoke, "importing the dependencies from the zipapp", env=env)


def write_archive(executable: Path, license_file: Path, target: Path, epoch: int | None = None) -> str:
    """Tar and gzip the executable and the licence reproducibly; return the archive's sha256.

    Args:
        executable: The zipapp, stored as ``kubectl-netgen`` with mode 0755.
        license_file: The licence, stored as ``LICENSE`` with mode 0644.
        target: The ``.tar.gz`` to write.
        epoch: The timestamp of every entry; by default :func:`source_epoch`.

    Returns:
        The hex sha256 of the archive.
    """
    mtime = source_epoch() if epoch is None else epoch
    members = sorted([(NAME, executable, 0o755), ("LICENSE", license_file, 0o644)])
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, path, mode in members:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, mtime
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    gz_bytes = io.BytesIO()
    # GzipFile would otherwise store the current time and the file name in its header.
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz_bytes, compresslevel=9, mtime=mtime) as gz:
        gz.write(tar_bytes.getvalue())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gz_bytes.getvalue())
    return hashlib.sha256(gz_bytes.getvalue()).hexdigest()


_SPEC_VERSION = re.compile(
    r"^(?P<head>[ \t]+version:[ \t]*)[\"']?v[^\s\"'#]+[\"']?(?P<tail>[ \t]*(#.*)?)$", re.M
)
_SHA256 = re.compile(r"^(?P<head>[ \t]+sha256:[ \t]*)[\"']?[0-9a-fA-F]*[\"']?(?P<tail>[ \t]*(#.*)?)$", re.M)
_URI_VERSION = re.compile(
    r"(?P<head>/releases/download/)v[^/\s]+(?P<mid>/[\w.-]+_)v[^/\s]+?(?P<tail>\.tar\.gz)"
)


def update_manifest(manifest: Path, version: str, sha256: str) -> None:
    """Point the krew manifest at this release, editing only the values so comments and layout stay.

    Args:
        manifest: The krew ``Plugin`` manifest.
        version: The version, without the leading ``v``.
        sha256: The archive's hex sha256.

    Raises:
        BuildError: The manifest lacks ``spec.version``, a ``sha256:`` field or a release download URI.
    """
    text = manifest.read_text(encoding="utf-8")
    text, versions = _SPEC_VERSION.subn(rf"\g<head>v{version}\g<tail>", text)
    text, sums = _SHA256.subn(rf"\g<head>{sha256}\g<tail>", text)
    text, uris = _URI_VERSION.subn(rf"\g<head>v{version}\g<mid>v{version}\g<tail>", text)
    if versions != 1 or sums == 0 or uris != sums:
        raise BuildError(
            f"{manifest}: expected one 'version: v...' and as many 'sha256:' fields as release URIs, "
            f"found {versions} version, {sums} sha256 and {uris} URI fields"
        )
    manifest.write_text(text, encoding="utf-8")


def package(site: Path, license_file: Path, out: Path, version: str, python: str) -> tuple[Path, str]:
    """Turn a pruned ``site`` into the checked zipapp and the release archive.

    Args:
        site: The pruned directory of packages.
        license_file: The licence to ship.
        out: The directory for the archive.
        version: The version of the release.
        python: The interpreter that smoke-tests the zipapp.

    Returns:
        The archive's path and hex sha256.

    Raises:
        BuildError: The zipapp failed its smoke test.
    """
    executable = out / NAME
    write_zipapp(site, executable)
    check_zipapp(executable, python, version)
    archive = out / f"{NAME}_v{version}.tar.gz"
    sha256 = write_archive(executable, license_file, archive)
    return archive, sha256


def _say(message: str) -> None:
    print(f"build.py: {message}", file=sys.stderr, flush=True)


def build(out: Path, python: str, manifest: Path, work: Path, constraints: Path | None) -> tuple[Path, str]:
    """Run every step: install, prune, package, update the manifest.

    Args:
        out: The directory for the archive and the zipapp.
        python: The interpreter that runs pip and the smoke test.
        manifest: The krew manifest to update.
        work: A directory for the installed packages (``work/site``), replaced if present.
        constraints: A pip constraints file, or ``None``.

    Returns:
        The archive's path and hex sha256.

    Raises:
        BuildError: A step failed.
    """
    version = project_version()
    license_file = ROOT / "LICENSE"
    if not license_file.is_file():
        raise BuildError(f"{license_file} is missing; the archive must carry the licence")
    if not manifest.is_file():
        raise BuildError(f"{manifest} is missing")
    site = work / "site"
    if site.exists():
        shutil.rmtree(site)
    _say(f"installing {NAME} {version} and its dependencies for Python {MIN_PYTHON} into {site}")
    build_site(ROOT, site, python, constraints)
    removed = prune_site(site)
    _say(f"removed compiled modules with pure-Python fallbacks: {', '.join(removed) or 'none'}")
    archive, sha256 = package(site, license_file, out, version, python)
    _say(f"zipapp {out / NAME}: {(out / NAME).stat().st_size / 1e6:.1f} MB, smoke test passed")
    update_manifest(manifest, version, sha256)
    _say(f"updated {manifest}")
    return archive, sha256


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and build; return the exit status."""
    parser = argparse.ArgumentParser(description="Build the krew release archive of kubectl-netgen.")
    parser.add_argument("--out", type=Path, default=ROOT / "krew" / "dist", help="output directory")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs pip (default: this)")
    parser.add_argument("--manifest", type=Path, default=ROOT / "plugin.yaml", help="krew manifest to update")
    parser.add_argument(
        "--constraints", type=Path, default=ROOT / "krew" / "constraints.txt", help="pip constraints file"
    )
    parser.add_argument("--work", type=Path, help="keep the installed packages in WORK/site, not a temp dir")
    args = parser.parse_args(argv)
    try:
        if not args.constraints.is_file():
            raise BuildError(f"{args.constraints} is missing")
        constraints = args.constraints
        if args.work is not None:
            archive, sha256 = build(args.out, args.python, args.manifest, args.work, constraints)
        else:
            with tempfile.TemporaryDirectory(prefix="netgen-work-") as work:
                archive, sha256 = build(args.out, args.python, args.manifest, Path(work), constraints)
    except BuildError as e:
        print(f"build.py: error: {e}", file=sys.stderr)
        return 1
    print(f"{sha256}  {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
