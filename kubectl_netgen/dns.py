"""DNS answers -> which names an IP address was known by.

Fed with whole DNS messages (the decoder finds them on port 53), this keeps,
for every address in an A or AAAA answer, the name that was asked for and
every CNAME on the way to the address. Only NOERROR responses count, and only
records on the chain that starts at the question name: a search-domain
expansion the resolver tried (``api.example.com.default.svc.cluster.local``,
answered NXDOMAIN) never names anything, and neither do glue records.
Parsing uses dnspython; a malformed message is counted, never fatal.

It also asks reverse DNS (PTR) for addresses the capture never named, within
bounds a user can predict: a timeout per lookup, a fixed number of worker
threads, a total time budget, and each address asked once per resolver. A
lookup that fails or runs out of time is counted, never raised: reverse names
are a courtesy for readers, never a reason to stop. The resolver that really
asks is injected (:class:`AddressResolver`), so tests pass a fake or point
dnspython at a server of their own.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import Enum
from ipaddress import ip_address
from typing import Protocol

import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.wire

from kubectl_netgen.errors import InputError
from kubectl_netgen.model import IPAddress

_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
MAX_CHAIN = 16
"""CNAME links followed at most (resolvers give up at about 8-16)."""


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def _salvaged(wire: bytes) -> dns.message.Message | None:
    """The header, questions and whole answer records of a cut or damaged response; ``None`` if none is whole.

    A capture with a short snapshot length, or a truncated file, cuts DNS messages: the answers that lie
    wholly inside the bytes that were kept still name their addresses. The message is re-read with its
    answer count set to those records and its authority and additional sections dropped.
    """
    parser = dns.wire.Parser(wire, 12)
    questions, answers = wire[4] << 8 | wire[5], wire[6] << 8 | wire[7]
    complete = 0
    try:
        for _ in range(questions):
            parser.get_name(decompress=True)
            parser.get_struct("!HH")
        end = parser.current
        for _ in range(answers):
            parser.get_name(decompress=True)
            _rdtype, _rdclass, _ttl, rdlen = parser.get_struct("!HHIH")
            parser.get_bytes(rdlen)
            complete, end = complete + 1, parser.current
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError, struct.error):
        pass
    if not complete:
        return None
    header = wire[:6] + struct.pack("!HHH", complete, 0, 0)
    try:
        return dns.message.from_wire(header + wire[12:end], ignore_trailing=True, one_rr_per_rrset=False)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError, struct.error):
        return None


class DnsNames:
    """Collects address -> names from DNS responses, one message at a time (a decoder's DNS sink)."""

    def __init__(self) -> None:
        """Start empty."""
        self.names: dict[IPAddress, set[str]] = {}
        self.responses = 0
        """Responses that gave at least one address."""
        self.malformed = 0
        """Messages dnspython could not parse, nor any answer of them."""
        self.salvaged = 0
        """Cut or damaged messages whose whole answer records were read (the rest dropped), as tcpdump does."""

    def feed(self, wire: bytes) -> None:
        """Learn from one DNS message in wire format; queries and failures teach nothing."""
        # Cheap header checks first: most messages are queries or carry no answer.
        if len(wire) < 12:
            self.malformed += 1
            return
        is_response = wire[2] & 0x80
        rcode = wire[3] & 0x0F
        answers = wire[6] << 8 | wire[7]
        if not is_response or rcode != 0 or not answers:
            return
        message: dns.message.Message | None
        try:
            message = dns.message.from_wire(wire, ignore_trailing=True, one_rr_per_rrset=False)
        except (dns.exception.DNSException, ValueError, IndexError, UnicodeError, struct.error):
            message = _salvaged(wire)
            if message is None:
                self.malformed += 1
                return
            self.salvaged += 1
        learned = False
        for question in message.question:
            learned = self._chain(message, question.name) or learned
        self.responses += learned

    def _chain(self, message: dns.message.Message, qname: dns.name.Name) -> bool:
        aliases: list[str] = []
        current = qname
        learned = False
        for _ in range(MAX_CHAIN):
            aliases.append(_text(current))
            target = None
            for rrset in message.answer:
                if rrset.name != current:
                    continue
                if rrset.rdclass != dns.rdataclass.IN:
                    continue  # CHAOS, HESIOD, NONE, ANY: not addresses
                if rrset.rdtype in _ADDRESS_TYPES:
                    for rdata in rrset:
                        names = self.names.setdefault(ip_address(rdata.address), set())
                        names.update(aliases)
                        learned = True
                elif rrset.rdtype == dns.rdatatype.CNAME and target is None:
                    target = rrset[0].target
            if target is None or _text(target) in aliases:
                break
            current = target
        return learned

    def mapping(self) -> dict[IPAddress, list[str]]:
        """Address -> sorted names, addresses sorted (IPv4 before IPv6)."""
        return {ip: sorted(self.names[ip]) for ip in sorted(self.names, key=lambda a: (a.version, int(a)))}


def _address_order(ip: IPAddress) -> tuple[int, int]:
    return (ip.version, int(ip))


def merge_names(*maps: Mapping[IPAddress, Sequence[str]]) -> dict[IPAddress, list[str]]:
    """Combine address -> names maps, earlier maps first (e.g. the capture's DNS answers, then reverse DNS).

    Every name any map gives an address is kept (a union; duplicates once). Within an address the
    names are ordered by the first map that gave them, then alphabetically: pass the capture's
    names first and they lead the list, so a reader (or code taking ``names[0]``) sees the name the
    workload really asked for before a PTR name such as ``ec2-203-0-113-7.compute.amazonaws.com``.
    Names are compared as given; normalise them (lower case, no final dot) before merging.

    Args:
        maps: Address -> names maps in priority order, highest first.

    Returns:
        Address -> names, addresses sorted (IPv4 before IPv6, then numerically); addresses whose
        names are all empty are left out.
    """
    rank: dict[IPAddress, dict[str, int]] = {}
    for priority, mapping in enumerate(maps):
        for ip, names in mapping.items():
            seen = rank.setdefault(ip, {})
            for name in names:
                seen.setdefault(name, priority)
    return {
        ip: sorted(rank[ip], key=lambda name: (rank[ip][name], name))
        for ip in sorted(rank, key=_address_order)
        if rank[ip]
    }


# Reverse DNS ----------------------------------------------------------------------------------------------------


class PtrTimeoutError(Exception):
    """An :class:`AddressResolver` got no answer within its per-lookup time (counted as timed out)."""


class PtrLookupError(Exception):
    """An :class:`AddressResolver` could not get an answer: server failure, refusal, network error (counted)."""


class AddressResolver(Protocol):
    """Asks the names of one address (PTR); the I/O a :class:`ReverseResolver` is given."""

    def resolve_address(self, ip: IPAddress) -> list[str]:
        """Return the PTR names of ``ip``; an empty list when it has none (NXDOMAIN, no PTR record).

        Raises:
            PtrTimeoutError: No answer in time.
            PtrLookupError: Any other failure (``OSError`` and dnspython errors are accepted too).
        """
        ...  # pragma: no cover


DEFAULT_LIFETIME = 1.0
"""Seconds one reverse lookup may take, retries included."""
DEFAULT_WORKERS = 8
"""Reverse lookups in flight at once."""
DEFAULT_BUDGET = 10.0
"""Seconds all reverse lookups of one resolver may take together."""


def parse_server(server: str) -> tuple[str, int]:
    """Split a DNS server given as ``IP``, ``IP:port``, ``[IPv6]`` or ``[IPv6]:port`` (port 53 by default).

    Raises:
        InputError: Not an IP address, or a port outside 1-65535.
    """
    host, port_text = server.strip(), None
    if host.startswith("["):
        host, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise InputError(f"DNS server {server!r} is not IP, IP:port or [IPv6]:port")
        port_text = rest[1:] if rest else None
    elif host.count(":") == 1:  # IPv4:port; a bare IPv6 address has two colons or more
        host, _, port_text = host.partition(":")
    try:
        address = ip_address(host)
    except ValueError as e:
        raise InputError(f"DNS server {server!r} is not an IP address (give IP or IP:port)") from e
    if port_text is None:
        return str(address), 53
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InputError(f"DNS server {server!r}: the port must be a number from 1 to 65535")
    return str(address), int(port_text)


class DnspythonAddressResolver:
    """The real :class:`AddressResolver`: dnspython asking one given server, or the system's configuration."""

    def __init__(self, server: str | None = None, *, lifetime: float = DEFAULT_LIFETIME) -> None:
        """Choose the server and the time one lookup may take.

        Args:
            server: ``IP`` or ``IP:port`` (``[IPv6]:port``) of the server to ask; ``None`` for the
                system configuration (``/etc/resolv.conf``).
            lifetime: Seconds one lookup may take, across retries and servers.

        Raises:
            InputError: ``server`` is malformed, or there is no server given and none configured.
            ValueError: ``lifetime`` is not positive.
        """
        if lifetime <= 0:
            raise ValueError(f"lifetime must be positive, not {lifetime}")
        if server is None:
            try:
                resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration as e:
                raise InputError("no DNS server is configured on this machine; give one as IP or IP:port") from e
        else:
            address, port = parse_server(server)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [address]
            resolver.port = port
        # One try may take the whole lifetime; dnspython's default (2 s a try) would outlast it anyway.
        resolver.timeout = lifetime
        resolver.lifetime = lifetime
        resolver.cache = None  # ReverseResolver caches; a shared dnspython cache would hide what was asked
        self._resolver = resolver

    def resolve_address(self, ip: IPAddress) -> list[str]:
        """Ask PTR for ``ip``; see :meth:`AddressResolver.resolve_address`."""
        try:
            answer = self._resolver.resolve_address(str(ip))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout as e:  # LifetimeTimeout included
            raise PtrTimeoutError(str(e)) from e
        except (dns.exception.DNSException, OSError) as e:  # NoNameservers (SERVFAIL, REFUSED, unreachable), …
            raise PtrLookupError(str(e)) from e
        return [_text(rdata.target) for rdata in answer if rdata.rdtype == dns.rdatatype.PTR]


class _Outcome(Enum):
    NAMED = "named"
    UNNAMED = "unnamed"
    FAILED = "failed"
    TIMED_OUT = "timed out"


def _normalise(names: Iterable[str]) -> list[str]:
    return sorted({name.lower().rstrip(".") for name in names} - {""})


@dataclass(frozen=True)
class ReverseStats:
    """What a :class:`ReverseResolver` did; ``asked == answered + unnamed + failed + timed_out + abandoned``."""

    asked: int = 0
    """Distinct addresses given to look up (each once per resolver; repeats are answered from the cache)."""
    answered: int = 0
    """Lookups that gave at least one name."""
    unnamed: int = 0
    """Lookups answered without a name (NXDOMAIN, or no PTR record)."""
    failed: int = 0
    """Lookups that failed: server failure or refusal, network error."""
    timed_out: int = 0
    """Lookups that got no answer within the per-lookup lifetime."""
    abandoned: int = 0
    """Lookups not finished (or not started) when the total budget ran out."""

    def summary(self) -> str:
        """One line for people, e.g. ``reverse DNS: 12 addresses, 8 named, 2 without a name, 1 failed, …``."""
        return (
            f"reverse DNS: {self.asked} addresses, {self.answered} named, {self.unnamed} without a name, "
            f"{self.failed} failed, {self.timed_out} timed out, {self.abandoned} abandoned (time budget)"
        )


class ReverseResolver:
    """Bounded, cached reverse DNS: address -> PTR names, never raising for a lookup that goes wrong.

    Bounds: each lookup takes at most ``lifetime`` (enforced by the :class:`AddressResolver`), at
    most ``workers`` run at once, and all lookups of this resolver together get ``budget`` seconds;
    what is not done then is abandoned (its worker thread ends on its own within ``lifetime``).
    Every address is asked once per resolver, whatever the outcome, so a second :meth:`lookup` is
    answered from this instance's cache. Use one resolver from one thread at a time.
    """

    def __init__(
        self,
        resolver: AddressResolver | None = None,
        *,
        server: str | None = None,
        lifetime: float = DEFAULT_LIFETIME,
        workers: int = DEFAULT_WORKERS,
        budget: float | None = DEFAULT_BUDGET,
    ) -> None:
        """Set the bounds, and who asks.

        Args:
            resolver: What asks PTR for one address; by default :class:`DnspythonAddressResolver`
                with ``server`` and ``lifetime``.
            server: ``IP`` or ``IP:port`` of the DNS server; ``None`` for the system configuration.
                Only for the default resolver.
            lifetime: Seconds one lookup may take. Only for the default resolver.
            workers: Lookups in flight at once.
            budget: Seconds all lookups of this resolver may take together; ``None`` for no limit.

        Raises:
            InputError: ``server`` is malformed, or none is given and none is configured.
            ValueError: ``workers`` or ``budget`` is not positive, or ``resolver`` comes with ``server``.
        """
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if budget is not None and budget <= 0:
            raise ValueError(f"budget must be positive, not {budget}")
        if resolver is not None and server is not None:
            raise ValueError("give either a resolver or a server, not both")
        self._resolver = resolver if resolver is not None else DnspythonAddressResolver(server, lifetime=lifetime)
        self._workers = workers
        self._remaining = budget
        self._cache: dict[IPAddress, list[str]] = {}
        self._counts = dict.fromkeys(("asked", "answered", "unnamed", "failed", "timed_out", "abandoned"), 0)

    @property
    def stats(self) -> ReverseStats:
        """Counters so far, for a summary."""
        return ReverseStats(**self._counts)

    def lookup(self, addresses: Iterable[IPAddress]) -> dict[IPAddress, list[str]]:
        """Return PTR names for ``addresses``, asking only those this resolver has not asked before.

        Args:
            addresses: IPv4 and IPv6 addresses, in any order, repeats allowed.

        Returns:
            Address -> sorted lower-case names without the final dot, addresses sorted (IPv4 before
            IPv6); an address without a name, or whose lookup failed, timed out or was abandoned,
            is absent.
        """
        wanted = sorted(set(addresses), key=_address_order)
        new = [ip for ip in wanted if ip not in self._cache]
        if new:
            self._ask(new)
        return {ip: list(self._cache[ip]) for ip in wanted if self._cache[ip]}

    def _ask(self, addresses: list[IPAddress]) -> None:
        self._counts["asked"] += len(addresses)
        for ip in addresses:
            self._cache[ip] = []  # asked once, whatever comes of it
        if self._remaining is not None and self._remaining <= 0:
            self._counts["abandoned"] += len(addresses)
            return
        started = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=min(self._workers, len(addresses)), thread_name_prefix="netgen-ptr")
        try:
            futures = {pool.submit(self._ask_one, ip): ip for ip in addresses}
            done, not_done = wait(futures, timeout=self._remaining)
        finally:
            # Queued lookups are dropped; running ones end within their lifetime, unwaited for.
            pool.shutdown(wait=False, cancel_futures=True)
        if self._remaining is not None:
            self._remaining -= time.monotonic() - started
        self._counts["abandoned"] += len(not_done)
        for future in done:
            self._record(futures[future], future)

    def _ask_one(self, ip: IPAddress) -> tuple[_Outcome, list[str]]:
        try:
            names = _normalise(self._resolver.resolve_address(ip))
        except (PtrTimeoutError, dns.exception.Timeout):
            return _Outcome.TIMED_OUT, []
        except (PtrLookupError, dns.exception.DNSException, OSError):
            return _Outcome.FAILED, []
        return (_Outcome.NAMED if names else _Outcome.UNNAMED), names

    def _record(self, ip: IPAddress, future: Future[tuple[_Outcome, list[str]]]) -> None:
        outcome, names = future.result()
        counter = {
            _Outcome.NAMED: "answered",
            _Outcome.UNNAMED: "unnamed",
            _Outcome.FAILED: "failed",
            _Outcome.TIMED_OUT: "timed_out",
        }[outcome]
        self._counts[counter] += 1
        self._cache[ip] = names


def reverse_names(
    addresses: Iterable[IPAddress],
    resolver: AddressResolver | None = None,
    *,
    server: str | None = None,
    lifetime: float = DEFAULT_LIFETIME,
    workers: int = DEFAULT_WORKERS,
    budget: float | None = DEFAULT_BUDGET,
) -> tuple[dict[IPAddress, list[str]], ReverseStats]:
    """Look up PTR names for ``addresses`` once, with a fresh :class:`ReverseResolver` (arguments as there).

    Returns:
        Address -> sorted names (see :meth:`ReverseResolver.lookup`), and the counters.

    Raises:
        InputError: ``server`` is malformed, or none is given and none is configured.
    """
    reverse = ReverseResolver(resolver, server=server, lifetime=lifetime, workers=workers, budget=budget)
    return reverse.lookup(addresses), reverse.stats
