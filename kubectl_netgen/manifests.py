"""Reading Kubernetes manifests from files, directories and stdin: YAML (multi-document) or JSON.

The one place that parses YAML input (``render`` writes it), so every command that takes
``--policies FILE|DIR|-`` reads manifests alike and reports a bad file as one line naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from kubectl_netgen.errors import InputError

SUFFIXES = (".yaml", ".yml", ".json")
"""Files of a directory that are read (as ``kubectl apply -f DIR`` does, not recursively)."""


def _loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster on big sets


def parse(text: str, name: str) -> list[Any]:
    """The documents of one manifest file (``None`` for empty YAML documents is dropped).

    Raises:
        InputError: Not YAML or JSON; the message names the file and the line.
    """
    import yaml

    try:
        return [doc for doc in yaml.load_all(text, Loader=_loader()) if doc is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"{name}: not valid YAML or JSON{where}: {problem}") from e


def read(sources: Sequence[str], stdin: BinaryIO | None) -> list[Any]:
    """Every document of every source: a file, a directory (its ``.yaml``/``.yml``/``.json`` files), or ``-``.

    Raises:
        InputError: A source is missing, unreadable, not YAML/JSON, or ``-`` is given twice.
    """
    if list(sources).count("-") > 1:
        raise InputError("'-' (stdin) can be given only once")
    documents: list[Any] = []
    for source in sources:
        if source == "-":
            if stdin is None:
                raise InputError("no standard input to read policies from")
            documents += parse(stdin.read().decode("utf-8", "replace"), "stdin")
            continue
        path = Path(source)
        files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise InputError(f"{path}: no {', '.join(SUFFIXES)} files in this directory")
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise InputError(f"{file}: no such file") from None
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(f"cannot read {file}: {getattr(e, 'strerror', None) or e}") from e
            documents += parse(text, str(file))
    return documents
