"""The ``kubectl netgen`` command line: parse options, call a use case, render.

This is the one place that turns :class:`~kubectl_netgen.errors.NetgenError`
into a one-line message and an exit code (``main`` -> ``raw_main`` ->
the typer app), in the manner of httpie. Commands only parse, call
:mod:`kubectl_netgen.app`, and hand the result to :mod:`kubectl_netgen.render`.
Heavy modules are imported inside the commands that need them so that
``--help`` and ``--version`` start fast.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence

import click
import typer

from kubectl_netgen.cli.base import PROG_NAME, Environment, app
from kubectl_netgen.errors import ExitStatus, NetgenError

# Importing the command modules registers their commands, in the order --help lists them.
from kubectl_netgen.cli import baseline, capture, contracts, decoding, policies, rbac, verify  # noqa: F401  isort: skip

__all__ = ["Environment", "app", "main", "raw_main"]


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
