"""The kernel side of a fabric: network namespaces, bridges, veths, addresses, routes, the nftables guard,
and the ``/etc/netns`` files that make glibc in a namespace ask the cluster DNS.

:class:`Network` creates them for one fabric and remembers each, so that removing one pod or the whole
fabric leaves nothing behind. The module-level helpers run commands (:func:`run`) and clean up namespaces
left by an earlier process that had our pid.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster.fabric.layout import ALLOWED_NETWORKS, CLUSTER_DOMAIN, DNS_IP, ExternalSpec, NodeSpec, Pod
from tests.netlab import LabError

PREFIX = f"ngf-{os.getpid()}-"
"""Prefix of every namespace (and ``/etc/netns`` entry) this process creates."""

ETC_NETNS = Path("/etc/netns")

_stale_cleaned = False


def run(args: Sequence[str], *, stdin: str | None = None, timeout: float = 10.0,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, text in and out.

    Raises:
        LabError: It took longer than ``timeout``, or (with ``check``) it exited non-zero.
    """
    try:
        done = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timed out after {timeout}s: {' '.join(args)}") from e
    if check and done.returncode != 0:
        raise LabError(f"exit {done.returncode}: {' '.join(args)}\nstdin: {(stdin or '')[:2000]}\n"
                       f"stderr: {done.stderr[-2000:]}")
    return done


