"""``verify`` and ``explain``: policies judged against captured traffic, and told in words."""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_netgen.cli.base import (
    DEFAULT_REQUEST_TIMEOUT,
    ClusterOpt,
    ContextOpt,
    KubeconfigOpt,
    OutputFormat,
    OutputOpt,
    PodOpt,
    PoliciesOpt,
    RequestTimeoutOpt,
    SourcesArg,
    StrictOpt,
    _binary_stdin,
    _env,
    _format,
    _live,
    app,
)
from kubectl_netgen.errors import ExitStatus


@app.command()
def verify(
    ctx: typer.Context,
    sources: SourcesArg,
    policies: PoliciesOpt = None,
    live_policies: Annotated[bool, typer.Option(
        "--live-policies", help="Add the policies applied in the cluster (NetworkPolicies, and the Network Policy "
        "API's AdminNetworkPolicies where installed).")] = False,
    cluster: ClusterOpt = None,
    pod: PodOpt = None,
    output: OutputOpt = None,
    what_if: Annotated[bool, typer.Option(
        "--what-if", help="Also report exposure: what the policies allow between workloads that was never "
        "observed (on stderr).")] = False,
    strict: StrictOpt = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT,
) -> int:
    """Judge every captured flow against policies: allowed or denied, and by which policy rule.

    Exits 10 when some flow would be denied, so it can gate a CI pipeline. Example:
    kubectl netgen generate ./capture/ | kubectl netgen verify ./capture/ --policies -
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    env = _env(ctx)
    result = usecases.verify(sources, policies=policies or (), live_policies=live_policies, pods=pod or (),
                             cluster=cluster, live=_live(kubeconfig, context, request_timeout),
                             stdin=_binary_stdin(env), strict=strict, what_if=what_if, warn=env.warn)
    if _format(env, output) is OutputFormat.JSON:
        env.stdout.write(render.verify_json(result))
    else:
        render.verify_table(result, env.stdout)
    if what_if:
        render.exposure_report(result, env.stderr)
    env.info(render.verify_summary(result))
    return int(ExitStatus.DENIED) if result.denied else int(ExitStatus.OK)


@app.command()
def explain(
    ctx: typer.Context,
    policies: PoliciesOpt = None,
    live_policies: Annotated[bool, typer.Option(
        "--live-policies", help="Explain the policies applied in the cluster too.")] = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT,
) -> None:
    """Say in plain words, per policy, who may talk to whom on which ports.

    Example: kubectl netgen generate ./capture/ | kubectl netgen explain --policies -
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    env = _env(ctx)
    result = usecases.read_policies(policies or (), stdin=_binary_stdin(env),
                                    live=_live(kubeconfig, context, request_timeout), live_policies=live_policies,
                                    warn=env.warn)
    if not (result.network or result.admin or result.baseline):
        named = ["standard input" if p == "-" else p for p in policies or ()]
        where = " and ".join([", ".join(named)] * bool(named) + ["the cluster"] * live_policies)
        env.warn(f"no policies in {where}: nothing to explain (give NetworkPolicy, AdminNetworkPolicy or "
                 "BaselineAdminNetworkPolicy manifests, e.g. from 'kubectl netgen generate')")
        return
    env.stdout.write(render.explain_text(result))
