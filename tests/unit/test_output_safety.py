"""Output that input cannot rewrite: hostile names from a snapshot, DNS answers and pods reach YAML comments,
tables and text lines as one printable line, and never change the structure of what is printed.

The names go through the real program (``generate``, ``neighbors``, ``dns``, ``verify``) and through the
render functions; the YAML is parsed back and compared with what the same capture gives with benign names.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rrset
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kubectl_netgen.app import (
    Exposure,
    NamesResult,
    Neighbor,
    NeighborsResult,
    PodProgress,
    PodState,
    VerifyResult,
    WorkloadNeighbors,
)
from kubectl_netgen.evaluate import PolicySet
from kubectl_netgen.identity import PeerKind
from kubectl_netgen.model import LabelSelector, PolicyDirection, Protocol, Workload, WorkloadKind, WorkloadRef
from kubectl_netgen.render import names_table, neighbors_table, policies_yaml
from kubectl_netgen.render.capture import CaptureDisplay
from kubectl_netgen.render.escape import COMMENT_LIMIT, cell, comment_text, one_line
from kubectl_netgen.render.verify import exposure_report
from kubectl_netgen.synth import Observation, PolicyPeer, synthesize
from tests.cli.test_generate_scenarios import (
    API1,
    HASH,
    KUBE_DNS_IP,
    NODE_B,
    WEB4,
    WEB_POD,
    base_cluster,
    capture_dir,
    deployment,
    deployment_pod,
    endpointslice,
    service,
    tcp,
    udp,
)
from tests.conftest import run

NEWLINE_NODE = "n1\n  - ipBlock:\n      cidr: 0.0.0.0/0"
"""The name that, before comments were escaped, gave web an ingress rule from everywhere."""

PAYLOADS = [
    NEWLINE_NODE, "x\r\n- ipBlock: {cidr: 0.0.0.0/0}", "# not a comment", "---\nkind: Secret", "a: b", "'\"",
    "\x00\x1b[31mred\x1b]8;;http://x\x07", "line\u2028sep\u2029para\x85nel", "\u202eevil\u2066", "[/].example.com",
    "[link=http://x]a[/link]", "[bold red]loud[/]", "\\n", "x" * 300, "\ufeff\u200b", "tab\there", "é中文",
]
hostile = st.one_of(
    st.sampled_from(PAYLOADS),
    st.text(alphabet=st.sampled_from(list("ab-.:#'\"[]/=\\ \n\r\t\x00\x1b\x85\u2028\u2029\u202e{}*&!|>%@`")),
            min_size=1, max_size=40),
    st.text(min_size=1, max_size=300),
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def printable_line(text: str) -> bool:
    return text.isprintable() and "\n" not in text


# ----------------------------------------------------------------------------- the escaper itself

@settings(max_examples=200, deadline=None)
@given(text=hostile, limit=st.one_of(st.none(), st.integers(1, 250)))
def test_one_line_is_one_printable_bounded_line(text: str, limit: int | None) -> None:
    line = one_line(text, limit)
    assert printable_line(line)
    assert limit is None or len(line) <= limit
    if limit is None:
        assert line.encode().decode("unicode_escape") == text or "\\" in text or not text.isascii()


@settings(max_examples=200, deadline=None)
@given(values=st.lists(hostile, max_size=30))
def test_comment_text_is_one_printable_bounded_line(values: list[str]) -> None:
    text = comment_text(values)
    assert printable_line(text) and len(text) <= COMMENT_LIMIT
    assert yaml.safe_load(f"cidr: 10.0.0.1/32  # {text}\n") == {"cidr": "10.0.0.1/32"}


def test_escapes_are_visible_and_unambiguous() -> None:
    assert one_line("a\nb\rc\td\0e\\f") == "a\\nb\\rc\\td\\0e\\\\f"
    assert one_line("\x1b[1m\x85\u2028\u2029\u202e\U000e0001") == "\\x1b[1m\\x85\\u2028\\u2029\\u202e\\U000e0001"
    assert one_line("web-7d9f8c6b5-x2kq9 é") == "web-7d9f8c6b5-x2kq9 é"
    assert comment_text(["a" * 300]) == "a" * (COMMENT_LIMIT - 1) + "…"
    assert comment_text(["x\n"] * 200).endswith("\\n…") or comment_text(["x\n"] * 200).endswith("x…")
    assert comment_text(["node n1", "b.example.com"]) == "node n1, b.example.com"


# ----------------------------------------------------------------------------- render functions directly

def _comments(text: str) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for m in re.finditer(r"^ *cidr: (\S+)  # (.*)$", text, re.MULTILINE)]


@SETTINGS
@given(names=st.lists(hostile, min_size=1, max_size=4), label=hostile, fallback=st.booleans())
@example(names=[NEWLINE_NODE], label="web", fallback=False)
@example(names=[NEWLINE_NODE], label="a\n\n  cidr: 203.0.113.7/32\n", fallback=True)
def test_policies_yaml_comments_never_change_the_manifests(names: list[str], label: str, fallback: bool) -> None:
    """Both writers (the direct one and PyYAML's, taken for labels it cannot write plain) comment alike."""
    web = Workload(WorkloadRef(WorkloadKind.DEPLOYMENT, "shop", "web"),
                   LabelSelector((("app", label if fallback else "web"),)))
    cidrs = ["203.0.113.7/32", "10.250.0.12/32"]
    policies = synthesize([Observation(web, direction, PolicyPeer(cidr=cidr), Protocol.TCP, 443)
                           for cidr in cidrs for direction in PolicyDirection])
    plain = policies_yaml(policies)
    text = policies_yaml(policies, {cidr: names for cidr in cidrs})
    assert list(yaml.safe_load_all(text)) == list(yaml.safe_load_all(plain)) == json.loads(json.dumps(policies))
    comments = _comments(text)
    assert sorted(c for c, _ in comments) == sorted(cidrs * 2)  # each cidr line once per direction
    assert all(comment == comment_text(names) and printable_line(comment) for _, comment in comments)
    assert len(text.split("\n")) == len(plain.split("\n"))  # comments add no line


def _tty() -> io.StringIO:
    """A terminal to rich: styles and hyperlinks would be written as escape sequences."""
    out = io.StringIO()
    out.isatty = lambda: True  # type: ignore[method-assign]
    return out


def _visible(text: str) -> str:
    return re.sub(r"\s+", "", re.sub(r"\x1b\[[0-9;]*m", "", text))


def _shown(value: str, output: str) -> bool:
    """Whether the start of ``value``'s escaped form is printed literally.

    Rich wraps a cell at its spaces, and the next columns' text then comes between the words: each of
    the first words must be there (its first 20 characters; a longer word may be folded).
    """
    visible = _visible(output)
    return all(_visible(word)[:20] in visible for word in one_line(value).split()[:4])


def _no_injection(output: str, terminal: bool = False) -> None:
    """No hyperlink; off a terminal (where rich writes no escape sequences of its own) nothing unprintable."""
    assert "\x1b]8;" not in output
    if not terminal:
        assert all(line.isprintable() for line in output.split("\n"))


def _render(draw: Callable[[io.StringIO], None]) -> str:
    """What ``draw`` prints off a terminal (250 columns, no styles), after checking it on a terminal."""
    out = _tty()
    draw(out)
    _no_injection(out.getvalue(), terminal=True)
    out = io.StringIO()
    draw(out)
    _no_injection(out.getvalue())
    return out.getvalue()


def _capture_table(progress: PodProgress) -> Callable[[io.StringIO], None]:
    def draw(out: io.StringIO) -> None:
        display = CaptureDisplay(out, live=True)
        with display:
            display.update(progress)
    return draw


@SETTINGS
@given(node=hostile, pod=hostile, name=hostile, ns=hostile)
@example(node="[link=http://x]a[/link]", pod="[/].example.com", name="[bold]x", ns="\x1b[2J")
def test_tables_show_input_literally(node: str, pod: str, name: str, ns: str) -> None:
    web = WorkloadRef(WorkloadKind.DEPLOYMENT, ns, name)
    neighbor = Neighbor(PolicyDirection.INGRESS, PeerKind.NODE, None, (ns, name), ip_address(NODE_B), node, (name,),
                        Protocol.TCP, 8080, 80, 1, 2, 3)
    result = NeighborsResult([WorkloadNeighbors(web, [pod], [], [neighbor])], 1, [])
    shown = _render(lambda out: neighbors_table(result, out))
    assert _shown(f"node {node}", shown) and _shown(f"{ns}/{name}", shown)

    names = NamesResult({ip_address("203.0.113.10"): [name, pod]}, 1, [])
    assert _shown(name, _render(lambda out: names_table(names, out)))

    gap = [Exposure(web, PolicyDirection.EGRESS, WorkloadRef(WorkloadKind.POD, ns, pod), Protocol.TCP, 80)]
    verified = VerifyResult([], [], PolicySet([], [], None), exposure=gap)
    assert _shown(f"{ns}/{pod}", _render(lambda out: exposure_report(verified, out)))

    assert _shown(f"{ns}/{pod}", _render(_capture_table(PodProgress(ns, pod, PodState.FAILED, detail=name))))


def test_capture_lines_are_one_line() -> None:
    out = io.StringIO()
    display = CaptureDisplay(out, live=False)
    display.update(PodProgress("shop", NEWLINE_NODE, PodState.FAILED, detail="x\ny"))
    assert out.getvalue().count("\n") == 1 and "n1\\n  - ipBlock" in out.getvalue()


def test_cell_keeps_markup_as_text() -> None:
    assert cell("[link=http://x]a[/link]").plain == "[link=http://x]a[/link]"
    assert cell(None).plain == "-" and cell(80).plain == "80"


# ----------------------------------------------------------------------------- through the program

@dataclass(frozen=True)
class Names:
    node: str = "node-b"
    service_namespace: str = "ext"
    service: str = "gateway"
    pod: str = f"api-{HASH}-abcde"
    label: str = "front"
    dns: tuple[bytes, ...] = (b"api",)


BENIGN = Names()
TAKEN = {"node-a", "control-plane", "default", "kube-system", "shop", "data", "kubernetes", "kube-dns", "db",
         "coredns", "web", "db-0", "db-1", WEB_POD, f"coredns-{HASH}-q7w2e", "ext-api"}


def _items(n: Names) -> list[dict[str, Any]]:
    items = base_cluster()
    for item in items:
        if item["kind"] == "Node" and item["metadata"]["name"] == "node-b":
            item["metadata"]["name"] = n.node
            item["metadata"]["labels"]["kubernetes.io/hostname"] = n.node
            item["status"]["addresses"][1]["address"] = n.node
        if item["kind"] == "Pod" and item["spec"]["nodeName"] == "node-b":
            item["spec"]["nodeName"] = n.node
        if item["metadata"].get("namespace") == "shop" and item["metadata"]["name"].startswith("web"):
            for labels in (item["metadata"]["labels"], *(
                    [item["spec"]["selector"]["matchLabels"], item["spec"]["template"]["metadata"]["labels"]]
                    if item["kind"] != "Pod" else [])):
                labels["tier"] = n.label
    api = {"app": "api"}
    pod = deployment_pod("shop", "api", "abcde", [API1], "node-a", api, ports=[("http", 8080)])
    pod["metadata"]["name"] = n.pod
    return [
        *items, *deployment("shop", "api", api), pod,
        service(n.service_namespace, n.service, ["10.96.0.77"], [{"name": "https", "port": 443, "targetPort": 8443}],
                None),
        {**endpointslice(n.service_namespace, n.service, [{"name": "https", "port": 8443}], [("192.0.2.5", None)]),
         "metadata": {"name": "ext-api", "namespace": n.service_namespace,
                      "labels": {"kubernetes.io/service-name": n.service}}},
    ]


def _dns(qname: dns.name.Name, address: str) -> list[bytes]:
    query = dns.message.make_query(qname, "A", id=4242)
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(qname, 30, "IN", "A", address))
    return udp(WEB4, KUBE_DNS_IP, 53, query.to_wire(), response.to_wire(), sport=41053)


