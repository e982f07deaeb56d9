"""What every command shares: the typer app, the injected environment, option types, output formats."""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, BinaryIO, Optional, TextIO

import typer

from kubectl_netgen import __version__

if TYPE_CHECKING:
    from kubectl_netgen.app import LiveCluster, ReverseDns

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
        from kubectl_netgen.render.escape import one_line

        self.warnings += 1
        self.stderr.write(f"warning: {one_line(message)}\n")
        self.stderr.flush()

    def info(self, message: str) -> None:
        """Print one informational line (a summary) on stderr."""
        from kubectl_netgen.render.escape import one_line

        self.stderr.write(f"{one_line(message)}\n")
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


KubeconfigOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional on Python 3.10
    typer.Option("--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).", metavar="FILE"),
]
ContextOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--context", help="Kubeconfig context (default: the current context).", metavar="NAME"),
]
DEFAULT_REQUEST_TIMEOUT = "30s"
"""``--request-timeout`` unless given (kubectl's default is no limit: netgen must not hang on a dead server)."""
RequestTimeoutOpt = Annotated[str, typer.Option(
    "--request-timeout", help="How long each API request may take before netgen gives up, as kubectl takes it "
    "(30s, 1m, 1h; a plain number is seconds; 0: no limit). Followed logs bound only their connect.",
    metavar="DURATION")]


def _request_timeout(text: str) -> float | None:
    """``--request-timeout`` in seconds; ``None`` for 0 (no limit).

    Raises:
        click.BadParameter: Not a duration (a usage error, exit 2).
    """
    import re

    import click

    from kubectl_netgen.capturing import plan
    from kubectl_netgen.errors import InputError

    if re.fullmatch(r"0+(\.0*)?(ms|s|m|h)?", text.strip()):
        return None
    try:
        return plan.parse_duration(text)
    except InputError as e:
        raise click.BadParameter(e.message, param_hint="--request-timeout") from None


def _live(kubeconfig: str | None, context: str | None, request_timeout: str = DEFAULT_REQUEST_TIMEOUT) -> LiveCluster:
    """The live cluster the shared options name (``--kubeconfig``, ``--context``, ``--request-timeout``)."""
    from kubectl_netgen.app import LiveCluster

    return LiveCluster(kubeconfig, context, _request_timeout(request_timeout))


NoReverseDnsOpt = Annotated[bool, typer.Option(
    "--no-reverse-dns", help="Do not name external addresses by reverse (PTR) lookups when no DNS answer did.")]
DnsServerOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
    "--dns-server", help="Ask this DNS server (IP or IP:PORT) for reverse lookups instead of the system's.",
    metavar="IP[:PORT]")]


def _reverse(no_reverse_dns: bool, dns_server: str | None) -> ReverseDns:
    """Reverse DNS as the options say; a bad ``--dns-server`` is a usage error (exit 2).

    Raises:
        click.BadParameter: ``--dns-server`` is not ``IP[:PORT]``.
    """
    import click

    from kubectl_netgen.app import ReverseDns
    from kubectl_netgen.errors import InputError

    reverse = ReverseDns(enabled=not no_reverse_dns, server=dns_server)
    try:
        reverse.check()
    except InputError as e:
        raise click.BadParameter(e.message, param_hint="--dns-server") from None
    return reverse


class ManifestFormat(str, enum.Enum):
    """``-o`` values of the commands that print manifests."""

    YAML = "yaml"
    JSON = "json"


SourcesArg = Annotated[list[str], typer.Argument(
    help="Capture directories (pcaps/<namespace>/<pod>.pcap + cluster.json; several are read as one, the "
    "newest cluster.json winning), or pcap files with --pod.",
    metavar="CAPTURE_DIR... | PCAP...")]
ClusterOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
    "--cluster", help="The cluster inventory (kubectl netgen snapshot -A > FILE); a capture directory has one. "
    "Without either, the live cluster is read (--kubeconfig, --context).", metavar="FILE")]
PodOpt = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
    "--pod", help="NAMESPACE/NAME of the pod behind each pcap file, in order (repeat per file).",
    metavar="NS/NAME")]


PoliciesOpt = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045 - typer needs Optional on Python 3.10
    "--policies", help="Policy manifests to check: a YAML/JSON file, a directory of them, or '-' for stdin "
    "(repeatable).", metavar="FILE|DIR|-")]
