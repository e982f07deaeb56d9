"""Several capture directories read as one: runs taken at different times of the same workloads.

Nightly CronJob runs, a scale-up, a pod replaced between two captures: ``generate``, ``neighbors`` and
``verify`` take the union of the flows, and resolve them against the union of the runs' ``cluster.json``
in which the newest copy of an object wins (newest by ``capture.json``'s window, else the file's time).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_netgen.errors import ExitStatus
from tests.cli.test_generate_scenarios import (
    DB0_4,
    DB_SVC,
    HASH,
    WEB4,
    _meta,
    _template,
    base_cluster,
    deployment,
    deployment_pod,
    pod,
    tcp,
    write_pcap,
)
from tests.conftest import run

REPORT = {"app": "report"}
DB0 = "data/db-0"


def _run_dir(root: Path, items: list[dict[str, Any]], pcaps: dict[str, list[list[bytes]]],
             window_end: str | None = None) -> Path:
    """One capture directory as ``capture`` writes it: ``cluster.json``, pcaps, and (optionally) ``capture.json``."""
    root.mkdir(parents=True)
    (root / "cluster.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    for key, conversations in pcaps.items():
        ns, name = key.split("/")
        write_pcap(root / "pcaps" / ns / f"{name}.pcap", [f for c in conversations for f in c])
    if window_end is not None:
        (root / "capture.json").write_text(json.dumps({"window": {"start": window_end, "end": window_end}}))
    return root


def _created(item: dict[str, Any], stamp: str) -> dict[str, Any]:
    item["metadata"]["creationTimestamp"] = stamp
    return item


def _cronjob_run(job: str, pod_name: str, ip: str) -> list[dict[str, Any]]:
    """The CronJob ``shop/report`` with one Job run and its pod."""
    labels = {**REPORT, "batch.kubernetes.io/controller-uid": f"uid-{job}", "batch.kubernetes.io/job-name": job,
              "job-name": job, "controller-uid": f"uid-{job}"}
    return [
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta("shop", "report", REPORT),
         "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": _template(REPORT)}}}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta("shop", job, labels, ("CronJob", "report")),
         "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": f"uid-{job}"}},
                  "template": _template(labels)}},
        pod("shop", pod_name, [ip], "node-b", labels, owner=("Job", job)),
    ]


def _policies(result: Any) -> dict[str, dict[str, Any]]:
    assert result.exit_code == 0, result.stderr
    return {p["metadata"]["name"]: p for p in yaml.safe_load_all(result.stdout)}


def _egress(policy: dict[str, Any]) -> list[tuple[str, int]]:
    """(peer, port) of each egress rule: the peer as its ipBlock CIDR or its podSelector's labels."""
    found = []
    for rule in policy["spec"].get("egress", []):
        for peer in rule.get("to", []):
            name = peer["ipBlock"]["cidr"] if "ipBlock" in peer else ",".join(
                f"{k}={v}" for k, v in sorted(peer["podSelector"]["matchLabels"].items()))
            found += [(name, port["port"]) for port in rule.get("ports", [])]
    return sorted(found)


