"""``generate`` and ``neighbors``: policies from captures, and the picture behind them."""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import typer

from kubectl_netgen.cli.base import (
    ClusterOpt,
    ContextOpt,
    DnsServerOpt,
    KubeconfigOpt,
    ManifestFormat,
    NoReverseDnsOpt,
    OutputFormat,
    OutputOpt,
    PodOpt,
    SourcesArg,
    StrictOpt,
    _binary_stdin,
    _env,
    _format,
    _reverse,
    app,
)


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
    self_check: Annotated[Optional[bool], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
        "--self-check/--no-self-check", help="Check with the policy engine that the policies allow every "
        "observed flow before printing them (default: up to 200,000 allowances).", show_default=False)] = None,
) -> None:
    """Print least-privilege NetworkPolicies that allow every captured flow and nothing else.

    One policy per captured workload. Example: kubectl netgen generate ./netgen-capture-shop/ | kubectl apply -f -
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render
    from kubectl_netgen.synth import Mode

    env = _env(ctx)
    result = usecases.generate(
        sources, pods=pod or (), cluster=cluster, live=usecases.LiveCluster(kubeconfig, context),
        mode=Mode(mode.value), dns_rule=not no_dns_rule,
        port_ranges=port_ranges, reverse=_reverse(no_reverse_dns, dns_server), stdin=_binary_stdin(env),
        strict=strict, self_check=self_check, warn=env.warn)
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
) -> None:
    """Show who each captured workload talks to and who talks to it: peers, ports, protocols, DNS names.

    What generate builds its policies from, including the peers it needs no rule for (loopback, the
    pod itself, its own node) and those it warns about. Example: kubectl netgen neighbors ./netgen-capture-shop/
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    env = _env(ctx)
    live = usecases.LiveCluster(kubeconfig, context)
    result = usecases.neighbors(sources, pods=pod or (), cluster=cluster, live=live,
                                reverse=_reverse(no_reverse_dns, dns_server), stdin=_binary_stdin(env), strict=strict,
                                warn=env.warn)
    if _format(env, output) is OutputFormat.JSON:
        env.stdout.write(render.neighbors_json(result))
    else:
        render.neighbors_table(result, env.stdout)
    env.info(render.neighbors_summary(result))
