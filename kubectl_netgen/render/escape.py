r"""Strings from input made safe to print: one visible line that cannot rewrite the output around it.

Names reach netgen's output from places an attacker may write: node, Service and pod names and labels in
a snapshot or a live cluster, DNS answers in a capture, socket tables. Printed as they are, a newline in a
node name beside a ``cidr:`` line adds an ipBlock to a NetworkPolicy, rich markup in a DNS name raises
or becomes a hyperlink in a table, and control characters rewrite the terminal. Every such string goes
through :func:`one_line` (and comments through :func:`comment_text`, table cells through :func:`cell`):
what is not printable is backslash-escaped visibly (``\n``, ``\x1b``, ``\u202e``), a backslash itself
becomes ``\\`` so the escaping reads back unambiguously, and long text is cut with an ellipsis.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

COMMENT_LIMIT = 200
"""Characters of a comment beside a ``cidr:`` line, ellipsis included."""

CELL_LIMIT = 200
"""Characters of one table cell's text, ellipsis included."""

ELLIPSIS = "…"

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0", "\\": "\\\\"}


@functools.lru_cache(maxsize=4096)
def _escaped(char: str) -> str:
    """The visible form of one character: itself when printable, else a backslash escape."""
    named = _NAMED.get(char)
    if named is not None:
        return named
    if char.isprintable():
        # Printable excludes every category YAML, JSON or a terminal could take as a break or a control:
        # Cc (C0, DEL, C1 incl. NEL), Cf (bidi overrides, zero-width, BOM), Zl, Zp, Cs, Co, Cn, and
        # spaces other than U+0020.
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _pieces(text: str) -> list[str]:
    return [_escaped(c) for c in text]


def _cut(pieces: list[str], limit: int | None) -> str:
    """The pieces joined, cut at a piece boundary (never inside an escape) to ``limit`` with an ellipsis."""
    if limit is None or sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    kept, size = [], 0
    for piece in pieces:
        if size + len(piece) > limit - len(ELLIPSIS):
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept) + ELLIPSIS


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` (or ``str()`` of it) as one line of printable characters, at most ``limit`` long.

    Args:
        text: Any value; strings taken from input are what this is for.
        limit: Longest result in characters, ellipsis included; ``None``: no limit.

    Returns:
        The text with every non-printable character (newlines, carriage returns, NUL, other C0/C1
        controls, Unicode line and paragraph separators, bidi overrides and other format characters,
        non-ASCII spaces) and the backslash written as a backslash escape; cut with ``…`` past ``limit``.
    """
    raw = text if isinstance(text, str) else str(text)
    if raw.isascii() and raw.isprintable() and "\\" not in raw:  # the common case, without a list
        return raw if limit is None or len(raw) <= limit else _cut(list(raw), limit)
    return _cut(_pieces(raw), limit)


def comment_text(values: Iterable[object], limit: int = COMMENT_LIMIT) -> str:
    """The text of a YAML comment naming ``values`` (``a, b, c``): one printable line, ``limit`` long at most.

    Nothing in it can end the comment or start a new YAML line: a comment runs to the line break, and
    the result has none (nor any other character YAML reads as one).

    Args:
        values: The names, in the order to show them.
        limit: Longest result in characters, ellipsis included.

    Returns:
        The comment's text, without the ``# `` that starts it.
    """
    pieces: list[str] = []
    for i, value in enumerate(values):
        if i:
            pieces.append(", ")
        pieces.extend(_pieces(value if isinstance(value, str) else str(value)))
        if len(pieces) > limit:  # already too long: the rest would be cut anyway
            break
    return _cut(pieces, limit)


def cell(value: object, style: str = "", limit: int | None = CELL_LIMIT) -> Text:
    """A rich table cell (or line) showing ``value`` literally: markup is never parsed, controls escaped.

    Args:
        value: What to show; ``None`` shows as ``-``.
        style: A rich style for the whole cell (netgen's own, never taken from input).
        limit: Longest text in characters, ellipsis included; ``None``: no limit.

    Returns:
        A :class:`rich.text.Text`, which rich prints as it is (``[link=…]`` stays text).
    """
    from rich.text import Text

    return Text("-" if value is None else one_line(value, limit), style=style)
