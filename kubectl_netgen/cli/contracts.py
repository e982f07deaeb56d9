"""``contracts``: policies from group contracts; applied, tested with test pods, and cleaned up."""

from __future__ import annotations

import enum
from typing import Annotated

import click
import typer

from kubectl_netgen.cli.base import (
    DEFAULT_REQUEST_TIMEOUT,
    ContextOpt,
    KubeconfigOpt,
    ManifestFormat,
    RequestTimeoutOpt,
    _binary_stdin,
    _env,
    _live,
    app,
)


class DryRunOpt(str, enum.Enum):
    """``--dry-run`` values, as kubectl spells them."""

    NONE = "none"
    SERVER = "server"
    CLIENT = "client"


@app.command()
def contracts(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(
        help="The contracts document (YAML or JSON: namespaces, contracts, expose); '-' reads stdin.",
        metavar="FILE")],
    label_key: Annotated[str, typer.Option(
        "--label-key", help="The pod label that puts a pod into a group.", metavar="KEY")] = "mms_network_tag",
    symmetric: Annotated[bool, typer.Option(
        "--symmetric", help="Hold providers to the contract's ports too (by default they reach their consumers "
        "on every port).")] = False,
    output: Annotated[ManifestFormat, typer.Option(
        "-o", "--output", help="yaml: multi-document YAML; json: a v1 List.")] = ManifestFormat.YAML,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Create the policies in the cluster, or update those that exist.")] = False,
    dry_run: Annotated[DryRunOpt, typer.Option(
        "--dry-run", help="With --apply, --create or --cleanup: server sends every write with dryRun=All (checked, "
        "not persisted); client sends no write.")] = DryRunOpt.NONE,
    test_pods: Annotated[bool, typer.Option(
        "--test-pods", help="Print test pods instead of the policies: one per group and namespace, labelled "
        "into its group, and one in no group.")] = False,
    create: Annotated[bool, typer.Option(
        "--create", help="With --test-pods: create the test pods in the cluster.")] = False,
    cleanup: Annotated[bool, typer.Option(
        "--cleanup", help="Delete the policies and test pods netgen contracts created in the document's "
        "namespaces; prints nothing on stdout.")] = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT,
) -> None:
    """Print NetworkPolicies for group contracts: consumers reach providers on the contract's ports.

    One ingress policy per group and namespace. Example: kubectl netgen contracts contracts.yaml --apply
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    if create and not test_pods:
        raise click.UsageError("--create creates the test pods: give it with --test-pods", ctx=ctx)
    if cleanup and (apply or test_pods):
        raise click.UsageError("--cleanup deletes what netgen created: give it without --apply and --test-pods",
                               ctx=ctx)
    if dry_run is not DryRunOpt.NONE and not (apply or create or cleanup):
        raise click.UsageError("--dry-run needs something to change: --apply, --test-pods --create or --cleanup",
                               ctx=ctx)
    env = _env(ctx)
    plan = usecases.read_contracts(file, label_key=label_key, symmetric=symmetric, stdin=_binary_stdin(env),
                                   warn=env.warn)
    live = _live(kubeconfig, context, request_timeout)
    mode = usecases.DryRun(dry_run.value)
    if cleanup:
        changes = usecases.cleanup_contracts(plan.contracts.namespaces, live=live, dry_run=mode)
        for change in changes:
            env.info(render.change_line(change))
        env.info(render.cleanup_summary(changes, plan.contracts.namespaces))
        return
    shown = plan.test_pods if test_pods else plan.policies
    if output is ManifestFormat.JSON:
        env.stdout.write(render.policies_json(shown))
    else:
        env.stdout.write(render.manifests_yaml(shown))
    env.stdout.flush()
    env.info(render.contracts_summary(plan, test_pods))
    to_write = (plan.policies if apply else []) + (plan.test_pods if create else [])
    if to_write:
        for change in usecases.apply_manifests(to_write, live=live, dry_run=mode):
            env.info(render.change_line(change))
