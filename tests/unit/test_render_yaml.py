"""The fast policy YAML writer writes exactly what PyYAML's safe_dump writes, for any synthesized policy."""

from __future__ import annotations

import json

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kubectl_netgen.model import LabelSelector, PolicyDirection, Protocol, Workload, WorkloadKind, WorkloadRef
from kubectl_netgen.render import policies_yaml
from kubectl_netgen.synth import Mode, Observation, PolicyPeer, synthesize

label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._/: TRUEnull", min_size=1, max_size=12)
labels = st.dictionaries(label, label, min_size=1, max_size=3).map(lambda d: tuple(sorted(d.items())))
workloads = st.builds(lambda ns, name, lab: Workload(WorkloadRef(WorkloadKind.DEPLOYMENT, ns, name),
                                                     LabelSelector(lab)),
                      st.sampled_from(["shop", "data", "on"]), st.sampled_from(["web", "db", "yes", "1.0"]), labels)
peers = st.one_of(
    st.builds(lambda ns, lab: PolicyPeer(ns, LabelSelector(lab)), st.sampled_from(["shop", "kube-system", "null"]),
              labels),
    st.builds(lambda n, names: PolicyPeer(cidr=f"203.0.113.{n}/32", names=tuple(names)), st.integers(0, 255),
              st.lists(label, max_size=2)),
)
observations = st.lists(st.builds(Observation, workloads, st.sampled_from(list(PolicyDirection)), peers,
                                  st.sampled_from([Protocol.TCP, Protocol.UDP, Protocol.SCTP]),
                                  st.integers(1, 65535)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(observations=observations, mode=st.sampled_from(list(Mode)), ranges=st.booleans())
def test_fast_writer_matches_pyyaml(observations: list[Observation], mode: Mode, ranges: bool) -> None:
    policies = synthesize(observations, mode=mode, port_ranges=ranges)
    # Synthesis shares peer and port manifests between rules; PyYAML would write those as aliases (&id001).
    unshared = json.loads(json.dumps(policies))
    expected = "---\n".join(
        yaml.safe_dump(p, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120) for p in unshared)
    assert policies_yaml(policies) == expected


def test_shared_parts_are_never_written_as_aliases() -> None:
    """A policy PyYAML writes (a label value the direct writer leaves to it) has its shared parts in full."""
    web = Workload(WorkloadRef(WorkloadKind.DEPLOYMENT, "shop", "web"), LabelSelector((("enabled", "true"),)))
    db = PolicyPeer("shop", LabelSelector((("app", "db"),)))
    policies = synthesize([Observation(web, PolicyDirection.EGRESS, db, Protocol.TCP, 5432),
                           Observation(web, PolicyDirection.INGRESS, db, Protocol.TCP, 5432)])
    spec = policies[0]["spec"]
    assert spec["ingress"][0]["from"][0] is spec["egress"][0]["to"][0]  # shared, as synthesis builds them
    text = policies_yaml(policies)
    assert "&" not in text and "*" not in text
    assert text.count("app: db") == 2 and "enabled: 'true'" in text
