"""``baseline``: a default deny with DNS per namespace, or a Kyverno policy that puts it everywhere."""

from __future__ import annotations

from typing import Annotated, Optional

import click
import typer

from kubectl_netgen.cli.base import (
    DEFAULT_REQUEST_TIMEOUT,
    ContextOpt,
    KubeconfigOpt,
    ManifestFormat,
    RequestTimeoutOpt,
    _env,
    _live,
    app,
)
from kubectl_netgen.cli.policies import PolicyMode


@app.command()
def baseline(
    ctx: typer.Context,
    namespace: Annotated[Optional[str], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
        "-n", "--namespace", help="Baseline this namespace (no cluster access needed).", metavar="NS")] = None,
    all_namespaces: Annotated[bool, typer.Option(
        "-A", "--all-namespaces", help="Baseline every namespace of the cluster.")] = False,
    selector: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "-l", "--selector", help="Baseline the namespaces matching this label selector.",
        metavar="SELECTOR")] = None,
    mode: Annotated[PolicyMode, typer.Option("--mode", help="Which directions to deny.")] = PolicyMode.BOTH,
    deny_metadata: Annotated[bool, typer.Option(
        "--deny-metadata", help="Keep pods off the cloud metadata service (169.254.169.254, fd00:ec2::254).")] = False,
    allow_same_namespace: Annotated[bool, typer.Option(
        "--allow-same-namespace", help="Allow traffic between the pods of a namespace.")] = False,
    no_dns_rule: Annotated[bool, typer.Option(
        "--no-dns-rule", help="Do not allow DNS to the cluster DNS pods when egress is denied.")] = False,
    kyverno: Annotated[bool, typer.Option(
        "--kyverno", help="Print a Kyverno ClusterPolicy that generates the baseline in every existing and "
        "future namespace instead (no cluster access needed).")] = False,
    exclude: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--exclude", help="Leave this namespace out (repeatable; * and ? match); kube-system always is.",
        metavar="NS")] = None,
    output: Annotated[ManifestFormat, typer.Option(
        "-o", "--output", help="yaml: multi-document YAML; json: a v1 List.")] = ManifestFormat.YAML,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT,
) -> None:
    """Print a safe starting point for namespaces: default deny, DNS allowed, optional guards.

    Example: kubectl netgen baseline -A --deny-metadata | kubectl apply -f -
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render
    from kubectl_netgen.synth import Mode

    scopes = sum([namespace is not None, all_namespaces, selector is not None])
    if kyverno and scopes:
        raise click.UsageError("--kyverno covers every namespace: give it without -n, -A and -l", ctx=ctx)
    if not kyverno and scopes != 1:
        raise click.UsageError("give exactly one of -n NAMESPACE, -A and -l SELECTOR (or --kyverno)", ctx=ctx)
    env = _env(ctx)
    options = usecases.BaselineOptions(mode=Mode(mode.value), dns_rule=not no_dns_rule, deny_metadata=deny_metadata,
                                       allow_same_namespace=allow_same_namespace)
    if kyverno:
        policy = usecases.baseline_kyverno(exclude=exclude or (), options=options)
        env.stdout.write(render.policies_json([policy]) if output is ManifestFormat.JSON
                         else render.manifests_yaml([policy]))
        return
    result = usecases.baseline(namespace=namespace, selector=selector, live=_live(kubeconfig, context, request_timeout),
                               exclude=exclude or (), options=options)
    env.stdout.write(render.policies_json(result.policies) if output is ManifestFormat.JSON
                     else render.manifests_yaml(result.policies))
    note = render.left_out_note(result)
    if note is not None:
        env.info(note)
    env.info(render.baseline_summary(result))
