"""Wire formats shared by objects, logs and query parameters: Kubernetes timestamps and Go booleans."""

from __future__ import annotations

import datetime as dt
import time


def rfc3339(ts_ns: int | None = None) -> str:
    """Seconds-precision UTC time as Kubernetes writes it in objects."""
    seconds = (time.time_ns() if ts_ns is None else ts_ns) // 1_000_000_000
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(ts_ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: nanoseconds with trailing zeros trimmed."""
    base = rfc3339(ts_ns)[:-1]
    frac = f"{ts_ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool`` truth, as the API server parses boolean query parameters (the Python client
    sends ``True``)."""
    return text in ("1", "t", "T", "true", "TRUE", "True")