def delete_netns(netns: str) -> None:
    """Kill whatever still runs in ``netns`` and delete it (no error if it is gone)."""
    # Anything still inside one of our namespaces was started by us: end it by pid.
    for pid in run(["ip", "netns", "pids", netns], check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    run(["ip", "netns", "del", netns], check=False)


def fabric_namespaces() -> list[str]:
    """The namespaces of this process's fabrics (``ngf-<pid>-…``) that exist now."""
    listing = run(["ip", "netns", "list"]).stdout.splitlines()
    return sorted(line.split()[0] for line in listing if line.startswith(PREFIX))


def cleanup_stale() -> None:
    """Once per process, remove leftovers of an earlier process that had our pid (pids are reused)."""
    global _stale_cleaned
    if _stale_cleaned:
        return
    _stale_cleaned = True
    # Only our own prefix.
    for netns in fabric_namespaces():
        delete_netns(netns)
    if ETC_NETNS.is_dir():
        for directory in ETC_NETNS.glob(f"{PREFIX}*"):
            shutil.rmtree(directory, ignore_errors=True)


def guard_rules() -> str:
    """The nftables table loaded into every namespace: drop IPv6 and IPv4 outside :data:`ALLOWED_NETWORKS`."""
    allowed = ", ".join(ALLOWED_NETWORKS)
    return (
        "table inet netgen_guard {\n"
        " chain output {\n  type filter hook output priority 0; policy accept;\n"
        '  oifname "lo" accept\n  meta nfproto ipv6 drop\n'
        f"  meta nfproto ipv4 ip daddr != {{ {allowed} }} drop\n }}\n"
        " chain forward {\n  type filter hook forward priority 0; policy accept;\n  meta nfproto ipv6 drop\n"
        f"  meta nfproto ipv4 ip daddr != {{ {allowed} }} drop\n }}\n}}\n"
    )


@dataclass
class Network:
    """The namespaces and ``/etc/netns`` entries of one fabric, named after ``prefix``."""

    prefix: str
    namespaces: list[str] = field(default_factory=list)
    """Every namespace created and not yet deleted, in creation order."""
    etc_dirs: list[Path] = field(default_factory=list)
    """Every ``/etc/netns/<netns>`` directory written."""

    # --- names -----------------------------------------------------------------------------------

    def node_netns(self, node: str) -> str:
        """The namespace of ``node``."""
        return f"{self.prefix}{node}"

    @property
    def underlay_netns(self) -> str:
        """The namespace holding the bridge that joins nodes and externals."""
        return f"{self.prefix}underlay"

    def external_netns(self, ext: ExternalSpec) -> str:
        """The namespace of an external host."""
        return f"{self.prefix}ext-{ext.name}"

    def pod_netns(self, namespace: str, name: str) -> str:
        """The namespace of a (not hostNetwork) pod."""
        return f"{self.prefix}{namespace}-{name}"

    # --- building --------------------------------------------------------------------------------

    def build(self, nodes: Iterable[NodeSpec], externals: Iterable[ExternalSpec], pods: Iterable[Pod]) -> None:
        """Create the underlay, the nodes, the externals and every pod's namespace, linked and routed.

        Raises:
            LabError: A command failed (what was built so far stays recorded, for :meth:`remove_all`).
        """
        nodes = list(nodes)
        externals = list(externals)
        under = self.namespace(self.underlay_netns, {})
        self.ip(under, ["link add br0 type bridge mcast_snooping 0 stp_state 0", "link set br0 up"])
        for node in nodes:
            ns = self.namespace(self.node_netns(node.name), {"net.ipv4.ip_forward": "1",
                                                             "net.ipv4.conf.all.send_redirects": "0",
                                                             "net.ipv4.conf.default.send_redirects": "0"})
            # What a ClusterFirstWithHostNet pod of kube-system (the node-exporter) gets; nodes have no
            # other DNS in the lab.
            self.etc(ns, node.name, node.ip, search=f"kube-system.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} "
                                                    f"{CLUSTER_DOMAIN}")
            cmds = [f"link add u-{node.name} type veth peer name eth0 netns {ns}",
                    f"link set u-{node.name} master br0 up"]
            self.ip(under, cmds)
            prefix = ipaddress.ip_network(node.pod_cidr).prefixlen
            cmds = ["link add cni0 type bridge mcast_snooping 0 stp_state 0",
                    f"addr add {node.gateway}/{prefix} dev cni0", "link set cni0 up",
                    f"addr add {node.ip}/24 dev eth0", "link set eth0 up",
                    f"route add 10.96.0.0/12 dev cni0 src {node.ip}"]
            for other in nodes:
                if other is not node:
                    cmds.append(f"route add {other.pod_cidr} via {other.ip} dev eth0")
            cmds += [f"route add {ext.ip}/32 dev eth0 src {node.ip}" for ext in externals]
            self.ip(ns, cmds)
        for i, ext in enumerate(externals):
            ns = self.namespace(self.external_netns(ext), {})
            self.etc(ns, ext.name, ext.ip, search="")
            self.ip(under, [f"link add u-ext{i} type veth peer name eth0 netns {ns}",
                            f"link set u-ext{i} master br0 up"])
            cmds = [f"addr add {ext.ip}/32 dev eth0", "link set eth0 up", "route add 10.250.0.0/24 dev eth0"]
            cmds += [f"route add {n.pod_cidr} via {n.ip} dev eth0" for n in nodes]
            self.ip(ns, cmds)
        by_name = {n.name: n for n in nodes}
        for index, pod in enumerate(sorted(pods, key=lambda p: p.ip)):
            if not pod.controller.host_network:
                self.pod_namespace(pod, by_name[pod.node], index)

    def namespace(self, netns: str, sysctls: dict[str, str]) -> str:
        """Create ``netns`` with IPv6 off, the guard loaded, ``lo`` up and ``sysctls`` set; return its name."""
        run(["ip", "netns", "add", netns])
        self.namespaces.append(netns)
        settings = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1",
                    "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0",
                    "net.ipv4.conf.all.accept_redirects": "0", "net.ipv4.conf.default.accept_redirects": "0",
                    **sysctls}
        run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items())])
        run(["ip", "netns", "exec", netns, "nft", "-f", "-"], stdin=guard_rules())
        self.ip(netns, ["link set lo up"])
        return netns

    @staticmethod
    def ip(netns: str, commands: Iterable[str]) -> None:
        """Run ``ip`` commands (one a line, without ``ip``) in ``netns`` as one batch."""
        run(["ip", "-n", netns, "-batch", "-"], stdin="\n".join(commands) + "\n")

    def etc(self, netns: str, hostname: str, ip: str, *, search: str) -> None:
        """Write ``/etc/netns/<netns>/``: resolv.conf (cluster DNS, ``search``), hosts and nsswitch.conf."""
        # `ip netns exec` bind-mounts these over /etc's, so glibc in the namespace asks the cluster DNS
        # (and only it: no nss-resolve, no nscd).
        directory = ETC_NETNS / netns
        for attempt in range(3):  # another fabric may remove an empty /etc/netns in between
            try:
                directory.mkdir(parents=True, exist_ok=True)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        self.etc_dirs.append(directory)
        lines = [f"nameserver {DNS_IP}"]
        if search:
            lines.append(f"search {search}")
        lines.append("options ndots:5" if search else "options ndots:1")
        (directory / "resolv.conf").write_text("\n".join(lines) + "\n")
        (directory / "hosts").write_text(
            f"# Kubernetes-managed hosts file (netgen fabric).\n127.0.0.1\tlocalhost\n{ip}\t{hostname}\n")
        (directory / "nsswitch.conf").write_text("hosts: files dns\n")

    def pod_namespace(self, pod: Pod, node: NodeSpec, index: int) -> None:
        """Create a pod's namespace, its ``/etc/netns`` files and its veth (``vp<index>``) into the node's bridge."""
        ns = self.namespace(pod.netns, {})
        search = f"{pod.namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
        self.etc(ns, pod.name, pod.ip, search=search)
        port = f"vp{index}"
        self.ip(self.node_netns(node.name), [f"link add {port} type veth peer name eth0 netns {ns}",
                                             f"link set {port} master cni0 up"])
        # A /32 and a gateway route: every packet, even to a pod on the same bridge, is routed by the
        # node, so conntrack sees both directions of DNAT'ed connections.
        self.ip(ns, [f"addr add {pod.ip}/32 dev eth0", "link set eth0 up",
                     f"route add {node.gateway} dev eth0 scope link",
                     f"route add default via {node.gateway} dev eth0 src {pod.ip}"])

    # --- removing --------------------------------------------------------------------------------

    def remove(self, netns: str) -> None:
        """Delete one namespace (and what runs in it) and its ``/etc/netns`` entry."""
        delete_netns(netns)
        self.namespaces.remove(netns)
        directory = ETC_NETNS / netns
        shutil.rmtree(directory, ignore_errors=True)
        self.etc_dirs.remove(directory)

    def remove_all(self) -> None:
        """Delete every namespace (newest first) and ``/etc/netns`` entry; ``/etc/netns`` too if left empty."""
        for netns in reversed(self.namespaces):
            delete_netns(netns)
        self.namespaces.clear()
        for directory in self.etc_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            ETC_NETNS.rmdir()  # only if empty: others may use it
