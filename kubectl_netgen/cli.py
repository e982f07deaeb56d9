"""The ``kubectl netgen`` command line: parse options, call a use case, render.

This is the one place that turns :class:`~kubectl_netgen.errors.NetgenError`
into a one-line message and an exit code (``main`` -> ``raw_main`` ->
the typer app), in the manner of httpie. Commands only parse, call
:mod:`kubectl_netgen.app`, and hand the result to :mod:`kubectl_netgen.render`.
Heavy modules are imported inside the commands that need them so that
``--help`` and ``--version`` start fast.
"""

from __future__ import annotations

import enum
import gc
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, BinaryIO, Optional, TextIO

import click
import typer

from kubectl_netgen import __version__
from kubectl_netgen.errors import ExitStatus, NetgenError

if TYPE_CHECKING:
    from kubectl_netgen.app import ReverseDns

PROG_NAME = "kubectl netgen"


@dataclass
class Environment:
    """The program's window on the world, injected so tests run it in-process."""

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    """Text stdin; its ``.buffer`` is read for ``-`` (a capture on stdin)."""
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    """Where the machine-readable result goes, and nothing else."""
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    """Where warnings, summaries and errors go."""
    stdout_isatty: bool | None = None
    """Whether stdout is a terminal (tables for people); ``None`` asks ``stdout``."""
    debug: bool = False
    """Show tracebacks of unexpected errors."""
    warnings: int = 0
    """How many warnings were printed."""

    def is_terminal(self) -> bool:
        """Tell whether stdout is an interactive terminal."""
        if self.stdout_isatty is not None:
            return self.stdout_isatty
        isatty = getattr(self.stdout, "isatty", None)
        return bool(isatty and isatty())

    def warn(self, message: str) -> None:
        """Print one warning line on stderr."""
        self.warnings += 1
        self.stderr.write(f"warning: {message}\n")
        self.stderr.flush()

    def info(self, message: str) -> None:
        """Print one informational line (a summary) on stderr."""
        self.stderr.write(f"{message}\n")
        self.stderr.flush()


class OutputFormat(str, enum.Enum):
    """``-o`` values of the commands that print records."""

    TABLE = "table"
    JSON = "json"


app = typer.Typer(
    name="netgen",
    help="Turn the traffic a workload really has into Kubernetes NetworkPolicies.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(ctx: typer.Context, value: bool) -> None:
    if value:
        ctx.ensure_object(Environment).stdout.write(f"kubectl-netgen {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")] = False,
) -> None:
    """Turn the traffic a workload really has into Kubernetes NetworkPolicies."""
    env: Environment = ctx.ensure_object(Environment)
    env.debug = env.debug or debug


def _env(ctx: typer.Context) -> Environment:
    env = ctx.find_object(Environment)
    assert env is not None, "main() always provides the Environment"
    return env


def _binary_stdin(env: Environment) -> BinaryIO | None:
    return getattr(env.stdin, "buffer", None)


def _format(env: Environment, output: OutputFormat | None) -> OutputFormat:
    if output is not None:
        return output
    return OutputFormat.TABLE if env.is_terminal() else OutputFormat.JSON


PcapsArg = Annotated[
    list[str],
    typer.Argument(help="Capture files (pcap, pcapng, optionally gzip-compressed); '-' reads stdin.",
                   metavar="PCAP..."),
]
OutputOpt = Annotated[
    Optional[OutputFormat],  # noqa: UP045 - typer needs Optional on Python 3.10
    typer.Option("-o", "--output", help="Output format: table (default on a terminal) or json (default otherwise)."),
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Fail (exit 4) on a truncated or corrupt capture instead of warning."),
]


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


KubeconfigOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
    typer.Option("--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).", metavar="FILE"),
]
ContextOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--context", help="Kubeconfig context (default: the current context).", metavar="NAME"),
]


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
                               all_namespaces=all_namespaces, warn=env.warn)
    env.stdout.write(render.dump_json(result.document))
    env.info(render.snapshot_summary(result))


NoReverseDnsOpt = Annotated[bool, typer.Option(
    "--no-reverse-dns", help="Do not name external addresses by reverse (PTR) lookups when no DNS answer did.")]
DnsServerOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
    "--dns-server", help="Ask this DNS server (IP or IP:PORT) for reverse lookups instead of the system's.",
    metavar="IP[:PORT]")]


def _reverse(no_reverse_dns: bool, dns_server: str | None) -> ReverseDns:
    from kubectl_netgen.app import ReverseDns

    return ReverseDns(enabled=not no_reverse_dns, server=dns_server)


class ManifestFormat(str, enum.Enum):
    """``-o`` values of the commands that print manifests."""

    YAML = "yaml"
    JSON = "json"


SourcesArg = Annotated[list[str], typer.Argument(
    help="A capture directory (pcaps/<namespace>/<pod>.pcap + cluster.json), or pcap files with --pod.",
    metavar="CAPTURE_DIR | PCAP...")]
ClusterOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
    "--cluster", help="The cluster inventory (kubectl netgen snapshot -A > FILE); a capture directory has one. "
    "Without either, the live cluster is read (--kubeconfig, --context).", metavar="FILE")]
PodOpt = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
    "--pod", help="NAMESPACE/NAME of the pod behind each pcap file, in order (repeat per file).",
    metavar="NS/NAME")]


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
        strict=strict, warn=env.warn)
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


