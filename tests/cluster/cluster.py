"""The local test cluster: pods as network namespaces (:mod:`.fabric`) behind a Kubernetes API server
(:mod:`.apiserver`) whose ephemeral containers really run inside those pods.

The API server is seeded with exactly what the fabric built (the same ``v1 List`` that
``kubectl netgen snapshot`` writes), and its container runtime starts each ephemeral container's
command in the pod's network namespace, so ``tcpdump`` in a debug container sees the pod's real
traffic, ClusterIP DNAT and all. A kubeconfig file points ``kubectl`` and the Python client at it.

Needs root, iproute2, nftables, tcpdump and the ``cryptography`` package (kubectl sends tokens only
over TLS). Start it by hand with ``sudo python3 tests/cluster/run.py``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from tests.cluster.apiserver import ApiServer
from tests.cluster.fabric import Fabric
from tests.cluster.runtime import ProcessRuntime


class LocalCluster:
    """A fabric of pods and an API server describing it, started together and torn down together.

    Args:
        workdir: Where the kubeconfig and the cluster snapshot are written.
        iterations: Rounds each workload's client loop makes (about two a second).
        log_max_bytes: Container log rotation size, like kubelet's ``containerLogMaxSize``.
    """

    def __init__(self, workdir: Path, *, iterations: int = 40, log_max_bytes: int | None = None) -> None:
        """Build the fabric, then start the API server on it; tear both down if either fails."""
        self.workdir = workdir
        self.fabric = Fabric(iterations=iterations).start()
        try:
            self.runtime = ProcessRuntime(spawn=self.fabric.spawn_in_pod)
            snapshot = {"apiVersion": "v1", "kind": "List", "items": self.fabric.objects}
            self.server = ApiServer(snapshot, runtime=self.runtime, log_max_bytes=log_max_bytes).start()
            self.kubeconfig = self.server.write_kubeconfig(workdir / "kubeconfig")
            self.snapshot = self.fabric.write_objects(workdir / "cluster.json")
        except BaseException:
            self.fabric.close()
            raise

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod for real: its API object and containers, and its network namespace."""
        self.server.delete_pod(namespace, name)
        self.fabric.delete_pod(namespace, name)

    def close(self) -> None:
        """Stop the API server (ending watches, logs and containers), then tear the fabric down."""
        try:
            self.server.close()
        finally:
            self.fabric.close()

    def __enter__(self) -> LocalCluster:
        """Return the running cluster."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Tear everything down, even on failure."""
        self.close()
