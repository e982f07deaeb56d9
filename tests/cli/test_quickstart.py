"""The README's quick start works as written, on the bundled example capture."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import ROOT, run

EXAMPLE = ROOT / "examples" / "quickstart" / "frontend.pcap"


def test_readme_names_exactly_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", quick, re.DOTALL)
    assert commands == [
        "pip install . && kubectl-netgen generate examples/shop",
        "pip install -e '.[test]' && python3 -m pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\n" + commands[1] + "\n" in ci, ".ci/run must run the README's test command verbatim"


def test_quickstart_generate_prints_only_policies() -> None:
    import yaml

    result = run("generate", ROOT / "examples" / "shop")
    assert result.exit_code == 0
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["NetworkPolicy"] * 11  # the captured cluster DNS gets none by default
    assert result.stderr.splitlines()[-1].startswith("11 NetworkPolicies for 11 workload(s)")
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: 1 kube-system workload(s) serve the whole cluster and get no policy (--include-system writes "
        "them): kube-system/coredns"]


def test_quickstart_flows() -> None:
    result = run("flows", EXAMPLE, "-o", "json")
    assert result.exit_code == 0 and "warning" not in result.stderr
    got = [(f["protocol"], f["src"], f["dst"], f["dst_port"], f["connections"], f["direction"])
           for f in json.loads(result.stdout)]
    assert got == [
        ("TCP", "10.244.1.30", "10.244.1.10", 8080, 2, "handshake"),   # monitor -> frontend (inbound)
        ("TCP", "10.244.1.10", "10.244.1.20", 8080, 3, "handshake"),   # frontend -> backend
        ("TCP", "10.244.1.10", "203.0.113.10", 443, 2, "handshake"),   # frontend -> external API
        ("UDP", "10.244.1.10", "10.244.1.20", 9125, 1, "handshake"),   # metrics
        ("UDP", "10.244.1.10", "10.244.1.53", 53, 4, "handshake"),     # DNS, with search expansions
    ]


def test_quickstart_dns_names_the_external_api() -> None:
    result = run("dns", EXAMPLE, "-o", "json")
    assert json.loads(result.stdout) == {"203.0.113.10": ["api.payments.example.com", "edge.payments.example.net"]}


def test_example_is_recorded_by_the_script_in_the_repo() -> None:
    script = Path(EXAMPLE.parent / "record.py").read_text()
    assert "tcpdump" in script and 'lab.capture(frontend, "any", out)' in script
