"""``capture``: run tcpdump in an ephemeral container in every pod behind the targets; write a capture directory.

First the permissions are asked of the API server (:mod:`.permissions`, from the table ``rbac`` prints).
Then every pod starts at once over one window (:mod:`.window`; ``--parallel`` bounds the requests in
flight): add the capture container (``pods/ephemeralcontainers``; nothing restarts), wait for it to run
(giving up after the start timeout), follow its log and decode the framed base64 stream as it arrives
(:mod:`kubectl_netgen.capturing.stream`), writing each tcpdump's bytes to disk at once, then merge them
into ``pcaps/<ns>/<pod>.pcap`` and write the socket tables (:mod:`.pod`). A pod watch captures the
target pods that start during the window and remembers every pod it saw. A pod's failure is its own
outcome; the others go on. On Ctrl-C every stream is closed, what arrived is written, and the result
says it was interrupted. ``cluster.json`` merges the inventory read at the start, every pod the watch
saw, and the inventory read at the end.

Progress goes to a :class:`CaptureProgress` the CLI passes in; nothing here prints.
"""

from kubectl_netgen.app.recording.model import (
    CapturePreview,
    CaptureProgress,
    CaptureRequest,
    CaptureResult,
    PodOutcome,
    PodProgress,
    PodRef,
    PodState,
)
from kubectl_netgen.app.recording.permissions import check_access, rbac_manifests
from kubectl_netgen.app.recording.run import capture, default_directory, preview
from kubectl_netgen.app.recording.selection import choose_pods

__all__ = [
    "CapturePreview", "CaptureProgress", "CaptureRequest", "CaptureResult", "PodOutcome", "PodProgress", "PodRef",
    "PodState",
    "capture", "check_access", "choose_pods", "default_directory", "preview", "rbac_manifests",
]