def _ingress(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [peer for rule in policy["spec"].get("ingress", []) for peer in rule.get("from", [])]


# ----------------------------------------------------------------------------- the nightly CronJob

@pytest.fixture
def nights(tmp_path: Path) -> tuple[Path, Path]:
    """Two nights of ``shop/report``: each run is another Job and pod, and talks to another peer."""
    first = _run_dir(tmp_path / "night-1", [*base_cluster(), *_cronjob_run("report-29001", "report-29001-ab1cd",
                                                                            "10.244.2.70")],
                     {"shop/report-29001-ab1cd": [tcp("10.244.2.70", DB_SVC, 5432)]}, "2026-12-01T02:05:00Z")
    second = _run_dir(tmp_path / "night-2", [*base_cluster(), *_cronjob_run("report-29002", "report-29002-ef3gh",
                                                                             "10.244.2.71")],
                      {"shop/report-29002-ef3gh": [tcp("10.244.2.71", "198.51.100.20", 443)]}, "2026-12-02T02:05:00Z")
    return first, second


def test_generate_takes_the_union_of_the_runs(nights: tuple[Path, Path]) -> None:
    first, second = nights
    both = _policies(run("generate", first, second, "--no-reverse-dns"))
    assert list(both) == ["report-netgen"]  # the runs' pods are one workload: the CronJob
    dns = [("k8s-app=kube-dns", 53), ("k8s-app=kube-dns", 53)]  # UDP and TCP
    assert _egress(both["report-netgen"]) == [("198.51.100.20/32", 443), ("app=db", 5432), *dns]
    assert both["report-netgen"]["spec"]["podSelector"] == {"matchLabels": REPORT}
    # each run alone allows only what it saw
    assert _egress(_policies(run("generate", first, "--no-reverse-dns"))["report-netgen"]) == [
        ("app=db", 5432), *dns]
    assert _egress(_policies(run("generate", second, "--no-reverse-dns"))["report-netgen"]) == [
        ("198.51.100.20/32", 443), *dns]


def test_neighbors_and_verify_read_every_run(nights: tuple[Path, Path], tmp_path: Path) -> None:
    first, second = nights
    listed = run("neighbors", first, second, "--no-reverse-dns", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    [report] = json.loads(listed.stdout)
    assert sorted(report["pods"]) == ["report-29001-ab1cd", "report-29002-ef3gh"]
    assert sorted((n["peer"]["kind"], n["port"]) for n in report["egress"]) == [("external", 443), ("pod", 5432)]

    only_first = tmp_path / "first.yaml"
    only_first.write_text(run("generate", first, "--no-reverse-dns").stdout)
    judged = run("verify", first, second, "--policies", only_first, "-o", "json")
    # the second night's call is not allowed by the first night's policy
    assert judged.exit_code == ExitStatus.DENIED, judged.stderr
    assert "198.51.100.20" in judged.stdout
    both = tmp_path / "both.yaml"
    both.write_text(run("generate", first, second, "--no-reverse-dns").stdout)
    assert run("verify", first, second, "--policies", both).exit_code == 0


def test_a_directory_given_twice_counts_once(nights: tuple[Path, Path]) -> None:
    first, _ = nights
    once = json.loads(run("neighbors", first, "--no-reverse-dns", "-o", "json").stdout)
    twice = json.loads(run("neighbors", first, first / ".." / first.name, "--no-reverse-dns", "-o", "json").stdout)
    assert once == twice


# ----------------------------------------------------------------------------- pods replaced between runs

def _db_capture(client: str) -> dict[str, list[list[bytes]]]:
    return {DB0: [tcp(client, DB0_4, 5432)]}


def test_a_replaced_pod_is_still_its_workload(tmp_path: Path) -> None:
    """web's pod was replaced between the runs: db-0 saw the old pod's address in the first run."""
    old_web = [i for i in base_cluster() if i["metadata"]["name"] == f"web-{HASH}-x2kq9"]
    rest = [i for i in base_cluster() if i not in old_web]
    new_web = deployment_pod("shop", "web", "p4m7z", ["10.244.1.11"], "node-a", {"app": "web"})
    first = _run_dir(tmp_path / "run-1", [*rest, *old_web], _db_capture(WEB4), "2026-12-01T10:00:00Z")
    second = _run_dir(tmp_path / "run-2", [*rest, new_web], _db_capture("10.244.1.11"), "2026-12-02T10:00:00Z")
    result = run("generate", first, second, "--no-reverse-dns")
    db = _policies(result)["db-netgen"]
    assert _ingress(db) == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
                             "podSelector": {"matchLabels": {"app": "web"}}}]
    assert "not in the snapshot" not in result.stderr and "unknown" not in result.stderr


