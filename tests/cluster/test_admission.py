"""Pod Security admission of ephemeral containers as the Pod Security Standards define it (baseline, restricted)."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_netgen.capturing import plan
from tests.cluster.apiserver.admission import baseline_violations, restricted_violations

RESTRICTED = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
              "seccompProfile": {"type": "RuntimeDefault"}}


def c(sc: dict[str, Any], name: str = "dbg") -> dict[str, Any]:
    return {"name": name, "image": "busybox", "securityContext": sc}


def test_baseline_admits_the_baseline_profile_and_refuses_netraw() -> None:
    assert baseline_violations([c(plan.security_context(plan.Profile.BASELINE))]) == []
    assert baseline_violations([c(plan.security_context(plan.Profile.NETRAW))]) == [
        'non-default capabilities (container "dbg" must not include "NET_RAW" in securityContext.capabilities.add)']
    # Adding a capability of the baseline list is allowed: SETUID/SETGID/KILL are.
    assert baseline_violations([c({"capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID", "KILL"]}})]) == []


@pytest.mark.parametrize(("sc", "reason"), [
    ({"procMount": "Unmasked"}, 'procMount (container "dbg" must not set securityContext.procMount to "Unmasked")'),
    ({"seccompProfile": {"type": "Unconfined"}},
     'seccompProfile (container "dbg" must not set securityContext.seccompProfile.type to "Unconfined")'),
    ({"seLinuxOptions": {"type": "spc_t"}},
     'seLinuxOptions (container "dbg" set forbidden securityContext.seLinuxOptions: type "spc_t")'),
    ({"seLinuxOptions": {"type": "container_t", "user": "system_u"}},
     'seLinuxOptions (container "dbg" set forbidden securityContext.seLinuxOptions: user "system_u")'),
    ({"appArmorProfile": {"type": "Unconfined"}},
     'forbidden AppArmor profile (container "dbg" must not set securityContext.appArmorProfile.type to '
     '"Unconfined")'),
    ({"windowsOptions": {"hostProcess": True}},
     'hostProcess (container "dbg" must not set securityContext.windowsOptions.hostProcess=true)'),
    ({"privileged": True}, 'privileged (container "dbg" must not set securityContext.privileged=true)'),
])
def test_baseline_checks_every_container_control(sc: dict[str, Any], reason: str) -> None:
    assert baseline_violations([c(sc)]) == [reason]
    # Restricted is baseline and more: the same finding is there too.
    assert reason in restricted_violations({}, [c({**RESTRICTED, **sc})])


def test_allowed_values_pass_baseline() -> None:
    assert baseline_violations([c({"procMount": "Default", "seLinuxOptions": {"type": "container_init_t"},
                                   "seccompProfile": {"type": "RuntimeDefault"},
                                   "appArmorProfile": {"type": "RuntimeDefault"}})]) == []


def test_restricted() -> None:
    assert restricted_violations({}, [c(RESTRICTED)]) == []
    assert restricted_violations({}, [c({**RESTRICTED, "capabilities": {"drop": ["ALL"],
                                                                        "add": ["NET_BIND_SERVICE"]}})]) == []
    assert restricted_violations({"securityContext": {"runAsNonRoot": True,
                                                      "seccompProfile": {"type": "Localhost"}}},
                                 [c({"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}})]) == []
    assert restricted_violations({"securityContext": {"runAsNonRoot": True}},
                                 [c({**RESTRICTED, "runAsNonRoot": False})]) == [
        'runAsNonRoot != true (container "dbg" must not set securityContext.runAsNonRoot=false)']
    assert restricted_violations({"securityContext": {"runAsUser": 0}}, [c(RESTRICTED)]) == [
        "runAsUser=0 (pod must not set runAsUser=0)"]
    netraw = restricted_violations({}, [c(plan.security_context(plan.Profile.NETRAW))])
    assert netraw[:2] == [
        'non-default capabilities (container "dbg" must not include "NET_RAW" in securityContext.capabilities.add)',
        'unrestricted capabilities (container "dbg" must not include "KILL", "NET_RAW", "SETGID", "SETUID" in '
        'securityContext.capabilities.add)']
    assert restricted_violations({}, [c({**RESTRICTED, "seccompProfile": {"type": "Unconfined"}})]) == [
        'seccompProfile (container "dbg" must not set securityContext.seccompProfile.type to "Unconfined")']
