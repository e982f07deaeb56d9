"""Everything kubectl-netgen prints: machine-readable results and tables for people.

JSON is written sorted and indented so the same input gives the same bytes. Tables use rich, imported
only when a table is asked for. One module per command family: :mod:`.decoded` (``flows``, ``dns``,
``snapshot``), :mod:`.policies` (``generate``), :mod:`.neighbors`, :mod:`.verify` (``verify``,
``explain``), :mod:`.capture`, :mod:`.contracts` (``contracts``, ``baseline``); :mod:`.common` holds what
they share.
"""

from kubectl_netgen.render.capture import (
    CaptureDisplay,
    capture_failures,
    capture_summary,
    preview_manifests,
    preview_summary,
)
from kubectl_netgen.render.common import dump_json, rfc3339
from kubectl_netgen.render.contracts import (
    baseline_summary,
    change_line,
    cleanup_summary,
    contracts_summary,
    left_out_note,
    manifests_yaml,
)
from kubectl_netgen.render.decoded import (
    flow_record,
    flows_json,
    flows_summary,
    flows_table,
    names_json,
    names_summary,
    names_table,
    snapshot_summary,
)
from kubectl_netgen.render.neighbors import neighbor_record, neighbors_json, neighbors_summary, neighbors_table
from kubectl_netgen.render.policies import generate_summary, policies_json, policies_yaml
from kubectl_netgen.render.verify import (
    explain_text,
    exposure_report,
    judged_record,
    verify_json,
    verify_summary,
    verify_table,
)

__all__ = [
    "CaptureDisplay",
    "baseline_summary",
    "capture_failures",
    "capture_summary",
    "change_line",
    "cleanup_summary",
    "contracts_summary",
    "dump_json",
    "explain_text",
    "exposure_report",
    "flow_record",
    "flows_json",
    "flows_summary",
    "flows_table",
    "generate_summary",
    "judged_record",
    "left_out_note",
    "manifests_yaml",
    "names_json",
    "names_summary",
    "names_table",
    "neighbor_record",
    "neighbors_json",
    "neighbors_summary",
    "neighbors_table",
    "policies_json",
    "policies_yaml",
    "preview_manifests",
    "preview_summary",
    "rfc3339",
    "snapshot_summary",
    "verify_json",
    "verify_summary",
    "verify_table",
]
