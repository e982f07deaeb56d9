"""``capture``: ephemeral tcpdump containers on the pods of workloads."""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import click
import typer

from kubectl_netgen.cli.base import (
    DEFAULT_REQUEST_TIMEOUT,
    ContextOpt,
    KubeconfigOpt,
    RequestTimeoutOpt,
    _env,
    _live,
    _reverse,
    app,
)
from kubectl_netgen.errors import ExitStatus


class DryRun(str, enum.Enum):
    """``--dry-run`` as kubectl spells it."""

    NONE = "none"
    CLIENT = "client"


class CaptureProfile(str, enum.Enum):
    """``--profile`` of ``capture``: the capabilities the capture container asks for."""

    AUTO = "auto"
    NETRAW = "netraw"
    BASELINE = "baseline"


def _duration_option(text: str, option: str, limit: float) -> float:
    """A duration option's seconds; a bad or too long value is a usage error (exit 2).

    Raises:
        click.BadParameter: Not a positive duration, or longer than ``limit`` seconds.
    """
    from kubectl_netgen.capturing import plan
    from kubectl_netgen.errors import InputError

    try:
        seconds = plan.parse_duration(text)
    except InputError as e:
        raise click.BadParameter(e.message, param_hint=option) from None
    if seconds > limit:
        raise click.BadParameter(f"{text!r} is longer than {plan.format_duration(limit)}, the longest a capture "
                                 "may run; capture in several runs (generate reads several directories)",
                                 param_hint=option)
    return seconds


@app.command()
def capture(
    ctx: typer.Context,
    targets: Annotated[Optional[list[str]], typer.Argument(  # noqa: UP045 - typer needs Optional on Python 3.10
        help="What to capture: deploy/NAME, sts/NAME, ds/NAME, rs/NAME, job/NAME, cronjob/NAME, svc/NAME (its "
        "backends), pod/NAME or a bare pod name.", metavar="TARGET...", show_default=False)] = None,
    namespace: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "-n", "--namespace", help="The targets' namespace (default: the kubeconfig context's, else 'default').",
    )] = None,
    all_namespaces: Annotated[bool, typer.Option(
        "-A", "--all-namespaces", help="Look for the targets (and -l) in every namespace.")] = False,
    selector: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "-l", "--selector", help="Also capture the pods matching this label selector.", metavar="SELECTOR")] = None,
    duration: Annotated[str, typer.Option(
        "--duration", help="How long tcpdump runs in each pod (30s, 5m, 1h).", metavar="DURATION")] = "1m",
    output: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "-o", "--output", help="The capture directory to write (default: ./netgen-capture-<UTC timestamp>).",
        metavar="DIR")] = None,
    image: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--image", help="The capture image; it needs tcpdump and a busybox userland (sh, timeout, dd, base64, awk) "
        "(default: nicolaka/netshoot, pinned).", metavar="IMAGE")] = None,
    bpf_filter: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--filter", help="A BPF expression and-ed with the default filter (e.g. 'not port 9100').",
        metavar="EXPR")] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Capture whole packets of all traffic instead of headers of openings plus DNS.")] = False,
    max_pods: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--max-pods", help="Capture at most N pods of each target (ready pods first; default: all).",
        metavar="N")] = None,
    parallel: Annotated[int, typer.Option(
        "--parallel", help="API requests in flight at a time (every pod captures over the same window).",
        metavar="N")] = 8,
    start_timeout: Annotated[str, typer.Option(
        "--start-timeout", help="Give up on a pod whose capture container has not started by then "
        "(e.g. the image cannot be pulled).", metavar="DURATION")] = "60s",
    profile: Annotated[CaptureProfile, typer.Option(
        "--profile", help="Capabilities: netraw (drop all, add NET_RAW), baseline (add nothing: the runtime's "
        "default set, admitted under Pod Security baseline), auto (netraw, else baseline).")] = CaptureProfile.AUTO,
    dry_run: Annotated[DryRun, typer.Option(
        "--dry-run", help="client: print the pods it would capture and the container it would add to each "
        "(after checking the permissions), change nothing.")] = DryRun.NONE,
    then_generate: Annotated[bool, typer.Option(
        "--generate", help="Then print the NetworkPolicies for the capture (as generate DIR does).")] = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
    request_timeout: RequestTimeoutOpt = DEFAULT_REQUEST_TIMEOUT,
) -> int:
    """Capture the traffic of the pods behind the targets into a capture directory, restarting nothing.

    Each pod gets an ephemeral container running tcpdump for --duration; its capture travels back through
    the container log. Prints the directory on stdout (the policies with --generate). Example:
    kubectl netgen capture deploy/web -n shop --duration 5m -o ./web-capture
    """
    if namespace is not None and all_namespaces:
        raise click.UsageError("-n/--namespace and -A/--all-namespaces cannot be given together", ctx=ctx)
    from pathlib import Path

    from kubectl_netgen import app as usecases
    from kubectl_netgen import render
    from kubectl_netgen.capturing import plan

    for value, option in ((parallel, "--parallel"), (max_pods, "--max-pods")):
        if value is not None and value < 1:
            raise click.BadParameter(f"{value} is below 1", ctx=ctx, param_hint=option)
    env = _env(ctx)
    seconds = _duration_option(duration, "--duration", plan.MAX_DURATION)
    start_seconds = _duration_option(start_timeout, "--start-timeout", plan.MAX_START_TIMEOUT)
    settings = plan.Settings(duration=max(1, round(seconds)), image=image or plan.DEFAULT_IMAGE,
                             user_filter=bpf_filter, full=full, profile=plan.Profile(profile.value))
    request = usecases.CaptureRequest(
        targets=tuple(targets or ()), settings=settings, namespace=namespace, all_namespaces=all_namespaces,
        selector=selector, output=Path(output) if output else None, max_pods=max_pods, parallel=parallel,
        start_timeout=start_seconds, live=_live(kubeconfig, context, request_timeout))
    if dry_run is DryRun.CLIENT:
        planned = usecases.preview(request, env.warn)
        env.stdout.write(render.manifests_yaml(render.preview_manifests(planned)))
        env.info(render.preview_summary(planned))
        return int(ExitStatus.OK)
    isatty = getattr(env.stderr, "isatty", None)
    with render.CaptureDisplay(env.stderr, live=bool(isatty and isatty())) as display:
        result = usecases.capture(request, display, env.warn)
    for line in render.capture_failures(result):
        env.stderr.write(f"failed: {line}\n")
    env.info(render.capture_summary(result))
    if result.interrupted:
        return int(ExitStatus.INTERRUPTED)
    if then_generate and result.succeeded:
        generated = usecases.generate([str(result.directory)], reverse=_reverse(False, None), warn=env.warn)
        env.stdout.write(render.policies_yaml(generated.policies, generated.names))
        env.info(render.generate_summary(generated))
    else:
        env.stdout.write(f"{result.directory}\n")
    if result.succeeded == len(result.pods):
        return int(ExitStatus.OK)
    return int(ExitStatus.CAPTURE_PARTIAL if result.succeeded else ExitStatus.CAPTURE_FAILED)
