"""``capture``: each pod's progress on stderr, failures and a summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from kubectl_netgen.app.recording import PodState
from kubectl_netgen.render.common import _console, _size
from kubectl_netgen.render.escape import cell, one_line

if TYPE_CHECKING:
    from kubectl_netgen.app.recording import CapturePreview, CaptureResult, PodProgress


def _pod_line(p: PodProgress) -> str:
    counts = f"{p.packets} packets, {_size(p.bytes)}" if p.packets or p.bytes else ""
    detail = " - ".join(x for x in (counts, p.detail) if x)
    return one_line(f"{p.namespace}/{p.pod}: {p.state.value}" + (f" ({detail})" if detail else ""))


class CaptureDisplay:
    """Shows each pod's capture on stderr: a live table on a terminal, else one line per state change.

    Implements :class:`kubectl_netgen.app.CaptureProgress`; use it as a context manager.
    """

    def __init__(self, out: TextIO, live: bool) -> None:
        """Write to ``out``; ``live``: redraw a rich table in place (``out`` is a terminal)."""
        self.out, self.live = out, live
        self._pods: dict[tuple[str, str], PodProgress] = {}
        self._last_state: dict[tuple[str, str], Any] = {}
        self._live: Any = None

    def __enter__(self) -> CaptureDisplay:
        """Start the live table, if any."""
        if self.live:
            from rich.live import Live

            self._live = Live(self._table(), console=_console(self.out), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        """Draw the final table and stop."""
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, progress: PodProgress) -> None:
        """A pod's state or counts changed."""
        key = (progress.namespace, progress.pod)
        self._pods[key] = progress
        if self._live is not None:
            self._live.update(self._table())
        elif self._last_state.get(key) != (progress.state, progress.detail) and progress.state.value not in (
                "pending",):
            if not (progress.state.value == "capturing" and self._last_state.get(key, (None,))[0] == progress.state):
                self.out.write(_pod_line(progress) + "\n")
                self.out.flush()
            self._last_state[key] = (progress.state, progress.detail)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("POD", "STATE", "PACKETS", "BYTES", "DETAIL"):
            table.add_column(column, justify="right" if column in ("PACKETS", "BYTES") else "left")
        colors = {"done": "green", "failed": "red", "interrupted": "yellow", "capturing": "cyan"}
        for (ns, pod), p in sorted(self._pods.items()):
            state = p.state.value
            table.add_row(cell(f"{ns}/{pod}"), cell(state, colors.get(state, "white")), cell(p.packets),
                          cell(_size(p.bytes)), cell(p.detail))
        return table


def capture_failures(result: CaptureResult) -> list[str]:
    """One line per pod that was not captured completely: the pod and why.

    An interrupted pod whose packets were kept is not a failure: the summary counts it.
    """
    lines = []
    for p in result.pods:
        if not p.ok and not (p.state is PodState.INTERRUPTED and p.pcap):
            lines.append(one_line(f"{p.namespace}/{p.pod}: {p.state.value}: {p.reason or '; '.join(p.problems)}"))
    return lines


def capture_summary(result: CaptureResult) -> str:
    """One line: how many pods were captured, how many packets, where."""
    packets = sum(p.packets for p in result.pods)
    size = sum(p.bytes for p in result.pods)
    where = one_line(result.directory)
    if result.interrupted:
        kept = sum(1 for p in result.pods if p.pcap)
        return (f"interrupted: kept {kept} of {len(result.pods)} pod(s), {packets} packets ({_size(size)}) in "
                f"{where}; the containers end by themselves; read it with 'kubectl netgen generate {where}'")
    return (f"captured {result.succeeded} of {len(result.pods)} pod(s), {packets} packets "
            f"({_size(size)}) into {where}")


def preview_manifests(planned: CapturePreview) -> list[dict[str, Any]]:
    """What ``--dry-run=client`` prints: per pod, the ``pods/ephemeralcontainers`` change a capture makes."""
    return [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ref.name, "namespace": ref.namespace},
             "spec": {"ephemeralContainers": [planned.container]}} for ref in planned.pods]


def preview_summary(planned: CapturePreview) -> str:
    """One line: what a capture would touch, and that nothing was."""
    return one_line(f"dry run: would add the capture container to {len(planned.pods)} pod(s) and write "
                    f"{planned.directory}; nothing was changed")
