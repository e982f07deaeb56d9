"""Which captured workloads get a policy, and why the others do not.

Pure: a captured pod and its workload in, a reason to leave it out (or none) out. A policy that a capture
cannot justify is worse than none, so ``generate`` writes nothing for:

* workloads in ``kube-system`` (cluster DNS, CNI agents, kube-proxy…), which serve the whole cluster:
  their clients are every pod, not the ones a capture happened to see (``--include-system`` writes them);
* workloads the user excludes with ``--exclude NS/NAME`` (``*`` and ``?`` match);
* hostNetwork pods: NetworkPolicy does not apply to them, and their addresses are their node's;
* workloads whose pods carry no label that survives the volatile-label filter: the only selector left
  would be ``podSelector: {}``, every pod of the namespace.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from kubectl_netgen.errors import InputError
from kubectl_netgen.model import Pod, Workload

SYSTEM_NAMESPACE = "kube-system"
SUGGESTED_LABEL = "app.kubernetes.io/name"
"""The label netgen suggests adding to pods that carry no stable one (the recommended Kubernetes label)."""

_PATTERN = re.compile(r"[a-z0-9*?]([-a-z0-9.*?]*[a-z0-9*?])?/[a-z0-9*?]([-a-z0-9.*?]*[a-z0-9*?])?")


class Skip(str, enum.Enum):
    """Why a captured workload gets no policy."""

    SYSTEM = "system"
    """It lives in ``kube-system`` and ``--include-system`` was not given."""
    EXCLUDED = "excluded"
    """An ``--exclude`` pattern matches it."""
    HOST_NETWORK = "host-network"
    """A hostNetwork pod: NetworkPolicy does not apply to it."""
    UNLABELLED = "unlabelled"
    """Its pods carry no stable label: a selector for them would select the whole namespace."""


def selects_something(workload: Workload) -> bool:
    """Whether the workload's selector names its pods by some label (an empty one selects every pod)."""
    return bool(workload.selector.match_labels or workload.selector.match_expressions)


def check_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """Check ``--exclude`` values: ``NAMESPACE/NAME`` of a workload, ``*`` and ``?`` matching.

    Raises:
        InputError: A value is not of that form.
    """
    checked = tuple(patterns)
    for pattern in checked:
        if len(pattern) > 317 or not _PATTERN.fullmatch(pattern):
            raise InputError(f"{pattern!r} is not NAMESPACE/NAME of a workload (* and ? match, "
                             "e.g. shop/web or 'monitoring/*')")
    return checked


@dataclass(frozen=True)
class Scope:
    """What the user asked to leave out of (or bring into) the generated policies."""

    include_system: bool = False
    """``--include-system``: write policies for ``kube-system`` workloads too."""
    exclude: Sequence[str] = ()
    """``--exclude`` patterns over ``NAMESPACE/NAME`` of workloads."""

    def skip(self, pod: Pod, workload: Workload) -> Skip | None:
        """Why the captured ``pod`` (of ``workload``) gets no policy, or ``None`` when it gets one."""
        if pod.host_network:
            return Skip.HOST_NETWORK
        if workload.ref.namespace == SYSTEM_NAMESPACE and not self.include_system:
            return Skip.SYSTEM
        name = f"{workload.ref.namespace}/{workload.ref.name}"
        if any(fnmatchcase(name, pattern) for pattern in self.exclude):
            return Skip.EXCLUDED
        if not selects_something(workload):
            return Skip.UNLABELLED
        return None