PoliciesOpt = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
    "--policies", help="Policy manifests to check: a YAML/JSON file, a directory of them, or '-' for stdin "
    "(repeatable).", metavar="FILE|DIR|-")]


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
) -> int:
    """Judge every captured flow against policies: allowed or denied, and by which policy rule.

    Exits 10 when some flow would be denied, so it can gate a CI pipeline. Example:
    kubectl netgen generate ./capture/ | kubectl netgen verify ./capture/ --policies -
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    env = _env(ctx)
    result = usecases.verify(sources, policies=policies or (), live_policies=live_policies, pods=pod or (),
                             cluster=cluster, live=usecases.LiveCluster(kubeconfig, context),
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
) -> None:
    """Say in plain words, per policy, who may talk to whom on which ports.

    Example: kubectl netgen generate ./capture/ | kubectl netgen explain --policies -
    """
    from kubectl_netgen import app as usecases
    from kubectl_netgen import render

    env = _env(ctx)
    result = usecases.read_policies(policies or (), stdin=_binary_stdin(env),
                                    live=usecases.LiveCluster(kubeconfig, context), live_policies=live_policies,
                                    warn=env.warn)
    env.stdout.write(render.explain_text(result))


class CaptureProfile(str, enum.Enum):
    """``--profile`` of ``capture``: the capabilities the capture container asks for."""

    AUTO = "auto"
    NETRAW = "netraw"
    BASELINE = "baseline"


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
        "--image", help="The capture image; it needs sh, timeout, tcpdump, dd, base64 and tr "
        "(default: nicolaka/netshoot, pinned).", metavar="IMAGE")] = None,
    bpf_filter: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--filter", help="A BPF expression and-ed with the default filter (e.g. 'not port 9100').",
        metavar="EXPR")] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="Capture whole packets of all traffic instead of headers of openings plus DNS.")] = False,
    max_pods: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--max-pods", help="Capture at most N pods of each target (ready pods first; default: all).",
        metavar="N")] = None,
    parallel: Annotated[int, typer.Option("--parallel", help="Pods captured at the same time.", metavar="N")] = 8,
    start_timeout: Annotated[str, typer.Option(
        "--start-timeout", help="Give up on a pod whose capture container has not started by then "
        "(e.g. the image cannot be pulled).", metavar="DURATION")] = "60s",
    profile: Annotated[CaptureProfile, typer.Option(
        "--profile", help="Capabilities: netraw (drop all, add NET_RAW), baseline (add nothing: the runtime's "
        "default set, admitted under Pod Security baseline), auto (netraw, else baseline).")] = CaptureProfile.AUTO,
    then_generate: Annotated[bool, typer.Option(
        "--generate", help="Then print the NetworkPolicies for the capture (as generate DIR does).")] = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
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

    env = _env(ctx)
    seconds = plan.parse_duration(duration)
    settings = plan.Settings(duration=max(1, round(seconds)), image=image or plan.DEFAULT_IMAGE,
                             user_filter=bpf_filter, full=full, profile=plan.Profile(profile.value))
    request = usecases.CaptureRequest(
        targets=tuple(targets or ()), settings=settings, namespace=namespace, all_namespaces=all_namespaces,
        selector=selector, output=Path(output) if output else None, max_pods=max_pods, parallel=parallel,
        start_timeout=plan.parse_duration(start_timeout), live=usecases.LiveCluster(kubeconfig, context))
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


def raw_main(args: Sequence[str], env: Environment) -> int:
    """Run the program and turn every outcome into an exit status.

    Args:
        args: The command-line arguments after the program name.
        env: Where to read and write.

    Returns:
        The exit status (see :class:`~kubectl_netgen.errors.ExitStatus`).
    """
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(args), prog_name=PROG_NAME, standalone_mode=False, obj=env)
    except NetgenError as e:
        env.stderr.write(f"error: {e.message}\n")
        return int(e.exit_code)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show(file=env.stderr)
        return int(ExitStatus.USAGE) if isinstance(e, click.UsageError) else int(e.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):
        result = ExitStatus.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours, and nothing left to say.
        _silence_stdout()
        return int(ExitStatus.OK)
    except Exception as e:
        if env.debug:
            raise
        env.stderr.write(f"error: unexpected {type(e).__name__}: {e} (a bug: rerun with --debug and report it)\n")
        return int(ExitStatus.ERROR)
    if result == ExitStatus.INTERRUPTED:  # typer turns Ctrl-C into Exit(130) on its own
        env.stderr.write("interrupted\n")
    return int(result) if isinstance(result, int) else int(ExitStatus.OK)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


GC_THRESHOLD = (200_000, 50, 100)
"""Collect the young generation every 200,000 allocations instead of 700: decoding and resolution build
millions of long-lived small objects (counter rows, flows, peers), and Python's default thresholds spend
about 40% of ``generate``'s time re-scanning them (bench/generate_bench.py: 20.5 s -> 12.5 s at 1/4 scale,
same peak memory). A short-lived command can afford it."""


def main(args: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Entry point of the ``kubectl-netgen`` executable and of in-process tests."""
    if args is None:  # the real executable, not an in-process test
        gc.set_threshold(*GC_THRESHOLD)
    return raw_main(sys.argv[1:] if args is None else args, env or Environment())
