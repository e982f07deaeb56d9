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


MAX_NODES = 1_000_000
"""Values one document may expand to, aliases counted each time they are used: a few hundred bytes of
nested aliases (a "billion laughs") would otherwise take minutes and gigabytes to build."""
MAX_DEPTH = 100
"""Levels of nesting one document may have (a manifest has about ten)."""


def _check(node: Any, name: str) -> None:
    """Refuse a composed document that would expand past :data:`MAX_NODES` or nest past :data:`MAX_DEPTH`.

    Aliases share their node, so the expanded size is found in one pass over the distinct nodes.

    Raises:
        InputError: Too large once aliases are expanded, too deep, or an alias that contains itself.
    """
    size: dict[int, int] = {}
    stack: list[tuple[Any, int, bool]] = [(node, 1, False)]
    open_ids: set[int] = set()
    while stack:
        current, depth, done = stack.pop()
        key = id(current)
        if done:
            open_ids.discard(key)
            children = _children(current)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_NODES:
                raise InputError(f"{name}: a document expands to more than {MAX_NODES:,} values (YAML aliases "
                                 "nested in aliases); refusing it")
            continue
        if key in size:
            continue
        if key in open_ids:
            raise InputError(f"{name}: a YAML alias contains itself; refusing it")
        if depth > MAX_DEPTH:
            raise InputError(f"{name}: nested more than {MAX_DEPTH} levels deep; refusing it")
        open_ids.add(key)
        stack.append((current, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(current) if id(child) not in size)


def _children(node: Any) -> list[Any]:
    value = node.value
    if isinstance(value, list):
        return [v for pair in value for v in pair] if value and isinstance(value[0], tuple) else list(value)
    return []


def parse(text: str, name: str) -> list[Any]:
    """The documents of one manifest file (``None`` for empty YAML documents is dropped).

    Each document is composed, checked for its expanded size and depth (:func:`_check`), then built.

    Raises:
        InputError: Not YAML or JSON, or too large or deep once expanded; the message names the file.
    """
    import yaml

    loader = _loader()(text)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            _check(node, name)
            document = loader.construct_document(node)
            if document is not None:
                documents.append(document)
        return documents
    except RecursionError as e:
        raise InputError(f"{name}: nested too deeply to read; refusing it") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"{name}: not valid YAML or JSON{where}: {problem}") from e
    finally:
        loader.dispose()


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
