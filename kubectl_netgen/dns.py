"""DNS answers -> which names an IP address was known by.

Fed with whole DNS messages (the decoder finds them on port 53), this keeps,
for every address in an A or AAAA answer, the name that was asked for and
every CNAME on the way to the address. Only NOERROR responses count, and only
records on the chain that starts at the question name: a search-domain
expansion the resolver tried (``api.example.com.default.svc.cluster.local``,
answered NXDOMAIN) never names anything, and neither do glue records.
Parsing uses dnspython; a malformed message is counted, never fatal.
"""

from __future__ import annotations

import struct
from ipaddress import ip_address

import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from kubectl_netgen.model import IPAddress

_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
MAX_CHAIN = 16
"""CNAME links followed at most (resolvers give up at about 8-16)."""


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


class DnsNames:
    """Collects address -> names from DNS responses, one message at a time (a decoder's DNS sink)."""

    def __init__(self) -> None:
        """Start empty."""
        self.names: dict[IPAddress, set[str]] = {}
        self.responses = 0
        """Responses that gave at least one address."""
        self.malformed = 0
        """Messages dnspython could not parse."""

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
        try:
            message = dns.message.from_wire(wire, ignore_trailing=True, one_rr_per_rrset=False)
        except (dns.exception.DNSException, ValueError, IndexError, UnicodeError, struct.error):
            self.malformed += 1
            return
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
