"""Admission of ephemeral containers: upstream update validation and PodSecurity "restricted" checks.

Pure functions over pod and container JSON; the server turns their findings into 422 ``Invalid`` and
403 ``Forbidden`` answers.
"""

from __future__ import annotations

import re

from tests.cluster.apiserver.errors import Cause
from tests.cluster.apiserver.resources import Obj

POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})


def validate_ephemeral_containers(pod: Obj, old: list[Obj], new: list[Obj]) -> list[Cause]:
    """Upstream ``ValidatePodEphemeralContainersUpdate``, reduced to what a debugging tool can hit."""
    causes: list[Cause] = []
    spec = pod.get("spec", {})
    taken = {c.get("name") for c in spec.get("containers", []) + (spec.get("initContainers") or [])}
    seen: set[str] = set()
    regular = {c.get("name") for c in spec.get("containers", [])}
    for i, c in enumerate(new):
        path = f"spec.ephemeralContainers[{i}]"
        name = c.get("name")
        if not name:
            causes.append(Cause("FieldValueRequired", f"{path}.name", "Required value"))
            continue
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
            causes.append(Cause("FieldValueInvalid", f"{path}.name", f'Invalid value: "{name}": a lowercase RFC '
                                "1123 label must consist of lower case alphanumeric characters or '-', and must "
                                "start and end with an alphanumeric character"))
        if name in taken or name in seen:
            causes.append(Cause("FieldValueDuplicate", f"{path}.name", f'Duplicate value: "{name}"'))
        seen.add(name)
        if not c.get("image"):
            causes.append(Cause("FieldValueRequired", f"{path}.image", "Required value"))
        for forbidden in ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
            if c.get(forbidden):
                causes.append(Cause("FieldValueForbidden", f"{path}.{forbidden}",
                                    "Forbidden: cannot be set for an Ephemeral Container"))
        target = c.get("targetContainerName")
        if target and target not in regular:
            causes.append(Cause("FieldValueNotFound", f"{path}.targetContainerName", f'Not found: "{target}"'))
    by_name = {c.get("name"): (i, c) for i, c in enumerate(new)}
    for c in old:
        name = c["name"]
        if name not in by_name:
            causes.append(Cause("FieldValueForbidden", "spec.ephemeralContainers",
                                f'Forbidden: existing ephemeral containers "{name}" may not be removed\n'))
        elif _comparable(by_name[name][1]) != _comparable(c):
            causes.append(Cause("FieldValueForbidden", f"spec.ephemeralContainers[{by_name[name][0]}]",
                                f'Forbidden: existing ephemeral containers "{name}" may not be changed\n'))
    return causes


def _comparable(container: Obj) -> Obj:
    defaults = {"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"}
    return {**defaults, **{k: v for k, v in container.items() if v not in (None, [], {})}}


def restricted_violations(pod_spec: Obj, containers: list[Obj]) -> list[str]:
    """PodSecurity "restricted" failures of ``containers`` (pod-level securityContext as fallback), upstream order.

    Only the checks a debug container can fail are modelled: allowPrivilegeEscalation, capabilities
    (baseline and restricted), privileged, runAsNonRoot, runAsUser=0 and seccompProfile. Regular containers
    are not re-checked (a namespace labelled restricted already admitted them).
    """
    pod_sc = pod_spec.get("securityContext") or {}
    ape, caps_base, caps_restr, priv, non_root, root_user, seccomp = [], [], [], [], [], [], []
    for c in containers:
        name = c.get("name")
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        added = [str(a) for a in caps.get("add") or []]
        if sc.get("allowPrivilegeEscalation") is not False:
            ape.append(f'container "{name}" must set securityContext.allowPrivilegeEscalation=false')
        non_default = [a for a in added if a not in BASELINE_CAPABILITIES]
        if non_default:
            caps_base.append(f'container "{name}" must not include {_quoted(non_default)} in '
                             "securityContext.capabilities.add")
        details = []
        if "ALL" not in (caps.get("drop") or []):
            details.append(f'container "{name}" must set securityContext.capabilities.drop=["ALL"]')
        not_allowed = [a for a in added if a != "NET_BIND_SERVICE"]
        if not_allowed:
            details.append(f'container "{name}" must not include {_quoted(not_allowed)} in '
                           "securityContext.capabilities.add")
        if details:
            caps_restr.append("; ".join(details))
        if sc.get("privileged"):
            priv.append(f'container "{name}" must not set securityContext.privileged=true')
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            non_root.append(f'pod or container "{name}" must set securityContext.runAsNonRoot=true')
        if sc.get("runAsUser") == 0:
            root_user.append(f'container "{name}" must not set runAsUser=0')
        profile = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if profile not in ("RuntimeDefault", "Localhost"):
            seccomp.append(f'pod or container "{name}" must set securityContext.seccompProfile.type to '
                           '"RuntimeDefault" or "Localhost"')
    checks = [("allowPrivilegeEscalation != false", ape), ("non-default capabilities", caps_base),
              ("unrestricted capabilities", caps_restr), ("privileged", priv), ("runAsNonRoot != true", non_root),
              ("runAsUser=0", root_user), ("seccompProfile", seccomp)]
    return [f"{reason} ({'; '.join(found)})" for reason, found in checks if found]


def baseline_violations(containers: list[Obj]) -> list[str]:
    """PodSecurity "baseline" failures of ``containers``: capabilities beyond the default set, privileged."""
    caps, priv = [], []
    for c in containers:
        name = c.get("name")
        sc = c.get("securityContext") or {}
        added = [str(a) for a in (sc.get("capabilities") or {}).get("add") or []]
        non_default = [a for a in added if a not in BASELINE_CAPABILITIES]
        if non_default:
            caps.append(f'container "{name}" must not include {_quoted(non_default)} in '
                        "securityContext.capabilities.add")
        if sc.get("privileged"):
            priv.append(f'container "{name}" must not set securityContext.privileged=true')
    checks = [("non-default capabilities", caps), ("privileged", priv)]
    return [f"{reason} ({'; '.join(found)})" for reason, found in checks if found]


def _quoted(values: list[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)
