"""Faults a test switches on, as a busy or broken API server shows them to clients.

* ``throttle``: ``429 Too Many Requests`` with a ``Retry-After`` header and the plain-text body that
  kube-apiserver's priority-and-fairness filter writes (not a ``Status``: the filter answers before
  the API machinery does);
* ``drop``: the connection is closed without a reply (a restarting server, a load balancer cutting it);
* ``hang``: the request is read and never answered until the server closes (or :data:`HANG_SECONDS`).

Each :class:`Fault` picks requests by verb and resource (``pods/log`` for a subresource; ``*`` for any)
and fires on the ``nth`` matching one and the ``times - 1`` after it (``times=0``: on every one from the
``nth`` on).
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIONS = ("throttle", "drop", "hang")
HANG_SECONDS = 300.0
"""A hung request is let go after this long even if the server keeps running, so no thread lives forever."""
THROTTLE_BODY = b"Too many requests, please try again later.\n"


@dataclass
class Fault:
    """One switched-on fault; ``seen`` and ``fired`` count the matching requests and the faulted ones."""

    action: str
    verb: str = "*"
    resource: str = "*"
    nth: int = 1
    times: int = 1
    retry_after: int = 1
    """Seconds in ``Retry-After`` (``throttle``)."""
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        """Check the action and counts."""
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault {self.action!r}: one of {', '.join(ACTIONS)}")
        if self.nth < 1 or self.times < 0:
            raise ValueError("nth must be >= 1 and times >= 0")

    def take(self, verb: str, resource: str) -> bool:
        """Count a request (call with the server's lock held); return whether it is to be faulted."""
        if self.verb not in ("*", verb) or self.resource not in ("*", resource):
            return False
        self.seen += 1
        if self.seen < self.nth or (self.times and self.seen >= self.nth + self.times):
            return False
        self.fired += 1
        return True
