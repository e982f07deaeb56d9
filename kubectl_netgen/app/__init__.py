"""Use cases of kubectl-netgen, wiring decoders and the pure core together.

No typer, no rich, no printing: results come back as values, warnings go through the ``warn``
callable the CLI passes in. One module per use case or shared input:

* :mod:`.captures`: decoding pcaps into flows and DNS names (``flows``, ``dns``);
* :mod:`.cluster`: the inventory, live (``snapshot``) or from a file;
* :mod:`.sources`: which pod each capture belongs to, the inventory to resolve against, reverse DNS;
* :mod:`.policies`: ``generate``; :mod:`.peers`: ``neighbors``; :mod:`.verify`: ``verify`` and ``explain``;
* :mod:`.recording`: ``capture`` (live pods: target selection, one pod's capture, the run);
* :mod:`.contracts`: ``contracts`` (group contracts, applied, test pods, cleanup); :mod:`.baseline`: ``baseline``.
"""

from kubectl_netgen.app.baseline import BaselineOptions, BaselineResult, baseline, baseline_kyverno
from kubectl_netgen.app.captures import FlowsResult, NamesResult, Warn, dns_names, flows, read_captures
from kubectl_netgen.app.cluster import LiveCluster, SnapshotResult, live_inventory, read_cluster, snapshot
from kubectl_netgen.app.contracts import (
    Change,
    ContractsPlan,
    DryRun,
    apply_manifests,
    cleanup_contracts,
    read_contracts,
)
from kubectl_netgen.app.peers import Neighbor, NeighborsResult, WorkloadNeighbors, neighbors
from kubectl_netgen.app.policies import GenerateResult, generate
from kubectl_netgen.app.recording import (
    CapturePreview,
    CaptureProgress,
    CaptureRequest,
    CaptureResult,
    PodOutcome,
    PodProgress,
    PodState,
    capture,
    preview,
    rbac_manifests,
)
from kubectl_netgen.app.sources import ReverseDns
from kubectl_netgen.app.verify import Exposure, Judged, VerifyResult, read_policies, verify

__all__ = [
    "BaselineOptions",
    "BaselineResult",
    "CapturePreview",
    "CaptureProgress",
    "CaptureRequest",
    "CaptureResult",
    "Change",
    "ContractsPlan",
    "DryRun",
    "Exposure",
    "FlowsResult",
    "GenerateResult",
    "Judged",
    "LiveCluster",
    "NamesResult",
    "Neighbor",
    "NeighborsResult",
    "PodOutcome",
    "PodProgress",
    "PodState",
    "ReverseDns",
    "SnapshotResult",
    "VerifyResult",
    "Warn",
    "WorkloadNeighbors",
    "apply_manifests",
    "baseline",
    "baseline_kyverno",
    "capture",
    "cleanup_contracts",
    "dns_names",
    "flows",
    "generate",
    "live_inventory",
    "neighbors",
    "preview",
    "rbac_manifests",
    "read_captures",
    "read_cluster",
    "read_contracts",
    "read_policies",
    "snapshot",
    "verify",
]
