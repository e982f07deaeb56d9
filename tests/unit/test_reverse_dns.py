"""Bounded reverse DNS: fakes for the bounds, and dnspython against a PTR server the test runs on 127.0.0.1.

No test asks the machine's resolver or any address but 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from ipaddress import ip_address

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset
import pytest

from kubectl_netgen.dns import (
    DnspythonAddressResolver,
    PtrLookupError,
    PtrTimeoutError,
    ReverseResolver,
    ReverseStats,
    merge_names,
    parse_server,
    reverse_names,
)
from kubectl_netgen.errors import InputError
from kubectl_netgen.model import IPAddress

V4_NAMED = ip_address("10.0.0.7")
V4_TWO = ip_address("10.1.2.3")
V4_NONE = ip_address("10.9.9.9")
V4_NODATA = ip_address("10.0.0.8")
V4_SERVFAIL = ip_address("10.0.0.9")
V4_SILENT = ip_address("10.0.0.99")
V6_NAMED = ip_address("fd00::1")


class PtrServer:
    """A tiny authoritative-ish UDP server on 127.0.0.1: PTR from a dict, NXDOMAIN otherwise."""

    def __init__(self) -> None:
        self.ptr: dict[dns.name.Name, list[str]] = {
            dns.reversename.from_address(str(V4_NAMED)): ["Web-1.Example.COM."],
            dns.reversename.from_address(str(V4_TWO)): ["b.example.net.", "a.example.net.", "A.example.net."],
            dns.reversename.from_address(str(V6_NAMED)): ["v6.example.org."],
        }
        self.nodata = {dns.reversename.from_address(str(V4_NODATA))}
        self.servfail = {dns.reversename.from_address(str(V4_SERVFAIL))}
        self.silent = {dns.reversename.from_address(str(V4_SILENT))}
        self.queries: Counter[str] = Counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="ptr-server", daemon=True)

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def asked(self, ip: IPAddress) -> int:
        return self.queries[dns.reversename.from_address(str(ip)).to_text()]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(wire)
            question = query.question[0]
            self.queries[question.name.to_text()] += 1
            if question.name in self.silent:
                continue
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            if question.name in self.ptr and question.rdtype == dns.rdatatype.PTR:
                response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", "PTR",
                                                                self.ptr[question.name]))
            elif question.name in self.servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
            elif question.name not in self.nodata:
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), peer)


@pytest.fixture
def ptr_server() -> Iterator[PtrServer]:
    server = PtrServer()
    server.start()
    yield server
    server.stop()


# The real dnspython path against the local server ---------------------------------------------------------------


def test_real_lookup_names_v4_and_v6_lowercase_sorted_without_dot(ptr_server: PtrServer) -> None:
    reverse = ReverseResolver(server=ptr_server.server, lifetime=1.0)
    names = reverse.lookup([V6_NAMED, V4_TWO, V4_NAMED, V4_NONE, V4_NODATA, V4_NAMED])
    assert names == {
        V4_NAMED: ["web-1.example.com"],
        V4_TWO: ["a.example.net", "b.example.net"],
        V6_NAMED: ["v6.example.org"],
    }
    assert list(names) == [V4_NAMED, V4_TWO, V6_NAMED]  # IPv4 before IPv6, numerically
    assert reverse.stats == ReverseStats(asked=5, answered=3, unnamed=2)


def test_real_lookup_asks_each_address_once_per_resolver(ptr_server: PtrServer) -> None:
    reverse = ReverseResolver(server=ptr_server.server)
    first = reverse.lookup([V4_NAMED, V4_NONE])
    second = reverse.lookup([V4_NONE, V4_NAMED, V4_NAMED])
    assert first == second == {V4_NAMED: ["web-1.example.com"]}
    assert ptr_server.asked(V4_NAMED) == 1
    assert ptr_server.asked(V4_NONE) == 1
    assert reverse.stats.asked == 2
    # The cache belongs to the instance: a new resolver asks again.
    ReverseResolver(server=ptr_server.server).lookup([V4_NAMED])
    assert ptr_server.asked(V4_NAMED) == 2


def test_real_lookup_times_out_and_fails_without_raising(ptr_server: PtrServer) -> None:
    reverse = ReverseResolver(server=ptr_server.server, lifetime=0.2)
    started = time.monotonic()
    names = reverse.lookup([V4_SILENT, V4_SERVFAIL, V4_NAMED])
    elapsed = time.monotonic() - started
    assert names == {V4_NAMED: ["web-1.example.com"]}
    assert reverse.stats == ReverseStats(asked=3, answered=1, failed=1, timed_out=1)
    assert elapsed < 1.5  # the 0.2 s lifetime, not dnspython's default 5 s
    assert ptr_server.asked(V4_SILENT) >= 1


def test_real_lookup_budget_abandons_what_is_not_done(ptr_server: PtrServer) -> None:
    reverse = ReverseResolver(server=ptr_server.server, lifetime=1.0, budget=0.3)
    started = time.monotonic()
    names = reverse.lookup([V4_SILENT, V4_NAMED])
    assert time.monotonic() - started < 0.9
    assert names == {V4_NAMED: ["web-1.example.com"]}
    assert reverse.stats == ReverseStats(asked=2, answered=1, abandoned=1)
    # The budget is spent: new addresses are abandoned unasked, known ones still come from the cache.
    assert reverse.lookup([V4_TWO, V4_NAMED]) == {V4_NAMED: ["web-1.example.com"]}
    assert ptr_server.asked(V4_TWO) == 0
    assert reverse.stats == ReverseStats(asked=3, answered=1, abandoned=2)


def test_default_resolver_with_bracketed_v6_server_syntax(ptr_server: PtrServer) -> None:
    # The server listens on IPv4 only; this checks the parse, then asks the real server.
    assert parse_server("[::1]:5353") == ("::1", 5353)
    resolver = DnspythonAddressResolver(ptr_server.server, lifetime=0.5)
    assert resolver.resolve_address(V6_NAMED) == ["v6.example.org"]
    assert resolver.resolve_address(V4_NONE) == []
    assert resolver.resolve_address(V4_NODATA) == []
    with pytest.raises(PtrLookupError):
        resolver.resolve_address(V4_SERVFAIL)


def test_default_resolver_raises_timeout_for_silence(ptr_server: PtrServer) -> None:
    resolver = DnspythonAddressResolver(ptr_server.server, lifetime=0.2)
    with pytest.raises(PtrTimeoutError):
        resolver.resolve_address(V4_SILENT)


def test_reverse_names_one_shot(ptr_server: PtrServer) -> None:
    names, stats = reverse_names([V4_NAMED, V6_NAMED, V4_NONE], server=ptr_server.server)
    assert names == {V4_NAMED: ["web-1.example.com"], V6_NAMED: ["v6.example.org"]}
    assert stats == ReverseStats(asked=3, answered=2, unnamed=1)
    assert stats.summary() == (
        "reverse DNS: 3 addresses, 2 named, 1 without a name, 0 failed, 0 timed out, 0 abandoned (time budget)"
    )


# Server argument ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1", ("127.0.0.1", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    (" 10.96.0.10 ", ("10.96.0.10", 53)),
    ("fd00::a", ("fd00::a", 53)),
    ("[fd00::a]", ("fd00::a", 53)),
    ("[fd00::a]:53", ("fd00::a", 53)),
])
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["dns.example.com", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x",
                                  "[fd00::a", "[fd00::a]x", "", "1.2.3.4:"])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(InputError, match="DNS server"):
        parse_server(text)


def test_invalid_arguments() -> None:
    fake = FakeResolver({})
    with pytest.raises(ValueError, match="workers"):
        ReverseResolver(fake, workers=0)
    with pytest.raises(ValueError, match="budget"):
        ReverseResolver(fake, budget=0)
    with pytest.raises(ValueError, match="either"):
        ReverseResolver(fake, server="127.0.0.1")
    with pytest.raises(ValueError, match="lifetime"):
        DnspythonAddressResolver("127.0.0.1", lifetime=0)


# Bounds and accounting with an injected fake --------------------------------------------------------------------


class FakeResolver:
    """Answers from a dict; raises what the dict says; can hold lookups until released."""

    def __init__(self, answers: dict[IPAddress, list[str] | BaseException], delay: float = 0.0,
                 gate: threading.Event | None = None) -> None:
        self.answers = answers
        self.delay = delay
        self.gate = gate
        self.calls: Counter[IPAddress] = Counter()
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()

    def resolve_address(self, ip: IPAddress) -> list[str]:
        with self._lock:
            self.calls[ip] += 1
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            if self.gate is not None:
                self.gate.wait(10)
            time.sleep(self.delay)
            answer = self.answers.get(ip, [])
            if isinstance(answer, BaseException):
                raise answer
            return answer
        finally:
            with self._lock:
                self.active -= 1


def addresses(count: int) -> list[IPAddress]:
    return [ip_address(f"10.0.1.{i}") for i in range(1, count + 1)]


def test_concurrency_is_bounded_by_workers() -> None:
    ips = addresses(24)
    fake = FakeResolver({ip: [f"h{ip.packed[-1]}.example"] for ip in ips}, delay=0.03)
    reverse = ReverseResolver(fake, workers=3)
    names = reverse.lookup(ips)
    assert len(names) == 24
    assert fake.most_active == 3
    assert reverse.stats == ReverseStats(asked=24, answered=24)


def test_every_error_is_counted_never_raised() -> None:
    ips = addresses(6)
    fake = FakeResolver({
        ips[0]: ["Mixed.Case.Example.", "mixed.case.example", "b.example."],
        ips[1]: [],
        ips[2]: PtrTimeoutError("no answer"),
        ips[3]: PtrLookupError("SERVFAIL"),
        ips[4]: ConnectionRefusedError("refused"),
        ips[5]: dns.resolver.NoNameservers(),
    })
    reverse = ReverseResolver(fake)
    assert reverse.lookup(ips) == {ips[0]: ["b.example", "mixed.case.example"]}
    assert reverse.stats == ReverseStats(asked=6, answered=1, unnamed=1, failed=3, timed_out=1)
    # Failures are cached too: asked once per resolver, whatever came of it.
    reverse.lookup(ips)
    assert set(fake.calls.values()) == {1}


def test_budget_abandons_running_and_queued_lookups() -> None:
    gate = threading.Event()
    ips = addresses(5)
    fake = FakeResolver({ip: ["held.example"] for ip in ips}, gate=gate)
    reverse = ReverseResolver(fake, workers=2, budget=0.2)
    try:
        started = time.monotonic()
        assert reverse.lookup(ips) == {}
        assert time.monotonic() - started < 1.0
        assert reverse.stats == ReverseStats(asked=5, abandoned=5)
        assert sum(fake.calls.values()) == 2  # the queued three were never started
    finally:
        gate.set()


def test_no_budget_means_no_limit() -> None:
    fake = FakeResolver({V4_NAMED: ["slow.example"]}, delay=0.1)
    reverse = ReverseResolver(fake, budget=None)
    assert reverse.lookup([V4_NAMED]) == {V4_NAMED: ["slow.example"]}
    assert reverse.lookup([]) == {}


def test_results_are_copies() -> None:
    reverse = ReverseResolver(FakeResolver({V4_NAMED: ["a.example"]}))
    reverse.lookup([V4_NAMED])[V4_NAMED].append("mutated")
    assert reverse.lookup([V4_NAMED]) == {V4_NAMED: ["a.example"]}


# merge_names -----------------------------------------------------------------------------------------------------


def test_merge_names_union_with_earlier_maps_first() -> None:
    v6 = ip_address("2001:db8::1")
    capture = {V4_NAMED: ["web.shop.svc", "api.example.com"], v6: ["v6.example"]}
    reverse = {V4_NAMED: ["ec2-10-0-0-7.compute.internal", "api.example.com"], V4_TWO: ["b.example", "a.example"]}
    merged = merge_names(capture, reverse)
    assert merged == {
        V4_NAMED: ["api.example.com", "web.shop.svc", "ec2-10-0-0-7.compute.internal"],
        V4_TWO: ["a.example", "b.example"],
        v6: ["v6.example"],
    }
    assert list(merged) == [V4_NAMED, V4_TWO, v6]
    # Priority follows argument order.
    assert merge_names(reverse, capture)[V4_NAMED] == [
        "api.example.com", "ec2-10-0-0-7.compute.internal", "web.shop.svc",
    ]


def test_merge_names_edges() -> None:
    assert merge_names() == {}
    assert merge_names({V4_NAMED: []}, {}) == {}
    assert merge_names({V4_NAMED: ["a"]}, {V4_NAMED: ["a"]}) == {V4_NAMED: ["a"]}
