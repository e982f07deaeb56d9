"""``generate`` and ``neighbors``: policies from captures, and the picture behind them."""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import click
import typer

from kubectl_netgen.cli.base import (
    DEFAULT_REQUEST_TIMEOUT,
    ClusterOpt,
    ContextOpt,
    DnsServerOpt,
    KubeconfigOpt,
    ManifestFormat,
    NoReverseDnsOpt,
    OutputFormat,
    OutputOpt,
    PodOpt,
    RequestTimeoutOpt,
    SourcesArg,
    StrictOpt,
    _binary_stdin,
    _env,
    _format,
    _live,
    _reverse,
    app,
)


class ExternalIngress(str, enum.Enum):
    """``--external-ingress``: what public Services' backends admit from outside the cluster."""

    ANY = "any"
    OBSERVED = "observed"


class PolicyMode(str, enum.Enum):
    """``--mode``: which directions the generated policies restrict."""

    BOTH = "both"
    INGRESS = "ingress"
    EGRESS = "egress"


@app.command()
def generate(
    ctx: typer.Context,
    sources: SourcesArg,
    cluster: ClusterOpt = None,
    pod: PodOpt = None,
    mode: Annotated[PolicyMode, typer.Option("--mode", help="Which directions to restrict.")] = PolicyMode.BOTH,
    no_dns_rule: Annotated[bool, typer.Option(
        "--no-dns-rule", help="Do not always allow DNS to the cluster DNS pods when egress is restricted.")] = False,
    port_ranges: Annotated[bool, typer.Option(
        "--port-ranges", help="Merge consecutive ports of a peer into port/endPort ranges.")] = False,
    output: Annotated[ManifestFormat, typer.Option(
        "-o", "--output", help="yaml: multi-document YAML; json: a v1 List.")] = ManifestFormat.YAML,
    no_reverse_dns: NoReverseDnsOpt = False,
    dns_server: DnsServerOpt = None,
    strict: StrictOpt = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT,
    self_check: Annotated[Optional[bool], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
        "--self-check/--no-self-check", help="Check with the policy engine that the policies allow every "
        "observed flow before printing them (default: up to 200,000 allowances).", show_default=False)] = None,
    include_system: Annotated[bool, typer.Option(
        "--include-system", help="Write policies for kube-system workloads too (cluster DNS then admits every "
        "pod on 53).")] = False,
    exclude: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
        "--exclude", metavar="NS/NAME", help="Write no policy for this workload (repeatable; * and ? match).",
        show_default=False)] = None,
    external_ingress: Annotated[ExternalIngress, typer.Option(
        "--external-ingress", help="any: a LoadBalancer/NodePort Service's backends admit its target port from "
        "0.0.0.0/0 (and ::/0) when outside clients or nodes were seen on it; observed: only the seen addresses.",
    )] = ExternalIngress.ANY,
) -> None:
    """Print least-privilege NetworkPolicies that allow every captured flow and nothing else.

    One policy per captured workload. Example: kubectl netgen generate ./netgen-capture-shop/ | kubectl apply -f -
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render
    from kubectl_netgen.errors import InputError
    from kubectl_netgen.scope import Scope, check_patterns
    from kubectl_netgen.synth import Mode

    env = _env(ctx)
    try:
        scope = Scope(include_system=include_system, exclude=check_patterns(exclude or ()))
    except InputError as e:
        raise click.BadParameter(e.message, ctx=ctx, param_hint="'--exclude'") from e
    result = usecases.generate(
        sources, pods=pod or (), cluster=cluster, live=_live(kubeconfig, context, request_timeout),
        mode=Mode(mode.value), dns_rule=not no_dns_rule,
        port_ranges=port_ranges, reverse=_reverse(no_reverse_dns, dns_server), stdin=_binary_stdin(env),
        strict=strict, self_check=self_check, scope=scope,
        external_ingress=external_ingress is ExternalIngress.ANY, warn=env.warn)
    if output is ManifestFormat.JSON:
        env.stdout.write(render.policies_json(result.policies))
    else:
        env.stdout.write(render.policies_yaml(result.policies, result.names))
    env.info(render.generate_summary(result))


@app.command()
def neighbors(
    ctx: typer.Context,
    sources: SourcesArg,
    cluster: ClusterOpt = None,
    pod: PodOpt = None,
    output: OutputOpt = None,
    no_reverse_dns: NoReverseDnsOpt = False,
    dns_server: DnsServerOpt = None,
    strict: StrictOpt = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT,
) -> None:
    """Show who each captured workload talks to and who talks to it: peers, ports, protocols, DNS names.

    What generate builds its policies from, including the peers it needs no rule for (loopback, the
    pod itself, its own node) and those it warns about. Example: kubectl netgen neighbors ./netgen-capture-shop/
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    env = _env(ctx)
    live = _live(kubeconfig, context, request_timeout)
    result = usecases.neighbors(sources, pods=pod or (), cluster=cluster, live=live,
                                reverse=_reverse(no_reverse_dns, dns_server), stdin=_binary_stdin(env), strict=strict,
                                warn=env.warn)
    if _format(env, output) is OutputFormat.JSON:
        env.stdout.write(render.neighbors_json(result))
    else:
        render.neighbors_table(result, env.stdout)
    env.info(render.neighbors_summary(result))
