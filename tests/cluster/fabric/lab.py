"""The :class:`Fabric`: one running lab, from its layout to its processes and back to nothing.

It places the layout's pods, has :mod:`.topology` build the namespaces, loads the :mod:`.services` rules
and DNS zone, starts the :mod:`.scripts` in the namespaces, runs commands in pods, deletes pods, describes
itself through :mod:`.objects`, and tears everything down (also at interpreter exit).
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import weakref
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.cluster.fabric import services
from tests.cluster.fabric.layout import (
    EXTERNALS,
    NODES,
    Controller,
    Pod,
    ServiceSpec,
    check_address,
    default_layout,
    pod_identity,
)
from tests.cluster.fabric.objects import Describer, Obj
from tests.cluster.fabric.scripts import DNS_SERVER, PYTHON, WORKLOAD
from tests.cluster.fabric.topology import PREFIX, Network, cleanup_stale, run
from tests.netlab import LabError, Proc

_fabrics: weakref.WeakSet[Fabric] = weakref.WeakSet()
_counter = 0


class Fabric:
    """A running local cluster network: nodes, pods, Services, DNS, externals and their processes.

    Args:
        iterations: Rounds each workload client loop makes (every ``interval`` seconds); 0: until ``lifetime``
            ends, so traffic keeps flowing for as long as the fabric runs.
        lifetime: Seconds every server and prober runs at most (teardown kills them earlier).
        probe_iterations: How many probes (one a second) each node's prober sends; 0: until ``lifetime`` ends.
        masquerade: SNAT pod traffic leaving the cluster (to the externals) to the node's IP, as most
            clusters do (ip-masq-agent, kind's kindnet). Pod-to-pod and pod-to-node traffic is never NATed.
        layout: Controllers and Services to build instead of :func:`default_layout`.
    """

    def __init__(self, *, iterations: int = 40, lifetime: float = 600.0, probe_iterations: int = 60,
                 masquerade: bool = True, layout: tuple[list[Controller], list[ServiceSpec]] | None = None) -> None:
        """Record the layout; :meth:`start` (or ``with``) builds it."""
        global _counter
        _counter += 1
        self.prefix = f"{PREFIX}{_counter}-"
        self.iterations = iterations
        self.lifetime = lifetime
        self.probe_iterations = probe_iterations
        self.masquerade = masquerade
        self.controllers, self.services = layout or default_layout(iterations)
        self.nodes = {n.name: n for n in NODES}
        self.externals = list(EXTERNALS)
        self.pods: dict[tuple[str, str], Pod] = {}
        self.network = Network(self.prefix)
        self.namespaces: list[str] = self.network.namespaces
        self.etc_dirs: list[Path] = self.network.etc_dirs
        self.procs: list[Proc] = []
        self.popens: list[subprocess.Popen[bytes]] = []
        self.system_procs: dict[str, Proc] = {}
        """Processes that are not pods: ``prober-<node>``, ``external-<name>``."""
        self.tmp = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.zone_file = self.tmp / "zone.json"
        self.created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._closed = False
        self._started = False
        _fabrics.add(self)

    # --- names -----------------------------------------------------------------------------------

    def node_netns(self, node: str) -> str:
        """The namespace of ``node``."""
        return self.network.node_netns(node)

    @property
    def underlay_netns(self) -> str:
        """The namespace holding the bridge that joins nodes and externals."""
        return self.network.underlay_netns

    def node_ip(self, node: str) -> str:
        """The InternalIP of ``node``."""
        return self.nodes[node].ip

    def pod(self, namespace: str, name: str) -> Pod:
        """The pod ``namespace/name`` (raises KeyError if there is none)."""
        return self.pods[(namespace, name)]

    def pods_of(self, namespace: str, controller: str) -> list[Pod]:
        """The pods of one controller (Deployment, StatefulSet, DaemonSet, Job or CronJob), sorted by name."""
        return sorted((p for p in self.pods.values()
                       if p.namespace == namespace and p.controller.name == controller), key=lambda p: p.name)

    def pod_netns(self, namespace: str, name: str) -> str:
        """The network namespace of a pod (its node's, for a hostNetwork pod)."""
        return self.pod(namespace, name).netns

    def service(self, namespace: str, name: str) -> ServiceSpec:
        """The Service ``namespace/name``."""
        for svc in self.services:
            if (svc.namespace, svc.name) == (namespace, name):
                return svc
        raise KeyError(f"{namespace}/{name}")

    def logs(self, namespace: str, name: str) -> list[str]:
        """What a pod's workload process printed so far (stdout lines)."""
        return [line for proc in self.pod(namespace, name).procs for line in proc.lines]

    # --- building --------------------------------------------------------------------------------

    def start(self) -> Fabric:
        """Build the namespaces, links, routes, rules and DNS, and start every process.

        Raises:
            LabError: A step failed (everything built so far is torn down).
        """
        if self._started:
            return self
        self._started = True
        cleanup_stale()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        self._place_pods()
        self.network.build(self.nodes.values(), self.externals, self.pods.values())
        self._sync()
        self._start_processes()

    def _place_pods(self) -> None:
        for ctl in self.controllers:
            for ordinal, (node, ip) in enumerate(ctl.pods):
                name, owner_kind, owner, labels = pod_identity(ctl, ordinal, node)
                if ctl.host_network:
                    ip, netns = self.nodes[node].ip, self.node_netns(node)
                else:
                    check_address(ip)
                    if ipaddress.ip_address(ip) not in ipaddress.ip_network(self.nodes[node].pod_cidr):
                        raise ValueError(f"{ip} is not in {node}'s pod CIDR")
                    netns = self.network.pod_netns(ctl.namespace, name)
                self.pods[(ctl.namespace, name)] = Pod(ctl.namespace, name, node, ip, ctl, netns, owner_kind,
                                                       owner, labels)

    # --- Services: kube-proxy rules and DNS --------------------------------------------------------

    def kubeproxy_rules(self) -> str:
        """The nftables ruleset (kube-proxy nftables mode, in small) loaded into every node."""
        return services.kubeproxy_rules(self.services, self.pods.values())

    @staticmethod
    def masquerade_rules() -> str:
        """SNAT of pod traffic to destinations outside pods, Services and nodes (the externals)."""
        return services.masquerade_rules()

    def zone(self) -> dict[str, dict[str, Any]]:
        """The cluster DNS zone: Service names, headless pod names and the external names."""
        return services.zone(self.services, self.pods.values())

    def _sync(self) -> None:
        rules = self.kubeproxy_rules()
        if self.masquerade:
            rules += self.masquerade_rules()
        for node in self.nodes:
            run(["ip", "netns", "exec", self.node_netns(node), "nft", "-f", "-"], stdin=rules)
        partial = self.zone_file.with_suffix(".tmp")
        partial.write_text(json.dumps(self.zone(), indent=1, sort_keys=True))
        os.replace(partial, self.zone_file)

    # --- processes ---------------------------------------------------------------------------------

    def _spawn(self, netns: str, args: Sequence[str], name: str) -> Proc:
        proc = Proc(netns, args, name=name)
        self.procs.append(proc)
        return proc

    def _start_processes(self) -> None:
        started: list[Proc] = []
        dns_pods = [p for p in self.pods.values() if p.controller.workload.get("dns")]
        for pod in dns_pods:
            proc = self._spawn(pod.netns, [PYTHON, "-c", DNS_SERVER, str(self.zone_file), str(self.lifetime)],
                               f"dns {pod.name}")
            pod.procs.append(proc)
            started.append(proc)
        for ext in self.externals:
            cfg = {"lifetime": self.lifetime, "servers": [{"port": ext.port, "kind": ext.kind}]}
            proc = self._spawn(self.network.external_netns(ext), [PYTHON, "-c", WORKLOAD, json.dumps(cfg)],
                               f"external {ext.name}")
            self.system_procs[f"external-{ext.name}"] = proc
            started.append(proc)
        for node, servers in self._node_endpoint_servers().items():
            cfg = {"lifetime": self.lifetime, "bind": self.nodes[node].ip, "servers": servers}
            proc = self._spawn(self.node_netns(node), [PYTHON, "-c", WORKLOAD, json.dumps(cfg)], f"apiserver {node}")
            self.system_procs[f"apiserver-{node}"] = proc
            started.append(proc)
        for pod in sorted(self.pods.values(), key=lambda p: p.ip):
            if pod in dns_pods:
                continue
            cfg = {"lifetime": self.lifetime, "interval": 0.5, **pod.controller.workload}
            proc = self._spawn(pod.netns, [PYTHON, "-c", WORKLOAD, json.dumps(cfg)], f"pod {pod.name}")
            pod.procs.append(proc)
            started.append(proc)
        for proc in started:
            proc.expect("^ready$", timeout=15)
        for node in self.nodes.values():
            targets = []
            for pod in sorted(self.pods.values(), key=lambda p: p.name):
                ctl = pod.controller
                if pod.node != node.name or ctl.readiness_port is None or ctl.host_network:
                    continue
                port = next(p.port for p in ctl.ports if p.name == ctl.readiness_port)
                targets.append({"kind": "http", "host": pod.ip, "port": port})
            if not targets:
                continue
            cfg = {"lifetime": self.lifetime, "clients": targets, "iterations": self.probe_iterations,
                   "interval": 1.0, "delay": 0.0, "source": node.ip, "path": "/healthz",
                   "agent": "kube-probe/1.30"}
            proc = self._spawn(self.node_netns(node.name), [PYTHON, "-c", WORKLOAD, json.dumps(cfg)],
                               f"prober {node.name}")
            self.system_procs[f"prober-{node.name}"] = proc
            proc.expect("^ready$", timeout=15)

    def _node_endpoint_servers(self) -> dict[str, list[dict[str, Any]]]:
        """TLS-like servers per node for the endpoints of Services without selector that are node addresses.

        That is ``default/kubernetes``: kube-apiserver listens on the control-plane node's address
        (hostNetwork), so a pod calling ``kubernetes.default`` reaches a real listener there.
        """
        by_ip = {n.ip: n.name for n in self.nodes.values()}
        servers: dict[str, list[dict[str, Any]]] = {}
        for svc in self.services:
            if svc.selector is not None:
                continue
            for addr in svc.endpoints:
                if addr not in by_ip:
                    continue
                ports = servers.setdefault(by_ip[addr], [])
                ports += [{"port": int(target), "kind": "tls"} for _, _, target, proto in svc.ports
                          if proto == "TCP" and {"port": int(target), "kind": "tls"} not in ports]
        return servers

    def spawn_in_pod(self, namespace: str, name: str, argv: Sequence[str],
                     env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a pod's network namespace (``ip netns exec``), with stdout/stderr pipes.

        The process gets the pod's resolv.conf and hosts; it is killed at :meth:`delete_pod` or
        :meth:`close` if still running.

        Args:
            namespace: The pod's Kubernetes namespace.
            name: The pod's name.
            argv: The command and its arguments.
            env: Extra environment variables.
        """
        self._check_open()
        pod = self.pod(namespace, name)
        popen = subprocess.Popen(
            ["ip", "netns", "exec", pod.netns, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=None if env is None else {**os.environ, **env}, start_new_session=True)
        pod.popens.append(popen)
        self.popens.append(popen)
        return popen

    def run_in_pod(self, namespace: str, name: str, argv: Sequence[str], *,
                   timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion in a pod's namespace; raise LabError if it fails or takes too long."""
        self._check_open()
        return run(["ip", "netns", "exec", self.pod_netns(namespace, name), *argv], timeout=timeout)

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod: kill its processes, remove its namespace, and drop it from Services and DNS.

        Like a real deletion, its endpoints leave the EndpointSlices, kube-proxy rules and DNS answers;
        no replacement pod is created. A hostNetwork pod only loses its processes.
        """
        self._check_open()
        pod = self.pods.pop((namespace, name))
        _kill(pod.procs, pod.popens)
        if not pod.controller.host_network:
            self.network.remove(pod.netns)
        self._sync()

    # --- description -------------------------------------------------------------------------------

    @property
    def objects(self) -> list[Obj]:
        """The Kubernetes objects describing what runs now (``kubectl get … -A -o json`` items)."""
        return Describer(self).objects()

    def write_objects(self, path: Path | str) -> Path:
        """Write :attr:`objects` as a ``v1 List`` JSON file; return its path."""
        out = Path(path)
        document = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                    "items": self.objects}
        out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        return out

    def summary(self) -> str:
        """A human-readable listing of nodes, pods, Services and externals."""
        lines = ["NODES"]
        lines += [f"  {n.name:8} {n.ip:14} podCIDR {n.pod_cidr:16} netns {self.node_netns(n.name)}"
                  for n in self.nodes.values()]
        lines.append("PODS")
        lines += [f"  {p.namespace + '/' + p.name:40} {p.ip:14} {p.node:8} netns {p.netns}"
                  for p in sorted(self.pods.values(), key=lambda p: (p.namespace, p.name))]
        lines.append("SERVICES")
        for svc in self.services:
            ports = ", ".join(f"{port}->{target}/{proto}" for _, port, target, proto in svc.ports)
            backends = ", ".join(addr for _, addr, _ in services.endpoints(svc, self.pods.values()))
            lines.append(f"  {svc.namespace + '/' + svc.name:40} {svc.cluster_ip or 'None':14} {ports}  [{backends}]")
        lines.append("EXTERNAL")
        lines += [f"  {e.name:20} {e.ip}:{e.port} ({e.kind})" for e in self.externals]
        return "\n".join(lines)

    # --- teardown ----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LabError("the fabric is closed")

    def close(self) -> None:
        """Kill every process, delete every namespace, ``/etc/netns`` entry and temporary file (idempotent)."""
        if self._closed:
            return
        self._closed = True
        _kill(self.procs, self.popens)
        self.network.remove_all()
        shutil.rmtree(self.tmp, ignore_errors=True)
        _fabrics.discard(self)

    def __enter__(self) -> Fabric:
        """Build the fabric."""
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Tear it down."""
        self.close()


def _kill(procs: Iterable[Proc], popens: Iterable[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.kill()
    for popen in popens:
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)
        for stream in (popen.stdout, popen.stderr):
            if stream is not None:
                stream.close()


@atexit.register
def _close_all() -> None:
    for fabric in list(_fabrics):
        fabric.close()
