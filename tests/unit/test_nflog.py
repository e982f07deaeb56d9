"""NFLOG (what ``tcpdump -i nflog:N`` writes on nodes): a real capture of netfilter-logged packets decodes.

A network namespace of the test's own logs UDP to its loopback with an nftables ``log group`` rule, and
tcpdump records the group; ``flows`` must read what tcpdump itself reads from the file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import need, run

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.usefixtures("root_netns")]


def _in(ns: str, *argv: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, timeout=20)


def test_a_real_nflog_capture_decodes(tmp_path: Path) -> None:
    need(shutil.which("nft") is not None, "needs nftables (nft)")
    ns = f"netgen-nflog-{uuid.uuid4().hex[:6]}"
    pcap = tmp_path / "nflog.pcap"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=20)
    try:
        _in(ns, "ip", "link", "set", "lo", "up")
        _in(ns, "nft", "add", "table", "inet", "netgen")
        _in(ns, "nft", "add", "chain", "inet", "netgen", "out", "{ type filter hook output priority 0; }")
        _in(ns, "nft", "add", "rule", "inet", "netgen", "out", "udp", "dport", "5000", "log", "group", "7")
        dump = subprocess.Popen(["ip", "netns", "exec", ns, "timeout", "4", "tcpdump", "-i", "nflog:7", "-U", "-w",
                                 str(pcap)], stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)
            sender = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                      "[s.sendto(b'netgen', ('127.0.0.1', 5000)) for _ in range(3)]")
            _in(ns, "python3", "-c", sender)  # three datagrams to the namespace's own loopback
        finally:
            _, err = dump.communicate(timeout=20)  # tcpdump ends by itself after 4 s
        assert "link-type NFLOG" in err, err
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=20)
    reference = subprocess.run(["tcpdump", "-nn", "-r", str(pcap)], capture_output=True, text=True, timeout=20)
    assert reference.stdout.count("127.0.0.1.5000: UDP, length 6") == 3, reference.stdout
    result = run("flows", pcap, "-o", "json", "--strict")
    assert result.exit_code == 0, result.stderr
    [flow] = json.loads(result.stdout)
    assert (flow["protocol"], flow["src"], flow["dst"], flow["dst_port"]) == ("UDP", "127.0.0.1", "127.0.0.1", 5000)
    assert flow["packets"] == 3 and flow["bytes"] == 3 * (20 + 8 + 6)  # the IP packets, not the TLVs around them
