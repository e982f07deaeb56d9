"""A small Kubernetes-shaped network built of Linux namespaces, whose pods really run and talk.

:class:`Fabric` builds, in a few seconds:

* an "underlay" namespace holding a bridge that joins two node namespaces (``node-a`` 10.250.0.11,
  ``node-b`` 10.250.0.12) and the "external" hosts (203.0.113.10 TLS-like on 443, 198.51.100.20
  Postgres-like on 5432);
* in each node, a bridge ``cni0`` for its pod CIDR (10.244.1.0/24, 10.244.2.0/24), routes to the other
  node's pod CIDR and to the external /32s (no NAT between pods; traffic to the externals is masqueraded
  to the node IP, as on most clusters), and kube-proxy-like nftables rules
  (``table ip netgen_kubeproxy``: ClusterIP -> ``numgen random`` -> DNAT to a backend pod), so a pod
  sees traffic to the ClusterIP exactly as on a real cluster;
* one namespace per pod, with a veth into its node's bridge. A pod's ``eth0`` holds its IP as a /32 and
  routes everything, even same-node pod traffic, via the bridge address: the node then routes (and
  conntrack un-DNATs) every reply, which on a real bridge CNI ``br_netfilter`` does;
* a cluster DNS pod (``kube-system/coredns``, Service ``kube-dns`` 10.96.0.10, UDP and TCP 53) running a
  dnspython server: Service names, headless pod IPs, NXDOMAIN for other ``cluster.local`` names, CNAME
  chains for a few external names. Each namespace gets ``/etc/netns/<netns>/resolv.conf`` (and ``hosts``,
  ``nsswitch.conf``), so glibc in ``ip netns exec`` resolves through it, search domains and ndots included;
* workloads: every pod runs a small bounded process (servers on its container ports, client loops
  calling Services by DNS name every half second, a UDP exchange); a hostNetwork DaemonSet pod on node-b;
  a kubelet-like prober per node hitting pods' readiness ports from the node IP every second; a TLS-like
  listener on node-a's 10.250.0.11:6443, the endpoint of ``default/kubernetes`` (the API server);
* :attr:`Fabric.objects`: the Kubernetes objects describing exactly what runs, as ``kubectl get … -A -o
  json`` would list them.

Safety: nothing has a link or a route to the machine's network; an nftables guard in every namespace drops
IPv6, multicast and any IPv4 destination outside :data:`ALLOWED_NETWORKS`. Namespaces are named
``ngf-<pid>-<n>-…``; :meth:`Fabric.close` (also run by ``with`` and at exit) kills every process the
fabric started, deletes its namespaces and ``/etc/netns`` entries and its temporary files.

Run ``sudo python3 -m tests.cluster.fabric`` (from the repository root) to build one by hand; it prints
what it built and waits for Ctrl-C.

The package, along its seams:

* :mod:`.layout`: the declarative cluster (nodes, externals, controllers, Services) and the naming rules;
* :mod:`.shop`: a richer layout, the one ``examples/shop`` is recorded in;
* :mod:`.services`: pure Service data plane: endpoints, kube-proxy and masquerade rules, the DNS zone;
* :mod:`.topology`: namespaces, bridges, veths, routes, the nftables guard and ``/etc/netns`` files;
* :mod:`.scripts`: the programs run inside the namespaces (workloads, probers, the DNS server);
* :mod:`.objects`: the Kubernetes objects describing a fabric;
* :mod:`.lab`: :class:`Fabric` itself, which wires them together and owns the processes;
* :mod:`.__main__`: the by-hand mode.
"""

from __future__ import annotations

from tests.cluster.fabric.lab import Fabric
from tests.cluster.fabric.layout import (
    ALLOWED_NETWORKS,
    API_SERVER,
    CLUSTER_DOMAIN,
    DNS_IP,
    EPOCH,
    EXTERNAL_NAMES,
    EXTERNALS,
    NODES,
    Controller,
    ExternalSpec,
    NodeSpec,
    Pod,
    Port,
    ServiceSpec,
    default_layout,
)
from tests.cluster.fabric.objects import Obj
from tests.cluster.fabric.scripts import PYTHON
from tests.cluster.fabric.topology import ETC_NETNS, PREFIX, fabric_namespaces

__all__ = [
    "ALLOWED_NETWORKS",
    "API_SERVER",
    "CLUSTER_DOMAIN",
    "DNS_IP",
    "EPOCH",
    "ETC_NETNS",
    "EXTERNALS",
    "EXTERNAL_NAMES",
    "NODES",
    "PREFIX",
    "PYTHON",
    "Controller",
    "ExternalSpec",
    "Fabric",
    "NodeSpec",
    "Obj",
    "Pod",
    "Port",
    "ServiceSpec",
    "default_layout",
    "fabric_namespaces",
]
