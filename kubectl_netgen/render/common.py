"""What every renderer shares: JSON as netgen writes it, times, sizes, the rich console."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console


def rfc3339(ns: int) -> str | None:
    """Nanoseconds since the epoch -> RFC 3339 UTC (``…Z``), microseconds unless finer; ``None`` for 0."""
    if ns <= 0:
        return None
    seconds, rest = divmod(ns, 1_000_000_000)
    try:
        stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return None  # beyond what RFC 3339 can say (the decoder already counts such times as invalid)
    fraction = f"{rest:09d}" if rest % 1000 else f"{rest // 1000:06d}"
    return f"{stamp}.{fraction}Z"


def dump_json(data: Any) -> str:
    """The one JSON writer: two-space indent, a final newline, non-ASCII kept."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _console(out: TextIO) -> Console:
    """A rich console on ``out``; wide enough off a real terminal that rows never wrap."""
    from rich.console import Console

    isatty = getattr(out, "isatty", None)
    return Console(file=out, highlight=False, width=None if isatty and isatty() else 250)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")
