"""Reading captures: decode pcaps into flows and DNS names, reporting what each capture held."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from kubectl_netgen import flows as flowfold
from kubectl_netgen.errors import DecodeError, InputError
from kubectl_netgen.model import Flow, IPAddress
from kubectl_netgen.pcap import CaptureReport, DnsSink, Scanner, linktype_name, open_capture

Warn = Callable[[str], None]
"""Receives one line per warning (the CLI prints it on stderr)."""


@dataclass(frozen=True)
class FlowsResult:
    """Flows of a set of captures, and what reading each capture found."""

    flows: list[Flow]
    """Sorted flows, aggregated over every capture."""
    reports: list[CaptureReport]
    """One report per capture, in the order given."""


@dataclass(frozen=True)
class NamesResult:
    """Names DNS answers gave to addresses in a set of captures."""

    names: dict[IPAddress, list[str]]
    """Address -> sorted names."""
    responses: int
    """DNS responses that named at least one address."""
    reports: list[CaptureReport]
    """One report per capture, in the order given."""


def read_captures(
    paths: Sequence[str], *, stdin: BinaryIO | None, strict: bool, warn: Warn, dns_sink: DnsSink | None = None
) -> tuple[Scanner, list[CaptureReport]]:
    """Read every capture into one scanner, reporting damage as warnings (or errors if ``strict``).

    Raises:
        InputError: A capture is missing, unreadable or not a capture.
        DecodeError: A capture is damaged and ``strict`` is set.
    """
    if list(paths).count("-") > 1:
        raise InputError("'-' (stdin) can be given only once")
    scanner = Scanner(dns_sink)
    reports = []
    for path in paths:
        stream = open_capture(path, stdin)
        try:
            report = scanner.scan(stream, path)
        finally:
            if stream is not stdin:
                stream.close()
        _check(report, strict, warn)
        reports.append(report)
    return scanner, reports


def _check(report: CaptureReport, strict: bool, warn: Warn) -> None:
    name = report.name
    if report.damage:
        if strict:
            raise DecodeError(f"{name}: {report.damage} (without --strict, the packets before it are used)")
        warn(f"{name}: {report.damage}; using the {report.packets} packets read before it")
    for linktype, count in sorted(report.unsupported.items()):
        warn(f"{name}: skipped {count} packet(s) with unsupported link type {linktype_name(linktype)}")
    if report.invalid_timestamps:
        warn(f"{name}: {report.invalid_timestamps} packet(s) have an invalid timestamp (fraction out of range); "
             "their flows are counted but these packets do not set first/last seen")
    if report.short_lengths:
        warn(f"{name}: {report.short_lengths} record(s) give an original length below their captured length "
             "(a damaged or hand-made file); their captured length is counted instead")
    if report.short:
        warn(f"{name}: {report.short} packet(s) were cut by the snapshot length before their IP/transport "
             "headers and were skipped")
    if report.fragments_unmatched:
        warn(f"{name}: {report.fragments_unmatched} IP fragment(s) arrived without their first fragment "
             "(which carries the ports) and were skipped")


def flows(paths: Sequence[str], *, stdin: BinaryIO | None, strict: bool, warn: Warn) -> FlowsResult:
    """Decode captures and fold their packets into flows.

    Args:
        paths: Capture files; ``-`` reads ``stdin``.
        stdin: Binary standard input.
        strict: Treat a damaged capture as an error instead of a warning.
        warn: Receives one line per warning.

    Returns:
        The flows and the per-capture reports.
    """
    scanner, reports = read_captures(paths, stdin=stdin, strict=strict, warn=warn)
    return FlowsResult(flowfold.flows(scanner.table), reports)


def dns_names(paths: Sequence[str], *, stdin: BinaryIO | None, strict: bool, warn: Warn) -> NamesResult:
    """Collect the names DNS answers (port 53, UDP and TCP) gave to addresses in captures.

    Args:
        paths: Capture files; ``-`` reads ``stdin``.
        stdin: Binary standard input.
        strict: Treat a damaged capture as an error instead of a warning.
        warn: Receives one line per warning.

    Returns:
        Address -> sorted names, with the per-capture reports.
    """
    from kubectl_netgen.dns import DnsNames  # dnspython costs ~50 ms to import: only here

    names = DnsNames()
    _, reports = read_captures(paths, stdin=stdin, strict=strict, warn=warn, dns_sink=names.feed)
    incomplete = sum(r.dns_incomplete for r in reports)
    if incomplete:
        warn(f"{incomplete} DNS message(s) were cut short (snapshot length, IP fragments or missing TCP segments): "
             "only their answers that arrived whole were read")
    if names.malformed:
        warn(f"{names.malformed} DNS message(s) on port 53 could not be parsed and were skipped")
    return NamesResult(names.mapping(), names.responses, reports)
