"""``flows``, ``dns`` and ``snapshot``: what captures and the cluster hold."""

from __future__ import annotations

from typing import Annotated, Optional

import click
import typer

from kubectl_netgen.cli.base import (
    DEFAULT_REQUEST_TIMEOUT,
    ContextOpt,
    KubeconfigOpt,
    OutputFormat,
    OutputOpt,
    PcapsArg,
    RequestTimeoutOpt,
    StrictOpt,
    _binary_stdin,
    _env,
    _format,
    _request_timeout,
    app,
)


@app.command()
def flows(ctx: typer.Context, pcaps: PcapsArg, output: OutputOpt = None, strict: StrictOpt = False) -> None:
    """List the flows in captures: who opened connections to whom, on which port.

    A flow is (protocol, client IP, server IP, server port), aggregated over its
    connections. Example: kubectl netgen flows capture.pcap -o json
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    env = _env(ctx)
    result = usecases.flows(pcaps, stdin=_binary_stdin(env), strict=strict, warn=env.warn)
    if _format(env, output) is OutputFormat.JSON:
        env.stdout.write(render.flows_json(result))
    else:
        render.flows_table(result, env.stdout)
    env.info(render.flows_summary(result))


@app.command()
def dns(ctx: typer.Context, pcaps: PcapsArg, output: OutputOpt = None, strict: StrictOpt = False) -> None:
    """List the names DNS answers in captures gave to IP addresses.

    Follows CNAME chains back to the name that was asked for. Example:
    kubectl netgen dns capture.pcap -o json
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    env = _env(ctx)
    result = usecases.dns_names(pcaps, stdin=_binary_stdin(env), strict=strict, warn=env.warn)
    if _format(env, output) is OutputFormat.JSON:
        env.stdout.write(render.names_json(result))
    else:
        render.names_table(result, env.stdout)
    env.info(render.names_summary(result))


@app.command()
def snapshot(
    ctx: typer.Context,
    namespace: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
        typer.Option("-n", "--namespace", help="Read this namespace (default: the kubeconfig context's, "
                     "else 'default'). Nodes are always read."),
    ] = None,
    all_namespaces: Annotated[bool, typer.Option("-A", "--all-namespaces", help="Read every namespace.")] = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT,
) -> None:
    """Print the cluster objects netgen uses as one JSON v1 List (save it for --cluster FILE).

    Namespaces, pods, services, endpointslices, nodes and workload controllers, as
    kubectl get ... -o json prints them, sorted. Example:
    kubectl netgen snapshot -A > cluster.json
    """
    if namespace is not None and all_namespaces:
        raise click.UsageError("-n/--namespace and -A/--all-namespaces cannot be given together", ctx=ctx)
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    env = _env(ctx)
    result = usecases.snapshot(kubeconfig=kubeconfig, context=context, namespace=namespace,
                               all_namespaces=all_namespaces, warn=env.warn,
                               request_timeout=_request_timeout(request_timeout))
    env.stdout.write(render.dump_json(result.document))
    env.info(render.snapshot_summary(result))
