"""Capture targets as kubectl spells them, and the pods behind a workload.

``deploy/web``, ``deployments.apps/web``, ``statefulset/db`` (``sts``), ``daemonset/x`` (``ds``), ``job/x``,
``cronjob/x`` (``cj``), ``replicaset/x`` (``rs``), ``pod/x`` (``po``) or a bare pod name, ``svc/x``
(``service``): :func:`parse_target` turns each into a :class:`Target`; :func:`pod_selector` turns the
workload object the API returns into the label selector of its pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_netgen.errors import InputError


@dataclass(frozen=True)
class Kind:
    """A kind of capture target and where the API serves it."""

    kind: str
    """``Deployment``, ``Pod``, …"""
    api_version: str
    plural: str

    def path(self, namespace: str, name: str) -> str:
        """The URL of one object of this kind."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}/{name}"


POD = Kind("Pod", "v1", "pods")
KINDS: dict[str, Kind] = {k.kind: k for k in (
    POD,
    Kind("Deployment", "apps/v1", "deployments"),
    Kind("StatefulSet", "apps/v1", "statefulsets"),
    Kind("DaemonSet", "apps/v1", "daemonsets"),
    Kind("ReplicaSet", "apps/v1", "replicasets"),
    Kind("Job", "batch/v1", "jobs"),
    Kind("CronJob", "batch/v1", "cronjobs"),
    Kind("Service", "v1", "services"),
)}

_ALIASES: dict[str, str] = {}
for _kind, _names in {
    "Pod": ("pod", "pods", "po"),
    "Deployment": ("deployment", "deployments", "deploy", "deployments.apps", "deployment.apps",
                   "deployments.v1.apps"),
    "StatefulSet": ("statefulset", "statefulsets", "sts", "statefulsets.apps", "statefulset.apps",
                    "statefulsets.v1.apps"),
    "DaemonSet": ("daemonset", "daemonsets", "ds", "daemonsets.apps", "daemonset.apps", "daemonsets.v1.apps"),
    "ReplicaSet": ("replicaset", "replicasets", "rs", "replicasets.apps", "replicaset.apps",
                   "replicasets.v1.apps"),
    "Job": ("job", "jobs", "jobs.batch", "job.batch", "jobs.v1.batch"),
    "CronJob": ("cronjob", "cronjobs", "cj", "cronjobs.batch", "cronjob.batch", "cronjobs.v1.batch"),
    "Service": ("service", "services", "svc"),
}.items():
    for _name in _names:
        _ALIASES[_name] = _kind


@dataclass(frozen=True)
class Target:
    """One capture target as given on the command line."""

    kind: Kind
    name: str

    def __str__(self) -> str:
        """``deployment/web``, as kubectl prints a resource."""
        return f"{self.kind.kind.lower()}/{self.name}"


def parse_target(text: str) -> Target:
    """Read ``KIND/NAME`` (kubectl's names and abbreviations, case-insensitive kind) or a bare pod name.

    Raises:
        InputError: An unknown kind, or an empty name.
    """
    kind_text, slash, name = text.partition("/")
    if not slash:
        kind_text, name = "pod", text
    kind = _ALIASES.get(kind_text.lower())
    if kind is None:
        known = "deploy, sts, ds, rs, job, cronjob, pod, svc"
        raise InputError(f"{text}: unknown target kind {kind_text!r}; use KIND/NAME with one of {known}, "
                         "or a bare pod name")
    if not name or "/" in name:
        raise InputError(f"{text}: expected KIND/NAME (e.g. deploy/web) or a pod name")
    return Target(KINDS[kind], name)


def _requirement(expression: Mapping[str, Any]) -> str:
    key, operator = str(expression.get("key")), str(expression.get("operator"))
    values = sorted(str(v) for v in expression.get("values") or [])
    if operator == "In":
        return f"{key} in ({','.join(values)})"
    if operator == "NotIn":
        return f"{key} notin ({','.join(values)})"
    if operator == "Exists":
        return key
    if operator == "DoesNotExist":
        return f"!{key}"
    raise InputError(f"unsupported label selector operator {operator!r} on {key!r}")


def label_selector(selector: Mapping[str, Any] | None) -> str | None:
    """A ``LabelSelector`` (``matchLabels`` + ``matchExpressions``) as a ``labelSelector`` query string.

    Returns ``None`` for a missing or empty selector, which selects nothing (not everything) here.
    """
    if not selector:
        return None
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    parts += [_requirement(e) for e in selector.get("matchExpressions") or []]
    return ",".join(parts) or None


def pod_selector(target: Target, obj: Mapping[str, Any]) -> str | None:
    """The label selector of the pods behind a workload or Service object (``None``: it selects none).

    A Service's ``spec.selector`` is a plain map; a CronJob's pods carry its Jobs' labels, so the CronJob
    itself gives none (its Jobs are looked up instead); other controllers have ``spec.selector``.
    """
    spec = obj.get("spec") or {}
    if target.kind.kind == "Service":
        plain = spec.get("selector") or {}
        return ",".join(f"{k}={v}" for k, v in sorted(plain.items())) or None
    if target.kind.kind == "CronJob":
        return None
    return label_selector(spec.get("selector"))


def owned_by(obj: Mapping[str, Any], kind: str, names: set[str]) -> bool:
    """Tell whether ``obj`` has an owner reference to a ``kind`` named one of ``names``."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("kind") == kind and r.get("name") in names for r in refs)
