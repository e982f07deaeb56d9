"""Admission of ephemeral containers: upstream update validation and PodSecurity "baseline"/"restricted" checks.

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


SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
"""SELinux types baseline allows (an empty or unset type included)."""


def _baseline_checks(pod_spec: Obj, containers: list[Obj]) -> dict[str, list[str]]:
    """Findings of the container-level baseline checks, by upstream check (the reason in the message)."""
    pod_sc = pod_spec.get("securityContext") or {}
    found: dict[str, list[str]] = {}
    for c in containers:
        name = c.get("name")
        sc = c.get("securityContext") or {}
        apparmor = (sc.get("appArmorProfile") or {}).get("type")
        if apparmor == "Unconfined":
            found.setdefault("forbidden AppArmor profile", []).append(
                f'container "{name}" must not set securityContext.appArmorProfile.type to "Unconfined"')
        added = [str(a) for a in (sc.get("capabilities") or {}).get("add") or []]
        non_default = [a for a in added if a not in BASELINE_CAPABILITIES]
        if non_default:
            found.setdefault("non-default capabilities", []).append(
                f'container "{name}" must not include {_quoted(non_default)} in securityContext.capabilities.add')
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            found.setdefault("hostProcess", []).append(
                f'container "{name}" must not set securityContext.windowsOptions.hostProcess=true')
        if sc.get("privileged"):
            found.setdefault("privileged", []).append(
                f'container "{name}" must not set securityContext.privileged=true')
        if sc.get("procMount") not in (None, "Default"):
            found.setdefault("procMount", []).append(
                f'container "{name}" must not set securityContext.procMount to "{sc["procMount"]}"')
        selinux = sc.get("seLinuxOptions") or {}
        bad = [f'type "{selinux["type"]}"'] if selinux.get("type", "") not in SELINUX_TYPES else []
        bad += [f'{field} "{selinux[field]}"' for field in ("user", "role") if selinux.get(field)]
        if bad:
            found.setdefault("seLinuxOptions", []).append(
                f'container "{name}" set forbidden securityContext.seLinuxOptions: {", ".join(bad)}')
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.setdefault("seccompProfile", []).append(
                f'container "{name}" must not set securityContext.seccompProfile.type to "Unconfined"')
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.setdefault("seccompProfile", []).insert(0, 'pod must not set securityContext.seccompProfile.type to '
                                                       '"Unconfined"')
    return found


def restricted_violations(pod_spec: Obj, containers: list[Obj]) -> list[str]:
    """PodSecurity "restricted" failures of ``containers`` (pod-level securityContext as fallback), upstream order.

    Restricted is baseline and more: every container-level baseline check (:func:`baseline_violations`),
    then allowPrivilegeEscalation, capabilities (drop ALL, add at most NET_BIND_SERVICE), runAsNonRoot,
    runAsUser=0 and seccompProfile (RuntimeDefault or Localhost, which replaces baseline's seccomp check).
    Regular containers are not re-checked (a namespace labelled restricted already admitted them).
    """
    pod_sc = pod_spec.get("securityContext") or {}
    base = _baseline_checks(pod_spec, containers)
    base.pop("seccompProfile", None)
    ape, caps_restr, non_root, root_user, seccomp = [], [], [], [], []
    for c in containers:
        name = c.get("name")
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        added = [str(a) for a in caps.get("add") or []]
        if sc.get("allowPrivilegeEscalation") is not False:
            ape.append(f'container "{name}" must set securityContext.allowPrivilegeEscalation=false')
        details = []
        if "ALL" not in (caps.get("drop") or []):
            details.append(f'container "{name}" must set securityContext.capabilities.drop=["ALL"]')
        not_allowed = [a for a in added if a != "NET_BIND_SERVICE"]
        if not_allowed:
            details.append(f'container "{name}" must not include {_quoted(not_allowed)} in '
                           "securityContext.capabilities.add")
        if details:
            caps_restr.append("; ".join(details))
        if sc.get("runAsNonRoot") is False:
            non_root.append(f'container "{name}" must not set securityContext.runAsNonRoot=false')
        elif sc.get("runAsNonRoot") is not True and pod_sc.get("runAsNonRoot") is not True:
            non_root.append(f'pod or container "{name}" must set securityContext.runAsNonRoot=true')
        if sc.get("runAsUser") == 0:
            root_user.append(f'container "{name}" must not set runAsUser=0')
        profile = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if profile == "Unconfined":
            seccomp.append(f'container "{name}" must not set securityContext.seccompProfile.type to "Unconfined"')
        elif profile not in ("RuntimeDefault", "Localhost"):
            seccomp.append(f'pod or container "{name}" must set securityContext.seccompProfile.type to '
                           '"RuntimeDefault" or "Localhost"')
    if pod_sc.get("runAsUser") == 0:
        root_user.insert(0, "pod must not set runAsUser=0")
    checks = [("allowPrivilegeEscalation != false", ape),
              ("forbidden AppArmor profile", base.get("forbidden AppArmor profile", [])),
              ("non-default capabilities", base.get("non-default capabilities", [])),
              ("unrestricted capabilities", caps_restr), ("hostProcess", base.get("hostProcess", [])),
              ("privileged", base.get("privileged", [])), ("procMount", base.get("procMount", [])),
              ("runAsNonRoot != true", non_root), ("runAsUser=0", root_user),
              ("seLinuxOptions", base.get("seLinuxOptions", [])), ("seccompProfile", seccomp)]
    return [f"{reason} ({'; '.join(found)})" for reason, found in checks if found]


def baseline_violations(containers: list[Obj], pod_spec: Obj | None = None) -> list[str]:
    """PodSecurity "baseline" failures of ``containers``, upstream order.

    The checks a container can fail: an Unconfined AppArmor profile, capabilities beyond
    :data:`BASELINE_CAPABILITIES`, hostProcess, privileged, a procMount other than Default, SELinux
    options other than the container types, and an Unconfined seccomp profile (container or pod).
    """
    found = _baseline_checks(pod_spec or {}, containers)
    order = ["forbidden AppArmor profile", "non-default capabilities", "hostProcess", "privileged", "procMount",
             "seLinuxOptions", "seccompProfile"]
    return [f"{reason} ({'; '.join(found[reason])})" for reason in order if reason in found]


def _quoted(values: list[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)