def _with_web_labels(labels: dict[str, str]) -> list[dict[str, Any]]:
    """The base cluster with web's Deployment (and its ReplicaSet and pod) carrying ``labels``."""
    items = [i for i in base_cluster() if not i["metadata"]["name"].startswith("web")]
    return [*items, *deployment("shop", "web", labels),
            deployment_pod("shop", "web", "x2kq9", [WEB4], "node-a", labels)]


@pytest.mark.parametrize("order", ["oldest-first", "newest-first"])
def test_the_newest_snapshot_wins_whatever_the_order(tmp_path: Path, order: str) -> None:
    """web's labels changed between the runs: the selector is the newer one, by capture time, not argument order."""
    old = _run_dir(tmp_path / "old", _with_web_labels({"app": "web"}), _db_capture(WEB4), "2026-12-01T10:00:00Z")
    new = _run_dir(tmp_path / "new", _with_web_labels({"app": "web", "tier": "front"}), _db_capture(WEB4),
                   "2026-12-02T10:00:00Z")
    args = (old, new) if order == "oldest-first" else (new, old)
    db = _policies(run("generate", *args, "--no-reverse-dns"))["db-netgen"]
    assert [peer["podSelector"] for peer in _ingress(db)] == [{"matchLabels": {"app": "web", "tier": "front"}}]


def test_without_capture_metadata_the_file_time_decides(tmp_path: Path) -> None:
    old = _run_dir(tmp_path / "b-old", _with_web_labels({"app": "web"}), _db_capture(WEB4))
    new = _run_dir(tmp_path / "a-new", _with_web_labels({"app": "web", "tier": "front"}), _db_capture(WEB4))
    os.utime(old / "cluster.json", (1_700_000_000, 1_700_000_000))
    os.utime(new / "cluster.json", (1_700_086_400, 1_700_086_400))
    db = _policies(run("generate", new, old, "--no-reverse-dns"))["db-netgen"]
    assert [peer["podSelector"] for peer in _ingress(db)] == [{"matchLabels": {"app": "web", "tier": "front"}}]


def test_an_address_reused_by_a_newer_pod_is_that_pod(tmp_path: Path) -> None:
    """web's old pod had 10.244.1.10; after it was gone, a pod of worker got the address.

    Both pods are Running in their snapshots; the one created last holds the address (its name sorts
    after web's, so a first-by-name rule would pick the wrong one).
    """
    old_web = _created(deployment_pod("shop", "web", "x2kq9", [WEB4], "node-a", {"app": "web"}),
                       "2026-12-01T09:00:00Z")
    rest = [i for i in base_cluster() if i["metadata"]["name"] != old_web["metadata"]["name"]]
    worker = _created(deployment_pod("shop", "worker", "a1b2c", [WEB4], "node-a", {"app": "worker"}),
                      "2026-12-02T09:00:00Z")
    first = _run_dir(tmp_path / "run-1", [*rest, old_web], {DB0: []}, "2026-12-01T10:00:00Z")
    second = _run_dir(tmp_path / "run-2", [*rest, *deployment("shop", "worker", {"app": "worker"}), worker],
                      _db_capture(WEB4), "2026-12-02T10:00:00Z")
    for args in ((first, second), (second, first)):
        db = _policies(run("generate", *args, "--no-reverse-dns"))["db-netgen"]
        assert [peer["podSelector"] for peer in _ingress(db)] == [{"matchLabels": {"app": "worker"}}]


# ----------------------------------------------------------------------------- what is not accepted

def test_pod_option_is_for_files_only(nights: tuple[Path, Path]) -> None:
    first, second = nights
    result = run("generate", first, second, "--pod", "shop/x")
    assert result.exit_code == 3 and result.stdout == ""
    assert "--pod is for pcap files" in result.stderr


def test_cluster_option_replaces_every_runs_snapshot(nights: tuple[Path, Path]) -> None:
    first, second = nights
    result = run("generate", first, second, "--cluster", first / "cluster.json", "--no-reverse-dns")
    assert result.exit_code == 3  # the second night's pod is not in the first night's snapshot
    assert "pod shop/report-29002-ef3gh" in result.stderr and str(first / "cluster.json") in result.stderr