def _capture(tmp: Path, n: Names) -> Path:
    qname = dns.name.Name((*n.dns, b"example", b"com", b""))
    web = [tcp(NODE_B, WEB4, 8081), tcp(WEB4, "10.96.0.77", 443, 40001), tcp(WEB4, API1, 8080, 40002),
           _dns(qname, "203.0.113.10"), tcp(WEB4, "203.0.113.10", 443, 40003)]
    return capture_dir(tmp, _items(n), {f"shop/{WEB_POD}": web})


def _generate(root: Path) -> tuple[str, list[dict[str, Any]]]:
    result = run("generate", root, "--no-reverse-dns")
    assert result.exit_code == 0, result.stderr
    return result.stdout, list(yaml.safe_load_all(result.stdout))


def _structure(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The policies without what is meant to carry the names: annotations, and web's own tier label."""
    policies = json.loads(json.dumps(policies))
    for policy in policies:
        policy["metadata"].pop("annotations", None)
        policy["spec"]["podSelector"]["matchLabels"].pop("tier", None)
    return policies


def _cidrs(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [value["cidr"]] if isinstance(value.get("cidr"), str) else [c for v in value.values() for c in _cidrs(v)]
    if isinstance(value, list):
        return [c for v in value for c in _cidrs(v)]
    return []


@pytest.fixture(scope="module")
def benign() -> tuple[str, list[dict[str, Any]]]:
    with tempfile.TemporaryDirectory() as tmp:
        return _generate(_capture(Path(tmp), BENIGN))


def test_the_benign_scenario_comments_every_ipblock(benign: tuple[str, list[dict[str, Any]]]) -> None:
    text, policies = benign
    assert dict(_comments(text)) == {"10.250.0.12/32": "node node-b", "192.0.2.5/32": "endpoint of Service ext/gateway",
                                     "203.0.113.10/32": "api.example.com"}
    [web] = [p for p in policies if p["metadata"]["name"] == "web-netgen"]
    assert web["spec"]["podSelector"]["matchLabels"] == {"app": "web", "tier": "front"}


def test_a_node_name_with_newlines_adds_no_rule(tmp_path: Path, benign: tuple[str, list[dict[str, Any]]]) -> None:
    """The regression: ``node n1\\n  - ipBlock: cidr: 0.0.0.0/0`` once gave web an ingress rule from everywhere."""
    text, policies = _generate(_capture(tmp_path, Names(node=NEWLINE_NODE)))
    assert _structure(policies) == _structure(benign[1])
    assert "0.0.0.0/0" not in _cidrs(policies)
    assert "cidr: 10.250.0.12/32  # node n1\\n  - ipBlock:\\n      cidr: 0.0.0.0/0\n" in text


def _label(text: str) -> bytes:
    return (text.encode() or b"x")[:63]


names = st.builds(
    Names, node=hostile.filter(lambda s: s not in TAKEN), service_namespace=hostile.filter(lambda s: s not in TAKEN),
    service=hostile.filter(lambda s: s not in TAKEN), pod=hostile.filter(lambda s: s not in TAKEN), label=hostile,
    dns=st.lists(hostile.map(_label), min_size=1, max_size=2).map(tuple))


@SETTINGS
@given(n=names)
@example(n=Names(node="[link=http://x]a[/link]", service="[/].example.com", pod="[bold]p\n",
                 label="a\n\n  cidr: 10.250.0.12/32\n", dns=(b"[/]", b"[link=http://x]a[/link]")))
def test_hostile_names_through_the_program(n: Names, benign: tuple[str, list[dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = _capture(Path(tmp), n)
        text, policies = _generate(root)
        assert _structure(policies) == _structure(benign[1])
        [web] = [p for p in policies if p["metadata"]["name"] == "web-netgen"]
        assert web["spec"]["podSelector"]["matchLabels"]["tier"] == n.label
        assert sorted(_cidrs(policies)) == sorted(_cidrs(benign[1])) and "0.0.0.0/0" not in _cidrs(policies)
        comments = _comments(text)
        assert sorted(c for c, _ in comments) == sorted(c for c, _ in _comments(benign[0]))
        assert all(printable_line(c) and len(c) <= COMMENT_LIMIT for _, c in comments)
        assert f"# node {one_line(n.node)}"[:60] in text

        tables = [run("neighbors", root, "--no-reverse-dns", tty=True),
                  run("dns", root / "pcaps" / "shop" / f"{WEB_POD}.pcap", tty=True)]
        for table in tables:
            assert table.exit_code == 0, table.stderr
            _no_injection(table.stdout)
        assert _shown(f"node {n.node}", tables[0].stdout)
        checked = run("verify", root, "--policies", "-", "--what-if", stdin=text.encode(), tty=True)
        assert checked.exit_code == 0, checked.stderr
        _no_injection(checked.stdout)
        _no_injection(checked.stderr)
