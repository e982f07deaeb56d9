"""NetworkPolicy semantics: is this flow allowed by these policies, and why.

Pure: manifests (as dicts) and an inventory in, verdicts out. Generation uses it to prove its output
allows every observed flow; ``verify`` checks policies, generated or hand-written, against real
traffic before they are applied.

The package splits along three seams:

* reading manifests: :mod:`.fields` (checked field access), :mod:`.policies` (NetworkPolicy),
  :mod:`.admin` (AdminNetworkPolicy, BaselineAdminNetworkPolicy), :mod:`.manifests` (a set of them);
* what tiers share, :mod:`.matching`, and the tiers themselves, :mod:`.tiers`;
* the pipeline and its verdicts, :mod:`.engine`.
"""

from kubectl_netgen.evaluate.admin import (
    Action,
    AdminNetworkPolicy,
    AdminPeer,
    AdminRule,
    BaselineAdminNetworkPolicy,
    Subject,
)
from kubectl_netgen.evaluate.engine import Evaluator, SideVerdict, Verdict, endpoint, evaluate
from kubectl_netgen.evaluate.manifests import PolicySet, parse_policies
from kubectl_netgen.evaluate.matching import Endpoint, RuleRef, Tier
from kubectl_netgen.evaluate.policies import IPBlock, NetworkPolicy, PolicyPeer, PortSpec, Rule, parse_network_policy

__all__ = [
    "Action",
    "AdminNetworkPolicy",
    "AdminPeer",
    "AdminRule",
    "BaselineAdminNetworkPolicy",
    "Endpoint",
    "Evaluator",
    "IPBlock",
    "NetworkPolicy",
    "PolicyPeer",
    "PolicySet",
    "PortSpec",
    "Rule",
    "RuleRef",
    "SideVerdict",
    "Subject",
    "Tier",
    "Verdict",
    "endpoint",
    "evaluate",
    "parse_network_policy",
    "parse_policies",
]
