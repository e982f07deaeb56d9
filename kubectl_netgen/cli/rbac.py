"""``rbac``: the Role (or ClusterRole) and binding that ``capture`` needs, to review and apply."""

from __future__ import annotations

from typing import Annotated, Optional

import click
import typer

from kubectl_netgen.cli.base import ManifestFormat, _env, app


@app.command()
def rbac(
    ctx: typer.Context,
    namespace: Annotated[Optional[str], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
        "-n", "--namespace", help="Where capture -n NS will run: a Role and RoleBinding there.", metavar="NS")] = None,
    cluster_wide: Annotated[bool, typer.Option(
        "--cluster", "-A", "--all-namespaces", help="For capture -A: a ClusterRole and ClusterRoleBinding.")] = False,
    users: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--user", help="A user to bind (repeatable).", metavar="NAME")] = None,
    groups: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--group", help="A group to bind (repeatable).", metavar="NAME")] = None,
    service_accounts: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--serviceaccount", help="A service account to bind, NAMESPACE:NAME (repeatable).", metavar="NS:NAME")] = None,
    output: Annotated[ManifestFormat, typer.Option(
        "-o", "--output", help="yaml: multi-document YAML; json: a v1 List.")] = ManifestFormat.YAML,
) -> None:
    """Print the RBAC objects that let a user capture: a Role in one namespace, or a ClusterRole for -A.

    The rules are exactly what capture asks the API server for before it starts; generate reads the
    capture directory and needs nothing more. Example:
    kubectl netgen rbac -n shop --user jane@example.com | kubectl apply -f -
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    if (namespace is None) == (not cluster_wide):
        raise click.UsageError("give one of -n NAMESPACE (a Role) and --cluster (a ClusterRole for capture -A)",
                               ctx=ctx)
    from kubectl_netgen.errors import InputError

    env = _env(ctx)
    try:
        manifests = usecases.rbac_manifests(namespace, users=users or (), groups=groups or (),
                                            service_accounts=service_accounts or ())
    except InputError as e:
        raise click.BadParameter(e.message, ctx=ctx, param_hint="--serviceaccount") from None
    env.stdout.write(render.policies_json(manifests) if output is ManifestFormat.JSON
                     else render.manifests_yaml(manifests))
    if not (users or groups or service_accounts):
        env.info("the binding has no subjects yet: add --user, --group or --serviceaccount, or edit it")
