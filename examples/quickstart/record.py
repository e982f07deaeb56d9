"""Record ``frontend.pcap``, the quick-start capture, with real tcpdump in a lab of network namespaces.

The lab (``tests/netlab.py``) stands in for a small cluster: a ``frontend`` pod whose traffic is
captured the way ``kubectl netgen capture`` does it (tcpdump ``-i any`` inside the pod's network
namespace, so Linux cooked v2), a ``backend`` pod serving HTTP on 8080 and metrics over UDP on 9125,
a cluster-DNS pod, a monitoring pod that calls the frontend, and an "external" API at 203.0.113.10
reached over HTTPS through a CNAME chain, after the resolver's search-domain expansions failed.

Needs root, iproute2, nftables, tcpdump and dnspython. From the repository root::

    sudo python3 examples/quickstart/record.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.netlab import Lab  # noqa: E402

FRONTEND, BACKEND, DNS, MONITOR, EXTERNAL_HOST = "10.244.1.10", "10.244.1.20", "10.244.1.53", "10.244.1.30", \
    "10.244.1.200"
EXTERNAL_API = "203.0.113.10"
ZONE: dict[str, dict[str, object]] = {
    "CNAME": {"api.payments.example.com.": "edge.payments.example.net."},
    "A": {"edge.payments.example.net.": [EXTERNAL_API]},
}
SEARCH = ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local")
QUESTIONS = (*((f"api.payments.example.com.{domain}", "A") for domain in SEARCH), ("api.payments.example.com", "A"))


def record(out: Path) -> None:
    """Run the scenario and write the frontend's capture to ``out``."""
    with Lab() as lab:
        frontend = lab.add_host("frontend", ipv4=FRONTEND)
        backend = lab.add_host("backend", ipv4=BACKEND)
        dns = lab.add_host("dns", ipv4=DNS)
        monitor = lab.add_host("monitor", ipv4=MONITOR)
        external = lab.add_host("external", ipv4=EXTERNAL_HOST)
        # The external API's documentation-range address lives on its own host, routed via the bridge.
        lab.ip(external, "addr", "add", f"{EXTERNAL_API}/32", "dev", "eth0")
        lab.ip(frontend, "route", "add", f"{EXTERNAL_API}/32", "via", EXTERNAL_HOST)

        servers = [
            lab.tcp_server(frontend, 8080, connections=2),
            lab.tcp_server(backend, 8080, connections=3),
            lab.udp_server(backend, 9125, datagrams=2),
            lab.tcp_server(external, 443, connections=2),
            lab.dns_server(dns, ZONE, queries=len(QUESTIONS)),
        ]
        capture = lab.capture(frontend, "any", out)
        lab.tcp_client(monitor, FRONTEND, 8080, count=2)
        answers = lab.dns_lookups(frontend, DNS, QUESTIONS)
        assert [a.rcode for a in answers] == ["NXDOMAIN"] * len(SEARCH) + ["NOERROR"], answers
        lab.tcp_client(frontend, EXTERNAL_API, 443, count=2)
        lab.tcp_client(frontend, BACKEND, 8080, count=3)
        lab.udp_client(frontend, BACKEND, 9125, count=2)
        capture.stop()
        for server in servers:
            server.wait()


def main() -> int:
    """Record into examples/quickstart/frontend.pcap (mode 0644: it is sample data)."""
    out = Path(__file__).resolve().parent / "frontend.pcap"
    record(out)
    out.chmod(0o644)
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
