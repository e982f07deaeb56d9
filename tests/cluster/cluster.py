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
from tests.cluster.fabric.layout import Controller, ServiceSpec
from tests.cluster.rbac import SHOP_EDITOR, namespace_user
from tests.cluster.runtime import ProcessRuntime


class LocalCluster:
    """A fabric of pods and an API server describing it, started together and torn down together.

    Two users: the admin (``kubeconfig``, cluster-admin) and ``shop-editor`` (``editor_kubeconfig``), bound
    only to a Role in ``shop`` with :data:`~tests.cluster.rbac.SHOP_EDITOR_RULES`, as a namespace user of a
    managed cluster is.

    Args:
        workdir: Where the kubeconfigs and the cluster snapshot are written.
        iterations: Rounds each workload's client loop makes (about two a second); 0: until ``lifetime``
            ends, so the traffic keeps flowing for as long as the cluster runs.
        lifetime: Seconds the pods' servers and clients run at most (teardown ends them earlier).
        log_max_bytes: Container log rotation size, like kubelet's ``containerLogMaxSize``.
        layout: The fabric's controllers and Services (default: :func:`~tests.cluster.fabric.default_layout`).
    """

    def __init__(self, workdir: Path, *, iterations: int = 40, lifetime: float = 600.0,
                 log_max_bytes: int | None = None,
                 layout: tuple[list[Controller], list[ServiceSpec]] | None = None) -> None:
        """Build the fabric, then start the API server on it; tear both down if either fails."""
        self.workdir = workdir
        self.fabric = Fabric(iterations=iterations, lifetime=lifetime, probe_iterations=0 if iterations == 0 else 60,
                             layout=layout).start()
        try:
            self.runtime = ProcessRuntime(spawn=self.fabric.spawn_in_pod)
            snapshot = {"apiVersion": "v1", "kind": "List", "items": self.fabric.objects}
            self.server = ApiServer(snapshot, runtime=self.runtime, log_max_bytes=log_max_bytes).start()
            self.kubeconfig = self.server.write_kubeconfig(workdir / "kubeconfig")
            self.editor_token = namespace_user(self.server, "shop", SHOP_EDITOR)
            self.editor_kubeconfig = self.server.write_kubeconfig(
                workdir / f"kubeconfig-{SHOP_EDITOR}", context=SHOP_EDITOR, namespace="shop", token=self.editor_token)
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
